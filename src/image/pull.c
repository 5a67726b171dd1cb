/* pull.c: from a reference to a verified module in the store.
 *
 * The steps, each cheap to skip when its answer is already known:
 *   1. policy: Never and IfNotPresent answer from the index when they can;
 *   2. resolve: Always asks HEAD for the digest the tag names now, and stops
 *      there when the store already has that manifest's module;
 *   3. GET the manifest, check its digest, pick the wasm entry of an index;
 *   4. find the module: a wasm layer (CNCF artifact or wasm-to-oci) is the
 *      module itself and downloads straight into the store; an ordinary
 *      image has its layers downloaded to tmp/ and the Entrypoint's .wasm
 *      extracted from them;
 *   5. record reference and digests in the index.
 *
 * Several pods starting at once often name the same image, so pulls of one
 * reference are shared: the first thread does the work while the others
 * wait on the store's condition variable and take its result (or error).
 * Only pulls that would present the same credentials share, so a pod never
 * inherits another pod's 401, nor a private image through another pod's
 * secret while the pull is in flight. (Once a module is in the store,
 * IfNotPresent serves it to any pod, as the kubelet does by default.)
 *
 * With several credentials for a registry (pull secrets, node config) each
 * is tried in turn while the registry answers 401 or 403, as the kubelet
 * does; without any, the pull is anonymous. */
#include "image/manifest.h"
#include "image/registry.h"
#include "image/store.h"
#include "image/tar.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX (4u << 20)
#define LAYERS_MAX 256
#define CREDS_MAX 16

struct image_inflight {
    char *key;
    int refs;
    bool done;
    int rc;
    err_t err;
    image_pulled_t result;
    image_inflight_t *next;
};

void image_pulled_free(image_pulled_t *p)
{
    if (!p) return;
    free(p->ref);
    free(p->repo_digest);
    free(p->module_path);
    memset(p, 0, sizeof *p);
}

static void pulled_copy(image_pulled_t *dst, const image_pulled_t *src)
{
    *dst = *src;
    dst->ref = src->ref ? xstrdup(src->ref) : NULL;
    dst->repo_digest = src->repo_digest ? xstrdup(src->repo_digest) : NULL;
    dst->module_path = src->module_path ? xstrdup(src->module_path) : NULL;
}

static void fill_result(image_store_t *s, const image_ref_t *ref, const char *key,
                        const image_index_entry_t *e, bool from_store, image_pulled_t *out)
{
    image_pulled_free(out);
    out->ref = xstrdup(key);
    out->repo_digest = xasprintf("%s/%s@%s", ref->registry, ref->repository, e->manifest);
    snprintf(out->image_id, sizeof out->image_id, "%s", e->manifest);
    snprintf(out->module_digest, sizeof out->module_digest, "%s", e->module);
    out->module_path = image_store_blob_path(s, e->module);
    struct stat st;
    out->module_size = stat(out->module_path, &st) == 0 ? (uint64_t)st.st_size : 0;
    out->format = e->format;
    out->from_store = from_store;
}

/* Remembers that key (and its repo digest) lead to e; manifests lists the
 * digests (index and platform manifest) that lead to e->module. */
static int record(image_store_t *s, const image_ref_t *ref, const char *key,
                  const image_index_entry_t *e, const char *platform_digest, err_t *err)
{
    char *by_digest = xasprintf("%s/%s@%s", ref->registry, ref->repository, e->manifest);
    const char *refs[] = {key, by_digest};
    const char *manifests[] = {e->manifest, platform_digest};
    int rc = image_index_put(s, refs, strcmp(key, by_digest) == 0 ? 1 : 2, manifests, 2, e, err);
    free(by_digest);
    return rc;
}

/* --- blobs ------------------------------------------------------------------ */

static int writer_sink(void *arg, const void *data, size_t len, err_t *err)
{
    return image_blob_write(arg, data, len, err);
}

/* Downloads a blob, verified, into the store (install) or into a temp file
 * whose path goes to *tmp_out. */
static int download_blob(image_store_t *s, image_registry_t *r, const image_desc_t *d, bool install,
                         char **tmp_out, err_t *err)
{
    image_blob_writer_t w;
    if (d->size > IMAGE_BLOB_MAX)
        return err_set(err,
                       "blob %s: its descriptor declares %lld bytes, more than the %d MiB a "
                       "module or layer may have",
                       d->digest, (long long)d->size, (int)(IMAGE_BLOB_MAX >> 20));
    if (image_blob_begin(s, d->digest, d->size, &w, err) == -1) return -1;
    int rc = image_registry_get_blob(r, d->digest, writer_sink, &w, err);
    if (rc == 0) rc = image_blob_finish(&w, err);
    if (rc == 0 && install) rc = image_blob_install(&w, err);
    if (rc == 0 && tmp_out) {
        *tmp_out = w.tmp_path;
        w.tmp_path = NULL;
    }
    image_blob_abort(&w);
    if (rc == -1) err_prefix(err, "blob %s", d->digest);
    return rc;
}

typedef struct mem_sink {
    strbuf_t buf;
    size_t max;
    image_sha256_t sha;
} mem_sink_t;

static int mem_write(void *arg, const void *data, size_t len, err_t *err)
{
    mem_sink_t *m = arg;
    if (m->buf.len + len > m->max) return err_set(err, "larger than %zu bytes", m->max);
    image_sha256_update(&m->sha, data, len);
    strbuf_append(&m->buf, data, len);
    return 0;
}

/* A small blob (an image config) into memory, verified. */
static int fetch_small_blob(image_registry_t *r, const image_desc_t *d, char **data, size_t *len,
                            err_t *err)
{
    mem_sink_t m = {STRBUF_INIT, CONFIG_MAX, {0}};
    if (d->size > (int64_t)CONFIG_MAX) return err_set(err, "blob %s: config too large", d->digest);
    image_sha256_init(&m.sha);
    int rc = image_registry_get_blob(r, d->digest, mem_write, &m, err);
    char got[IMAGE_DIGEST_MAX];
    image_sha256_final(&m.sha, got);
    if (rc == 0 && strcmp(got, d->digest) != 0)
        rc = err_set(err, "digest mismatch: expected %s, got %s", d->digest, got);
    if (rc == 0 && m.buf.len != (size_t)d->size)
        rc = err_set(err, "size mismatch: expected %lld bytes, got %zu", (long long)d->size,
                     m.buf.len);
    if (rc == -1) {
        err_prefix(err, "blob %s", d->digest);
        strbuf_free(&m.buf);
        return -1;
    }
    *len = m.buf.len;
    *data = strbuf_take(&m.buf);
    return 0;
}

/* --- the module of a manifest ----------------------------------------------- */

static int not_wasm(const image_manifest_t *m, const char *why, err_t *err)
{
    strbuf_t types = STRBUF_INIT;
    for (size_t i = 0; i < m->n_layers; i++)
        strbuf_printf(&types, "%s%s", i ? ", " : "", m->layers[i].media_type);
    err_set(err,
            "manifest media type %s is not a wasm module: config media type %s, layer media types "
            "[%s]: %s",
            m->media_type, m->config.media_type[0] ? m->config.media_type : "(none)",
            strbuf_str(&types), why);
    strbuf_free(&types);
    return -1;
}

char *image_config_entrypoint(const image_manifest_t *m, const char *config, size_t len, err_t *err)
{
    json_t *root = json_loadb(config, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        err_set(err, "image config is not a JSON object");
        return NULL;
    }
    json_t *c = json_object_get(root, "config");
    json_t *argv = json_object_get(c, "Entrypoint");
    if (!json_array_size(argv)) argv = json_object_get(c, "Cmd");
    const char *prog = json_string_value(json_array_get(argv, 0));
    const char *wd = json_string_value(json_object_get(c, "WorkingDir"));
    const char *os = json_string_value(json_object_get(root, "os"));
    const char *arch = json_string_value(json_object_get(root, "architecture"));
    char *out = NULL;
    size_t n = prog ? strlen(prog) : 0;
    if (n < 5 || strcmp(prog + n - 5, ".wasm") != 0) {
        char *why = prog ? xasprintf("its entrypoint \"%s\" (platform %s/%s) is not a .wasm file",
                                     prog, os ? os : "?", arch ? arch : "?")
                         : xasprintf("its config has no Entrypoint or Cmd (platform %s/%s)",
                                     os ? os : "?", arch ? arch : "?");
        not_wasm(m, why, err);
        free(why);
    } else if (prog[0] == '/') {
        out = xstrdup(prog);
    } else {
        /* A relative WorkingDir is taken from the root, as a runtime
         * would: the result is always an absolute path. */
        bool wd_abs = wd && wd[0] == '/';
        out = xasprintf("%s%s%s%s", wd_abs ? "" : "/", wd ? wd : "",
                        wd && *wd && wd[strlen(wd) - 1] != '/' ? "/" : "", prog);
    }
    json_decref(root);
    return out;
}

static bool tar_layer_type(const char *t)
{
    return strstr(t, ".tar") || strcmp(t, MT_DOCKER_LAYER_GZIP) == 0 ||
           strcmp(t, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") == 0;
}

/* An ordinary image: download its layers and extract the Entrypoint's .wasm. */
static int module_from_layers(image_store_t *s, image_registry_t *r, const image_manifest_t *m,
                              char module[IMAGE_DIGEST_MAX], err_t *err)
{
    if (m->n_layers == 0) return not_wasm(m, "it has no layers", err);
    if (m->n_layers > LAYERS_MAX) return err_set(err, "image has %zu layers", m->n_layers);
    for (size_t i = 0; i < m->n_layers; i++) {
        const char *t = m->layers[i].media_type;
        if (strstr(t, "zstd"))
            return err_set(err, "layer %zu: media type %s: zstd layers are not supported", i + 1,
                           t);
        if (!tar_layer_type(t)) return not_wasm(m, "a layer is neither wasm nor tar", err);
    }
    char *config = NULL;
    size_t config_len = 0;
    if (fetch_small_blob(r, &m->config, &config, &config_len, err) == -1) return -1;
    char *path = image_config_entrypoint(m, config, config_len, err);
    free(config);
    if (!path) return -1;

    int rc = -1;
    int fd = -1;
    char *out_path = NULL;
    char **files = xcalloc(m->n_layers, sizeof *files);
    for (size_t i = 0; i < m->n_layers; i++)
        if (download_blob(s, r, &m->layers[i], false, &files[i], err) == -1) goto out;
    out_path = fs_join(s->tmp, "module-XXXXXX");
    fd = mkostemp(out_path, O_CLOEXEC);
    if (fd == -1) {
        err_errno(err, "create %s", out_path);
        goto out;
    }
    if (image_tar_extract((const char *const *)files, m->n_layers, path, fd, err) == -1) {
        err_prefix(err, "entrypoint %s", path);
        goto out;
    }
    if (fsync(fd) == -1) {
        err_errno(err, "write %s", out_path);
        goto out;
    }
    close(fd);
    fd = -1;
    if (image_sha256_file(out_path, module, NULL, err) == -1) goto out;
    char *dest = image_store_blob_path(s, module);
    if (rename(out_path, dest) == -1) {
        err_errno(err, "install %s", dest);
        free(dest);
        goto out;
    }
    free(dest);
    rc = 0;
out:
    if (fd != -1) close(fd);
    if (out_path) unlink(out_path);
    free(out_path);
    for (size_t i = 0; i < m->n_layers; i++) {
        if (files[i]) unlink(files[i]);
        free(files[i]);
    }
    free(files);
    free(path);
    return rc;
}

static int module_of(image_store_t *s, image_registry_t *r, const image_manifest_t *m,
                     image_index_entry_t *e, err_t *err)
{
    const image_desc_t *wasm = NULL;
    size_t n_wasm = 0;
    for (size_t i = 0; i < m->n_layers; i++) {
        const char *t = m->layers[i].media_type;
        if (strcmp(t, MT_WASM_LAYER) == 0 || strcmp(t, MT_WASM_TO_OCI_LAYER) == 0) {
            if (!wasm) wasm = &m->layers[i];
            n_wasm++;
        }
    }
    if (n_wasm > 1)
        return err_set(err, "the manifest has %zu wasm layers; a container runs one module",
                       n_wasm);
    if (wasm) {
        e->format = strcmp(wasm->media_type, MT_WASM_LAYER) == 0 ? IMAGE_FORMAT_WASM_ARTIFACT
                                                                 : IMAGE_FORMAT_WASM_TO_OCI;
        snprintf(e->module, sizeof e->module, "%s", wasm->digest);
        if (image_store_has_blob(s, wasm->digest)) return 0;
        return download_blob(s, r, wasm, true, NULL, err);
    }
    const char *ct = m->config.media_type;
    if (strcmp(ct, MT_OCI_CONFIG) == 0 || strcmp(ct, MT_DOCKER_CONFIG) == 0) {
        e->format = IMAGE_FORMAT_OCI_IMAGE;
        return module_from_layers(s, r, m, e->module, err);
    }
    return not_wasm(m,
                    "wasmlet runs application/wasm or " MT_WASM_TO_OCI_LAYER
                    " layers, or images whose Entrypoint is a .wasm file",
                    err);
}

/* --- resolving ---------------------------------------------------------------- */

static int get_manifest(image_registry_t *r, const char *reference, const char *want,
                        image_manifest_t *out, char digest[IMAGE_DIGEST_MAX], err_t *err)
{
    image_registry_manifest_t m;
    if (image_registry_get_manifest(r, reference, false, &m, err) == -1) return -1;
    image_sha256_buf(m.data, m.len, digest);
    int rc = 0;
    if (want && strcmp(want, digest) != 0)
        rc = err_set(err, "manifest digest mismatch: expected %s, got %s", want, digest);
    else if (!want && m.header_digest[0] && strcmp(m.header_digest, digest) != 0)
        rc = err_set(err, "manifest digest mismatch: the registry says %s, the content is %s",
                     m.header_digest, digest);
    if (rc == 0) rc = image_manifest_parse(m.data, m.len, m.content_type, out, err);
    image_registry_manifest_free(&m);
    return rc;
}

static int fetch_from(image_store_t *s, image_registry_t *r, const image_ref_t *ref,
                      const char *key, bool always, image_pulled_t *out, err_t *err)
{
    const char *reference = ref->digest ? ref->digest : ref->tag;
    image_index_entry_t e;
    if (ref->digest) {
        if (image_index_get_manifest(s, ref->digest, &e) == 0) goto known;
    } else if (always) {
        /* HEAD is the cheap question (and not rate-limited where GETs are). */
        image_registry_manifest_t hm;
        err_t herr;
        if (image_registry_get_manifest(r, reference, true, &hm, &herr) == 0) {
            bool known =
                hm.header_digest[0] && image_index_get_manifest(s, hm.header_digest, &e) == 0;
            image_registry_manifest_free(&hm);
            if (known) goto known;
        }
    }

    image_manifest_t m, child;
    char top[IMAGE_DIGEST_MAX], platform[IMAGE_DIGEST_MAX] = "";
    if (get_manifest(r, reference, ref->digest, &m, top, err) == -1)
        return err_prefix(err, "resolve %s", key);
    if (m.is_index) {
        const image_desc_t *d;
        if (image_manifest_select(&m, &d, err) == -1) {
            image_manifest_free(&m);
            return err_prefix(err, "%s", key);
        }
        snprintf(platform, sizeof platform, "%s", d->digest);
        image_manifest_free(&m);
        if (image_index_get_manifest(s, platform, &e) == 0) {
            snprintf(e.manifest, sizeof e.manifest, "%s", top);
            if (record(s, ref, key, &e, platform, err) == -1) return -1;
            fill_result(s, ref, key, &e, false, out);
            return 0;
        }
        char got[IMAGE_DIGEST_MAX];
        if (get_manifest(r, platform, platform, &child, got, err) == -1)
            return err_prefix(err, "%s: platform manifest", key);
        if (child.is_index) {
            image_manifest_free(&child);
            return err_set(err, "%s: an index inside an index is not supported", key);
        }
        m = child;
    }
    memset(&e, 0, sizeof e);
    snprintf(e.manifest, sizeof e.manifest, "%s", top);
    int rc = module_of(s, r, &m, &e, err);
    image_manifest_free(&m);
    if (rc == -1) return err_prefix(err, "%s", key);
    if (record(s, ref, key, &e, platform, err) == -1) return -1;
    fill_result(s, ref, key, &e, false, out);
    return 0;
known: /* a digest the store knows: by reference (no request) or by HEAD */
    if (record(s, ref, key, &e, NULL, err) == -1) return -1;
    fill_result(s, ref, key, &e, ref->digest != NULL, out);
    return 0;
}

static int fetch(image_store_t *s, const image_ref_t *ref, const char *key, bool always,
                 const image_cred_t *const *creds, size_t n, image_pulled_t *out, err_t *err)
{
    size_t attempts = n ? n : 1;
    int rc = -1;
    for (size_t i = 0; i < attempts; i++) {
        image_registry_options_t o = {.endpoint = image_ref_endpoint(ref),
                                      .repository = ref->repository,
                                      .cred = n ? creds[i] : NULL,
                                      .insecure = (const char *const *)s->insecure,
                                      .ca_file = s->ca_file,
                                      .stats = &s->stats};
        image_registry_t *r = image_registry_open(&o);
        if (!r) return err_set(err, "cannot create an HTTP client");
        rc = fetch_from(s, r, ref, key, always, out, err);
        long status = image_registry_last_status(r);
        image_registry_close(r);
        if (rc == 0 || (status != 401 && status != 403)) break;
    }
    return rc;
}

/* Names the credentials a pull would present, so that only pulls presenting
 * the same ones share work. */
static char *inflight_key(const char *key, const image_cred_t *const *creds, size_t n)
{
    image_sha256_t h;
    image_sha256_init(&h);
    for (size_t i = 0; i < n; i++) {
        const char *parts[] = {creds[i]->registry, creds[i]->username, creds[i]->password,
                               creds[i]->identity_token, creds[i]->registry_token};
        for (size_t j = 0; j < 5; j++) {
            if (parts[j]) image_sha256_update(&h, parts[j], strlen(parts[j]));
            image_sha256_update(&h, "", 1);
        }
    }
    char d[IMAGE_DIGEST_MAX];
    image_sha256_final(&h, d);
    return xasprintf("%s %.16s", key, image_digest_hex(d));
}

/* --- shared pulls ----------------------------------------------------------------- */

static void inflight_release(image_inflight_t *f)
{
    if (--f->refs > 0) return;
    free(f->key);
    image_pulled_free(&f->result);
    free(f);
}

static int pull_shared(image_store_t *s, const image_ref_t *ref, const char *key, bool always,
                       const image_auth_t *pod_auth, image_pulled_t *out, err_t *err)
{
    image_auth_t all = IMAGE_AUTH_INIT;
    image_auth_append(&all, pod_auth);
    image_auth_append(&all, &s->node_auth);
    const image_cred_t *creds[CREDS_MAX];
    size_t n = image_auth_match(&all, ref->registry, ref->repository, creds, CREDS_MAX);
    char *fkey = inflight_key(key, creds, n);

    pthread_mutex_lock(&s->lock);
    image_inflight_t *f = s->inflight;
    while (f && strcmp(f->key, fkey) != 0)
        f = f->next;
    if (f) {
        f->refs++;
        while (!f->done)
            pthread_cond_wait(&s->cond, &s->lock);
    } else {
        f = xcalloc(1, sizeof *f);
        f->key = xstrdup(fkey);
        f->refs = 1;
        f->next = s->inflight;
        s->inflight = f;
        pthread_mutex_unlock(&s->lock);
        err_clear(&f->err);
        f->rc = fetch(s, ref, key, always, creds, n, &f->result, &f->err);
        pthread_mutex_lock(&s->lock);
        f->done = true;
        for (image_inflight_t **p = &s->inflight; *p; p = &(*p)->next) {
            if (*p == f) {
                *p = f->next;
                break;
            }
        }
        pthread_cond_broadcast(&s->cond);
    }
    int rc = f->rc;
    if (rc == 0)
        pulled_copy(out, &f->result);
    else if (err)
        *err = f->err;
    inflight_release(f);
    pthread_mutex_unlock(&s->lock);
    free(fkey);
    image_auth_free(&all);
    return rc;
}

const char *image_pull_failure_reason(image_pull_failure_t f)
{
    switch (f) {
    case IMAGE_PULL_INVALID_NAME:
        return "InvalidImageName";
    case IMAGE_PULL_NEVER_NOT_PRESENT:
        return "ErrImageNeverPull";
    case IMAGE_PULL_FAILED:
        break;
    }
    return "ErrImagePull";
}

/* Whether the store knows ref (by its name, or by its digest). */
static bool known(image_store_t *s, const image_ref_t *ref, const char *key, image_index_entry_t *e)
{
    return image_index_get_ref(s, key, e) == 0 ||
           (ref->digest && image_index_get_manifest(s, ref->digest, e) == 0);
}

bool image_present(image_store_t *s, const char *text, image_pull_policy_t policy)
{
    if (policy == IMAGE_PULL_ALWAYS) return false;
    image_ref_t ref;
    err_t err;
    if (image_ref_parse(text, &ref, &err) == -1) return false;
    char *key = image_ref_string(&ref);
    image_index_entry_t e;
    bool present = known(s, &ref, key, &e);
    free(key);
    image_ref_free(&ref);
    return present;
}

int image_pull(image_store_t *s, const char *text, image_pull_policy_t policy,
               const image_auth_t *pod_auth, image_pulled_t *out, err_t *err)
{
    memset(out, 0, sizeof *out);
    image_ref_t ref;
    if (image_ref_parse(text, &ref, err) == -1) {
        out->failure = IMAGE_PULL_INVALID_NAME;
        return -1;
    }
    char *key = image_ref_string(&ref);
    int rc = 0;
    image_index_entry_t e;
    if (policy != IMAGE_PULL_ALWAYS && known(s, &ref, key, &e)) {
        fill_result(s, &ref, key, &e, true, out);
    } else if (policy == IMAGE_PULL_NEVER) {
        out->failure = IMAGE_PULL_NEVER_NOT_PRESENT;
        rc = err_set(err, "image \"%s\" is not present in the store and the pull policy is Never",
                     text);
    } else {
        rc = pull_shared(s, &ref, key, policy == IMAGE_PULL_ALWAYS, pod_auth, out, err);
    }
    free(key);
    image_ref_free(&ref);
    return rc;
}
