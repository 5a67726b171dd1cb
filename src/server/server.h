/* server.h: the kubelet HTTPS API of a wasmlet node (default port 10250).
 *
 * What the API server and monitoring reach on a node:
 *   GET /containerLogs/{ns}/{pod}/{container}   kubectl logs (every option)
 *   GET /healthz                                "ok"
 *   GET /pods                                   the pods this node runs (PodList)
 *   GET /stats/summary                          node and pod CPU, memory, disk
 *   GET /metrics                                Prometheus text format
 *   GET /metrics/resource                       the resource metrics pipeline's input
 *   /portForward/{ns}/{pod}[/{uid}]             kubectl port-forward (SPDY/3.1, portforward.c)
 *   /exec, /attach, /run                        a clear refusal: a module has no process to enter
 *
 * Every request is authenticated (a client certificate verified against the
 * client CA, or a bearer token checked with a TokenReview; anonymous only
 * when enabled) and authorized with a SubjectAccessReview for the verb on
 * nodes/<name> with the subresource the path implies (stats, metrics, log,
 * proxy), as the kubelet does. Decisions are cached briefly.
 *
 * Files. The transport (http.c: the event loop, TLS, requests, replies,
 * streams) knows nothing of kubelets; the kubelet endpoints sit on it:
 * routes.c (authentication, authorization, dispatch), auth.c, logs.c,
 * stats.c, metrics.c, fed by sampler.c, portforward.c over spdy.c, and
 * server.c, which owns the state they share (state.h). The endpoints reach
 * the pods only through server_pods_t (pods.h), so server/ depends on no
 * pod/ header.
 *
 * Threads. One thread runs the event loop and does all network I/O and
 * nothing else; each request is handled on a thread of its own
 * (authentication and authorization may wait for the API server, a log
 * follow lasts as long as the client wants), which hands its answer back to
 * the loop (a port-forward session keeps its request's thread for as long
 * as kubectl forwards, polling the connection and the pod sockets). A
 * sampler thread reads the pods' CPU every few seconds for rates
 * (sampler.h). */
#ifndef WASMLET_SERVER_SERVER_H
#define WASMLET_SERVER_SERVER_H

#include "image/image.h"
#include "kube/client.h"
#include "net/net.h"
#include "util/err.h"
#include "server/pods.h"
#include "wasm/wasmrt.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct server server_t;

typedef struct server_config {
    const char *bind_address; /* NULL: every address (0.0.0.0) */
    int port;                 /* 0: an ephemeral port (see server_port) */
    const char *node_name;    /* authorization is for nodes/<node_name> */
    const char *cert_pem;     /* serving certificate chain ... */
    const char *key_pem;      /* ... and its key */
    /* CA bundle (PEM) that client certificates must chain to; NULL: client
     * certificates are not accepted as credentials. */
    const char *client_ca_pem;
    bool anonymous; /* unauthenticated requests proceed as system:anonymous */
    /* TokenReview and SubjectAccessReview go through this client; NULL (tests
     * only): bearer tokens are refused and every authenticated user is
     * allowed. */
    kube_client_t *client;
    server_pods_t pods;
    wasmrt_t *rt;               /* loaded modules for /metrics; may be NULL */
    image_store_t *images;      /* pull counters for /metrics; may be NULL */
    net_ipam_t *pod_addresses;  /* the default network config's, for /metrics; may be NULL */
    const char *data_dir;       /* file system for stats (pods/<uid>/ below it); may be NULL */
    const char *logs_dir;       /* container logs, for stats; may be NULL */
    int64_t authn_ttl_ms;       /* TokenReview results kept (0: 2 min) */
    int64_t authz_allow_ttl_ms; /* allowed SubjectAccessReviews kept (0: 60 s) */
    int64_t authz_deny_ttl_ms;  /* denied ones (0: 10 s) */
    int idle_timeout_s;         /* a connection idle this long is closed (0: 60 s) */
    int max_requests;           /* requests handled at once (0: 256); more get 503 */
} server_config_t;

/* Binds, listens and starts the loop thread. */
int server_start(const server_config_t *cfg, server_t **out, err_t *err);
/* The port listened on (useful with port 0). */
int server_port(const server_t *s);
/* Replaces the serving certificate for connections accepted afterwards
 * (rotation, or the approved certificate replacing a self-signed one).
 * The pair is checked first; on failure the old one stays. */
int server_set_cert(server_t *s, const char *cert_pem, const char *key_pem, err_t *err);
/* Stops accepting, ends log follows, waits for requests in progress (each
 * answers or ends its stream) and frees everything. NULL is a no-op. */
void server_stop(server_t *s);

#endif
