/* crilog_write.c: turns a container's stdout/stderr bytes into CRI log
 * records and keeps the files within their size bounds.
 *
 * Each stream has its own unfinished line (at most CRILOG_MAX_LINE bytes, in
 * the writer), so a line written in pieces stays one line even when the
 * other stream writes in between. Records of one crilog_write call are
 * formatted into one buffer and written with as few write(2) calls as
 * possible, straight to the file descriptor: there is no stdio buffer, so a
 * follower sees a line as soon as the call that completed it returns, and a
 * reader sees whole records except while a write is in progress (readers
 * leave a last line without '\n' for later).
 *
 * Rotation happens before a record would take the current file past
 * max_bytes. It keeps the current path valid at every instant, so a reader
 * opening it never finds it missing:
 *
 *     1. create <path>.new
 *     2. link <path> to <path>.<seq>     (the full file now has both names)
 *     3. rename <path>.new over <path>   (atomic: new current file)
 *     4. remove the oldest rotated files beyond max_files - 1
 *
 * A failure in steps 1-3 undoes what was done and keeps writing to the old
 * file (which then grows past max_bytes until a later rotation succeeds);
 * losing a container's output is worse than a file too large for a while.
 * Between steps 2 and 3 a reader listing the directory may see the same
 * file as current and as rotated; readers skip a rotated file that is the
 * same inode as the current one.
 *
 * Timestamps never go backwards within a writer (a wall clock stepped back
 * repeats the last timestamp), so file order and time order agree.
 *
 * Locking: one mutex per writer guards all of its state; crilog_close must
 * not race with writes. */
#include "log/crilog.h"
#include "log/crilog_files.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Formatted records are written out at least at this size, bounding the
 * buffer when one call brings megabytes. */
#define OUT_CHUNK (64 * 1024)

typedef struct crilog_line {
    /* the unfinished line's bytes not yet written, in a buffer of cap
     * bytes that grows up to CRILOG_MAX_LINE as a line does and is given
     * back when a long line ends (a container that writes whole lines, or
     * short pieces of them, keeps a writer of a few hundred bytes: an idle
     * pod's cost) */
    char *buf;
    size_t cap;
    size_t len;
    bool open; /* P records of this line were written already */
} crilog_line_t;

struct crilog_writer {
    pthread_mutex_t mu; /* guards every field below */
    char *path;
    int fd;
    int64_t max_bytes;
    int max_files;
    int64_t size;      /* bytes in the current file */
    uint64_t next_seq; /* seq the next rotation gives the current file */
    int64_t last_ts;
    crilog_line_t line[2]; /* [0] stdout, [1] stderr */
    strbuf_t out;          /* formatted records not yet written */
};

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes the formatted records. On failure they are dropped: keeping them
 * would only grow the buffer while the disk stays full. */
static int flush_out(crilog_writer_t *w, err_t *err)
{
    if (w->out.len == 0) return 0;
    int rc = 0;
    if (write_all(w->fd, w->out.data, w->out.len) == 0)
        w->size += (int64_t)w->out.len;
    else
        rc = err_errno(err, "write %s", w->path);
    strbuf_reset(&w->out);
    return rc;
}

static void prune(crilog_writer_t *w)
{
    uint64_t *seqs;
    size_t n;
    if (crilog_rotated_list(w->path, &seqs, &n, NULL) != 0) return;
    size_t keep = (size_t)w->max_files - 1;
    for (size_t i = 0; i + keep < n; i++) {
        char *old = crilog_rotated_path(w->path, seqs[i]);
        unlink(old);
        free(old);
    }
    free(seqs);
}

static int rotate(crilog_writer_t *w, err_t *err)
{
    char *tmp = xasprintf("%s.new", w->path);
    char *rot = NULL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
    if (fd == -1) {
        err_errno(err, "rotate %s: create %s", w->path, tmp);
        goto fail;
    }
    for (;;) {
        rot = crilog_rotated_path(w->path, w->next_seq++);
        if (link(w->path, rot) == 0) break;
        if (errno == ENOENT) { /* the current file was removed under us: nothing to keep */
            free(rot);
            rot = NULL;
            break;
        }
        if (errno != EEXIST) {
            err_errno(err, "rotate %s: link %s", w->path, rot);
            goto fail;
        }
        free(rot); /* a stray file holds this seq: take the next one */
    }
    if (rename(tmp, w->path) == -1) {
        err_errno(err, "rotate %s: rename %s", w->path, tmp);
        if (rot) unlink(rot);
        goto fail;
    }
    close(w->fd);
    w->fd = fd;
    w->size = 0;
    free(rot);
    free(tmp);
    prune(w);
    return 0;
fail:
    if (fd != -1) {
        close(fd);
        unlink(tmp);
    }
    free(rot);
    free(tmp);
    return -1;
}

/* Formats one record, rotating first when it would not fit. */
static int emit(crilog_writer_t *w, int stream, char tag, const char *content, size_t len,
                err_t *err)
{
    int rc = 0;
    int64_t ts = time_now_ns();
    if (ts < w->last_ts) ts = w->last_ts;
    w->last_ts = ts;
    char tsbuf[48];
    time_format_rfc3339nano(tsbuf, sizeof tsbuf, ts);
    const char *name = stream == CRILOG_STDOUT ? "stdout" : "stderr";
    size_t rec = strlen(tsbuf) + 1 + 6 + 3 + len + 1;
    if (w->size + (int64_t)(w->out.len + rec) > w->max_bytes && w->size + (int64_t)w->out.len > 0) {
        if (flush_out(w, err) != 0) rc = -1;
        if (rotate(w, rc ? NULL : err) != 0) rc = -1;
    }
    strbuf_puts(&w->out, tsbuf);
    strbuf_putc(&w->out, ' ');
    strbuf_puts(&w->out, name);
    strbuf_putc(&w->out, ' ');
    strbuf_putc(&w->out, tag);
    strbuf_putc(&w->out, ' ');
    strbuf_append(&w->out, content, len);
    strbuf_putc(&w->out, '\n');
    if (w->out.len >= OUT_CHUNK && flush_out(w, rc ? NULL : err) != 0) rc = -1;
    return rc;
}

crilog_writer_t *crilog_open(const char *path, int64_t max_bytes, int max_files, err_t *err)
{
    if (max_bytes < 0 || max_files < 0 || max_files == 1) {
        err_set(err, "log %s: invalid rotation (max %lld bytes, %d files; need 2 files or more)",
                path, (long long)max_bytes, max_files);
        return NULL;
    }
    crilog_writer_t *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    w->max_bytes = max_bytes ? max_bytes : CRILOG_DEFAULT_MAX_BYTES;
    w->max_files = max_files ? max_files : CRILOG_DEFAULT_MAX_FILES;
    w->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (w->fd == -1) {
        err_errno(err, "open log %s", path);
        goto fail;
    }
    struct stat st;
    if (fstat(w->fd, &st) == -1) {
        err_errno(err, "stat log %s", path);
        goto fail;
    }
    w->size = st.st_size;
    /* A record cut short by a crash must not swallow our first record. */
    char last;
    if (w->size > 0 && pread(w->fd, &last, 1, w->size - 1) == 1 && last != '\n') {
        if (write_all(w->fd, "\n", 1) != 0) {
            err_errno(err, "write log %s", path);
            goto fail;
        }
        w->size++;
    }
    uint64_t *seqs;
    size_t n;
    if (crilog_rotated_list(path, &seqs, &n, err) != 0) goto fail;
    w->next_seq = n ? seqs[n - 1] + 1 : 1;
    free(seqs);
    char *tmp = xasprintf("%s.new", path); /* left by a crash mid-rotation */
    unlink(tmp);
    free(tmp);
    pthread_mutex_init(&w->mu, NULL);
    return w;
fail:
    if (w->fd != -1) close(w->fd);
    free(w->path);
    free(w);
    return NULL;
}

/* Room for n bytes in the line's buffer (n <= CRILOG_MAX_LINE). */
static void line_reserve(crilog_line_t *line, size_t n)
{
    if (n <= line->cap) return;
    size_t cap = line->cap ? line->cap : 128;
    while (cap < n)
        cap *= 2;
    if (cap > CRILOG_MAX_LINE) cap = CRILOG_MAX_LINE;
    line->buf = xrealloc(line->buf, cap);
    line->cap = cap;
}

/* After a line ended: a buffer a long line grew goes back. */
static void line_shrink(crilog_line_t *line)
{
    if (line->cap <= 512) return;
    free(line->buf);
    line->buf = NULL;
    line->cap = 0;
}

int crilog_write(crilog_writer_t *w, int stream, const void *buf, size_t len, err_t *err)
{
    if (stream != CRILOG_STDOUT && stream != CRILOG_STDERR)
        return err_set(err, "log %s: no stream %d", w->path, stream);
    pthread_mutex_lock(&w->mu);
    crilog_line_t *line = &w->line[stream - 1];
    const char *p = buf, *end = p + len;
    int rc = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        if (line->len == 0 && nl && (size_t)(nl - p) <= CRILOG_MAX_LINE) {
            /* A whole line within this write: its record straight from the
             * caller's bytes (what the copy below would write). */
            if (emit(w, stream, 'F', p, (size_t)(nl - p), rc ? NULL : err) != 0) rc = -1;
            line->open = false;
            p = nl + 1;
            continue;
        }
        while (p < stop) {
            /* Cut only when a byte beyond a full line arrives, so a line of
             * exactly CRILOG_MAX_LINE bytes stays one F record. */
            if (line->len == CRILOG_MAX_LINE) {
                if (emit(w, stream, 'P', line->buf, line->len, rc ? NULL : err) != 0) rc = -1;
                line->len = 0;
                line->open = true;
            }
            size_t take = CRILOG_MAX_LINE - line->len;
            if (take > (size_t)(stop - p)) take = (size_t)(stop - p);
            line_reserve(line, line->len + take);
            memcpy(line->buf + line->len, p, take);
            line->len += take;
            p += take;
        }
        if (nl) {
            if (emit(w, stream, 'F', line->buf ? line->buf : "", line->len, rc ? NULL : err) != 0)
                rc = -1;
            line->len = 0;
            line->open = false;
            line_shrink(line);
            p = nl + 1;
        }
    }
    if (flush_out(w, rc ? NULL : err) != 0) rc = -1;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int crilog_flush(crilog_writer_t *w, err_t *err)
{
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    for (int s = 0; s < 2; s++) {
        crilog_line_t *line = &w->line[s];
        if (line->len == 0) continue;
        if (emit(w, s + 1, 'P', line->buf, line->len, rc ? NULL : err) != 0) rc = -1;
        line->len = 0;
        line->open = true;
    }
    if (flush_out(w, rc ? NULL : err) != 0) rc = -1;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int crilog_close(crilog_writer_t *w, err_t *err)
{
    if (!w) return 0;
    int rc = 0;
    for (int s = 0; s < 2; s++) {
        crilog_line_t *line = &w->line[s];
        if (line->len == 0 && !line->open) continue;
        if (emit(w, s + 1, 'F', line->buf ? line->buf : "", line->len, rc ? NULL : err) != 0)
            rc = -1;
    }
    if (flush_out(w, rc ? NULL : err) != 0) rc = -1;
    if (close(w->fd) == -1 && rc == 0) rc = err_errno(err, "close log %s", w->path);
    pthread_mutex_destroy(&w->mu);
    free(w->line[0].buf);
    free(w->line[1].buf);
    strbuf_free(&w->out);
    free(w->path);
    free(w);
    return rc;
}
