/* sources.c: volumes whose files come from the API server: configMap,
 * secret, downwardAPI and projected (which combines the three with
 * serviceAccountToken).
 *
 * Files are written the way the kubelet's atomic writer does, so a module
 * reading them never sees half an update:
 *
 *   <vol>/..2026_11_26_14_21_11.123456789/<key>   this version's files
 *   <vol>/..data -> ..2026_11_26_14_21_11.123456789
 *   <vol>/<key> -> ..data/<key>                   one link per top-level name
 *   <vol>..hash                                    beside the volume: a hash of
 *                                                  the content last written
 *
 * An update writes a new version directory, then renames a fresh
 * ..data_tmp link over ..data (one atomic step), then removes the old
 * version. The links are relative and stay inside the volume, so a WASI
 * preopen of the volume follows them. A volume is rewritten only when its
 * content changed, which volume_refresh checks on every call.
 *
 * Nothing is fsynced: a pod start would otherwise wait on several disk
 * flushes (and a burst of starts would queue hundreds behind etcd's own).
 * A crash of wasmlet still leaves the old version or the new, never a mix;
 * a power loss may lose what was written since the last flush, so the hash
 * carries this boot's id, and after the machine restarts every volume is
 * written again rather than trusted.
 *
 * items select and rename keys (a missing key fails unless optional),
 * defaultMode and per-item mode set the file modes, and a missing
 * ConfigMap or Secret fails the mount unless optional. */
#include "kube/fieldref.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/proc.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"
#include "volume/volume_internal.h"

#include <dirent.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int mode_of(json_t *obj, const char *key, int dflt)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int)json_integer_value(v) & 0777 : dflt;
}

/* A relative path without .. or a leading /, as the API server requires. */
static bool safe_path(const char *p)
{
    if (!p[0] || p[0] == '/') return false;
    for (const char *s = p; *s;) {
        size_t n = strcspn(s, "/");
        if ((n == 2 && s[0] == '.' && s[1] == '.') || n == 0) return false;
        s += n;
        if (*s == '/') s++;
    }
    return strncmp(p, "..", 2) != 0;
}

/* files: an object path -> {"data": string, "mode": int} */
static void add_file(json_t *files, const char *path, const char *data, size_t len, int mode)
{
    /* Bytes, not text: binaryData and Secret values may hold anything. */
    json_t *f = json_object();
    json_object_set_new(f, "data", json_stringn_nocheck(data, len));
    json_object_set_new(f, "mode", json_integer(mode));
    json_object_set_new(files, path, f);
}

/* The object a configMap or secret source names (a secret volume says
 * secretName, a projected secret source name). */
static const char *source_object(json_t *src, bool secret)
{
    const char *name = json_str_at(src, secret ? "secretName" : "name");
    return name ? name : json_str_at(src, "name");
}

/* Adds the keys of one ConfigMap or Secret (data already decoded). */
static int add_keys(const volume_host_t *host, const podspec_t *pod, json_t *src, bool secret,
                    int default_mode, json_t *files, err_t *err)
{
    const char *name = source_object(src, secret);
    bool optional = json_bool_at(src, false, "optional");
    const char *kind = secret ? "secret" : "configmap";
    if (!name) return err_set(err, "%s: name is required", kind);
    if (!host->lookup)
        return err_set(err, "%s \"%s\" cannot be read: this mode has no cluster", kind, name);
    json_t *data = NULL;
    if (host->lookup(host->ctx, pod->namespace, secret, name, &data, err) == -1) return -1;
    if (!data) return optional ? 0 : err_set(err, "%s \"%s\" not found", kind, name);
    json_t *items = json_object_get(src, "items");
    int rc = 0;
    if (json_is_array(items) && json_array_size(items)) {
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            const char *key = json_str_at(it, "key"), *path = json_str_at(it, "path");
            json_t *v = json_object_get(data, key ? key : "");
            if (!key || !path || !safe_path(path)) {
                rc = err_set(err, "%s \"%s\": items[%zu]: invalid key or path", kind, name, i);
                break;
            }
            if (!json_is_string(v)) {
                if (optional) continue;
                rc = err_set(err, "configmap references non-existent config key: %s", key);
                break;
            }
            add_file(files, path, json_string_value(v), json_string_length(v),
                     mode_of(it, "mode", default_mode));
        }
    } else {
        const char *key;
        json_t *v;
        json_object_foreach(data, key, v)
        {
            if (json_is_string(v) && safe_path(key))
                add_file(files, key, json_string_value(v), json_string_length(v), default_mode);
        }
    }
    json_decref(data);
    return rc;
}

/* downwardAPI items: fieldRef and resourceFieldRef, resolved as an env
 * var's are (kube/fieldref.c), plus whole label and annotation maps. A
 * resourceFieldRef without containerName reads the first container. */
static int add_downward(const volume_host_t *host, const podspec_t *pod, json_t *items,
                        int default_mode, json_t *files, err_t *err)
{
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        const char *path = json_str_at(it, "path");
        if (!path || !safe_path(path))
            return err_set(err, "downwardAPI items[%zu]: invalid path", i);
        int mode = mode_of(it, "mode", default_mode);
        json_t *ref = json_object_get(it, "fieldRef");
        char *val = NULL;
        if (ref) {
            const char *fp = json_str_at(ref, "fieldPath");
            if (!fp) return err_set(err, "downwardAPI items[%zu]: fieldPath is required", i);
            val = kube_fieldref(&host->node, pod, fp, KUBE_FIELDREF_WHOLE_MAPS, err);
        } else if ((ref = json_object_get(it, "resourceFieldRef"))) {
            const podspec_container_t *first = pod->ncontainers ? &pod->containers[0] : NULL;
            val = kube_resource_fieldref(&host->node, pod, first, ref, err);
        } else {
            return err_set(err, "downwardAPI items[%zu]: no fieldRef or resourceFieldRef", i);
        }
        if (!val) return err_prefix(err, "downwardAPI items[%zu]", i);
        add_file(files, path, val, strlen(val), mode);
        free(val);
    }
    return 0;
}

/* A serviceAccountToken source's expirationSeconds (the API server's
 * default when absent). */
static int64_t token_seconds(json_t *src)
{
    return json_int_at(src, 3607, "expirationSeconds");
}

static int add_token(const volume_host_t *host, const podspec_t *pod, json_t *src, int mode,
                     json_t *files, int64_t *expires, err_t *err)
{
    const char *path = json_str_at(src, "path");
    const char *aud = json_str_at(src, "audience");
    int64_t seconds = token_seconds(src);
    if (!path || !safe_path(path)) return err_set(err, "serviceAccountToken: invalid path");
    if (!host->token) return err_set(err, "serviceAccountToken: this mode has no cluster");
    char *token = NULL;
    int64_t until = 0;
    if (host->token(host->ctx, pod, aud, seconds, &token, &until, err) == -1)
        return err_prefix(err, "serviceAccountToken");
    add_file(files, path, token, strlen(token), mode);
    free(token);
    if (until && (!*expires || until < *expires)) *expires = until;
    return 0;
}

static void warm_source(const volume_host_t *host, const podspec_t *pod, json_t *src, bool secret)
{
    const char *name = source_object(src, secret);
    if (name) host->warm(host->ctx, pod->namespace, secret, name);
}

void volume_warm(const volume_host_t *host, const podspec_t *pod)
{
    if (!host->warm) return;
    for (size_t i = 0; i < pod->nvolumes; i++) {
        const podspec_volume_t *v = &pod->volumes[i];
        if (strcmp(v->type, "configMap") == 0 || strcmp(v->type, "secret") == 0) {
            warm_source(host, pod, v->source, strcmp(v->type, "secret") == 0);
        } else if (strcmp(v->type, "projected") == 0) {
            size_t j;
            json_t *s, *x;
            json_array_foreach(json_at(v->source, "sources"), j, s)
            {
                if ((x = json_object_get(s, "configMap"))) warm_source(host, pod, x, false);
                if ((x = json_object_get(s, "secret"))) warm_source(host, pod, x, true);
            }
        }
    }
}

void volume_warm_tokens(const volume_host_t *host, const podspec_t *pod)
{
    if (!host->token_warm) return;
    for (size_t i = 0; i < pod->nvolumes; i++) {
        const podspec_volume_t *v = &pod->volumes[i];
        if (strcmp(v->type, "projected") != 0) continue;
        size_t j;
        json_t *s, *x;
        json_array_foreach(json_at(v->source, "sources"), j, s)
        {
            if ((x = json_object_get(s, "serviceAccountToken")))
                host->token_warm(host->ctx, pod, json_str_at(x, "audience"), token_seconds(x));
        }
    }
}

int volume_source_files(const volume_host_t *host, const podspec_t *pod, const podspec_volume_t *v,
                        json_t **out, int64_t *token_expires, err_t *err)
{
    json_t *files = json_object();
    int rc = 0;
    int dmode = mode_of(v->source, "defaultMode", 0644);
    if (strcmp(v->type, "configMap") == 0) {
        rc = add_keys(host, pod, v->source, false, dmode, files, err);
    } else if (strcmp(v->type, "secret") == 0) {
        rc = add_keys(host, pod, v->source, true, dmode, files, err);
    } else if (strcmp(v->type, "downwardAPI") == 0) {
        rc = add_downward(host, pod, json_at(v->source, "items"), dmode, files, err);
    } else if (strcmp(v->type, "projected") == 0) {
        size_t i;
        json_t *s;
        json_array_foreach(json_at(v->source, "sources"), i, s)
        {
            json_t *x;
            if ((x = json_object_get(s, "configMap")))
                rc = add_keys(host, pod, x, false, dmode, files, err);
            else if ((x = json_object_get(s, "secret")))
                rc = add_keys(host, pod, x, true, dmode, files, err);
            else if ((x = json_object_get(s, "downwardAPI")))
                rc = add_downward(host, pod, json_at(x, "items"), dmode, files, err);
            else if ((x = json_object_get(s, "serviceAccountToken")))
                rc = add_token(host, pod, x, dmode, files, token_expires, err);
            else
                rc = err_set(err, "projected source %zu: unsupported type", i);
            if (rc == -1) break;
        }
    } else {
        rc = err_set(err, "volume type %s has no files", v->type);
    }
    if (rc == -1) {
        json_decref(files);
        return -1;
    }
    *out = files;
    return 0;
}

/* --- the atomic writer ------------------------------------------------------ */

static int write_version(const char *dir, json_t *files, err_t *err)
{
    const char *path;
    json_t *f;
    json_object_foreach(files, path, f)
    {
        char *full = fs_join(dir, path);
        char *slash = strrchr(full, '/');
        *slash = '\0';
        int rc = fs_mkdir_p(full, 0755, err);
        *slash = '/';
        json_t *data = json_object_get(f, "data");
        if (rc == 0)
            rc = fs_write_replace(full, json_string_value(data), json_string_length(data),
                                  (mode_t)json_integer_value(json_object_get(f, "mode")), err);
        if (rc == 0) chmod(full, (mode_t)json_integer_value(json_object_get(f, "mode")));
        free(full);
        if (rc == -1) return -1;
    }
    return 0;
}

/* FNV-1a of the content (paths, modes and bytes, in path order), to tell a
 * change without keeping a copy of (possibly secret) data beside the
 * files. */
static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char *content_hash(json_t *files)
{
    size_t n = json_object_size(files), k = 0;
    const char **paths = xcalloc(n + 1, sizeof *paths);
    const char *path;
    json_t *f;
    json_object_foreach(files, path, f) paths[k++] = path;
    qsort(paths, n, sizeof *paths, cmp_str);
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        f = json_object_get(files, paths[i]);
        json_t *data = json_object_get(f, "data");
        uint64_t len = json_string_length(data);
        int mode = (int)json_integer_value(json_object_get(f, "mode"));
        h = fnv(h, paths[i], strlen(paths[i]) + 1);
        h = fnv(h, &mode, sizeof mode);
        h = fnv(h, &len, sizeof len);
        h = fnv(h, json_string_value(data), (size_t)len);
    }
    free(paths);
    return xasprintf("%016llx %s", (unsigned long long)h, proc_boot_id());
}

int volume_atomic_write(const char *vol, json_t *files, err_t *err)
{
    /* Unchanged content: nothing to do. */
    /* The hash lives beside the volume, not in it: a module listing the
     * volume sees only what the kubelet's writer would put there. */
    char *state = xasprintf("%s..hash", vol);
    char *now = content_hash(files);
    char *old = NULL;
    if (fs_read_all(state, &old, NULL, NULL) == 0 && strcmp(old, now) == 0) {
        free(old);
        free(now);
        free(state);
        return 0;
    }
    free(old);
    if (fs_mkdir_p(vol, 0755, err) == -1) goto fail;
    char ts[64];
    time_format_rfc3339nano(ts, sizeof ts, time_now_ns());
    /* ..2026_11_26_14_21_11.123456789, as the kubelet names versions */
    for (char *p = ts; *p; p++)
        if (*p == '-' || *p == ':' || *p == 'T') *p = '_';
    size_t tslen = strlen(ts);
    if (tslen && ts[tslen - 1] == 'Z') ts[tslen - 1] = '\0';
    char *version_name = xasprintf("..%s", ts);
    char *version = fs_join(vol, version_name);
    if (fs_mkdir_p(version, 0755, err) == -1 || write_version(version, files, err) == -1) {
        fs_rm_rf(version, NULL);
        free(version);
        free(version_name);
        goto fail;
    }
    char *data_link = fs_join(vol, "..data");
    char *tmp_link = fs_join(vol, "..data_tmp");
    char old_target[512] = "";
    ssize_t n = readlink(data_link, old_target, sizeof old_target - 1);
    if (n > 0) old_target[n] = '\0';
    unlink(tmp_link);
    int rc = 0;
    if (symlink(version_name, tmp_link) == -1 || rename(tmp_link, data_link) == -1)
        rc = err_errno(err, "swap %s", data_link);
    /* Top-level links for each first path component. */
    const char *path;
    json_t *f;
    json_object_foreach(files, path, f)
    {
        if (rc == -1) break;
        size_t first = strcspn(path, "/");
        char *name = xstrndup(path, first);
        char *link = fs_join(vol, name);
        char *target = xasprintf("..data/%s", name);
        struct stat st;
        if (lstat(link, &st) == -1 && symlink(target, link) == -1 && errno != EEXIST)
            rc = err_errno(err, "link %s", link);
        free(name);
        free(link);
        free(target);
    }
    /* Links of keys that are gone, and the old version. */
    DIR *d = opendir(vol);
    struct dirent *de;
    while (rc == 0 && d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        bool keep = false;
        json_object_foreach(files, path, f)
        {
            size_t first = strcspn(path, "/");
            if (strlen(de->d_name) == first && strncmp(path, de->d_name, first) == 0) keep = true;
        }
        if (!keep) {
            char *link = fs_join(vol, de->d_name);
            unlink(link);
            free(link);
        }
    }
    if (d) closedir(d);
    if (rc == 0 && old_target[0] && strcmp(old_target, version_name) != 0) {
        char *old_dir = fs_join(vol, old_target);
        fs_rm_rf(old_dir, NULL);
        free(old_dir);
    }
    if (rc == 0) fs_write_replace(state, now, strlen(now), 0600, NULL);
    free(data_link);
    free(tmp_link);
    free(version);
    free(version_name);
    free(now);
    free(state);
    return rc;
fail:
    free(now);
    free(state);
    return -1;
}
