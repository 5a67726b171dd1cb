/* test_util.c: unit tests for util/ (time formats, strbuf, fs helpers, the
 * release of a thread's malloc cache). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/err.h"
#include "util/fs.h"
#include "util/heap.h"
#include "util/httpmux.h"
#include "util/strbuf.h"
#include "util/sync.h"
#include "util/time.h"

#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static void rfc3339_round_trip(void **state)
{
    (void)state;
    char buf[64];
    int64_t ns = INT64_C(1795702871123456789);
    time_format_rfc3339nano(buf, sizeof buf, ns);
    assert_string_equal(buf, "2026-11-26T14:21:11.123456789Z");
    int64_t back = 0;
    assert_int_equal(time_parse_rfc3339(buf, &back), 0);
    assert_true(back == ns);
    assert_int_equal(time_parse_rfc3339("2026-11-26T15:21:11+01:00", &back), 0);
    assert_true(back == INT64_C(1795702871) * NS_PER_SEC);
    assert_int_equal(time_parse_rfc3339("2026-11-26T14:21:11.5Z", &back), 0);
    assert_true(back == INT64_C(1795702871500000000));
    assert_int_equal(time_parse_rfc3339("yesterday", &back), -1);
    assert_int_equal(time_parse_rfc3339("2026-11-26T14:21:11", &back), -1);
    /* A short or malformed offset is refused, not read past its end (found
     * by fuzzing: "-22:2" moved the parser beyond the string). */
    assert_int_equal(time_parse_rfc3339("2026-11-26T14:21:11-22:2", &back), -1);
    assert_int_equal(time_parse_rfc3339("2026-11-26T14:21:11+1:00", &back), -1);
    assert_int_equal(time_parse_rfc3339("2026-11-26T14:21:11+24:00", &back), -1);
    time_format_rfc3339(buf, sizeof buf, ns);
    assert_string_equal(buf, "2026-11-26T14:21:11Z");
}

static void strbuf_grows(void **state)
{
    (void)state;
    strbuf_t sb = STRBUF_INIT;
    assert_string_equal(strbuf_str(&sb), "");
    for (int i = 0; i < 1000; i++)
        strbuf_printf(&sb, "%d,", i);
    assert_true(sb.len > 3000);
    assert_memory_equal(sb.data, "0,1,2,", 6);
    char *s = strbuf_take(&sb);
    assert_null(sb.data);
    free(s);
}

static void err_prefixes(void **state)
{
    (void)state;
    err_t err;
    assert_int_equal(err_set(&err, "no such file"), -1);
    err_prefix(&err, "image %s", "./a.wasm");
    err_prefix(&err, "container %s", "app");
    assert_string_equal(err.msg, "container app: image ./a.wasm: no such file");
}

static void *name_me(void *arg)
{
    thread_set_name("a-name-longer-than-fifteen");
    char *comm = NULL;
    size_t len = 0;
    err_t err;
    if (fs_read_all("/proc/thread-self/comm", &comm, &len, &err) == -1) return NULL;
    strncpy(arg, comm, 31);
    free(comm);
    return NULL;
}

/* Whether a thread of this process has the name. */
static bool thread_named(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[64], *comm = NULL;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        if (fs_read_all(path, &comm, NULL, NULL) == 0) {
            comm[strcspn(comm, "\n")] = '\0';
            found = strcmp(comm, name) == 0;
        }
        free(comm);
    }
    closedir(d);
    return found;
}

static void thread_names(void **state)
{
    (void)state;
    /* The first 15 bytes, as the kernel keeps them. */
    char got[32] = {0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, name_me, got), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_string_equal(got, "a-name-longer-t\n");
    /* A subsystem's thread says what it is: the API requests' driver. */
    assert_false(thread_named("api-mux"));
    httpmux_t *m = httpmux_new();
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, "file:///dev/null");
    assert_int_equal(httpmux_perform(m, h), CURLE_OK);
    assert_true(thread_named("api-mux"));
    curl_easy_cleanup(h);
    httpmux_free(m);
}

static mode_t current_umask(void)
{
    mode_t m = umask(0);
    umask(m);
    return m;
}

static void fs_atomic_and_rm(void **state)
{
    (void)state;
    char dir[] = "/tmp/wasmlet-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    err_t err;
    char *deep = fs_join(dir, "/a/b/c/");
    assert_int_equal(fs_mkdir_p(deep, 0755, &err), 0);
    assert_int_equal(fs_mkdir_p(deep, 0755, &err), 0); /* there already */
    char *file = fs_join(deep, "f");
    assert_int_equal(fs_write_atomic(file, "hello", 5, 0644, &err), 0);
    /* A file in the way, as the leaf or as an ancestor, is an error. */
    assert_int_equal(fs_mkdir_p(file, 0755, &err), -1);
    assert_non_null(strstr(err.msg, "not a directory"));
    char *under = fs_join(file, "x/y");
    assert_int_equal(fs_mkdir_p(under, 0700, &err), -1);
    free(under);
    /* Only the missing ones are made, each with the mode given. */
    char *two = fs_join(dir, "a/d/e");
    assert_int_equal(fs_mkdir_p(two, 0700, &err), 0);
    struct stat dst;
    assert_int_equal(stat(two, &dst), 0);
    assert_int_equal(dst.st_mode & 0777, 0700 & ~current_umask());
    free(two);
    char *data;
    size_t len;
    assert_int_equal(fs_read_all(file, &data, &len, &err), 0);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    free(data);
    /* A symlink inside the tree that points outside it must not be followed. */
    char outside[] = "/tmp/wasmlet-test-out-XXXXXX";
    assert_non_null(mkdtemp(outside));
    char *keep = fs_join(outside, "keep");
    assert_int_equal(fs_write_atomic(keep, "x", 1, 0644, &err), 0);
    char *link = fs_join(dir, "escape");
    assert_int_equal(symlink(outside, link), 0);
    assert_int_equal(fs_rm_rf(dir, &err), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(stat(keep, &st), 0);
    assert_int_equal(fs_rm_rf(outside, &err), 0);
    assert_int_equal(fs_read_all("/nonexistent/x", &data, &len, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/x"));
    free(deep);
    free(file);
    free(keep);
    free(link);
}

/* Where the file system takes the hint (ext4, as the node's data dir
 * usually is), the directory reads back as a top directory and stays
 * usable; where it does not, the directory is left as it was. */
static void spread_subdirs_marks_top_dir(void **state)
{
    (void)state;
    char dir[] = "/tmp/wasmlet-test-spread-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    int before = 0, after = 0;
    bool readable = ioctl(fd, FS_IOC_GETFLAGS, &before) == 0;
    bool took = fs_spread_subdirs(dir);
    if (readable) assert_int_equal(ioctl(fd, FS_IOC_GETFLAGS, &after), 0);
    if (took) {
        assert_true(after & FS_TOPDIR_FL);
        assert_true(fs_spread_subdirs(dir)); /* again: already marked */
    } else {
        assert_int_equal(after, before);
    }
    close(fd);
    char *sub = fs_join(dir, "pod");
    assert_int_equal(mkdir(sub, 0750), 0);
    assert_int_equal(rmdir(sub), 0);
    free(sub);
    assert_false(fs_spread_subdirs("/nonexistent/wasmlet-test"));
    assert_int_equal(rmdir(dir), 0);
}

#if defined(__SANITIZE_ADDRESS__)
#define ASAN_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_ALLOCATOR 1
#endif
#endif

/* In a thread of its own, whose malloc cache starts empty: chunks it
 * frees stay "in use" to glibc's arenas (its cache holds them) until
 * heap_release_thread_cache hands them back. ASan's allocator has no such
 * cache and mallinfo2 does not see it: there, the release must only run
 * and leave the heap usable. The thread measures; the test asserts. */
typedef struct {
    size_t in_use, cached, released;
    bool usable;
} cache_probe_t;

static void *cache_thread(void *arg)
{
    cache_probe_t *p = arg;
    enum { N = 7 };
    void *small[N], *large[N];
    /* Once first: glibc keeps what a thread start allocates (its TLS
     * vector) with the stack it caches for the next one. */
    heap_release_thread_cache();
    for (int i = 0; i < N; i++) {
        small[i] = malloc(200);
        large[i] = malloc(900);
    }
    p->in_use = mallinfo2().uordblks;
    for (int i = 0; i < N; i++) {
        free(small[i]);
        free(large[i]);
    }
    p->cached = mallinfo2().uordblks;
    heap_release_thread_cache();
    p->released = mallinfo2().uordblks;
    char *c = malloc(900);
    if (c) memset(c, 1, 900);
    p->usable = c != NULL;
    free(c);
    return NULL;
}

/* Runs fn(arg) in a thread of its own and waits for it. */
static void run_in_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fn, arg), 0);
    pthread_join(t, NULL);
}

static void heap_cache_released(void **state)
{
    (void)state;
    cache_probe_t p = {0};
    run_in_thread(cache_thread, &p);
    assert_true(p.usable);
#ifndef ASAN_ALLOCATOR
    assert_int_equal(p.cached, p.in_use); /* the frees went to the thread's cache */
    assert_true(p.released + 7 * (200 + 900) <= p.cached); /* and now they are back */
#endif
}

/* Each ask is answered by one release per thread. */
typedef struct {
    bool answers[7];
} ask_probe_t;

static void *ask_thread(void *arg)
{
    ask_probe_t *p = arg;
    (void)heap_release_if_asked(); /* whatever was asked before this thread */
    p->answers[1] = heap_release_if_asked();
    heap_release_ask();
    p->answers[2] = heap_release_if_asked();
    p->answers[3] = heap_release_if_asked();
    heap_release_ask();
    heap_release_ask();
    p->answers[4] = heap_release_if_asked();
    p->answers[5] = heap_release_if_asked();
    return NULL;
}

static void heap_release_once_per_ask(void **state)
{
    (void)state;
    ask_probe_t p = {0};
    run_in_thread(ask_thread, &p);
    assert_false(p.answers[1]);
    assert_true(p.answers[2]);
    assert_false(p.answers[3]);
    assert_true(p.answers[4]); /* two asks, one release */
    assert_false(p.answers[5]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc3339_round_trip),
        cmocka_unit_test(strbuf_grows),
        cmocka_unit_test(err_prefixes),
        cmocka_unit_test(fs_atomic_and_rm),
        cmocka_unit_test(thread_names),
        cmocka_unit_test(heap_cache_released),
        cmocka_unit_test(spread_subdirs_marks_top_dir),
        cmocka_unit_test(heap_release_once_per_ask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
