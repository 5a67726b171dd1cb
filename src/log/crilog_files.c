/* crilog_files.c: what is on disk for a container's logs, by name.
 *
 * A container's log directory holds one current file per run,
 * "<restartCount>.log", and that run's rotated files "<restartCount>.log.<seq>".
 * The seq is a plain increasing counter rather than a timestamp: order is
 * what readers need, a counter cannot collide when two rotations fall in the
 * same clock tick, and it does not move when the wall clock does. Nothing
 * else is kept about the files; every question (which runs, which rotated
 * files, how much space) is answered by listing the directory, which holds a
 * handful of entries, so there is no index to keep consistent after a crash.
 */
#include "log/crilog.h"
#include "log/crilog_files.h"
#include "util/fs.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *crilog_rotated_path(const char *path, uint64_t seq)
{
    return xasprintf("%s.%llu", path, (unsigned long long)seq);
}

char *crilog_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    if (slash == path) return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

/* Parses a non-empty run of decimal digits filling all of s; 0 on success. */
static int parse_digits(const char *s, uint64_t max, uint64_t *out)
{
    if (!*s) return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

int crilog_rotated_list(const char *path, uint64_t **seqs, size_t *n, err_t *err)
{
    *seqs = NULL;
    *n = 0;
    char *dir = crilog_dir_of(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base);
    DIR *d = opendir(dir);
    if (!d) {
        int rc = errno == ENOENT ? 0 : err_errno(err, "list %s", dir);
        free(dir);
        return rc;
    }
    size_t cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        uint64_t seq;
        if (strncmp(de->d_name, base, blen) != 0 || de->d_name[blen] != '.') continue;
        if (parse_digits(de->d_name + blen + 1, UINT64_MAX, &seq) != 0 || seq == 0) continue;
        if (*n == cap) *seqs = xrealloc(*seqs, (cap = cap ? cap * 2 : 8) * sizeof **seqs);
        (*seqs)[(*n)++] = seq;
    }
    closedir(d);
    free(dir);
    if (*n) qsort(*seqs, *n, sizeof **seqs, cmp_u64);
    return 0;
}

char *crilog_run_path(const char *dir, int restart_count)
{
    char name[32];
    snprintf(name, sizeof name, "%d.log", restart_count);
    return fs_join(dir, name);
}

int crilog_list_runs(const char *dir, int **counts, size_t *n, err_t *err)
{
    *counts = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : err_errno(err, "list %s", dir);
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || len > 24 || strcmp(de->d_name + len - 4, ".log") != 0) continue;
        char digits[24];
        memcpy(digits, de->d_name, len - 4);
        digits[len - 4] = '\0';
        uint64_t v;
        if (parse_digits(digits, INT_MAX, &v) != 0) continue;
        if (*n == cap) *counts = xrealloc(*counts, (cap = cap ? cap * 2 : 8) * sizeof **counts);
        (*counts)[(*n)++] = (int)v;
    }
    closedir(d);
    if (*n) qsort(*counts, *n, sizeof **counts, cmp_int);
    return 0;
}

int crilog_find_run(const char *dir, bool previous, char **path, err_t *err)
{
    int *counts;
    size_t n;
    if (crilog_list_runs(dir, &counts, &n, err) != 0) return -1;
    size_t need = previous ? 2 : 1;
    if (n < need) {
        free(counts);
        return err_set(err, previous ? "no previous run logged in %s" : "no run logged in %s", dir);
    }
    *path = crilog_run_path(dir, counts[n - need]);
    free(counts);
    return 0;
}

/* Adds up dirfd's entries, recursing into subdirectories up to a small
 * depth (a pod's log directory holds container directories, which hold
 * files; nothing deeper is ours). Takes ownership of dirfd. */
static int usage_dir(int dirfd, const char *name, int depth, crilog_usage_t *u, err_t *err)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return err_errno(err, "list %s", name);
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        struct stat st;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
            if (errno == ENOENT) continue; /* rotated away while we listed */
            rc = err_errno(err, "stat %s/%s", name, de->d_name);
            break;
        }
        u->used_bytes += (uint64_t)st.st_blocks * 512;
        u->inodes++;
        if (S_ISDIR(st.st_mode) && depth < 4) {
            int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub == -1) {
                if (errno == ENOENT) continue;
                rc = err_errno(err, "open %s/%s", name, de->d_name);
                break;
            }
            char *subname = fs_join(name, de->d_name);
            rc = usage_dir(sub, subname, depth + 1, u, err);
            free(subname);
            if (rc != 0) break;
        }
    }
    closedir(d);
    return rc;
}

int crilog_usage(const char *dir, crilog_usage_t *usage, err_t *err)
{
    memset(usage, 0, sizeof *usage);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) return errno == ENOENT ? 0 : err_errno(err, "open %s", dir);
    struct stat st;
    if (fstat(fd, &st) == -1) {
        close(fd);
        return err_errno(err, "stat %s", dir);
    }
    usage->used_bytes = (uint64_t)st.st_blocks * 512;
    usage->inodes = 1;
    return usage_dir(fd, dir, 0, usage, err);
}
