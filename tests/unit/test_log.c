/* test_log.c: unit tests for log/ (CRI log writer, rotation, and the
 * readers behind `kubectl logs`: tail, since, limit, timestamps, follow). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "log/crilog.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- fixtures ------------------------------------------------------------ */

typedef struct fixture {
    char dir[64];
    char *path; /* <dir>/0.log */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = xcalloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/wasmlet-log-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    f->path = crilog_run_path(f->dir, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    fs_rm_rf(f->dir, NULL);
    free(f->path);
    free(f);
    return 0;
}

/* Collects output; stops the read (returns 1) after stop_after sink calls
 * when stop_after > 0. */
typedef struct collect {
    strbuf_t out;
    atomic_int calls;
    int stop_after;
    const char *stop_at; /* stop once the output contains this */
    int64_t stop_at_mono;
} collect_t;

static int collect_sink(void *ctx, const char *data, size_t len)
{
    collect_t *c = ctx;
    strbuf_append(&c->out, data, len);
    c->calls++;
    if (c->stop_at && strstr(strbuf_str(&c->out), c->stop_at)) {
        c->stop_at_mono = time_mono_ns();
        return 1;
    }
    return c->stop_after > 0 && c->calls >= c->stop_after;
}

/* Reads path with opts into a new string. */
static char *read_logs(const char *path, const crilog_read_opts_t *o)
{
    collect_t c = {.out = STRBUF_INIT};
    err_t err;
    int rc = crilog_read(path, o, collect_sink, &c, &err);
    if (rc != 0) fail_msg("crilog_read: %s", err.msg);
    return strbuf_take(&c.out);
}

static void write_str(crilog_writer_t *w, int stream, const char *s)
{
    err_t err;
    if (crilog_write(w, stream, s, strlen(s), &err) != 0) fail_msg("crilog_write: %s", err.msg);
}

static void write_raw(const char *path, const char *data)
{
    err_t err;
    assert_int_equal(fs_write_atomic(path, data, strlen(data), 0644, &err), 0);
}

/* Splits a file into records; returns how many, fills tags/streams/lens. */
typedef struct rec {
    char stream[8];
    char tag;
    size_t len;
    char *content;
} rec_t;

static size_t parse_file(const char *path, rec_t *recs, size_t max)
{
    char *data;
    size_t len, n = 0;
    err_t err;
    assert_int_equal(fs_read_all(path, &data, &len, &err), 0);
    char *p = data;
    while (*p) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        *nl = '\0';
        assert_true(n < max);
        char ts[40], stream[8], tag[4];
        int off = 0;
        assert_int_equal(sscanf(p, "%39s %7s %3s %n", ts, stream, tag, &off), 3);
        int64_t ns;
        assert_int_equal(time_parse_rfc3339(ts, &ns), 0);
        assert_int_equal(strlen(ts), 30);
        strcpy(recs[n].stream, stream);
        assert_int_equal(strlen(tag), 1);
        recs[n].tag = tag[0];
        recs[n].content = xstrdup(p + off);
        recs[n].len = strlen(p + off);
        n++;
        p = nl + 1;
    }
    free(data);
    return n;
}

static void free_recs(rec_t *recs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(recs[i].content);
}

static char *repeat(char c, size_t n)
{
    char *s = xmalloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* assert_string_equal for long strings: reports where they first differ. */
static void assert_same_text(const char *got, const char *want)
{
    size_t i = 0;
    while (got[i] && got[i] == want[i])
        i++;
    if (got[i] == want[i]) return;
    size_t from = i > 60 ? i - 60 : 0;
    fail_msg("texts differ at byte %zu (got %zu bytes, want %zu):\n got: %.120s\nwant: %.120s", i,
             strlen(got), strlen(want), got + from, want + from);
}

/* --- writer -------------------------------------------------------------- */

static void long_lines_split(void **state)
{
    fixture_t *f = *state;
    err_t err;
    crilog_writer_t *w = crilog_open(f->path, 0, 0, &err);
    assert_non_null(w);
    char *a = repeat('a', 40000), *b = repeat('b', CRILOG_MAX_LINE),
         *c = repeat('c', CRILOG_MAX_LINE + 1);
    /* a arrives in uneven chunks: splitting must not depend on them. */
    assert_int_equal(crilog_write(w, 1, a, 1000, &err), 0);
    assert_int_equal(crilog_write(w, 1, a + 1000, 30000, &err), 0);
    assert_int_equal(crilog_write(w, 1, a + 31000, 9000, &err), 0);
    write_str(w, 1, "\n");
    write_str(w, 1, b);
    write_str(w, 1, "\n");
    write_str(w, 1, c);
    write_str(w, 1, "\n\n");
    assert_int_equal(crilog_close(w, &err), 0);

    rec_t r[16];
    size_t n = parse_file(f->path, r, 16);
    assert_int_equal(n, 7);
    /* 40000 = 16384 + 16384 + 7232 */
    assert_int_equal(r[0].tag, 'P');
    assert_int_equal(r[0].len, CRILOG_MAX_LINE);
    assert_int_equal(r[1].tag, 'P');
    assert_int_equal(r[1].len, CRILOG_MAX_LINE);
    assert_int_equal(r[2].tag, 'F');
    assert_int_equal(r[2].len, 40000 - 2 * CRILOG_MAX_LINE);
    /* exactly the maximum stays one F record */
    assert_int_equal(r[3].tag, 'F');
    assert_int_equal(r[3].len, CRILOG_MAX_LINE);
    /* one more byte: P + F of one byte */
    assert_int_equal(r[4].tag, 'P');
    assert_int_equal(r[4].len, CRILOG_MAX_LINE);
    assert_int_equal(r[5].tag, 'F');
    assert_string_equal(r[5].content, "c");
    /* an empty line is an F record with empty content */
    assert_int_equal(r[6].tag, 'F');
    assert_int_equal(r[6].len, 0);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(r[i].stream, "stdout");
    free_recs(r, n);

    /* Read back: P records joined with their F. */
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    char *got = read_logs(f->path, &o);
    char *want = xasprintf("%s\n%s\n%s\n\n", a, b, c);
    assert_string_equal(got, want);
    free(got);
    free(want);
    free(a);
    free(b);
    free(c);
}

static void streams_interleave(void **state)
{
    fixture_t *f = *state;
    err_t err;
    crilog_writer_t *w = crilog_open(f->path, 0, 0, &err);
    assert_non_null(w);
    write_str(w, 1, "hel");
    write_str(w, 2, "err1\n");
    write_str(w, 1, "lo\nwor");
    write_str(w, 2, "e");
    write_str(w, 2, "rr2\n");
    write_str(w, 1, "ld\n");
    /* A long stdout line cut by a stderr line in the file. */
    char *big = repeat('x', 20000);
    write_str(w, 1, big);
    write_str(w, 2, "between\n");
    write_str(w, 1, "!\n");
    assert_int_equal(crilog_write(w, 3, "x", 1, &err), -1);
    assert_non_null(strstr(err.msg, "no stream 3"));
    assert_int_equal(crilog_close(w, &err), 0);

    rec_t r[16];
    size_t n = parse_file(f->path, r, 16);
    assert_int_equal(n, 7);
    const char *streams[] = {"stderr", "stdout", "stderr", "stdout", "stdout", "stderr", "stdout"};
    const char tags[] = "FFFFPFF";
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(r[i].stream, streams[i]);
        assert_int_equal(r[i].tag, tags[i]);
    }
    assert_string_equal(r[0].content, "err1");
    assert_string_equal(r[1].content, "hello");
    assert_string_equal(r[2].content, "err2");
    assert_string_equal(r[3].content, "world");
    free_recs(r, n);

    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    char *got = read_logs(f->path, &o);
    char *want = xasprintf("err1\nhello\nerr2\nworld\nbetween\n%s!\n", big);
    assert_string_equal(got, want);
    free(got);
    free(want);

    o.streams = 1u << CRILOG_STDOUT;
    got = read_logs(f->path, &o);
    want = xasprintf("hello\nworld\n%s!\n", big);
    assert_string_equal(got, want);
    free(got);
    free(want);

    o.streams = 1u << CRILOG_STDERR;
    got = read_logs(f->path, &o);
    assert_string_equal(got, "err1\nerr2\nbetween\n");
    free(got);
    free(big);
}

static void partial_last_line(void **state)
{
    fixture_t *f = *state;
    err_t err;
    crilog_writer_t *w = crilog_open(f->path, 0, 0, &err);
    assert_non_null(w);
    write_str(w, 1, "done\nno newline");
    write_str(w, 2, "err no newline");
    assert_int_equal(crilog_close(w, &err), 0);
    rec_t r[8];
    size_t n = parse_file(f->path, r, 8);
    assert_int_equal(n, 3);
    /* At exit the unfinished line is complete as far as readers care: F. */
    assert_int_equal(r[1].tag, 'F');
    assert_string_equal(r[1].content, "no newline");
    assert_int_equal(r[2].tag, 'F');
    assert_string_equal(r[2].stream, "stderr");
    free_recs(r, n);
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    char *got = read_logs(f->path, &o);
    assert_string_equal(got, "done\nno newline\nerr no newline\n");
    free(got);

    /* flush: a P record now, the line continues with later writes. */
    char *p1 = crilog_run_path(f->dir, 1);
    w = crilog_open(p1, 0, 0, &err);
    assert_non_null(w);
    write_str(w, 1, "prompt> ");
    assert_int_equal(crilog_flush(w, &err), 0);
    n = parse_file(p1, r, 8);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].tag, 'P');
    free_recs(r, n);
    /* While the line is unfinished a reader sends it without '\n'. */
    got = read_logs(p1, &o);
    assert_string_equal(got, "prompt> ");
    free(got);
    write_str(w, 1, "answer\n");
    write_str(w, 2, "tail");
    assert_int_equal(crilog_flush(w, &err), 0);
    /* Nothing pending on stderr now, but its line is open: close ends it. */
    assert_int_equal(crilog_close(w, &err), 0);
    n = parse_file(p1, r, 8);
    assert_int_equal(n, 4);
    assert_int_equal(r[3].tag, 'F');
    assert_int_equal(r[3].len, 0);
    free_recs(r, n);
    got = read_logs(p1, &o);
    assert_string_equal(got, "prompt> answer\ntail\n");
    free(got);
    free(p1);
}

static size_t list_files(const char *dir, char names[][256], size_t max)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        assert_true(n < max);
        snprintf(names[n++], 256, "%s", de->d_name);
    }
    closedir(d);
    return n;
}

static void rotation_flood(void **state)
{
    fixture_t *f = *state;
    err_t err;
    const int64_t max = 1024 * 1024;
    crilog_writer_t *w = crilog_open(f->path, max, 3, &err);
    assert_non_null(w);
    /* 50 MiB in chunks of varying size and line lengths (short lines, long
     * lines split into P records); lines carry increasing numbers. */
    size_t total = 0, line_no = 0;
    strbuf_t chunk = STRBUF_INIT;
    unsigned seed = 1;
    while (total < 50u * 1024 * 1024) {
        strbuf_reset(&chunk);
        int lines = 1 + (int)(rand_r(&seed) % 50);
        for (int i = 0; i < lines; i++) {
            size_t pad =
                rand_r(&seed) % 7 == 0 ? 20000 + rand_r(&seed) % 30000 : rand_r(&seed) % 200;
            strbuf_printf(&chunk, "line %zu ", line_no++);
            for (size_t k = 0; k < pad; k++)
                strbuf_putc(&chunk, (char)('a' + k % 26));
            strbuf_putc(&chunk, '\n');
        }
        assert_int_equal(crilog_write(w, 1 + (int)(line_no % 2), chunk.data, chunk.len, &err), 0);
        total += chunk.len;
    }
    strbuf_free(&chunk);
    assert_int_equal(crilog_close(w, &err), 0);

    char names[16][256];
    size_t n = list_files(f->dir, names, 16);
    assert_int_equal(n, 3);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        char *p = fs_join(f->dir, names[i]);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_true(st.st_size <= max);
        if (strcmp(names[i], "0.log") != 0)
            assert_true(st.st_size > max - 17 * 1024); /* rotated when full */
        sum += (uint64_t)st.st_size;
        assert_true(strcmp(names[i], "0.log") == 0 || strncmp(names[i], "0.log.", 6) == 0);
        free(p);
    }
    assert_true(sum <= 3 * (uint64_t)max);

    /* What is left reads back in order and ends with the last line. */
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    o.streams = 1u << CRILOG_STDERR | 1u << CRILOG_STDOUT;
    char *got = read_logs(f->path, &o);
    long prev = -1;
    size_t lines = 0;
    for (char *p = got; *p;) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        long no;
        if (sscanf(p, "line %ld ", &no) == 1) {
            if (prev >= 0) assert_true(no > prev);
            prev = no;
            lines++;
        } else {
            assert_int_equal(lines, 0); /* only the first line may be a cut tail */
        }
        p = nl + 1;
    }
    assert_int_equal(prev, (long)line_no - 1);
    assert_true(lines > 100);
    free(got);

    crilog_usage_t u;
    assert_int_equal(crilog_usage(f->dir, &u, &err), 0);
    assert_int_equal(u.inodes, 4); /* the directory and three files */
    assert_true(u.used_bytes >= sum && u.used_bytes <= sum + 4 * 1024 * 1024);
}

static void reopen_continues(void **state)
{
    fixture_t *f = *state;
    err_t err;
    assert_null(crilog_open(f->path, 0, 1, &err));
    assert_non_null(strstr(err.msg, "2 files"));
    assert_null(crilog_open(f->path, -1, 0, &err));
    /* A crash left a half record and rotated files 1 and 7. */
    write_raw(f->path, "2026-11-26T14:21:11.000000000Z stdout F cut sh");
    char *r1 = xasprintf("%s.1", f->path), *r7 = xasprintf("%s.7", f->path);
    write_raw(r1, "2026-11-26T14:21:09.000000000Z stdout F one\n");
    write_raw(r7, "2026-11-26T14:21:10.000000000Z stdout F seven\n");
    crilog_writer_t *w = crilog_open(f->path, 120, 3, &err);
    assert_non_null(w);
    write_str(w, 1, "after\n");
    /* The next record needs a rotation: it becomes seq 8, seq 1 goes. */
    write_str(w, 1, "rotated\n");
    assert_int_equal(crilog_close(w, &err), 0);
    char *r8 = xasprintf("%s.8", f->path);
    struct stat st;
    assert_int_equal(stat(r8, &st), 0);
    assert_int_equal(stat(r7, &st), 0);
    assert_int_equal(stat(r1, &st), -1);
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    char *got = read_logs(f->path, &o);
    assert_string_equal(got, "seven\ncut sh\nafter\nrotated\n");
    free(got);
    free(r1);
    free(r7);
    free(r8);
}

typedef struct stream_writer {
    crilog_writer_t *w;
    int stream;
} stream_writer_t;

static void *write_many(void *arg)
{
    stream_writer_t *sw = arg;
    char line[64];
    for (int i = 0; i < 2000; i++) {
        /* each line in two pieces: the halves must never mix with the other stream */
        int n = snprintf(line, sizeof line, "s%d-%d-", sw->stream, i);
        crilog_write(sw->w, sw->stream, line, (size_t)n, NULL);
        n = snprintf(line, sizeof line, "end%d\n", sw->stream);
        crilog_write(sw->w, sw->stream, line, (size_t)n, NULL);
    }
    return NULL;
}

static void concurrent_streams(void **state)
{
    fixture_t *f = *state;
    err_t err;
    crilog_writer_t *w = crilog_open(f->path, 64 * 1024, 10, &err);
    assert_non_null(w);
    stream_writer_t a = {w, 1}, b = {w, 2};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, write_many, &a);
    pthread_create(&tb, NULL, write_many, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(crilog_close(w, &err), 0);
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    char *got = read_logs(f->path, &o);
    int next[3] = {0, 0, 0};
    for (char *p = got; *p;) {
        char *nl = strchr(p, '\n');
        int s, i, e;
        assert_int_equal(sscanf(p, "s%d-%d-end%d", &s, &i, &e), 3);
        assert_int_equal(s, e);
        assert_int_equal(i, next[s]++);
        p = nl + 1;
    }
    assert_int_equal(next[1], 2000);
    assert_int_equal(next[2], 2000);
    free(got);
}

/* --- reader -------------------------------------------------------------- */

/* Writes lines "L<i>" 0..n-1 through a small rotating writer. */
static void write_numbered(const char *path, int n, int64_t max_bytes, int max_files)
{
    err_t err;
    crilog_writer_t *w = crilog_open(path, max_bytes, max_files, &err);
    assert_non_null(w);
    for (int i = 0; i < n; i++) {
        char line[32];
        snprintf(line, sizeof line, "L%d\n", i);
        write_str(w, 1 + i % 2, line);
    }
    assert_int_equal(crilog_close(w, &err), 0);
}

static char *expect_range(int from, int to)
{
    strbuf_t sb = STRBUF_INIT;
    for (int i = from; i < to; i++)
        strbuf_printf(&sb, "L%d\n", i);
    return strbuf_take(&sb);
}

static void tail_over_rotated(void **state)
{
    fixture_t *f = *state;
    /* ~45-byte records, 1000-byte files: ~22 lines a file, 5 files kept. */
    write_numbered(f->path, 300, 1000, 5);
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    char *all = read_logs(f->path, &o);
    int first;
    assert_int_equal(sscanf(all, "L%d", &first), 1);
    assert_true(first > 150 && first < 250); /* older lines were rotated away */
    char *want = expect_range(first, 300);
    assert_string_equal(all, want);
    free(want);
    free(all);
    int kept = 300 - first;
    int tails[] = {0, 1, 10, 23, 30, 50, 77, kept - 1, kept, kept + 1, 1000};
    for (size_t i = 0; i < sizeof tails / sizeof *tails; i++) {
        o.tail_lines = tails[i];
        char *got = read_logs(f->path, &o);
        int from = 300 - tails[i];
        if (from < first) from = first;
        want = expect_range(from, 300);
        assert_string_equal(got, want);
        free(got);
        free(want);
    }
}

static void tail_long_lines(void **state)
{
    fixture_t *f = *state;
    err_t err;
    crilog_writer_t *w = crilog_open(f->path, 0, 0, &err);
    assert_non_null(w);
    char *big = repeat('y', 50000);
    write_str(w, 1, "first\n");
    write_str(w, 1, big);
    write_str(w, 2, "err in between\n");
    write_str(w, 1, "\n");
    write_str(w, 2, "last\n");
    write_str(w, 1, "unfinished ");
    write_str(w, 1, big); /* three P records written, the rest pending */
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    char *got, *want;

    /* The line still being written counts as the last line. */
    o.tail_lines = 1;
    got = read_logs(f->path, &o);
    assert_int_equal(strlen(got), 3 * CRILOG_MAX_LINE);
    assert_memory_equal(got, "unfinished yyy", 14);
    free(got);

    /* The long stdout line ended after "err in between", so it is newer;
     * its P records lie before that stderr line and must come whole. */
    o.tail_lines = 3;
    got = read_logs(f->path, &o);
    want = xasprintf("%s\nlast\nunfinished ", big);
    assert_memory_equal(got, want, strlen(want));
    free(got);
    free(want);
    o.tail_lines = 4;
    got = read_logs(f->path, &o);
    want = xasprintf("err in between\n%s\nlast\nunfinished ", big);
    assert_memory_equal(got, want, strlen(want));
    free(got);
    free(want);
    assert_int_equal(crilog_close(w, &err), 0);
    free(big);
}

static void since_filter(void **state)
{
    fixture_t *f = *state;
    write_raw(f->path, "2026-11-26T14:21:10.000000000Z stdout F a\n"
                       "2026-11-26T14:21:11.000000000Z stdout P b1\n"
                       "2026-11-26T14:21:12.000000000Z stderr F c\n"
                       "2026-11-26T14:21:12.500000000Z stdout F b2\n"
                       "2026-11-26T14:21:13.000000000Z stdout F d\n");
    int64_t t11;
    assert_int_equal(time_parse_rfc3339("2026-11-26T14:21:11Z", &t11), 0);
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    o.since_ns = t11; /* at the boundary: included */
    char *got = read_logs(f->path, &o);
    assert_string_equal(got, "c\nb1b2\nd\n");
    free(got);
    /* A line is judged by its first record: b started before. */
    o.since_ns = t11 + 1;
    got = read_logs(f->path, &o);
    assert_string_equal(got, "c\nd\n");
    free(got);
    /* tail first, then since (as the kubelet applies them) */
    o.since_ns = t11;
    o.tail_lines = 3;
    got = read_logs(f->path, &o);
    assert_string_equal(got, "c\nb1b2\nd\n");
    free(got);
    o.tail_lines = 2;
    got = read_logs(f->path, &o);
    assert_string_equal(got, "b1b2\nd\n");
    free(got);

    /* With the writer's own clock. */
    char *p1 = crilog_run_path(f->dir, 1);
    err_t err;
    crilog_writer_t *w = crilog_open(p1, 0, 0, &err);
    write_str(w, 1, "old\n");
    time_sleep_ms(5);
    int64_t mid = time_now_ns();
    time_sleep_ms(5);
    write_str(w, 1, "new\n");
    crilog_close(w, NULL);
    crilog_read_opts_t o2 = CRILOG_READ_OPTS_INIT;
    o2.since_ns = mid;
    got = read_logs(p1, &o2);
    assert_string_equal(got, "new\n");
    free(got);
    free(p1);
}

static void limit_bytes_exact(void **state)
{
    fixture_t *f = *state;
    write_numbered(f->path, 100, 0, 0);
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    char *full = read_logs(f->path, &o);
    size_t full_len = strlen(full);
    o.timestamps = true;
    char *full_ts = read_logs(f->path, &o);
    size_t full_ts_len = strlen(full_ts);
    int64_t limits[] = {0,
                        1,
                        3,
                        4,
                        25,
                        31,
                        32,
                        33,
                        100,
                        289,
                        (int64_t)full_len - 1,
                        (int64_t)full_len,
                        (int64_t)full_len + 10};
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        for (int ts = 0; ts < 2; ts++) {
            o.timestamps = ts;
            o.limit_bytes = limits[i];
            char *got = read_logs(f->path, &o);
            size_t avail = ts ? full_ts_len : full_len;
            size_t want = (size_t)limits[i] < avail ? (size_t)limits[i] : avail;
            assert_int_equal(strlen(got), want);
            assert_memory_equal(got, ts ? full_ts : full, want);
            free(got);
        }
    }
    /* limit and tail together */
    o.timestamps = false;
    o.tail_lines = 2;
    o.limit_bytes = 5;
    char *got = read_logs(f->path, &o);
    assert_string_equal(got, "L98\nL");
    free(got);
    free(full);
    free(full_ts);
}

static void timestamps_prefix(void **state)
{
    fixture_t *f = *state;
    write_raw(f->path, "2026-11-26T14:21:11.123456789Z stdout F hello\n"
                       "2026-11-26T14:21:12.5+01:00 stderr F other form\n"
                       "2026-11-26T14:21:13.000000001Z stdout P lo\n"
                       "2026-11-26T14:21:14.000000000Z stdout F ng\n");
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    o.timestamps = true;
    char *got = read_logs(f->path, &o);
    assert_string_equal(got, "2026-11-26T14:21:11.123456789Z hello\n"
                             "2026-11-26T13:21:12.500000000Z other form\n"
                             "2026-11-26T14:21:13.000000001Z long\n");
    free(got);

    /* the writer's timestamps: the prefix is the record's own */
    char *p1 = crilog_run_path(f->dir, 1);
    err_t err;
    int64_t before = time_now_ns();
    crilog_writer_t *w = crilog_open(p1, 0, 0, &err);
    write_str(w, 1, "x\n");
    crilog_close(w, NULL);
    int64_t after = time_now_ns();
    got = read_logs(p1, &o);
    assert_int_equal(strlen(got), 30 + 1 + 2);
    got[30] = '\0';
    int64_t ts;
    assert_int_equal(time_parse_rfc3339(got, &ts), 0);
    assert_true(ts >= before && ts <= after);
    assert_string_equal(got + 31, "x\n");
    free(got);
    free(p1);
}

static void malformed_skipped(void **state)
{
    fixture_t *f = *state;
    write_raw(f->path, "2026-11-26T14:21:11.000000000Z stdout F good 1\n"
                       "garbage\n"
                       "\n"
                       "2026-11-26T14:21:11.000000000Z stdin F bad stream\n"
                       "2026-11-26T14:21:11.000000000Z stdout X bad tag\n"
                       "2026-11-26T14:21:11.000000000Z stdout FP bad tag\n"
                       "2026-13-26T14:21:11.000000000Z stdout F bad month\n"
                       "yesterday stdout F bad time\n"
                       "2026-11-26T14:21:11.000000000Z stdout\n"
                       "2026-11-26T14:21:11.000000000Z stdout F\n"
                       "2026-11-26T14:21:11.000000000Z stderr F:extra tagged\n"
                       "2026-11-26T14:21:11.000000000Z stdout F good 2\n"
                       "2026-11-26T14:21:11.000000000Z stdout F cut by a cra");
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    char *got = read_logs(f->path, &o);
    assert_string_equal(got, "good 1\n\ntagged\ngood 2\n");
    free(got);
    o.tail_lines = 2;
    got = read_logs(f->path, &o);
    assert_string_equal(got, "tagged\ngood 2\n");
    free(got);
    /* an over-long physical line is dropped, the next line is kept */
    strbuf_t sb = STRBUF_INIT;
    strbuf_puts(&sb, "2026-11-26T14:21:11.000000000Z stdout F ");
    for (int i = 0; i < 3 * 1024 * 1024; i++)
        strbuf_putc(&sb, 'z');
    strbuf_puts(&sb, "\n2026-11-26T14:21:11.000000000Z stdout F after\n");
    write_raw(f->path, sb.data);
    strbuf_free(&sb);
    o.tail_lines = -1;
    got = read_logs(f->path, &o);
    assert_string_equal(got, "after\n");
    free(got);
    /* no log at all */
    collect_t c = {.out = STRBUF_INIT};
    err_t err;
    char *none = crilog_run_path(f->dir, 9);
    assert_int_equal(crilog_read(none, &o, collect_sink, &c, &err), -1);
    assert_non_null(strstr(err.msg, "No such file"));
    free(none);
}

static void sink_stops(void **state)
{
    fixture_t *f = *state;
    write_numbered(f->path, 50, 0, 0);
    collect_t c = {.out = STRBUF_INIT, .stop_after = 3};
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    o.follow = true; /* must not matter: the sink went away */
    err_t err;
    assert_int_equal(crilog_read(f->path, &o, collect_sink, &c, &err), 0);
    assert_string_equal(strbuf_str(&c.out), "L0\nL1\nL2\n");
    strbuf_free(&c.out);
}

/* --- follow -------------------------------------------------------------- */

typedef struct follower {
    collect_t c;
    atomic_int ended; /* the container ended */
    atomic_int stop;  /* the client went away */
    atomic_int stop_calls;
} follower_t;

static enum crilog_follow follower_should_stop(void *ctx)
{
    follower_t *fl = ctx;
    atomic_fetch_add(&fl->stop_calls, 1);
    if (atomic_load(&fl->stop)) return CRILOG_FOLLOW_STOP;
    return atomic_load(&fl->ended) ? CRILOG_FOLLOW_DRAIN : CRILOG_FOLLOW_ON;
}

typedef struct late_writer {
    crilog_writer_t *w;
    int64_t delay_ms;
    int64_t wrote_mono;
    follower_t *fl;
} late_writer_t;

static void *write_late(void *arg)
{
    late_writer_t *lw = arg;
    time_sleep_ms(lw->delay_ms);
    lw->wrote_mono = time_mono_ns();
    crilog_write(lw->w, 1, "late line\n", 10, NULL);
    return NULL;
}

static void follow_latency(void **state)
{
    fixture_t *f = *state;
    err_t err;
    crilog_writer_t *w = crilog_open(f->path, 0, 0, &err);
    write_str(w, 1, "early\n");
    late_writer_t lw = {.w = w, .delay_ms = 300};
    pthread_t t;
    pthread_create(&t, NULL, write_late, &lw);
    follower_t fl = {.c = {.out = STRBUF_INIT, .stop_at = "late line\n"}};
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    o.follow = true;
    o.should_stop = follower_should_stop;
    int64_t start = time_mono_ns();
    assert_int_equal(crilog_read(f->path, &o, collect_sink, &fl, &err), 0);
    pthread_join(t, NULL);
    assert_string_equal(strbuf_str(&fl.c.out), "early\nlate line\n");
    int64_t latency_ms = (fl.c.stop_at_mono - lw.wrote_mono) / NS_PER_MS;
    print_message("follow latency: %lld ms\n", (long long)latency_ms);
    assert_true(latency_ms < 200);
    /* it waited for the line (not returned early), asking should_stop */
    assert_true((fl.c.stop_at_mono - start) / NS_PER_MS >= 250);
    assert_true(atomic_load(&fl.stop_calls) >= 1);
    strbuf_free(&fl.c.out);
    crilog_close(w, NULL);
}

typedef struct batch_writer {
    crilog_writer_t *w;
    follower_t *fl;
    int batches, per_batch;
    char *last_line;
} batch_writer_t;

/* Writes batches of numbered lines; between batches waits until the
 * follower has seen the batch, then at the end closes and says so. */
static void *write_batches(void *arg)
{
    batch_writer_t *bw = arg;
    int no = 0;
    for (int b = 0; b < bw->batches; b++) {
        strbuf_t sb = STRBUF_INIT;
        for (int i = 0; i < bw->per_batch; i++)
            strbuf_printf(&sb, "N%06d padding-padding\n", no++);
        crilog_write(bw->w, 1, sb.data, sb.len, NULL);
        strbuf_free(&sb);
        /* one sink call per line, after "before follow" */
        int64_t deadline = time_mono_ns() + 20 * NS_PER_SEC;
        while (atomic_load(&bw->fl->c.calls) < no + 1 && time_mono_ns() < deadline)
            time_sleep_ms(1);
    }
    crilog_write(bw->w, 1, "bye", 3, NULL); /* no newline: F at close */
    crilog_close(bw->w, NULL);
    atomic_store(&bw->fl->ended, 1);
    return NULL;
}

static void follow_rotation_and_end(void **state)
{
    fixture_t *f = *state;
    err_t err;
    /* 64-byte records, 2 KiB files: a batch of 50 lines rotates once or twice,
     * so the follower is never more than the 4 kept rotated files behind. */
    crilog_writer_t *w = crilog_open(f->path, 2048, 5, &err);
    assert_non_null(w);
    write_str(w, 1, "before follow\n");
    follower_t fl = {.c = {.out = STRBUF_INIT}};
    batch_writer_t bw = {.w = w, .fl = &fl, .batches = 40, .per_batch = 50};
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    o.follow = true;
    o.should_stop = follower_should_stop;
    pthread_t t;
    pthread_create(&t, NULL, write_batches, &bw);
    assert_int_equal(crilog_read(f->path, &o, collect_sink, &fl, &err), 0);
    pthread_join(t, NULL);
    /* every line in order across ~40 rotations, then the last partial line */
    strbuf_t want = STRBUF_INIT;
    strbuf_puts(&want, "before follow\n");
    for (int i = 0; i < 2000; i++)
        strbuf_printf(&want, "N%06d padding-padding\n", i);
    strbuf_puts(&want, "bye\n");
    assert_same_text(strbuf_str(&fl.c.out), strbuf_str(&want));
    strbuf_free(&want);
    strbuf_free(&fl.c.out);
    /* it really rotated that often */
    char names[16][256];
    size_t n = list_files(f->dir, names, 16);
    unsigned long newest = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned long seq;
        if (sscanf(names[i], "0.log.%lu", &seq) == 1 && seq > newest) newest = seq;
    }
    assert_true(newest >= 50);
}

static void *end_after(void *arg)
{
    late_writer_t *lw = arg;
    time_sleep_ms(lw->delay_ms);
    crilog_write(lw->w, 2, "final words", 11, NULL);
    crilog_close(lw->w, NULL);
    lw->wrote_mono = time_mono_ns();
    atomic_store(&lw->fl->ended, 1);
    return NULL;
}

static void follow_ends(void **state)
{
    fixture_t *f = *state;
    err_t err;
    crilog_writer_t *w = crilog_open(f->path, 0, 0, &err);
    write_str(w, 1, "running\n");
    follower_t fl = {.c = {.out = STRBUF_INIT}};
    late_writer_t lw = {.w = w, .delay_ms = 150, .fl = &fl};
    pthread_t t;
    pthread_create(&t, NULL, end_after, &lw);
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    o.follow = true;
    o.timestamps = false;
    o.tail_lines = 0; /* only what comes next */
    o.should_stop = follower_should_stop;
    assert_int_equal(crilog_read(f->path, &o, collect_sink, &fl, &err), 0);
    int64_t returned = time_mono_ns();
    pthread_join(t, NULL);
    assert_string_equal(strbuf_str(&fl.c.out), "final words\n");
    /* drained and returned within one should_stop period (+ slack) */
    assert_true((returned - lw.wrote_mono) / NS_PER_MS < 300);
    strbuf_free(&fl.c.out);

    /* STOP: returns promptly without more output, the file never ends */
    char *p1 = crilog_run_path(f->dir, 1);
    w = crilog_open(p1, 0, 0, &err);
    write_str(w, 1, "x\n");
    follower_t f2 = {.c = {.out = STRBUF_INIT}};
    atomic_store(&f2.stop, 1);
    int64_t start = time_mono_ns();
    assert_int_equal(crilog_read(p1, &o, collect_sink, &f2, &err), 0);
    assert_true((time_mono_ns() - start) / NS_PER_MS < 500);
    assert_string_equal(strbuf_str(&f2.c.out), "");
    strbuf_free(&f2.c.out);
    crilog_close(w, NULL);
    free(p1);
}

/* --- runs and usage ------------------------------------------------------ */

static void runs_and_usage(void **state)
{
    fixture_t *f = *state;
    err_t err;
    char *path;
    assert_int_equal(crilog_find_run(f->dir, false, &path, &err), -1);
    int counts_in[] = {0, 2, 10, 1};
    for (size_t i = 0; i < 4; i++) {
        char *p = crilog_run_path(f->dir, counts_in[i]);
        write_raw(p, "2026-11-26T14:21:11.000000000Z stdout F x\n");
        free(p);
    }
    char *noise[] = {"10.log.3", "x.log", "-1.log", ".log", "3.log.new", "99999999999.log"};
    for (size_t i = 0; i < 6; i++) {
        char *p = fs_join(f->dir, noise[i]);
        write_raw(p, "");
        free(p);
    }
    int *counts;
    size_t n;
    assert_int_equal(crilog_list_runs(f->dir, &counts, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], 1);
    assert_int_equal(counts[2], 2);
    assert_int_equal(counts[3], 10);
    free(counts);
    assert_int_equal(crilog_find_run(f->dir, false, &path, &err), 0);
    char *want = fs_join(f->dir, "10.log");
    assert_string_equal(path, want);
    free(want);
    free(path);
    assert_int_equal(crilog_find_run(f->dir, true, &path, &err), 0);
    want = fs_join(f->dir, "2.log");
    assert_string_equal(path, want);
    free(want);
    free(path);

    crilog_usage_t u;
    assert_int_equal(crilog_usage(f->dir, &u, &err), 0);
    assert_int_equal(u.inodes, 1 + 4 + 6);
    assert_true(u.used_bytes >= 4 * 4096); /* 4 non-empty files, a block each */

    /* a pod directory: container directories inside */
    char *sub = fs_join(f->dir, "app");
    assert_int_equal(fs_mkdir_p(sub, 0755, &err), 0);
    char *p = crilog_run_path(sub, 0);
    write_raw(p, "2026-11-26T14:21:11.000000000Z stdout F x\n");
    crilog_usage_t u2;
    assert_int_equal(crilog_usage(f->dir, &u2, &err), 0);
    assert_int_equal(u2.inodes, u.inodes + 2);
    assert_true(u2.used_bytes > u.used_bytes);
    free(p);
    free(sub);

    char *missing = fs_join(f->dir, "missing");
    assert_int_equal(crilog_usage(missing, &u, &err), 0);
    assert_int_equal(u.inodes, 0);
    assert_int_equal(crilog_list_runs(missing, &counts, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(crilog_find_run(missing, true, &path, &err), -1);
    assert_non_null(strstr(err.msg, "no previous run"));
    free(missing);
}

/* --- containment: one enormous line, one flooding pod ---------------------- */

static size_t dir_bytes(const char *dir, size_t *files)
{
    char names[32][256];
    size_t n = list_files(dir, names, 32), sum = 0;
    for (size_t i = 0; i < n; i++) {
        char *p = fs_join(dir, names[i]);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        sum += (size_t)st.st_size;
        free(p);
    }
    if (files) *files = n;
    return sum;
}

/* A single line of 24 MiB (no newline until the very end, in writes of
 * 1 MiB as a module's stdout brings them) is cut into P records and
 * rotated between them: no file passes max_bytes, the files together stay
 * within max_files * max_bytes, and the reader joins what is left of the
 * line into one line that ends with the line's last bytes. */
static void huge_line_rotates(void **state)
{
    fixture_t *f = *state;
    err_t err;
    const int64_t max = 1024 * 1024;
    crilog_writer_t *w = crilog_open(f->path, max, 3, &err);
    assert_non_null(w);
    size_t chunk = 1024 * 1024;
    char *buf = xmalloc(chunk);
    for (size_t i = 0; i < chunk; i++)
        buf[i] = (char)('a' + i % 26);
    for (int i = 0; i < 24; i++) {
        assert_int_equal(crilog_write(w, CRILOG_STDOUT, buf, chunk, &err), 0);
        size_t nfiles, total = dir_bytes(f->dir, &nfiles);
        assert_true(nfiles <= 3);
        assert_true(total <= 3 * (size_t)max);
    }
    write_str(w, CRILOG_STDOUT, "END\n");
    write_str(w, CRILOG_STDOUT, "next line\n");
    assert_int_equal(crilog_close(w, &err), 0);
    size_t nfiles, total = dir_bytes(f->dir, &nfiles);
    assert_int_equal(nfiles, 3);
    assert_true(total <= 3 * (size_t)max);
    char names[16][256];
    size_t n = list_files(f->dir, names, 16);
    for (size_t i = 0; i < n; i++) {
        char *p = fs_join(f->dir, names[i]);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_true(st.st_size <= max);
        free(p);
    }

    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    char *got = read_logs(f->path, &o);
    size_t len = strlen(got);
    /* Two lines: the kept tail of the long one, then "next line". */
    char *nl = strchr(got, '\n');
    assert_non_null(nl);
    assert_string_equal(nl + 1, "next line\n");
    size_t first = (size_t)(nl - got);
    assert_true(first > 2 * 1024 * 1024 - 64 * 1024 && first < 3 * 1024 * 1024);
    assert_memory_equal(nl - 3, "END", 3);
    /* The kept part is the line's last bytes, in order, without record
     * headers: byte k of the line was 'a' + (k % chunk) % 26. */
    size_t line_len = 24 * chunk;
    for (char *p = got; p < nl - 3; p++) {
        size_t k = line_len - (size_t)(nl - 3 - p);
        if (*p != (char)('a' + (k % chunk) % 26))
            fail_msg("byte %zu of the kept line is %c", (size_t)(p - got), *p);
    }
    assert_true(len == first + 1 + strlen("next line\n"));
    free(got);
    free(buf);
}

/* A 40000-byte line whose P records straddle a rotation reads back whole. */
static void partial_across_rotation(void **state)
{
    fixture_t *f = *state;
    err_t err;
    crilog_writer_t *w = crilog_open(f->path, 24 * 1024, 5, &err);
    assert_non_null(w);
    char *a = repeat('q', 40000);
    write_str(w, CRILOG_STDOUT, "before\n");
    write_str(w, CRILOG_STDOUT, a);
    write_str(w, CRILOG_STDOUT, "\nafter\n");
    assert_int_equal(crilog_close(w, &err), 0);
    size_t nfiles;
    dir_bytes(f->dir, &nfiles);
    assert_true(nfiles >= 2); /* it did rotate */
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    char *got = read_logs(f->path, &o);
    char *want = xasprintf("before\n%s\nafter\n", a);
    assert_string_equal(got, want);
    o.tail_lines = 2;
    free(got);
    got = read_logs(f->path, &o);
    free(want);
    want = xasprintf("%s\nafter\n", a);
    assert_string_equal(got, want);
    free(got);
    free(want);
    free(a);
}

typedef struct flood_arg {
    crilog_writer_t *w;
    atomic_bool stop;
    size_t written;
} flood_arg_t;

static void *flood_main(void *arg)
{
    flood_arg_t *fa = arg;
    char *buf = xmalloc(256 * 1024);
    memset(buf, 'z', 256 * 1024);
    while (!atomic_load(&fa->stop)) {
        crilog_write(fa->w, CRILOG_STDOUT, buf, 256 * 1024, NULL);
        fa->written += 256 * 1024;
    }
    free(buf);
    return NULL;
}

/* One container flooding its log (one enormous line, so every write is P
 * records and rotations) does not hold back another container's writes:
 * each writer has its own lock and file, and nothing is shared. */
static void flood_does_not_slow_others(void **state)
{
    fixture_t *f = *state;
    err_t err;
    char *quiet_dir = fs_join(f->dir, "quiet");
    assert_int_equal(fs_mkdir_p(quiet_dir, 0755, &err), 0);
    char *quiet_path = crilog_run_path(quiet_dir, 0);
    flood_arg_t fa = {.w = crilog_open(f->path, 1024 * 1024, 2, &err)};
    assert_non_null(fa.w);
    crilog_writer_t *quiet = crilog_open(quiet_path, 0, 0, &err);
    assert_non_null(quiet);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, flood_main, &fa), 0);
    time_sleep_ms(50);
    int64_t worst = 0;
    for (int i = 0; i < 100; i++) {
        char line[64];
        snprintf(line, sizeof line, "tick %d\n", i);
        int64_t t0 = time_mono_ns();
        assert_int_equal(crilog_write(quiet, CRILOG_STDOUT, line, strlen(line), &err), 0);
        int64_t d = time_mono_ns() - t0;
        if (d > worst) worst = d;
        time_sleep_ms(2);
    }
    atomic_store(&fa.stop, true);
    pthread_join(t, NULL);
    assert_true(fa.written > 4 * 1024 * 1024); /* it did flood meanwhile */
    /* A write of a short line takes microseconds; 50 ms would mean it
     * waited on the flood. */
    assert_true(worst < 50 * NS_PER_MS);
    assert_int_equal(crilog_close(fa.w, &err), 0);
    assert_int_equal(crilog_close(quiet, &err), 0);
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    o.tail_lines = 1;
    char *got = read_logs(quiet_path, &o);
    assert_string_equal(got, "tick 99\n");
    free(got);
    free(quiet_path);
    free(quiet_dir);
}

int main(void)
{
    /* e.g. WASMLET_TEST_FILTER='follow_*' to run a few tests under valgrind */
    const char *filter = getenv("WASMLET_TEST_FILTER");
    if (filter) cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(long_lines_split, setup, teardown),
        cmocka_unit_test_setup_teardown(streams_interleave, setup, teardown),
        cmocka_unit_test_setup_teardown(partial_last_line, setup, teardown),
        cmocka_unit_test_setup_teardown(rotation_flood, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_continues, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(tail_over_rotated, setup, teardown),
        cmocka_unit_test_setup_teardown(tail_long_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(since_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(limit_bytes_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(timestamps_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(sink_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(follow_latency, setup, teardown),
        cmocka_unit_test_setup_teardown(follow_rotation_and_end, setup, teardown),
        cmocka_unit_test_setup_teardown(follow_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(runs_and_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(huge_line_rotates, setup, teardown),
        cmocka_unit_test_setup_teardown(partial_across_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(flood_does_not_slow_others, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
