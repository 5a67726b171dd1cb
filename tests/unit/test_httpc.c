/* test_httpc.c: unit tests for util/httpc.h: the capped body sink (alone
 * and as libcurl's write callback in a real transfer, where hitting the cap
 * stops it with a clear message) and checked options that name the one
 * libcurl refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/fs.h"
#include "util/httpc.h"
#include "util/strbuf.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void sink_caps_the_body(void **state)
{
    (void)state;
    strbuf_t sb = STRBUF_INIT;
    httpc_sink_t s = {.buf = &sb, .max = 10};
    assert_true(httpc_sink_add(&s, "12345", 5));
    assert_true(httpc_sink_add(&s, "67890", 5)); /* exactly the cap: kept */
    assert_false(s.too_big);
    assert_int_equal(httpc_sink_write("x", 1, 1, &s), 0); /* one more byte stops it */
    assert_true(s.too_big);
    assert_int_equal(sb.len, 10);
    assert_memory_equal(sb.data, "1234567890", 10);
    /* A length that would wrap size_t arithmetic is refused too. */
    httpc_sink_t s2 = {.buf = &sb, .max = 10};
    assert_false(httpc_sink_add(&s2, "", SIZE_MAX));
    strbuf_free(&sb);

    /* No buffer: everything read and dropped, never "too big". */
    httpc_sink_t drop = {.buf = NULL, .max = 0};
    assert_int_equal(httpc_sink_write("abc", 1, 3, &drop), 3);
    assert_false(drop.too_big);

    err_t err;
    httpc_sink_t mib = {.max = 4u << 20}, kib = {.max = 64u << 10}, odd = {.max = 1000};
    assert_int_equal(httpc_sink_error(&mib, "GET /v2/x", &err), -1);
    assert_string_equal(err.msg, "GET /v2/x: response larger than 4 MiB");
    httpc_sink_error(&kib, "GET /a", &err);
    assert_string_equal(err.msg, "GET /a: response larger than 64 KiB");
    httpc_sink_error(&odd, "GET /b", &err);
    assert_string_equal(err.msg, "GET /b: response larger than 1000 bytes");
}

/* A real libcurl transfer (a local file, so no network) into a sink whose
 * cap is below the file's size: the transfer stops with a write error and
 * the sink says why; above it, the whole body arrives. */
static void cap_stops_a_transfer(void **state)
{
    (void)state;
    err_t err;
    assert_int_equal(httpc_global_init(&err), 0);
    char dir[] = "/tmp/wasmlet-test-httpc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = fs_join(dir, "body");
    char data[5000];
    memset(data, 'z', sizeof data);
    assert_int_equal(fs_write_atomic(path, data, sizeof data, 0644, &err), 0);
    char url[256];
    snprintf(url, sizeof url, "file://%s", path);

    for (int round = 0; round < 2; round++) {
        size_t cap = round == 0 ? 4096 : 8192;
        CURL *h = curl_easy_init();
        assert_non_null(h);
        strbuf_t sb = STRBUF_INIT;
        httpc_sink_t sink = {.buf = &sb, .max = cap};
        httpc_setup_t s = {.h = h};
        HTTPC_SET(&s, CURLOPT_URL, url);
        HTTPC_SET(&s, CURLOPT_WRITEFUNCTION, httpc_sink_write);
        HTTPC_SET(&s, CURLOPT_WRITEDATA, &sink);
        assert_int_equal(httpc_setup_done(&s, &err), 0);
        CURLcode rc = curl_easy_perform(h);
        if (round == 0) {
            assert_int_equal(rc, CURLE_WRITE_ERROR);
            assert_true(sink.too_big);
            assert_true(sb.len <= cap);
        } else {
            assert_int_equal(rc, CURLE_OK);
            assert_false(sink.too_big);
            assert_int_equal(sb.len, sizeof data);
        }
        strbuf_free(&sb);
        curl_easy_cleanup(h);
    }
    unlink(path);
    rmdir(dir);
    free(path);
}

static void refused_options_are_errors(void **state)
{
    (void)state;
    err_t err;
    assert_int_equal(httpc_global_init(&err), 0);
    CURL *h = curl_easy_init();
    char errbuf[CURL_ERROR_SIZE];
    httpc_setup_t s = {.h = h};
    httpc_setup_request(&s, "http://127.0.0.1:1/", errbuf, NULL, "PATCH", "{}", 2, false);
    assert_int_equal(httpc_setup_done(&s, &err), 0);
    /* A protocol libcurl does not know, then a good option: the first
     * failure is the one reported, by name. */
    HTTPC_SET(&s, CURLOPT_PROTOCOLS_STR, "gopherish");
    HTTPC_SET(&s, CURLOPT_NOSIGNAL, 1L);
    assert_int_equal(httpc_setup_done(&s, &err), -1);
    assert_non_null(strstr(err.msg, "CURLOPT_PROTOCOLS_STR"));
    assert_string_equal(s.what, "CURLOPT_PROTOCOLS_STR");
    curl_easy_cleanup(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sink_caps_the_body),
        cmocka_unit_test(cap_stops_a_transfer),
        cmocka_unit_test(refused_options_are_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
