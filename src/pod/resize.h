/* resize.h: in-place pod resize (`kubectl patch pod --subresource resize`),
 * the kubelet's decisions as pure functions.
 *
 * No locks, no I/O, no clock: the resources in, a verdict out, so every
 * rule is unit-tested (tests/unit/test_resize.c). The pod manager asks
 * pod_resize_admit whether the node can allocate what a pod now wants
 * (pod/resizes.c); the worker asks pod_resize_action what that means for
 * each running container and applies it (worker.c, container.c).
 *
 * The kubelet's words, which these reproduce:
 *   - a resize asking for more than the node's allocatable is Infeasible,
 *     "Node didn't have enough capacity: memory, requested: N, capacity: M"
 *     (memory named first when both are short);
 *   - one that fits the node but not beside the pods already there is
 *     Deferred, with its admission message ("Node didn't have enough
 *     resource: cpu, requested: ..., used: ..., capacity: ...") and is
 *     tried again as pods come and go;
 *   - otherwise the resources are allocated; a running container then
 *     takes them live, unless the resizePolicy of a resource that changed
 *     is RestartContainer, when the container restarts with them;
 *   - a memory limit below what the container already uses cannot be set:
 *     "cannot decrease memory limits: attempting to set container \"c\"
 *     memory limit (N) below current usage (U)" (PodResizeInProgress,
 *     reason Error). Linear memory never shrinks, so for a wasm container
 *     the usage is the size of its linear memory. */
#ifndef WASMLET_POD_RESIZE_H
#define WASMLET_POD_RESIZE_H

#include "kube/pod_spec.h"
#include "pod/admission.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A container's cpu and memory, as numbers (millicores, bytes; 0: not
 * set) and as the spec wrote them, for the status. */
typedef enum pod_res_index {
    POD_RES_CPU_REQUEST,
    POD_RES_CPU_LIMIT,
    POD_RES_MEMORY_REQUEST,
    POD_RES_MEMORY_LIMIT,
    POD_RES_COUNT
} pod_res_index_t;

typedef struct pod_resources {
    int64_t v[POD_RES_COUNT];
    char text[POD_RES_COUNT][32];
} pod_resources_t;

/* The resources a container's spec asks for (requests defaulted to the
 * limits, as the API server does). */
void pod_resources_of(const podspec_container_t *c, pod_resources_t *out);
/* Equal in value (the text may differ: "1" and "1000m"). */
bool pod_resources_equal(const pod_resources_t *a, const pod_resources_t *b);
/* Whether the limits differ. */
bool pod_resources_limits_differ(const pod_resources_t *a, const pod_resources_t *b);
/* {"requests": {...}, "limits": {...}} of what is set (the container
 * status's resources); requests only: {"cpu": ..., "memory": ...} (its
 * allocatedResources). NULL when nothing is set. */
json_t *pod_resources_json(const pod_resources_t *r);
json_t *pod_resources_requests_json(const pod_resources_t *r);
/* The resume format's form, and back (false when it is not one). */
json_t *pod_resources_save(const pod_resources_t *r);
bool pod_resources_load(json_t *j, pod_resources_t *out);

typedef enum pod_resize_fit {
    POD_RESIZE_FITS,
    POD_RESIZE_INFEASIBLE,
    POD_RESIZE_DEFERRED
} pod_resize_fit_t;

typedef struct pod_resize_verdict {
    pod_resize_fit_t fit;
    char reason[16]; /* "Infeasible" / "Deferred" (the PodResizePending reason) */
    char message[512];
} pod_resize_verdict_t;

/* Whether the node can allocate what pod (the desired version) asks for.
 * node: the node as admission sees it, its used_* counting the other pods
 * only (not this one). */
void pod_resize_admit(json_t *pod, const pod_admission_node_t *node, pod_resize_verdict_t *out);

typedef enum pod_resize_action {
    POD_RESIZE_NOTHING, /* nothing changed */
    POD_RESIZE_LIVE,    /* apply to the running container */
    POD_RESIZE_RESTART  /* restart the container with the new resources */
} pod_resize_action_t;

/* What a running container does to go from actual to allocated, given its
 * resizePolicy (restarts_cpu / restarts_memory: RestartContainer). */
pod_resize_action_t pod_resize_action(const pod_resources_t *actual,
                                      const pod_resources_t *allocated, bool restarts_cpu,
                                      bool restarts_memory);

/* The kubelet's error for a memory limit below usage, into out. */
void pod_resize_memory_error(const char *container, int64_t limit, uint64_t usage, char *out,
                             size_t size);

#endif
