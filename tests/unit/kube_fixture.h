/* kube_fixture.h: a scripted HTTP/1.1 server on 127.0.0.1 for the kube/ tests.
 *
 * Header-only so each test program (one per test_*.c) can include it without
 * a build change. A thread accepts connections on an ephemeral port and runs
 * one thread per connection; every request is recorded (method, target,
 * headers, body, TLS client CN) and handed to the test's handler, which
 * answers with the helpers below: a whole response, or a chunked stream
 * written piece by piece, or a connection dropped mid-stream. Optional TLS
 * with client-certificate verification through a caller-made SSL_CTX. */
#ifndef WASMLET_TEST_KUBE_FIXTURE_H
#define WASMLET_TEST_KUBE_FIXTURE_H

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FX_API static __attribute__((unused))

typedef struct fx_req {
    char method[16];
    char *target;  /* path and query */
    char *headers; /* raw header lines */
    char *body;
    size_t body_len;
    char peer_cn[256]; /* TLS client certificate CN, "" without one */
    int index;         /* 0-based order of arrival */
    long at_ms;        /* arrival time, fx_now_ms() */
} fx_req_t;

typedef struct fx fx_t;

typedef struct fx_conn {
    fx_t *fx;
    int fd;
    SSL *ssl;
    pthread_t thread;
    char buf[65536];
    size_t have;
    atomic_bool gone; /* the client closed it (or the handler did) */
    struct fx_conn *next;
} fx_conn_t;

/* Answers one request. Return 0 to keep the connection for the next
 * request, -1 to close it. */
typedef int (*fx_handler_t)(fx_conn_t *conn, const fx_req_t *req, void *ctx);

struct fx {
    int listen_fd;
    int port;
    char url[64];
    SSL_CTX *ssl_ctx;
    fx_handler_t handler;
    void *ctx;
    pthread_t accept_thread;
    pthread_mutex_t mu;
    fx_req_t *reqs;
    size_t nreqs, cap;
    fx_conn_t *conns;
    atomic_bool stopping;
    atomic_int handshake_failures;
};

FX_API long fx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

FX_API void fx_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* --- I/O ----------------------------------------------------------------- */

FX_API int fx_write(fx_conn_t *c, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n;
        if (c->ssl) {
            int r = SSL_write(c->ssl, p, (int)len);
            n = r > 0 ? r : -1;
        } else {
            n = send(c->fd, p, len, MSG_NOSIGNAL);
        }
        if (n < 0 && errno == EINTR && !c->ssl) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

FX_API int fx_printf(fx_conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
FX_API int fx_printf(fx_conn_t *c, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    int rc = fx_write(c, s, (size_t)n);
    free(s);
    return rc;
}

static ssize_t fx_read_some(fx_conn_t *c)
{
    if (c->have == sizeof c->buf) return -1;
    for (;;) {
        if (!c->ssl || SSL_pending(c->ssl) == 0) {
            struct pollfd p = {c->fd, POLLIN, 0};
            int r = poll(&p, 1, 100);
            if (r == 0) {
                if (atomic_load(&c->fx->stopping)) return -1;
                continue;
            }
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) return -1;
        }
        ssize_t n;
        if (c->ssl) {
            int r = SSL_read(c->ssl, c->buf + c->have, (int)(sizeof c->buf - c->have));
            n = r > 0 ? r : -1;
        } else {
            n = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
            if (n < 0 && errno == EINTR) continue;
        }
        if (n <= 0) return -1;
        c->have += (size_t)n;
        return n;
    }
}

FX_API void fx_respond(fx_conn_t *c, int status, const char *content_type, const char *body)
{
    size_t len = body ? strlen(body) : 0;
    fx_printf(c, "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", status,
              content_type ? content_type : "application/json", len);
    if (len) fx_write(c, body, len);
}

FX_API void fx_respond_json(fx_conn_t *c, int status, const char *body)
{
    fx_respond(c, status, "application/json", body);
}

/* A Kubernetes Status failure body. */
FX_API void fx_respond_status(fx_conn_t *c, int code, const char *reason, const char *message)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
             "\"message\":\"%s\",\"reason\":\"%s\",\"code\":%d}",
             message, reason, code);
    fx_respond_json(c, code, body);
}

FX_API int fx_stream_begin(fx_conn_t *c)
{
    return fx_printf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n");
}

FX_API int fx_chunk(fx_conn_t *c, const void *data, size_t len)
{
    if (!len) return 0;
    if (fx_printf(c, "%zx\r\n", len) == -1 || fx_write(c, data, len) == -1) return -1;
    return fx_write(c, "\r\n", 2);
}

FX_API int fx_stream_end(fx_conn_t *c)
{
    return fx_write(c, "0\r\n\r\n", 5);
}

/* Waits until the client closes the connection, the fixture stops, or
 * max_ms pass; returns true when the client went away. */
FX_API bool fx_wait_client_gone(fx_conn_t *c, long max_ms)
{
    long until = fx_now_ms() + max_ms;
    while (fx_now_ms() < until && !atomic_load(&c->fx->stopping)) {
        struct pollfd p = {c->fd, POLLIN | POLLRDHUP, 0};
        int r = poll(&p, 1, 50);
        if (r > 0) {
            char b;
            ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n == 0 || (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) return true;
            if (n > 0) return true; /* TLS close_notify or a new request: gone for us */
        }
    }
    return false;
}

/* --- requests ---------------------------------------------------------- */

/* Copies header `name` (case-insensitive) into out; false if absent. */
FX_API bool fx_header(const fx_req_t *r, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *end = strstr(line, "\r\n");
        if (!end) end = line + strlen(line);
        if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            snprintf(out, outlen, "%.*s", (int)(end - v), v);
            return true;
        }
        line = *end ? end + 2 : end;
    }
    return false;
}

/* The percent-decoded value of query parameter `name`; false if absent. */
FX_API bool fx_query(const fx_req_t *r, const char *name, char *out, size_t outlen)
{
    const char *q = strchr(r->target, '?');
    size_t nl = strlen(name);
    while (q && *q) {
        q++;
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
            size_t o = 0;
            for (size_t i = nl + 1; i < len && o + 1 < outlen; i++) {
                if (q[i] == '%' && i + 2 < len + 1 && isxdigit((unsigned char)q[i + 1]) &&
                    isxdigit((unsigned char)q[i + 2])) {
                    char hex[3] = {q[i + 1], q[i + 2], 0};
                    out[o++] = (char)strtol(hex, NULL, 16);
                    i += 2;
                } else {
                    out[o++] = q[i];
                }
            }
            out[o] = '\0';
            return true;
        }
        q = amp;
    }
    return false;
}

/* The path without its query, into out. */
FX_API void fx_path(const fx_req_t *r, char *out, size_t outlen)
{
    size_t n = strcspn(r->target, "?");
    snprintf(out, outlen, "%.*s", (int)n, r->target);
}

/* Reads one request into *r; -1 on EOF or error. */
static int fx_read_request(fx_conn_t *c, fx_req_t *r)
{
    memset(r, 0, sizeof *r);
    char *end;
    while (!(end = memmem(c->buf, c->have, "\r\n\r\n", 4)))
        if (fx_read_some(c) <= 0) return -1;
    size_t head_len = (size_t)(end - c->buf) + 4;
    char *head = strndup(c->buf, head_len - 4);
    char *line_end = strstr(head, "\r\n");
    char target[8192] = "";
    if (sscanf(head, "%15s %8191s", r->method, target) != 2) {
        free(head);
        return -1;
    }
    r->target = strdup(target);
    r->headers = strdup(line_end ? line_end + 2 : "");
    free(head);
    char cl[32];
    size_t body_len = fx_header(r, "content-length", cl, sizeof cl) ? strtoul(cl, NULL, 10) : 0;
    while (c->have < head_len + body_len)
        if (fx_read_some(c) <= 0) {
            free(r->target);
            free(r->headers);
            return -1;
        }
    r->body = malloc(body_len + 1);
    memcpy(r->body, c->buf + head_len, body_len);
    r->body[body_len] = '\0';
    r->body_len = body_len;
    r->at_ms = fx_now_ms();
    memmove(c->buf, c->buf + head_len + body_len, c->have - head_len - body_len);
    c->have -= head_len + body_len;
    if (c->ssl) {
        X509 *peer = SSL_get1_peer_certificate(c->ssl);
        if (peer) {
            X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, r->peer_cn,
                                      sizeof r->peer_cn);
            X509_free(peer);
        }
    }
    return 0;
}

static void fx_req_free(fx_req_t *r)
{
    free(r->target);
    free(r->headers);
    free(r->body);
}

static void *fx_conn_main(void *arg)
{
    fx_conn_t *c = arg;
    fx_t *fx = c->fx;
    if (fx->ssl_ctx) {
        c->ssl = SSL_new(fx->ssl_ctx);
        SSL_set_fd(c->ssl, c->fd);
        if (SSL_accept(c->ssl) != 1) {
            atomic_fetch_add(&fx->handshake_failures, 1);
            ERR_clear_error();
            goto done;
        }
    }
    for (;;) {
        fx_req_t r;
        if (fx_read_request(c, &r) == -1) break;
        pthread_mutex_lock(&fx->mu);
        if (fx->nreqs == fx->cap) {
            fx->cap = fx->cap ? fx->cap * 2 : 16;
            fx->reqs = realloc(fx->reqs, fx->cap * sizeof *fx->reqs);
        }
        r.index = (int)fx->nreqs;
        fx->reqs[fx->nreqs++] = r;
        pthread_mutex_unlock(&fx->mu);
        if (fx->handler(c, &r, fx->ctx) == -1) break;
    }
done:
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    shutdown(c->fd, SHUT_RDWR);
    ERR_clear_error();
    atomic_store(&c->gone, true);
    return NULL;
}

static void *fx_accept_main(void *arg)
{
    fx_t *fx = arg;
    for (;;) {
        int fd = accept(fx->listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            break;
        }
        if (atomic_load(&fx->stopping)) {
            close(fd);
            break;
        }
        fx_conn_t *c = calloc(1, sizeof *c);
        c->fx = fx;
        c->fd = fd;
        pthread_mutex_lock(&fx->mu);
        c->next = fx->conns;
        fx->conns = c;
        pthread_mutex_unlock(&fx->mu);
        pthread_create(&c->thread, NULL, fx_conn_main, c);
    }
    return NULL;
}

/* Starts serving on 127.0.0.1:<ephemeral>; fx->url is "http(s)://127.0.0.1:port". */
FX_API void fx_start(fx_t *fx, fx_handler_t handler, void *ctx, SSL_CTX *ssl_ctx)
{
    memset(fx, 0, sizeof *fx);
    fx->handler = handler;
    fx->ctx = ctx;
    fx->ssl_ctx = ssl_ctx;
    pthread_mutex_init(&fx->mu, NULL);
    fx->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fx->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(fx->listen_fd, 64) != 0)
        abort();
    socklen_t sl = sizeof sa;
    getsockname(fx->listen_fd, (struct sockaddr *)&sa, &sl);
    fx->port = ntohs(sa.sin_port);
    snprintf(fx->url, sizeof fx->url, "%s://127.0.0.1:%d", ssl_ctx ? "https" : "http", fx->port);
    pthread_create(&fx->accept_thread, NULL, fx_accept_main, fx);
}

FX_API void fx_stop(fx_t *fx)
{
    atomic_store(&fx->stopping, true);
    shutdown(fx->listen_fd, SHUT_RDWR);
    pthread_join(fx->accept_thread, NULL);
    close(fx->listen_fd);
    for (fx_conn_t *c = fx->conns; c; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    while (fx->conns) {
        fx_conn_t *c = fx->conns;
        fx->conns = c->next;
        pthread_join(c->thread, NULL);
        close(c->fd);
        free(c);
    }
    for (size_t i = 0; i < fx->nreqs; i++)
        fx_req_free(&fx->reqs[i]);
    free(fx->reqs);
    pthread_mutex_destroy(&fx->mu);
}

FX_API size_t fx_count(fx_t *fx)
{
    pthread_mutex_lock(&fx->mu);
    size_t n = fx->nreqs;
    pthread_mutex_unlock(&fx->mu);
    return n;
}

/* A copy of request i (free with fx_req_free); waits up to 5 s for it. */
FX_API bool fx_get(fx_t *fx, size_t i, fx_req_t *out)
{
    long until = fx_now_ms() + 5000;
    while (fx_count(fx) <= i) {
        if (fx_now_ms() > until) return false;
        fx_sleep_ms(5);
    }
    pthread_mutex_lock(&fx->mu);
    fx_req_t *r = &fx->reqs[i];
    *out = *r;
    out->target = strdup(r->target);
    out->headers = strdup(r->headers);
    out->body = malloc(r->body_len + 1);
    memcpy(out->body, r->body, r->body_len + 1);
    pthread_mutex_unlock(&fx->mu);
    return true;
}

FX_API void fx_release(fx_req_t *r)
{
    fx_req_free(r);
}

#endif
