/* termination.c: the termination message of a container (see
 * termination.h): finding the message file inside the mounts, reading what
 * a run wrote there, and keeping the tail of the output for
 * FallbackToLogsOnError. No shared state, no locks: each container thread
 * uses its own tail and reads its own file after its module ended. */
#include "pod/termination.h"
#include "util/xalloc.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whether rest (a path below a mount, no leading '/') climbs out of it. */
static bool climbs_out(const char *rest)
{
    for (const char *p = rest; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.') return true;
        p += len;
        while (*p == '/')
            p++;
    }
    return false;
}

char *pod_term_host_path(const wasmrt_mount_t *mounts, size_t n, const char *path,
                         const char **root)
{
    if (root) *root = NULL;
    if (!path || path[0] != '/') return NULL;
    const wasmrt_mount_t *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < n; i++) {
        const char *g = mounts[i].guest_path;
        size_t len = strlen(g);
        while (len > 1 && g[len - 1] == '/')
            len--;
        if (len == 1 && g[0] == '/') len = 0; /* a mount at the root holds every path */
        if (strncmp(path, g, len) != 0 || path[len] != '/') continue;
        if (!best || len >= best_len) {
            best = &mounts[i];
            best_len = len;
        }
    }
    if (!best) return NULL;
    const char *rest = path + best_len;
    while (*rest == '/')
        rest++;
    if (!*rest || climbs_out(rest)) return NULL;
    if (root) *root = best->host_path;
    return xasprintf("%s/%s", best->host_path, rest);
}

void pod_term_stamp(const char *host_path, pod_term_stamp_t *out)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (!host_path || lstat(host_path, &st) != 0) return;
    out->exists = true;
    out->ino = (uint64_t)st.st_ino;
    out->size = (int64_t)st.st_size;
    out->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    out->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
}

/* Whether the real path of file lies inside the real path of root. */
static bool inside(const char *file, const char *root)
{
    char rf[PATH_MAX], rr[PATH_MAX];
    if (!realpath(file, rf) || !realpath(root, rr)) return false;
    size_t len = strlen(rr);
    return strncmp(rf, rr, len) == 0 && (rf[len] == '/' || (len == 1 && rr[0] == '/'));
}

void pod_term_read(const char *host_path, const char *mount_root, const pod_term_stamp_t *before,
                   char *out, size_t cap)
{
    if (cap) out[0] = '\0';
    if (!host_path || cap < 2) return;
    pod_term_stamp_t now;
    pod_term_stamp(host_path, &now);
    if (!now.exists) return;
    if (before && before->exists && before->ino == now.ino && before->size == now.size &&
        before->mtime_ns == now.mtime_ns && before->ctime_ns == now.ctime_ns)
        return; /* left by an earlier run */
    if (mount_root && !inside(host_path, mount_root)) return;
    /* O_NONBLOCK: a FIFO left there must not hang the worker. */
    int fd = open(host_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        size_t want = cap - 1 < POD_TERM_FILE_MAX ? cap - 1 : POD_TERM_FILE_MAX;
        off_t from = st.st_size > (off_t)want ? st.st_size - (off_t)want : 0;
        ssize_t got = pread(fd, out, want, from);
        out[got > 0 ? got : 0] = '\0';
    }
    close(fd);
}

void pod_term_tail_init(pod_term_tail_t *t)
{
    memset(t, 0, sizeof *t);
}

/* Appends to a line what can still show: no output reaches past
 * POD_TERM_LOG_MAX bytes from the start of a line. */
static void keep(strbuf_t *line, const char *data, size_t len)
{
    if (line->len >= POD_TERM_LOG_MAX) return;
    size_t room = POD_TERM_LOG_MAX - line->len;
    strbuf_append(line, data, len < room ? len : room);
}

static void commit(pod_term_tail_t *t, strbuf_t *line)
{
    strbuf_t *slot = &t->lines[t->next];
    strbuf_t old = *slot;
    *slot = *line;
    *line = old;
    strbuf_reset(line);
    t->next = (t->next + 1) % POD_TERM_LOG_LINES;
    if (t->count < POD_TERM_LOG_LINES) t->count++;
}

void pod_term_tail_feed(pod_term_tail_t *t, int stream, const char *data, size_t len)
{
    if (stream < 1 || stream > 2) return;
    strbuf_t *line = &t->partial[stream];
    while (len) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) + 1 : len;
        keep(line, data, n);
        if (nl) commit(t, line);
        data += n;
        len -= n;
    }
}

void pod_term_tail_finish(pod_term_tail_t *t, char *out, size_t cap)
{
    for (int s = 1; s <= 2; s++)
        if (t->partial[s].len) commit(t, &t->partial[s]);
    size_t limit = cap ? cap - 1 : 0;
    if (limit > POD_TERM_LOG_MAX) limit = POD_TERM_LOG_MAX;
    size_t len = 0;
    size_t first = (t->next + POD_TERM_LOG_LINES - t->count) % POD_TERM_LOG_LINES;
    for (size_t i = 0; i < t->count && len < limit; i++) {
        const strbuf_t *l = &t->lines[(first + i) % POD_TERM_LOG_LINES];
        size_t n = l->len < limit - len ? l->len : limit - len;
        memcpy(out + len, strbuf_str(l), n);
        len += n;
    }
    if (cap) out[len] = '\0';
}

void pod_term_tail_free(pod_term_tail_t *t)
{
    for (size_t i = 0; i < POD_TERM_LOG_LINES; i++)
        strbuf_free(&t->lines[i]);
    for (int s = 0; s < 3; s++)
        strbuf_free(&t->partial[s]);
}
