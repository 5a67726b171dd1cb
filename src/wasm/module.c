/* module.c: loading modules and components, once per content digest.
 *
 * Both kinds (the header says which) take the same path; only compiling,
 * serializing and the checks differ (a core module needs _start and
 * pre-links against the preview 1 linker; a component's checks are in
 * component.c).
 *
 * A module goes through three caches, fastest first:
 *  1. memory: the loaded module with its pre-linked instance, shared by
 *     every container that runs the same digest, and kept for a while after
 *     the last one ends (up to IDLE_KEEP idle modules) so that restarts and
 *     Jobs of the same image skip even the mapping step;
 *  2. disk: <cache_dir>/<hex>.cwasm, the serialized compiled form, mapped
 *     back with wasmtime_module_deserialize_file. Wasmtime checks that the
 *     file was produced by this very version and configuration and refuses
 *     it otherwise; we then compile again and overwrite it. The files are
 *     trusted (deserializing runs native code), so the cache dir belongs to
 *     wasmlet alone (mode 0700) and files are written atomically;
 *  3. the compiler (Cranelift).
 * Compiles are serialised (compile_lock): a hundred pods of a new image
 * compile it once and find it loaded afterwards. */
#include "wasm/internal.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IDLE_KEEP 64

static void digest_hex(const uint8_t *data, size_t len, char *out /* 65 */)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

/* The header check gives the plain-language reason for the usual mistakes
 * before Wasmtime's parser gives its precise but terse one, and says which
 * kind of binary it is: version 1 layer 0 is a core module, layer 1 a
 * component. */
static int check_header(const uint8_t *wasm, size_t len, wasmrt_kind_t *kind, err_t *err)
{
    if (len == 0) return err_set(err, "not a WebAssembly module: the file is empty");
    if (len < 8 || memcmp(wasm, "\0asm", 4) != 0)
        return err_set(err, "not a WebAssembly module: it does not start with the \\0asm magic");
    static const uint8_t core[4] = {1, 0, 0, 0};
    if (memcmp(wasm + 4, core, 4) == 0) {
        *kind = WASMRT_CORE_MODULE;
        return 0;
    }
    if (wasm[6] == 1 && wasm[7] == 0) {
        *kind = WASMRT_COMPONENT;
        return 0;
    }
    return err_set(err, "unsupported WebAssembly binary version %u", (unsigned)wasm[4]);
}

static bool has_start(const wasmtime_module_t *module)
{
    wasm_exporttype_vec_t exports;
    wasmtime_module_exports(module, &exports);
    bool found = false;
    for (size_t i = 0; i < exports.size && !found; i++) {
        const wasm_name_t *name = wasm_exporttype_name(exports.data[i]);
        const wasm_externtype_t *type = wasm_exporttype_type(exports.data[i]);
        found = name->size == 6 && memcmp(name->data, "_start", 6) == 0 &&
                wasm_externtype_kind(type) == WASM_EXTERN_FUNC;
    }
    wasm_exporttype_vec_delete(&exports);
    return found;
}

/* Names every import the linker cannot satisfy, for the error message. */
static void unknown_imports(wasmrt_t *rt, const wasmtime_module_t *module, strbuf_t *out)
{
    wasmtime_store_t *store = wasmtime_store_new(rt->engine, NULL, NULL);
    wasmtime_context_t *cx = wasmtime_store_context(store);
    wasm_importtype_vec_t imports;
    wasmtime_module_imports(module, &imports);
    int n = 0;
    for (size_t i = 0; i < imports.size; i++) {
        const wasm_name_t *mod = wasm_importtype_module(imports.data[i]);
        const wasm_name_t *name = wasm_importtype_name(imports.data[i]);
        wasmtime_extern_t item;
        if (wasmtime_linker_get(rt->linker, cx, mod->data, mod->size, name->data, name->size,
                                &item)) {
            wasmtime_extern_delete(&item);
            continue;
        }
        strbuf_printf(out, "%s%.*s::%.*s", n++ ? ", " : "", (int)mod->size, mod->data,
                      (int)name->size, name->data);
    }
    wasm_importtype_vec_delete(&imports);
    wasmtime_store_delete(store);
}

/* The compiled form of a core module or a component. */
typedef struct compiled {
    wasmtime_module_t *module;
    wasmtime_component_t *component;
} compiled_t;

static void compiled_free(compiled_t *c)
{
    if (c->module) wasmtime_module_delete(c->module);
    if (c->component) wasmtime_component_delete(c->component);
    memset(c, 0, sizeof *c);
}

static bool from_disk(wasmrt_t *rt, wasmrt_kind_t kind, const char *hex, compiled_t *out)
{
    if (!rt->cache_dir) return false;
    char *path = xasprintf("%s/%s.cwasm", rt->cache_dir, hex);
    bool ok = false;
    if (access(path, R_OK) == 0) {
        wasmtime_error_t *error =
            kind == WASMRT_COMPONENT
                ? wasmtime_component_deserialize_file(rt->engine, path, &out->component)
                : wasmtime_module_deserialize_file(rt->engine, path, &out->module);
        if (error) { /* another Wasmtime's, or damaged: compile again */
            wasmtime_error_delete(error);
            memset(out, 0, sizeof *out);
            unlink(path);
        } else {
            ok = true;
        }
    }
    free(path);
    return ok;
}

static void to_disk(wasmrt_t *rt, const char *hex, const compiled_t *c)
{
    if (!rt->cache_dir) return;
    if (fs_mkdir_p(rt->cache_dir, 0700, NULL) == -1) return;
    wasm_byte_vec_t bytes;
    wasmtime_error_t *error = c->component ? wasmtime_component_serialize(c->component, &bytes)
                                           : wasmtime_module_serialize(c->module, &bytes);
    if (error) {
        wasmtime_error_delete(error);
        return;
    }
    char *path = xasprintf("%s/%s.cwasm", rt->cache_dir, hex);
    /* Best effort: without the file, the next start compiles again. */
    fs_write_atomic(path, bytes.data, bytes.size, 0600, NULL);
    free(path);
    wasm_byte_vec_delete(&bytes);
}

static int compile(wasmrt_t *rt, wasmrt_kind_t kind, const uint8_t *wasm, size_t len,
                   compiled_t *out, err_t *err)
{
    wasmtime_error_t *error = kind == WASMRT_COMPONENT
                                  ? wasmtime_component_new(rt->engine, wasm, len, &out->component)
                                  : wasmtime_module_new(rt->engine, wasm, len, &out->module);
    if (error) {
        memset(out, 0, sizeof *out);
        return wasmrt_error(err, error,
                            kind == WASMRT_COMPONENT ? "invalid WebAssembly component"
                                                     : "invalid WebAssembly module");
    }
    return 0;
}

/* A core module's checks: _start, and imports the linker provides. */
static int prepare_core(wasmrt_t *rt, wasmtime_module_t *module, wasmtime_instance_pre_t **pre,
                        err_t *err)
{
    if (!has_start(module))
        return err_set(err, "the module has no _start export: wasmlet runs WASI command modules, "
                            "not reactors or libraries");
    wasmtime_error_t *error = wasmtime_linker_instantiate_pre(rt->linker, module, pre);
    if (!error) return 0;
    wasmtime_error_delete(error);
    strbuf_t names = STRBUF_INIT;
    unknown_imports(rt, module, &names);
    err_set(err,
            "the module imports what wasmlet does not provide (%s); a container gets "
            "WASI preview 1 (wasi_snapshot_preview1) only",
            names.len ? strbuf_str(&names) : "incompatible import types");
    strbuf_free(&names);
    return -1;
}

static wasmrt_module_t *find_locked(wasmrt_t *rt, const char *digest)
{
    lock_assert_held(&rt->lock);
    for (wasmrt_module_t *m = rt->modules; m; m = m->next)
        if (strcmp(m->digest, digest) == 0) return m;
    return NULL;
}

int wasmrt_file_kind(const char *path, wasmrt_kind_t *kind, err_t *err)
{
    uint8_t head[8];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) return err_errno(err, "open %s", path);
    ssize_t n = read(fd, head, sizeof head);
    int saved = errno;
    close(fd);
    if (n < 0) {
        errno = saved;
        return err_errno(err, "read %s", path);
    }
    return check_header(head, (size_t)n, kind, err);
}

int wasmrt_load_bytes(wasmrt_t *rt, const uint8_t *wasm, size_t len, wasmrt_module_t **out,
                      wasmrt_load_info_t *info, err_t *err)
{
    int64_t start = time_mono_ns();
    wasmrt_kind_t kind = WASMRT_CORE_MODULE;
    if (check_header(wasm, len, &kind, err) == -1) return -1;
    char hex[65];
    digest_hex(wasm, len, hex);
    char digest[7 + 64 + 1];
    snprintf(digest, sizeof digest, "sha256:%s", hex);

    wasmrt_load_source_t source = WASMRT_FROM_MEMORY;
    pthread_mutex_lock(&rt->lock);
    wasmrt_module_t *m = find_locked(rt, digest);
    if (m) m->refs++;
    pthread_mutex_unlock(&rt->lock);
    if (m) goto done;

    pthread_mutex_lock(&rt->compile_lock);
    pthread_mutex_lock(&rt->lock);
    m = find_locked(rt, digest); /* loaded while we waited for compile_lock */
    if (m) m->refs++;
    pthread_mutex_unlock(&rt->lock);
    if (m) {
        pthread_mutex_unlock(&rt->compile_lock);
        goto done;
    }

    compiled_t c = {0};
    source = WASMRT_FROM_DISK;
    if (!from_disk(rt, kind, hex, &c)) {
        source = WASMRT_FROM_COMPILER;
        if (compile(rt, kind, wasm, len, &c, err) == -1) {
            pthread_mutex_unlock(&rt->compile_lock);
            return -1;
        }
        to_disk(rt, hex, &c);
    }
    wasmtime_instance_pre_t *pre = NULL;
    wasmtime_component_export_index_t *run = NULL;
    int rc = kind == WASMRT_COMPONENT ? wasmrt_component_check(rt, c.component, &run, &kind, err)
                                      : prepare_core(rt, c.module, &pre, err);
    if (rc == -1) {
        compiled_free(&c);
        pthread_mutex_unlock(&rt->compile_lock);
        return -1;
    }
    m = xcalloc(1, sizeof *m);
    m->rt = rt;
    m->kind = kind;
    memcpy(m->digest, digest, sizeof m->digest);
    m->module = c.module;
    m->pre = pre;
    m->component = c.component;
    m->run = run;
    m->refs = 1;
    pthread_mutex_lock(&rt->lock);
    m->next = rt->modules;
    rt->modules = m;
    pthread_mutex_unlock(&rt->lock);
    pthread_mutex_unlock(&rt->compile_lock);
done:
    if (info) {
        info->source = source;
        info->load_ns = time_mono_ns() - start;
    }
    *out = m;
    return 0;
}

int wasmrt_load_file(wasmrt_t *rt, const char *path, wasmrt_module_t **out,
                     wasmrt_load_info_t *info, err_t *err)
{
    int64_t start = time_mono_ns();
    char *data;
    size_t len;
    if (fs_read_all(path, &data, &len, err) == -1) return -1;
    int rc = wasmrt_load_bytes(rt, (const uint8_t *)data, len, out, info, err);
    free(data);
    if (rc == 0 && info) info->load_ns = time_mono_ns() - start;
    return rc;
}

/* Frees idle modules beyond the first IDLE_KEEP. New modules are pushed at
 * the head of the list, so the ones freed are the longest loaded. */
static void trim_locked(wasmrt_t *rt)
{
    lock_assert_held(&rt->lock);
    size_t idle = 0;
    wasmrt_module_t **pp = &rt->modules;
    while (*pp) {
        wasmrt_module_t *m = *pp;
        if (m->refs == 0 && ++idle > IDLE_KEEP) {
            *pp = m->next;
            wasmrt_module_free(m);
            continue;
        }
        pp = &m->next;
    }
}

void wasmrt_module_release(wasmrt_module_t *mod)
{
    if (!mod) return;
    wasmrt_t *rt = mod->rt;
    pthread_mutex_lock(&rt->lock);
    if (--mod->refs == 0) trim_locked(rt);
    pthread_mutex_unlock(&rt->lock);
}

void wasmrt_module_free(wasmrt_module_t *m)
{
    if (m->pre) wasmtime_instance_pre_delete(m->pre);
    if (m->module) wasmtime_module_delete(m->module);
    if (m->run) wasmtime_component_export_index_delete(m->run);
    if (m->component) wasmtime_component_delete(m->component);
    if (m->served) wasmtime_component_delete(m->served);
    free(m);
}

const char *wasmrt_module_digest(const wasmrt_module_t *mod)
{
    return mod->digest;
}

wasmrt_kind_t wasmrt_module_kind(const wasmrt_module_t *mod)
{
    return mod->kind;
}

const char *wasmrt_kind_name(wasmrt_kind_t kind)
{
    switch (kind) {
    case WASMRT_CORE_MODULE:
        return "module";
    case WASMRT_COMPONENT:
        return "component";
    case WASMRT_HTTP_COMPONENT:
        return "wasi:http component";
    }
    return "module";
}

size_t wasmrt_loaded_modules(wasmrt_t *rt)
{
    size_t n = 0;
    pthread_mutex_lock(&rt->lock);
    for (wasmrt_module_t *m = rt->modules; m; m = m->next)
        n++;
    pthread_mutex_unlock(&rt->lock);
    return n;
}
