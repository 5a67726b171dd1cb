/* crilog_read.c: reads a run's CRI log files back as the lines the
 * container wrote, with the options of `kubectl logs`.
 *
 * The reader works only from the files, never from the writer's memory, so
 * it serves a container running in this process, one that ended long ago,
 * or one written by another process alike.
 *
 * Snapshot. It first opens the current file, then the rotated files oldest
 * first, and keeps them open: a rotation or removal during the read changes
 * names, not the open files. A rotated file that is the current file's inode
 * is skipped (the writer links before it renames; see crilog_write.c).
 *
 * Joining. Each stream has its own line in progress: a P record's content is
 * held until the F record of the same stream, and the line goes to the sink
 * in one call. A line held past JOIN_MAX bytes (a container writing megabytes
 * without a newline) is sent in pieces instead of growing without bound. A
 * line is kept or dropped as a whole, by its first record: its stream and,
 * for since_ns, that record's timestamp, which is also the one --timestamps
 * prints. Output order is therefore the order in which lines end.
 *
 * Tail. The last N lines are found by scanning records backwards from the
 * end of the newest file, so `--tail=10` of 50 MiB of logs reads a few
 * blocks. A line is counted at its last record (F, or the last P of a line
 * still being written). Where the window starts is kept per stream, so a
 * long line of one stream that began before the other stream's last
 * excluded line is still sent whole. One limitation: a stream whose last
 * record before the window is a P, and which has no record in the window,
 * continues mid-line if it writes again while following (rare: it needs a
 * line longer than CRILOG_MAX_LINE in progress on that stream).
 *
 * Follow. After the snapshot the reader keeps the current file open and
 * reads what is appended. It waits on inotify for the directory, which the
 * kernel signals on every write, rename and link there, so a new line
 * arrives within milliseconds without polling, from a writer in any process.
 * (If inotify is unavailable, e.g. its instance limit is reached, it polls
 * every WAIT_FALLBACK_MS instead.) When the current path names another inode,
 * the file was rotated: the reader reads the old file to its end (the writer
 * finished it before renaming), finds its seq among the rotated files by
 * inode and continues with the next seq, or with the current file. A reader
 * that falls more than max_files rotations behind loses what was removed.
 *
 * Ending a follow. The writer writes no end marker: the files stay valid CRI
 * logs. The caller knows when a container ended and says so through
 * should_stop: CRILOG_FOLLOW_DRAIN sends what the files hold (through any
 * rotation) and returns; CRILOG_FOLLOW_STOP returns at once. should_stop is
 * asked after every wait and at least every STOP_CHECK_MS while data flows.
 *
 * Malformed lines (not "<time> <stdout|stderr> <P|F> ...") are skipped, as
 * is a last line without '\n', which is being written or was cut by a crash.
 *
 * Why one file of this length: tail, since, limit and follow are options
 * of one reader over one set of rotating files, and they interact (a
 * rotation during a follow, a tail across files).
 */
#include "log/crilog.h"
#include "log/crilog_files.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CHUNK (64 * 1024)
#define MAX_PHYS_LINE (1024 * 1024) /* longer physical lines are malformed */
#define JOIN_MAX (1024 * 1024)      /* a joined line is sent in pieces past this */
#define STOP_CHECK_MS 100
#define WAIT_FALLBACK_MS 20

typedef struct rfile {
    int fd;
    uint64_t seq; /* 0 for the current file */
    dev_t dev;
    ino_t ino;
} rfile_t;

typedef struct rpos {
    size_t file; /* order in which the read visits files */
    off_t off;
} rpos_t;

typedef struct rrec {
    int64_t ts;
    int stream; /* 0 stdout, 1 stderr */
    bool partial;
    const char *content;
    size_t len;
} rrec_t;

typedef struct rstream {
    strbuf_t buf; /* the line being joined (kept content only) */
    bool in_line; /* a P record of the line was seen */
    bool include; /* the line passes the stream and since filters */
    bool started; /* part of the line was sent already */
    bool skip;    /* drop records up to this stream's next F (tail) */
    int64_t ts;   /* the line's first record */
} rstream_t;

typedef struct reader {
    const char *path;
    const crilog_read_opts_t *o;
    crilog_sink_fn sink;
    void *ctx;
    int64_t sent;
    bool done;     /* sink stopped, limit reached, or told to stop */
    bool draining; /* told the container ended */
    int64_t last_check;
    rstream_t st[2];
    strbuf_t out;
    /* tail: records before start[s] of stream s are not sent */
    bool have_start;
    rpos_t start[2];
    /* the file being read: buf holds its bytes from boff on */
    size_t fidx;
    off_t boff;
    char *buf;
    size_t blen, bcap;
    bool discard; /* inside an over-long physical line */
    int ifd;      /* inotify, or -1 */
} reader_t;

/* --- records ------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* The writer's exact form ("2026-11-26T14:21:11.123456789Z") is parsed
 * here directly, being on every line; any other RFC 3339 form goes through
 * time_parse_rfc3339. */
static int parse_ts(const char *s, size_t n, int64_t *ns)
{
    int y, mo, d, h, mi, sec, frac;
    if (n == 30 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' &&
        s[19] == '.' && s[29] == 'Z' && digits(s, 4, &y) == 0 && digits(s + 5, 2, &mo) == 0 &&
        digits(s + 8, 2, &d) == 0 && digits(s + 11, 2, &h) == 0 && digits(s + 14, 2, &mi) == 0 &&
        digits(s + 17, 2, &sec) == 0 && digits(s + 20, 9, &frac) == 0) {
        if (y < 1678 || y > 2261 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
            sec > 60)
            return -1;
        int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
        *ns = secs * NS_PER_SEC + frac;
        return 0;
    }
    char tmp[64];
    if (n >= sizeof tmp) return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return time_parse_rfc3339(tmp, ns);
}

/* Parses one line (without its '\n') into r; -1 when it is not a record. */
static int parse_rec(const char *line, size_t len, rrec_t *r)
{
    const char *end = line + len;
    const char *sp = memchr(line, ' ', len);
    if (!sp || parse_ts(line, (size_t)(sp - line), &r->ts) != 0) return -1;
    const char *p = sp + 1;
    if (end - p < 7 || p[6] != ' ') return -1;
    if (memcmp(p, "stdout", 6) == 0)
        r->stream = 0;
    else if (memcmp(p, "stderr", 6) == 0)
        r->stream = 1;
    else
        return -1;
    p += 7;
    /* The tag: "P" or "F", optionally followed by ":"-separated extras. */
    const char *tag_end = memchr(p, ' ', (size_t)(end - p));
    if (!tag_end) tag_end = end;
    if (tag_end == p || (tag_end - p > 1 && p[1] != ':')) return -1;
    if (p[0] == 'P')
        r->partial = true;
    else if (p[0] == 'F')
        r->partial = false;
    else
        return -1;
    r->content = tag_end < end ? tag_end + 1 : end;
    r->len = (size_t)(end - r->content);
    return 0;
}

/* --- output -------------------------------------------------------------- */

static void send(reader_t *r, const char *data, size_t len)
{
    if (r->done) return;
    bool last = false;
    if (r->o->limit_bytes >= 0 && (int64_t)len >= r->o->limit_bytes - r->sent) {
        len = (size_t)(r->o->limit_bytes - r->sent);
        last = true;
    }
    if (len > 0 && r->sink(r->ctx, data, len) != 0) r->done = true;
    r->sent += (int64_t)len;
    if (last) r->done = true;
}

static void send_line(reader_t *r, rstream_t *st)
{
    if (r->o->timestamps && !st->started) {
        char ts[48];
        time_format_rfc3339nano(ts, sizeof ts, st->ts);
        strbuf_reset(&r->out);
        strbuf_puts(&r->out, ts);
        strbuf_putc(&r->out, ' ');
        strbuf_append(&r->out, st->buf.data ? st->buf.data : "", st->buf.len);
        send(r, r->out.data, r->out.len);
    } else if (st->buf.len) {
        send(r, st->buf.data, st->buf.len);
    }
    st->started = true;
    strbuf_reset(&st->buf);
}

static void on_record(reader_t *r, const rrec_t *rec)
{
    rstream_t *st = &r->st[rec->stream];
    if (st->skip) {
        if (!rec->partial) st->skip = false;
        return;
    }
    if (!st->in_line) {
        unsigned streams =
            r->o->streams ? r->o->streams : (1u << CRILOG_STDOUT | 1u << CRILOG_STDERR);
        st->in_line = true;
        st->started = false;
        st->ts = rec->ts;
        st->include = (streams & (1u << (rec->stream + 1))) &&
                      (r->o->since_ns == 0 || rec->ts >= r->o->since_ns);
    }
    if (st->include) strbuf_append(&st->buf, rec->content, rec->len);
    if (!rec->partial) {
        if (st->include) {
            strbuf_putc(&st->buf, '\n');
            send_line(r, st);
        }
        st->in_line = false;
    } else if (st->include && st->buf.len >= JOIN_MAX) {
        send_line(r, st);
    }
}

/* Sends lines still waiting for their F record (at the end of a read). */
static void flush_lines(reader_t *r)
{
    for (int s = 0; s < 2; s++) {
        rstream_t *st = &r->st[s];
        if (st->in_line && st->include && st->buf.len) send_line(r, st);
        st->in_line = false;
    }
}

static bool before_start(const reader_t *r, int stream, size_t file, off_t off)
{
    if (!r->have_start) return false;
    const rpos_t *s = &r->start[stream];
    return file < s->file || (file == s->file && off < s->off);
}

static void on_line(reader_t *r, off_t off, const char *line, size_t len)
{
    rrec_t rec;
    if (parse_rec(line, len, &rec) != 0) return;
    if (before_start(r, rec.stream, r->fidx, off)) return;
    on_record(r, &rec);
}

/* --- reading files forward ----------------------------------------------- */

/* Asks should_stop when it is time (force: now). */
static void check_stop(reader_t *r, bool force)
{
    if (!r->o->follow || !r->o->should_stop || r->done) return;
    int64_t now = time_mono_ns();
    if (!force && now - r->last_check < STOP_CHECK_MS * NS_PER_MS) return;
    r->last_check = now;
    switch (r->o->should_stop(r->ctx)) {
    case CRILOG_FOLLOW_STOP:
        r->done = true;
        break;
    case CRILOG_FOLLOW_DRAIN:
        r->draining = true;
        break;
    default:
        break;
    }
}

/* Starts reading f at off (forgetting any unfinished line of the previous
 * file: the writer never continues a record across files). */
static int begin_file(reader_t *r, rfile_t *f, size_t fidx, off_t off, err_t *err)
{
    r->fidx = fidx;
    r->boff = off;
    r->blen = 0;
    r->discard = false;
    if (lseek(f->fd, off, SEEK_SET) == -1) return err_errno(err, "seek %s", r->path);
    return 0;
}

/* Reads f to its end, handing each complete line to on_line and keeping an
 * unfinished last line for the next call. */
static int drain(reader_t *r, rfile_t *f, err_t *err)
{
    while (!r->done) {
        if (r->bcap - r->blen < READ_CHUNK) {
            r->bcap = r->blen + READ_CHUNK * 2;
            r->buf = xrealloc(r->buf, r->bcap);
        }
        ssize_t n = read(f->fd, r->buf + r->blen, READ_CHUNK);
        if (n < 0) {
            if (errno == EINTR) continue;
            return err_errno(err, "read %s", r->path);
        }
        if (n == 0) return 0;
        size_t scan = r->blen; /* bytes before it hold no '\n' */
        r->blen += (size_t)n;
        size_t i = 0;
        while (!r->done) {
            char *nl = memchr(r->buf + scan, '\n', r->blen - scan);
            if (!nl) break;
            size_t len = (size_t)(nl - (r->buf + i));
            if (r->discard)
                r->discard = false;
            else
                on_line(r, r->boff + (off_t)i, r->buf + i, len);
            i += len + 1;
            scan = i;
        }
        memmove(r->buf, r->buf + i, r->blen - i);
        r->blen -= i;
        r->boff += (off_t)i;
        if (r->blen > MAX_PHYS_LINE) {
            r->discard = true;
            r->boff += (off_t)r->blen;
            r->blen = 0;
        }
        check_stop(r, false);
    }
    return 0;
}

/* --- the snapshot -------------------------------------------------------- */

static int open_file(const char *path, uint64_t seq, rfile_t *f)
{
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd == -1) return -1;
    struct stat st;
    if (fstat(f->fd, &st) == -1) {
        close(f->fd);
        f->fd = -1;
        return -1;
    }
    f->seq = seq;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    return 0;
}

static void close_file(rfile_t *f)
{
    if (f->fd != -1) close(f->fd);
    f->fd = -1;
}

/* Opens the current file and the rotated files: files[] oldest first, the
 * current one (if it exists) last. *max_seq gets the newest seq listed. */
static int snapshot(const char *path, rfile_t **files, size_t *n, uint64_t *max_seq, err_t *err)
{
    *files = NULL;
    *n = 0;
    *max_seq = 0;
    rfile_t cur = {.fd = -1};
    if (open_file(path, 0, &cur) == -1 && errno != ENOENT) return err_errno(err, "open %s", path);
    uint64_t *seqs;
    size_t nseq;
    if (crilog_rotated_list(path, &seqs, &nseq, err) != 0) {
        close_file(&cur);
        return -1;
    }
    *files = xcalloc(nseq + 1, sizeof **files);
    for (size_t i = 0; i < nseq; i++) {
        char *rot = crilog_rotated_path(path, seqs[i]);
        rfile_t f;
        int rc = open_file(rot, seqs[i], &f);
        free(rot);
        if (rc == -1) continue; /* removed since the listing: it was the oldest */
        if (cur.fd != -1 && f.dev == cur.dev && f.ino == cur.ino) {
            close_file(&f); /* mid-rotation: this is the current file */
            continue;
        }
        (*files)[(*n)++] = f;
    }
    if (nseq) *max_seq = seqs[nseq - 1];
    free(seqs);
    if (cur.fd != -1) (*files)[(*n)++] = cur;
    if (*n == 0) {
        free(*files);
        *files = NULL;
        errno = ENOENT;
        return err_errno(err, "open %s", path);
    }
    return 0;
}

/* --- tail ---------------------------------------------------------------- */

/* Walks a file's lines from the last to the first. */
typedef struct backscan {
    int fd;
    off_t pos; /* file offset of buf[0] */
    off_t lim; /* lines before lim are not visited yet; buf holds [pos, lim) */
    char *buf;
    size_t cap;
} backscan_t;

/* Gives the next line backwards: its offset and length without '\n'.
 * Returns 1, 0 at the start of the file, or -1 on a read error. */
static int backscan_prev(backscan_t *b, off_t *off, const char **line, size_t *len)
{
    if (b->lim == 0) return 0;
    off_t end = b->lim - 1; /* the '\n' ending this line */
    for (;;) {
        size_t have = end > b->pos ? (size_t)(end - b->pos) : 0;
        char *nl = have ? memrchr(b->buf, '\n', have) : NULL;
        if (nl || b->pos == 0) {
            off_t start = nl ? b->pos + (nl - b->buf) + 1 : 0;
            *off = start;
            *line = b->buf + (start - b->pos);
            *len = (size_t)(end - start);
            b->lim = start;
            return 1;
        }
        size_t more = b->pos < READ_CHUNK ? (size_t)b->pos : READ_CHUNK;
        size_t keep = (size_t)(b->lim - b->pos);
        if (keep + more > b->cap) {
            b->cap = keep + more + READ_CHUNK;
            b->buf = xrealloc(b->buf, b->cap);
        }
        if (keep) memmove(b->buf + more, b->buf, keep);
        off_t at = b->pos - (off_t)more;
        size_t got = 0;
        while (got < more) {
            ssize_t n = pread(b->fd, b->buf + got, more - got, at + (off_t)got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return -1;
            got += (size_t)n;
        }
        b->pos = at;
    }
}

/* Sets r->start so that the last tail_lines lines are sent. */
static int tail_start(reader_t *r, rfile_t *files, size_t n, err_t *err)
{
    int64_t want = r->o->tail_lines;
    int64_t count = 0;
    bool open[2] = {false, false};     /* stream has records after the scan point */
    bool resolved[2] = {false, false}; /* start[s] is final */
    bool stopped = false;
    r->have_start = true;
    r->start[0] = r->start[1] = (rpos_t){0, 0};
    backscan_t b = {0};
    int rc = 0;
    for (size_t fi = n; fi-- > 0 && !(resolved[0] && resolved[1]);) {
        struct stat st;
        if (fstat(files[fi].fd, &st) == -1) {
            rc = err_errno(err, "stat %s", r->path);
            break;
        }
        b.fd = files[fi].fd;
        b.pos = b.lim = st.st_size;
        /* A last line without '\n' is being written: not a line yet. */
        char last = '\n';
        if (st.st_size > 0 && pread(b.fd, &last, 1, st.st_size - 1) != 1) last = '\n';
        off_t off;
        const char *line;
        size_t len;
        int got;
        bool first = true;
        while (!(resolved[0] && resolved[1]) && (got = backscan_prev(&b, &off, &line, &len)) == 1) {
            if (first && last != '\n') {
                /* backscan_prev treats the last byte as '\n': this "line" is the
                 * unfinished one, minus its last byte. Skip it. */
                first = false;
                continue;
            }
            first = false;
            rrec_t rec;
            if (parse_rec(line, len, &rec) != 0) continue;
            int s = rec.stream;
            rpos_t after = {fi, off + (off_t)len + 1};
            if (!stopped) {
                if (rec.partial && open[s]) continue;
                if (count < want) {
                    count++;
                    open[s] = true;
                    continue;
                }
                /* This record ends the first line outside the window. */
                stopped = true;
                for (int t = 0; t < 2; t++) {
                    if (t == s || !open[t]) {
                        r->start[t] = after;
                        resolved[t] = true;
                    }
                }
                /* An unfinished line excluded: its later records too. */
                r->st[s].skip = rec.partial;
            } else if (!resolved[s] && !rec.partial) {
                r->start[s] = after; /* the open line of s begins after this F */
                resolved[s] = true;
            }
        }
        if (got == -1) {
            rc = err_errno(err, "read %s", r->path);
            break;
        }
    }
    free(b.buf);
    return rc;
}

/* --- follow -------------------------------------------------------------- */

static int watch_dir(const char *path)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd == -1) return -1;
    char *dir = crilog_dir_of(path);
    int wd = inotify_add_watch(
        fd, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CLOSE_WRITE);
    free(dir);
    if (wd == -1) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Waits until something changes in the directory or ms pass. */
static void wait_change(reader_t *r, int ms)
{
    if (r->ifd == -1) {
        time_sleep_ms(ms < WAIT_FALLBACK_MS ? ms : WAIT_FALLBACK_MS);
        return;
    }
    struct pollfd p = {.fd = r->ifd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0) return;
    char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (read(r->ifd, ev, sizeof ev) > 0) {
    }
}

/* Which rotated seq the file f now has; 0 if none (removed already). */
static uint64_t seq_of(const char *path, const rfile_t *f)
{
    uint64_t *seqs, found = 0;
    size_t n;
    if (crilog_rotated_list(path, &seqs, &n, NULL) != 0) return 0;
    for (size_t i = n; i-- > 0 && !found;) {
        char *rot = crilog_rotated_path(path, seqs[i]);
        struct stat st;
        if (stat(rot, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino) found = seqs[i];
        free(rot);
    }
    free(seqs);
    return found;
}

/* Opens the file that comes after rotated seq `after`: the next rotated
 * file, else the current one. Returns 1 when opened, 0 when there is none
 * (yet), -1 on error. For the current file, *known gets the newest seq that
 * existed before it was opened. prev (or NULL) is the file read last: if
 * the current path still names it, the writer is between its link and its
 * rename (prev was just read under its rotated name), so there is nothing
 * new yet; the rename will wake the caller. */
static int open_next(const char *path, uint64_t after, const rfile_t *prev, rfile_t *f,
                     uint64_t *known, err_t *err)
{
    for (int tries = 0; tries < 100; tries++) {
        uint64_t *seqs;
        size_t n;
        if (crilog_rotated_list(path, &seqs, &n, err) != 0) return -1;
        uint64_t next = 0;
        for (size_t i = 0; i < n && !next; i++)
            if (seqs[i] > after) next = seqs[i];
        uint64_t newest = n ? seqs[n - 1] : 0;
        free(seqs);
        if (next) {
            char *rot = crilog_rotated_path(path, next);
            int rc = open_file(rot, next, f);
            free(rot);
            if (rc == 0) return 1;
            if (errno != ENOENT)
                return err_errno(err, "open %s.%llu", path, (unsigned long long)next);
            after = next; /* removed: it is gone for us too */
            continue;
        }
        if (open_file(path, 0, f) == -1)
            return errno == ENOENT ? 0 : err_errno(err, "open %s", path);
        if (prev && prev->dev == f->dev && prev->ino == f->ino) {
            close_file(f);
            return 0;
        }
        /* A rotation between the listing and the open would make us skip
         * the file it rotated; look again. */
        if (crilog_rotated_list(path, &seqs, &n, err) != 0) {
            close_file(f);
            return -1;
        }
        bool rotated = n && seqs[n - 1] > after;
        free(seqs);
        if (!rotated) {
            *known = newest > after ? newest : after;
            return 1;
        }
        close_file(f);
    }
    return err_set(err, "follow %s: files keep rotating", path);
}

/* Follows from the current file f (or, when f is closed, from whatever
 * comes after rotated seq `after`) until told to stop. */
static int follow(reader_t *r, rfile_t *f, uint64_t known, err_t *err)
{
    uint64_t after = known;
    size_t fidx = r->fidx;
    rfile_t last = {.fd = -1}; /* identity of the file read last (its fd is closed) */
    const rfile_t *prev = NULL;
    while (!r->done) {
        if (f->fd != -1) {
            if (drain(r, f, err) != 0) return -1;
            if (r->done) break;
            bool moved = f->seq != 0;
            if (!moved) {
                struct stat st;
                if (stat(r->path, &st) == -1)
                    moved = errno == ENOENT;
                else
                    moved = st.st_dev != f->dev || st.st_ino != f->ino;
                if (moved) {
                    /* Renamed away: the writer finished it first. */
                    if (drain(r, f, err) != 0) return -1;
                    uint64_t seq = seq_of(r->path, f);
                    after = seq ? seq : known;
                }
            } else {
                after = f->seq;
            }
            if (moved) {
                last.dev = f->dev;
                last.ino = f->ino;
                prev = &last;
                close_file(f);
            }
        }
        if (f->fd == -1 && !r->done) {
            int rc = open_next(r->path, after, prev, f, &known, err);
            if (rc < 0) return -1;
            if (rc == 1) {
                if (begin_file(r, f, ++fidx, 0, err) != 0) return -1;
                continue;
            }
        }
        if (r->done || r->draining) break;
        int64_t left = STOP_CHECK_MS - (time_mono_ns() - r->last_check) / NS_PER_MS;
        wait_change(r, left > 0 ? (int)left : 0);
        check_stop(r, time_mono_ns() - r->last_check >= STOP_CHECK_MS * NS_PER_MS);
    }
    if (r->draining && !r->done) flush_lines(r);
    return 0;
}

/* --- crilog_read --------------------------------------------------------- */

int crilog_read(const char *path, const crilog_read_opts_t *opts, crilog_sink_fn sink, void *ctx,
                err_t *err)
{
    reader_t r = {.path = path, .o = opts, .sink = sink, .ctx = ctx, .ifd = -1};
    r.last_check = time_mono_ns();
    rfile_t *files = NULL;
    size_t n = 0;
    uint64_t known;
    int rc = -1;
    /* Watch before the snapshot, so nothing written after it goes unseen. */
    if (opts->follow) r.ifd = watch_dir(path);
    if (snapshot(path, &files, &n, &known, err) != 0) goto out;
    if (opts->limit_bytes == 0) r.done = true;
    if (opts->tail_lines >= 0 && tail_start(&r, files, n, err) != 0) goto out;
    size_t first = 0;
    off_t first_off = 0;
    if (r.have_start) { /* from the earlier of the two streams' starts */
        const rpos_t *e = &r.start[0];
        if (before_start(&r, 0, r.start[1].file, r.start[1].off)) e = &r.start[1];
        first = e->file;
        first_off = e->off;
    }
    bool cur_open = files[n - 1].seq == 0;
    for (size_t i = first; i < n && !r.done; i++) {
        if (begin_file(&r, &files[i], i, i == first ? first_off : 0, err) != 0) goto out;
        if (drain(&r, &files[i], err) != 0) goto out;
    }
    rfile_t cur = {.fd = -1};
    if (opts->follow && !r.done) {
        if (cur_open) {
            cur = files[n - 1];
            files[n - 1].fd = -1; /* now owned by cur */
        } else {
            r.fidx = n;
        }
        rc = follow(&r, &cur, known, err);
        close_file(&cur);
        goto out;
    }
    if (!r.done) flush_lines(&r);
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        close_file(&files[i]);
    free(files);
    if (r.ifd != -1) close(r.ifd);
    for (int s = 0; s < 2; s++)
        strbuf_free(&r.st[s].buf);
    strbuf_free(&r.out);
    free(r.buf);
    return rc;
}
