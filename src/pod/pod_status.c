/* pod_status.c: Pod.status and the pod's phase, rendered from a worker's
 * state (see worker_priv.h). Both functions only read: they are called
 * with w->lock held (from any thread that asks for the status) and change
 * nothing, so reading a status never moves a transition time. The public
 * wrappers (pod_worker_status_json, pod_worker_phase, pod_worker_summaries)
 * take the lock.
 *
 * What the kubelet would show, and how it maps here:
 *   - phase: the kubelet's getPhase over the app containers, with the
 *     worker's own verdict (init failure, deadline, mount, shutdown) first;
 *   - conditions PodReadyToStartContainers (volumes ready), Initialized,
 *     Ready and ContainersReady (every app container ready: running,
 *     started and passing its readiness probe; every sidecar running),
 *     PodScheduled, and DisruptionTarget after a graceful node shutdown;
 *   - podIP(s): the addresses of the pod's sandbox (first of each family,
 *     as the CNI result lists them), once it exists and after it is gone;
 *     none while a sandbox is still being made; the node's for a pod
 *     without one (hostNetwork, or skipped: see sandbox.c);
 *   - while the sandbox cannot be made, PodReadyToStartContainers says why
 *     (reason FailedCreatePodSandBox, the last error);
 *   - in-place resize (resizing.c): each container's allocatedResources
 *     (allocated requests) and resources (what its run has in force, or
 *     will have at its next start); PodResizePending (Infeasible or
 *     Deferred, with the kubelet's message) while the node cannot allocate
 *     what the spec asks; PodResizeInProgress while a running container
 *     has not taken its allocation yet, reason Error with the message when
 *     it was refused; each with its observedGeneration (the pod's
 *     generation when the pending resize was last tried, when the one in
 *     progress was allocated). */
#include "pod/worker_priv.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *pod_phase_locked(const pod_worker_t *w)
{
    lock_assert_held(&w->lock);
    if (w->failed) return "Failed";
    if (!w->t_initialized) return "Pending";
    size_t running = 0, waiting = 0, failed = 0;
    for (size_t i = 0; i < w->napps; i++) {
        const crun_t *c = &w->apps[i];
        if (c->lc != CLC_DONE) {
            if (c->state.kind == CSTATE_RUNNING || c->runs > 0)
                running++;
            else
                waiting++;
        } else if (c->state.kind != CSTATE_TERMINATED || c->state.exit_code != 0) {
            failed++;
        }
    }
    /* The kubelet's order: a container that never started keeps the pod
     * Pending even while another runs, so the phase never goes from
     * Running back to Pending when the running one ends first. */
    if (waiting) return "Pending";
    if (running) return "Running";
    return failed ? "Failed" : "Succeeded";
}

static json_t *time_json(int64_t ns)
{
    char buf[40];
    return json_string(time_format_rfc3339(buf, sizeof buf, ns));
}

static json_t *state_json(const cstate_t *s)
{
    json_t *inner = json_object();
    const char *key = "waiting";
    switch (s->kind) {
    case CSTATE_NONE:
        json_decref(inner);
        return json_object();
    case CSTATE_WAITING:
        if (s->reason[0]) json_object_set_new(inner, "reason", json_string(s->reason));
        if (s->message) json_object_set_new(inner, "message", json_string(s->message));
        break;
    case CSTATE_RUNNING:
        key = "running";
        json_object_set_new(inner, "startedAt", time_json(s->started_at));
        break;
    case CSTATE_TERMINATED:
        key = "terminated";
        json_object_set_new(inner, "exitCode", json_integer(s->exit_code));
        if (s->reason[0]) json_object_set_new(inner, "reason", json_string(s->reason));
        if (s->message) json_object_set_new(inner, "message", json_string(s->message));
        if (s->started_at) json_object_set_new(inner, "startedAt", time_json(s->started_at));
        if (s->finished_at) json_object_set_new(inner, "finishedAt", time_json(s->finished_at));
        if (s->container_id[0])
            json_object_set_new(inner, "containerID", json_string(s->container_id));
        break;
    }
    return json_pack("{s:o}", key, inner);
}

static json_t *container_status_json(const crun_t *c)
{
    bool running = c->state.kind == CSTATE_RUNNING;
    /* ready and started follow the probes (probes.c); without probes a
     * running container is both. */
    json_t *cs = json_pack("{s:s, s:o, s:b, s:i, s:s, s:s, s:b}", "name", c->spec->name, "state",
                           state_json(&c->state), "ready", crun_ready(c), "restartCount",
                           c->restart_count, "image", c->spec->image, "imageID", c->image_id,
                           "started", running && c->started);
    json_object_set_new(cs, "lastState", state_json(&c->last));
    const char *cid = c->state.container_id[0]            ? c->state.container_id
                      : c->last.kind == CSTATE_TERMINATED ? c->last.container_id
                                                          : "";
    if (cid[0]) json_object_set_new(cs, "containerID", json_string(cid));
    json_t *allocated = pod_resources_requests_json(&c->alloc);
    if (allocated) json_object_set_new(cs, "allocatedResources", allocated);
    json_t *resources = pod_resources_json(&c->actual);
    if (resources) json_object_set_new(cs, "resources", resources);
    return cs;
}

static json_t *condition(const char *type, bool status, int64_t at, const char *reason)
{
    json_t *c = json_pack("{s:s, s:s, s:n}", "type", type, "status", status ? "True" : "False",
                          "lastProbeTime");
    json_object_set_new(c, "lastTransitionTime", time_json(at));
    if (reason && !status) json_object_set_new(c, "reason", json_string(reason));
    return c;
}

json_t *pod_status_json_locked(const pod_worker_t *w)
{
    lock_assert_held(&w->lock);
    const char *phase = pod_phase_locked(w);
    bool finished = w->lc == PLC_FINISHED;
    int64_t t_ready = w->t_ready ? w->t_ready : w->start_time;
    bool completed = strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0;
    const char *not_ready = completed ? "PodCompleted" : "ContainersNotReady";

    json_t *conds = json_array();
    json_t *rts = condition("PodReadyToStartContainers", w->t_ready_to_start && !finished,
                            w->t_ready_to_start ? w->t_ready_to_start : w->start_time, NULL);
    if (!w->t_ready_to_start && w->sandbox_error[0]) {
        json_object_set_new(rts, "reason", json_string("FailedCreatePodSandBox"));
        json_object_set_new(rts, "message", json_string(w->sandbox_error));
    }
    json_array_append_new(conds, rts);
    json_array_append_new(conds,
                          condition("Initialized", w->t_initialized != 0,
                                    w->t_initialized ? w->t_initialized : w->start_time,
                                    completed ? "PodCompleted" : "ContainersNotInitialized"));
    json_array_append_new(conds, condition("Ready", w->ready, t_ready, not_ready));
    json_array_append_new(conds, condition("ContainersReady", w->ready, t_ready, not_ready));
    json_array_append_new(conds, condition("PodScheduled", true, w->start_time, NULL));
    if (w->t_disruption) {
        /* As the kubelet's node shutdown manager words it. */
        json_t *c = condition("DisruptionTarget", true, w->t_disruption, NULL);
        json_object_set_new(c, "reason", json_string("TerminationByKubelet"));
        json_object_set_new(c, "message", json_string(POD_NODE_SHUTDOWN_MESSAGE));
        json_array_append_new(conds, c);
    }

    if (w->resize_pending_reason[0]) {
        json_t *c = condition("PodResizePending", true, w->t_resize_pending, NULL);
        json_object_set_new(c, "reason", json_string(w->resize_pending_reason));
        json_object_set_new(c, "message", json_string(w->resize_pending_message));
        if (w->gen_resize_pending)
            json_object_set_new(c, "observedGeneration", json_integer(w->gen_resize_pending));
        json_array_append_new(conds, c);
    }
    if (pod_resize_in_progress_locked(w)) {
        json_t *c = condition("PodResizeInProgress", true,
                              w->t_resize_started ? w->t_resize_started : w->start_time, NULL);
        for (size_t i = 0; i < w->ninit + w->napps; i++) {
            const crun_t *cr = i < w->ninit ? &w->inits[i] : &w->apps[i - w->ninit];
            if (cr->state.kind != CSTATE_RUNNING || !cr->resize_error[0]) continue;
            json_object_set_new(c, "reason", json_string("Error"));
            json_object_set_new(c, "message", json_string(cr->resize_error));
            break;
        }
        if (w->gen_resize_started)
            json_object_set_new(c, "observedGeneration", json_integer(w->gen_resize_started));
        json_array_append_new(conds, c);
    }

    const char *ip = w->host.host_ip ? w->host.host_ip : "";
    json_t *status = json_pack("{s:s, s:o, s:o}", "phase", phase, "conditions", conds, "startTime",
                               time_json(w->start_time));
    if (ip[0]) {
        json_object_set_new(status, "hostIP", json_string(ip));
        json_object_set_new(status, "hostIPs", json_pack("[{s:s}]", "ip", ip));
    }
    if (w->sandbox_wanted && w->pod_ips) {
        json_t *ips = json_array();
        char *copy = xstrdup(w->pod_ips), *save = NULL;
        for (char *a = strtok_r(copy, ",", &save); a; a = strtok_r(NULL, ",", &save))
            json_array_append_new(ips, json_pack("{s:s}", "ip", a));
        json_object_set_new(
            status, "podIP",
            json_string(json_string_value(json_object_get(json_array_get(ips, 0), "ip"))));
        json_object_set_new(status, "podIPs", ips);
        free(copy);
    } else if (!w->sandbox_wanted && !w->sandbox_undecided && ip[0]) {
        json_object_set_new(status, "podIP", json_string(ip));
        json_object_set_new(status, "podIPs", json_pack("[{s:s}]", "ip", ip));
    }
    if (w->reason[0]) json_object_set_new(status, "reason", json_string(w->reason));
    if (w->message[0]) json_object_set_new(status, "message", json_string(w->message));
    if (w->ninit) {
        json_t *inits = json_array();
        for (size_t i = 0; i < w->ninit; i++)
            json_array_append_new(inits, container_status_json(&w->inits[i]));
        json_object_set_new(status, "initContainerStatuses", inits);
    }
    json_t *apps = json_array();
    for (size_t i = 0; i < w->napps; i++)
        json_array_append_new(apps, container_status_json(&w->apps[i]));
    json_object_set_new(status, "containerStatuses", apps);
    return status;
}

json_t *pod_worker_status_json(pod_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    json_t *status = pod_status_json_locked(w);
    pthread_mutex_unlock(&w->lock);
    return status;
}

const char *pod_worker_phase(pod_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    const char *phase = pod_phase_locked(w);
    pthread_mutex_unlock(&w->lock);
    return phase;
}

size_t pod_worker_summaries(pod_worker_t *w, pod_container_summary_t *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->ninit + w->napps && n < max; i++) {
        const crun_t *c = i < w->ninit ? &w->inits[i] : &w->apps[i - w->ninit];
        pod_container_summary_t *s = &out[n++];
        s->name = c->name;
        s->init = c->init;
        s->restart_count = c->restart_count;
        s->exit_code = c->state.kind == CSTATE_TERMINATED ? c->state.exit_code : -1;
        snprintf(s->reason, sizeof s->reason, "%s", c->state.reason);
        snprintf(s->message, sizeof s->message, "%s", c->state.message ? c->state.message : "");
        s->run_ns = c->state.finished_at && c->state.started_at
                        ? c->state.finished_at - c->state.started_at
                        : 0;
    }
    pthread_mutex_unlock(&w->lock);
    return n;
}
