/* fs.c: shared file-system helpers (see fs.h). */
#include "util/fs.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* From the leaf up, not from the root down: the directory usually exists,
 * or only its last component is missing, so a stat (no lock taken) or one
 * mkdir settles it. Walking down from "/" would mkdir every ancestor, and
 * each mkdir of an existing directory takes its parent's inode lock: a
 * burst of pod starts made about 60 such calls per pod, all queueing on the
 * same few locks (the pods dir, the data dir). */
int fs_mkdir_p(const char *path, mode_t mode, err_t *err)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : err_set(err, "mkdir %s: not a directory", path);
    if (mkdir(path, mode) == 0 || errno == EEXIST) return 0;
    if (errno != ENOENT) return err_errno(err, "mkdir %s", path);
    /* A missing ancestor: make the parent, then this one. */
    char *p = xstrdup(path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    char *slash = strrchr(p, '/');
    int rc = 0;
    if (slash && slash != p) {
        *slash = '\0';
        rc = fs_mkdir_p(p, mode, err);
        *slash = '/';
    }
    if (rc == 0 && mkdir(p, mode) == -1 && errno != EEXIST) rc = err_errno(err, "mkdir %s", p);
    free(p);
    return rc;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rc = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    return rc == -1 && errno != ENOENT ? -1 : 0;
}

int fs_rm_rf(const char *path, err_t *err)
{
    struct stat st;
    if (lstat(path, &st) == -1) return errno == ENOENT ? 0 : err_errno(err, "stat %s", path);
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) == -1) return err_errno(err, "unlink %s", path);
        return 0;
    }
    /* FTW_PHYS: never follow symlinks; FTW_MOUNT: stay on this file system;
     * FTW_DEPTH: children before their directory. */
    if (nftw(path, rm_one, 32, FTW_PHYS | FTW_DEPTH | FTW_MOUNT) == -1)
        return err_errno(err, "remove %s", path);
    return 0;
}

int fs_read_all(const char *path, char **data, size_t *len, err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) return err_errno(err, "open %s", path);
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            err_errno(err, "read %s", path);
            free(buf);
            close(fd);
            return -1;
        }
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    if (len) *len = n;
    return 0;
}

static int write_via_temp(const char *path, const void *data, size_t len, mode_t mode, bool sync,
                          err_t *err)
{
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd == -1) {
        err_errno(err, "create %s", tmp);
        free(tmp);
        return -1;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) goto fail;
        p += w;
        left -= (size_t)w;
    }
    if (sync && fsync(fd) == -1) goto fail;
    if (close(fd) == -1) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) == -1) goto fail;
    free(tmp);
    return 0;
fail:
    err_errno(err, "write %s", path);
    if (fd != -1) close(fd);
    unlink(tmp);
    free(tmp);
    return -1;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, err_t *err)
{
    return write_via_temp(path, data, len, mode, true, err);
}

int fs_write_replace(const char *path, const void *data, size_t len, mode_t mode, err_t *err)
{
    return write_via_temp(path, data, len, mode, false, err);
}

bool fs_spread_subdirs(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) return false;
    int flags = 0; /* the kernel reads and writes an int, whatever the macro says */
    bool ok = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
    if (ok && !(flags & FS_TOPDIR_FL)) {
        flags |= FS_TOPDIR_FL;
        ok = ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    }
    close(fd);
    return ok;
}

char *fs_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (*b == '/')
        b++;
    return xasprintf("%.*s/%s", (int)la, a, b);
}
