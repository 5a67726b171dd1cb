/* cluster_host.h: the pod host of `wasmlet node` (cluster_host.c). */
#ifndef WASMLET_POD_CLUSTER_HOST_H
#define WASMLET_POD_CLUSTER_HOST_H

#include "image/image.h"
#include "kube/client.h"
#include "pod/events.h"
#include "pod/host.h"

typedef struct cluster_host cluster_host_t;

cluster_host_t *cluster_host_new(kube_client_t *c, image_store_t *images, pod_events_t *events,
                                 const char *node_name);
/* Fills host's callbacks (and ctx); status changes go to status_cb. The
 * caller sets the rest of host (runtime, directories, limits). */
void cluster_host_fill(cluster_host_t *ch, pod_host_t *host,
                       void (*status_cb)(void *ctx, pod_worker_t *w), void *status_ctx);
/* An Event about a pod object (for pods that have no worker). */
void cluster_host_event_for(cluster_host_t *ch, json_t *pod, const char *field_path,
                            const char *type, const char *reason, const char *message);
/* The handler of the RuntimeClass called name (cached): 0 with *handler
 * (free it), or -1 with err in the kubelet's words
 * (runtimeclass.node.k8s.io "x" not found, or why the lookup failed). */
int cluster_host_runtime_handler(cluster_host_t *ch, const char *name, char **handler, err_t *err);
/* A pod went: its cached service-account tokens go too, as the kubelet's
 * token manager drops a deleted pod's (a token is bound to its pod, and
 * one kept would pin heap long after the pod). */
void cluster_host_forget_pod(cluster_host_t *ch, const char *uid);
void cluster_host_free(cluster_host_t *ch);

#endif
