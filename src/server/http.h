/* http.h: the HTTPS transport under the kubelet API: a libevent event loop
 * serving TLS, each request handed to a thread of its own, its answer
 * (whole, or streamed) handed back to the loop.
 *
 * It knows nothing of kubelets: what a path means, who may ask, what the
 * answer says is the handler's (routes.c, for the kubelet API). What it
 * does know: TLS and the serving certificate (replaceable while it runs),
 * the client certificate's identity when one verified against the client
 * CA, idle timeouts, a bound on requests in progress (then 503), flow
 * control of streams, and a count of every request for /metrics
 * (metrics/registry.h, by the class the handler names).
 *
 * Threads: see http.c. Every http_req_* function is called from the
 * request's handler thread; http_start/http_stop from one owner thread. */
#ifndef WASMLET_SERVER_HTTP_H
#define WASMLET_SERVER_HTTP_H

#include "util/err.h"
#include "util/strvec.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct http_server http_server_t;
typedef struct http_req http_req_t;

/* Answers one request, on the request's own thread. It must answer
 * (http_req_reply, http_req_error, or a stream); one that returns without
 * doing so is answered 500. */
typedef void (*http_handler_fn)(void *ctx, http_req_t *r);

typedef struct http_config {
    const char *bind_address; /* NULL: every address (0.0.0.0) */
    int port;                 /* 0: an ephemeral port (see http_port) */
    const char *cert_pem;     /* serving certificate chain ... */
    const char *key_pem;      /* ... and its key */
    /* CA bundle (PEM) that client certificates must chain to; NULL: client
     * certificates are not looked at. */
    const char *client_ca_pem;
    int idle_timeout_s; /* a connection idle this long is closed (0: 60 s) */
    int max_requests;   /* requests handled at once (0: 256); more get 503 */
    http_handler_fn handler;
    void *ctx;
} http_config_t;

/* Binds, listens and starts the loop thread. */
int http_start(const http_config_t *cfg, http_server_t **out, err_t *err);
/* The port listened on (useful with port 0). */
int http_port(const http_server_t *s);
/* Replaces the serving certificate for connections accepted afterwards.
 * The pair is checked first; on failure the old one stays. */
int http_set_cert(http_server_t *s, const char *cert_pem, const char *key_pem, err_t *err);
/* Whether http_stop has begun. */
bool http_stopping(const http_server_t *s);
/* Stops accepting, makes every request see http_req_gone (streams end),
 * waits for the handlers to return, and frees everything. NULL is a no-op. */
void http_stop(http_server_t *s);

/* --- a request, on its handler thread ---------------------------------- */

/* What the handler may read; fixed before the handler starts. */
const char *http_req_method(const http_req_t *r); /* "GET", "POST", ... */
const char *http_req_path(const http_req_t *r);   /* decoded path, without the query */
/* A query parameter's decoded value, or NULL when absent. */
const char *http_req_query(const http_req_t *r, const char *key);
/* A request header, or NULL. */
const char *http_req_header(const http_req_t *r, const char *name);
/* The verified client certificate's user (CN) and groups (O), or NULL. */
const char *http_req_peer(const http_req_t *r, const strvec_t **groups);
/* Names the path's class for the request metrics ("containerLogs", ...);
 * "other" until set. */
void http_req_set_class(http_req_t *r, const char *path_class);

/* A whole answer. Exactly one of reply / error / a stream per request. */
void http_req_reply(http_req_t *r, int status, const char *content_type, const char *body,
                    size_t len);
/* A text/plain error: the message and a newline. */
void http_req_error(http_req_t *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A streamed answer (chunked): headers now, data as it comes. write blocks
 * while more than a megabyte waits for a slow client, and returns -1 once
 * the client is gone or the server stops (the handler should then end). */
void http_req_stream_start(http_req_t *r, int status, const char *content_type);
int http_req_stream_write(http_req_t *r, const void *data, size_t len);
void http_req_stream_end(http_req_t *r);
/* The client went away or the server is stopping. */
bool http_req_gone(http_req_t *r);

/* Whether a header of that name (any of its occurrences) lists token among
 * its comma-separated elements, without regard to case. */
bool http_req_header_has(const http_req_t *r, const char *name, const char *token);

/* --- an upgraded connection (101 Switching Protocols) --------------------
 * Instead of an answer, the handler may take the connection over:
 * http_req_upgrade queues "101 Switching Protocols" with Connection:
 * Upgrade, Upgrade: protocol and extra_headers (each "Name: value\r\n"),
 * after which the connection carries the handler's bytes both ways until
 * the handler returns (then what it wrote is flushed, within a bound, and
 * the connection closed). The loop still does every read and write; the
 * handler polls http_req_raw_fd and exchanges bytes through buffers:
 * received bytes are held up to a bound (the socket is not read while the
 * handler lags), written ones are queued without bound, so the handler
 * keeps http_req_raw_pending in check itself. -1 when the request is
 * already answered. */
int http_req_upgrade(http_req_t *r, const char *protocol, const char *extra_headers, err_t *err);
/* An fd that polls readable when bytes arrived, the output drained, the
 * client ended or went away, or the server stops. */
int http_req_raw_fd(const http_req_t *r);
/* Takes up to cap received bytes (rearming the fd first): > 0 the count,
 * 0 none now, -1 none left ever (the client ended or is gone, or the
 * server stops). Never blocks. */
long http_req_raw_read(http_req_t *r, void *buf, size_t cap);
/* Queues bytes for the client; -1 once the client is gone or the server
 * stops. Never blocks. */
int http_req_raw_write(http_req_t *r, const void *data, size_t len);
/* Bytes written by the handler and not yet on the socket. */
size_t http_req_raw_pending(http_req_t *r);

#endif
