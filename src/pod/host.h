/* host.h: what a pod worker needs from the mode it runs in.
 *
 * The same workers run pods for `wasmlet node` (pods from the API server)
 * and `wasmlet run` (a manifest on this machine). What differs is behind
 * this table of callbacks: where a module comes from (an OCI pull or a
 * local file), where ConfigMaps and Secrets are read, and where status
 * changes and events go (the status manager and the Events API, or the
 * terminal). Every callback may be called from any worker thread. */
#ifndef WASMLET_POD_HOST_H
#define WASMLET_POD_HOST_H

#include "kube/pod_spec.h"
#include "net/net.h"
#include "util/err.h"
#include "volume/volume.h"
#include "wasm/wasmrt.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

typedef struct pod_worker pod_worker_t;

/* The node's pod network (pod/sandbox.c): every pod without hostNetwork
 * gets a sandbox (a network namespace wired by the CNI plugins of cfg),
 * except, with skip_portless, a pod no container of which declares a port
 * (a WASI preview 1 module has no sockets at all). gc_lock orders sandbox
 * work against the garbage collection of orphans: a worker holds it shared
 * around each create or destroy, the collector exclusively while it reads
 * which pods live and destroys the others' sandboxes. */
typedef struct pod_net {
    net_config_t cfg;
    bool skip_portless;
    pthread_rwlock_t gc_lock;
} pod_net_t;

typedef struct pod_pulled {
    char *module_path; /* a local file holding the module */
    char *image_id;    /* what the status reports as imageID */
    /* On failure: the kubelet's waiting reason when not ErrImagePull
     * (ErrImageNeverPull, InvalidImageName; static), else NULL. */
    const char *failure_reason;
} pod_pulled_t;

typedef struct pod_host {
    void *ctx;
    wasmrt_t *rt;
    const char *data_dir;  /* pods/<uid>/ (volumes, state) go below it */
    const char *logs_dir;  /* container logs; NULL: no log files */
    const char *node_name; /* spec.nodeName for pods without one */
    const char *host_ip;   /* status.hostIP and, with no network of its own, podIP */
    /* The pod's own addresses, comma-separated, once its sandbox exists
     * (a worker sets it in its copy before any container starts); NULL:
     * host_ip. For the downward API's status.podIP(s). */
    const char *pod_ips;
    int64_t log_max_bytes;      /* containerLogMaxSize */
    int log_max_files;          /* containerLogMaxFiles */
    int64_t backoff_initial_ms; /* CrashLoopBackOff: 10 s doubling ... */
    int64_t backoff_max_ms;     /* ... up to 5 min */
    int64_t backoff_reset_ms;   /* ... reset after 10 min of clean running */
    /* `wasmlet run`: a pull or configuration error ends the container
     * instead of being retried with back-off as a kubelet does. */
    bool give_up_on_setup_error;
    /* Pod networking; NULL: every pod uses the host's network (and reports
     * host_ip as its podIP), as `wasmlet run` does. */
    pod_net_t *net;
    /* The IPv4 address served wasi:http components listen on; NULL: every
     * address of the pod's namespace (`wasmlet run`: loopback). */
    const char *serve_addr;
    int64_t node_allocatable_cpu;    /* millicores, for resourceFieldRef without limits */
    int64_t node_allocatable_memory; /* bytes */
    /* Host descriptors a container may hold unless its pod's
     * wasmlet.dev/max-open-files says otherwise; 0: no cap. */
    int64_t max_open_files;

    /* Resolves the container's image into a local module file, honouring
     * its pull policy. Errors read as the registry or file system said. */
    int (*pull)(void *ctx, const podspec_t *pod, const podspec_container_t *c, pod_pulled_t *out,
                err_t *err);
    /* Whether pull would find the image on the node without a registry,
     * as its pull policy allows (optional; NULL: never said). It decides
     * the Events: "Pulled ... already present on machine" alone, or
     * "Pulling" before the pull and "Pulled" after it, as the kubelet. */
    bool (*image_present)(void *ctx, const podspec_container_t *c);
    /* Reads a ConfigMap (secret = false) or Secret in ns: *data receives an
     * object of key -> string (Secret values already decoded), or NULL
     * with 0 returned when the object does not exist. NULL callback: this
     * mode has no cluster. */
    int (*lookup)(void *ctx, const char *ns, bool secret, const char *name, json_t **data,
                  err_t *err);
    /* Starts fetching a ConfigMap or Secret the pod will read, without
     * waiting (optional: NULL where reads are local or cheap). */
    void (*warm)(void *ctx, const char *ns, bool secret, const char *name);
    /* A ServiceAccount token for the pod (TokenRequest bound to the pod),
     * for projected serviceAccountToken sources; *expires_ns gets its
     * expiry. NULL callback: this mode has no cluster. */
    int (*token)(void *ctx, const podspec_t *pod, const char *audience, int64_t seconds,
                 char **token, int64_t *expires_ns, err_t *err);
    /* Starts the request of a token a later token call will ask for, without
     * waiting (optional). */
    void (*token_warm)(void *ctx, const podspec_t *pod, const char *audience, int64_t seconds);
    /* Service link variables for the pod (an object NAME -> value), or
     * NULL. */
    json_t *(*service_env)(void *ctx, const podspec_t *pod);
    /* The worker's status changed (read it with pod_worker_status_json). */
    void (*status_changed)(void *ctx, pod_worker_t *w);
    /* An Event about the pod: type Normal/Warning, the kubelet's reason,
     * a message, and the fieldPath of the container (or NULL). */
    void (*event)(void *ctx, pod_worker_t *w, const char *type, const char *reason,
                  const char *field_path, const char *message);
    /* A line of a container's output, for `wasmlet run` to show (optional). */
    void (*output)(void *ctx, pod_worker_t *w, const char *container, int stream, const char *line,
                   size_t len);
} pod_host_t;

/* The part of the host that volumes use (volume/volume.h): the same
 * callbacks and context, and the node as the downward API sees it. */
static inline volume_host_t pod_host_volumes(const pod_host_t *h)
{
    return (volume_host_t){.ctx = h->ctx,
                           .lookup = h->lookup,
                           .warm = h->warm,
                           .token = h->token,
                           .token_warm = h->token_warm,
                           .node = {.node_name = h->node_name,
                                    .host_ip = h->host_ip,
                                    .pod_ips = h->pod_ips,
                                    .allocatable_cpu = h->node_allocatable_cpu,
                                    .allocatable_memory = h->node_allocatable_memory}};
}

#endif
