/* net.h: pod networking: a network namespace per pod sandbox, wired up by
 * the CNI plugins of the node's network config.
 *
 * A pod that does not use the host's network gets a sandbox: a named
 * network namespace (a file under the node's run dir, bind-mounted the way
 * `ip netns add` does, so it lives without any thread or process in it) and
 * the ADD of every plugin of the first network config found in the conf
 * dir. The sandbox's state (the exact config list used, the ADD result, the
 * namespace path, the pod's identity) is kept on disk under the state dir,
 * written before the namespace exists and again after ADD, so a DEL can run
 * after a crash of wasmlet even when the pod is gone: net_sandbox_gc()
 * destroys every sandbox on disk that the caller does not name as live.
 *
 * Threads: wasmlet is one process for all pods, so a namespace is entered
 * per thread (setns), never per process. net_enter() switches only the
 * calling thread; a socket created while there stays in that namespace
 * after net_leave(). CNI plugins are spawned from the calling thread and
 * inherit its namespace, so the net_sandbox_* calls must run on a thread
 * that is in the host's namespace (never between net_enter and net_leave).
 *
 * Every net_sandbox_* call for one sandbox id must be serialised by the
 * caller; calls for different ids may run at once, and at most 8 of the
 * create, check and destroy calls run their plugins at once (the others
 * wait for a turn: a burst of pod starts must not fork thousands of
 * plugins together). */
#ifndef WASMLET_NET_NET_H
#define WASMLET_NET_NET_H

#include "util/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- network namespaces (netns.c) ---------------------------------------------- */

/* Creates the network namespace file <run_dir>/<name> (mkdir -p run_dir)
 * with lo up, as `ip netns add` does: run_dir is made a shared mount point
 * (a bind mount of itself the first time) and the namespace of a
 * short-lived thread that unshared is bind-mounted onto the file. *path
 * gets the file's path (the caller frees). Fails when the name exists. */
int net_ns_create(const char *run_dir, const char *name, char **path, err_t *err);
/* Unmounts (MNT_DETACH) and unlinks a namespace file. A missing file is
 * not an error; the namespace itself dies with its last user. */
int net_ns_delete(const char *path, err_t *err);
/* True when path is a mounted network namespace (nsfs). */
bool net_ns_exists(const char *path);
/* Undoes the bind mount net_ns_create may have put on run_dir itself (for
 * tests and for removing a data dir). Delete the namespaces under it first:
 * this detaches their mounts too. */
int net_ns_run_dir_release(const char *run_dir, err_t *err);

/* Switches the calling thread into the namespace at path; *saved gets a
 * descriptor of the thread's previous one for net_leave(). Other threads
 * are untouched. */
int net_enter(const char *path, int *saved, err_t *err);
/* Switches the calling thread back to *saved and closes it (*saved = -1). */
int net_leave(int *saved, err_t *err);
/* Runs fn(arg, err) on the calling thread inside the namespace at path and
 * comes back, whatever fn returns; returns fn's result. When the thread
 * cannot come back it aborts: a thread stuck in a pod's namespace would
 * spawn the next pod's plugins there. */
int net_ns_run(const char *path, int (*fn)(void *arg, err_t *err), void *arg, err_t *err);
/* socket(domain, type, protocol) created inside the namespace at path; the
 * descriptor stays in that namespace. Returns it, or -1. */
int net_ns_socket(const char *path, int domain, int type, int protocol, err_t *err);
/* A TCP listener inside the namespace at path on addr:port ("0.0.0.0",
 * "::", a literal address; port 0 picks one, *bound_port gets it when not
 * NULL). SO_REUSEADDR and close-on-exec. Returns the descriptor, or -1. */
int net_ns_listen_tcp(const char *path, const char *addr, int port, int backlog, int *bound_port,
                      err_t *err);

/* --- the default config's pod addresses (ipam.c) --------------------------------- */

/* wasmlet's own IPAM for the default network config: the pods' addresses
 * over the node's podCIDRs (at most one per family), handed to Debian's
 * "static" IPAM plugin in each ADD's config. Thread-safe. */
typedef struct net_ipam net_ipam_t;

/* An allocator over pod_cidrs ("10.244.1.0/24", "10.244.1.0/24,fd00::/64"),
 * nothing held. */
int net_ipam_new(const char *pod_cidrs, net_ipam_t **out, err_t *err);
void net_ipam_free(net_ipam_t *ipam);
/* Parses a pod range ("10.244.1.0/24", "fd00::/64"): its family (4 or 6),
 * address (network byte order) and prefix length, which must leave room
 * for a gateway and a pod. -1 (err set) if it is not one. The default
 * config (defconf.c) checks the node's podCIDRs with it too. */
int net_pod_cidr_parse(const char *cidr, unsigned char addr[16], int *prefix, err_t *err);
/* Takes a free address of each range and writes them, each with its
 * range's gateway (its first address), as ipam_conf's "addresses" (static's
 * [{"address": "a/len", "gateway": "g"}]). Fails, holding nothing, when a
 * range is full. */
int net_ipam_assign(net_ipam_t *ipam, json_t *ipam_conf, err_t *err);
/* Marks the addresses of ipam_conf's "addresses" held or free; those
 * outside the ranges are left alone. */
void net_ipam_mark(net_ipam_t *ipam, const json_t *ipam_conf, bool held);
/* Whether addr (no prefix length) is held. */
bool net_ipam_held(net_ipam_t *ipam, const char *addr);
/* How many addresses are held. */
size_t net_ipam_used(net_ipam_t *ipam);
/* One range's figures, for /metrics. */
typedef struct net_ipam_range_stats {
    char cidr[64];     /* as given */
    int family;        /* 4 or 6 */
    uint32_t held;     /* pod addresses held */
    uint32_t capacity; /* pod addresses in all (not the network, gateway or broadcast) */
} net_ipam_range_stats_t;
/* Fills out (at most max) with each range's figures; returns how many. */
size_t net_ipam_stats(net_ipam_t *ipam, net_ipam_range_stats_t *out, size_t max);

/* --- the node's network config -------------------------------------------------- */

typedef struct net_config {
    const char *conf_dir;        /* CNI network configs (--cni-conf-dir) */
    const char *const *bin_dirs; /* plugin dirs, NULL-terminated (--cni-bin-dir) */
    const char *run_dir;         /* namespace files: <run_dir>/<sandbox id> */
    const char *state_dir;       /* sandbox state: <state_dir>/<sandbox id>/ */
    int plugin_timeout_ms;       /* one plugin call; <= 0: 30 s */
    /* The default config's addresses: a plugin whose "ipam" is "static"
     * with no "addresses" gets one of each range from here at ADD (the
     * state keeps it; it is given back when the state goes). NULL: the
     * config's own IPAM plugins allocate. */
    net_ipam_t *ipam;
    /* The config is wasmlet's default (net_default_conf). Its portmap then
     * runs only for a pod with hostPorts: for the others it would add
     * nothing but a plugin process at ADD and at DEL (about 5 ms each). A
     * sandbox's state keeps the list its ADD ran, so its DEL runs that. */
    bool default_list;
} net_config_t;

/* The options of the default network config (net_default_conf). */
typedef struct net_default_opts {
    const char *pod_cidrs; /* the node's spec.podCIDRs, comma-separated ("10.244.1.0/24",
                              "10.244.1.0/24,fd00:10:244:1::/64") */
    const char *name;      /* the network's name; NULL: "wasmlet" */
    bool ip_masq;          /* masquerade pod traffic leaving the node (ptp ipMasq) */
} net_default_opts_t;

/* The default conflist: ptp (one veth per pod, no Linux bridge and so no
 * limit of 1,024 ports) with "static" IPAM whose addresses wasmlet fills in
 * at each ADD (net_config_t.ipam over the same pod CIDRs) and a default
 * route per family, then portmap with the portMappings capability
 * (hostPort). The caller decrefs. */
int net_default_conf(const net_default_opts_t *opts, json_t **conflist, err_t *err);
/* Writes net_default_conf() to path atomically (mode 0644). */
int net_default_conf_write(const char *path, const net_default_opts_t *opts, err_t *err);

/* --- pod sandboxes (sandbox.c) ------------------------------------------------------ */

/* A hostPort mapping (portmap's runtimeConfig.portMappings). */
typedef struct net_port_mapping {
    int host_port;
    int container_port;
    const char *protocol; /* "tcp", "udp", "sctp"; NULL: "tcp" */
    const char *host_ip;  /* NULL or "": every address */
} net_port_mapping_t;

/* The pod a sandbox belongs to (CNI_ARGS and the state on disk). */
typedef struct net_pod {
    const char *ns;
    const char *name;
    const char *uid;
    const net_port_mapping_t *ports;
    size_t n_ports;
} net_pod_t;

#define NET_SANDBOX_ID_MAX 64
#define NET_MAX_IPS 8

/* A sandbox that exists: its namespace and the pod's addresses, in the
 * order of the CNI result (for status.podIPs; at most one per family is
 * what Kubernetes accepts, see net_sandbox_pod_ips). */
typedef struct net_sandbox {
    char id[NET_SANDBOX_ID_MAX + 1];
    char *netns;            /* namespace path */
    char *network;          /* the network config's name */
    char *ips[NET_MAX_IPS]; /* addresses without prefix length */
    size_t n_ips;
    json_t *result; /* the ADD result (owned) */
} net_sandbox_t;

/* Fills id with a fresh sandbox id (64 hex digits, like a CRI sandbox's). */
void net_sandbox_new_id(char id[NET_SANDBOX_ID_MAX + 1]);

/* Creates the sandbox `id` (letters, digits, '_', '-', '.'; at most 64):
 * state on disk, namespace, ADD of every plugin in order. On failure every
 * plugin gets a DEL and the namespace and state go; if that clean-up
 * fails too, the state stays for net_sandbox_destroy or the GC. */
int net_sandbox_create(const net_config_t *cfg, const char *id, const net_pod_t *pod,
                       net_sandbox_t **out, err_t *err);
/* Reads the sandbox `id` back from disk (for a resume after a restart). */
int net_sandbox_load(const net_config_t *cfg, const char *id, net_sandbox_t **out, err_t *err);
/* CHECK of every plugin with the ADD result as prevResult (skipped when the
 * list sets disableCheck), after checking the namespace is still mounted. */
int net_sandbox_check(const net_config_t *cfg, const char *id, err_t *err);
/* DEL of every plugin in reverse order (with the ADD result when there is
 * one), then removes the namespace, then the state. A sandbox with no
 * state is done (its namespace file, if any, is removed). A failed DEL
 * keeps the state, so a later call retries. */
int net_sandbox_destroy(const net_config_t *cfg, const char *id, err_t *err);
/* Destroys every sandbox on disk (state or namespace file) whose id is not
 * in live[0..n_live). Returns how many it destroyed, or -1 with err set to
 * the first failure (it still tries every one). */
int net_sandbox_gc(const net_config_t *cfg, const char *const *live, size_t n_live, err_t *err);
/* Marks held, in cfg->ipam, the addresses every sandbox state on disk
 * names: once, when the node starts, before any sandbox is made. */
int net_sandbox_ipam_load(const net_config_t *cfg, err_t *err);
/* The ids of every sandbox on disk, into a NULL-terminated array (caller
 * frees each and the array); *n gets the count. */
int net_sandbox_list(const net_config_t *cfg, char ***ids, size_t *n, err_t *err);
/* The first IPv4 and the first IPv6 address of the sandbox, in result
 * order (what status.podIPs lists); either may be NULL. */
void net_sandbox_pod_ips(const net_sandbox_t *sb, const char **first, const char **second);
void net_sandbox_free(net_sandbox_t *sb);

#endif
