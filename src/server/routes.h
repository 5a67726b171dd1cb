/* routes.h: the kubelet API's request handler: authenticate, authorize,
 * then the endpoint the path names (routes.c). server.c hands it to the
 * transport as its handler, with the server_t as its context. */
#ifndef WASMLET_SERVER_ROUTES_H
#define WASMLET_SERVER_ROUTES_H

#include "server/http.h"

/* An http_handler_fn; ctx is the server_t. */
void server_route(void *ctx, http_req_t *r);

/* Splits path after prefix ("/containerLogs") into up to max segments
 * (each xmalloc'd); returns the count, or -1 (nothing to free) when there
 * are more than max or one is empty. */
int server_path_segments(const char *path, const char *prefix, char **out, int max);

/* The class a path is counted under in the request metrics ("pods",
 * "containerLogs", "metrics/resource", ..., "other"): a fixed string. */
const char *server_path_class(const char *path);

#endif
