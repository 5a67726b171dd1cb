/* test_kube_watch.c: unit tests for kube/watch (one watch stream, and the
 * list+watch reflector) against the scripted HTTP server in kube_fixture.h:
 * events split at arbitrary byte boundaries, bookmarks, ERROR events and
 * 410 Gone, replays, dropped connections and resume, backoff, stopping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/client.h"
#include "kube/watch.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include "kube_fixture.h"

#include <signal.h>

/* Stopping must take about a second at most (the progress callback's
 * period); valgrind slows everything, so it gets more room. */
static long stop_limit_ms(void)
{
    return getenv("WASMLET_VALGRIND") ? 3000 : 1500;
}

/* --- recording handler --------------------------------------------------- */

typedef struct seen {
    pthread_mutex_t mu;
    strbuf_t log; /* "ADDED a 101\n..." */
    int lists;
    strbuf_t list_log; /* "100: a,b,c\n" per list */
    int fail_at;       /* fail the n-th event (1-based), 0: never */
    int events;
} seen_t;

static void seen_init(seen_t *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

static void seen_free(seen_t *s)
{
    strbuf_free(&s->log);
    strbuf_free(&s->list_log);
    pthread_mutex_destroy(&s->mu);
}

static const char *meta(json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
    return v ? v : "";
}

static int on_event(void *ctx, kube_event_type_t type, json_t *obj)
{
    seen_t *s = ctx;
    pthread_mutex_lock(&s->mu);
    int n = ++s->events;
    strbuf_printf(&s->log, "%s %s %s\n", kube_event_type_name(type), meta(obj, "name"),
                  meta(obj, "resourceVersion"));
    pthread_mutex_unlock(&s->mu);
    return s->fail_at && n == s->fail_at ? -1 : 0;
}

static int on_list(void *ctx, json_t *items, const char *rv)
{
    seen_t *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->lists++;
    strbuf_printf(&s->list_log, "%s:", rv);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) strbuf_printf(&s->list_log, " %s", meta(it, "name"));
    strbuf_putc(&s->list_log, '\n');
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int seen_events(seen_t *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->events;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static char *seen_log(seen_t *s)
{
    pthread_mutex_lock(&s->mu);
    char *l = xstrdup(strbuf_str(&s->log));
    pthread_mutex_unlock(&s->mu);
    return l;
}

/* --- event text ------------------------------------------------------------ */

static char *event_text(const char *type, const char *name, const char *rv)
{
    return xasprintf("{\"type\":\"%s\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\","
                     "\"resourceVersion\":\"%s\"}}}\n",
                     type, name, rv);
}

static void send_event(fx_conn_t *c, const char *type, const char *name, const char *rv)
{
    char *e = event_text(type, name, rv);
    fx_chunk(c, e, strlen(e));
    free(e);
}

static void send_error(fx_conn_t *c, int code, const char *reason, const char *message)
{
    char *e = xasprintf("{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"status\":"
                        "\"Failure\",\"message\":\"%s\",\"reason\":\"%s\",\"code\":%d}}\n",
                        message, reason, code);
    fx_chunk(c, e, strlen(e));
    free(e);
}

static kube_client_t *plain_client(const char *url)
{
    kube_kubeconfig_t *cfg = kube_kubeconfig_new(url, NULL, NULL, NULL, NULL);
    kube_client_t *c;
    err_t err;
    assert_int_equal(kube_client_new(cfg, &c, &err), 0);
    kube_kubeconfig_free(cfg);
    return c;
}

/* --- one stream ------------------------------------------------------------ */

typedef struct split_ctx {
    const char *payload;
    size_t len;
    unsigned seed;
    size_t max_chunk;
} split_ctx_t;

/* Sends the payload as HTTP chunks of pseudo-random sizes, pausing now and
 * then so the client also sees the pieces in separate reads. */
static int split_handler(fx_conn_t *conn, const fx_req_t *req, void *ctx)
{
    (void)req;
    split_ctx_t *s = ctx;
    fx_stream_begin(conn);
    unsigned seed = s->seed;
    for (size_t off = 0; off < s->len;) {
        size_t n = 1 + (size_t)rand_r(&seed) % s->max_chunk;
        if (n > s->len - off) n = s->len - off;
        if (fx_chunk(conn, s->payload + off, n) == -1) return -1;
        off += n;
        if (rand_r(&seed) % 512 == 0) fx_sleep_ms(1);
    }
    fx_stream_end(conn);
    return 0;
}

static void stream_split_chunks(void **state)
{
    (void)state;
    /* A MODIFIED event with a big object, so events also straddle reads. */
    strbuf_t big = STRBUF_INIT;
    for (int i = 0; i < 3000; i++)
        strbuf_printf(&big, "line %d of the log\\n", i);
    strbuf_t p = STRBUF_INIT;
    char *e = event_text("ADDED", "a", "2");
    strbuf_puts(&p, e);
    free(e);
    strbuf_puts(&p, "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":"
                    "{\"resourceVersion\":\"3\"}}}\n");
    strbuf_printf(&p,
                  "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":"
                  "\"a\",\"resourceVersion\":\"4\",\"annotations\":{\"big\":\"%s\"}}}}\r\n",
                  strbuf_str(&big));
    strbuf_puts(&p, "\n"); /* blank lines between events are tolerated */
    e = event_text("DELETED", "a", "5");
    strbuf_puts(&p, e);
    free(e);
    strbuf_puts(&p, "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":"
                    "{\"resourceVersion\":\"7\"}}}"); /* the last line lacks its newline */

    size_t max_chunks[] = {1, 2, 3, 7, 64, 4096, 100000};
    for (size_t k = 0; k < sizeof max_chunks / sizeof max_chunks[0]; k++) {
        split_ctx_t sc = {p.data, p.len, (unsigned)(k * 7919 + 1), max_chunks[k]};
        fx_t fx;
        fx_start(&fx, split_handler, &sc, NULL);
        kube_client_t *c = plain_client(fx.url);
        seen_t s;
        seen_init(&s);
        kube_watch_result_t res;
        memset(&res, 0, sizeof res);
        err_t err;
        int rc = kube_watch_stream(c, "/api/v1/pods?watch=1", on_event, &s, NULL, &res, &err);
        if (rc != 0) fail_msg("max chunk %zu: %s", max_chunks[k], err.msg);
        char *want = xasprintf("ADDED a 2\nMODIFIED a 4\nDELETED a 5\n");
        char *log = seen_log(&s);
        assert_string_equal(log, want);
        free(log);
        free(want);
        assert_int_equal(res.status, 200);
        assert_int_equal(res.events, 3);
        assert_int_equal(res.bookmarks, 2);
        assert_string_equal(res.resource_version, "7");
        assert_false(res.gone);
        assert_false(res.stopped);
        seen_free(&s);
        kube_client_free(c);
        fx_stop(&fx);
    }
    strbuf_free(&p);
    strbuf_free(&big);
}

typedef struct script {
    int mode;
} script_t;

enum { GONE_EVENT, GONE_HTTP, FORBIDDEN, REPLAY, NON_NUMERIC, MALFORMED, HOLD };

static int script_handler(fx_conn_t *conn, const fx_req_t *req, void *ctx)
{
    (void)req;
    script_t *s = ctx;
    switch (s->mode) {
    case GONE_EVENT:
        fx_stream_begin(conn);
        send_event(conn, "ADDED", "a", "11");
        send_error(conn, 410, "Expired", "too old resource version: 5 (10)");
        fx_stream_end(conn);
        return 0;
    case GONE_HTTP:
        fx_respond_status(conn, 410, "Gone", "resourceVersion too old");
        return 0;
    case FORBIDDEN:
        fx_respond_status(conn, 403, "Forbidden",
                          "pods is forbidden: User \\\"x\\\" cannot watch resource");
        return 0;
    case REPLAY:
        fx_stream_begin(conn);
        send_event(conn, "MODIFIED", "a", "9");
        send_event(conn, "MODIFIED", "a", "10");
        send_event(conn, "MODIFIED", "a", "11");
        send_event(conn, "MODIFIED", "b", "11"); /* same version again: dropped */
        send_event(conn, "MODIFIED", "a", "100");
        fx_stream_end(conn);
        return 0;
    case NON_NUMERIC:
        fx_stream_begin(conn);
        send_event(conn, "ADDED", "a", "abc");
        send_event(conn, "ADDED", "b", "abd");
        fx_stream_end(conn);
        return 0;
    case MALFORMED:
        fx_stream_begin(conn);
        send_event(conn, "ADDED", "a", "1");
        fx_chunk(conn, "{\"type\":\"ADDED\",\"obj\n", 21);
        fx_stream_end(conn);
        return 0;
    case HOLD:
        fx_stream_begin(conn);
        send_event(conn, "ADDED", "a", "1");
        fx_wait_client_gone(conn, 20000);
        return -1;
    }
    return -1;
}

static int run_script(int mode, const char *from_rv, seen_t *s, kube_watch_result_t *res,
                      err_t *err)
{
    script_t sc = {mode};
    fx_t fx;
    fx_start(&fx, script_handler, &sc, NULL);
    kube_client_t *c = plain_client(fx.url);
    memset(res, 0, sizeof *res);
    snprintf(res->resource_version, sizeof res->resource_version, "%s", from_rv);
    int rc = kube_watch_stream(c, "/api/v1/pods?watch=1", on_event, s, NULL, res, err);
    kube_client_free(c);
    fx_stop(&fx);
    return rc;
}

static void stream_errors(void **state)
{
    (void)state;
    seen_t s;
    seen_init(&s);
    kube_watch_result_t res;
    err_t err;

    assert_int_equal(run_script(GONE_EVENT, "", &s, &res, &err), -1);
    assert_true(res.gone);
    assert_true(res.error_event);
    assert_int_equal(res.events, 1);
    assert_string_equal(res.resource_version, "11");
    assert_string_equal(res.reason, "Expired");
    assert_non_null(strstr(err.msg, "too old resource version"));

    assert_int_equal(run_script(GONE_HTTP, "", &s, &res, &err), -1);
    assert_true(res.gone);
    assert_false(res.error_event);
    assert_int_equal(res.status, 410);

    assert_int_equal(run_script(FORBIDDEN, "", &s, &res, &err), -1);
    assert_false(res.gone);
    assert_int_equal(res.status, 403);
    assert_string_equal(res.reason, "Forbidden");
    assert_non_null(strstr(err.msg, "cannot watch resource (403 Forbidden)"));

    assert_int_equal(run_script(MALFORMED, "", &s, &res, &err), -1);
    assert_non_null(strstr(err.msg, "malformed event"));
    assert_int_equal(res.events, 1);

    /* A handler failure ends the stream and says so. */
    s.fail_at = s.events + 2;
    assert_int_equal(run_script(REPLAY, "", &s, &res, &err), -1);
    assert_true(res.handler_failed);
    assert_int_equal(res.events, 1);
    assert_string_equal(res.resource_version, "9");
    seen_free(&s);
}

static void stream_drops_replays(void **state)
{
    (void)state;
    seen_t s;
    seen_init(&s);
    kube_watch_result_t res;
    err_t err;
    assert_int_equal(run_script(REPLAY, "10", &s, &res, &err), 0);
    char *log = seen_log(&s);
    assert_string_equal(log, "MODIFIED a 11\nMODIFIED a 100\n"); /* 100 > 11 numerically */
    free(log);
    assert_string_equal(res.resource_version, "100");
    seen_free(&s);

    seen_init(&s);
    assert_int_equal(run_script(NON_NUMERIC, "abc", &s, &res, &err), 0);
    log = seen_log(&s);
    assert_string_equal(log, "ADDED b abd\n");
    free(log);
    seen_free(&s);
}

typedef struct stream_run {
    kube_client_t *c;
    atomic_bool stop;
    seen_t *seen;
    kube_watch_result_t res;
    err_t err;
    int rc;
    long done_ms;
} stream_run_t;

static void *stream_main(void *arg)
{
    stream_run_t *r = arg;
    r->rc = kube_watch_stream(r->c, "/api/v1/pods?watch=1", on_event, r->seen, &r->stop, &r->res,
                              &r->err);
    r->done_ms = fx_now_ms();
    return NULL;
}

static void stream_stop_blocked(void **state)
{
    (void)state;
    script_t sc = {HOLD};
    fx_t fx;
    fx_start(&fx, script_handler, &sc, NULL);
    seen_t s;
    seen_init(&s);
    stream_run_t r = {.c = plain_client(fx.url), .seen = &s};
    pthread_t th;
    pthread_create(&th, NULL, stream_main, &r);
    long until = fx_now_ms() + 5000;
    while (seen_events(&s) < 1 && fx_now_ms() < until)
        fx_sleep_ms(5);
    assert_int_equal(seen_events(&s), 1);
    fx_sleep_ms(1200); /* idle, blocked in the transfer */
    long t0 = fx_now_ms();
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    long took = r.done_ms - t0;
    if (took > stop_limit_ms()) fail_msg("stop took %ld ms", took);
    assert_int_equal(r.rc, 0);
    assert_true(r.res.stopped);
    assert_string_equal(r.res.resource_version, "1");
    kube_client_free(r.c);
    fx_stop(&fx);
    seen_free(&s);
}

/* --- reflector ------------------------------------------------------------ */

/* A scripted API server: what the n-th LIST and the n-th WATCH get is up to
 * the test's step functions. */
typedef struct apiserver apiserver_t;
typedef int (*step_fn)(apiserver_t *a, fx_conn_t *conn, const fx_req_t *req, int n);

struct apiserver {
    step_fn list, watch;
    atomic_int lists, watches;
};

static int apiserver_handler(fx_conn_t *conn, const fx_req_t *req, void *ctx)
{
    apiserver_t *a = ctx;
    if (strstr(req->target, "watch=1"))
        return a->watch(a, conn, req, atomic_fetch_add(&a->watches, 1));
    return a->list(a, conn, req, atomic_fetch_add(&a->lists, 1));
}

typedef struct reflector_run {
    kube_client_t *c;
    kube_reflector_opts_t opts;
    seen_t *seen;
    atomic_bool stop;
    int rc;
    err_t err;
    long done_ms;
} reflector_run_t;

static void *reflector_main(void *arg)
{
    reflector_run_t *r = arg;
    kube_reflector_handlers_t h = {.on_list = on_list, .on_event = on_event};
    r->rc = kube_reflector_run(r->c, &r->opts, &h, r->seen, &r->stop, &r->err);
    r->done_ms = fx_now_ms();
    return NULL;
}

static void wait_for(atomic_int *counter, int n)
{
    long until = fx_now_ms() + 10000;
    while (atomic_load(counter) < n && fx_now_ms() < until)
        fx_sleep_ms(5);
    assert_true(atomic_load(counter) >= n);
}

/* Waits up to 10 s for the handlers to have seen n events. */
static void wait_for_events(seen_t *s, int n)
{
    long until = fx_now_ms() + 10000;
    int seen = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        seen = s->events;
        pthread_mutex_unlock(&s->mu);
        if (seen >= n || fx_now_ms() >= until) break;
        fx_sleep_ms(5);
    }
    assert_true(seen >= n);
}

/* Stops the reflector and checks it ended promptly. */
static void stop_reflector(reflector_run_t *r, pthread_t th)
{
    long t0 = fx_now_ms();
    atomic_store(&r->stop, true);
    pthread_join(th, NULL);
    long took = r->done_ms - t0;
    if (took > stop_limit_ms()) fail_msg("stop took %ld ms", took);
}

static void hold(fx_conn_t *conn)
{
    fx_stream_begin(conn);
    fx_wait_client_gone(conn, 30000);
}

static int resume_list(apiserver_t *a, fx_conn_t *conn, const fx_req_t *req, int n)
{
    (void)a;
    (void)n;
    char cont[64];
    if (!fx_query(req, "continue", cont, sizeof cont))
        fx_respond_json(conn, 200,
                        "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"100\","
                        "\"continue\":\"tok/1\"},\"items\":[{\"metadata\":{\"name\":\"a\"}},"
                        "{\"metadata\":{\"name\":\"b\"}}]}");
    else if (strcmp(cont, "tok/1") == 0)
        fx_respond_json(conn, 200,
                        "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"100\"},"
                        "\"items\":[{\"metadata\":{\"name\":\"c\"}}]}");
    else
        fx_respond_status(conn, 400, "BadRequest", "bad continue");
    return 0;
}

static int resume_watch(apiserver_t *a, fx_conn_t *conn, const fx_req_t *req, int n)
{
    (void)a;
    (void)req;
    if (n == 0) {
        fx_stream_begin(conn);
        send_event(conn, "ADDED", "d", "101");
        send_event(conn, "MODIFIED", "a", "102");
        fx_chunk(conn, "{\"type\":\"MODIFIED\",\"obj", 23); /* cut off mid-event */
        return -1; /* close without the final chunk: a dropped connection */
    }
    if (n == 1) {
        fx_stream_begin(conn);
        send_event(conn, "MODIFIED", "a", "102"); /* replayed: must not be delivered twice */
        send_event(conn, "DELETED", "b", "103");
        const char *bm = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":"
                         "{\"resourceVersion\":\"110\"}}}\n";
        fx_chunk(conn, bm, strlen(bm));
        fx_stream_end(conn); /* the server's timeout: a normal end */
        return 0;
    }
    /* One event, so the test can tell the client has read this answer's
     * head before it stops the reflector (the watch counts as a 200). */
    fx_stream_begin(conn);
    send_event(conn, "ADDED", "e", "111");
    fx_wait_client_gone(conn, 30000);
    return -1;
}

static void assert_query(const fx_req_t *r, const char *name, const char *want)
{
    char v[256];
    if (!fx_query(r, name, v, sizeof v)) {
        if (want) fail_msg("%s: no %s", r->target, name);
        return;
    }
    if (!want) fail_msg("%s: unexpected %s", r->target, name);
    assert_string_equal(v, want);
}

static void reflector_list_watch_resume(void **state)
{
    (void)state;
    apiserver_t a = {.list = resume_list, .watch = resume_watch};
    fx_t fx;
    fx_start(&fx, apiserver_handler, &a, NULL);
    seen_t s;
    seen_init(&s);
    reflector_run_t r = {.c = plain_client(fx.url), .seen = &s};
    r.opts = (kube_reflector_opts_t){.list_path = "/api/v1/pods",
                                     .field_selector = "spec.nodeName=n1",
                                     .label_selector = "app in (web)",
                                     .watch_timeout_s = 60,
                                     .page_size = 2};
    pthread_t th;
    pthread_create(&th, NULL, reflector_main, &r);
    wait_for(&a.watches, 3);
    wait_for_events(&s, 4);
    stop_reflector(&r, th);
    assert_int_equal(r.rc, 0);

    assert_int_equal(s.lists, 1);
    assert_string_equal(strbuf_str(&s.list_log), "100: a b c\n");
    char *log = seen_log(&s);
    assert_string_equal(log, "ADDED d 101\nMODIFIED a 102\nDELETED b 103\nADDED e 111\n");
    free(log);

    /* What the server was asked, in order: two pages, then three watches. */
    fx_req_t q;
    assert_true(fx_get(&fx, 0, &q));
    char path[256];
    fx_path(&q, path, sizeof path);
    assert_string_equal(path, "/api/v1/pods");
    assert_query(&q, "limit", "2");
    assert_query(&q, "fieldSelector", "spec.nodeName=n1");
    assert_query(&q, "labelSelector", "app in (web)");
    assert_query(&q, "continue", NULL);
    assert_query(&q, "watch", NULL);
    fx_release(&q);
    assert_true(fx_get(&fx, 1, &q));
    assert_query(&q, "continue", "tok/1");
    assert_query(&q, "fieldSelector", "spec.nodeName=n1");
    fx_release(&q);
    const char *want_rv[] = {"100", "102", "110"};
    for (int i = 0; i < 3; i++) {
        assert_true(fx_get(&fx, 2 + (size_t)i, &q));
        fx_path(&q, path, sizeof path);
        assert_string_equal(path, "/api/v1/pods");
        assert_query(&q, "watch", "1");
        assert_query(&q, "allowWatchBookmarks", "true");
        assert_query(&q, "resourceVersion", want_rv[i]);
        assert_query(&q, "fieldSelector", "spec.nodeName=n1");
        assert_query(&q, "labelSelector", "app in (web)");
        char t[32];
        assert_true(fx_query(&q, "timeoutSeconds", t, sizeof t));
        long ts = strtol(t, NULL, 10);
        assert_true(ts >= 60 && ts < 120);
        fx_release(&q);
    }
    /* Resumes after progress are immediate: no backoff in between. */
    fx_req_t w0, w2;
    assert_true(fx_get(&fx, 2, &w0));
    assert_true(fx_get(&fx, 4, &w2));
    assert_true(w2.at_ms - w0.at_ms < 700);
    fx_release(&w0);
    fx_release(&w2);

    kube_client_metrics_t m;
    kube_client_metrics_snapshot(r.c, &m);
    assert_int_equal(m.requests[KUBE_VERB_WATCH][2], 3);
    assert_int_equal(m.requests[KUBE_VERB_GET][2], 2);
    kube_client_free(r.c);
    fx_stop(&fx);
    seen_free(&s);
}

static int relist_list(apiserver_t *a, fx_conn_t *conn, const fx_req_t *req, int n)
{
    (void)a;
    (void)req;
    if (n == 0)
        fx_respond_json(conn, 200,
                        "{\"metadata\":{\"resourceVersion\":\"200\"},\"items\":"
                        "[{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"150\"}}]}");
    else
        fx_respond_json(conn, 200,
                        "{\"metadata\":{\"resourceVersion\":\"300\"},\"items\":"
                        "[{\"metadata\":{\"name\":\"b\",\"resourceVersion\":\"201\"}}]}");
    return 0;
}

static int relist_watch(apiserver_t *a, fx_conn_t *conn, const fx_req_t *req, int n)
{
    (void)a;
    (void)req;
    if (n == 0) {
        fx_stream_begin(conn);
        send_event(conn, "ADDED", "b", "201");
        send_error(conn, 410, "Expired", "too old resource version: 200 (250)");
        fx_stream_end(conn);
        return 0;
    }
    if (n == 1) {
        fx_stream_begin(conn);
        send_event(conn, "DELETED", "b", "301");
        fx_stream_end(conn);
        return 0;
    }
    hold(conn);
    return -1;
}

static void reflector_relist_on_gone(void **state)
{
    (void)state;
    apiserver_t a = {.list = relist_list, .watch = relist_watch};
    fx_t fx;
    fx_start(&fx, apiserver_handler, &a, NULL);
    seen_t s;
    seen_init(&s);
    reflector_run_t r = {.c = plain_client(fx.url), .seen = &s};
    r.opts = (kube_reflector_opts_t){.list_path = "/api/v1/pods"};
    pthread_t th;
    pthread_create(&th, NULL, reflector_main, &r);
    wait_for(&a.watches, 3);
    stop_reflector(&r, th);
    assert_int_equal(r.rc, 0);
    assert_int_equal(atomic_load(&a.lists), 2);
    /* The caller sees both full lists; "a" vanished while the watch was gone. */
    assert_string_equal(strbuf_str(&s.list_log), "200: a\n300: b\n");
    char *log = seen_log(&s);
    assert_string_equal(log, "ADDED b 201\nDELETED b 301\n");
    free(log);
    /* Requests: LIST, WATCH(rv 200), LIST, WATCH(rv 300), WATCH(rv 301). */
    fx_req_t q;
    const char *want[] = {NULL, "200", NULL, "300", "301"};
    for (int i = 0; i < 5; i++) {
        assert_true(fx_get(&fx, (size_t)i, &q));
        assert_int_equal(strstr(q.target, "watch=1") != NULL, want[i] != NULL);
        if (want[i])
            assert_query(&q, "resourceVersion", want[i]);
        else
            assert_query(&q, "limit", "500");
        fx_release(&q);
    }
    kube_client_free(r.c);
    fx_stop(&fx);
    seen_free(&s);
}

static int backoff_list(apiserver_t *a, fx_conn_t *conn, const fx_req_t *req, int n)
{
    (void)a;
    (void)req;
    if (n < 3)
        fx_respond_status(conn, 500, "InternalError", "etcd is sad");
    else
        fx_respond_json(conn, 200, "{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[]}");
    return 0;
}

static int backoff_watch(apiserver_t *a, fx_conn_t *conn, const fx_req_t *req, int n)
{
    (void)a;
    (void)req;
    switch (n) {
    case 0:
        fx_respond_status(conn, 503, "ServiceUnavailable", "try later");
        return 0;
    case 1:
        fx_stream_begin(conn);
        send_event(conn, "ADDED", "a", "5");
        return -1; /* dropped after progress */
    case 2:
        fx_respond_status(conn, 500, "InternalError", "again");
        return 0;
    default:
        hold(conn);
        return -1;
    }
}

static long gap(fx_t *fx, size_t i, size_t j)
{
    fx_req_t a, b;
    assert_true(fx_get(fx, i, &a));
    assert_true(fx_get(fx, j, &b));
    long d = b.at_ms - a.at_ms;
    fx_release(&a);
    fx_release(&b);
    return d;
}

static void assert_between(long v, long lo, long hi, const char *what)
{
    if (v < lo || v > hi) fail_msg("%s: %ld ms not in [%ld, %ld]", what, v, lo, hi);
}

static void reflector_backoff(void **state)
{
    (void)state;
    apiserver_t a = {.list = backoff_list, .watch = backoff_watch};
    fx_t fx;
    fx_start(&fx, apiserver_handler, &a, NULL);
    seen_t s;
    seen_init(&s);
    reflector_run_t r = {.c = plain_client(fx.url), .seen = &s};
    r.opts = (kube_reflector_opts_t){
        .list_path = "/api/v1/pods", .backoff_initial_ms = 100, .backoff_max_ms = 1600};
    pthread_t th;
    pthread_create(&th, NULL, reflector_main, &r);
    wait_for(&a.watches, 4);
    stop_reflector(&r, th);
    assert_int_equal(r.rc, 0);
    /* Requests: LIST x4 (3 failed), WATCH 503, WATCH ok+drop, WATCH 500, WATCH. */
    assert_int_equal(atomic_load(&a.lists), 4);
    long slack = getenv("WASMLET_VALGRIND") ? 400 : 200;
    /* Each failure waits the backoff plus up to half again, doubling. */
    assert_between(gap(&fx, 0, 1), 95, 150 + slack, "1st backoff");
    assert_between(gap(&fx, 1, 2), 195, 300 + slack, "2nd backoff");
    assert_between(gap(&fx, 2, 3), 395, 600 + slack, "3rd backoff");
    /* A successful LIST alone does not reset it (the watch has to work)... */
    assert_between(gap(&fx, 4, 5), 795, 1200 + slack, "4th backoff");
    /* ... a watch that delivered an event does: resume at once, then 100. */
    assert_between(gap(&fx, 5, 6), 0, slack, "resume after progress");
    assert_between(gap(&fx, 6, 7), 95, 150 + slack, "backoff after reset");
    /* 5xx on a watch resumes from the last version instead of relisting. */
    fx_req_t q;
    const char *want[] = {"1", "1", "5", "5"};
    for (int i = 0; i < 4; i++) {
        assert_true(fx_get(&fx, 4 + (size_t)i, &q));
        assert_query(&q, "resourceVersion", want[i]);
        fx_release(&q);
    }
    kube_client_metrics_t m;
    kube_client_metrics_snapshot(r.c, &m);
    assert_int_equal(m.requests[KUBE_VERB_GET][5], 3);
    assert_int_equal(m.requests[KUBE_VERB_WATCH][5], 2);
    kube_client_free(r.c);
    fx_stop(&fx);
    seen_free(&s);
}

static int always_500(apiserver_t *a, fx_conn_t *conn, const fx_req_t *req, int n)
{
    (void)a;
    (void)req;
    (void)n;
    fx_respond_status(conn, 500, "InternalError", "down");
    return 0;
}

static void reflector_stop_during_backoff(void **state)
{
    (void)state;
    apiserver_t a = {.list = always_500, .watch = always_500};
    fx_t fx;
    fx_start(&fx, apiserver_handler, &a, NULL);
    seen_t s;
    seen_init(&s);
    reflector_run_t r = {.c = plain_client(fx.url), .seen = &s};
    r.opts = (kube_reflector_opts_t){.list_path = "/api/v1/pods", .backoff_initial_ms = 10000};
    pthread_t th;
    pthread_create(&th, NULL, reflector_main, &r);
    wait_for(&a.lists, 1);
    fx_sleep_ms(200);
    stop_reflector(&r, th);
    assert_int_equal(r.rc, 0);
    assert_int_equal(atomic_load(&a.lists), 1);
    assert_int_equal(s.lists, 0);
    kube_client_free(r.c);
    fx_stop(&fx);
    seen_free(&s);
}

static int one_list(apiserver_t *a, fx_conn_t *conn, const fx_req_t *req, int n)
{
    (void)a;
    (void)req;
    (void)n;
    fx_respond_json(conn, 200, "{\"metadata\":{\"resourceVersion\":\"7\"},\"items\":[]}");
    return 0;
}

static int two_events(apiserver_t *a, fx_conn_t *conn, const fx_req_t *req, int n)
{
    (void)a;
    (void)req;
    (void)n;
    fx_stream_begin(conn);
    send_event(conn, "ADDED", "a", "8");
    send_event(conn, "ADDED", "b", "9");
    fx_stream_end(conn);
    return 0;
}

static void reflector_handler_failure(void **state)
{
    (void)state;
    apiserver_t a = {.list = one_list, .watch = two_events};
    fx_t fx;
    fx_start(&fx, apiserver_handler, &a, NULL);
    seen_t s;
    seen_init(&s);
    s.fail_at = 2;
    reflector_run_t r = {.c = plain_client(fx.url), .seen = &s};
    r.opts = (kube_reflector_opts_t){.list_path = "/api/v1/pods"};
    pthread_t th;
    pthread_create(&th, NULL, reflector_main, &r);
    pthread_join(th, NULL);
    assert_int_equal(r.rc, -1);
    assert_non_null(strstr(r.err.msg, "handler failed"));
    assert_int_equal(s.events, 2);
    kube_client_free(r.c);
    fx_stop(&fx);
    seen_free(&s);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stream_split_chunks),
        cmocka_unit_test(stream_errors),
        cmocka_unit_test(stream_drops_replays),
        cmocka_unit_test(stream_stop_blocked),
        cmocka_unit_test(reflector_list_watch_resume),
        cmocka_unit_test(reflector_relist_on_gone),
        cmocka_unit_test(reflector_backoff),
        cmocka_unit_test(reflector_stop_during_backoff),
        cmocka_unit_test(reflector_handler_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
