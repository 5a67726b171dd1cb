/* test_parsers.c: the parsers of untrusted input that were taken out of
 * their callers so they could be fuzzed (tests/fuzz): the kubelet API's
 * path split, path classes and logs query (server/), a token endpoint's
 * answer and an image config's entrypoint (image/). Each case here is
 * what the fuzz harness checks as an invariant, pinned with real values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "image/manifest.h"
#include "image/registry.h"
#include "server/endpoints.h"
#include "server/routes.h"
#include "util/time.h"

#include <stdlib.h>
#include <string.h>

/* A query as key=value pairs, NULL-terminated. */
static const char *query_get(void *ctx, const char *key)
{
    const char *const *kv = ctx;
    for (; kv[0]; kv += 2)
        if (strcmp(kv[0], key) == 0) return kv[1];
    return NULL;
}

static void path_segments(void **state)
{
    (void)state;
    char *seg[4] = {NULL};
    assert_int_equal(server_path_segments("/containerLogs/ns/pod/c", "/containerLogs", seg, 3), 3);
    assert_string_equal(seg[0], "ns");
    assert_string_equal(seg[1], "pod");
    assert_string_equal(seg[2], "c");
    for (int i = 0; i < 3; i++)
        free(seg[i]);
    assert_int_equal(server_path_segments("/containerLogs/ns//c", "/containerLogs", seg, 3), -1);
    assert_int_equal(server_path_segments("/containerLogs/a/b/c/d", "/containerLogs", seg, 3), -1);
    /* a path that does not start with the prefix is refused, not read past */
    assert_int_equal(server_path_segments("/pods", "/containerLogs", seg, 3), -1);
    assert_int_equal(server_path_segments("/exec", "/exec", seg, 4), 0);
    assert_string_equal(server_path_class("/containerLogs/a/b/c"), "containerLogs");
    assert_string_equal(server_path_class("/metrics/resource"), "metrics/resource");
    assert_string_equal(server_path_class("/metricsx"), "other");
    assert_string_equal(server_path_class(""), "other");
}

static void logs_query(void **state)
{
    (void)state;
    const int64_t now = INT64_C(1800000000) * NS_PER_SEC;
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    bool follow = false, previous = false;
    char why[256] = "";
    const char *ok[] = {"follow",    "true",   "previous",   "1",    "timestamps",   "",
                        "tailLines", "10",     "limitBytes", "4096", "sinceSeconds", "30",
                        "stream",    "Stderr", NULL};
    assert_int_equal(
        server_logs_query(query_get, (void *)ok, now, &o, &follow, &previous, why, sizeof why), 0);
    assert_true(follow && previous && o.timestamps);
    assert_true(o.tail_lines == 10 && o.limit_bytes == 4096);
    assert_true(o.since_ns == now - 30 * NS_PER_SEC);
    assert_int_equal(o.streams, 1u << CRILOG_STDERR);

    /* sinceSeconds further back than the epoch is everything, not an
     * overflow (it was signed overflow before). */
    crilog_read_opts_t o2 = CRILOG_READ_OPTS_INIT;
    const char *far[] = {"sinceSeconds", "9223372036854775807", NULL};
    assert_int_equal(
        server_logs_query(query_get, (void *)far, now, &o2, &follow, &previous, why, sizeof why),
        0);
    assert_true(o2.since_ns == 0);

    /* A sinceTime before the epoch is everything (found by fuzzing). */
    crilog_read_opts_t o4 = CRILOG_READ_OPTS_INIT;
    const char *early[] = {"sinceTime", "1722-12-06T10:00:00Z", NULL};
    assert_int_equal(
        server_logs_query(query_get, (void *)early, now, &o4, &follow, &previous, why, sizeof why),
        0);
    assert_true(o4.since_ns == 0);

    const char *bad[][3] = {{"tailLines", "-1", NULL},        {"limitBytes", "0", NULL},
                            {"follow", "yes", NULL},          {"sinceSeconds", "0", NULL},
                            {"sinceTime", "yesterday", NULL}, {"stream", "stdout", NULL},
                            {"tailLines", "1x", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        crilog_read_opts_t o3 = CRILOG_READ_OPTS_INIT;
        why[0] = '\0';
        assert_int_equal(server_logs_query(query_get, (void *)bad[i], now, &o3, &follow, &previous,
                                           why, sizeof why),
                         -1);
        assert_non_null(strstr(why, bad[i][0]));
    }
    const char *both[] = {"sinceSeconds", "5", "sinceTime", "2026-01-01T00:00:00Z", NULL};
    assert_int_equal(
        server_logs_query(query_get, (void *)both, now, &o, &follow, &previous, why, sizeof why),
        -1);
}

static void token_answers(void **state)
{
    (void)state;
    char *tok = NULL;
    err_t err;
    const char *good = "{\"token\":\"abc\",\"expires_in\":300}";
    assert_int_equal(image_registry_token_parse(good, strlen(good), &tok, &err), 0);
    assert_string_equal(tok, "abc");
    free(tok);
    const char *oauth = "{\"token\":\"\",\"access_token\":\"xyz\"}";
    assert_int_equal(image_registry_token_parse(oauth, strlen(oauth), &tok, &err), 0);
    assert_string_equal(tok, "xyz");
    free(tok);
    /* A token becomes a header line: a line break in it would let the
     * token server add headers to every registry request. */
    const char *crlf = "{\"token\":\"a\\r\\nX-Evil: 1\"}";
    assert_int_equal(image_registry_token_parse(crlf, strlen(crlf), &tok, &err), -1);
    assert_null(tok);
    assert_non_null(strstr(err.msg, "line break"));
    const char *nul = "{\"token\":\"a\\u0000b\"}";
    assert_int_equal(image_registry_token_parse(nul, strlen(nul), &tok, &err), -1);
    const char *none[] = {"", "[]", "{\"token\":5}", "{}", "not json"};
    for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
        assert_int_equal(image_registry_token_parse(none[i], strlen(none[i]), &tok, &err), -1);
        assert_null(tok);
    }
}

static void config_entrypoint(void **state)
{
    (void)state;
    image_desc_t layer = {.media_type = (char *)MT_OCI_LAYER_GZIP};
    image_manifest_t m = {.media_type = (char *)MT_OCI_MANIFEST,
                          .config = {.media_type = (char *)MT_OCI_CONFIG},
                          .layers = &layer,
                          .n_layers = 1};
    err_t err;
    const char *abs = "{\"config\":{\"Entrypoint\":[\"/app.wasm\"]}}";
    char *p = image_config_entrypoint(&m, abs, strlen(abs), &err);
    assert_string_equal(p, "/app.wasm");
    free(p);
    const char *rel = "{\"config\":{\"Cmd\":[\"bin/x.wasm\"],\"WorkingDir\":\"/srv\"}}";
    p = image_config_entrypoint(&m, rel, strlen(rel), &err);
    assert_string_equal(p, "/srv/bin/x.wasm");
    free(p);
    /* A relative WorkingDir counts from the root: always an absolute path
     * (found by fuzzing: "-srv" gave "-srv/bin/x.wasm"). */
    const char *wdrel = "{\"config\":{\"Cmd\":[\"x.wasm\"],\"WorkingDir\":\"-srv\"}}";
    p = image_config_entrypoint(&m, wdrel, strlen(wdrel), &err);
    assert_string_equal(p, "/-srv/x.wasm");
    free(p);
    const char *wdslash = "{\"config\":{\"Cmd\":[\"x.wasm\"],\"WorkingDir\":\"/\"}}";
    p = image_config_entrypoint(&m, wdslash, strlen(wdslash), &err);
    assert_string_equal(p, "/x.wasm");
    free(p);
    const char *sh = "{\"os\":\"linux\",\"config\":{\"Entrypoint\":[\"/bin/sh\"]}}";
    assert_null(image_config_entrypoint(&m, sh, strlen(sh), &err));
    assert_non_null(strstr(err.msg, "is not a .wasm file"));
    assert_null(image_config_entrypoint(&m, "[1]", 3, &err));
    assert_non_null(strstr(err.msg, "not a JSON object"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(path_segments),
        cmocka_unit_test(logs_query),
        cmocka_unit_test(token_answers),
        cmocka_unit_test(config_entrypoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
