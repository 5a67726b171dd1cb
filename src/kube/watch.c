/* watch.c: watch streams and the list+watch reflector (see watch.h).
 *
 * A watch response is a never-ending chunked body of JSON events, one per
 * line. libcurl hands us the bytes in whatever pieces the network produced,
 * so the write callback appends to a line buffer and parses only complete
 * lines; an event cut off by a dropped connection is never delivered, and
 * the next watch resumes from the last event that was.
 *
 * Stopping: libcurl calls the transfer-progress callback about once a second
 * even on an idle connection, and that callback polls the caller's atomic
 * stop flag. That bounds the stop latency at ~1 s without a wake-up pipe or
 * a multi handle; the reflector sleeps its backoff in 100 ms slices for the
 * same reason.
 *
 * resourceVersions are opaque strings to Kubernetes clients, but to drop
 * replays we need "not newer than". All current API servers use etcd's
 * decimal revisions, so two decimal strings compare numerically; anything
 * else compares only for equality, which still drops exact replays.
 *
 * The reflector's loop is the classic one: LIST (paged, one consistent
 * snapshot), hand the whole list over so the caller can notice deletions it
 * missed, then WATCH from the list's resourceVersion with bookmarks on and a
 * randomized timeout (so a fleet of nodes does not reconnect in lockstep).
 * A watch that made progress is resumed at once; failures back off
 * exponentially with jitter. 410 Gone means the server compacted past our
 * version, and only a relist can recover. */
#include "kube/watch.h"
#include "util/diag.h"
#include "util/heap.h"
#include "util/httpc.h"
#include "util/json.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WATCH_MAX_LINE (64u << 20) /* one event; etcd caps objects at ~1.5 MiB */
#define WATCH_MAX_ERRBODY (64u << 10)
#define WATCH_GRACE_S 30 /* client-side cut-off beyond the server's timeoutSeconds */

const char *kube_event_type_name(kube_event_type_t type)
{
    switch (type) {
    case KUBE_EVENT_ADDED:
        return "ADDED";
    case KUBE_EVENT_MODIFIED:
        return "MODIFIED";
    case KUBE_EVENT_DELETED:
        return "DELETED";
    }
    return "?";
}

/* --- resourceVersion order ------------------------------------------------ */

static bool is_decimal(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

/* Whether rv is newer than last (see the top comment). */
static bool rv_newer(const char *rv, const char *last)
{
    if (!*last || !*rv) return true;
    if (is_decimal(rv) && is_decimal(last)) {
        while (*rv == '0' && rv[1])
            rv++;
        while (*last == '0' && last[1])
            last++;
        size_t a = strlen(rv), b = strlen(last);
        return a != b ? a > b : strcmp(rv, last) > 0;
    }
    return strcmp(rv, last) != 0;
}

static const char *object_rv(json_t *obj)
{
    const char *rv = json_str_at(obj, "metadata", "resourceVersion");
    return rv ? rv : "";
}

static void set_rv(kube_watch_result_t *res, const char *rv)
{
    if (*rv) snprintf(res->resource_version, sizeof res->resource_version, "%s", rv);
}

/* --- one stream ----------------------------------------------------------- */

typedef struct stream {
    CURL *h;
    kube_watch_fn fn;
    void *ctx;
    const atomic_bool *stop;
    kube_watch_result_t *res;
    err_t *err;
    strbuf_t buf;     /* unparsed bytes: at most one partial line after each chunk */
    size_t scanned;   /* bytes of buf already known to hold no '\n' */
    strbuf_t errbody; /* body of a non-200 answer */
    bool failed;      /* err is set and the transfer was aborted on purpose */
    bool too_big;
} stream_t;

static bool gone_status(long code, const char *reason, const char *message)
{
    return code == 410 || (reason && (!strcmp(reason, "Expired") || !strcmp(reason, "Gone"))) ||
           (message && strstr(message, "too old resource version"));
}

/* Handles one complete event line; returns -1 to end the stream. */
static int stream_event(stream_t *s, const char *line, size_t len)
{
    while (len && (line[0] == ' ' || line[0] == '\t' || line[0] == '\r'))
        line++, len--;
    while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
        len--;
    if (!len) return 0;
    json_error_t jerr;
    json_t *ev = json_loadb(line, len, 0, &jerr);
    if (!ev) {
        err_set(s->err, "watch: malformed event: %s", jerr.text);
        return -1;
    }
    int rc = 0;
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    if (!type || !json_is_object(obj)) {
        rc = err_set(s->err, "watch: event without type or object");
        goto out;
    }
    if (!strcmp(type, "BOOKMARK")) {
        s->res->bookmarks++;
        if (rv_newer(object_rv(obj), s->res->resource_version)) set_rv(s->res, object_rv(obj));
        goto out;
    }
    if (!strcmp(type, "ERROR")) {
        json_int_t code = json_integer_value(json_object_get(obj, "code"));
        const char *reason = json_string_value(json_object_get(obj, "reason"));
        const char *message = json_string_value(json_object_get(obj, "message"));
        s->res->error_event = true;
        s->res->gone = gone_status((long)code, reason, message);
        snprintf(s->res->reason, sizeof s->res->reason, "%s", reason ? reason : "");
        rc = err_set(s->err, "watch: %s (%lld %s)", message ? message : "error event",
                     (long long)code, reason ? reason : "");
        goto out;
    }
    kube_event_type_t et;
    if (!strcmp(type, "ADDED"))
        et = KUBE_EVENT_ADDED;
    else if (!strcmp(type, "MODIFIED"))
        et = KUBE_EVENT_MODIFIED;
    else if (!strcmp(type, "DELETED"))
        et = KUBE_EVENT_DELETED;
    else
        goto out; /* a type from a newer server: nothing we know to do with it */
    const char *rv = object_rv(obj);
    if (!rv_newer(rv, s->res->resource_version)) goto out; /* a replay */
    if (s->fn(s->ctx, et, obj) != 0) {
        s->res->handler_failed = true;
        rc = err_set(s->err, "watch: %s event handler failed", type);
        goto out;
    }
    s->res->events++;
    set_rv(s->res, rv);
out:
    json_decref(ev);
    return rc;
}

static size_t stream_write(char *data, size_t size, size_t n, void *userp)
{
    stream_t *s = userp;
    size_t len = size * n;
    if (s->res->status == 0) curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->res->status);
    if (s->res->status != 200) {
        if (s->errbody.len < WATCH_MAX_ERRBODY) strbuf_append(&s->errbody, data, len);
        return len;
    }
    if (s->buf.len + len > WATCH_MAX_LINE) {
        s->too_big = true;
        return 0;
    }
    strbuf_append(&s->buf, data, len);
    size_t start = 0;
    for (;;) {
        char *nl = memchr(s->buf.data + s->scanned, '\n', s->buf.len - s->scanned);
        if (!nl) break;
        size_t end = (size_t)(nl - s->buf.data);
        if (stream_event(s, s->buf.data + start, end - start) == -1) {
            s->failed = true;
            return 0;
        }
        start = s->scanned = end + 1;
    }
    if (start) {
        memmove(s->buf.data, s->buf.data + start, s->buf.len - start);
        s->buf.len -= start;
        s->buf.data[s->buf.len] = '\0';
        s->scanned -= start;
    }
    s->scanned = s->buf.len;
    return len;
}

static int stream_progress(void *userp, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    stream_t *s = userp;
    /* Called at least once a second while the stream idles: the place
     * where a watching thread empties its malloc cache for a trim. */
    heap_release_if_asked();
    return s->stop && atomic_load(s->stop) ? 1 : 0;
}

/* The server-side timeout asked for in the query, or 0. */
static long query_timeout_s(const char *path)
{
    const char *q = strchr(path, '?');
    const char *t = q ? strstr(q, "timeoutSeconds=") : NULL;
    return t ? strtol(t + strlen("timeoutSeconds="), NULL, 10) : 0;
}

int kube_watch_stream(kube_client_t *c, const char *path, kube_watch_fn fn, void *ctx,
                      const atomic_bool *stop, kube_watch_result_t *res, err_t *err)
{
    res->status = 0;
    res->gone = res->stopped = res->handler_failed = res->error_event = false;
    res->events = res->bookmarks = 0;
    res->reason[0] = '\0';
    if (stop && atomic_load(stop)) {
        res->stopped = true;
        return 0;
    }
    long server_timeout = query_timeout_s(path);
    kube_conn_t *conn = kube_conn_take(c, "GET", path, NULL, -1, err);
    if (!conn) return -1;
    stream_t s = {
        .h = kube_conn_easy(conn), .fn = fn, .ctx = ctx, .stop = stop, .res = res, .err = err};
    CURL *h = s.h;
    httpc_setup_t set = {.h = h};
    if (server_timeout > 0)
        HTTPC_SET(&set, CURLOPT_TIMEOUT_MS, (server_timeout + WATCH_GRACE_S) * 1000L);
    HTTPC_SET(&set, CURLOPT_WRITEFUNCTION, stream_write);
    HTTPC_SET(&set, CURLOPT_WRITEDATA, &s);
    HTTPC_SET(&set, CURLOPT_NOPROGRESS, 0L);
    HTTPC_SET(&set, CURLOPT_XFERINFOFUNCTION, stream_progress);
    HTTPC_SET(&set, CURLOPT_XFERINFODATA, &s);
    if (httpc_setup_done(&set, err) == -1) {
        err_prefix(err, "watch %s", path);
        kube_conn_give(c, conn);
        return -1;
    }

    CURLcode rc = curl_easy_perform(h);
    if (res->status == 0) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->status);
    int ret = 0;
    if (rc == CURLE_ABORTED_BY_CALLBACK && stop && atomic_load(stop)) {
        res->stopped = true;
    } else if (s.failed) {
        ret = -1; /* err already says why */
    } else if (s.too_big) {
        ret = err_set(err, "watch %s: event larger than %u MiB", path, WATCH_MAX_LINE >> 20);
    } else if (rc != CURLE_OK) {
        const char *eb = kube_conn_errbuf(conn);
        ret = err_set(err, "watch %s: %s", path, *eb ? eb : curl_easy_strerror(rc));
    } else if (res->status != 200) {
        kube_result_t kr;
        kube_status_error(res->status, s.errbody.data, s.errbody.len, &kr, err);
        err_prefix(err, "watch %s", path);
        snprintf(res->reason, sizeof res->reason, "%s", kr.reason);
        res->gone = gone_status(res->status, kr.reason, NULL);
        ret = -1;
    } else if (s.buf.len && stream_event(&s, s.buf.data, s.buf.len) == -1) {
        ret = -1; /* the last event lacked its newline; it was still complete */
    }
    long opened = 0;
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &opened);
    kube_metrics_connections(c, opened);
    kube_metrics_record(c, KUBE_VERB_WATCH, res->status, -1);
    kube_conn_give(c, conn);
    strbuf_free(&s.buf);
    strbuf_free(&s.errbody);
    return ret;
}

/* --- reflector ------------------------------------------------------------ */

typedef struct reflector {
    kube_client_t *c;
    const kube_reflector_opts_t *opts;
    const atomic_bool *stop;
    uint64_t rng;
    long backoff_ms;
    long backoff_initial_ms, backoff_max_ms;
} reflector_t;

static uint64_t next_rand(reflector_t *r)
{
    /* xorshift64: jitter needs spread, not cryptographic quality. */
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

static bool stopped(const reflector_t *r)
{
    return r->stop && atomic_load(r->stop);
}

/* Sleeps the current backoff plus up to half of it again, then doubles the
 * backoff (capped). Returns early when stopped. */
static void backoff_sleep(reflector_t *r)
{
    long wait = r->backoff_ms + (long)(next_rand(r) % (uint64_t)(r->backoff_ms / 2 + 1));
    if (wait > r->backoff_max_ms) wait = r->backoff_max_ms;
    r->backoff_ms = r->backoff_ms * 2 > r->backoff_max_ms ? r->backoff_max_ms : r->backoff_ms * 2;
    int64_t until = time_mono_ns() + wait * NS_PER_MS;
    for (;;) {
        if (stopped(r)) return;
        int64_t left = (until - time_mono_ns()) / NS_PER_MS;
        if (left <= 0) return;
        time_sleep_ms(left < 100 ? left : 100);
    }
}

static void put_selectors(strbuf_t *q, const kube_reflector_opts_t *o)
{
    if (o->field_selector && *o->field_selector) {
        char *e = kube_escape(o->field_selector);
        strbuf_printf(q, "&fieldSelector=%s", e);
        free(e);
    }
    if (o->label_selector && *o->label_selector) {
        char *e = kube_escape(o->label_selector);
        strbuf_printf(q, "&labelSelector=%s", e);
        free(e);
    }
}

/* A complete, paged LIST into *items (new array) and its resourceVersion. */
static int reflector_list(reflector_t *r, json_t **items, char *rv, err_t *err)
{
    const kube_reflector_opts_t *o = r->opts;
    json_t *all = json_array();
    char *cont = NULL;
    rv[0] = '\0';
    do {
        strbuf_t q = STRBUF_INIT;
        strbuf_printf(&q, "%s?limit=%d", o->list_path, o->page_size > 0 ? o->page_size : 500);
        put_selectors(&q, o);
        if (cont) {
            char *e = kube_escape(cont);
            strbuf_printf(&q, "&continue=%s", e);
            free(e);
        }
        json_t *page = NULL;
        int rc = kube_get(r->c, strbuf_str(&q), &page, NULL, err);
        if (rc == -1) err_prefix(err, "list %s", o->list_path);
        strbuf_free(&q);
        free(cont);
        cont = NULL;
        if (rc == -1) goto fail;
        const char *prv = json_str_at(page, "metadata", "resourceVersion");
        if (prv && !rv[0]) snprintf(rv, KUBE_RV_MAX, "%s", prv);
        const char *c = json_str_at(page, "metadata", "continue");
        if (c && *c) cont = xstrdup(c);
        json_t *got = json_object_get(page, "items");
        if (json_is_array(got))
            json_array_extend(all, got);
        else if (got && !json_is_null(got)) {
            json_decref(page);
            err_set(err, "list %s: items is not an array", o->list_path);
            goto fail;
        }
        json_decref(page);
    } while (cont);
    *items = all;
    return 0;
fail:
    free(cont);
    json_decref(all);
    return -1;
}

int kube_reflector_run(kube_client_t *c, const kube_reflector_opts_t *opts,
                       const kube_reflector_handlers_t *h, void *ctx, const atomic_bool *stop,
                       err_t *err)
{
    reflector_t r = {.c = c, .opts = opts, .stop = stop};
    r.rng = (uint64_t)time_now_ns() ^ ((uint64_t)(uintptr_t)&r << 16) ^ 0x9e3779b97f4a7c15u;
    if (!r.rng) r.rng = 1;
    r.backoff_initial_ms = opts->backoff_initial_ms > 0 ? opts->backoff_initial_ms : 800;
    r.backoff_max_ms = opts->backoff_max_ms > 0 ? opts->backoff_max_ms : 30000;
    r.backoff_ms = r.backoff_initial_ms;
    int base_timeout = opts->watch_timeout_s > 0 ? opts->watch_timeout_s : 300;

    kube_watch_result_t res;
    memset(&res, 0, sizeof res);
    bool need_list = true;
    bool fresh_list = false; /* no watch has made progress since the last list */
    err_t local;
    while (!stopped(&r)) {
        if (need_list) {
            json_t *items = NULL;
            char rv[KUBE_RV_MAX];
            if (reflector_list(&r, &items, rv, &local) == -1) {
                diag_warn("%s", local.msg);
                if (h->on_list_error) h->on_list_error(ctx, &local);
                backoff_sleep(&r);
                continue;
            }
            int hrc = h->on_list(ctx, items, rv);
            json_decref(items);
            if (hrc != 0) return err_set(err, "list %s: list handler failed", opts->list_path);
            memset(&res, 0, sizeof res);
            snprintf(res.resource_version, sizeof res.resource_version, "%s", rv);
            need_list = false;
            fresh_list = true;
        }

        int timeout = base_timeout + (int)(next_rand(&r) % (uint64_t)base_timeout);
        strbuf_t q = STRBUF_INIT;
        strbuf_printf(&q, "%s?watch=1&allowWatchBookmarks=true", opts->list_path);
        if (res.resource_version[0]) {
            char *e = kube_escape(res.resource_version);
            strbuf_printf(&q, "&resourceVersion=%s", e);
            free(e);
        }
        strbuf_printf(&q, "&timeoutSeconds=%d", timeout);
        put_selectors(&q, opts);
        int rc = kube_watch_stream(c, strbuf_str(&q), h->on_event, ctx, stop, &res, &local);
        strbuf_free(&q);
        if (res.stopped) break;
        if (res.handler_failed) {
            if (err) *err = local;
            return -1;
        }
        bool progressed = res.status == 200 && (rc == 0 || res.events || res.bookmarks);
        bool was_fresh = fresh_list;
        if (progressed) {
            r.backoff_ms = r.backoff_initial_ms;
            fresh_list = false;
        }
        if (rc == 0) continue; /* normal end: resume from res.resource_version */
        diag_warn("%s", local.msg);
        /* Gone, an ERROR event, or a refusal other than throttling: the
         * stream cannot be resumed, so start over from a fresh list. */
        if (res.gone || res.error_event ||
            (res.status >= 400 && res.status < 500 && res.status != 429))
            need_list = true;
        if (progressed) continue; /* a dropped stream that was working: resume now */
        /* A version that merely aged out is relisted at once; a 410 right
         * after a fresh list means something is wrong, so back off. */
        if (res.gone && !was_fresh) continue;
        backoff_sleep(&r);
    }
    return 0;
}
