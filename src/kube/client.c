/* client.c: HTTP to the Kubernetes API server over libcurl (see client.h).
 *
 * Threads. libcurl's easy handles are single-threaded, so every request
 * borrows one from a small pool behind the client's mutex (at most
 * KUBE_POOL_IDLE kept idle) and gives it back afterwards. Requests run on the
 * client's httpmux (util/httpmux.h): one thread drives them all on shared
 * connections, as HTTP/2 streams of one TLS connection when the server
 * speaks it (the API server does, as client-go uses it), so a hundred pods
 * starting at once make a hundred streams, not a hundred handshakes. A watch
 * is the exception: it holds a stream for minutes, so it keeps its handle's
 * own HTTP/1.1 connection (kube/watch.c). Handles share TLS session tickets
 * and the DNS cache through a CURLSH guarded by mutexes, so a new connection
 * resumes a TLS session instead of a full handshake.
 *
 * Credentials. The TLS material (CA, client certificate and key) lives in an
 * immutable, reference-counted kube_creds_t, together with the CURLSH that
 * caches sessions made with it. Rotating the certificate installs a new
 * creds object; handles made with the old one are closed when they come back
 * to the pool rather than reused, and the old share goes away with its last
 * user. This matters for correctness, not tidiness: a reused connection or a
 * resumed TLS session would keep presenting the old identity to the server.
 * A watch that is running holds its creds reference until it reconnects, so
 * rotation never interrupts a stream. The bearer token is not TLS state and is
 * simply read under the mutex for each request.
 *
 * Errors. The API server answers failures with a Status object; its message
 * ("pods \"web\" not found") becomes the err_t text and its code and reason
 * go to kube_result_t so callers branch on numbers, never on message text.
 *
 * Metrics are plain counters under their own mutex: one lock per request is
 * noise next to a network round trip, and a snapshot is trivially consistent. */
#include "kube/client.h"
#include "util/fs.h"
#include "util/httpc.h"
#include "util/httpmux.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KUBE_POOL_IDLE 16 /* one per status writer (pod/manager_priv.h) */
#define KUBE_CONNECT_TIMEOUT_MS 5000L
#define KUBE_DEFAULT_TIMEOUT_MS 30000L
#define KUBE_MAX_RESPONSE (256u << 20)         /* a runaway body is an error, not an abort */
#define KUBE_TOKEN_REREAD_NS (60 * NS_PER_SEC) /* how stale a tokenFile's copy may get */

const double kube_latency_bounds[KUBE_LATENCY_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                          0.5,   1,    2.5,   5,    10,  30};

/* Immutable TLS material plus the session cache made with it. refs is
 * guarded by the owning client's mutex. */
typedef struct kube_creds {
    unsigned refs;
    char *ca_pem, *cert_pem, *key_pem;
    bool insecure;
    CURLSH *share;
    pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
} kube_creds_t;

struct kube_conn {
    CURL *easy;
    kube_creds_t *creds; /* a reference, held while the handle exists */
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    kube_conn_t *next; /* in the idle list */
};

struct kube_client {
    char *server;
    pthread_mutex_t mu; /* guards everything below up to metrics_mu */
    kube_creds_t *creds;
    kube_conn_t *idle;
    unsigned nidle;
    httpmux_t *mux;        /* every request but the watches */
    atomic_uint in_flight; /* requests in kube_do now */
    char *token;
    char *token_file;
    int64_t token_read_ns;
    long timeout_ms;
    pthread_mutex_t metrics_mu;
    kube_client_metrics_t metrics;
};

/* --- credentials -------------------------------------------------------- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userp)
{
    (void)h;
    (void)access;
    kube_creds_t *cr = userp;
    pthread_mutex_lock(&cr->locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userp)
{
    (void)h;
    kube_creds_t *cr = userp;
    pthread_mutex_unlock(&cr->locks[data]);
}

static void wipe_free(char *s)
{
    if (!s) return;
    memset(s, 0, strlen(s));
    free(s);
}

static void creds_free(kube_creds_t *cr)
{
    if (!cr) return;
    if (cr->share) curl_share_cleanup(cr->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&cr->locks[i]);
    free(cr->ca_pem);
    free(cr->cert_pem);
    wipe_free(cr->key_pem);
    free(cr);
}

static kube_creds_t *creds_new(const char *ca, const char *cert, const char *key, bool insecure)
{
    kube_creds_t *cr = xcalloc(1, sizeof *cr);
    cr->refs = 1;
    cr->ca_pem = ca ? xstrdup(ca) : NULL;
    cr->cert_pem = cert ? xstrdup(cert) : NULL;
    cr->key_pem = key ? xstrdup(key) : NULL;
    cr->insecure = insecure;
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&cr->locks[i], NULL);
    cr->share = curl_share_init();
    if (cr->share) {
        /* Without a share every handle still works; it just handshakes in full. */
        curl_share_setopt(cr->share, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(cr->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(cr->share, CURLSHOPT_USERDATA, cr);
        curl_share_setopt(cr->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        curl_share_setopt(cr->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    }
    return cr;
}

/* Drops one reference; c->mu must be held. Returns the creds to free (after
 * unlocking) when that was the last one. */
static kube_creds_t *creds_unref_locked(kube_client_t *c, kube_creds_t *cr)
{
    lock_assert_held(&c->mu);
    return --cr->refs == 0 ? cr : NULL;
}

/* Parses the certificate and key and checks they belong together, so a
 * broken rotation is refused up front instead of failing every handshake. */
static int check_keypair(const char *cert_pem, const char *key_pem, err_t *err)
{
    int rc = -1;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    BIO *b = BIO_new_mem_buf(cert_pem, -1);
    if (!b || !(x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
        err_set(err, "client certificate: no PEM certificate found");
        goto out;
    }
    BIO_free(b);
    b = BIO_new_mem_buf(key_pem, -1);
    if (!b || !(k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL))) {
        err_set(err, "client key: no PEM private key found");
        goto out;
    }
    if (X509_check_private_key(x, k) != 1) {
        err_set(err, "client key does not match the client certificate");
        goto out;
    }
    rc = 0;
out:
    BIO_free(b);
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

/* --- client ----------------------------------------------------------- */

int kube_client_new(const kube_kubeconfig_t *cfg, kube_client_t **out, err_t *err)
{
    if (httpc_global_init(err) == -1) return -1;
    if (!cfg->server || !*cfg->server) return err_set(err, "kube client: no server URL");
    if (!cfg->cert_pem != !cfg->key_pem)
        return err_set(err, "kube client: client certificate and key must be given together");
    if (cfg->cert_pem && check_keypair(cfg->cert_pem, cfg->key_pem, err) == -1)
        return err_prefix(err, "kube client");

    kube_client_t *c = xcalloc(1, sizeof *c);
    c->server = xstrdup(cfg->server);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->metrics_mu, NULL);
    c->creds = creds_new(cfg->ca_pem, cfg->cert_pem, cfg->key_pem, cfg->insecure_skip_tls_verify);
    c->token = cfg->token ? xstrdup(cfg->token) : NULL;
    c->token_file = cfg->token_file ? xstrdup(cfg->token_file) : NULL;
    c->token_read_ns = time_mono_ns();
    c->timeout_ms = KUBE_DEFAULT_TIMEOUT_MS;
    c->mux = httpmux_new();
    *out = c;
    return 0;
}

static void conn_destroy(kube_conn_t *conn)
{
    curl_easy_cleanup(conn->easy);
    curl_slist_free_all(conn->headers);
    free(conn);
}

void kube_client_free(kube_client_t *c)
{
    if (!c) return;
    httpmux_free(c->mux); /* its connections before the credentials' share */
    /* No other thread uses c any more; the lock is taken for what the
     * _locked helpers assert. */
    pthread_mutex_lock(&c->mu);
    while (c->idle) {
        kube_conn_t *conn = c->idle;
        c->idle = conn->next;
        kube_creds_t *cr = conn->creds;
        conn_destroy(conn);
        if (creds_unref_locked(c, cr)) creds_free(cr);
    }
    if (creds_unref_locked(c, c->creds)) creds_free(c->creds);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->metrics_mu);
    wipe_free(c->token);
    free(c->token_file);
    free(c->server);
    free(c);
}

/* Closes a list of handles taken off the idle list, and drops their
 * credentials' references. */
static void conns_destroy(kube_client_t *c, kube_conn_t *list)
{
    while (list) {
        kube_conn_t *conn = list;
        list = conn->next;
        kube_creds_t *cr = conn->creds;
        conn_destroy(conn);
        pthread_mutex_lock(&c->mu);
        kube_creds_t *gone = creds_unref_locked(c, cr);
        pthread_mutex_unlock(&c->mu);
        if (gone) creds_free(gone);
    }
}

int kube_client_set_cert(kube_client_t *c, const char *cert_pem, const char *key_pem, err_t *err)
{
    if (!cert_pem || !key_pem) return err_set(err, "set client certificate: missing PEM");
    if (check_keypair(cert_pem, key_pem, err) == -1)
        return err_prefix(err, "set client certificate");
    pthread_mutex_lock(&c->mu);
    kube_creds_t *old = c->creds;
    c->creds = creds_new(old->ca_pem, cert_pem, key_pem, old->insecure);
    kube_creds_t *dead = creds_unref_locked(c, old);
    /* Idle handles of the old generation go now; busy ones when returned. */
    kube_conn_t **pp = &c->idle, *stale = NULL;
    while (*pp) {
        kube_conn_t *conn = *pp;
        if (conn->creds != c->creds) {
            *pp = conn->next;
            c->nidle--;
            conn->next = stale;
            stale = conn;
        } else {
            pp = &conn->next;
        }
    }
    pthread_mutex_unlock(&c->mu);
    conns_destroy(c, stale);
    /* libcurl would not reuse a connection made with another certificate,
     * but it would keep it open. */
    httpmux_close_idle(c->mux);
    if (dead) creds_free(dead);
    return 0;
}

void kube_client_close_idle(kube_client_t *c)
{
    pthread_mutex_lock(&c->mu);
    kube_conn_t *stale = c->idle;
    c->idle = NULL;
    c->nidle = 0;
    pthread_mutex_unlock(&c->mu);
    conns_destroy(c, stale);
    httpmux_close_idle(c->mux);
}

void kube_client_set_token(kube_client_t *c, const char *token)
{
    char *copy = token ? xstrdup(token) : NULL;
    pthread_mutex_lock(&c->mu);
    char *old = c->token;
    c->token = copy;
    free(c->token_file); /* an explicit token replaces a file-backed one */
    c->token_file = NULL;
    pthread_mutex_unlock(&c->mu);
    wipe_free(old);
}

void kube_client_set_timeout(kube_client_t *c, long timeout_ms)
{
    pthread_mutex_lock(&c->mu);
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : KUBE_DEFAULT_TIMEOUT_MS;
    pthread_mutex_unlock(&c->mu);
}

unsigned kube_client_busy(kube_client_t *c)
{
    return atomic_load(&c->in_flight);
}

const char *kube_client_server(const kube_client_t *c)
{
    return c->server;
}

/* --- connections -------------------------------------------------------- */

/* The Authorization header for a request starting now; c->mu held. A
 * tokenFile is re-read at most once a minute; if the re-read fails the last
 * good token is kept, as the file is usually mid-rotation. */
static char *auth_header_locked(kube_client_t *c)
{
    lock_assert_held(&c->mu);
    if (c->token_file && time_mono_ns() - c->token_read_ns >= KUBE_TOKEN_REREAD_NS) {
        char *tok;
        if (fs_read_all(c->token_file, &tok, NULL, NULL) == 0) {
            size_t n = strlen(tok);
            while (n && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
                tok[--n] = '\0';
            if (n) {
                wipe_free(c->token);
                c->token = tok;
            } else {
                free(tok);
            }
        }
        c->token_read_ns = time_mono_ns();
    }
    return c->token ? xasprintf("Authorization: Bearer %s", c->token) : NULL;
}

/* A PEM text as a blob option (libcurl copies it). */
#define SET_BLOB(s, opt, pem)                                                                      \
    HTTPC_SET((s), opt, (&(struct curl_blob){(void *)(pem), strlen(pem), CURL_BLOB_COPY}))

kube_conn_t *kube_conn_take(kube_client_t *c, const char *method, const char *path,
                            const char *content_type, long timeout_ms, err_t *err)
{
    kube_conn_t *conn = NULL, *stale = NULL;
    pthread_mutex_lock(&c->mu);
    while (c->idle && !conn) {
        kube_conn_t *h = c->idle;
        c->idle = h->next;
        c->nidle--;
        if (h->creds == c->creds) {
            conn = h;
        } else {
            h->next = stale;
            stale = h;
        }
    }
    if (!conn) {
        conn = xcalloc(1, sizeof *conn);
        conn->creds = c->creds;
        conn->creds->refs++;
    }
    char *auth = auth_header_locked(c);
    if (timeout_ms == 0) timeout_ms = c->timeout_ms;
    pthread_mutex_unlock(&c->mu);
    while (stale) { /* handles of an older certificate, found after rotation */
        kube_conn_t *h = stale;
        stale = h->next;
        kube_creds_t *cr = h->creds;
        conn_destroy(h);
        pthread_mutex_lock(&c->mu);
        kube_creds_t *gone = creds_unref_locked(c, cr);
        pthread_mutex_unlock(&c->mu);
        if (gone) creds_free(gone);
    }

    if (conn->easy) {
        curl_easy_reset(conn->easy); /* keeps the live connection */
    } else if (!(conn->easy = curl_easy_init())) {
        abort(); /* only fails on allocation failure; see xalloc.h */
    }
    curl_slist_free_all(conn->headers);
    conn->headers = NULL;
    conn->errbuf[0] = '\0';
    conn->next = NULL;

    kube_creds_t *cr = conn->creds;
    conn->headers = curl_slist_append(conn->headers, "Accept: application/json");
    conn->headers = curl_slist_append(conn->headers, "Expect:"); /* no 100-continue round trip */
    if (content_type) {
        char *ct = xasprintf("Content-Type: %s", content_type);
        conn->headers = curl_slist_append(conn->headers, ct);
        free(ct);
    }
    if (auth) {
        conn->headers = curl_slist_append(conn->headers, auth);
        wipe_free(auth);
    }

    httpc_setup_t s = {.h = conn->easy};
    char *url = xasprintf("%s%s", c->server, path);
    /* The body (and POST's empty one) is kube_do's to set. */
    httpc_setup_request(&s, url, conn->errbuf, conn->headers, method, NULL, 0, false);
    free(url);
    HTTPC_SET(&s, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    HTTPC_SET(&s, CURLOPT_CONNECTTIMEOUT_MS, KUBE_CONNECT_TIMEOUT_MS);
    if (timeout_ms > 0) HTTPC_SET(&s, CURLOPT_TIMEOUT_MS, timeout_ms);
    HTTPC_SET(&s, CURLOPT_TCP_KEEPALIVE, 1L);
    HTTPC_SET(&s, CURLOPT_TCP_KEEPIDLE, 30L);
    HTTPC_SET(&s, CURLOPT_TCP_KEEPINTVL, 10L);
    if (cr->share) HTTPC_SET(&s, CURLOPT_SHARE, cr->share);
    if (cr->ca_pem) SET_BLOB(&s, CURLOPT_CAINFO_BLOB, cr->ca_pem);
    if (cr->insecure) {
        HTTPC_SET(&s, CURLOPT_SSL_VERIFYPEER, 0L);
        HTTPC_SET(&s, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (cr->cert_pem) {
        SET_BLOB(&s, CURLOPT_SSLCERT_BLOB, cr->cert_pem);
        HTTPC_SET(&s, CURLOPT_SSLCERTTYPE, "PEM");
        SET_BLOB(&s, CURLOPT_SSLKEY_BLOB, cr->key_pem);
        HTTPC_SET(&s, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (httpc_setup_done(&s, err) == -1) {
        err_prefix(err, "%s %s%s", method, c->server, path);
        kube_conn_give(c, conn);
        return NULL;
    }
    return conn;
}

void *kube_conn_easy(kube_conn_t *conn)
{
    return conn->easy;
}

const char *kube_conn_errbuf(kube_conn_t *conn)
{
    return conn->errbuf;
}

void kube_conn_give(kube_client_t *c, kube_conn_t *conn)
{
    kube_creds_t *gone = NULL;
    pthread_mutex_lock(&c->mu);
    if (conn->creds == c->creds && c->nidle < KUBE_POOL_IDLE) {
        conn->next = c->idle;
        c->idle = conn;
        c->nidle++;
        conn = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (!conn) return;
    kube_creds_t *cr = conn->creds;
    conn_destroy(conn); /* before its share can go */
    pthread_mutex_lock(&c->mu);
    gone = creds_unref_locked(c, cr);
    pthread_mutex_unlock(&c->mu);
    if (gone) creds_free(gone);
}

/* --- metrics ------------------------------------------------------------ */

static enum kube_metric_verb verb_of(const char *method)
{
    static const char *const names[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    for (int i = 0; i < 5; i++)
        if (strcmp(method, names[i]) == 0) return (enum kube_metric_verb)i;
    return KUBE_VERB_OTHER;
}

const char *kube_metric_verb_name(enum kube_metric_verb v)
{
    static const char *const names[KUBE_VERB_COUNT] = {"GET",    "POST",  "PUT",  "PATCH",
                                                       "DELETE", "WATCH", "OTHER"};
    return v >= 0 && v < KUBE_VERB_COUNT ? names[v] : "OTHER";
}

void kube_metrics_record(kube_client_t *c, enum kube_metric_verb v, long status, double seconds)
{
    int cls = status >= 100 && status < 600 ? (int)(status / 100) : 0;
    pthread_mutex_lock(&c->metrics_mu);
    c->metrics.requests[v][cls]++;
    if (seconds >= 0) {
        for (int i = 0; i < KUBE_LATENCY_BUCKETS; i++)
            if (seconds <= kube_latency_bounds[i]) c->metrics.latency_bucket[v][i]++;
        c->metrics.latency_count[v]++;
        c->metrics.latency_sum_seconds[v] += seconds;
    }
    pthread_mutex_unlock(&c->metrics_mu);
}

void kube_metrics_connections(kube_client_t *c, long opened)
{
    if (opened <= 0) return;
    pthread_mutex_lock(&c->metrics_mu);
    c->metrics.connections_opened += (uint64_t)opened;
    pthread_mutex_unlock(&c->metrics_mu);
}

void kube_client_metrics_snapshot(kube_client_t *c, kube_client_metrics_t *out)
{
    pthread_mutex_lock(&c->metrics_mu);
    *out = c->metrics;
    pthread_mutex_unlock(&c->metrics_mu);
}

/* --- requests ----------------------------------------------------------- */

int kube_do(kube_client_t *c, const kube_req_t *req, long *status, strbuf_t *resp, err_t *err)
{
    *status = 0;
    kube_conn_t *conn = kube_conn_take(c, req->method, req->path,
                                       req->body ? req->content_type : NULL, req->timeout_ms, err);
    if (!conn) return -1;
    httpc_setup_t s = {.h = conn->easy};
    httpc_sink_t sink = {.buf = resp, .max = KUBE_MAX_RESPONSE};
    if (resp) strbuf_reset(resp);
    HTTPC_SET(&s, CURLOPT_WRITEFUNCTION, httpc_sink_write);
    HTTPC_SET(&s, CURLOPT_WRITEDATA, &sink);
    if (req->body) {
        HTTPC_SET(&s, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        HTTPC_SET(&s, CURLOPT_POSTFIELDS, req->body);
    } else if (strcmp(req->method, "POST") == 0) {
        HTTPC_SET(&s, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        HTTPC_SET(&s, CURLOPT_POSTFIELDS, "");
    }
    /* HTTP/2 over TLS when the server offers it; PIPEWAIT makes a request
     * started while the first connection is still being set up wait for
     * it, rather than open another. */
    HTTPC_SET(&s, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    HTTPC_SET(&s, CURLOPT_PIPEWAIT, 1L);
    if (httpc_setup_done(&s, err) == -1) {
        err_prefix(err, "%s %s%s", req->method, c->server, req->path);
        kube_conn_give(c, conn);
        return -1;
    }
    int64_t start = time_mono_ns();
    atomic_fetch_add(&c->in_flight, 1);
    CURLcode rc = httpmux_perform(c->mux, conn->easy);
    atomic_fetch_sub(&c->in_flight, 1);
    double secs = (double)(time_mono_ns() - start) / 1e9;
    int ret = 0;
    char what[512];
    if (rc == CURLE_OK) {
        curl_easy_getinfo(conn->easy, CURLINFO_RESPONSE_CODE, status);
    } else if (sink.too_big) {
        snprintf(what, sizeof what, "%s %s", req->method, req->path);
        ret = httpc_sink_error(&sink, what, err);
    } else {
        ret = err_set(err, "%s %s%s: %s", req->method, c->server, req->path,
                      conn->errbuf[0] ? conn->errbuf : curl_easy_strerror(rc));
    }
    long opened = 0;
    curl_easy_getinfo(conn->easy, CURLINFO_NUM_CONNECTS, &opened);
    kube_metrics_connections(c, opened);
    kube_metrics_record(c, verb_of(req->method), *status, secs);
    kube_conn_give(c, conn);
    return ret;
}

int kube_request(kube_client_t *c, const char *method, const char *path, const char *content_type,
                 const void *body, size_t body_len, long *status, strbuf_t *resp, err_t *err)
{
    kube_req_t req = {method, path, content_type, body, body_len, 0};
    return kube_do(c, &req, status, resp, err);
}

/* --- JSON --------------------------------------------------------------- */

int kube_status_error(long status, const char *body, size_t len, kube_result_t *res, err_t *err)
{
    if (res) {
        res->status = status;
        res->reason[0] = '\0';
    }
    json_t *st = len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *message = st ? json_string_value(json_object_get(st, "message")) : NULL;
    const char *reason = st ? json_string_value(json_object_get(st, "reason")) : NULL;
    if (reason && res) snprintf(res->reason, sizeof res->reason, "%s", reason);
    if (message && *message) {
        if (reason && *reason)
            err_set(err, "%s (%ld %s)", message, status, reason);
        else
            err_set(err, "%s (%ld)", message, status);
    } else if (len) {
        /* Not a Status (a proxy's HTML page, say): the first line says enough. */
        size_t n = 0;
        while (n < len && n < 200 && body[n] != '\n' && body[n] != '\r')
            n++;
        err_set(err, "HTTP %ld: %.*s", status, (int)n, body);
    } else {
        err_set(err, "HTTP %ld with an empty body", status);
    }
    json_decref(st);
    return -1;
}

/* One JSON call: sends obj (if any) and decodes a 2xx answer into *out. */
static int json_call(kube_client_t *c, const char *method, const char *path,
                     const char *content_type, json_t *obj, json_t **out, kube_result_t *res,
                     err_t *err)
{
    if (out) *out = NULL;
    if (res) {
        res->status = 0;
        res->reason[0] = '\0';
    }
    char *body = NULL;
    if (obj && !(body = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY)))
        return err_set(err, "%s %s: cannot encode request body", method, path);
    strbuf_t resp = STRBUF_INIT;
    long status = 0;
    kube_req_t req = {method, path, content_type, body, body ? strlen(body) : 0, 0};
    int rc = kube_do(c, &req, &status, &resp, err);
    free(body);
    if (rc == -1) goto out;
    if (status < 200 || status > 299) {
        rc = kube_status_error(status, resp.data, resp.len, res, err);
        goto out;
    }
    if (res) res->status = status;
    if (!out) goto out;
    if (resp.len == 0) {
        *out = json_object();
        goto out;
    }
    json_error_t jerr;
    *out = json_loadb(resp.data, resp.len, 0, &jerr);
    if (!*out) rc = err_set(err, "%s %s: invalid JSON in response: %s", method, path, jerr.text);
out:
    strbuf_free(&resp);
    return rc;
}

int kube_get(kube_client_t *c, const char *path, json_t **out, kube_result_t *res, err_t *err)
{
    return json_call(c, "GET", path, NULL, NULL, out, res, err);
}

int kube_create(kube_client_t *c, const char *path, json_t *obj, json_t **out, kube_result_t *res,
                err_t *err)
{
    return json_call(c, "POST", path, "application/json", obj, out, res, err);
}

int kube_update(kube_client_t *c, const char *path, json_t *obj, json_t **out, kube_result_t *res,
                err_t *err)
{
    return json_call(c, "PUT", path, "application/json", obj, out, res, err);
}

const char *kube_patch_content_type(kube_patch_type_t type)
{
    switch (type) {
    case KUBE_PATCH_MERGE:
        return "application/merge-patch+json";
    case KUBE_PATCH_STRATEGIC:
        return "application/strategic-merge-patch+json";
    case KUBE_PATCH_JSON:
        return "application/json-patch+json";
    case KUBE_PATCH_APPLY:
        return "application/apply-patch+yaml";
    }
    return "application/merge-patch+json";
}

int kube_patch(kube_client_t *c, const char *path, kube_patch_type_t type, json_t *patch,
               json_t **out, kube_result_t *res, err_t *err)
{
    char *full = NULL;
    if (type == KUBE_PATCH_APPLY && !strstr(path, "fieldManager="))
        path = full = xasprintf("%s%cfieldManager=wasmlet", path, strchr(path, '?') ? '&' : '?');
    int rc = json_call(c, "PATCH", path, kube_patch_content_type(type), patch, out, res, err);
    free(full);
    return rc;
}

int kube_delete(kube_client_t *c, const char *path, json_t *options, json_t **out,
                kube_result_t *res, err_t *err)
{
    return json_call(c, "DELETE", path, options ? "application/json" : NULL, options, out, res,
                     err);
}

char *kube_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = xmalloc(strlen(s) * 3 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            *o++ = (char)ch;
        } else {
            *o++ = '%';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        }
    }
    *o = '\0';
    return out;
}
