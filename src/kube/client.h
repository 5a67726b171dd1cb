/* client.h: wasmlet's HTTP client for the Kubernetes API server.
 *
 * One kube_client_t per API server, shared by every thread: requests may be
 * issued concurrently from any number of threads. Paths are API paths
 * ("/api/v1/namespaces/default/pods/web"), appended to the server URL.
 *
 * Two layers: kube_request / kube_do return the raw HTTP status and body for
 * any status; the JSON helpers (kube_get, kube_create, kube_update,
 * kube_patch, kube_delete) return 0 only for a 2xx answer, and otherwise fail
 * with the message of the API's Status object (`pods "web" not found`) and
 * fill a kube_result_t so callers can branch on 404/409/410/422. */
#ifndef WASMLET_KUBE_CLIENT_H
#define WASMLET_KUBE_CLIENT_H

#include "kube/kubeconfig.h"
#include "util/err.h"
#include "util/strbuf.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kube_client kube_client_t;

/* The outcome of one API call, beyond success or failure. */
typedef struct kube_result {
    long status;     /* HTTP status; 0 when no response arrived (connect, TLS, timeout) */
    char reason[64]; /* Status.reason: "NotFound", "AlreadyExists", "Conflict", "Gone",
                        "Invalid", "Expired", ...; "" when the answer had none */
} kube_result_t;

/* Copies what it needs from cfg; cfg may be freed afterwards. */
int kube_client_new(const kube_kubeconfig_t *cfg, kube_client_t **out, err_t *err);
/* No request or watch may still be running. */
void kube_client_free(kube_client_t *c);

/* Replaces the client certificate and key (PEM; both may be the same text
 * when one file holds the chain and the key). Requests started afterwards present the new pair on
 * new connections; requests and watches already running finish on the old connection and switch
 * when they reconnect. Checks that the pair parses and matches before swapping, so a bad rotation
 * leaves the old credentials in place. */
int kube_client_set_cert(kube_client_t *c, const char *cert_pem, const char *key_pem, err_t *err);
/* Replaces the bearer token (NULL: none) for requests started afterwards. */
void kube_client_set_token(kube_client_t *c, const char *token);
/* Closes the idle connections (the requests' shared ones as soon as none
 * is in flight) and frees the idle handles: they hold TLS state (tens of
 * KiB each) that a busy spell opened and a quiet node does not need; a
 * later request opens what it needs again. */
void kube_client_close_idle(kube_client_t *c);
/* Default whole-request timeout for calls that do not give their own (30 s). */
void kube_client_set_timeout(kube_client_t *c, long timeout_ms);
/* Requests in flight now (watches not counted): how busy the node keeps
 * the API server, for work that can wait (Events). */
unsigned kube_client_busy(kube_client_t *c);
/* The server URL, e.g. for messages. */
const char *kube_client_server(const kube_client_t *c);

/* --- raw requests ------------------------------------------------------- */

typedef struct kube_req {
    const char *method;       /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *path;         /* API path with its query */
    const char *content_type; /* for the body; NULL when there is none */
    const void *body;
    size_t body_len;
    long timeout_ms; /* whole request; 0: the client's default */
} kube_req_t;

/* Sends one request and waits for the whole answer. Returns 0 when an HTTP
 * response arrived, whatever its status (*status gets it, resp the body when
 * not NULL); -1 on transport failure (*status is then 0). */
int kube_do(kube_client_t *c, const kube_req_t *req, long *status, strbuf_t *resp, err_t *err);
int kube_request(kube_client_t *c, const char *method, const char *path, const char *content_type,
                 const void *body, size_t body_len, long *status, strbuf_t *resp, err_t *err);

/* --- JSON helpers -------------------------------------------------------- */
/* Each returns 0 on a 2xx answer and stores the decoded response in *out
 * (new reference; out may be NULL to discard it). Otherwise -1, with err set
 * to "<Status.message> (<code> <reason>)", or to the transport error. res
 * (nullable) gets the status and reason either way. */

int kube_get(kube_client_t *c, const char *path, json_t **out, kube_result_t *res, err_t *err);
/* POST obj to a collection path. */
int kube_create(kube_client_t *c, const char *path, json_t *obj, json_t **out, kube_result_t *res,
                err_t *err);
/* PUT obj to an object path (or its /status subresource). */
int kube_update(kube_client_t *c, const char *path, json_t *obj, json_t **out, kube_result_t *res,
                err_t *err);

typedef enum kube_patch_type {
    KUBE_PATCH_MERGE,     /* application/merge-patch+json (RFC 7386) */
    KUBE_PATCH_STRATEGIC, /* application/strategic-merge-patch+json */
    KUBE_PATCH_JSON,      /* application/json-patch+json (RFC 6902; patch is an array) */
    KUBE_PATCH_APPLY,     /* application/apply-patch+yaml (server-side apply; JSON is
                             YAML). "fieldManager=wasmlet" is added to the query when the
                             path names no fieldManager. */
} kube_patch_type_t;

const char *kube_patch_content_type(kube_patch_type_t type);
int kube_patch(kube_client_t *c, const char *path, kube_patch_type_t type, json_t *patch,
               json_t **out, kube_result_t *res, err_t *err);
/* DELETE with optional DeleteOptions, e.g.
 * {"gracePeriodSeconds":0,"preconditions":{"uid":"..."}}. */
int kube_delete(kube_client_t *c, const char *path, json_t *options, json_t **out,
                kube_result_t *res, err_t *err);

/* Percent-encodes s for a query value ("spec.nodeName=n1" ->
 * "spec.nodeName%3Dn1"); the caller frees. */
char *kube_escape(const char *s);

/* Fills res and err from a non-2xx answer: Status.message and reason when
 * the body is a Status, else the first line of the body. Returns -1. Shared
 * with the watch code, which reads its own response bodies. */
int kube_status_error(long status, const char *body, size_t len, kube_result_t *res, err_t *err);

/* --- metrics -------------------------------------------------------------- */

enum kube_metric_verb {
    KUBE_VERB_GET,
    KUBE_VERB_POST,
    KUBE_VERB_PUT,
    KUBE_VERB_PATCH,
    KUBE_VERB_DELETE,
    KUBE_VERB_WATCH, /* counted by status, not timed: a watch lasts minutes by design */
    KUBE_VERB_OTHER,
    KUBE_VERB_COUNT
};

/* Status class index: 0 = no response (transport error), 1..5 = 1xx..5xx. */
#define KUBE_STATUS_CLASSES 6
#define KUBE_LATENCY_BUCKETS 12

/* Upper bounds (seconds) of the latency buckets; +Inf is latency_count. */
extern const double kube_latency_bounds[KUBE_LATENCY_BUCKETS];

typedef struct kube_client_metrics {
    uint64_t requests[KUBE_VERB_COUNT][KUBE_STATUS_CLASSES];
    /* Cumulative, as Prometheus histograms are: latency_bucket[v][i] counts
     * requests of verb v that took at most kube_latency_bounds[i]. */
    uint64_t latency_bucket[KUBE_VERB_COUNT][KUBE_LATENCY_BUCKETS];
    uint64_t latency_count[KUBE_VERB_COUNT];
    double latency_sum_seconds[KUBE_VERB_COUNT];
    uint64_t connections_opened; /* TCP (and TLS) connections, requests' and watches' */
} kube_client_metrics_t;

/* A consistent copy of the counters since the client was created. */
void kube_client_metrics_snapshot(kube_client_t *c, kube_client_metrics_t *out);
/* "GET", ..., "WATCH", "OTHER": the verb label. */
const char *kube_metric_verb_name(enum kube_metric_verb v);

/* --- internal to kube/ (watch.c) ------------------------------------------ */
/* A configured libcurl easy handle (as void *, to keep curl.h out of every
 * includer) on loan from the client's pool, with the credentials current when
 * it was taken. The caller adds its own callbacks, performs, then returns it. */
typedef struct kube_conn kube_conn_t;
/* timeout_ms: whole transfer, 0 for the client's default, -1 for none.
 * NULL (err set) when libcurl refused one of the options. */
kube_conn_t *kube_conn_take(kube_client_t *c, const char *method, const char *path,
                            const char *content_type, long timeout_ms, err_t *err);
void *kube_conn_easy(kube_conn_t *conn);
/* The transport error text of the last perform on conn ("" if none). */
const char *kube_conn_errbuf(kube_conn_t *conn);
void kube_conn_give(kube_client_t *c, kube_conn_t *conn);
/* Counts one request; seconds < 0 leaves it out of the latency histogram. */
void kube_metrics_record(kube_client_t *c, enum kube_metric_verb v, long status, double seconds);
/* Counts the connections a transfer opened (CURLINFO_NUM_CONNECTS). */
void kube_metrics_connections(kube_client_t *c, long opened);

#endif
