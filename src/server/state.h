/* state.h: the kubelet server's state, as its endpoints read it.
 *
 * server.c builds a server_t at start and frees it at stop; between the
 * two nothing in it changes, so the endpoint files (routes.c, logs.c,
 * stats.c, metrics.c) read it from any request thread without a lock. The
 * mutable parts guard themselves: the auth cache (auth.c), the rates
 * (sampler.h), the transport (http.h). The endpoints call into none of
 * server.c: it calls them (routes.h), never the other way round, and this
 * header does not include server.h. */
#ifndef WASMLET_SERVER_STATE_H
#define WASMLET_SERVER_STATE_H

#include "image/image.h"
#include "kube/client.h"
#include "net/net.h"
#include "server/auth.h"
#include "server/http.h"
#include "server/pods.h"
#include "server/sampler.h"
#include "wasm/wasmrt.h"

#include <stdbool.h>

typedef struct server server_t; /* as server.h names it */

struct server {
    char *node_name;       /* authorization is for nodes/<node_name> */
    bool anonymous;        /* unauthenticated requests proceed as system:anonymous */
    kube_client_t *client; /* for /metrics (the API client's counters); may be NULL */
    server_pods_t pods;
    wasmrt_t *rt;              /* may be NULL */
    image_store_t *images;     /* may be NULL */
    net_ipam_t *pod_addresses; /* may be NULL */
    char *data_dir;            /* may be NULL */
    char *logs_dir;            /* may be NULL */
    server_auth_t *auth;
    server_sampler_t *sampler;
    http_server_t *http;
};

#endif
