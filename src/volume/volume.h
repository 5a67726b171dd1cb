/* volume.h: a pod's volumes as directories on the host, and a container's
 * mounts as WASI preopens of those directories.
 *
 * Every volume of a pod lives under <pod_dir>/volumes/<name>, except
 * hostPath, which is the host's own directory. A container's volumeMount is
 * preopened at its mountPath (read-only when the mount is); a subPath must
 * name a directory inside the volume. Nothing else of the host is visible:
 * WASI resolves every path of a preopen inside it, refusing `..` and
 * symlinks that lead out. */
#ifndef WASMLET_VOLUME_VOLUME_H
#define WASMLET_VOLUME_VOLUME_H

#include "kube/fieldref.h"
#include "kube/pod_spec.h"
#include "util/err.h"
#include "wasm/wasmrt.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* What volumes need from the mode wasmlet runs in (pod/host.h fills it from
 * its pod_host_t). Callbacks may be called from any thread. */
typedef struct volume_host {
    void *ctx;
    /* Reads a ConfigMap (secret = false) or Secret in ns: *data receives an
     * object of key -> string (Secret values already decoded), or NULL with
     * 0 returned when the object does not exist. NULL: no cluster. */
    int (*lookup)(void *ctx, const char *ns, bool secret, const char *name, json_t **data,
                  err_t *err);
    /* Starts fetching a ConfigMap or Secret a later lookup will read,
     * without waiting. NULL: nothing to warm. */
    void (*warm)(void *ctx, const char *ns, bool secret, const char *name);
    /* A ServiceAccount token bound to the pod, for projected
     * serviceAccountToken sources; *expires_ns gets its expiry. NULL: no
     * cluster. */
    int (*token)(void *ctx, const podspec_t *pod, const char *audience, int64_t seconds,
                 char **token, int64_t *expires_ns, err_t *err);
    /* Starts the request of a token a later token call will ask for,
     * without waiting. NULL: nothing to warm. */
    void (*token_warm)(void *ctx, const podspec_t *pod, const char *audience, int64_t seconds);
    /* The node as downwardAPI items see it (name, IP, allocatable). */
    kube_node_facts_t node;
} volume_host_t;

/* Warms (host->warm) every ConfigMap and Secret the pod's volumes read,
 * so that their first reads' lists run beside the pod's other start work. */
void volume_warm(const volume_host_t *host, const podspec_t *pod);
/* Starts (host->token_warm) the TokenRequest of every projected
 * serviceAccountToken source, for a pod whose volumes come after other
 * slow start work (its network sandbox): the requests run beside it. */
void volume_warm_tokens(const volume_host_t *host, const podspec_t *pod);
/* Creates or refreshes every volume of the pod. On failure the message
 * names the volume and says why; -1 is worth retrying (an object not there
 * yet, the API server unreachable or not yet authorizing this node),
 * VOLUME_PERMANENT is not (an unsupported type, a hostPath of a kind a
 * WASI module cannot mount). */
#define VOLUME_PERMANENT (-2)
int volume_setup(const volume_host_t *host, const podspec_t *pod, const char *pod_dir, err_t *err);
/* Rewrites configMap, secret, downwardAPI and projected volumes whose
 * content changed (a ConfigMap update, a token near expiry). *token_expires
 * gets the earliest token expiry seen. */
int volume_refresh(const volume_host_t *host, const podspec_t *pod, const char *pod_dir,
                   int64_t *token_expires, err_t *err);
/* Checks every emptyDir with a sizeLimit against what its directory holds
 * now (disk usage, as du counts it: each inode once, symlinks not followed).
 * Returns -1 with the kubelet's eviction message in err ("Usage of EmptyDir
 * volume \"cache\" exceeds the limit \"1Mi\".") when one is over, else 0.
 * The caller evicts the pod (reason Evicted, that message). */
int volume_check_limits(const podspec_t *pod, const char *pod_dir, err_t *err);
/* Disk used by all the pod's emptyDirs on disk (medium Memory excluded),
 * as volume_check_limits measures one: the pod's ephemeral storage in
 * volumes, for limits.ephemeral-storage. */
uint64_t volume_emptydir_usage(const podspec_t *pod, const char *pod_dir);
/* Removes the pod's volume directories (never what a hostPath points at). */
int volume_teardown(const char *pod_dir, err_t *err);

/* The mounts of container c, for wasmrt_spec_t. Free with volume_mounts_free. */
int volume_mounts(const podspec_t *pod, const podspec_container_t *c, const char *pod_dir,
                  wasmrt_mount_t **mounts, size_t *n, err_t *err);
void volume_mounts_free(wasmrt_mount_t *mounts, size_t n);

#endif
