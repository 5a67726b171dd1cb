/*
 * http-hello: a wasi:http/proxy component (it exports
 * wasi:http/incoming-handler), the workload of the HTTP-serving tests. It is
 * a reactor (no main), adapted with the preview-1 reactor adapter so that
 * getenv and fopen work. Each request is answered by path:
 *
 *   /           200 "hello from wasmlet\n"
 *   POST /echo  200 with the request body as it came
 *   /trap       a trap (unreachable), so the host answers 500 itself
 *   /ready      200 "ready\n" when the file named by $READY_FILE exists,
 *               503 "not ready\n" otherwise (or when READY_FILE is unset)
 *   /whoami     200 with $POD_NAME (the replica that answered) and a newline
 *   /sleep?ms=N 200 "slept\n" after N milliseconds (at most 600000): a request
 *               that stays in flight, for the limit, timeout and drain tests
 *   anything else 404 "not found\n"
 */
// component-world: http-hello
// component-adapter: reactor
// wasm-flags: -mexec-model=reactor
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_hello.h"

typedef struct {
    uint8_t *ptr;
    size_t len;
} http_hello_buf_t;

/* Reads the whole request body into BUF (malloc'ed); 0 or -1. */
static int http_hello_read_body(wasi_http_types_borrow_incoming_request_t req,
                                http_hello_buf_t *buf)
{
    wasi_http_types_own_incoming_body_t body;
    wasi_http_types_own_input_stream_t in;
    buf->ptr = NULL;
    buf->len = 0;
    if (!wasi_http_types_method_incoming_request_consume(req, &body)) return -1;
    if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body),
                                                     &in)) {
        wasi_http_types_incoming_body_drop_own(body);
        return -1;
    }
    for (;;) {
        http_hello_list_u8_t data;
        wasi_io_streams_stream_error_t err;
        if (!wasi_io_streams_method_input_stream_blocking_read(
                wasi_io_streams_borrow_input_stream(in), 65536, &data, &err)) {
            if (err.tag == WASI_IO_STREAMS_STREAM_ERROR_LAST_OPERATION_FAILED)
                wasi_io_error_error_drop_own(err.val.last_operation_failed);
            break;
        }
        uint8_t *grown = realloc(buf->ptr, buf->len + data.len + 1);
        if (grown) {
            memcpy(grown + buf->len, data.ptr, data.len);
            buf->ptr = grown;
            buf->len += data.len;
        }
        http_hello_list_u8_free(&data);
    }
    wasi_io_streams_input_stream_drop_own(in);
    wasi_http_types_incoming_body_drop_own(body);
    return 0;
}

/* Sends STATUS with BODY (LEN bytes) as the response. */
static void http_hello_respond(wasi_http_types_own_response_outparam_t out, uint16_t status,
                               const void *body, size_t len)
{
    wasi_http_types_own_outgoing_response_t resp =
        wasi_http_types_constructor_outgoing_response(wasi_http_types_constructor_fields());
    wasi_http_types_borrow_outgoing_response_t r = wasi_http_types_borrow_outgoing_response(resp);
    wasi_http_types_method_outgoing_response_set_status_code(r, status);
    wasi_http_types_own_outgoing_body_t ob;
    wasi_http_types_method_outgoing_response_body(r, &ob);
    /* The response goes out first, so the body streams to the client. */
    wasi_http_types_result_own_outgoing_response_error_code_t result = {.is_err = false,
                                                                        .val.ok = resp};
    wasi_http_types_static_response_outparam_set(out, &result);

    wasi_http_types_own_output_stream_t os;
    if (wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(ob), &os)) {
        const uint8_t *p = body;
        for (size_t off = 0; off < len;) {
            size_t n = len - off < 4096 ? len - off : 4096; /* the call's limit */
            http_hello_list_u8_t chunk = {(uint8_t *)p + off, n};
            wasi_io_streams_stream_error_t err;
            if (!wasi_io_streams_method_output_stream_blocking_write_and_flush(
                    wasi_io_streams_borrow_output_stream(os), &chunk, &err)) {
                if (err.tag == WASI_IO_STREAMS_STREAM_ERROR_LAST_OPERATION_FAILED)
                    wasi_io_error_error_drop_own(err.val.last_operation_failed);
                break;
            }
            off += n;
        }
        wasi_io_streams_output_stream_drop_own(os);
    }
    wasi_http_types_error_code_t code;
    wasi_http_types_static_outgoing_body_finish(ob, NULL, &code);
}

void exports_wasi_http_incoming_handler_handle(
    exports_wasi_http_incoming_handler_own_incoming_request_t request,
    exports_wasi_http_incoming_handler_own_response_outparam_t response_out)
{
    wasi_http_types_borrow_incoming_request_t req =
        wasi_http_types_borrow_incoming_request(request);
    wasi_http_types_method_t method;
    wasi_http_types_method_incoming_request_method(req, &method);
    http_hello_string_t path_s = {0};
    char path[256] = "/";
    if (wasi_http_types_method_incoming_request_path_with_query(req, &path_s)) {
        snprintf(path, sizeof path, "%.*s", (int)path_s.len, (const char *)path_s.ptr);
        http_hello_string_free(&path_s);
    }
    char *query = strchr(path, '?');
    if (query) *query++ = '\0';

    if (strcmp(path, "/") == 0) {
        static const char hello[] = "hello from wasmlet\n";
        http_hello_respond(response_out, 200, hello, sizeof hello - 1);
    } else if (strcmp(path, "/echo") == 0 && method.tag == WASI_HTTP_TYPES_METHOD_POST) {
        http_hello_buf_t buf;
        if (http_hello_read_body(req, &buf) == 0)
            http_hello_respond(response_out, 200, buf.ptr, buf.len);
        else
            http_hello_respond(response_out, 400, "no body\n", 8);
        free(buf.ptr);
    } else if (strcmp(path, "/trap") == 0) {
        __builtin_trap();
    } else if (strcmp(path, "/whoami") == 0) {
        const char *name = getenv("POD_NAME");
        char text[300];
        int n = snprintf(text, sizeof text, "%s\n", name ? name : "unknown");
        http_hello_respond(response_out, 200, text, (size_t)n);
    } else if (strcmp(path, "/sleep") == 0) {
        long ms = query && strncmp(query, "ms=", 3) == 0 ? strtol(query + 3, NULL, 10) : 0;
        if (ms < 0) ms = 0;
        if (ms > 600000) ms = 600000;
        wasi_clocks_monotonic_clock_own_pollable_t p =
            wasi_clocks_monotonic_clock_subscribe_duration((uint64_t)ms * 1000000u);
        wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(p));
        wasi_io_poll_pollable_drop_own(p);
        http_hello_respond(response_out, 200, "slept\n", 6);
    } else if (strcmp(path, "/ready") == 0) {
        const char *flag = getenv("READY_FILE");
        FILE *f = flag ? fopen(flag, "r") : NULL;
        if (f) {
            fclose(f);
            http_hello_respond(response_out, 200, "ready\n", 6);
        } else {
            http_hello_respond(response_out, 503, "not ready\n", 10);
        }
    } else {
        http_hello_respond(response_out, 404, "not found\n", 10);
    }
    wasi_http_types_method_free(&method);
    wasi_http_types_incoming_request_drop_own(request);
}
