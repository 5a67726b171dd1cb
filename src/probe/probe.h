/* probe.h: container probes and lifecycle hooks, as the kubelet runs them.
 *
 * Three layers, lowest first:
 *
 *   action.c, http.c, tcp.c  one attempt of an action (httpGet, tcpSocket,
 *                            grpc, exec) against a target: the pod's IP,
 *                            optionally inside a network namespace
 *   sched.c                  the node's timer queue: a small fixed set of
 *                            threads runs every due probe and hook of the
 *                            node; nothing is kept per idle pod but a heap
 *                            entry
 *   set.c, hook.c            a container's probes (startup gating,
 *                            thresholds, on-hold after a liveness failure)
 *                            and one lifecycle hook run, each reporting
 *                            through callbacks; prober_probe_total
 *
 * Callbacks run on a scheduler thread with no lock of probe/ held; a
 * callback may start new sets and hooks but must not stop or cancel one
 * (that waits for callbacks to end). probe_set_stop and probe_hook_cancel
 * return once no callback of theirs runs or will run. */
#ifndef WASMLET_PROBE_PROBE_H
#define WASMLET_PROBE_PROBE_H

#include "kube/pod_spec.h"
#include "util/strbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- one attempt (action.c) -------------------------------------------------------- */

typedef enum probe_result {
    PROBE_UNKNOWN,
    PROBE_SUCCESS,
    PROBE_WARNING, /* a success the kubelet warns about (a redirect not followed) */
    PROBE_FAILURE
} probe_result_t;

/* Where an action goes: its host defaults to pod_ip; netns, when not NULL,
 * is the network namespace (a path, see net/net.h) the sockets are opened
 * in. */
typedef struct probe_target {
    const char *pod_ip;
    const char *netns;
} probe_target_t;

#define PROBE_OUTPUT_MAX 1024

/* The kubelet's probe User-Agent: "kube-probe/<major>.<minor>". */
#define PROBE_USER_AGENT "kube-probe/1.37"

/* Runs one attempt of a within timeout_ms; output gets what the kubelet's
 * prober would say (empty on a plain success). Never blocks longer than
 * the timeout (plus name resolution of an explicit host). A sleep action
 * is not an attempt (hook.c times it): it fails here. */
probe_result_t probe_attempt(const podspec_action_t *a, const probe_target_t *t, int64_t timeout_ms,
                             char *output, size_t cap);

/* The kubelet's lifecycle hook User-Agent. */
#define PROBE_HOOK_USER_AGENT "kube-lifecycle/1.37"

/* The two kinds of action probe_attempt does over the network (http.c,
 * tcp.c), with the address already chosen. *status gets the last HTTP
 * status received (0: no response). */
probe_result_t probe_http_get(const podspec_action_t *a, const char *host, const char *netns,
                              int64_t timeout_ms, const char *user_agent, long *status,
                              char *output, size_t cap);
probe_result_t probe_tcp_connect(const char *host, int port, const char *netns, int64_t timeout_ms,
                                 char *output, size_t cap);

/* --- the node's timer queue (sched.c) ------------------------------------------------ */

typedef struct probe_sched probe_sched_t;

/* A timer queue served by nthreads threads (started at once). */
probe_sched_t *probe_sched_new(int nthreads);
/* Stops the threads; every set and hook must be gone. */
void probe_sched_free(probe_sched_t *s);
/* The process-wide queue (PROBE_SCHED_THREADS threads), made on first use,
 * so a node without probes has no probe thread. */
#define PROBE_SCHED_THREADS 4
probe_sched_t *probe_sched_shared(void);

/* --- a container's probes (set.c) ---------------------------------------------------- */

typedef enum probe_kind {
    PROBE_LIVENESS,
    PROBE_READINESS,
    PROBE_STARTUP,
    PROBE_KINDS
} probe_kind_t;

/* "Liveness", "Readiness", "Startup" (the kubelet's probe_type label and
 * the start of its event messages). */
const char *probe_kind_name(probe_kind_t kind);

/* The kubelet's threshold logic for one probe: the result it reports
 * changes only after failureThreshold failures or successThreshold
 * successes in a row; a liveness or startup probe that failed is held
 * (not run again) until the container restarts. */
typedef struct probe_state {
    probe_result_t current; /* what the kubelet reports: see probe_state_init */
    probe_result_t last;    /* the last attempt's (SUCCESS or FAILURE) */
    int64_t run;            /* attempts in a row with that result */
    bool on_hold;
} probe_state_t;

/* Initial results: liveness Success, readiness Failure, startup Unknown. */
void probe_state_init(probe_state_t *st, probe_kind_t kind);
/* Feeds one attempt (a WARNING counts as a success); true when current
 * changed. */
bool probe_state_feed(probe_state_t *st, probe_kind_t kind, const podspec_probe_t *p,
                      probe_result_t attempt);

typedef struct probe_set_ops {
    void *ctx;
    /* An attempt that was not a plain success (FAILURE, WARNING), with
     * its output: the Unhealthy / ProbeWarning event. */
    void (*attempt)(void *ctx, probe_kind_t kind, probe_result_t r, const char *output);
    /* A probe's reported result changed (after its thresholds). */
    void (*changed)(void *ctx, probe_kind_t kind, probe_result_t r);
} probe_set_ops_t;

typedef struct probe_set_spec {
    const podspec_probe_t *probes[PROBE_KINDS]; /* NULL: none of that kind */
    probe_target_t target;                      /* strings copied */
    int64_t started_mono; /* the container's start (initialDelaySeconds counts from it) */
    /* How long one second of the probes' fields lasts, in ms; 0: 1000
     * (tests shorten it). */
    int64_t unit_ms;
    /* prober_probe_total labels (copied); NULL: not counted */
    const char *ns, *pod, *uid, *container;
} probe_set_spec_t;

typedef struct probe_set probe_set_t;

/* Starts a container's probes on s: the startup probe (if any) first; once
 * it succeeds, liveness and readiness. The spec's probes must outlive the
 * set. */
probe_set_t *probe_set_start(probe_sched_t *s, const probe_set_spec_t *spec,
                             const probe_set_ops_t *ops);
/* Stops and frees it; when it returns no callback of it runs or will run.
 * Never from one of its own callbacks. NULL is fine. */
void probe_set_stop(probe_set_t *set);

/* --- a lifecycle hook (hook.c) --------------------------------------------------------- */

/* ok, or the reason it failed (as the kubelet's message says it). */
typedef void (*probe_hook_done_fn)(void *ctx, bool ok, const char *message);

typedef struct probe_hook probe_hook_t;

/* Runs a postStart or preStop handler on s, giving it at most timeout_ms
 * (a sleep ends at the timeout, successfully, as the kubelet's does when
 * the grace period ends first), then calls done once. httpGet: a GET as a
 * probe's, which passes on any HTTP response (the kubelet's hooks look at
 * no status) and fails on no answer; sleep: a timer, no thread held;
 * tcpSocket, grpc, exec: fail at once (the kubelet runs no tcpSocket hook;
 * a WebAssembly container has nothing to exec in). */
probe_hook_t *probe_hook_start(probe_sched_t *s, const podspec_action_t *a, const probe_target_t *t,
                               int64_t timeout_ms, probe_hook_done_fn done, void *ctx);
/* Cancels (if not done) and frees it; when it returns, done runs no more.
 * Never from its own callback. NULL is fine. */
void probe_hook_cancel(probe_hook_t *h);

/* --- metrics (set.c) --------------------------------------------------------------------- */

/* prober_probe_total{probe_type,result,container,pod,namespace,pod_uid}. */
void probe_metrics_render(strbuf_t *sb);
/* Forgets the series of a pod (its uid) once it is gone. */
void probe_metrics_forget(const char *uid);

#endif
