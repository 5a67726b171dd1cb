/* fieldref.h: the downward API's two selectors, resolved in one place.
 *
 * A fieldRef names a field of the Pod object (metadata.name, .namespace,
 * .uid, .labels['k'], .annotations['k'], spec.nodeName,
 * spec.serviceAccountName, status.hostIP(s), status.podIP(s)); a
 * resourceFieldRef names a request or limit of a container, scaled by a
 * divisor. Both an env var (pod/env.c) and a downwardAPI volume file
 * (volume/sources.c) are filled from these, so both read the same values
 * the same way. Values come back as new strings, the caller frees. */
#ifndef WASMLET_KUBE_FIELDREF_H
#define WASMLET_KUBE_FIELDREF_H

#include "kube/pod_spec.h"
#include "util/err.h"

#include <jansson.h>
#include <stdint.h>

/* What of the node the values may need. */
typedef struct kube_node_facts {
    const char *node_name;      /* spec.nodeName for a pod without one */
    const char *host_ip;        /* status.hostIP; also the pod's IP when pod_ips is NULL
                                   (hostNetwork, or a pod without a sandbox) */
    const char *pod_ips;        /* the pod's own addresses, comma-separated (status.podIPs),
                                   or NULL */
    int64_t allocatable_cpu;    /* millicores: limits.cpu of a container without one */
    int64_t allocatable_memory; /* bytes: limits.memory of a container without one */
} kube_node_facts_t;

/* Also accept metadata.labels and metadata.annotations as a whole, written
 * as the kubelet writes them into a file: key="value" lines, sorted by key,
 * values quoted as Go's %q. Only a downwardAPI volume may ask for them. */
#define KUBE_FIELDREF_WHOLE_MAPS 1u

/* The value of fieldPath path for pod; NULL with err set for a path it
 * does not know. */
char *kube_fieldref(const kube_node_facts_t *node, const podspec_t *pod, const char *path,
                    unsigned flags, err_t *err);

/* The value of a ResourceFieldSelector object ref ({"containerName",
 * "resource", "divisor"}) as a decimal integer: the quantity divided by the
 * divisor and rounded up, as the kubelet does. containerName picks the
 * container (app or init); without one, self. An unset cpu or memory limit
 * reads as the node's allocatable, an unset request or ephemeral-storage
 * limit as 0; a divisor "0" means 1, as the API server stores an unset one. */
char *kube_resource_fieldref(const kube_node_facts_t *node, const podspec_t *pod,
                             const podspec_container_t *self, json_t *ref, err_t *err);

#endif
