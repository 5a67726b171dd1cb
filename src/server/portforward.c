/* portforward.c: a port-forward session (see portforward.h): the upgrade,
 * then one loop on the request's thread over the SPDY connection and the
 * pod sockets of its stream pairs.
 *
 * What the kubelet does, and so this file: a SYN_STREAM is checked (a
 * port header 1..65535, a streamType of error or data) and answered with
 * an empty SYN_REPLY, or reset (RST_STREAM CANCEL) when its headers are
 * wrong; streams are paired by their requestID header (older clients send
 * none: the error stream's id, or the data stream's id - 2, stands in);
 * a pair incomplete after PF_STREAM_PAIR_TIMEOUT_MS gets "timed out
 * waiting for streams" on its error stream. A complete pair dials the data
 * stream's port; bytes then flow both ways; when one direction ends
 * (a FIN from the client, EOF from the pod) its end is passed on and the
 * other direction gets PF_HALF_CLOSE_GRACE_MS to end too, as the CRI
 * runtimes do, then both streams are finished (FIN) and the socket closed.
 * An error (the dial, a socket error) goes on the error stream as text
 * before the FINs. A RST_STREAM from the client ends its pair at once (the
 * other stream still gets its FIN: kubectl resets the data stream once it
 * has the pod's end, then reads the error stream to its end).
 *
 * Protocol errors of the connection (a frame spdy.c refuses, stream ids
 * that do not increase or are even) end the session with GOAWAY
 * PROTOCOL_ERROR. PINGs from the client are echoed; SETTINGS,
 * WINDOW_UPDATE and frames for streams no longer open are ignored, as
 * spdystream does. */
#include "server/portforward.h"
#include "server/spdy.h"
#include "util/diag.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define PF_READ_CHUNK (32 * 1024)
#define PF_IN_CAP (SPDY_HEADER_LEN + SPDY_MAX_FRAME + 64 * 1024)
#define PF_MAX_REQUEST_ID 64

typedef struct pf_pair {
    char request_id[PF_MAX_REQUEST_ID + 1];
    uint32_t error_id, data_id; /* 0 until that stream arrives */
    int port;                   /* the data stream's */
    int fd;                     /* the pod socket; -1 */
    bool dialed;
    bool client_fin; /* the client ended its data stream */
    bool pod_eof;    /* the pod ended its side */
    bool shut_wr;    /* the client's end was passed on (shutdown) */
    bool data_fin;   /* our FIN went out on the data stream */
    strbuf_t to_pod; /* client bytes the socket has not taken */
    size_t to_pod_off;
    int64_t created_ms;
    int64_t grace_until_ms; /* 0: both directions open */
} pf_pair_t;

typedef struct pf_session {
    server_t *s;
    http_req_t *r;
    const char *ns, *pod, *uid;
    spdy_codec_t *codec;
    strbuf_t in; /* received, not yet parsed (in.data[in_off..]) */
    size_t in_off;
    bool client_eof;
    bool goaway_seen;
    bool ending;
    uint32_t last_stream_id;
    pf_pair_t *pairs[PF_MAX_PAIRS];
    strbuf_t out; /* one frame being encoded */
    int64_t last_activity_ms;
} pf_session_t;

static int64_t now_ms(void)
{
    return time_mono_ns() / 1000000;
}

/* --- sending --------------------------------------------------------------- */

static void send_frame(pf_session_t *ss, const spdy_frame_t *f)
{
    err_t err = {""};
    diag_debug("port-forward %s/%s: sent type %d stream %u flags %u length %zu", ss->ns, ss->pod,
               (int)f->type, f->stream_id, f->flags, f->len);
    strbuf_reset(&ss->out);
    if (spdy_encode(ss->codec, f, &ss->out, &err) == -1) {
        diag_warn("port-forward %s/%s: %s", ss->ns, ss->pod, err.msg);
        ss->ending = true;
        return;
    }
    if (http_req_raw_write(ss->r, ss->out.data, ss->out.len) == -1) ss->ending = true;
    ss->last_activity_ms = now_ms();
}

static void send_data(pf_session_t *ss, uint32_t id, const void *data, size_t len, bool fin)
{
    spdy_frame_t f = {.type = SPDY_DATA,
                      .stream_id = id,
                      .flags = fin ? SPDY_FLAG_FIN : 0,
                      .data = data,
                      .len = len};
    send_frame(ss, &f);
}

static void send_rst(pf_session_t *ss, uint32_t id, uint32_t status)
{
    spdy_frame_t f = {.type = SPDY_RST_STREAM, .stream_id = id, .status = status};
    send_frame(ss, &f);
}

static void send_goaway(pf_session_t *ss, uint32_t status)
{
    spdy_frame_t f = {.type = SPDY_GOAWAY, .stream_id = ss->last_stream_id, .status = status};
    send_frame(ss, &f);
}

/* --- pairs ----------------------------------------------------------------- */

static pf_pair_t *pair_by_stream(pf_session_t *ss, uint32_t id)
{
    for (int i = 0; i < PF_MAX_PAIRS; i++) {
        pf_pair_t *p = ss->pairs[i];
        if (p && (p->error_id == id || p->data_id == id)) return p;
    }
    return NULL;
}

static void pair_free(pf_session_t *ss, pf_pair_t *p)
{
    for (int i = 0; i < PF_MAX_PAIRS; i++)
        if (ss->pairs[i] == p) ss->pairs[i] = NULL;
    if (p->fd >= 0) close(p->fd);
    strbuf_free(&p->to_pod);
    free(p);
}

/* Ends a pair as the kubelet does: the message (if any) on the error
 * stream, then FIN on both streams; the socket is closed. reset_id: a
 * stream the client reset (0: none), on which nothing more is sent; the
 * other one is still finished, since kubectl reads the error stream to its
 * end after resetting the data stream. */
static void pair_close(pf_session_t *ss, pf_pair_t *p, const char *msg, uint32_t reset_id)
{
    if (p->data_id && p->data_id != reset_id && !p->data_fin)
        send_data(ss, p->data_id, NULL, 0, true);
    if (p->error_id && p->error_id != reset_id) {
        if (msg && *msg) send_data(ss, p->error_id, msg, strlen(msg), false);
        send_data(ss, p->error_id, NULL, 0, true);
    }
    if (msg && *msg) diag_info("port-forward %s/%s: %s", ss->ns, ss->pod, msg);
    pair_free(ss, p);
}

static void pair_fail(pf_session_t *ss, pf_pair_t *p, const char *why)
{
    char msg[ERR_MSG_MAX + 256];
    snprintf(msg, sizeof msg, "error forwarding port %d to pod %s/%s, uid %s: %s", p->port, ss->ns,
             ss->pod, ss->uid, why);
    pair_close(ss, p, msg, 0);
}

static void pair_dial(pf_session_t *ss, pf_pair_t *p)
{
    err_t err = {""};
    server_pods_t *pods = &ss->s->pods;
    p->dialed = true;
    p->fd = pods->dial_tcp(pods->ctx, ss->ns, ss->pod, ss->uid, p->port, PF_DIAL_TIMEOUT_MS, &err);
    if (p->fd < 0) {
        p->fd = -1;
        pair_fail(ss, p, err.msg[0] ? err.msg : "cannot connect");
    }
}

/* --- frames from the client -------------------------------------------------- */

/* The kubelet's check of a new stream's headers: NULL when good, else why
 * it is reset. */
static const char *stream_headers_bad(const spdy_frame_t *f, int *port, bool *is_data)
{
    const char *ps = spdy_header_get(f, "port");
    if (!ps || !*ps) return "\"port\" header is required";
    size_t n = strlen(ps);
    if (n > 5 || strspn(ps, "0123456789") != n) return "unable to parse the port header";
    long v = strtol(ps, NULL, 10);
    if (v < 1 || v > 65535) return "port must be 1..65535";
    const char *st = spdy_header_get(f, "streamtype");
    if (!st || !*st) return "\"streamType\" header is required";
    if (strcmp(st, "error") != 0 && strcmp(st, "data") != 0) return "invalid stream type";
    *port = (int)v;
    *is_data = strcmp(st, "data") == 0;
    return NULL;
}

static void on_syn_stream(pf_session_t *ss, const spdy_frame_t *f)
{
    uint32_t id = f->stream_id;
    if (id % 2 == 0 || id <= ss->last_stream_id) {
        diag_info("port-forward %s/%s: stream id %u out of order", ss->ns, ss->pod, id);
        send_goaway(ss, SPDY_GOAWAY_PROTOCOL_ERROR);
        ss->ending = true;
        return;
    }
    ss->last_stream_id = id;
    if (ss->goaway_seen) return;
    if (f->flags & SPDY_FLAG_UNIDIRECTIONAL) {
        send_rst(ss, id, SPDY_RST_PROTOCOL_ERROR);
        return;
    }
    int port = 0;
    bool is_data = false;
    const char *bad = stream_headers_bad(f, &port, &is_data);
    if (bad) {
        diag_info("port-forward %s/%s: stream %u rejected: %s", ss->ns, ss->pod, id, bad);
        send_rst(ss, id, SPDY_RST_CANCEL);
        return;
    }
    char rid[PF_MAX_REQUEST_ID + 1];
    const char *hr = spdy_header_get(f, "requestid");
    if (hr && *hr) {
        if (strlen(hr) > PF_MAX_REQUEST_ID) {
            send_rst(ss, id, SPDY_RST_CANCEL);
            return;
        }
        snprintf(rid, sizeof rid, "%s", hr);
    } else {
        snprintf(rid, sizeof rid, "%u", is_data ? id - 2 : id);
    }
    pf_pair_t *p = NULL;
    int free_slot = -1;
    for (int i = 0; i < PF_MAX_PAIRS; i++) {
        if (ss->pairs[i] && strcmp(ss->pairs[i]->request_id, rid) == 0) p = ss->pairs[i];
        if (!ss->pairs[i] && free_slot < 0) free_slot = i;
    }
    if (!p) {
        if (free_slot < 0) {
            send_rst(ss, id, SPDY_RST_REFUSED_STREAM);
            return;
        }
        p = xcalloc(1, sizeof *p);
        snprintf(p->request_id, sizeof p->request_id, "%s", rid);
        p->fd = -1;
        p->created_ms = now_ms();
        ss->pairs[free_slot] = p;
    }
    if ((is_data && p->data_id) || (!is_data && p->error_id)) {
        /* The kubelet reports it on the pair's error stream and carries on. */
        send_rst(ss, id, SPDY_RST_CANCEL);
        if (p->error_id) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "error processing stream for request %s: %s stream already assigned", rid,
                     is_data ? "data" : "error");
            send_data(ss, p->error_id, msg, strlen(msg), false);
        }
        return;
    }
    spdy_frame_t reply = {.type = SPDY_SYN_REPLY, .stream_id = id};
    send_frame(ss, &reply);
    if (is_data) {
        p->data_id = id;
        p->port = port;
        p->client_fin = (f->flags & SPDY_FLAG_FIN) != 0;
    } else {
        p->error_id = id;
    }
    if (p->data_id && p->error_id && !p->dialed) pair_dial(ss, p);
}

static void on_data(pf_session_t *ss, const spdy_frame_t *f)
{
    pf_pair_t *p = pair_by_stream(ss, f->stream_id);
    if (!p || f->stream_id != p->data_id) return; /* gone, or the error stream: nothing to do */
    if (p->client_fin) return;                    /* after its FIN: ignored */
    if (f->len > 0 && !p->pod_eof) strbuf_append(&p->to_pod, (const char *)f->data, f->len);
    if (f->flags & SPDY_FLAG_FIN) p->client_fin = true;
}

static void on_frame(pf_session_t *ss, const spdy_frame_t *f)
{
    ss->last_activity_ms = now_ms();
    diag_debug("port-forward %s/%s: received type %d stream %u flags %u length %zu", ss->ns,
               ss->pod, (int)f->type, f->stream_id, f->flags, f->len);
    switch ((int)f->type) {
    case SPDY_SYN_STREAM:
        on_syn_stream(ss, f);
        break;
    case SPDY_DATA:
        on_data(ss, f);
        break;
    case SPDY_RST_STREAM: {
        pf_pair_t *p = pair_by_stream(ss, f->stream_id);
        if (p) pair_close(ss, p, NULL, f->stream_id);
        break;
    }
    case SPDY_PING:
        if (f->value % 2 == 1) { /* the client's; even ids would answer ours */
            spdy_frame_t pong = {.type = SPDY_PING, .value = f->value};
            send_frame(ss, &pong);
        }
        break;
    case SPDY_GOAWAY:
        ss->goaway_seen = true;
        break;
    default: /* SYN_REPLY (we open no streams), HEADERS, SETTINGS, WINDOW_UPDATE, unknown */
        break;
    }
}

/* Whether a pod socket holds so much of the client's data that reading
 * more frames must wait. */
static bool pods_blocked(const pf_session_t *ss)
{
    for (int i = 0; i < PF_MAX_PAIRS; i++) {
        const pf_pair_t *p = ss->pairs[i];
        if (p && p->to_pod.len - p->to_pod_off > PF_TO_POD_HIGH) return true;
    }
    return false;
}

/* Whether frames must wait: for a pod socket, or for the client to read
 * what we sent (frames it sends make answers: a client that pings and
 * never reads must not grow our output without bound). */
static bool input_blocked(const pf_session_t *ss)
{
    return pods_blocked(ss) || http_req_raw_pending(ss->r) >= PF_TO_CLIENT_HIGH;
}

static void parse_input(pf_session_t *ss)
{
    while (!ss->ending && !input_blocked(ss)) {
        spdy_frame_t f;
        err_t err = {""};
        long n = spdy_parse(ss->codec, (const uint8_t *)ss->in.data + ss->in_off,
                            ss->in.len - ss->in_off, &f, NULL, &err);
        if (n < 0) {
            diag_info("port-forward %s/%s: %s", ss->ns, ss->pod, err.msg);
            send_goaway(ss, SPDY_GOAWAY_PROTOCOL_ERROR);
            ss->ending = true;
            return;
        }
        if (n == 0) break;
        on_frame(ss, &f);
        spdy_frame_clear(&f);
        ss->in_off += (size_t)n;
    }
    /* What is left goes to the front, so a frame as large as allowed
     * always fits in PF_IN_CAP. */
    if (ss->in_off > 0 && ss->in_off == ss->in.len) {
        strbuf_reset(&ss->in);
        ss->in_off = 0;
    } else if (ss->in_off > 0) {
        size_t rest = ss->in.len - ss->in_off;
        memmove(ss->in.data, ss->in.data + ss->in_off, rest);
        ss->in.len = rest;
        ss->in.data[rest] = '\0';
        ss->in_off = 0;
    }
}

static void read_client(pf_session_t *ss)
{
    char buf[PF_READ_CHUNK];
    while (ss->in.len < PF_IN_CAP) {
        size_t room = PF_IN_CAP - ss->in.len;
        long n = http_req_raw_read(ss->r, buf, room < sizeof buf ? room : sizeof buf);
        if (n < 0) {
            ss->client_eof = true;
            return;
        }
        if (n == 0) return;
        strbuf_append(&ss->in, buf, (size_t)n);
    }
    http_req_raw_read(ss->r, NULL, 0); /* full: only rearm */
}

/* --- pod sockets --------------------------------------------------------------- */

static void pod_flush(pf_session_t *ss, pf_pair_t *p)
{
    while (p->fd >= 0 && p->to_pod_off < p->to_pod.len) {
        ssize_t w = send(p->fd, p->to_pod.data + p->to_pod_off, p->to_pod.len - p->to_pod_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        if (w < 0) {
            char why[128];
            snprintf(why, sizeof why, "writing to the pod: %s", strerror(errno));
            pair_fail(ss, p, why);
            return;
        }
        p->to_pod_off += (size_t)w;
        ss->last_activity_ms = now_ms();
    }
    if (p->to_pod_off == p->to_pod.len) {
        strbuf_reset(&p->to_pod);
        p->to_pod_off = 0;
    }
}

/* Reads what the pod sent onto the data stream; false when p was freed. */
static bool pod_read(pf_session_t *ss, pf_pair_t *p)
{
    char buf[PF_READ_CHUNK];
    ssize_t n = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    if (n < 0) {
        char why[128];
        snprintf(why, sizeof why, "reading from the pod: %s", strerror(errno));
        pair_fail(ss, p, why);
        return false;
    }
    if (n == 0) {
        p->pod_eof = true;
        p->data_fin = true;
        send_data(ss, p->data_id, NULL, 0, true);
        return true;
    }
    send_data(ss, p->data_id, buf, (size_t)n, false);
    return true;
}

/* Half-closes, grace and timeouts of one pair; false when p was freed. */
static bool pair_tick(pf_session_t *ss, pf_pair_t *p, int64_t now)
{
    if (!p->data_id || !p->error_id) {
        if (now - p->created_ms >= PF_STREAM_PAIR_TIMEOUT_MS) {
            char msg[128];
            snprintf(msg, sizeof msg, "(request=%s) timed out waiting for streams", p->request_id);
            pair_close(ss, p, msg, 0);
            return false;
        }
        return true;
    }
    if (p->fd < 0) return true;
    if (p->client_fin && !p->shut_wr && p->to_pod_off == p->to_pod.len) {
        shutdown(p->fd, SHUT_WR);
        p->shut_wr = true;
    }
    bool one_done = p->shut_wr || p->pod_eof;
    if (one_done && p->grace_until_ms == 0) p->grace_until_ms = now + PF_HALF_CLOSE_GRACE_MS;
    if ((p->shut_wr && p->pod_eof) || (p->grace_until_ms && now >= p->grace_until_ms)) {
        pair_close(ss, p, NULL, 0);
        return false;
    }
    return true;
}

/* --- the session ---------------------------------------------------------------- */

static int npairs(const pf_session_t *ss)
{
    int n = 0;
    for (int i = 0; i < PF_MAX_PAIRS; i++)
        n += ss->pairs[i] != NULL;
    return n;
}

static bool pair_live(const pf_session_t *ss, const pf_pair_t *p)
{
    for (int k = 0; k < PF_MAX_PAIRS; k++)
        if (ss->pairs[k] == p) return true;
    return false;
}

/* One loop: do all the work there is (client bytes in, frames, bytes to
 * the pods, timers), then poll. The work phase runs every turn whatever
 * woke the poll, so no input is left waiting on a wake-up already taken. */
static void session_run(pf_session_t *ss)
{
    struct pollfd pfd[1 + PF_MAX_PAIRS];
    pf_pair_t *at[1 + PF_MAX_PAIRS];
    ss->last_activity_ms = now_ms();
    while (!ss->ending) {
        if (http_req_gone(ss->r)) break;
        if (!ss->client_eof && !input_blocked(ss) && ss->in.len < PF_IN_CAP) read_client(ss);
        parse_input(ss);
        for (int i = 0; i < PF_MAX_PAIRS && !ss->ending; i++)
            if (ss->pairs[i] && ss->pairs[i]->fd >= 0) pod_flush(ss, ss->pairs[i]);
        int64_t now = now_ms();
        for (int i = 0; i < PF_MAX_PAIRS && !ss->ending; i++)
            if (ss->pairs[i]) pair_tick(ss, ss->pairs[i], now);
        if (ss->ending) break;
        /* The client ended: what is left is no whole frame, or waits for
         * a client that will not read it. */
        if (ss->client_eof && !pods_blocked(ss)) break;
        if (ss->goaway_seen && npairs(ss) == 0) break;
        if (npairs(ss) == 0 && now - ss->last_activity_ms > PF_IDLE_TIMEOUT_MS) {
            send_goaway(ss, SPDY_GOAWAY_OK);
            break;
        }

        bool to_client_ok = http_req_raw_pending(ss->r) < PF_TO_CLIENT_HIGH;
        int n = 0;
        pfd[n] = (struct pollfd){.fd = http_req_raw_fd(ss->r), .events = POLLIN};
        at[n++] = NULL;
        int64_t wake = now + 1000;
        for (int i = 0; i < PF_MAX_PAIRS; i++) {
            pf_pair_t *p = ss->pairs[i];
            if (!p) continue;
            if (!p->data_id || !p->error_id) {
                if (p->created_ms + PF_STREAM_PAIR_TIMEOUT_MS < wake)
                    wake = p->created_ms + PF_STREAM_PAIR_TIMEOUT_MS;
                continue;
            }
            if (p->grace_until_ms && p->grace_until_ms < wake) wake = p->grace_until_ms;
            short ev = 0;
            if (p->fd >= 0 && !p->pod_eof && to_client_ok) ev |= POLLIN;
            if (p->fd >= 0 && p->to_pod_off < p->to_pod.len) ev |= POLLOUT;
            pfd[n] = (struct pollfd){.fd = ev ? p->fd : -1, .events = ev};
            at[n++] = p;
        }
        int timeout = wake > now ? (int)(wake - now) : 0;
        if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR) break;
        /* Rearm the connection's fd; its bytes are read at the top. */
        if ((pfd[0].revents & POLLIN) && http_req_raw_read(ss->r, NULL, 0) < 0)
            ss->client_eof = true;
        for (int i = 1; i < n && !ss->ending; i++) {
            pf_pair_t *p = at[i];
            if (!pair_live(ss, p) || p->fd < 0) continue;
            if (pfd[i].revents & (POLLOUT | POLLERR | POLLHUP)) pod_flush(ss, p);
            if (pair_live(ss, p) && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) && !p->pod_eof)
                pod_read(ss, p);
        }
    }
    for (int i = 0; i < PF_MAX_PAIRS; i++)
        if (ss->pairs[i]) pair_free(ss, ss->pairs[i]);
}

/* The pod's uid when ns/name is on this node (and has uid, if given):
 * 0, 404 (answered) or 0 with *uid_out NULL when the node cannot tell. */
static int find_pod(server_t *s, http_req_t *r, const char *ns, const char *name, const char *uid,
                    char **uid_out)
{
    *uid_out = NULL;
    json_t *list = s->pods.pod_list ? s->pods.pod_list(s->pods.ctx) : NULL;
    if (!list) return 0;
    json_t *items = json_object_get(list, "items"), *pod;
    size_t i;
    bool found = false;
    json_array_foreach(items, i, pod)
    {
        json_t *md = json_object_get(pod, "metadata");
        const char *pns = json_string_value(json_object_get(md, "namespace"));
        const char *pname = json_string_value(json_object_get(md, "name"));
        const char *puid = json_string_value(json_object_get(md, "uid"));
        if (!pns || !pname || strcmp(pns, ns) != 0 || strcmp(pname, name) != 0) continue;
        found = true;
        if (uid && *uid && (!puid || strcmp(uid, puid) != 0)) continue;
        *uid_out = xstrdup(puid ? puid : "");
        break;
    }
    json_decref(list);
    if (*uid_out) return 0;
    http_req_error(r, 404, found ? "pod not found" : "pod does not exist");
    return 404;
}

void server_handle_port_forward(server_t *s, http_req_t *r, const char *ns, const char *pod,
                                const char *uid)
{
    const char *method = http_req_method(r);
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
        http_req_error(r, 405, "method %s is not allowed on %s", method, http_req_path(r));
        return;
    }
    if (!s->pods.dial_tcp) {
        http_req_error(r, 501, "port-forward: this node cannot reach its pods' ports");
        return;
    }
    char *pod_uid = NULL;
    if (find_pod(s, r, ns, pod, uid, &pod_uid) != 0) return;
    /* httpstream.Handshake, then the SPDY upgrader's check, in that order. */
    if (!http_req_header(r, "X-Stream-Protocol-Version")) {
        http_req_error(r, 400, "unable to upgrade: X-Stream-Protocol-Version is required");
    } else if (!http_req_header_has(r, "X-Stream-Protocol-Version", PF_PROTOCOL)) {
        http_req_error(r, 403,
                       "unable to upgrade: unable to negotiate protocol: client supports [%s], "
                       "server accepts [" PF_PROTOCOL "]",
                       http_req_header(r, "X-Stream-Protocol-Version"));
    } else if (!http_req_header_has(r, "Connection", "upgrade") ||
               !http_req_header_has(r, "Upgrade", "SPDY/3.1")) {
        http_req_error(r, 400,
                       "unable to upgrade: missing upgrade headers in request "
                       "(Connection: Upgrade and Upgrade: SPDY/3.1 are required)");
    } else {
        pf_session_t ss = {.s = s, .r = r, .ns = ns, .pod = pod, .uid = pod_uid ? pod_uid : ""};
        ss.codec = spdy_codec_new();
        err_t err = {""};
        if (!ss.codec) {
            http_req_error(r, 500, "port-forward: cannot set up zlib");
        } else if (http_req_upgrade(r, "SPDY/3.1", "X-Stream-Protocol-Version: " PF_PROTOCOL "\r\n",
                                    &err) == 0) {
            diag_info("port-forward %s/%s: session open", ns, pod);
            session_run(&ss);
            diag_info("port-forward %s/%s: session closed", ns, pod);
        }
        spdy_codec_free(ss.codec);
        strbuf_free(&ss.in);
        strbuf_free(&ss.out);
    }
    free(pod_uid);
}
