/* store.c: the node's content store of wasm modules (see image.h, store.h).
 *
 * Layout under the store directory:
 *   blobs/sha256/<hex>    module bytes; the name is their SHA-256
 *   compiled/<hex>.cwasm  the compiled form, written by wasm/
 *   index.json            which reference and manifest lead to which module
 *   tmp/                  downloads in progress
 *
 * Crash safety comes from ordering: a blob is written to tmp/, fsynced,
 * verified and only then renamed into blobs/, and the index is written
 * (atomically) after the blob it names exists. A crash leaves at worst a
 * stray temp file (tmp/ is emptied at open) or a blob no reference names
 * (GC reclaims it). The index is a cache of registry answers, so an
 * unreadable one is dropped and rebuilt by the next pulls.
 *
 * "Last used" is the blob file's mtime: every pull or lookup that returns
 * a module touches it, and GC removes unreferenced modules whose mtime is
 * older than the grace period. That keeps GC state out of the index and
 * survives restarts for free.
 *
 * The index is small (one entry per reference ever pulled) and rewritten
 * whole on each change, under the store lock. One wasmlet process owns a
 * store; two processes sharing one directory would each keep their own
 * idea of the index. */
#include "image/store.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/time.h"

static void load_index(image_store_t *s)
{
    json_t *root = json_load_file(s->index_path, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        root = json_object();
    }
    if (!json_is_object(json_object_get(root, "refs")))
        json_object_set_new(root, "refs", json_object());
    if (!json_is_object(json_object_get(root, "manifests")))
        json_object_set_new(root, "manifests", json_object());
    s->index = root;
}

static int save_index(image_store_t *s, err_t *err)
{
    char *text = json_dumps(s->index, JSON_INDENT(1) | JSON_SORT_KEYS);
    if (!text) return err_set(err, "encode %s", s->index_path);
    int rc = fs_write_atomic(s->index_path, text, strlen(text), 0644, err);
    free(text);
    return rc;
}

int image_store_open(image_store_t **out, const image_store_options_t *opts, err_t *err)
{
    *out = NULL;
    if (!opts || !opts->dir || !*opts->dir) return err_set(err, "image store: no directory given");
    image_store_t *s = xcalloc(1, sizeof *s);
    s->dir = xstrdup(opts->dir);
    char *blobs_root = fs_join(s->dir, "blobs");
    s->blobs = fs_join(blobs_root, "sha256");
    free(blobs_root);
    s->compiled = fs_join(s->dir, "compiled");
    s->tmp = fs_join(s->dir, "tmp");
    s->index_path = fs_join(s->dir, "index.json");
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    size_t n = 0;
    while (opts->insecure_registries && opts->insecure_registries[n])
        n++;
    s->insecure = xcalloc(n + 1, sizeof *s->insecure);
    for (size_t i = 0; i < n; i++)
        s->insecure[i] = xstrdup(opts->insecure_registries[i]);
    s->ca_file = opts->ca_file ? xstrdup(opts->ca_file) : NULL;
    image_auth_append(&s->node_auth, opts->node_auth);
    if (fs_mkdir_p(s->blobs, 0755, err) == -1 || fs_mkdir_p(s->compiled, 0755, err) == -1 ||
        fs_rm_rf(s->tmp, err) == -1 || fs_mkdir_p(s->tmp, 0700, err) == -1) {
        err_prefix(err, "image store %s", s->dir);
        image_store_close(s);
        return -1;
    }
    load_index(s);
    *out = s;
    return 0;
}

void image_store_close(image_store_t *s)
{
    if (!s) return;
    json_decref(s->index);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    for (size_t i = 0; s->insecure && s->insecure[i]; i++)
        free(s->insecure[i]);
    free(s->insecure);
    free(s->ca_file);
    image_auth_free(&s->node_auth);
    free(s->dir);
    free(s->blobs);
    free(s->compiled);
    free(s->tmp);
    free(s->index_path);
    free(s);
}

const char *image_store_dir(const image_store_t *s)
{
    return s->dir;
}

char *image_store_blob_path(const image_store_t *s, const char *digest)
{
    return fs_join(s->blobs, image_digest_hex(digest));
}

char *image_store_compiled_path(const image_store_t *s, const char *module_digest)
{
    const char *hex =
        image_digest_valid(module_digest) ? image_digest_hex(module_digest) : module_digest;
    return xasprintf("%s/%s.cwasm", s->compiled, hex);
}

bool image_store_has_blob(image_store_t *s, const char *digest)
{
    if (!image_digest_valid(digest)) return false;
    char *path = image_store_blob_path(s, digest);
    bool yes = utimensat(AT_FDCWD, path, NULL, 0) == 0;
    free(path);
    return yes;
}

void image_store_stats(image_store_t *s, image_store_stats_t *out)
{
    out->manifest_requests = __atomic_load_n(&s->stats.manifest_requests, __ATOMIC_RELAXED);
    out->blob_downloads = __atomic_load_n(&s->stats.blob_downloads, __ATOMIC_RELAXED);
    out->bytes_downloaded = __atomic_load_n(&s->stats.bytes_downloaded, __ATOMIC_RELAXED);
}

/* --- blob writer ------------------------------------------------------------ */

int image_blob_begin(image_store_t *s, const char *expected, int64_t expected_size,
                     image_blob_writer_t *w, err_t *err)
{
    memset(w, 0, sizeof *w);
    w->store = s;
    w->fd = -1;
    snprintf(w->expected, sizeof w->expected, "%s", expected ? expected : "");
    w->expected_size = expected_size;
    w->tmp_path = fs_join(s->tmp, "blob-XXXXXX");
    w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
    if (w->fd == -1) {
        err_errno(err, "create %s", w->tmp_path);
        free(w->tmp_path);
        w->tmp_path = NULL;
        return -1;
    }
    image_sha256_init(&w->sha);
    return 0;
}

int image_blob_write(image_blob_writer_t *w, const void *data, size_t len, err_t *err)
{
    if (w->expected_size >= 0 && w->written + len > (uint64_t)w->expected_size)
        return err_set(err, "blob %s: more than the %lld bytes its descriptor declares",
                       w->expected[0] ? w->expected : "", (long long)w->expected_size);
    image_sha256_update(&w->sha, data, len);
    const char *p = data;
    while (len) {
        ssize_t n = write(w->fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return err_errno(err, "write %s", w->tmp_path);
        p += n;
        len -= (size_t)n;
        w->written += (uint64_t)n;
    }
    return 0;
}

int image_blob_finish(image_blob_writer_t *w, err_t *err)
{
    image_sha256_final(&w->sha, w->digest);
    int rc = fsync(w->fd);
    int rc2 = close(w->fd);
    w->fd = -1;
    if (rc == -1 || rc2 == -1) return err_errno(err, "write %s", w->tmp_path);
    if (w->expected[0] && strcmp(w->expected, w->digest) != 0)
        return err_set(err, "digest mismatch: expected %s, got %s", w->expected, w->digest);
    if (w->expected_size >= 0 && w->written != (uint64_t)w->expected_size)
        return err_set(err, "size mismatch for %s: expected %lld bytes, got %llu", w->digest,
                       (long long)w->expected_size, (unsigned long long)w->written);
    return 0;
}

int image_blob_install(image_blob_writer_t *w, err_t *err)
{
    char *path = image_store_blob_path(w->store, w->digest);
    if (rename(w->tmp_path, path) == -1) {
        err_errno(err, "install %s", path);
        free(path);
        return -1;
    }
    free(path);
    free(w->tmp_path);
    w->tmp_path = NULL;
    return 0;
}

void image_blob_abort(image_blob_writer_t *w)
{
    if (w->sha.ctx) image_sha256_discard(&w->sha);
    if (w->fd != -1) close(w->fd);
    w->fd = -1;
    if (w->tmp_path) unlink(w->tmp_path);
    free(w->tmp_path);
    w->tmp_path = NULL;
}

/* --- index ---------------------------------------------------------------- */

static int entry_from_json(image_store_t *s, json_t *o, image_index_entry_t *out)
{
    const char *manifest = json_string_value(json_object_get(o, "manifest"));
    const char *module = json_string_value(json_object_get(o, "module"));
    const char *format = json_string_value(json_object_get(o, "format"));
    if (!module || !image_digest_valid(module) || !image_store_has_blob(s, module)) return -1;
    memset(out, 0, sizeof *out);
    snprintf(out->manifest, sizeof out->manifest, "%s", manifest ? manifest : "");
    snprintf(out->module, sizeof out->module, "%s", module);
    if (!format || image_format_parse(format, &out->format) == -1)
        out->format = IMAGE_FORMAT_WASM_ARTIFACT;
    return 0;
}

int image_index_get_ref(image_store_t *s, const char *ref, image_index_entry_t *out)
{
    pthread_mutex_lock(&s->lock);
    json_t *o = json_at(s->index, "refs", ref);
    int rc = o ? entry_from_json(s, o, out) : -1;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int image_index_get_manifest(image_store_t *s, const char *digest, image_index_entry_t *out)
{
    pthread_mutex_lock(&s->lock);
    json_t *o = json_at(s->index, "manifests", digest);
    int rc = o ? entry_from_json(s, o, out) : -1;
    if (rc == 0) snprintf(out->manifest, sizeof out->manifest, "%s", digest);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int image_index_put(image_store_t *s, const char *const *refs, size_t n_refs,
                    const char *const *manifests, size_t n_manifests, const image_index_entry_t *e,
                    err_t *err)
{
    char when[40];
    time_format_rfc3339(when, sizeof when, time_now_ns());
    pthread_mutex_lock(&s->lock);
    json_t *r = json_object_get(s->index, "refs");
    json_t *m = json_object_get(s->index, "manifests");
    for (size_t i = 0; i < n_refs; i++)
        json_object_set_new(r, refs[i],
                            json_pack("{s:s, s:s, s:s, s:s}", "manifest", e->manifest, "module",
                                      e->module, "format", image_format_name(e->format), "pulled",
                                      when));
    for (size_t i = 0; i < n_manifests; i++)
        if (manifests[i] && manifests[i][0])
            json_object_set_new(m, manifests[i],
                                json_pack("{s:s, s:s}", "module", e->module, "format",
                                          image_format_name(e->format)));
    int rc = save_index(s, err);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* --- garbage collection ------------------------------------------------------ */

static void keep_module_of(json_t *keep, json_t *entry)
{
    const char *module = json_string_value(json_object_get(entry, "module"));
    if (module) json_object_set_new(keep, module, json_true());
}

/* Turns what the caller says is in use (module digests, manifest digests,
 * repo digests, references) into the set of module digests to keep. */
static json_t *keep_set(image_store_t *s, const char *const *in_use, size_t n)
{
    json_t *keep = json_object();
    json_t *refs = json_object_get(s->index, "refs");
    json_t *manifests = json_object_get(s->index, "manifests");
    for (size_t i = 0; i < n; i++) {
        const char *u = in_use[i];
        if (!u) continue;
        if (image_digest_valid(u)) {
            json_object_set_new(keep, u, json_true());
            keep_module_of(keep, json_object_get(manifests, u));
            continue;
        }
        keep_module_of(keep, json_object_get(refs, u));
        const char *at = strchr(u, '@');
        if (at) keep_module_of(keep, json_object_get(manifests, at + 1));
        image_ref_t ref;
        if (image_ref_parse(u, &ref, NULL) == 0) {
            char *norm = image_ref_string(&ref);
            keep_module_of(keep, json_object_get(refs, norm));
            free(norm);
            image_ref_free(&ref);
        }
    }
    return keep;
}

static void drop_index_entries(json_t *map, const char *module)
{
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(map, tmp, key, v)
    {
        const char *m = json_string_value(json_object_get(v, "module"));
        if (m && strcmp(m, module) == 0) json_object_del(map, key);
    }
}

/* A compiled file "<hex>.cwasm" (or "sha256:<hex>.cwasm") whose module is
 * gone is garbage too. */
static void sweep_compiled(image_store_t *s)
{
    DIR *d = opendir(s->compiled);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        size_t n = strlen(name);
        if (n < 6 || strcmp(name + n - 6, ".cwasm") != 0) continue;
        char *stem = xstrndup(name, n - 6);
        const char *hex =
            strncmp(stem, "sha256:", 7) == 0 || strncmp(stem, "sha256-", 7) == 0 ? stem + 7 : stem;
        char *digest = xasprintf("sha256:%s", hex);
        char *blob = image_digest_valid(digest) ? image_store_blob_path(s, digest) : NULL;
        if (blob && access(blob, F_OK) == -1 && errno == ENOENT) {
            char *path = fs_join(s->compiled, name);
            unlink(path);
            free(path);
        }
        free(blob);
        free(digest);
        free(stem);
    }
    closedir(d);
}

int image_store_gc(image_store_t *s, const char *const *in_use, size_t n_in_use, int64_t grace_ns,
                   image_gc_result_t *result, err_t *err)
{
    image_gc_result_t res = {0};
    int64_t now = time_now_ns();
    pthread_mutex_lock(&s->lock);
    json_t *keep = keep_set(s, in_use, n_in_use);
    DIR *d = opendir(s->blobs);
    if (!d) {
        err_errno(err, "image gc: open %s", s->blobs);
        json_decref(keep);
        pthread_mutex_unlock(&s->lock);
        return -1;
    }
    bool changed = false;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strlen(e->d_name) != 64) continue;
        char digest[IMAGE_DIGEST_MAX];
        memcpy(digest, "sha256:", 7);
        memcpy(digest + 7, e->d_name, 65);
        if (!image_digest_valid(digest)) continue;
        if (json_object_get(keep, digest)) {
            res.modules_kept++;
            continue;
        }
        char *path = image_store_blob_path(s, digest);
        struct stat st;
        if (stat(path, &st) == -1) {
            free(path);
            continue;
        }
        int64_t used = (int64_t)st.st_mtim.tv_sec * NS_PER_SEC + st.st_mtim.tv_nsec;
        if (now - used < grace_ns) {
            res.modules_kept++;
            free(path);
            continue;
        }
        if (unlink(path) == 0) {
            res.modules_removed++;
            res.bytes_freed += (uint64_t)st.st_size;
            char *compiled = image_store_compiled_path(s, digest);
            unlink(compiled);
            free(compiled);
            drop_index_entries(json_object_get(s->index, "refs"), digest);
            drop_index_entries(json_object_get(s->index, "manifests"), digest);
            changed = true;
        }
        free(path);
    }
    closedir(d);
    sweep_compiled(s);
    int rc = changed ? save_index(s, err) : 0;
    json_decref(keep);
    pthread_mutex_unlock(&s->lock);
    if (result) *result = res;
    return rc;
}
