/* endpoints.h: the kubelet API's endpoints that routes.c dispatches to,
 * each in the file of its name: logs.c, stats.c, metrics.c. Each answers
 * the request it is given, on that request's thread, and reads only the
 * server's state (state.h), the pod provider and the metrics registry. */
#ifndef WASMLET_SERVER_ENDPOINTS_H
#define WASMLET_SERVER_ENDPOINTS_H

#include "log/crilog.h"
#include "server/http.h"
#include "server/state.h"

/* GET /containerLogs/{ns}/{pod}/{container} (logs.c). */
void server_handle_logs(server_t *s, http_req_t *r, const char *ns, const char *pod,
                        const char *container);
/* The query of a logs request, apart from the request (fuzzed and
 * unit-tested alone): get(ctx, key) answers a parameter's decoded value or
 * NULL. Fills opts, *follow and *previous; -1 with why (the 400's text) on
 * a bad parameter. now_ns is the wall clock sinceSeconds counts back from. */
typedef const char *(*server_query_fn)(void *ctx, const char *key);
int server_logs_query(server_query_fn get, void *ctx, int64_t now_ns, crilog_read_opts_t *opts,
                      bool *follow, bool *previous, char *why, size_t why_len);

/* GET /stats/summary and GET /metrics/resource (stats.c). */
void server_handle_stats_summary(server_t *s, http_req_t *r);
void server_handle_metrics_resource(server_t *s, http_req_t *r);
/* GET /metrics (metrics.c). */
void server_handle_metrics(server_t *s, http_req_t *r);

#endif
