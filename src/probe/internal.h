/* internal.h: what the files of probe/ share: the timer of the queue
 * (sched.c), which sets and hooks embed. Nothing outside probe/ includes
 * it. */
#ifndef WASMLET_PROBE_INTERNAL_H
#define WASMLET_PROBE_INTERNAL_H

#include "probe/probe.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One entry of the timer queue. Fields are the queue's, under its lock,
 * except fire, which is fixed. */
typedef struct probe_timer {
    probe_sched_t *sched;
    int64_t due;  /* monotonic ns */
    size_t index; /* in the heap; SIZE_MAX when not queued */
    bool running; /* fire runs on a scheduler thread now */
    bool cancelled;
    /* Runs on a scheduler thread, without the queue's lock; returns the
     * next due instant (monotonic ns), or -1 when the timer is done. */
    int64_t (*fire)(struct probe_timer *t);
} probe_timer_t;

/* Queues t (not queued, not cancelled) to fire at due. */
void sched_add(probe_sched_t *s, probe_timer_t *t, int64_t due);
/* Takes t out of the queue for good, waiting for a fire in progress to
 * return. Never from t's own fire. */
void sched_cancel(probe_timer_t *t);

/* Counts one attempt in prober_probe_total (set.c). */
void probe_metrics_count(const char *kind, probe_result_t r, const char *ns, const char *pod,
                         const char *uid, const char *container);

#endif
