/* events.h: the kubelet's Events, posted to the API server off the
 * workers' threads. */
#ifndef WASMLET_POD_EVENTS_H
#define WASMLET_POD_EVENTS_H

#include "kube/client.h"

#include <jansson.h>

typedef struct pod_events pod_events_t;

pod_events_t *pod_events_start(kube_client_t *c, const char *node_name);
/* Queues an Event about the object ref ({kind, namespace, name, uid,
 * apiVersion[, fieldPath]}; borrowed). Never blocks on the network. */
void pod_events_post(pod_events_t *ev, json_t *ref, const char *type, const char *reason,
                     const char *message);
/* Sends what is queued (up to timeout_ms) and stops. */
void pod_events_stop(pod_events_t *ev, long timeout_ms);

#endif
