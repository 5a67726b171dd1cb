/* probes.c: a container run's probes and lifecycle hooks, wired to the
 * worker as the kubelet wires them (see worker_priv.h and probe/probe.h).
 *
 *   - postStart runs once the run has started; until it has passed, no
 *     probe runs. Its failure ends the run (Warning FailedPostStartHook,
 *     then Normal Killing "FailedPostStartHook"), which then restarts as
 *     the restart policy and back-off say.
 *   - startupProbe holds liveness and readiness back until it passes and
 *     sets containerStatuses[].started; readinessProbe drives
 *     containerStatuses[].ready and with it the pod's Ready and
 *     ContainersReady conditions. Without them a running container is
 *     started and ready.
 *   - Every attempt that fails is a Warning Unhealthy event with the
 *     probe's output ("Liveness probe failed: ..."). A liveness (or
 *     startup) probe past its failureThreshold ends the run: Normal Killing
 *     "Container X failed liveness probe, will be restarted", the preStop
 *     hook within the probe's terminationGracePeriodSeconds (else the
 *     pod's), then the stop; the container restarts as its policy and
 *     back-off say (restartCount + 1).
 *   - preStop runs before any stop of a running app container (deletion,
 *     deadline, eviction, a probe's kill) and is given the grace period;
 *     the stop follows as soon as it ends (Warning FailedPreStopHook when
 *     it failed). A WebAssembly module cannot be asked to stop politely,
 *     so for it the grace period is the preStop's time and nothing more; a
 *     served wasi:http component drains its requests in flight in what is
 *     left of it (wasmrt_stop_drain_by).
 *
 * The probes and hooks run on the node's probe queue (probe_sched_shared);
 * their callbacks take w->lock briefly and call the host without it. The
 * container thread stops them (crun_run_end) without the lock, after
 * clearing run_live under it, so a late callback acts on nothing.
 *
 * The target is the pod's IP, reached from inside the pod's network
 * namespace (so no route from the node to the pod network is assumed), or
 * the node's IP (host.host_ip) for a pod on the host network
 * (probe_target). */
#include "pod/worker_priv.h"
#include "util/sync.h"
#include "util/time.h"

#include <stdio.h>
#include <string.h>

/* buf (len bytes) holds the IP of the returned target; the probe set and
 * hooks copy it. */
static probe_target_t probe_target_locked(const pod_worker_t *w, char *buf, size_t len)
{
    lock_assert_held(&w->lock);
    if (w->netns && w->pod_ips) {
        snprintf(buf, len, "%.*s", (int)strcspn(w->pod_ips, ","), w->pod_ips);
        return (probe_target_t){.pod_ip = buf, .netns = w->netns};
    }
    return (probe_target_t){.pod_ip = w->host.host_ip, .netns = NULL};
}

/* The grace period of the pod's stop: the deletion's, else the spec's. */
static int64_t pod_grace_locked(const pod_worker_t *w)
{
    lock_assert_held(&w->lock);
    return w->deletion_grace >= 0 ? w->deletion_grace
                                  : worker_spec_now(w)->termination_grace_period;
}

/* --- probes -------------------------------------------------------------------------- */

static void on_attempt(void *ctx, probe_kind_t kind, probe_result_t r, const char *output)
{
    crun_t *c = ctx;
    if (r == PROBE_WARNING)
        worker_event(c->w, c, "Warning", "ProbeWarning", "%s probe warning: %s",
                     probe_kind_name(kind), output);
    else
        worker_event(c->w, c, "Warning", "Unhealthy", "%s probe failed: %s", probe_kind_name(kind),
                     output);
}

static void on_changed(void *ctx, probe_kind_t kind, probe_result_t r)
{
    crun_t *c = ctx;
    pod_worker_t *w = c->w;
    bool publish = false, kill = false, restart = false;
    pthread_mutex_lock(&w->lock);
    if (c->run_live) {
        if (kind == PROBE_READINESS) {
            c->probe_ready = r == PROBE_SUCCESS;
            publish = true;
        } else if (kind == PROBE_STARTUP && r == PROBE_SUCCESS) {
            c->started = true;
            publish = true;
        } else if (r == PROBE_FAILURE && !c->kill_reason && w->lc < PLC_STOPPING) {
            const podspec_probe_t *p =
                kind == PROBE_LIVENESS ? c->spec->liveness_probe : c->spec->startup_probe;
            c->kill_reason = kind == PROBE_LIVENESS ? "liveness" : "startup";
            restart = container_restarts(w, c, WASMRT_EXIT_KILLED);
            crun_stop_locked(
                w, c, p && p->termination_grace >= 0 ? p->termination_grace : pod_grace_locked(w));
            kill = true;
        }
        if (publish) pod_ready_refresh_locked(w);
    }
    pthread_mutex_unlock(&w->lock);
    if (kill)
        worker_event(w, c, "Normal", "Killing", "Container %s failed %s probe%s", c->name,
                     kind == PROBE_LIVENESS ? "liveness" : "startup",
                     restart ? ", will be restarted" : "");
    if (publish) worker_publish(w);
}

static void start_probes_locked(pod_worker_t *w, crun_t *c)
{
    lock_assert_held(&w->lock);
    const podspec_container_t *cs = c->spec;
    if (!cs->liveness_probe && !cs->readiness_probe && !cs->startup_probe) return;
    const podspec_t *spec = worker_spec_now(w);
    char ip[64];
    probe_set_spec_t ps = {
        .probes = {[PROBE_LIVENESS] = cs->liveness_probe,
                   [PROBE_READINESS] = cs->readiness_probe,
                   [PROBE_STARTUP] = cs->startup_probe},
        .target = probe_target_locked(w, ip, sizeof ip),
        .started_mono = time_mono_ns(),
        .ns = spec->namespace,
        .pod = spec->name,
        .uid = spec->uid[0] ? spec->uid : spec->name,
        .container = c->name,
    };
    probe_set_ops_t ops = {.ctx = c, .attempt = on_attempt, .changed = on_changed};
    c->probes = probe_set_start(probe_sched_shared(), &ps, &ops);
}

/* --- hooks --------------------------------------------------------------------------- */

static void post_start_done(void *ctx, bool ok, const char *message)
{
    crun_t *c = ctx;
    pod_worker_t *w = c->w;
    bool kill = false;
    pthread_mutex_lock(&w->lock);
    if (c->run_live && !c->kill_reason) {
        if (ok) {
            start_probes_locked(w, c);
        } else {
            c->kill_reason = "FailedPostStartHook";
            crun_stop_locked(w, c, pod_grace_locked(w));
            kill = true;
        }
    }
    pthread_mutex_unlock(&w->lock);
    if (kill) {
        worker_event(w, c, "Warning", "FailedPostStartHook", "PostStartHook failed: %s", message);
        worker_event(w, c, "Normal", "Killing", "FailedPostStartHook");
    }
}

static void pre_stop_done(void *ctx, bool ok, const char *message)
{
    crun_t *c = ctx;
    pod_worker_t *w = c->w;
    pthread_mutex_lock(&w->lock);
    bool live = c->run_live;
    if (live) wasmrt_stop_request(c->stop);
    pthread_mutex_unlock(&w->lock);
    if (live && !ok)
        worker_event(w, c, "Warning", "FailedPreStopHook", "PreStopHook failed: %s", message);
}

/* --- the run --------------------------------------------------------------------------- */

void crun_run_begin_locked(pod_worker_t *w, crun_t *c, bool hooks_later)
{
    lock_assert_held(&w->lock);
    c->run_live = true;
    c->kill_reason = NULL;
    /* Probes and hooks are the app containers' (sidecars: not yet). */
    c->started = c->init || !c->spec->startup_probe;
    c->probe_ready = c->init || !c->spec->readiness_probe;
    if (!hooks_later) crun_hooks_start_locked(w, c);
}

void crun_hooks_start_locked(pod_worker_t *w, crun_t *c)
{
    lock_assert_held(&w->lock);
    if (c->init || !c->run_live || c->post_start || c->probes) return;
    if (c->spec->post_start) {
        char ip[64];
        probe_target_t t = probe_target_locked(w, ip, sizeof ip);
        int64_t grace = pod_grace_locked(w);
        c->post_start = probe_hook_start(probe_sched_shared(), c->spec->post_start, &t,
                                         (grace > 0 ? grace : 1) * 1000, post_start_done, c);
    } else {
        start_probes_locked(w, c);
    }
}

bool crun_run_end(pod_worker_t *w, crun_t *c)
{
    pthread_mutex_lock(&w->lock);
    c->run_live = false;
    probe_set_t *set = c->probes;
    probe_hook_t *post = c->post_start, *pre = c->pre_stop;
    c->probes = NULL;
    c->post_start = c->pre_stop = NULL;
    bool killed = c->kill_reason != NULL && w->lc < PLC_STOPPING && !c->restart_requested;
    if (killed) {
        /* The stop was this run's alone: the next run gets a fresh one. */
        wasmrt_stop_free(c->stop);
        c->stop = wasmrt_stop_new();
    }
    c->kill_reason = NULL;
    pthread_mutex_unlock(&w->lock);
    probe_set_stop(set);
    probe_hook_cancel(post);
    probe_hook_cancel(pre);
    return killed;
}

void crun_stop_locked(pod_worker_t *w, crun_t *c, int64_t grace_s)
{
    lock_assert_held(&w->lock);
    if (c->pre_stop) return; /* a preStop runs: the stop follows it */
    /* The grace period covers the preStop hook and then the drain of a
     * served component's requests, as it covers preStop and SIGTERM. */
    wasmrt_stop_drain_by(c->stop, time_mono_ns() + (grace_s > 0 ? grace_s : 0) * NS_PER_SEC);
    if (!c->init && c->lc == CLC_RUNNING && c->run_live && c->spec->pre_stop && grace_s > 0) {
        char ip[64];
        probe_target_t t = probe_target_locked(w, ip, sizeof ip);
        c->pre_stop = probe_hook_start(probe_sched_shared(), c->spec->pre_stop, &t, grace_s * 1000,
                                       pre_stop_done, c);
        return;
    }
    wasmrt_stop_request(c->stop);
}
