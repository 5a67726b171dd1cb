/* test_pod_termination.c: unit tests for pod/termination.h (the
 * termination message of a container: where its file is inside the
 * mounts, what a run wrote there, the log tail of FallbackToLogsOnError)
 * and for the two fields of kube/pod_spec.h it reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/manifest.h"
#include "kube/pod_spec.h"
#include "pod/termination.h"
#include "util/fs.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void host_paths(void **state)
{
    (void)state;
    wasmrt_mount_t m[] = {
        {.host_path = "/h/data", .guest_path = "/data"},
        {.host_path = "/h/deep", .guest_path = "/data/deep/"},
        {.host_path = "/h/dev", .guest_path = "/dev"},
    };
    const char *root;
    char *p = pod_term_host_path(m, 3, "/data/msg", &root);
    assert_string_equal(p, "/h/data/msg");
    assert_string_equal(root, "/h/data");
    free(p);
    /* The longest mount wins. */
    p = pod_term_host_path(m, 3, "/data/deep/x/y", &root);
    assert_string_equal(p, "/h/deep/x/y");
    assert_string_equal(root, "/h/deep");
    free(p);
    p = pod_term_host_path(m, 3, "/dev/termination-log", NULL);
    assert_string_equal(p, "/h/dev/termination-log");
    free(p);
    /* Outside every mount, a prefix that is not a path component, the
     * mount itself, a climb out, a relative path: nothing. */
    assert_null(pod_term_host_path(m, 2, "/dev/termination-log", &root));
    assert_null(root);
    assert_null(pod_term_host_path(m, 3, "/database/x", NULL));
    assert_null(pod_term_host_path(m, 3, "/data", NULL));
    assert_null(pod_term_host_path(m, 3, "/data/", NULL));
    assert_null(pod_term_host_path(m, 3, "/data/../etc/passwd", NULL));
    assert_null(pod_term_host_path(m, 3, "/data/a/../../x", NULL));
    assert_null(pod_term_host_path(m, 3, "data/msg", NULL));
    assert_null(pod_term_host_path(m, 3, NULL, NULL));
    /* A mount at / holds every path. */
    wasmrt_mount_t rootm = {.host_path = "/h/root", .guest_path = "/"};
    p = pod_term_host_path(&rootm, 1, "/dev/termination-log", NULL);
    assert_string_equal(p, "/h/root/dev/termination-log");
    free(p);
}

static void write_file(const char *path, const char *text)
{
    assert_int_equal(fs_write_replace(path, text, strlen(text), 0644, NULL), 0);
}

static void reads_what_the_run_wrote(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/wasmlet-test-term-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    char *vol = xasprintf("%s/vol", dir);
    assert_int_equal(mkdir(vol, 0755), 0);
    char *file = xasprintf("%s/msg", vol);
    char out[POD_TERM_FILE_MAX + 1];

    /* Absent before, written by the run: read. */
    pod_term_stamp_t before;
    pod_term_stamp(file, &before);
    assert_false(before.exists);
    write_file(file, "goodbye");
    pod_term_read(file, vol, &before, out, sizeof out);
    assert_string_equal(out, "goodbye");

    /* Left by an earlier run, untouched by this one: nothing. */
    pod_term_stamp(file, &before);
    pod_term_read(file, vol, &before, out, sizeof out);
    assert_string_equal(out, "");
    /* Rewritten by this run (same size, new inode): read. */
    write_file(file, "goodbyf");
    pod_term_read(file, vol, &before, out, sizeof out);
    assert_string_equal(out, "goodbyf");

    /* Longer than 4096 bytes: the last 4096, as the kubelet reads it. */
    char *big = xmalloc(6001);
    for (int i = 0; i < 6000; i++)
        big[i] = (char)('a' + i % 26);
    big[6000] = '\0';
    write_file(file, big);
    pod_term_read(file, vol, NULL, out, sizeof out);
    assert_int_equal(strlen(out), 4096);
    assert_memory_equal(out, big + 6000 - 4096, 4096);
    /* A small buffer gets the last bytes that fit. */
    char small[8];
    pod_term_read(file, vol, NULL, small, sizeof small);
    assert_string_equal(small, big + 6000 - 7);
    free(big);

    /* A symlink out of the volume is not followed, nor a directory or a
     * FIFO read. */
    char *secret = xasprintf("%s/secret", dir);
    write_file(secret, "host secret");
    char *link = xasprintf("%s/link", vol);
    assert_int_equal(symlink(secret, link), 0);
    pod_term_read(link, vol, NULL, out, sizeof out);
    assert_string_equal(out, "");
    char *sub = xasprintf("%s/sub", vol);
    assert_int_equal(mkdir(sub, 0755), 0);
    pod_term_read(sub, vol, NULL, out, sizeof out);
    assert_string_equal(out, "");
    char *fifo = xasprintf("%s/fifo", vol);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    int64_t t0 = time_mono_ns();
    pod_term_read(fifo, vol, NULL, out, sizeof out);
    assert_string_equal(out, "");
    assert_true(time_mono_ns() - t0 < NS_PER_SEC);
    /* No file at all. */
    pod_term_read(NULL, vol, NULL, out, sizeof out);
    assert_string_equal(out, "");

    fs_rm_rf(dir, NULL);
    free(fifo);
    free(sub);
    free(link);
    free(secret);
    free(file);
    free(vol);
}

static void log_tail(void **state)
{
    (void)state;
    pod_term_tail_t t;
    char out[POD_TERM_LOG_MAX + 1];
    /* Both streams, in order; a last line without a newline counts. */
    pod_term_tail_init(&t);
    pod_term_tail_feed(&t, 1, "one\ntw", 6);
    pod_term_tail_feed(&t, 2, "err\n", 4);
    pod_term_tail_feed(&t, 1, "o\nlast", 6);
    pod_term_tail_finish(&t, out, sizeof out);
    assert_string_equal(out, "one\nerr\ntwo\nlast");
    pod_term_tail_free(&t);

    /* The last 80 lines only. */
    pod_term_tail_init(&t);
    for (int i = 0; i < 200; i++) {
        char line[16];
        int n = snprintf(line, sizeof line, "%d\n", i);
        pod_term_tail_feed(&t, 1, line, (size_t)n);
    }
    pod_term_tail_finish(&t, out, sizeof out);
    assert_true(strncmp(out, "120\n121\n", 8) == 0);
    assert_int_equal(strlen(out), 80 * 4);
    assert_string_equal(out + strlen(out) - 4, "199\n");
    pod_term_tail_free(&t);

    /* At most 2048 bytes, from the start of those lines (the kubelet reads
     * the log forward from there). */
    pod_term_tail_init(&t);
    char line[101];
    memset(line, 'x', 99);
    line[99] = '\n';
    for (int i = 0; i < 100; i++) {
        line[0] = (char)('A' + i % 26);
        pod_term_tail_feed(&t, 2, line, 100);
    }
    pod_term_tail_finish(&t, out, sizeof out);
    assert_int_equal(strlen(out), POD_TERM_LOG_MAX);
    assert_int_equal(out[0], 'A' + 20 % 26); /* line 20 of 0..99 starts the last 80 */
    pod_term_tail_free(&t);

    /* One endless line: its first 2048 bytes, nothing more kept. */
    pod_term_tail_init(&t);
    char chunk[1000];
    memset(chunk, 'y', sizeof chunk);
    for (int i = 0; i < 1000; i++)
        pod_term_tail_feed(&t, 1, chunk, sizeof chunk);
    assert_true(t.partial[1].len <= POD_TERM_LOG_MAX);
    pod_term_tail_finish(&t, out, sizeof out);
    assert_int_equal(strlen(out), POD_TERM_LOG_MAX);
    pod_term_tail_free(&t);

    /* Nothing written: empty. */
    pod_term_tail_init(&t);
    pod_term_tail_finish(&t, out, sizeof out);
    assert_string_equal(out, "");
    pod_term_tail_free(&t);
}

static int parse(const char *container_extra, podspec_t **spec, err_t *err)
{
    char *yaml = xasprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
                           "  containers:\n    - name: c\n      image: c.wasm\n%s",
                           container_extra);
    json_t *docs;
    assert_int_equal(manifest_parse(yaml, strlen(yaml), &docs, err), 0);
    int rc = podspec_parse(json_array_get(docs, 0), spec, err);
    json_decref(docs);
    free(yaml);
    return rc;
}

static void spec_fields(void **state)
{
    (void)state;
    podspec_t *spec;
    err_t err;
    assert_int_equal(parse("", &spec, &err), 0);
    assert_string_equal(spec->containers[0].termination_message_path, "/dev/termination-log");
    assert_int_equal(spec->containers[0].termination_message_policy, TERM_MSG_FILE);
    podspec_free(spec);
    assert_int_equal(parse("      terminationMessagePath: /data/why\n"
                           "      terminationMessagePolicy: FallbackToLogsOnError\n",
                           &spec, &err),
                     0);
    assert_string_equal(spec->containers[0].termination_message_path, "/data/why");
    assert_int_equal(spec->containers[0].termination_message_policy,
                     TERM_MSG_FALLBACK_TO_LOGS_ON_ERROR);
    podspec_free(spec);
    assert_int_equal(parse("      terminationMessagePolicy: File\n", &spec, &err), 0);
    assert_int_equal(spec->containers[0].termination_message_policy, TERM_MSG_FILE);
    podspec_free(spec);
    assert_int_equal(parse("      terminationMessagePolicy: Logs\n", &spec, &err), -1);
    assert_non_null(strstr(err.msg, "spec.containers[0].terminationMessagePolicy"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(host_paths),
        cmocka_unit_test(reads_what_the_run_wrote),
        cmocka_unit_test(log_tail),
        cmocka_unit_test(spec_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
