/* routes.h: the kubelet API's request handler: authenticate, authorize,
 * then the endpoint the path names (routes.c). server.c hands it to the
 * transport as its handler, with the server_t as its context. */
#ifndef WASMLET_SERVER_ROUTES_H
#define WASMLET_SERVER_ROUTES_H

#include "server/http.h"

/* An http_handler_fn; ctx is the server_t. */
void server_route(void *ctx, http_req_t *r);

#endif
