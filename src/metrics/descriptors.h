/* descriptors.h: the host descriptors each running container holds, for
 * /metrics: what its store holds (files, directories, sockets) plus what
 * wasmlet keeps open for it (its log file, ...), and its cap. Fed from the
 * container's own thread when the figure changes (wasmrt_spec_t's
 * descriptors callback), read by /metrics. Thread-safe; one short mutex
 * hold per call. A container's entry lives while it runs. */
#ifndef WASMLET_METRICS_DESCRIPTORS_H
#define WASMLET_METRICS_DESCRIPTORS_H

#include "util/strbuf.h"

#include <stdbool.h>
#include <stddef.h>

/* The container (of the pod uid, namespace/name) holds `held` descriptors
 * now, under a cap of `cap` (0: none). Creates its entry if needed. */
void metrics_descriptors_set(const char *pod_uid, const char *namespace, const char *pod,
                             const char *container, size_t held, size_t cap);

/* The container's run ended: its entry goes. */
void metrics_descriptors_end(const char *pod_uid, const char *container);

/* Fills *held with the container's figure and returns true, or false when
 * it has no entry (not running, or not sampled yet). */
bool metrics_descriptors_get(const char *pod_uid, const char *container, size_t *held);

/* wasmlet_container_open_descriptors{namespace,pod,container},
 * wasmlet_container_open_descriptors_limit{...} (capped containers only)
 * and wasmlet_pod_open_descriptors{namespace,pod}, the sum over the pod's
 * running containers. */
void metrics_render_descriptors(strbuf_t *sb);

/* Clears everything (tests). */
void metrics_descriptors_reset(void);

#endif
