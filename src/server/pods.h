/* pods.h: what the kubelet API needs of the pods, as an interface of its
 * own: the node wires it to the pod manager (node/cmd.c), tests to a
 * fixture. Its types are the server's, so server/ includes nothing of
 * pod/, and the provider decides how to answer (the pod manager copies its
 * table under its lock; the server never sees that lock). */
#ifndef WASMLET_SERVER_PODS_H
#define WASMLET_SERVER_PODS_H

#include "util/err.h"
#include "util/strvec.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Pod counters for /metrics. */
typedef struct server_pod_counters {
    uint64_t pods_started;
    uint64_t pods_running;
    uint64_t containers_running;
    uint64_t admission_rejected;
    uint64_t status_patches;
    uint64_t status_errors;
} server_pod_counters_t;

/* What stats need of one pod: who it is and its containers. */
typedef struct server_pod_sample {
    char *ns, *name, *uid;
    char *start_time;    /* status.startTime (RFC 3339), or NULL */
    strvec_t containers; /* init containers first, then app containers */
} server_pod_sample_t;

typedef struct server_pod_samples {
    server_pod_sample_t *items;
    size_t n;
} server_pod_samples_t;

#define SERVER_POD_SAMPLES_INIT                                                                    \
    {                                                                                              \
        NULL, 0                                                                                    \
    }

/* The samples of a PodList's pods (those with a namespace, name and uid). */
void server_pod_samples_from_list(json_t *list, server_pod_samples_t *out);
void server_pod_samples_free(server_pod_samples_t *s);

/* Where the server finds pods and their logs: the pod manager in a node
 * (wired in node/cmd.c), a fixture in tests. Called from request threads
 * and the sampler thread, concurrently; never from the event loop. Any
 * callback may be NULL (the server then sees no pods). */
typedef struct server_pods {
    void *ctx;
    /* The pods of this node, as a PodList (new reference), or NULL. */
    json_t *(*pod_list)(void *ctx);
    /* The log directory of a container (*dir, the caller frees) and
     * whether it runs now; -1 (err filled) when no such pod or container
     * is on this node. */
    int (*container_logs)(void *ctx, const char *ns, const char *pod, const char *container,
                          char **dir, bool *running, err_t *err);
    /* The pods for stats: fills *out; -1 when they cannot be had now. */
    int (*pod_samples)(void *ctx, server_pod_samples_t *out);
    /* Pod counters for /metrics. */
    void (*counters)(void *ctx, server_pod_counters_t *out);
    /* A TCP connection to port of a pod of this node (uid: NULL or "" for
     * any), opened where the pod's containers listen, within timeout_ms:
     * the connected socket (the caller closes it), or -1 with err filled
     * ("pod ... is not on this node", "connect 127.0.0.1:80: Connection
     * refused"). Blocks the calling request thread only. */
    int (*dial_tcp)(void *ctx, const char *ns, const char *name, const char *uid, int port,
                    int timeout_ms, err_t *err);
} server_pods_t;

#endif
