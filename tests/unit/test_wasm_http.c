/* test_wasm_http.c: serving a wasi:http/proxy component through wasmrt_run
 * (wasm/http.c) and the wrapper's HTTP server (wasmlet_http_server_*): the
 * answers, keep-alive, the access log, a trap's 500, the in-flight limit's
 * 503, the request timeout's 504, the memory limit, and the drain at stop.
 *
 * The component is examples/components/http-hello.c (built into
 * $WASMLET_EXAMPLES as http-hello.component.wasm); the server listens on
 * an ephemeral loopback port and a plain socket client talks to it. */
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"
#include "wasm/wasmrt.h"
#include "wasm_signals.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>

typedef struct server {
    wasmrt_t *rt;
    wasmrt_module_t *mod;
    wasmrt_spec_t spec;
    uint16_t port0; /* ask for an ephemeral port */
    wasmrt_stop_t *stop;
    wasmrt_result_t result;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int port; /* 0 until serving */
    strbuf_t out[3];
    int outcomes[6];
    int done;
} server_t;

static void on_output(void *ctx, int stream, const char *data, size_t len)
{
    server_t *s = ctx;
    pthread_mutex_lock(&s->lock);
    if (stream == 1 || stream == 2) strbuf_append(&s->out[stream], data, len);
    pthread_mutex_unlock(&s->lock);
}

static void on_serving(void *ctx, const char *addrs)
{
    server_t *s = ctx;
    const char *colon = strrchr(addrs, ':');
    pthread_mutex_lock(&s->lock);
    s->port = colon ? atoi(colon + 1) : -1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void on_request_done(void *ctx, const wasmrt_http_request_t *req)
{
    server_t *s = ctx;
    pthread_mutex_lock(&s->lock);
    if (req->outcome >= 0 && req->outcome < 6) s->outcomes[req->outcome]++;
    s->done++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void *serve_main(void *arg)
{
    server_t *s = arg;
    wasmrt_run(s->rt, s->mod, &s->spec, s->stop, &s->result);
    pthread_mutex_lock(&s->lock);
    if (!s->port) s->port = -1; /* never served */
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static const char *const ARGV[] = {"http-hello"};
static const char *const ENV[] = {"POD_NAME=replica-7"};

static server_t *server_start(uint32_t max_in_flight, int64_t timeout_ms, uint64_t memory_limit)
{
    /* Wasmtime's trap handlers, which cmocka replaced (wasm_signals.h). */
    wasm_signals_restore();
    server_t *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    for (int i = 0; i < 3; i++)
        s->out[i] = (strbuf_t)STRBUF_INIT;
    err_t err;
    assert_int_equal(wasmrt_open(NULL, &s->rt, &err), 0);
    const char *dir = getenv("WASMLET_EXAMPLES");
    char *path = xasprintf("%s/http-hello.component.wasm", dir && *dir ? dir : "build/examples");
    if (wasmrt_load_file(s->rt, path, &s->mod, NULL, &err) != 0) fail_msg("%s", err.msg);
    free(path);
    assert_int_equal(wasmrt_module_kind(s->mod), WASMRT_HTTP_COMPONENT);
    s->spec = (wasmrt_spec_t){
        .argv = ARGV,
        .argc = 1,
        .env = ENV,
        .envc = 1,
        .memory_limit = memory_limit,
        .output = on_output,
        .output_ctx = s,
        .http = {.ports = &s->port0,
                 .nports = 1,
                 .bind_addr = "127.0.0.1",
                 .max_in_flight = max_in_flight,
                 .request_timeout_ms = timeout_ms,
                 .serving = on_serving,
                 .request_done = on_request_done,
                 .ctx = s},
    };
    s->stop = wasmrt_stop_new();
    assert_int_equal(pthread_create(&s->thread, NULL, serve_main, s), 0);
    pthread_mutex_lock(&s->lock);
    while (!s->port)
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
    assert_true(s->port > 0);
    return s;
}

/* Stops the server, letting requests drain for grace_ms; joins it. */
static void server_stop(server_t *s, int64_t grace_ms)
{
    wasmrt_stop_drain_by(s->stop, time_mono_ns() + grace_ms * NS_PER_MS);
    wasmrt_stop_request(s->stop);
    pthread_join(s->thread, NULL);
}

static void server_free(server_t *s)
{
    wasmrt_stop_free(s->stop);
    wasmrt_module_release(s->mod);
    wasmrt_close(s->rt);
    for (int i = 0; i < 3; i++)
        strbuf_free(&s->out[i]);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* Waits until n requests are done (bounded). */
static void wait_done(server_t *s, int n)
{
    int64_t end = time_mono_ns() + 10 * NS_PER_SEC;
    pthread_mutex_lock(&s->lock);
    while (s->done < n && time_mono_ns() < end) {
        pthread_mutex_unlock(&s->lock);
        time_sleep_ms(5);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_text(int fd, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_int_equal(write(fd, buf, (size_t)n), n);
}

/* Reads one response (head and a body of Content-Length or chunked, as
 * far as this test's small bodies go: until the terminating chunk or the
 * length) into out; returns its status. */
static int read_response(int fd, strbuf_t *out)
{
    strbuf_reset(out);
    char buf[4096];
    for (;;) {
        const char *text = strbuf_str(out);
        const char *end = strstr(text, "\r\n\r\n");
        if (end) {
            const char *cl = strcasestr(text, "content-length:");
            if (cl && cl < end) {
                size_t need = (size_t)(end + 4 - text) + strtoul(cl + 15, NULL, 10);
                if (out->len >= need) break;
            } else if (strstr(end, "\r\n0\r\n\r\n")) {
                break;
            }
        }
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        strbuf_append(out, buf, (size_t)n);
    }
    int status = 0;
    sscanf(strbuf_str(out), "HTTP/1.1 %d", &status);
    return status;
}

static int get(int port, const char *target, strbuf_t *out)
{
    int fd = dial(port);
    if (fd < 0) return -1;
    send_text(fd, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", target);
    int status = read_response(fd, out);
    close(fd);
    return status;
}

static void test_answers_keepalive_env_and_access_log(void **state)
{
    (void)state;
    server_t *s = server_start(0, 0, 0);
    strbuf_t r = STRBUF_INIT;
    int fd = dial(s->port);
    assert_true(fd >= 0);
    /* Two requests on one connection: keep-alive. */
    send_text(fd, "GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_int_equal(read_response(fd, &r), 200);
    assert_non_null(strstr(strbuf_str(&r), "hello from wasmlet"));
    send_text(fd, "GET /whoami HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_int_equal(read_response(fd, &r), 200);
    assert_non_null(strstr(strbuf_str(&r), "replica-7"));
    close(fd);
    assert_int_equal(get(s->port, "/nothing-here", &r), 404);
    wait_done(s, 3);
    server_stop(s, 1000);
    assert_int_equal(s->result.outcome, WASMRT_STOPPED);
    assert_int_equal(s->result.exit_code, 0);
    assert_int_equal(s->outcomes[WASMRT_HTTP_ANSWERED], 3);
    const char *log = strbuf_str(&s->out[1]);
    assert_non_null(strstr(log, "http: GET / 200 "));
    assert_non_null(strstr(log, "http: GET /nothing-here 404 "));
    strbuf_free(&r);
    server_free(s);
}

static void test_trap_is_500_and_the_server_goes_on(void **state)
{
    (void)state;
    server_t *s = server_start(0, 0, 0);
    strbuf_t r = STRBUF_INIT;
    assert_int_equal(get(s->port, "/trap", &r), 500);
    assert_int_equal(get(s->port, "/", &r), 200);
    wait_done(s, 2);
    server_stop(s, 1000);
    assert_int_equal(s->outcomes[WASMRT_HTTP_TRAPPED], 1);
    assert_int_equal(s->outcomes[WASMRT_HTTP_ANSWERED], 1);
    const char *err = strbuf_str(&s->out[2]);
    assert_non_null(strstr(err, "GET /trap trapped: "));
    assert_non_null(strstr(err, "unreachable"));
    strbuf_free(&r);
    server_free(s);
}

static void test_past_max_in_flight_is_503(void **state)
{
    (void)state;
    server_t *s = server_start(1, 0, 0);
    strbuf_t r = STRBUF_INIT;
    int slow = dial(s->port);
    assert_true(slow >= 0);
    send_text(slow, "GET /sleep?ms=3000 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    /* Let the slow one take the only slot first (else it is the one
     * refused). */
    time_sleep_ms(300);
    int64_t end = time_mono_ns() + 2500 * NS_PER_MS;
    int status = 0, other = 0;
    while (time_mono_ns() < end) {
        status = get(s->port, "/", &r);
        if (status == 503) break;
        other = status;
        time_sleep_ms(20);
    }
    if (status != 503) fail_msg("no 503 while the slot was held (last status %d)", other);
    assert_non_null(strstr(strbuf_str(&r), "too many requests in flight (limit 1)"));
    assert_int_equal(read_response(slow, &r), 200);
    assert_non_null(strstr(strbuf_str(&r), "slept"));
    close(slow);
    server_stop(s, 1000);
    assert_true(s->outcomes[WASMRT_HTTP_OVERLOADED] >= 1);
    strbuf_free(&r);
    server_free(s);
}

static void test_request_timeout_ends_a_blocked_instance(void **state)
{
    (void)state;
    server_t *s = server_start(0, 300, 0);
    strbuf_t r = STRBUF_INIT;
    int64_t t0 = time_mono_ns();
    assert_int_equal(get(s->port, "/sleep?ms=20000", &r), 504);
    int64_t took_ms = (time_mono_ns() - t0) / NS_PER_MS;
    assert_true(took_ms >= 250 && took_ms < 5000);
    assert_non_null(strstr(strbuf_str(&r), "timed out after 300 ms"));
    wait_done(s, 1);
    server_stop(s, 1000);
    assert_int_equal(s->outcomes[WASMRT_HTTP_TIMED_OUT], 1);
    strbuf_free(&r);
    server_free(s);
}

static void test_memory_limit_fails_the_request_not_the_server(void **state)
{
    (void)state;
    server_t *s = server_start(0, 0, 64 * 1024);
    strbuf_t r = STRBUF_INIT;
    assert_int_equal(get(s->port, "/", &r), 500);
    wait_done(s, 1);
    server_stop(s, 1000);
    assert_int_equal(s->outcomes[WASMRT_HTTP_TRAPPED], 1);
    assert_non_null(strstr(strbuf_str(&s->out[2]), "memory"));
    strbuf_free(&r);
    server_free(s);
}

typedef struct slow_client {
    int port;
    int status;
    strbuf_t body;
} slow_client_t;

static void *slow_get(void *arg)
{
    slow_client_t *c = arg;
    c->status = get(c->port, "/sleep?ms=600", &c->body);
    return NULL;
}

static void test_stop_drains_requests_in_flight(void **state)
{
    (void)state;
    server_t *s = server_start(0, 0, 0);
    slow_client_t c = {.port = s->port, .body = STRBUF_INIT};
    pthread_t t;
    pthread_create(&t, NULL, slow_get, &c);
    time_sleep_ms(200); /* the request is in flight */
    server_stop(s, 5000);
    pthread_join(t, NULL);
    assert_int_equal(c.status, 200);
    assert_int_equal(s->result.exit_code, 0);
    /* Stopped: nothing listens any more. */
    assert_int_equal(dial(s->port), -1);
    strbuf_free(&c.body);
    server_free(s);
}

static void test_stop_past_the_grace_ends_what_is_left(void **state)
{
    (void)state;
    server_t *s = server_start(0, 0, 0);
    int fd = dial(s->port);
    send_text(fd, "GET /sleep?ms=30000 HTTP/1.1\r\nHost: test\r\n\r\n");
    time_sleep_ms(200);
    int64_t t0 = time_mono_ns();
    server_stop(s, 100);
    assert_true((time_mono_ns() - t0) / NS_PER_MS < 5000);
    assert_int_equal(s->result.exit_code, 137);
    assert_non_null(strstr(s->result.message, "1 requests were still in flight"));
    assert_int_equal(s->outcomes[WASMRT_HTTP_ENDED], 1);
    close(fd);
    server_free(s);
}

int main(void)
{
    wasm_signals_save();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers_keepalive_env_and_access_log),
        cmocka_unit_test(test_trap_is_500_and_the_server_goes_on),
        cmocka_unit_test(test_past_max_in_flight_is_503),
        cmocka_unit_test(test_request_timeout_ends_a_blocked_instance),
        cmocka_unit_test(test_memory_limit_fails_the_request_not_the_server),
        cmocka_unit_test(test_stop_drains_requests_in_flight),
        cmocka_unit_test(test_stop_past_the_grace_ends_what_is_left),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
