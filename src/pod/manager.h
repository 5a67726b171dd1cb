/* manager.h: the pods of this node, as the API server says they should be.
 *
 * The pod manager lists and watches the pods bound to this node, admits
 * each new one as the kubelet does (pod/admission.h: rejected with
 * OutOf<resource> when it does not fit the node's allocatable, NodeAffinity
 * when its nodeSelector or required node affinity does not match the
 * Node's labels), resolves its RuntimeClass (a handler this node does not
 * serve leaves the pod Pending with FailedCreatePodSandBox Events,
 * retried), starts a worker for it, hands spec updates to the worker,
 * stops the worker when the pod is deleted, and, once the containers have
 * ended and the final status is written, removes the pod from the API
 * server (gracePeriodSeconds=0 with a uid precondition). Its status writer
 * is the only writer of pod status; its state files let a restarted
 * wasmlet resume pods without running finished containers again.
 * manager_priv.h describes the inside: files, threads, locks, lifecycle. */
#ifndef WASMLET_POD_MANAGER_H
#define WASMLET_POD_MANAGER_H

#include "image/image.h"
#include "kube/client.h"
#include "net/net.h"
#include "util/err.h"
#include "wasm/wasmrt.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct pod_manager pod_manager_t;

typedef struct pod_manager_config {
    kube_client_t *client;
    wasmrt_t *rt;
    image_store_t *images;
    const char *node_name;
    const char *host_ip;
    const char *data_dir; /* pods/<uid>/ under it */
    const char *logs_dir;
    int64_t allocatable_cpu;    /* millicores */
    int64_t allocatable_memory; /* bytes */
    int64_t max_pods;
    int64_t log_max_bytes;
    int log_max_files;
    int64_t max_open_files;     /* per container (host.h); 0: no cap */
    int64_t backoff_initial_ms; /* 0: 10 s */
    int64_t backoff_max_ms;     /* 0: 300 s */
    /* The labels the node registers with (borrowed; NULL: none known).
     * Admission reads the Node's labels from the API server; these are
     * what it uses until that read succeeds. */
    json_t *node_labels;
    /* The RuntimeClass handler this node serves (NULL: "wasmlet"); pods
     * without a runtimeClassName are served too. */
    const char *runtime_handler;
    /* Node-pressure eviction (pod/eviction.h; borrowed, outlives the
     * manager). NULL: no node-pressure eviction. */
    struct pod_eviction *eviction;
    /* Pod networking (borrowed; must outlive the manager): each pod without
     * hostNetwork gets a sandbox through these CNI settings; NULL: every
     * pod reports host_ip. With net_skip_portless, a pod none of whose
     * containers declares a port gets none either. */
    const net_config_t *net;
    bool net_skip_portless;
} pod_manager_config_t;

#define POD_MANAGER_RUNTIME_HANDLER "wasmlet"

int pod_manager_start(const pod_manager_config_t *cfg, pod_manager_t **out, err_t *err);
/* Graceful shutdown: no new pods; running ones are stopped and their
 * final status written (up to grace_ms); pods stay in the API server
 * (another kubelet run resumes them). */
void pod_manager_shutdown(pod_manager_t *m, int64_t grace_ms);
void pod_manager_free(pod_manager_t *m);

/* The static pods of --pod-manifest-path as they are now (a JSON array of
 * complete Pods with uid, namespace and nodeName set; see static_pods.c):
 * new ones start, removed ones stop, and each gets its mirror pod. */
void pod_manager_static_sync(pod_manager_t *m, json_t *pods);

/* The pods this node runs, with their current status, as a PodList. */
json_t *pod_manager_pod_list(pod_manager_t *m);
/* The log directory of a container and whether it runs now; -1 when no
 * such pod or container is on this node. */
int pod_manager_container_logs(pod_manager_t *m, const char *ns, const char *pod,
                               const char *container, char **dir, bool *running, err_t *err);

/* A TCP connection to port of a pod of this node (uid NULL: any uid),
 * made inside the pod's network namespace, to 127.0.0.1 there (the
 * node's loopback for a pod on the host's network); timeout_ms bounds the
 * connect (<= 0: 10 s). Returns the connected socket (blocking,
 * close-on-exec; the caller closes it), or -1 with err set: no such pod,
 * not running, no sandbox now, or the connect failed (pod/dial.c). */
int pod_manager_dial_tcp(pod_manager_t *m, const char *ns, const char *name, const char *uid,
                         int port, int timeout_ms, err_t *err);

typedef struct pod_manager_stats {
    uint64_t pods_started;
    uint64_t pods_running;
    uint64_t containers_running;
    uint64_t admission_rejected;
    uint64_t status_patches;
    uint64_t status_errors;
} pod_manager_stats_t;
void pod_manager_stats(pod_manager_t *m, pod_manager_stats_t *out);

/* A TCP connection to port of pod ns/name (and uid, when not NULL or
 * empty) on this node, where its containers listen, connected within
 * timeout_ms: the socket (the caller closes it), or -1 with err filled
 * (the pod is not here or has ended, or the connect failed). For
 * port-forward (server/pods.h's dial_tcp); dial.c. */
int pod_manager_dial_tcp(pod_manager_t *m, const char *ns, const char *name, const char *uid,
                         int port, int timeout_ms, err_t *err);

#endif
