/* http.c: the HTTPS transport: the event loop and the life of a request
 * (see http.h).
 *
 * Threads. One loop thread owns libevent (evhttp over bufferevent_openssl)
 * and is the only thread that touches a connection or an evhttp request.
 * Each request that arrives is copied into an http_req_t (method, path, query,
 * headers, the verified client certificate's identity) and handed to a
 * thread of its own, where the handler produces the answer: for the
 * kubelet API that means authenticating, authorizing and reading logs or
 * stats, all of which may wait (a TokenReview, a SubjectAccessReview, a
 * log follow that lasts an hour), and none of which may stall the loop.
 * Nothing else runs on the loop thread: no timer of this file or of its
 * users does work there.
 * A thread per request rather than a pool: requests to a kubelet are few,
 * and the long ones (follows) would pin a pool's threads anyway; a limit
 * on requests in progress (max_requests, then 503) bounds the count.
 *
 * Handing back. The handler thread never calls libevent, except
 * event_active() on the request's wake event (thread-safe with
 * evthread_use_pthreads). It puts what it has (status, headers, body
 * bytes, "ended") into the http_req_t under the request's mutex and wakes the
 * loop, which sends a whole reply, or the headers and then chunks as they
 * come. A stream is flow-controlled: the handler blocks while more than
 * STREAM_HIGH_WATER bytes are queued or not yet written to the socket
 * (evhttp tells the loop when the socket took everything), so a flood of
 * log lines to a slow client holds one megabyte, not the whole log.
 *
 * Ending a stream. The TLS bufferevent reports "output drained" through a
 * deferred callback that does not look at the buffer again when it runs,
 * so a drain report can arrive after more data was queued. evhttp would
 * take such a stale report for the end of the reply and release the
 * request with data still queued (the client then waits for an end that
 * never comes). So every drain report is checked against the buffer, and
 * a stream's end is queued only from a report that found it empty.
 *
 * Client gone. evhttp stops reading a connection once a request has been
 * read, so it would not notice a client that hangs up during a long
 * stream until a write failed. After a stream's headers go out the loop
 * turns reading back on (without a read callback and without a read
 * timeout), so the hang-up arrives as an EOF: evhttp detaches the request
 * and frees the connection, our close callback marks the request gone,
 * and the handler's next write or should-stop check ends it.
 *
 * Ownership of an http_req_t: the loop and the handler thread each hold it
 * until they are done (loop_done: the answer was handed to evhttp or the
 * client is gone; worker_done: the handler returned). The loop frees it,
 * always on its own thread, when both are done, so the wake event is never
 * freed while a handler might still activate it.
 *
 * Size. This file is over 1,000 lines on purpose: the loop side and the
 * handler side of a request share one ownership protocol (the fields under
 * a request's mu, loop_done and worker_done, the drain rule), upgraded
 * connections included, and each half is only checkable next to the
 * other.
 *
 * Upgraded connections (101 Switching Protocols, for port-forward's
 * SPDY). libevent 2.1's evhttp has no hand-over of a connection: neither
 * evhttp_request_own (which only keeps the request object alive) nor a way
 * to detach the bufferevent from its evhttp_connection. Taking the fd
 * itself is not possible under TLS (the SSL state and any bytes already
 * decrypted live in the bufferevent_openssl). So the connection stays
 * evhttp's, with its request never answered, and we take its bufferevent's
 * callbacks: the loop writes the 101 head straight into the bufferevent,
 * replaces evhttp's read/write/event callbacks with raw_on_*, clears its
 * timeouts, and from then on moves bytes between the socket and the
 * request's two buffers (in, bounded; out) exactly as it does for streams.
 * The handler thread waits on an eventfd (input, drain, EOF, stop) rather
 * than a condition variable, so it can poll the pod's sockets in the same
 * call. To end, the loop frees the connection with evhttp_connection_free
 * (which frees the request with it, closes the socket and leaves evhttp's
 * list of connections consistent); at http_stop evhttp_free does that for
 * us and on_close marks the request gone, as for any other request. The
 * alternative, a raw listener of our own beside evhttp, would have meant a
 * second TLS accept path and a second HTTP parser for the upgrade request.
 *
 * Certificates. New connections take the current SSL_CTX under tls_mu;
 * http_set_cert builds a new one and swaps it, so a rotation never
 * disturbs a connection in progress.
 *
 * Why one file of this length: the loop thread's side and the handler
 * threads' side of a request share one struct and one locking discipline
 * (the hand-back above); split, each half would be unreadable without the
 * other.
 */
#include "server/http.h"
#include "metrics/registry.h"
#include "server/tls.h"
#include "util/strbuf.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#define STREAM_HIGH_WATER (1024 * 1024)
#define RAW_IN_HIGH_WATER (256 * 1024) /* received bytes the handler has not read */
#define RAW_SOCKET_CHUNK (64 * 1024)   /* read from the socket at a time */
#define RAW_CLOSE_TIMEOUT_S 10         /* to flush the last bytes of an upgraded one */
#define SHUTDOWN_FLUSH_MS 200

struct http_server {
    http_config_t cfg; /* strings below are copies; no certificate kept */
    char *bind_address, *client_ca_pem;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *listener;
    pthread_t loop;
    bool loop_started;
    int port;

    pthread_mutex_t tls_mu;
    SSL_CTX *ctx;

    pthread_mutex_t mu; /* guards reqs, njobs */
    pthread_cond_t cond;
    struct http_req *reqs;
    int njobs;
    atomic_bool stopping;
};

struct http_req {
    http_server_t *s;
    /* loop thread only */
    struct evhttp_request *req; /* NULL once the client is gone or the answer is out */
    struct evhttp_connection *evcon;
    struct event *wake;
    bool headers_sent;
    bool chunks_sent; /* on_drained is the connection's write callback */
    bool end_pending; /* the handler ended; the end goes out once the output drains */
    /* fixed before the handler starts */
    char method[16];
    char *path;
    char path_class[32];
    struct evkeyvalq query;
    struct evkeyvalq headers;
    char *peer_user;      /* verified client certificate: CN ... */
    strvec_t peer_groups; /* ... and O entries */
    int64_t t0;
    /* handoff, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int status;
    char content_type[64];
    strbuf_t out;
    bool reply_ready; /* a whole reply, or a stream's headers, wait to go out */
    bool streaming;
    bool ended; /* the handler finished the answer */
    bool gone;  /* the client went away */
    bool loop_done, worker_done;
    bool wake_pending;
    size_t inflight; /* handed to evhttp, not yet written to the socket */
    /* an upgraded connection (http_req_upgrade): the 101 and the raw bytes */
    char *raw_head;   /* the 101 response, until the loop sends it; under mu */
    bool raw_wanted;  /* the handler asked for the upgrade; under mu */
    bool raw;         /* loop thread: the connection's callbacks are ours */
    bool read_paused; /* loop thread: reading stopped, in is full */
    strbuf_t in;      /* received, not yet read by the handler; under mu */
    bool in_eof;      /* the client ended its side; under mu */
    int evfd;         /* eventfd the handler polls: input, drain, end; -1 */
    struct http_req *next;
};

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static int evthread_rc;

static void evthread_init(void)
{
    evthread_rc = evthread_use_pthreads();
}

/* --- request data, for handlers ------------------------------------------- */

const char *http_req_method(const http_req_t *r)
{
    return r->method;
}

const char *http_req_path(const http_req_t *r)
{
    return r->path;
}

const char *http_req_query(const http_req_t *r, const char *key)
{
    return evhttp_find_header(&r->query, key);
}

const char *http_req_header(const http_req_t *r, const char *name)
{
    return evhttp_find_header(&r->headers, name);
}

bool http_stopping(const http_server_t *s)
{
    return atomic_load(&s->stopping);
}

int http_port(const http_server_t *s)
{
    return s->port;
}

/* --- answers, from the handler thread ------------------------------------ */

static int s_idle(const http_req_t *r)
{
    return r->s->cfg.idle_timeout_s;
}

static void wake_locked(http_req_t *r)
{
    lock_assert_held(&r->mu);
    if (r->wake_pending) return;
    r->wake_pending = true;
    event_active(r->wake, EV_READ, 0);
}

void http_req_reply(http_req_t *r, int status, const char *content_type, const char *body,
                    size_t len)
{
    pthread_mutex_lock(&r->mu);
    if (!r->reply_ready) {
        r->status = status;
        snprintf(r->content_type, sizeof r->content_type, "%s", content_type);
        strbuf_append(&r->out, body ? body : "", body ? len : 0);
        r->reply_ready = true;
        r->ended = true;
        wake_locked(r);
    }
    pthread_mutex_unlock(&r->mu);
}

void http_req_error(http_req_t *r, int status, const char *fmt, ...)
{
    strbuf_t sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    strbuf_putc(&sb, '\n');
    http_req_reply(r, status, "text/plain; charset=utf-8", sb.data, sb.len);
    strbuf_free(&sb);
}

void http_req_stream_start(http_req_t *r, int status, const char *content_type)
{
    pthread_mutex_lock(&r->mu);
    if (!r->reply_ready) {
        r->status = status;
        snprintf(r->content_type, sizeof r->content_type, "%s", content_type);
        r->streaming = true;
        r->reply_ready = true;
        wake_locked(r);
    }
    pthread_mutex_unlock(&r->mu);
}

int http_req_stream_write(http_req_t *r, const void *data, size_t len)
{
    pthread_mutex_lock(&r->mu);
    while (!r->gone && !http_stopping(r->s) && r->out.len + r->inflight > STREAM_HIGH_WATER)
        cond_wait_until(&r->cv, &r->mu, deadline_after_ms(100));
    if (r->gone || http_stopping(r->s) || !r->streaming) {
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    strbuf_append(&r->out, data, len);
    wake_locked(r);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

void http_req_stream_end(http_req_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->ended = true;
    wake_locked(r);
    pthread_mutex_unlock(&r->mu);
}

bool http_req_gone(http_req_t *r)
{
    pthread_mutex_lock(&r->mu);
    bool gone = r->gone;
    pthread_mutex_unlock(&r->mu);
    return gone || http_stopping(r->s);
}

/* --- an upgraded connection, from the handler thread ------------------------ */

/* Wakes the handler's poll on the request's eventfd (any thread; the caller
 * holds r->mu or owns r alone). */
static void raw_signal(http_req_t *r)
{
    if (r->evfd < 0) return;
    uint64_t one = 1;
    ssize_t w = write(r->evfd, &one, sizeof one);
    (void)w; /* EAGAIN: the counter is already non-zero, which is all we need */
}

bool http_req_header_has(const http_req_t *r, const char *name, const char *token)
{
    size_t tl = strlen(token);
    const struct evkeyval *h;
    TAILQ_FOREACH(h, &r->headers, next)
    {
        if (strcasecmp(h->key, name) != 0) continue;
        for (const char *p = h->value; *p;) {
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            const char *e = p;
            while (*e && *e != ',')
                e++;
            const char *t = e;
            while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
                t--;
            if ((size_t)(t - p) == tl && strncasecmp(p, token, tl) == 0) return true;
            p = e;
        }
    }
    return false;
}

int http_req_upgrade(http_req_t *r, const char *protocol, const char *extra_headers, err_t *err)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd == -1) return err_errno(err, "eventfd");
    pthread_mutex_lock(&r->mu);
    if (r->reply_ready || r->gone) {
        pthread_mutex_unlock(&r->mu);
        close(fd);
        return err_set(err, "the request is answered or its client gone");
    }
    strbuf_t head = STRBUF_INIT;
    strbuf_printf(
        &head, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n%s\r\n",
        protocol, extra_headers ? extra_headers : "");
    r->raw_head = strbuf_take(&head);
    r->evfd = fd;
    r->status = 101;
    r->reply_ready = true;
    r->raw_wanted = true;
    wake_locked(r);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

int http_req_raw_fd(const http_req_t *r)
{
    return r->evfd;
}

long http_req_raw_read(http_req_t *r, void *buf, size_t cap)
{
    uint64_t count;
    ssize_t rd = read(r->evfd, &count, sizeof count); /* rearm before looking */
    (void)rd;
    pthread_mutex_lock(&r->mu);
    long n = 0;
    if (r->gone || http_stopping(r->s) || (r->in.len == 0 && r->in_eof)) {
        n = -1;
    } else if (cap > 0 && r->in.len > 0) {
        size_t take = r->in.len < cap ? r->in.len : cap;
        bool was_full = r->in.len >= RAW_IN_HIGH_WATER;
        memcpy(buf, r->in.data, take);
        memmove(r->in.data, r->in.data + take, r->in.len - take);
        r->in.len -= take;
        r->in.data[r->in.len] = '\0';
        if (was_full) wake_locked(r); /* the loop reads the socket again */
        n = (long)take;
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

int http_req_raw_write(http_req_t *r, const void *data, size_t len)
{
    pthread_mutex_lock(&r->mu);
    if (r->gone || http_stopping(r->s) || !r->raw_wanted || r->ended) {
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    strbuf_append(&r->out, data, len);
    wake_locked(r);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

size_t http_req_raw_pending(http_req_t *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->out.len + r->inflight;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* --- the loop side of a request ------------------------------------------- */

static void req_free(http_req_t *r)
{
    http_server_t *s = r->s;
    pthread_mutex_lock(&s->mu);
    for (http_req_t **pp = &s->reqs; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (r->wake) event_free(r->wake);
    evhttp_clear_headers(&r->query);
    evhttp_clear_headers(&r->headers);
    free(r->path);
    free(r->peer_user);
    strvec_free(&r->peer_groups);
    strbuf_free(&r->out);
    strbuf_free(&r->in);
    free(r->raw_head);
    if (r->evfd >= 0) close(r->evfd);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

static void record(http_req_t *r, int status)
{
    metrics_http_request(r->path_class, r->method, status,
                         (double)(time_mono_ns() - r->t0) / (double)NS_PER_SEC);
}

/* The connection of the request closed before its answer was complete. */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    http_req_t *r = arg;
    if (!r->req) return;
    struct evhttp_request *req = r->req;
    r->req = NULL;
    r->end_pending = false;
    /* Detached by evhttp (EOF, timeout): ours to free. Still attached:
     * evhttp frees it with the connection. */
    if (evhttp_request_get_connection(req) == NULL) evhttp_request_free(req);
    pthread_mutex_lock(&r->mu);
    if (!r->loop_done && !r->headers_sent) record(r, 499); /* client closed first */
    r->gone = true;
    r->loop_done = true;
    pthread_cond_broadcast(&r->cv);
    raw_signal(r);
    /* The handler may have finished already; let on_wake free it. */
    wake_locked(r);
    pthread_mutex_unlock(&r->mu);
}

/* Finishes a stream whose data has all reached the socket: the last
 * chunk, then evhttp releases the request. */
static void stream_finish(http_req_t *r)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
    struct timeval t = {s_idle(r), 0};
    bufferevent_set_timeouts(bev, &t, &t);
    /* r goes once the reply ends: the connection must not call back into
     * it when it closes later. */
    evhttp_connection_set_closecb(r->evcon, NULL, NULL);
    struct evhttp_request *req = r->req;
    r->req = NULL;
    r->end_pending = false;
    evhttp_send_reply_end(req);
}

/* evhttp says the connection's output drained. It says so from a deferred
 * callback of the TLS bufferevent, which may run after more data was
 * queued, so the output is checked, not trusted. */
static void on_drained(struct evhttp_connection *evcon, void *arg)
{
    http_req_t *r = arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    if (evbuffer_get_length(bufferevent_get_output(bev)) > 0) return;
    pthread_mutex_lock(&r->mu);
    r->inflight = 0;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->req && r->end_pending) {
        stream_finish(r);
        pthread_mutex_lock(&r->mu);
        r->loop_done = true;
        bool free_it = r->worker_done;
        pthread_mutex_unlock(&r->mu);
        if (free_it) req_free(r);
    }
}

/* --- the loop side of an upgraded connection -------------------------------- */

static void raw_on_read(struct bufferevent *bev, void *arg)
{
    http_req_t *r = arg;
    struct evbuffer *input = bufferevent_get_input(bev);
    char chunk[16384];
    pthread_mutex_lock(&r->mu);
    while (r->in.len < RAW_IN_HIGH_WATER && evbuffer_get_length(input) > 0) {
        size_t room = RAW_IN_HIGH_WATER - r->in.len;
        int got = evbuffer_remove(input, chunk, room < sizeof chunk ? room : sizeof chunk);
        if (got <= 0) break;
        strbuf_append(&r->in, chunk, (size_t)got);
    }
    bool full = r->in.len >= RAW_IN_HIGH_WATER;
    raw_signal(r);
    pthread_mutex_unlock(&r->mu);
    if (full && !r->read_paused) {
        bufferevent_disable(bev, EV_READ);
        r->read_paused = true;
    }
}

/* The connection is done with: evhttp frees it with its request. */
static void raw_finish(http_req_t *r)
{
    struct evhttp_connection *evcon = r->evcon;
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    r->req = NULL;
    r->end_pending = false;
    evhttp_connection_free(evcon);
    pthread_mutex_lock(&r->mu);
    r->gone = true;
    r->loop_done = true;
    bool free_it = r->worker_done;
    pthread_mutex_unlock(&r->mu);
    if (free_it) req_free(r);
}

static void raw_on_write(struct bufferevent *bev, void *arg)
{
    http_req_t *r = arg;
    /* A drain report may be stale (see the top of the file): look. */
    if (evbuffer_get_length(bufferevent_get_output(bev)) > 0) return;
    pthread_mutex_lock(&r->mu);
    r->inflight = 0;
    raw_signal(r);
    pthread_mutex_unlock(&r->mu);
    if (r->end_pending) raw_finish(r);
}

static void raw_on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    http_req_t *r = arg;
    pthread_mutex_lock(&r->mu);
    if (what & BEV_EVENT_EOF)
        r->in_eof = true;
    else if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        r->gone = true;
    raw_signal(r);
    pthread_mutex_unlock(&r->mu);
    if (r->end_pending && (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))) raw_finish(r);
}

/* Sends the 101 and takes the connection's callbacks from evhttp: from here
 * on evhttp only frees the connection (ours with raw_finish, or its own at
 * http_stop, which calls on_close). */
static void raw_take_over(http_req_t *r, const char *head)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
    record(r, 101);
    evbuffer_add(bufferevent_get_output(bev), head, strlen(head));
    bufferevent_setcb(bev, raw_on_read, raw_on_write, raw_on_event, r);
    bufferevent_set_timeouts(bev, NULL, NULL);
    bufferevent_setwatermark(bev, EV_READ, 0, RAW_SOCKET_CHUNK);
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    r->raw = true;
    raw_on_read(bev, r); /* what evhttp read past the request's head */
}

/* on_wake for an upgraded request: the 101 first, then the handler's
 * bytes to the socket, reading resumed once the handler made room, and the
 * close once the handler ended and everything is written. */
static void raw_pump(http_req_t *r)
{
    if (!r->req) return; /* closed; on_close set loop_done */
    pthread_mutex_lock(&r->mu);
    char *head = r->raw_head;
    r->raw_head = NULL;
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add(buf, r->out.data ? r->out.data : "", r->out.len);
    r->inflight += r->out.len;
    strbuf_reset(&r->out);
    bool room = r->in.len < RAW_IN_HIGH_WATER;
    bool ended = r->ended, gone = r->gone;
    pthread_mutex_unlock(&r->mu);
    if (head) raw_take_over(r, head);
    free(head);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
    if (!gone && evbuffer_get_length(buf) > 0) bufferevent_write_buffer(bev, buf);
    evbuffer_free(buf);
    if (r->read_paused && room && !gone) {
        r->read_paused = false;
        bufferevent_enable(bev, EV_READ);
        raw_on_read(bev, r);
    }
    if (ended && !r->end_pending) {
        if (gone || evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
            raw_finish(r);
        } else {
            /* The last bytes go out first, within a bound. */
            struct timeval wt = {RAW_CLOSE_TIMEOUT_S, 0};
            bufferevent_set_timeouts(bev, NULL, &wt);
            bufferevent_disable(bev, EV_READ);
            r->end_pending = true;
        }
    }
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return NULL;
    }
}

static void set_reply_headers(http_req_t *r, const char *content_type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "Content-Type", content_type);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Cache-Control", "no-cache, private");
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    http_req_t *r = arg;
    pthread_mutex_lock(&r->mu);
    r->wake_pending = false;
    if (!r->req) r->loop_done = true;
    if (r->loop_done) {
        bool free_it = r->worker_done;
        pthread_mutex_unlock(&r->mu);
        if (free_it) req_free(r);
        return;
    }
    if (r->raw_wanted) {
        pthread_mutex_unlock(&r->mu);
        raw_pump(r);
        return;
    }
    if (!r->reply_ready || r->end_pending) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    /* Take what is there; talk to evhttp without the lock (it may call
     * on_close or on_drained synchronously). */
    int status = r->status;
    char ctype[64];
    snprintf(ctype, sizeof ctype, "%s", r->content_type);
    bool streaming = r->streaming, ended = r->ended;
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add(buf, r->out.data ? r->out.data : "", r->out.len);
    size_t n = r->out.len;
    strbuf_reset(&r->out);
    if (streaming) r->inflight += n;
    pthread_mutex_unlock(&r->mu);

    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
    if (!streaming) {
        set_reply_headers(r, ctype);
        record(r, status);
        evhttp_connection_set_closecb(r->evcon, NULL, NULL);
        struct evhttp_request *req = r->req;
        r->req = NULL;
        evhttp_send_reply(req, status, reason_phrase(status), buf);
    } else {
        if (!r->headers_sent) {
            set_reply_headers(r, ctype);
            record(r, status);
            evhttp_send_reply_start(r->req, status, reason_phrase(status));
            r->headers_sent = true;
            /* Notice a client that hangs up (see the top of the file): read
             * with no callback and no read timeout; writes keep theirs. */
            struct timeval wt = {s_idle(r), 0};
            bufferevent_set_timeouts(bev, NULL, &wt);
            bufferevent_setwatermark(bev, EV_READ, 0, 4096);
            bufferevent_enable(bev, EV_READ);
        }
        if (r->req && n) {
            evhttp_send_reply_chunk_with_cb(r->req, buf, on_drained, r);
            r->chunks_sent = true;
        }
        if (r->req && ended) {
            /* The end goes out from on_drained, once everything before it
             * is on the socket and no stale "drained" can be pending: the
             * TLS layer reports a drain through a deferred callback that
             * does not look at the buffer again, and an end queued before
             * it ran would be taken as written (the request released with
             * data still queued, the client left waiting). A stream without
             * chunks (an empty log) ends at once: only its headers were
             * queued, and the five bytes of the end always fit behind them. */
            if (!r->chunks_sent) {
                stream_finish(r);
            } else {
                r->end_pending = true;
                bufferevent_trigger(bev, EV_WRITE, BEV_OPT_DEFER_CALLBACKS);
            }
        }
    }
    evbuffer_free(buf);
    pthread_mutex_lock(&r->mu);
    if (!r->req && !r->end_pending) r->loop_done = true;
    bool free_it = r->loop_done && r->worker_done;
    pthread_mutex_unlock(&r->mu);
    if (free_it) req_free(r);
}

/* --- the handler thread -------------------------------------------------- */

static void *job_main(void *arg)
{
    thread_set_name("http-request");
    http_req_t *r = arg;
    http_server_t *s = r->s;
    s->cfg.handler(s->cfg.ctx, r);
    pthread_mutex_lock(&r->mu);
    if (!r->reply_ready) {
        /* A handler that forgot to answer: say so rather than hang. */
        r->status = 500;
        snprintf(r->content_type, sizeof r->content_type, "text/plain; charset=utf-8");
        strbuf_puts(&r->out, "internal error: no answer\n");
        r->reply_ready = true;
    }
    r->ended = true;
    r->worker_done = true;
    wake_locked(r);
    pthread_mutex_unlock(&r->mu);
    /* r may be freed by now; only s from here on. */
    pthread_mutex_lock(&s->mu);
    s->njobs--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

const char *http_req_peer(const http_req_t *r, const strvec_t **groups)
{
    if (groups) *groups = &r->peer_groups;
    return r->peer_user;
}

void http_req_set_class(http_req_t *r, const char *path_class)
{
    /* Set by the handler before it answers; read by the loop afterwards,
     * under the request's lock. */
    pthread_mutex_lock(&r->mu);
    snprintf(r->path_class, sizeof r->path_class, "%s", path_class);
    pthread_mutex_unlock(&r->mu);
}

/* --- the loop side: accepting requests ------------------------------------ */

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}

static void reject(http_server_t *s, struct evhttp_request *req, int status, const char *msg)
{
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add_printf(buf, "%s\n", msg);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evhttp_send_reply(req, status, reason_phrase(status), buf);
    evbuffer_free(buf);
    (void)s;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    http_server_t *s = arg;
    if (http_stopping(s)) {
        reject(s, req, 503, "the node is shutting down");
        return;
    }
    pthread_mutex_lock(&s->mu);
    bool full = s->njobs >= s->cfg.max_requests;
    pthread_mutex_unlock(&s->mu);
    if (full) {
        reject(s, req, 503, "too many requests in progress");
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *raw_path = uri ? evhttp_uri_get_path(uri) : NULL;
    char *path = evhttp_uridecode(raw_path && *raw_path ? raw_path : "/", 0, NULL);
    if (!path) {
        reject(s, req, 400, "bad request path");
        return;
    }
    http_req_t *r = xcalloc(1, sizeof *r);
    r->s = s;
    r->req = req;
    r->evcon = evhttp_request_get_connection(req);
    r->evfd = -1;
    r->path = xstrdup(path);
    free(path);
    r->t0 = time_mono_ns();
    snprintf(r->method, sizeof r->method, "%s", method_name(evhttp_request_get_command(req)));
    snprintf(r->path_class, sizeof r->path_class, "other");
    TAILQ_INIT(&r->query);
    TAILQ_INIT(&r->headers);
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    if (q && evhttp_parse_query_str(q, &r->query) == -1) {
        evhttp_clear_headers(&r->query);
        TAILQ_INIT(&r->query);
    }
    struct evkeyval *h;
    TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next)
    evhttp_add_header(&r->headers, h->key, h->value);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (ssl && s->cfg.client_ca_pem) server_tls_peer(ssl, &r->peer_user, &r->peer_groups);
    pthread_mutex_init(&r->mu, NULL);
    cond_init_monotonic(&r->cv);
    r->wake = event_new(s->base, -1, 0, on_wake, r);
    evhttp_connection_set_closecb(r->evcon, on_close, r);

    pthread_mutex_lock(&s->mu);
    r->next = s->reqs;
    s->reqs = r;
    s->njobs++;
    pthread_mutex_unlock(&s->mu);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t t;
    int rc = pthread_create(&t, &attr, job_main, r);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_lock(&s->mu);
        s->njobs--;
        pthread_mutex_unlock(&s->mu);
        evhttp_connection_set_closecb(r->evcon, NULL, NULL);
        r->req = NULL;
        reject(s, req, 503, "cannot start a request thread");
        req_free(r);
    }
}

static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
    http_server_t *s = arg;
    pthread_mutex_lock(&s->tls_mu);
    SSL *ssl = SSL_new(s->ctx);
    pthread_mutex_unlock(&s->tls_mu);
    if (!ssl) return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        SSL_free(ssl);
    else
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static void *loop_main(void *arg)
{
    thread_set_name("http-server");
    http_server_t *s = arg;
    event_base_loop(s->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* --- lifecycle ---------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

int http_start(const http_config_t *cfg, http_server_t **out, err_t *err)
{
    *out = NULL;
    pthread_once(&evthread_once, evthread_init);
    if (evthread_rc != 0) return err_set(err, "libevent: no thread support");
    if (!cfg->cert_pem || !cfg->key_pem) return err_set(err, "no serving certificate");
    if (!cfg->handler) return err_set(err, "no request handler");
    http_server_t *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->bind_address = xstrdup(cfg->bind_address ? cfg->bind_address : "0.0.0.0");
    s->client_ca_pem = dup_or_null(cfg->client_ca_pem);
    s->cfg.bind_address = s->bind_address;
    s->cfg.client_ca_pem = s->client_ca_pem;
    s->cfg.cert_pem = s->cfg.key_pem = NULL; /* kept only inside the SSL_CTX */
    if (s->cfg.idle_timeout_s <= 0) s->cfg.idle_timeout_s = 60;
    if (s->cfg.max_requests <= 0) s->cfg.max_requests = 256;
    pthread_mutex_init(&s->tls_mu, NULL);
    pthread_mutex_init(&s->mu, NULL);
    cond_init_monotonic(&s->cond);

    s->ctx = server_tls_ctx(cfg->cert_pem, cfg->key_pem, s->client_ca_pem, err);
    if (!s->ctx) goto fail;
    s->base = event_base_new();
    s->http = s->base ? evhttp_new(s->base) : NULL;
    if (!s->http) {
        err_set(err, "libevent: cannot create the HTTP server");
        goto fail;
    }
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_OPTIONS);
    evhttp_set_timeout(s->http, s->cfg.idle_timeout_s);
    evhttp_set_max_headers_size(s->http, 64 * 1024);
    evhttp_set_max_body_size(s->http, 1024 * 1024);
    evhttp_set_bevcb(s->http, make_bev, s);
    evhttp_set_gencb(s->http, on_request, s);
    s->listener = evhttp_bind_socket_with_handle(s->http, s->bind_address, (ev_uint16_t)cfg->port);
    if (!s->listener) {
        err_errno(err, "listen on %s:%d", s->bind_address, cfg->port);
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(s->listener), (struct sockaddr *)&ss, &sl) == 0)
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    if (pthread_create(&s->loop, NULL, loop_main, s) != 0) {
        err_set(err, "cannot start the server thread");
        goto fail;
    }
    s->loop_started = true;
    *out = s;
    return 0;
fail:
    http_stop(s);
    return -1;
}

int http_set_cert(http_server_t *s, const char *cert_pem, const char *key_pem, err_t *err)
{
    SSL_CTX *ctx = server_tls_ctx(cert_pem, key_pem, s->client_ca_pem, err);
    if (!ctx) return -1;
    pthread_mutex_lock(&s->tls_mu);
    SSL_CTX *old = s->ctx;
    s->ctx = ctx;
    pthread_mutex_unlock(&s->tls_mu);
    SSL_CTX_free(old); /* connections that use it hold their own reference */
    return 0;
}

void http_stop(http_server_t *s)
{
    if (!s) return;
    atomic_store(&s->stopping, true);
    if (s->loop_started) {
        /* Handlers see stopping (writes fail, follows end) and answer or
         * end their streams; wait for them while the loop still runs. */
        pthread_mutex_lock(&s->mu);
        for (http_req_t *r = s->reqs; r; r = r->next) {
            pthread_mutex_lock(&r->mu);
            pthread_cond_broadcast(&r->cv);
            raw_signal(r);
            pthread_mutex_unlock(&r->mu);
        }
        while (s->njobs > 0)
            cond_wait_until(&s->cond, &s->mu, SYNC_FOREVER);
        pthread_mutex_unlock(&s->mu);
        /* A moment for the last answers to reach their sockets. */
        struct timeval flush = {0, SHUTDOWN_FLUSH_MS * 1000};
        event_base_loopexit(s->base, &flush);
        pthread_join(s->loop, NULL);
    }
    /* Requests still open get their connections closed; on_close and the
     * final on_wake free them. */
    if (s->http) evhttp_free(s->http);
    if (s->base) event_base_loop(s->base, EVLOOP_NONBLOCK);
    while (s->reqs) {
        http_req_t *r = s->reqs;
        if (r->req) {
            /* Never handed back and not closed: evhttp_free released it. */
            r->req = NULL;
        }
        req_free(r);
    }
    if (s->base) event_base_free(s->base);
    if (s->ctx) SSL_CTX_free(s->ctx);
    pthread_mutex_destroy(&s->tls_mu);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s->client_ca_pem);
    free(s->bind_address);
    free(s);
}
