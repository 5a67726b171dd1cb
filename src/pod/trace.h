/* trace.h: a pod start's trace: the instants wasmlet stamps on a new
 * pod's way from the watch to its first app container running with that
 * status acknowledged by the API server, turned into one duration per
 * stage (metrics/registry.h lists them), one structured log line and one
 * observation per stage in the registry's histograms.
 *
 * Who stamps what (all on CLOCK_MONOTONIC but the watch stage):
 *   watch        creation, or the PodScheduled condition's time when
 *                later (both realtime, 1 s resolution), to the pod
 *                delivered by the watch (pod/manager.c)
 *   admission    delivered to its worker started: the start facts
 *                (RuntimeClass, resume state, Node labels) and the
 *                admission (pod/pod_start.c)
 *   sandbox,     the pod thread (pod/worker.c), retries included
 *   volumes
 *   pull, load   the first app container to run, its attempt that ran
 *                (pod/container.c)
 *   instantiate  that run's store, WASI and instance (wasmrt's started
 *                callback)
 *   status       that run's running state published to the first status
 *                write carrying it acknowledged (pod/status_writer.c)
 *   node         delivered to the end of the last of the stages
 *
 * The bookkeeping here is pure: it takes instants and says when a trace
 * is whole. The worker holds the trace under its lock; pod_trace_emit is
 * called without it. A resumed pod is not traced. */
#ifndef WASMLET_POD_TRACE_H
#define WASMLET_POD_TRACE_H

#include "metrics/registry.h"
#include "util/strbuf.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct pod_trace {
    bool on;           /* begun: a new pod delivered by a watch */
    bool reported;     /* emitted (once) */
    int64_t seen_wall; /* realtime ns the watch delivered the pod */
    int64_t seen;      /* the same instant, monotonic */
    /* ns; begin[WATCH]/end[WATCH] realtime, the others monotonic; end 0:
     * the stage has not ended (or was not reached) */
    int64_t begin[METRICS_STAGE_COUNT], end[METRICS_STAGE_COUNT];
} pod_trace_t;

/* The trace of a pod created at created_wall (realtime ns; 0: unknown, no
 * watch stage) and delivered at seen_wall / seen_mono, whose worker
 * started at admitted_mono. */
void pod_trace_begin(pod_trace_t *t, int64_t created_wall, int64_t seen_wall, int64_t seen_mono,
                     int64_t admitted_mono);

/* A stage ran from begin to end (ns, monotonic). A stage marked again
 * keeps its last marks (a retried pull, for instance: the attempt that
 * led on). */
void pod_trace_mark(pod_trace_t *t, metrics_start_stage_t stage, int64_t begin, int64_t end);

/* Whether every stage that ends a start (instantiate and status) has
 * ended and the trace is begun and not yet reported. */
bool pod_trace_whole(const pod_trace_t *t);

/* When whole: marks t reported, copies it to *out and returns true (the
 * caller emits the copy, without the lock that guards t); otherwise
 * false. The node stage is computed here. */
bool pod_trace_take(pod_trace_t *t, pod_trace_t *out);

/* Each stage's seconds, and whether it was measured. */
void pod_trace_seconds(const pod_trace_t *t, double seconds[METRICS_STAGE_COUNT],
                       bool have[METRICS_STAGE_COUNT]);

/* The structured log line's text: "pod start trace " and a JSON object
 * with the pod ("ns/name"), its uid, seen_wall_ns, <stage>_ms for each
 * stage measured, and running_at_ms / acked_at_ms: the status stage's
 * begin and end as offsets from the delivery (to join the line with
 * another clock's view of the pod). */
void pod_trace_format(const pod_trace_t *t, const char *ns, const char *name, const char *uid,
                      strbuf_t *sb);

/* Logs the line (info) and observes each stage in the registry. */
void pod_trace_emit(const pod_trace_t *t, const char *ns, const char *name, const char *uid);

#endif
