/* test_portforward.c: unit tests for the kubelet's /portForward endpoint
 * (server/portforward.h) through the real HTTPS server on 127.0.0.1: a
 * TLS client made here upgrades to SPDY/3.1 and speaks it with
 * server/spdy.h's codec, as kubectl's spdystream would; the pod's port is
 * a listener on a loopback port that this test runs, reached through the
 * pod provider's dial_tcp (a fixture that connects to 127.0.0.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/portforward.h"
#include "server/server.h"
#include "server/spdy.h"
#include "util/pki.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* --- the pod's listener -------------------------------------------------------- */

typedef enum { L_ANSWER, L_SINK, L_SOURCE } lmode_t;

typedef struct lis {
    int fd, port;
    lmode_t mode;
    size_t source_bytes; /* L_SOURCE: how much to send */
    int conns;           /* connections to serve */
    pthread_t t;
    atomic_size_t sunk;  /* L_SINK: bytes received */
    atomic_bool sunk_ok; /* L_SINK: their pattern was right */
} lis_t;

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 31 + i / 4096);
}

static void serve_one(lis_t *l, int c)
{
    char buf[65536];
    if (l->mode == L_ANSWER) {
        strbuf_t line = STRBUF_INIT;
        while (!strchr(strbuf_str(&line), '\n')) {
            ssize_t n = recv(c, buf, sizeof buf - 1, 0);
            if (n <= 0) break;
            strbuf_append(&line, buf, (size_t)n);
        }
        strbuf_t answer = STRBUF_INIT;
        strbuf_printf(&answer, "you said: %s", strbuf_str(&line));
        (void)!send(c, answer.data, answer.len, MSG_NOSIGNAL);
        strbuf_free(&answer);
        strbuf_free(&line);
    } else if (l->mode == L_SINK) {
        size_t total = 0;
        bool ok = true;
        ssize_t n;
        while ((n = recv(c, buf, sizeof buf, 0)) > 0) {
            for (ssize_t i = 0; i < n; i++)
                ok &= (uint8_t)buf[i] == pattern(total + (size_t)i);
            total += (size_t)n;
        }
        atomic_store(&l->sunk, total);
        atomic_store(&l->sunk_ok, ok);
        char msg[64];
        int m = snprintf(msg, sizeof msg, "got %zu\n", total);
        (void)!send(c, msg, (size_t)m, MSG_NOSIGNAL);
    } else {
        size_t sent = 0;
        while (sent < l->source_bytes) {
            size_t k = l->source_bytes - sent < sizeof buf ? l->source_bytes - sent : sizeof buf;
            for (size_t i = 0; i < k; i++)
                buf[i] = (char)pattern(sent + i);
            ssize_t n = send(c, buf, k, MSG_NOSIGNAL);
            if (n <= 0) break;
            sent += (size_t)n;
        }
    }
    close(c);
}

static void *lis_main(void *arg)
{
    lis_t *l = arg;
    for (int i = 0; i < l->conns; i++) {
        int c = accept(l->fd, NULL, NULL);
        if (c < 0) break;
        serve_one(l, c);
    }
    return NULL;
}

static void lis_start(lis_t *l, lmode_t mode, int conns)
{
    l->mode = mode;
    l->conns = conns;
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l->fd, 16), 0);
    socklen_t sl = sizeof sa;
    getsockname(l->fd, (struct sockaddr *)&sa, &sl);
    l->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&l->t, NULL, lis_main, l), 0);
}

static void lis_join(lis_t *l)
{
    pthread_join(l->t, NULL);
    close(l->fd);
}

/* A port nobody listens on: bound, then closed. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    return ntohs(sa.sin_port);
}

/* --- the pods: one pod, default/web, uid uid-1 -------------------------------------- */

static atomic_int dials;

static json_t *fx_pod_list(void *ctx)
{
    (void)ctx;
    return json_pack("{s:s, s:s, s:{}, s:[{s:{s:s, s:s, s:s}}]}", "kind", "PodList", "apiVersion",
                     "v1", "metadata", "items", "metadata", "namespace", "default", "name", "web",
                     "uid", "uid-1");
}

static int fx_dial(void *ctx, const char *ns, const char *name, const char *uid, int port,
                   int timeout_ms, err_t *err)
{
    (void)ctx;
    (void)timeout_ms;
    atomic_fetch_add(&dials, 1);
    if (strcmp(ns, "default") != 0 || strcmp(name, "web") != 0 || strcmp(uid, "uid-1") != 0)
        return err_set(err, "pod %s/%s is not on this node", ns, name);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        err_errno(err, "dial tcp 127.0.0.1:%d", port);
        close(fd);
        return -1;
    }
    return fd;
}

typedef struct srv {
    server_t *s;
    int port;
    char *cert, *key;
} srv_t;

static void srv_start(srv_t *t)
{
    memset(t, 0, sizeof *t);
    const char *ips[] = {"127.0.0.1"};
    pki_name_t pn = {.cn = "node-a", .ips = ips, .nips = 1};
    assert_int_equal(pki_key_new(&t->key, NULL), 0);
    assert_int_equal(pki_self_signed(t->key, &pn, 3600, &t->cert, NULL), 0);
    server_config_t cfg = {
        .bind_address = "127.0.0.1",
        .node_name = "node-a",
        .cert_pem = t->cert,
        .key_pem = t->key,
        .anonymous = true, /* and no API client: every user is allowed */
        .pods = {.pod_list = fx_pod_list, .dial_tcp = fx_dial},
        .idle_timeout_s = 5,
    };
    err_t err = {""};
    if (server_start(&cfg, &t->s, &err) != 0) fail_msg("server_start: %s", err.msg);
    t->port = server_port(t->s);
}

static void srv_stop(srv_t *t)
{
    server_stop(t->s);
    free(t->cert);
    free(t->key);
}

/* --- a SPDY client over TLS ---------------------------------------------------------- */

typedef struct cli {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    spdy_codec_t *codec;
    strbuf_t in;
    size_t off;
    bool eof;
} cli_t;

static void cli_connect(cli_t *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    c->ctx = SSL_CTX_new(TLS_client_method());
    c->ssl = SSL_new(c->ctx);
    SSL_set_fd(c->ssl, c->fd);
    assert_int_equal(SSL_connect(c->ssl), 1);
    c->codec = spdy_codec_new();
}

static void cli_close(cli_t *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    close(c->fd);
    spdy_codec_free(c->codec);
    strbuf_free(&c->in);
}

static void cli_write(cli_t *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        int n = SSL_write(c->ssl, p, (int)(len > 65536 ? 65536 : len));
        if (n <= 0) fail_msg("SSL_write failed");
        p += n;
        len -= (size_t)n;
    }
}

/* More bytes into c->in; false at EOF or timeout. */
static bool cli_fill(cli_t *c)
{
    char buf[65536];
    int n = SSL_read(c->ssl, buf, sizeof buf);
    if (n <= 0) {
        c->eof = true;
        return false;
    }
    strbuf_append(&c->in, buf, (size_t)n);
    return true;
}

/* Sends an upgrade request; returns the status, the head in *head. */
static int cli_request(cli_t *c, const char *path, const char *headers, strbuf_t *head)
{
    strbuf_t req = STRBUF_INIT;
    strbuf_printf(&req, "POST %s HTTP/1.1\r\nHost: node-a\r\n%sContent-Length: 0\r\n\r\n", path,
                  headers);
    cli_write(c, req.data, req.len);
    strbuf_free(&req);
    char *end;
    while (!(end = strstr(strbuf_str(&c->in), "\r\n\r\n")))
        if (!cli_fill(c)) fail_msg("no response head");
    size_t hl = (size_t)(end + 4 - c->in.data);
    strbuf_append(head, c->in.data, hl);
    c->off = hl;
    int status = 0;
    sscanf(strbuf_str(head), "HTTP/1.1 %d", &status);
    return status;
}

static const char *UPGRADE = "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                             "X-Stream-Protocol-Version: portforward.k8s.io\r\n";

static void cli_upgrade(cli_t *c, const char *path)
{
    strbuf_t head = STRBUF_INIT;
    int st = cli_request(c, path, UPGRADE, &head);
    if (st != 101) fail_msg("upgrade: %s", strbuf_str(&head));
    assert_non_null(strcasestr(head.data, "X-Stream-Protocol-Version: portforward.k8s.io"));
    assert_non_null(strcasestr(head.data, "Upgrade: SPDY/3.1"));
    strbuf_free(&head);
}

static void cli_send(cli_t *c, const spdy_frame_t *f)
{
    strbuf_t b = STRBUF_INIT;
    err_t err = {""};
    assert_int_equal(spdy_encode(c->codec, f, &b, &err), 0);
    cli_write(c, b.data, b.len);
    strbuf_free(&b);
}

static void cli_open(cli_t *c, uint32_t id, const char *type, int port, const char *rid)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    spdy_header_t h[3] = {{.name = "streamtype", .value = (char *)type},
                          {.name = "port", .value = ps},
                          {.name = "requestid", .value = (char *)rid}};
    spdy_frame_t f = {
        .type = SPDY_SYN_STREAM, .stream_id = id, .headers = h, .nheaders = rid ? 3 : 2};
    cli_send(c, &f);
}

static void cli_data(cli_t *c, uint32_t id, const void *data, size_t len, bool fin)
{
    spdy_frame_t f = {.type = SPDY_DATA,
                      .stream_id = id,
                      .data = data,
                      .len = len,
                      .flags = fin ? SPDY_FLAG_FIN : 0};
    cli_send(c, &f);
}

/* The next frame; false at EOF or timeout. f->data points into c->in,
 * valid until the next call. */
static bool cli_next(cli_t *c, spdy_frame_t *f)
{
    for (;;) {
        err_t err = {""};
        long n = spdy_parse(c->codec, (const uint8_t *)c->in.data + c->off, c->in.len - c->off, f,
                            NULL, &err);
        if (n < 0) fail_msg("server sent a bad frame: %s", err.msg);
        if (n > 0) {
            c->off += (size_t)n;
            return true;
        }
        if (c->off > 0) {
            memmove(c->in.data, c->in.data + c->off, c->in.len - c->off);
            c->in.len -= c->off;
            c->off = 0;
        }
        if (!cli_fill(c)) return false;
    }
}

/* What one pair received: data bytes, error text, FINs, SYN_REPLYs. */
typedef struct pair_rx {
    uint32_t error_id, data_id;
    strbuf_t data, error;
    bool data_fin, error_fin, data_reply, error_reply, reset;
} pair_rx_t;

/* Reads frames into p until both its streams are finished (or reset). */
static void collect(cli_t *c, pair_rx_t *p)
{
    spdy_frame_t f;
    while (!(p->data_fin && p->error_fin) && !p->reset) {
        if (!cli_next(c, &f))
            fail_msg("connection ended before the pair %u/%u finished: %zu data bytes, fin %d/%d, "
                     "eof %d",
                     p->error_id, p->data_id, p->data.len, p->data_fin, p->error_fin, c->eof);
        if (f.type == SPDY_SYN_REPLY) {
            if (f.stream_id == p->data_id) p->data_reply = true;
            if (f.stream_id == p->error_id) p->error_reply = true;
        } else if (f.type == SPDY_DATA) {
            bool fin = f.flags & SPDY_FLAG_FIN;
            if (f.stream_id == p->data_id) {
                strbuf_append(&p->data, (const char *)f.data, f.len);
                p->data_fin |= fin;
            } else if (f.stream_id == p->error_id) {
                strbuf_append(&p->error, (const char *)f.data, f.len);
                p->error_fin |= fin;
            }
        } else if (f.type == SPDY_RST_STREAM) {
            p->reset = true;
        }
        spdy_frame_clear(&f);
    }
}

/* --- tests ------------------------------------------------------------------------- */

/* kubectl's sequence: error stream (closed at once by the client), data
 * stream, the request, the answer, the pod closes: FIN on both streams and
 * nothing on the error stream. */
static void request_and_answer(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t);
    lis_t l = {0};
    lis_start(&l, L_ANSWER, 1);
    cli_t c;
    cli_connect(&c, t.port);
    cli_upgrade(&c, "/portForward/default/web");
    cli_open(&c, 1, "error", l.port, "0");
    cli_data(&c, 1, NULL, 0, true);
    cli_open(&c, 3, "data", l.port, "0");
    cli_data(&c, 3, "hello pod\n", 10, false);
    pair_rx_t p = {.error_id = 1, .data_id = 3};
    collect(&c, &p);
    assert_true(p.data_reply && p.error_reply);
    assert_string_equal(strbuf_str(&p.data), "you said: hello pod\n");
    assert_string_equal(strbuf_str(&p.error), "");
    lis_join(&l);
    strbuf_free(&p.data);
    strbuf_free(&p.error);
    cli_close(&c);
    srv_stop(&t);
}

/* Megabytes each way, through every bound of the session and transport. */
static void large_both_ways(void **state)
{
    (void)state;
    const size_t total = 6 * 1024 * 1024;
    srv_t t;
    srv_start(&t);
    lis_t sink = {0}, source = {.source_bytes = total};
    lis_start(&sink, L_SINK, 1);
    lis_start(&source, L_SOURCE, 1);
    cli_t c;
    cli_connect(&c, t.port);
    cli_upgrade(&c, "/portForward/default/web");

    /* Client to pod: 6 MiB in 32 KiB frames, then FIN; the pod counts. */
    cli_open(&c, 1, "error", sink.port, "up");
    cli_open(&c, 3, "data", sink.port, "up");
    uint8_t *buf = xmalloc(32768);
    for (size_t off = 0; off < total; off += 32768) {
        for (size_t i = 0; i < 32768; i++)
            buf[i] = pattern(off + i);
        cli_data(&c, 3, buf, 32768, off + 32768 >= total);
    }
    pair_rx_t up = {.error_id = 1, .data_id = 3};
    collect(&c, &up);
    char want[64];
    snprintf(want, sizeof want, "got %zu\n", total);
    assert_string_equal(strbuf_str(&up.data), want);
    assert_true(atomic_load(&sink.sunk_ok));

    /* Pod to client: 6 MiB, then the pod closes. */
    cli_open(&c, 5, "error", source.port, "down");
    cli_open(&c, 7, "data", source.port, "down");
    pair_rx_t down = {.error_id = 5, .data_id = 7};
    collect(&c, &down);
    assert_int_equal(down.data.len, total);
    for (size_t i = 0; i < total; i++)
        if ((uint8_t)down.data.data[i] != pattern(i)) fail_msg("byte %zu differs", i);
    assert_string_equal(strbuf_str(&down.error), "");
    lis_join(&sink);
    lis_join(&source);
    free(buf);
    strbuf_free(&up.data);
    strbuf_free(&up.error);
    strbuf_free(&down.data);
    strbuf_free(&down.error);
    cli_close(&c);
    srv_stop(&t);
}

/* kubectl resets the data stream once it has the pod's end, then reads
 * the error stream to its end: the reset ends the pair, the error stream
 * still gets its FIN, and the pod's socket is closed. */
static void reset_data_stream(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t);
    lis_t l = {0};
    lis_start(&l, L_SINK, 1);
    cli_t c;
    cli_connect(&c, t.port);
    cli_upgrade(&c, "/portForward/default/web");
    cli_open(&c, 1, "error", l.port, "0");
    cli_open(&c, 3, "data", l.port, "0");
    cli_data(&c, 3, "abc", 3, false);
    spdy_frame_t rst = {.type = SPDY_RST_STREAM, .stream_id = 3, .status = SPDY_RST_CANCEL}, f;
    bool error_fin = false;
    int replies = 0;
    while (!error_fin) {
        if (!cli_next(&c, &f)) fail_msg("connection ended");
        if (f.type == SPDY_SYN_REPLY && ++replies == 2) cli_send(&c, &rst);
        if (f.type == SPDY_DATA && f.stream_id == 3) fail_msg("data after the reset");
        if (f.type == SPDY_DATA && f.stream_id == 1) {
            assert_int_equal(f.len, 0);
            error_fin = f.flags & SPDY_FLAG_FIN;
        }
        spdy_frame_clear(&f);
    }
    lis_join(&l);                           /* the sink saw EOF: the socket was closed */
    assert_true(atomic_load(&l.sunk) <= 3); /* what was not yet written is dropped */
    cli_close(&c);
    srv_stop(&t);
}

/* A port nobody listens on: the kubelet's error text on the error stream,
 * then both streams finished; the session stays usable. */
static void refused_port(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t);
    int port = dead_port();
    cli_t c;
    cli_connect(&c, t.port);
    cli_upgrade(&c, "/portForward/default/web/uid-1");
    cli_open(&c, 1, "error", port, "0");
    cli_data(&c, 1, NULL, 0, true);
    cli_open(&c, 3, "data", port, "0");
    pair_rx_t p = {.error_id = 1, .data_id = 3};
    collect(&c, &p);
    char want[128];
    snprintf(want, sizeof want, "error forwarding port %d to pod default/web, uid uid-1: ", port);
    if (strncmp(strbuf_str(&p.error), want, strlen(want)) != 0 ||
        !strstr(strbuf_str(&p.error), "refused"))
        fail_msg("error stream: %s", strbuf_str(&p.error));
    assert_int_equal(p.data.len, 0);

    /* Still usable: a PING is echoed. */
    spdy_frame_t ping = {.type = SPDY_PING, .value = 7}, f;
    cli_send(&c, &ping);
    assert_true(cli_next(&c, &f));
    assert_int_equal(f.type, SPDY_PING);
    assert_int_equal(f.value, 7);
    spdy_frame_clear(&f);
    strbuf_free(&p.data);
    strbuf_free(&p.error);
    cli_close(&c);
    srv_stop(&t);
}

/* Streams with bad headers are reset, as the kubelet resets them; a client
 * without requestID headers pairs by stream id; two pairs at once. */
static void streams_checked_and_paired(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t);
    lis_t l = {0};
    lis_start(&l, L_ANSWER, 2);
    cli_t c;
    cli_connect(&c, t.port);
    cli_upgrade(&c, "/portForward/default/web");
    spdy_frame_t f;
    static const char *const bad[][2] = {
        {"data", "0"}, {"data", "70000"}, {"data", "8x"}, {"other", "80"}, {NULL, "80"}};
    uint32_t id = 1;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++, id += 2) {
        spdy_header_t h[2] = {{.name = "port", .value = (char *)bad[i][1]},
                              {.name = "streamtype", .value = (char *)bad[i][0]}};
        spdy_frame_t syn = {
            .type = SPDY_SYN_STREAM, .stream_id = id, .headers = h, .nheaders = bad[i][0] ? 2 : 1};
        cli_send(&c, &syn);
        assert_true(cli_next(&c, &f));
        assert_int_equal(f.type, SPDY_RST_STREAM);
        assert_int_equal(f.stream_id, id);
        assert_int_equal(f.status, SPDY_RST_CANCEL);
        spdy_frame_clear(&f);
    }
    /* Legacy pairing (no requestID): error id, data id = error id + 2. */
    cli_open(&c, id, "error", l.port, NULL);
    cli_open(&c, id + 2, "data", l.port, NULL);
    /* And a second pair, with request ids, interleaved with the first. */
    cli_open(&c, id + 4, "data", l.port, "b");
    cli_open(&c, id + 6, "error", l.port, "b");
    cli_data(&c, id + 4, "second\n", 7, false);
    cli_data(&c, id + 2, "first\n", 6, false);
    pair_rx_t p1 = {.error_id = id, .data_id = id + 2},
              p2 = {.error_id = id + 6, .data_id = id + 4};
    /* Frames of both pairs interleave: read until both are done. */
    while (!(p1.data_fin && p1.error_fin && p2.data_fin && p2.error_fin)) {
        if (!cli_next(&c, &f)) fail_msg("connection ended");
        pair_rx_t *p = (f.stream_id == p1.data_id || f.stream_id == p1.error_id) ? &p1 : &p2;
        if (f.type == SPDY_DATA) {
            bool fin = f.flags & SPDY_FLAG_FIN;
            if (f.stream_id == p->data_id) {
                strbuf_append(&p->data, (const char *)f.data, f.len);
                p->data_fin |= fin;
            } else {
                strbuf_append(&p->error, (const char *)f.data, f.len);
                p->error_fin |= fin;
            }
        }
        spdy_frame_clear(&f);
    }
    assert_string_equal(strbuf_str(&p1.data), "you said: first\n");
    assert_string_equal(strbuf_str(&p2.data), "you said: second\n");
    lis_join(&l);
    strbuf_free(&p1.data);
    strbuf_free(&p1.error);
    strbuf_free(&p2.data);
    strbuf_free(&p2.error);
    cli_close(&c);
    srv_stop(&t);
}

/* A client that sends PINGs and never reads the answers: the session
 * stops reading it once its answers are queued up to PF_TO_CLIENT_HIGH, so
 * the client's writes stall well before it has sent 64 MiB (socket
 * buffers on both sides hold some megabytes). */
static void ping_flood_is_bounded(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t);
    cli_t c;
    cli_connect(&c, t.port);
    cli_upgrade(&c, "/portForward/default/web");
    struct timeval tv = {2, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    enum { BATCH = 5000 };
    uint8_t *buf = xmalloc(BATCH * 12);
    for (int i = 0; i < BATCH; i++) {
        uint8_t *p = buf + 12 * i;
        memcpy(p, "\x80\x03\x00\x06\x00\x00\x00\x04", 8);
        memcpy(p + 8, "\x00\x00\x00\x01", 4);
    }
    size_t sent = 0;
    while (sent < 64u * 1024 * 1024) {
        int n = SSL_write(c.ssl, buf, BATCH * 12);
        if (n <= 0) break;
        sent += (size_t)n;
    }
    if (sent >= 64u * 1024 * 1024) fail_msg("the server took %zu bytes of PINGs unanswered", sent);
    free(buf);
    cli_close(&c);
    srv_stop(&t);
}

/* Garbage after the upgrade: GOAWAY PROTOCOL_ERROR and the connection
 * closes; stream ids that go backwards too. */
static void protocol_errors_end_the_session(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t);
    for (int round = 0; round < 2; round++) {
        cli_t c;
        cli_connect(&c, t.port);
        cli_upgrade(&c, "/portForward/default/web");
        if (round == 0) {
            cli_write(&c, "GET / HTTP/1.1\r\n\r\n", 18); /* not SPDY */
        } else {
            cli_open(&c, 5, "error", 80, "0");
            cli_open(&c, 3, "data", 80, "0");
        }
        spdy_frame_t f;
        bool goaway = false;
        while (cli_next(&c, &f)) {
            if (f.type == SPDY_GOAWAY) {
                goaway = true;
                assert_int_equal(f.status, SPDY_GOAWAY_PROTOCOL_ERROR);
            }
            spdy_frame_clear(&f);
        }
        assert_true(goaway);
        assert_true(c.eof);
        cli_close(&c);
    }
    srv_stop(&t);
}

/* The handshake refuses as the kubelet does, before any upgrade. */
static void handshake_refusals(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t);
    static const struct {
        const char *path, *headers;
        int status;
        const char *word;
    } cases[] = {
        {"/portForward/default/nope",
         "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
         "X-Stream-Protocol-Version: portforward.k8s.io\r\n",
         404, "pod does not exist"},
        {"/portForward/default/web/uid-2",
         "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
         "X-Stream-Protocol-Version: portforward.k8s.io\r\n",
         404, "pod not found"},
        {"/portForward/default/web", "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n", 400,
         "X-Stream-Protocol-Version is required"},
        {"/portForward/default/web",
         "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: "
         "v4.channel.k8s.io\r\n",
         403, "unable to negotiate protocol"},
        {"/portForward/default/web", "X-Stream-Protocol-Version: portforward.k8s.io\r\n", 400,
         "missing upgrade headers"},
        {"/portForward/default", "", 400, "expected /portForward/"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cli_t c;
        cli_connect(&c, t.port);
        strbuf_t head = STRBUF_INIT;
        int st = cli_request(&c, cases[i].path, cases[i].headers, &head);
        while (!strstr(strbuf_str(&c.in) + c.off, cases[i].word) && cli_fill(&c))
            ;
        if (st != cases[i].status || !strstr(strbuf_str(&c.in) + c.off, cases[i].word))
            fail_msg("case %zu: %d %s", i, st, strbuf_str(&c.in));
        strbuf_free(&head);
        cli_close(&c);
    }
    srv_stop(&t);
}

/* A session left open does not hold up the server's stop, and a client that
 * vanishes mid-stream frees its pod socket. */
static void stop_with_session_open(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t);
    lis_t l = {0};
    lis_start(&l, L_ANSWER, 1);
    cli_t c;
    cli_connect(&c, t.port);
    cli_upgrade(&c, "/portForward/default/web");
    cli_open(&c, 1, "error", l.port, "0");
    cli_open(&c, 3, "data", l.port, "0");
    spdy_frame_t f;
    for (int replies = 0; replies < 2;) { /* the pair is dialed once both are replied */
        assert_true(cli_next(&c, &f));
        replies += f.type == SPDY_SYN_REPLY;
        spdy_frame_clear(&f);
    }
    int64_t t0 = time_mono_ns();
    srv_stop(&t);
    assert_true((time_mono_ns() - t0) / 1000000 < 3000);
    /* The pod's connection was closed: the listener's recv ends. */
    lis_join(&l);
    cli_close(&c);
}

int main(void)
{
    SSL_library_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_and_answer),
        cmocka_unit_test(large_both_ways),
        cmocka_unit_test(reset_data_stream),
        cmocka_unit_test(refused_port),
        cmocka_unit_test(streams_checked_and_paired),
        cmocka_unit_test(protocol_errors_end_the_session),
        cmocka_unit_test(ping_flood_is_bounded),
        cmocka_unit_test(handshake_refusals),
        cmocka_unit_test(stop_with_session_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
