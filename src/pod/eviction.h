/* eviction.h: the kubelet's eviction manager, for a node whose containers
 * share one process.
 *
 * Node pressure. The signals are the kubelet's: memory.available (the
 * host's MemAvailable, see eviction_observe), nodefs.available and
 * nodefs.inodesFree (the file system of the data dir, which holds the
 * module store, the pods' emptyDirs and the logs; there is no separate
 * imagefs). Thresholds come from --eviction-hard (default
 * memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%) and
 * --eviction-soft with --eviction-soft-grace-period, written as the
 * kubelet's flags are. A hard threshold met, or a soft one met for its
 * grace period, puts the node under pressure (MemoryPressure or
 * DiskPressure, kept --eviction-pressure-transition-period after the
 * signal recovers) and evicts one pod per pass, ranked as the kubelet
 * ranks them: pods whose usage exceeds their requests first, then by
 * priority (lowest first), then by usage above requests (largest first).
 * The evicted pod ends Failed, reason Evicted, with the kubelet's message.
 *
 * Pod ephemeral storage. A pod whose emptyDirs and logs together pass the
 * sum of its containers' limits.ephemeral-storage, or a container whose
 * logs pass its own limit, is evicted with the kubelet's messages.
 *
 * The pure parts (flag parsing, threshold evaluation, ranking, messages,
 * a pod's figures from its JSON) take no lock and do no I/O:
 * tests/unit/test_eviction.c. pod_eviction_t is the state that the pod
 * manager's sync thread updates (pod/housekeeping.c) and the node's
 * status reads (node/info.c): one mutex, a leaf. */
#ifndef WASMLET_POD_EVICTION_H
#define WASMLET_POD_EVICTION_H

#include "util/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum eviction_signal {
    EVICT_MEMORY_AVAILABLE,
    EVICT_NODEFS_AVAILABLE,
    EVICT_NODEFS_INODES_FREE,
    EVICT_SIGNALS
} eviction_signal_t;

/* "memory.available", ... */
const char *eviction_signal_name(eviction_signal_t s);
/* The resource a signal reclaims: "memory" or "ephemeral-storage". */
const char *eviction_signal_resource(eviction_signal_t s);

typedef struct eviction_threshold {
    bool set;
    bool percent;     /* value is a share of capacity ... */
    double share;     /* ... in (0, 1] */
    int64_t quantity; /* ... else an amount (bytes, or inodes) */
    char text[32];    /* the value as written ("100Mi", "10%") */
    int64_t grace_ns; /* soft thresholds: how long it must hold */
    bool grace_set;   /* soft thresholds: a grace period was given */
} eviction_threshold_t;

typedef struct eviction_config {
    eviction_threshold_t hard[EVICT_SIGNALS];
    eviction_threshold_t soft[EVICT_SIGNALS];
    int64_t transition_ns; /* --eviction-pressure-transition-period (5m) */
} eviction_config_t;

/* The kubelet's Linux defaults: hard memory.available<100Mi,
 * nodefs.available<10%, nodefs.inodesFree<5%; no soft thresholds; a
 * transition period of 5 minutes. */
void eviction_config_default(eviction_config_t *c);

/* Parses an --eviction-hard / --eviction-soft value ("memory.available<
 * 100Mi,nodefs.available<10%") into out (indexed by signal). Every signal
 * named replaces what out had; the others are cleared (as the kubelet
 * does: giving the flag replaces its defaults). An empty text clears all.
 * Errors name the part at fault. */
int eviction_parse_thresholds(const char *text, eviction_threshold_t out[EVICT_SIGNALS],
                              err_t *err);
/* Parses --eviction-soft-grace-period ("memory.available=1m30s,...")
 * into the grace of soft[]. */
int eviction_parse_grace(const char *text, eviction_threshold_t soft[EVICT_SIGNALS], err_t *err);
/* Checks that every soft threshold has a grace period. */
int eviction_config_check(const eviction_config_t *c, err_t *err);

/* What the node has of each signal now: available and capacity (bytes,
 * or inodes), known = could be read. */
typedef struct eviction_observation {
    int64_t available[EVICT_SIGNALS];
    int64_t capacity[EVICT_SIGNALS];
    bool known[EVICT_SIGNALS];
} eviction_observation_t;

/* Reads the signals: memory.available is /proc/meminfo's MemAvailable and
 * its capacity MemTotal (the whole host, as the kubelet's root cgroup sees
 * it: memory used by anything else on the machine, a control plane
 * included, counts as used); nodefs.* is statvfs of data_dir (f_bavail
 * blocks, f_favail inodes). */
void eviction_observe(const char *data_dir, eviction_observation_t *o);

/* The threshold's amount for a capacity (a share of it, or the quantity). */
int64_t eviction_threshold_amount(const eviction_threshold_t *t, int64_t capacity);

/* Kept across passes. */
typedef struct eviction_state {
    int64_t soft_since[EVICT_SIGNALS]; /* mono ns the soft threshold was first met; 0 not met */
    int64_t pressure_until[2];         /* [0] memory, [1] disk: mono ns the condition holds to */
    bool pressure[2];
} eviction_state_t;

typedef struct eviction_verdict {
    bool met[EVICT_SIGNALS];  /* the signal is past a threshold that evicts now */
    bool memory_pressure;     /* the node's MemoryPressure condition */
    bool disk_pressure;       /* the node's DiskPressure condition */
    bool evict;               /* some threshold evicts now ... */
    eviction_signal_t signal; /* ... this one (memory first, as the kubelet) */
    char threshold_text[32];  /* its quantity as the message shows it */
    int64_t available;        /* what the signal had */
} eviction_verdict_t;

/* Evaluates the thresholds against an observation at now (mono ns). */
void eviction_evaluate(const eviction_config_t *c, eviction_state_t *st,
                       const eviction_observation_t *o, int64_t now, eviction_verdict_t *v);

/* --- ranking and messages --------------------------------------------------- */

#define EVICTION_MAX_CONTAINERS 32

/* A pod as eviction ranks it, for one resource. */
typedef struct eviction_candidate {
    void *ref;        /* the caller's (the pod's entry) */
    int64_t priority; /* spec.priority, 0 when absent */
    bool critical;    /* system-critical priority: never evicted */
    int64_t usage;    /* the pod's usage of the resource */
    int64_t request;  /* the sum of its containers' requests */
    size_t ncontainers;
    struct {
        char name[64];
        int64_t usage, request;
    } containers[EVICTION_MAX_CONTAINERS];
} eviction_candidate_t;

/* Sorts candidates first-to-evict first: usage above requests, then lower
 * priority, then larger usage minus requests. Critical pods sort last. */
void eviction_rank(eviction_candidate_t *c, size_t n);

/* A byte count as Kubernetes prints a binary quantity: the largest of Ki,
 * Mi, Gi, Ti, Pi, Ei dividing it exactly, else plain ("91264Ki", "100Mi",
 * "1023"). Returns buf. */
char *eviction_format_bytes(int64_t bytes, char *buf, size_t len);

/* The kubelet's message for a node-pressure eviction of pod c:
 *   "The node was low on resource: memory. Threshold quantity: 100Mi,
 *    available: 91264Ki. Container app was using 512Mi, request is 0, has
 *    larger consumption of memory. "
 * (one Container sentence per container using more than it requested). */
void eviction_message(const eviction_verdict_t *v, const eviction_candidate_t *c, char *buf,
                      size_t len);

/* --- a pod's figures, from its JSON ----------------------------------------- */

/* Priority (spec.priority; 0 when absent) and whether it is system
 * critical (>= 2000000000, as the kubelet's IsCriticalPodBasedOnPriority). */
int64_t eviction_pod_priority(json_t *pod, bool *critical);
/* The requests of the pod's app containers for resource ("memory",
 * "ephemeral-storage") into c->containers (names, request; usage 0) and
 * c->request (their sum). */
void eviction_pod_requests(json_t *pod, const char *resource, eviction_candidate_t *c);
/* The pod's limits.ephemeral-storage as the kubelet sums it: the app
 * containers' sum, or the largest init container's when larger; 0 when
 * no container sets one. */
int64_t eviction_pod_storage_limit(json_t *pod);
/* A container's limits.ephemeral-storage (0 none); *text its text. */
int64_t eviction_container_storage_limit(json_t *container, const char **text);

/* --- the state the manager and the node share ------------------------------- */

typedef struct pod_eviction pod_eviction_t;

pod_eviction_t *pod_eviction_new(const eviction_config_t *cfg);
void pod_eviction_free(pod_eviction_t *ev);
const eviction_config_t *pod_eviction_config(const pod_eviction_t *ev);
/* The sync thread's pass: observes, evaluates and records the verdict.
 * now is mono ns. */
void pod_eviction_update(pod_eviction_t *ev, const char *data_dir, int64_t now,
                         eviction_verdict_t *v);
/* The latest conditions, for the Node's status; false before the first
 * pass. */
void pod_eviction_pressure(pod_eviction_t *ev, bool *memory, bool *disk);
/* Counts an eviction (for /metrics and tests). */
void pod_eviction_count(pod_eviction_t *ev, eviction_signal_t s);
uint64_t pod_eviction_total(pod_eviction_t *ev);

#endif
