/* served.h: the figures of served wasi:http components, per pod and
 * container: requests by status class, failed requests by how they failed,
 * and a latency histogram. Fed by each finished request (from the serving
 * threads), read by /metrics and /stats/summary. Thread-safe; one short
 * mutex hold per call. */
#ifndef WASMLET_METRICS_SERVED_H
#define WASMLET_METRICS_SERVED_H

#include "util/strbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_SERVED_BUCKETS 12
/* Upper bounds, in seconds, of the request latency histogram. */
extern const double metrics_served_bounds[METRICS_SERVED_BUCKETS];

/* One request of container (of the pod uid, namespace/name) ended with
 * status (0: nothing sent) after seconds; failed when the component did not
 * answer it itself (a trap, a timeout, an overload refusal...). */
void metrics_served_request(const char *pod_uid, const char *namespace, const char *pod,
                            const char *container, int status, bool failed, double seconds,
                            double instantiate_seconds);

typedef struct metrics_served {
    uint64_t requests;
    uint64_t errors; /* failed, or answered 5xx */
    double seconds_sum;
} metrics_served_t;

/* The totals of one container; false when it served nothing yet. */
bool metrics_served_get(const char *pod_uid, const char *container, metrics_served_t *out);

/* wasmlet_served_requests_total{namespace,pod,container,code} (code: 2xx,
 * 3xx, 4xx, 5xx or "none"), wasmlet_served_request_errors_total, the
 * wasmlet_served_request_duration_seconds histogram and the
 * wasmlet_served_instantiate_seconds summary (a fresh instance per request:
 * what making it took). */
void metrics_render_served(strbuf_t *sb);

/* Forgets the pods not in keep (their uids). */
void metrics_served_forget_except(const char *const *keep, size_t nkeep);

#endif
