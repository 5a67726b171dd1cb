/* objcache.h: the API objects a node's pods reference (ConfigMaps, Secrets,
 * Services), kept fresh by watches so that a pod start reads them from
 * memory instead of asking the API server.
 *
 * Scoped as the kubelet scopes them and as the Node authorizer allows: one
 * watch per ConfigMap or Secret (a list+watch of its namespace's collection
 * with fieldSelector metadata.name=<name>), and one cluster-wide watch of
 * Services for service-link environment variables. A watch starts at the
 * first read of its object; reads made while its first list is in flight
 * wait for it (so a burst of pods costs one LIST, not one GET each); later
 * reads are answered from memory without a request. A watch nobody has read
 * for idle_ttl_s stops (a running pod's volume refresh reads its objects
 * every minute, which keeps theirs alive).
 *
 * Freshness: an object is as fresh as its watch (changes arrive within
 * about a second). When a watch breaks, the reflector resumes or relists
 * with back-off and reads keep getting the last object seen, as the
 * kubelet's watch-based manager does (the first retry after 20 ms, then
 * doubling). A read whose watch has never listed
 * successfully (the Node authorizer may not yet know a pod that was just
 * bound, or the object's list is refused) falls back to a direct GET, whose
 * answer is returned as is: 404 gives "does not exist", other failures the
 * API server's error.
 *
 * Threads: one detached thread per watch (kube_reflector_run), plus the
 * callers. One mutex guards the table and every entry; reads return deep
 * copies, so nothing a caller holds is shared with a watch thread.
 * Lookups are a linear scan of the table: a node watches a few objects per
 * namespace, and thousands of entries cost microseconds per read. */
#ifndef WASMLET_KUBE_OBJCACHE_H
#define WASMLET_KUBE_OBJCACHE_H

#include "kube/client.h"
#include "util/err.h"

#include <jansson.h>
#include <stdbool.h>

typedef struct kube_objcache kube_objcache_t;

typedef enum kube_obj_kind {
    KUBE_OBJ_CONFIGMAP,
    KUBE_OBJ_SECRET,
} kube_obj_kind_t;

typedef struct kube_objcache_opts {
    int idle_ttl_s;      /* a watch unread this long stops; 0: 600 */
    int first_list_ms;   /* how long a read waits for a new watch's first list; 0: 10000 */
    int watch_timeout_s; /* each watch request's timeoutSeconds base; 0: 300 */
    long backoff_max_ms; /* reflector back-off cap; 0: 30000 */
} kube_objcache_opts_t;

/* Counters, for /metrics and tests. */
typedef struct kube_objcache_stats {
    unsigned long hits;      /* reads answered from a watch, no request */
    unsigned long fallbacks; /* reads answered by a direct GET */
    unsigned long watches;   /* watches running now */
    unsigned long started;   /* watches ever started */
} kube_objcache_stats_t;

/* opts may be NULL. The client must outlive the cache. */
kube_objcache_t *kube_objcache_new(kube_client_t *c, const kube_objcache_opts_t *opts);
/* Stops every watch and waits (about a second) for their threads. */
void kube_objcache_free(kube_objcache_t *oc);

/* The object kind ns/name: *out is a deep copy the caller owns, or NULL
 * when the object does not exist. Returns -1 with err only when the object
 * is not known to the cache and the direct GET fails with something other
 * than 404. */
int kube_objcache_get(kube_objcache_t *oc, kube_obj_kind_t kind, const char *ns, const char *name,
                      json_t **out, err_t *err);

/* Starts the watch of kind ns/name if it has none, without waiting for
 * it: a pod about to read the object lets its first list run beside its
 * other start work (a TokenRequest, a sandbox). Counts as a read for the
 * idle timeout. */
void kube_objcache_warm(kube_objcache_t *oc, kube_obj_kind_t kind, const char *ns,
                        const char *name);

/* The Services of namespace ns (a new JSON array of Service objects the
 * caller owns), from the cluster-wide watch; a direct LIST of the namespace
 * while that watch has not listed yet. Returns -1 with err when that LIST
 * fails. */
int kube_objcache_services(kube_objcache_t *oc, const char *ns, json_t **out, err_t *err);

void kube_objcache_stats(kube_objcache_t *oc, kube_objcache_stats_t *out);

#endif
