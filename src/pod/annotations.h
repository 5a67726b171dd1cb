/* annotations.h: the per-pod knobs of wasmlet, read from the pod's
 * annotations under the prefix `wasmlet.dev/` (the README's "Annotations"
 * table lists them all).
 *
 * Today: a component's network (wasm/wasmrt.h, wasmrt_net_t):
 *   wasmlet.dev/network             "none": no sockets, name lookup or HTTP
 *                                   ("default" or absent: the default network)
 *   wasmlet.dev/allow-local-network "true": lift the deny of loopback,
 *                                   link-local and the node's addresses
 *   wasmlet.dev/http-allowed-hosts  "a.example,*.b.example": the only hosts
 *                                   outgoing HTTP may reach ("" allows none)
 *   wasmlet.dev/http-ca-file        a PEM file inside one of the container's
 *                                   mounts that HTTPS trusts too
 * and how a wasi:http component is served (wasmrt_http_t):
 *   wasmlet.dev/http-max-in-flight  "256": requests in flight at once, per
 *                                   container; past it the answer is 503
 *   wasmlet.dev/http-request-timeout "60s": a request's instance ends then
 *   wasmlet.dev/http-access-log     "false": no access-log line per request
 * and each container's descriptor cap:
 *   wasmlet.dev/max-open-files      "N" (1 to 1048576): host descriptors a
 *                                   container may hold (the node's
 *                                   --max-open-files when absent) */
#ifndef WASMLET_POD_ANNOTATIONS_H
#define WASMLET_POD_ANNOTATIONS_H

#include "kube/pod_spec.h"
#include "util/err.h"
#include "util/strvec.h"
#include "wasm/wasmrt.h"

#define POD_ANNOTATION_PREFIX "wasmlet.dev/"

/* A container's network with the storage its pointers point into. */
typedef struct pod_net_policy {
    wasmrt_net_t net;
    strvec_t node_addrs, hosts;
    char *ca_file; /* host path */
} pod_net_policy_t;

/* Fills out from the pod's annotations; the container's mounts locate the
 * CA file, and host_ip joins the node's addresses (NULL: none). Errors name
 * the annotation and say what it takes. pod_net_policy_free in every case. */
int pod_net_policy_from_annotations(const podspec_t *spec, const wasmrt_mount_t *mounts,
                                    size_t nmounts, const char *host_ip, pod_net_policy_t *out,
                                    err_t *err);
void pod_net_policy_free(pod_net_policy_t *n);

/* How a container that is a wasi:http component is served, with the
 * storage its pointers point into. */
typedef struct pod_http_serving {
    wasmrt_http_t http;
    uint16_t *ports;
} pod_http_serving_t;

/* Fills out: the TCP containerPorts the container declares (none: 8080, as
 * runwasi serves) and the annotations above. Errors name the annotation and
 * say what it takes. pod_http_serving_free in every case. */
int pod_http_serving_from_spec(const podspec_t *spec, const podspec_container_t *c,
                               pod_http_serving_t *out, err_t *err);
void pod_http_serving_free(pod_http_serving_t *h);
/* The pod's wasmlet.dev/max-open-files, or node_default when absent (0 or
 * less: no cap). Errors name the annotation and say what it takes. */
int pod_max_open_files(const podspec_t *spec, int64_t node_default, size_t *out, err_t *err);

#endif
