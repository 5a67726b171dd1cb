/*
 * http-get: an outbound HTTP GET over wasi:http/outgoing-handler, for the
 * tests of component HTTP. `http-get URL` (http:// or https://) prints
 * "status: N" and a newline, then the response body as it came, and exits
 * 0 whatever the status.
 *
 * When the host refuses the request or it fails it prints "http-get: URL:
 * <wasi:http error-code name>" (for example "http-get: http://10.1.2.3/:
 * HTTP-request-denied" or "...: destination-IP-prohibited") and exits 1;
 * usage errors (no URL, an unsupported scheme) exit 2.
 */
// component-world: http-get
#include <stdio.h>
#include <string.h>

#include "http_get.h"

#include "wasi_errors.h"

static int http_get_fail(const char *url, const wasi_http_types_error_code_t *code)
{
    fprintf(stderr, "http-get: %s: %s\n", url, wasi_http_error_name(code->tag));
    return 1;
}

int main(int argc, char **argv)
{
    const char *url = argc == 2 ? argv[1] : "";
    wasi_http_types_scheme_t scheme = {.tag = WASI_HTTP_TYPES_SCHEME_HTTP};
    const char *rest = NULL;
    if (strncmp(url, "http://", 7) == 0) {
        rest = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        scheme.tag = WASI_HTTP_TYPES_SCHEME_HTTPS;
        rest = url + 8;
    }
    if (argc != 2 || !rest || !*rest) {
        fprintf(stderr, "usage: http-get http[s]://HOST[:PORT][/PATH]\n");
        return 2;
    }
    /* URL = scheme "://" authority [path-with-query] */
    char authority[512];
    size_t alen = strcspn(rest, "/?");
    snprintf(authority, sizeof authority, "%.*s", (int)alen, rest);
    const char *path = rest[alen] == '/' ? rest + alen : "/";

    wasi_http_types_own_outgoing_request_t req =
        wasi_http_types_constructor_outgoing_request(wasi_http_types_constructor_fields());
    wasi_http_types_borrow_outgoing_request_t r = wasi_http_types_borrow_outgoing_request(req);
    http_get_string_t a, p;
    http_get_string_set(&a, authority);
    http_get_string_set(&p, path);
    if (!wasi_http_types_method_outgoing_request_set_scheme(r, &scheme) ||
        !wasi_http_types_method_outgoing_request_set_authority(r, &a) ||
        !wasi_http_types_method_outgoing_request_set_path_with_query(r, &p)) {
        fprintf(stderr, "http-get: %s: the host refused the URL's parts\n", url);
        return 2;
    }

    wasi_http_types_own_future_incoming_response_t future;
    wasi_http_types_error_code_t code;
    if (!wasi_http_outgoing_handler_handle(req, NULL, &future, &code))
        return http_get_fail(url, &code);
    wasi_http_types_borrow_future_incoming_response_t f =
        wasi_http_types_borrow_future_incoming_response(future);
    wasi_http_types_result_result_own_incoming_response_error_code_void_t got;
    while (!wasi_http_types_method_future_incoming_response_get(f, &got)) {
        wasi_io_poll_own_pollable_t poll =
            wasi_http_types_method_future_incoming_response_subscribe(f);
        wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(poll));
        wasi_io_poll_pollable_drop_own(poll);
    }
    if (got.is_err) {
        fprintf(stderr, "http-get: %s: the response was already taken\n", url);
        return 1;
    }
    if (got.val.ok.is_err) return http_get_fail(url, &got.val.ok.val.err);
    wasi_http_types_own_incoming_response_t resp = got.val.ok.val.ok;
    wasi_http_types_borrow_incoming_response_t rb = wasi_http_types_borrow_incoming_response(resp);
    printf("status: %u\n", wasi_http_types_method_incoming_response_status(rb));

    int rc = 0;
    wasi_http_types_own_incoming_body_t body;
    wasi_http_types_own_input_stream_t in;
    if (!wasi_http_types_method_incoming_response_consume(rb, &body) ||
        !wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body),
                                                     &in)) {
        fprintf(stderr, "http-get: %s: no body\n", url);
        return 1;
    }
    for (;;) {
        http_get_list_u8_t data;
        wasi_io_streams_stream_error_t err;
        if (!wasi_io_streams_method_input_stream_blocking_read(
                wasi_io_streams_borrow_input_stream(in), 65536, &data, &err)) {
            if (err.tag == WASI_IO_STREAMS_STREAM_ERROR_LAST_OPERATION_FAILED) {
                fprintf(stderr, "http-get: %s: the body was cut short\n", url);
                wasi_io_error_error_drop_own(err.val.last_operation_failed);
                rc = 1;
            }
            break;
        }
        fwrite(data.ptr, 1, data.len, stdout);
        http_get_list_u8_free(&data);
    }
    fflush(stdout);
    /* Children before parents: the stream, the body, the response. */
    wasi_io_streams_input_stream_drop_own(in);
    wasi_http_types_incoming_body_drop_own(body);
    wasi_http_types_incoming_response_drop_own(resp);
    wasi_http_types_future_incoming_response_drop_own(future);
    return rc;
}
