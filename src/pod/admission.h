/* admission.h: whether this node accepts a pod, as the kubelet decides it.
 *
 * A pure function: the pod (its JSON) and the facts of the node in, a
 * verdict with the kubelet's reason and message out. No locks, no I/O, no
 * clock, so every rule is unit-tested (tests/unit/test_admission.c). The
 * pod manager gathers the facts (what its running pods use, the Node's
 * labels) and acts on the verdict.
 *
 * The checks, in the kubelet's order (its predicate admit handler), the
 * first failure deciding:
 *   1. resources: one pod slot (max-pods), then cpu and memory requests
 *      against what the pods already admitted leave of allocatable:
 *      OutOfpods / OutOfcpu / OutOfmemory;
 *   2. node affinity: spec.nodeSelector and the required node affinity
 *      (requiredDuringSchedulingIgnoredDuringExecution) against the
 *      Node's labels and name: NodeAffinity. */
#ifndef WASMLET_POD_ADMISSION_H
#define WASMLET_POD_ADMISSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* The node as admission sees it. */
typedef struct pod_admission_node {
    const char *name;           /* metadata.name, for matchFields */
    json_t *labels;             /* the Node's labels (an object; NULL: none) */
    bool labels_unknown;        /* the labels could not be read: no node affinity check */
    int64_t allocatable_cpu;    /* millicores */
    int64_t allocatable_memory; /* bytes */
    int64_t max_pods;
    /* What the pods admitted before (still running) hold. */
    int64_t used_cpu, used_memory, used_pods;
} pod_admission_node_t;

typedef struct pod_admission {
    bool admit;
    char reason[32]; /* the kubelet's reason: OutOfcpu, NodeAffinity, ... */
    /* The kubelet's message, as its Event carries it; the pod's status
     * message is "Pod was rejected: " followed by it (see
     * POD_ADMISSION_STATUS_PREFIX). */
    char message[512];
} pod_admission_t;

#define POD_ADMISSION_STATUS_PREFIX "Pod was rejected: "

/* The pod's resource requests as admission counts them: the app
 * containers' sum, or the largest init container's when larger (init
 * containers run before the app). 0 when the pod does not parse. */
void pod_admission_requests(json_t *pod, int64_t *cpu, int64_t *memory);

/* Decides whether node admits pod. */
void pod_admit(json_t *pod, const pod_admission_node_t *node, pod_admission_t *out);

/* Whether the node (labels, name) matches the pod's nodeSelector and
 * required node affinity (exposed for tests and for the manager's
 * "re-read the Node before rejecting" check). */
bool pod_admission_node_matches(json_t *pod, json_t *labels, const char *node_name);

#endif
