/* node.h: this machine as a Kubernetes Node.
 *
 * node_info_* measure the host (capacity, pressure conditions, identity);
 * node_object builds the Node wasmlet registers; node_register creates or
 * adopts it; node_heartbeat_* renew the Lease in kube-node-lease every 10 s
 * and post node status as the kubelet does (on change, and at least once a
 * minute). `wasmlet node`, which wires the node, the pod manager and the
 * HTTPS server together, is node/cmd.h. */
#ifndef WASMLET_NODE_NODE_H
#define WASMLET_NODE_NODE_H

#include "kube/client.h"
#include "pod/eviction.h"
#include "net/net.h"
#include "util/err.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct node_config {
    const char *name;
    const char *host_ip;
    const char *hostname;
    int port; /* kubelet HTTPS port (daemonEndpoints) */
    int max_pods;
    int64_t reserved_cpu;    /* millicores held back from allocatable */
    int64_t reserved_memory; /* bytes */
    const char *data_dir;    /* ephemeral-storage is measured on its file system */
    json_t *extra_labels;    /* --node-labels, an object */
    bool taint_no_schedule;  /* kubernetes.io/arch=wasm32-wasi:NoSchedule */
    bool taint_no_execute;   /* ... and :NoExecute */
    /* Eviction thresholds and the pressure the pod manager observed
     * (borrowed). NULL: the kubelet's default thresholds, evaluated at
     * each status update. */
    pod_eviction_t *eviction;
} node_config_t;

typedef struct node_capacity {
    int64_t cpu_milli;
    int64_t memory_bytes;
    int64_t ephemeral_bytes;
    int64_t pods;
} node_capacity_t;

/* The host's capacity and the allocatable part of it. */
void node_info_capacity(const node_config_t *cfg, node_capacity_t *capacity,
                        node_capacity_t *allocatable);

/* The API server's Node was found not Ready (the node lifecycle controller
 * marked it Unknown): the next Ready=True gets a new lastTransitionTime. */
void node_info_ready_lost(void);

/* The Node object for cfg, with status (capacity, allocatable, conditions,
 * addresses, nodeInfo, daemonEndpoints). */
json_t *node_object(const node_config_t *cfg);
/* The status part alone, for the periodic update. */
json_t *node_status(const node_config_t *cfg);
/* From now on the node's status says Ready (before: NotReady, starting). */
void node_info_serving(void);

/* Creates the Node, or adopts an existing one of that name (its labels and
 * taints reconciled to ours); then posts its status. */
int node_register(kube_client_t *c, const node_config_t *cfg, err_t *err);

typedef struct node_heartbeat node_heartbeat_t;
/* Starts the Lease and status thread. */
node_heartbeat_t *node_heartbeat_start(kube_client_t *c, const node_config_t *cfg);
/* Pauses renewals (tests of NotReady detection use SIGUSR1 to toggle). */
void node_heartbeat_pause(node_heartbeat_t *hb, bool paused);
void node_heartbeat_stop(node_heartbeat_t *hb);

/* Whether pods none of whose containers declares a port skip the sandbox
 * (--skip-sandbox-without-ports). A WASI preview 1 module has no sockets,
 * so such a pod could not use an address of its own; skipping saves the
 * sandbox's cost at every start and stop (see README, "Pod networking",
 * for the figures). */
#define NODE_DEFAULT_SKIP_PORTLESS true

/* The node's pod network (node/podnet.c). */
typedef struct node_podnet_options {
    const char *node_name;
    const char *data_dir;     /* net/ goes under it */
    const char *conf_dir;     /* --cni-conf-dir */
    const char *bin_dirs;     /* --cni-bin-dir, comma-separated */
    int64_t pod_cidr_wait_ms; /* how long to wait for the Node's podCIDR */
} node_podnet_options_t;

typedef struct node_podnet {
    net_config_t cfg; /* points into the fields below */
    char *conf_dir, *run_dir, *state_dir;
    char **bin_dirs;  /* NULL-terminated */
    net_ipam_t *ipam; /* the default config's addresses; NULL with a config of the node's */
} node_podnet_t;

/* The CNI settings of this node: the first network config of conf_dir, or,
 * when it has none, a default one written into <data_dir>/net/cni from the
 * Node's spec.podCIDRs (waited for; logged), whose addresses wasmlet hands
 * out (the ones the sandboxes on disk hold read back); namespaces and
 * sandbox state under <data_dir>/net. Call after registration. */
int node_podnet_setup(kube_client_t *c, const node_podnet_options_t *o, node_podnet_t *out,
                      err_t *err);
void node_podnet_free(node_podnet_t *p);

#endif
