/* static_pods.h: pods from manifest files (--pod-manifest-path). */
#ifndef WASMLET_POD_STATIC_PODS_H
#define WASMLET_POD_STATIC_PODS_H

#include "pod/manager.h"

typedef struct static_pods static_pods_t;

/* Watches dir (re-read every 5 s) and keeps the manager's static pods in
 * step with its files. */
static_pods_t *static_pods_start(pod_manager_t *m, const char *dir, const char *node_name);
void static_pods_stop(static_pods_t *sp);

/* Reads the pods of dir as the manager wants them (for tests): names get
 * "-<node>" appended, the namespace defaults to "default", the uid is
 * derived from the file's content and the node, and the config
 * annotations are set. */
json_t *static_pods_read(const char *dir, const char *node_name);

#endif
