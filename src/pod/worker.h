/* worker.h: one pod's lifecycle, driven by one worker.
 *
 * A worker owns a pod from admission to its end: volumes, init containers
 * in order (sidecars, restartPolicy: Always, kept running beside the app),
 * then the app containers side by side, each on a thread of its own, with
 * the pod's restartPolicy and the kubelet's CrashLoopBackOff; a stop
 * (deletion, activeDeadlineSeconds, eviction, node shutdown) ends every
 * container. Every change of state is published through
 * host->status_changed and read back as the Pod status JSON by
 * pod_worker_status_json. worker_priv.h describes the inside: which file
 * does what, the threads, the lock and the two state machines. */
#ifndef WASMLET_POD_WORKER_H
#define WASMLET_POD_WORKER_H

#include "kube/pod_spec.h"
#include "pod/host.h"
#include "pod/resize.h"

#include <jansson.h>
#include <stdbool.h>

/* Starts a worker for spec (taken over); the pod's files go under
 * <host->data_dir>/pods/<uid or namespace_name>/. resume, when not NULL, is
 * what pod_worker_resume_json returned in an earlier wasmlet (see
 * pod/state.h): containers that ended are not run again, restart counts go
 * on. */
pod_worker_t *pod_worker_start(const pod_host_t *host, podspec_t *spec, json_t *resume);

/* Asks the pod to end: every container is stopped (a WASI module cannot be
 * asked to stop politely, so it is stopped at once, exit code 137, like a
 * SIGKILL), and no container starts again. reason is the pod-level reason
 * ("DeadlineExceeded", "Evicted", or NULL for a deletion), which makes the
 * pod Failed. Returns at once; a pod that already finished keeps how it
 * ended. */
void pod_worker_stop(pod_worker_t *w, const char *reason, const char *message);

/* The kubelet's graceful node shutdown, as its node shutdown manager
 * reports it: reason Terminated, this message, and the condition
 * DisruptionTarget (True, reason TerminationByKubelet, the same message). */
#define POD_NODE_SHUTDOWN_REASON "Terminated"
#define POD_NODE_SHUTDOWN_MESSAGE "Pod was terminated in response to imminent node shutdown."
/* pod_worker_stop for a node shutdown: the above, on a pod not yet ended. */
void pod_worker_stop_for_node_shutdown(pod_worker_t *w);

/* A newer version of the pod (a MODIFIED watch event), taken over. The
 * fields the API server lets change on a running pod take effect:
 * activeDeadlineSeconds at once (a pod past the new deadline ends
 * DeadlineExceeded), a container's image by stopping that container
 * (Normal event Killing, "Container X definition changed, will be
 * restarted") and starting it from the new image (restartCount + 1);
 * labels, annotations and tolerations are kept (the downward API reads the
 * newest). A version with the same spec, labels and annotations (a status
 * write's echo) changes nothing. Returns at once: it never waits on a
 * module. An update that adds, removes or renames containers (which the
 * API server refuses) is ignored. */
void pod_worker_update(pod_worker_t *w, podspec_t *spec);

/* In-place resize (pod/resizing.c). Whether the newest spec asks for
 * resources other than the allocated ones (a resize to decide). */
bool pod_worker_resize_wanted(pod_worker_t *w);
/* The node's verdict on the newest spec's resources (pod/resize.h): when
 * it fits, they become the allocated ones and each running container
 * takes its own, live or by a restart as its resizePolicy says (Killing
 * event "Container X resize requires restart"); otherwise the pod shows
 * PodResizePending with the verdict's reason and message. NULL: it fits.
 * A spec that asks for the allocated resources clears PodResizePending.
 * Returns at once, and whether the pod's status changed: it does not
 * publish it (the caller holds the pod manager's lock), later changes (a
 * container taking its new limits) are published by the worker. */
bool pod_worker_resize(pod_worker_t *w, const pod_resize_verdict_t *verdict);
/* The pod's allocated requests as admission counts them (the app
 * containers' sum, or the largest init container's). */
void pod_worker_allocated_requests(pod_worker_t *w, int64_t *cpu, int64_t *memory);

/* Waits until the worker has finished (all containers ended, final status
 * published); timeout_ms < 0 waits forever. True when finished. */
bool pod_worker_wait(pod_worker_t *w, int64_t timeout_ms);
bool pod_worker_finished(pod_worker_t *w);

/* Frees a finished worker (waits for it first). */
void pod_worker_free(pod_worker_t *w);

/* The newest spec (pod_worker_update replaces it; a replaced spec stays
 * valid until pod_worker_free). */
const podspec_t *pod_worker_spec(const pod_worker_t *w);
/* The current phase: Pending, Running, Succeeded or Failed. */
const char *pod_worker_phase(pod_worker_t *w);
/* The pod's status object, as the API server's Pod.status. Reading it
 * changes nothing. */
json_t *pod_worker_status_json(pod_worker_t *w);
/* What a restarted wasmlet needs to resume the pod (container name ->
 * restartCount, done, exit code ...); pod/state.h saves and loads it. */
json_t *pod_worker_resume_json(pod_worker_t *w);

/* The network namespace the pod's sockets live in: *path gets a copy of
 * its path (the caller frees), or NULL when the pod uses the node's
 * network (hostNetwork, no sandbox wanted). -1 when the pod has a sandbox
 * of its own but none exists now (not yet made, or already destroyed). */
int pod_worker_netns(pod_worker_t *w, char **path, err_t *err);

/* --- the node's pod network (pod/sandbox.c) ------------------------------------------- */

void pod_net_init(pod_net_t *net, const net_config_t *cfg, bool skip_portless);
/* Releases the run dir's mount when no namespace is left in it. */
void pod_net_destroy(pod_net_t *net);
/* The ids (pod UIDs) of the sandboxes that must stay: a new array of new
 * strings, *n its length. Called with gc_lock held exclusively. */
typedef char **(*pod_net_live_fn)(void *ctx, size_t *n);
/* Destroys every sandbox on disk whose id live() does not return; how
 * many, or -1 (err: the first failure; the rest were still tried), or
 * POD_NET_GC_BUSY without waiting when pod threads are making or
 * destroying sandboxes right now (a burst of networked pod starts keeps
 * them at it for minutes; the caller tries again soon). */
#define POD_NET_GC_BUSY (-2)
int pod_net_gc(pod_net_t *net, pod_net_live_fn live, void *ctx, err_t *err);

/* --- the start trace (pod/trace.h) ----------------------------------------------------- */

/* Begins the trace of a new pod (not a resumed one): created at
 * created_wall (realtime ns, 0: unknown), delivered by the watch at
 * seen_wall (realtime) / seen_mono; its worker has just started. */
void pod_worker_trace_begin(pod_worker_t *w, int64_t created_wall, int64_t seen_wall,
                            int64_t seen_mono);
/* Whether the pod has had a Warning Event (a failure its status should
 * show at once). */
bool pod_worker_warned(pod_worker_t *w);
/* Whether the traced container's running state has been published, so
 * that a status read from now on carries it (read before the status). */
bool pod_worker_trace_running(pod_worker_t *w);
/* A status write that carried it was acknowledged: the status stage ends
 * (first call only); a trace that is whole then is emitted. */
void pod_worker_trace_acked(pod_worker_t *w);

/* Per-container summary for `wasmlet run` and metrics. */
typedef struct pod_container_summary {
    const char *name;
    bool init;
    int restart_count;
    int exit_code; /* -1 when it never ended */
    char reason[64];
    char message[256];
    int64_t run_ns;
} pod_container_summary_t;
/* Fills up to max summaries (init containers first); returns the count. */
size_t pod_worker_summaries(pod_worker_t *w, pod_container_summary_t *out, size_t max);

#endif
