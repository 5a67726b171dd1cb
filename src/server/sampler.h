/* sampler.h: CPU samples for the rates of /stats/summary, taken on a
 * thread of their own.
 *
 * A rate (usageNanoCores) needs two readings of a CPU counter; the kubelet
 * takes them at its housekeeping interval, and so does this sampler: every
 * few seconds it asks the pod provider for the pods (off the event loop:
 * that may copy the whole pod table), reads the node's, this process's
 * and every container's CPU, and publishes the rates between this sample
 * and the one before as an immutable snapshot. A reader takes a reference
 * to the latest snapshot under a lock held for a pointer copy, reads it
 * at leisure and releases it; the sampler never changes a published one.
 * Each sample also tells the metrics registry which pods still exist
 * (metrics_forget_pods_except), so ended pods do not accumulate.
 *
 * Keys: "node", "kubelet" (this process), "p/<uid>" (a pod, the sum of its
 * containers), "c/<uid>/<container>". */
#ifndef WASMLET_SERVER_SAMPLER_H
#define WASMLET_SERVER_SAMPLER_H

#include "server/pods.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct server_sampler server_sampler_t;
typedef struct server_rates server_rates_t;

/* Starts the sampler thread; the first sample is taken at once, then one
 * every interval_ms. pods must stay valid until server_sampler_stop. */
server_sampler_t *server_sampler_start(const server_pods_t *pods, int64_t interval_ms);
/* Stops and joins the thread and frees it (NULL: no-op). Snapshots still
 * referenced stay valid until released. */
void server_sampler_stop(server_sampler_t *s);

/* A reference to the latest rates (never NULL); release it when done. */
server_rates_t *server_sampler_rates(server_sampler_t *s);
void server_rates_release(server_rates_t *rt);
/* Cores used (in nanocores) by key between the last two samples; false
 * when that key was not in both. */
bool server_rates_get(const server_rates_t *rt, const char *key, uint64_t *nanocores);

#endif
