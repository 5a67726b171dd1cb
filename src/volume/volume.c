/* volume.c: pod volumes on the host (see volume.h).
 *
 * emptyDir: a fresh directory per pod, kept across container restarts and
 * removed with the pod. sizeLimit is not a quota: a WASI module writes
 * through the host file system, which cannot cap a directory as it grows.
 * volume_check_limits measures each limited emptyDir (du-style, blocks in
 * use) when the pod manager's sync loop asks, and reports the one over its
 * limit, so that the pod is evicted as the kubelet's eviction manager
 * evicts it: after the fact, within one check interval.
 * hostPath: the host's directory itself, checked against its type; only
 * directory types can be mounted, because a WASI preopen is a directory.
 * configMap, secret, downwardAPI and projected are written by sources.c
 * (atomically, and again by volume_refresh when their content changes) and
 * always mounted read-only; any other type fails with its name. */
#include "volume/volume.h"
#include "kube/quantity.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/xalloc.h"
#include "volume/volume_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *volume_dir(const char *pod_dir, const char *name)
{
    return xasprintf("%s/volumes/%s", pod_dir, name);
}

/* Returns VOLUME_PERMANENT for what no retry can fix. */
static int host_path_check(const podspec_volume_t *v, err_t *err)
{
    const char *path = json_str_at(v->source, "path");
    const char *type = json_str_at(v->source, "type");
    if (!path || path[0] != '/') return err_set(err, "hostPath.path must be an absolute path");
    if (!type) type = "";
    struct stat st;
    int rc = stat(path, &st);
    if (strcmp(type, "DirectoryOrCreate") == 0) {
        if (rc == -1 && fs_mkdir_p(path, 0755, err) == -1) return -1;
        if (rc == -1) rc = stat(path, &st);
    } else if (strcmp(type, "") && strcmp(type, "Directory")) {
        err_set(err,
                "hostPath type %s cannot be mounted: a WebAssembly module's mounts are "
                "directories (use Directory or DirectoryOrCreate)",
                type);
        return VOLUME_PERMANENT;
    }
    if (rc == -1) return err_errno(err, "hostPath %s", path);
    if (!S_ISDIR(st.st_mode))
        return err_set(err,
                       "hostPath %s is not a directory; a WebAssembly module's mounts are "
                       "directories",
                       path);
    return 0;
}

static bool has_files(const char *type)
{
    return strcmp(type, "configMap") == 0 || strcmp(type, "secret") == 0 ||
           strcmp(type, "downwardAPI") == 0 || strcmp(type, "projected") == 0;
}

static int write_source(const volume_host_t *host, const podspec_t *pod, const char *pod_dir,
                        const podspec_volume_t *v, int64_t *token_expires, err_t *err)
{
    json_t *files = NULL;
    if (volume_source_files(host, pod, v, &files, token_expires, err) == -1) return -1;
    char *dir = volume_dir(pod_dir, v->name);
    int rc = volume_atomic_write(dir, files, err);
    free(dir);
    json_decref(files);
    return rc;
}

int volume_refresh(const volume_host_t *host, const podspec_t *pod, const char *pod_dir,
                   int64_t *token_expires, err_t *err)
{
    int rc = 0;
    for (size_t i = 0; i < pod->nvolumes; i++) {
        const podspec_volume_t *v = &pod->volumes[i];
        if (has_files(v->type) && write_source(host, pod, pod_dir, v, token_expires, err) == -1)
            rc = err_prefix(err, "volume \"%s\"", v->name);
    }
    return rc;
}

int volume_setup(const volume_host_t *host, const podspec_t *pod, const char *pod_dir, err_t *err)
{
    for (size_t i = 0; i < pod->nvolumes; i++) {
        const podspec_volume_t *v = &pod->volumes[i];
        int rc = 0;
        if (strcmp(v->type, "emptyDir") == 0) {
            char *dir = volume_dir(pod_dir, v->name);
            rc = fs_mkdir_p(dir, 0777, err);
            free(dir);
        } else if (strcmp(v->type, "hostPath") == 0) {
            rc = host_path_check(v, err);
            if (rc == VOLUME_PERMANENT) {
                err_prefix(err, "volume \"%s\"", v->name);
                return VOLUME_PERMANENT;
            }
        } else if (has_files(v->type)) {
            int64_t expires = 0;
            rc = write_source(host, pod, pod_dir, v, &expires, err);
        } else {
            err_set(err, "volume \"%s\": volume type %s is not supported by wasmlet", v->name,
                    v->type);
            return VOLUME_PERMANENT;
        }
        if (rc == -1) return err_prefix(err, "volume \"%s\"", v->name);
    }
    return 0;
}

/* --- emptyDir sizeLimit --------------------------------------------------- */

/* Inodes already counted (hard links are counted once, as du does). */
typedef struct seen_inodes {
    struct {
        dev_t dev;
        ino_t ino;
    } * items;
    size_t len, cap;
} seen_inodes_t;

static bool seen_before(seen_inodes_t *s, const struct stat *st)
{
    for (size_t i = 0; i < s->len; i++)
        if (s->items[i].dev == st->st_dev && s->items[i].ino == st->st_ino) return true;
    if (s->len == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->items = xrealloc(s->items, s->cap * sizeof *s->items);
    }
    s->items[s->len].dev = st->st_dev;
    s->items[s->len].ino = st->st_ino;
    s->len++;
    return false;
}

/* Bytes in use under dir (its blocks and those of everything below it),
 * without following symlinks or leaving dir's file system. Entries that
 * vanish while we look are skipped: a module may be deleting them. */
static uint64_t dir_usage(int dirfd, dev_t dev, seen_inodes_t *seen, int depth)
{
    uint64_t total = 0;
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return 0;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        struct stat st;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1) continue;
        if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) && seen_before(seen, &st)) continue;
        total += (uint64_t)st.st_blocks * 512;
        if (S_ISDIR(st.st_mode) && st.st_dev == dev && depth < 256) {
            int fd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd != -1) total += dir_usage(fd, dev, seen, depth + 1);
        }
    }
    closedir(d);
    return total;
}

/* du of one emptyDir's directory; 0 when it is not there. */
static uint64_t empty_dir_usage(const char *pod_dir, const char *name)
{
    char *dir = volume_dir(pod_dir, name);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    free(dir);
    struct stat st;
    if (fd == -1) return 0;
    if (fstat(fd, &st) == -1) {
        close(fd);
        return 0;
    }
    seen_inodes_t seen = {0};
    uint64_t used = dir_usage(fd, st.st_dev, &seen, 0); /* closes fd */
    free(seen.items);
    return used;
}

uint64_t volume_emptydir_usage(const podspec_t *pod, const char *pod_dir)
{
    uint64_t total = 0;
    for (size_t i = 0; i < pod->nvolumes; i++) {
        const podspec_volume_t *v = &pod->volumes[i];
        if (strcmp(v->type, "emptyDir") != 0) continue;
        const char *medium = json_str_at(v->source, "medium");
        if (medium && strcmp(medium, "Memory") == 0) continue;
        total += empty_dir_usage(pod_dir, v->name);
    }
    return total;
}

int volume_check_limits(const podspec_t *pod, const char *pod_dir, err_t *err)
{
    for (size_t i = 0; i < pod->nvolumes; i++) {
        const podspec_volume_t *v = &pod->volumes[i];
        if (strcmp(v->type, "emptyDir") != 0) continue;
        const char *limit = json_str_at(v->source, "sizeLimit");
        int64_t max = 0;
        if (!limit || quantity_parse(limit, &max) == -1 || max <= 0) continue;
        char *dir = volume_dir(pod_dir, v->name);
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        free(dir);
        struct stat st;
        if (fd == -1) continue; /* not set up yet, or already torn down */
        if (fstat(fd, &st) == -1) {
            close(fd);
            continue;
        }
        seen_inodes_t seen = {0};
        uint64_t used = dir_usage(fd, st.st_dev, &seen, 0);
        free(seen.items);
        if (used > (uint64_t)max)
            return err_set(err, "Usage of EmptyDir volume \"%s\" exceeds the limit \"%s\".",
                           v->name, limit);
    }
    return 0;
}

int volume_teardown(const char *pod_dir, err_t *err)
{
    char *dir = xasprintf("%s/volumes", pod_dir);
    int rc = fs_rm_rf(dir, err);
    free(dir);
    return rc;
}

/* The host directory behind one volume. */
static char *volume_host(const podspec_t *pod, const char *name, const char *pod_dir)
{
    const podspec_volume_t *v = podspec_volume(pod, name);
    if (!v) return NULL;
    if (strcmp(v->type, "hostPath") == 0) return xstrdup(json_str_at(v->source, "path"));
    return volume_dir(pod_dir, name);
}

/* Creates the missing directories of sub (relative to base) one component
 * at a time, never following a symlink: a link planted in the volume stops
 * the walk (the realpath check below then judges where it leads), so a
 * subPath never creates a directory outside its volume. */
static int make_sub_path(const char *base, const char *sub, err_t *err)
{
    int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) return err_errno(err, "open %s", base);
    char *copy = xstrdup(sub), *save = NULL;
    int rc = 0;
    for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0) continue;
        if (strcmp(c, "..") == 0) {
            rc = err_set(err, "subPath %s must not contain \"..\"", sub);
            break;
        }
        int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next == -1 && errno == ENOENT) {
            if (mkdirat(fd, c, 0777) == -1 && errno != EEXIST) {
                rc = err_errno(err, "subPath %s: create %s", sub, c);
                break;
            }
            next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (next == -1) break; /* a symlink or a file: nothing more to create */
        close(fd);
        fd = next;
    }
    close(fd);
    free(copy);
    return rc;
}

/* Resolves a subPath inside the volume at base. A module may have planted
 * a symlink in a volume (an emptyDir is writable); the resolved directory
 * must still be inside the volume, or the mount is refused, so that a
 * subPath never leads a later container out of its volume. */
static int sub_path_dir(const char *base, const podspec_mount_t *m, char **out, err_t *err)
{
    if (m->sub_path[0] == '/')
        return err_set(err, "volumeMount %s: subPath %s must be a relative path", m->mount_path,
                       m->sub_path);
    /* The kubelet creates a missing subPath directory. */
    if (make_sub_path(base, m->sub_path, err) == -1)
        return err_prefix(err, "volumeMount %s", m->mount_path);
    char *path = fs_join(base, m->sub_path);
    char *real_base = realpath(base, NULL);
    char *real = realpath(path, NULL);
    free(path);
    size_t n = real_base ? strlen(real_base) : 0;
    int rc = 0;
    struct stat st;
    if (!real || !real_base || strncmp(real, real_base, n) != 0 ||
        (real[n] != '/' && real[n] != '\0')) {
        rc = err_set(err, "volumeMount %s: subPath %s resolves outside its volume", m->mount_path,
                     m->sub_path);
    } else if (stat(real, &st) == -1 || !S_ISDIR(st.st_mode)) {
        rc = err_set(err,
                     "volumeMount %s: subPath %s is not a directory; a WebAssembly module's "
                     "mounts are directories",
                     m->mount_path, m->sub_path);
    }
    free(real_base);
    if (rc == -1) {
        free(real);
        return -1;
    }
    *out = real;
    return 0;
}

int volume_mounts(const podspec_t *pod, const podspec_container_t *c, const char *pod_dir,
                  wasmrt_mount_t **out, size_t *n, err_t *err)
{
    wasmrt_mount_t *mounts = xcalloc(c->nmounts ? c->nmounts : 1, sizeof *mounts);
    size_t i;
    for (i = 0; i < c->nmounts; i++) {
        const podspec_mount_t *m = &c->mounts[i];
        char *base = volume_host(pod, m->name, pod_dir);
        if (!base) {
            err_set(err, "volumeMount %s: no volume named \"%s\"", m->mount_path, m->name);
            goto fail;
        }
        char *host = base;
        if (m->sub_path && sub_path_dir(base, m, &host, err) == -1) {
            free(base);
            goto fail;
        }
        if (host != base) free(base);
        mounts[i].host_path = host;
        mounts[i].guest_path = xstrdup(m->mount_path);
        /* configMap, secret, downwardAPI and projected volumes are always
         * read-only, as the kubelet mounts them: their files are wasmlet's
         * to rewrite. */
        const podspec_volume_t *v = podspec_volume(pod, m->name);
        mounts[i].read_only = m->read_only || has_files(v->type);
    }
    *out = mounts;
    *n = c->nmounts;
    return 0;
fail:
    volume_mounts_free(mounts, i);
    return -1;
}

void volume_mounts_free(wasmrt_mount_t *mounts, size_t n)
{
    for (size_t i = 0; mounts && i < n; i++) {
        free((char *)mounts[i].host_path);
        free((char *)mounts[i].guest_path);
    }
    free(mounts);
}
