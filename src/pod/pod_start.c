/* pod_start.c: starting a pod on this node.
 *
 * Owns: the facts a start needs from outside the table (the pod's
 * RuntimeClass and whether this node serves its handler, its resume state,
 * Node labels fresh enough to reject on), gathered without m->lock; the
 * admission (pod/admission.h) against the pods already admitted, and what
 * follows it: a rejection (phase Failed, the kubelet's reason, a Warning
 * Event), a pod WAITING for its sandbox (Pending, a FailedCreatePodSandBox
 * Event, retried every back-off period, as the kubelet's pod worker
 * retries a failed sync), or a worker started (RUNNING).
 *
 * Threads: the reflector (API pods), the static pods thread and the sync
 * thread (sandbox retries); m->lock is held for the decisions only. */
#include "pod/admission.h"
#include "pod/manager_priv.h"
#include "pod/state.h"
#include "kube/pod_spec.h"
#include "util/diag.h"
#include "util/json.h"
#include "util/sync.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Labels older than this are read again before a pod is rejected on them. */
#define LABELS_FRESH_NS (NS_PER_SEC)

/* Whether this node can make the pod's sandbox: a pod without a
 * RuntimeClass, or one whose class's handler is ours. */
static bool sandbox_check(pod_manager_t *m, json_t *pod, char *msg, size_t len)
{
    const char *cls = json_str_at(pod, "spec", "runtimeClassName");
    if (!cls || !*cls) return true;
    char *handler = NULL;
    err_t err;
    if (cluster_host_runtime_handler(m->ch, cls, &handler, &err) == -1) {
        snprintf(msg, len, "Failed to create pod sandbox: %s", err.msg);
        return false;
    }
    bool ok = strcmp(handler, m->runtime_handler) == 0;
    if (!ok)
        snprintf(msg, len,
                 "Failed to create pod sandbox: failed to get sandbox runtime: no runtime for "
                 "\"%s\" is configured",
                 handler);
    free(handler);
    return ok;
}

void start_facts_gather(pod_manager_t *m, json_t *pod, start_facts_t *f)
{
    memset(f, 0, sizeof *f);
    f->seen_wall = time_now_ns();
    f->seen_mono = time_mono_ns();
    f->sandbox_ok = sandbox_check(m, pod, f->sandbox_error, sizeof f->sandbox_error);
    const char *uid = json_str_at(pod, "metadata", "uid");
    if (uid) {
        char *dir = manager_pod_dir(m, uid);
        f->resume = pod_state_load(dir);
        free(dir);
    }
    /* A pod the labels as last read reject: read them again first, unless
     * they were read after the pod was created (creationTimestamp has 1 s
     * resolution, so after it plus a second), so that a label added with
     * kubectl label before the pod was created counts. */
    int64_t created = 0;
    const char *ct = json_str_at(pod, "metadata", "creationTimestamp");
    if (!ct || time_parse_rfc3339(ct, &created) == -1) created = time_now_ns();
    pthread_mutex_lock(&m->lock);
    bool stale = m->node_labels_wall < created + NS_PER_SEC ||
                 time_mono_ns() - m->node_labels_at > LABELS_FRESH_NS;
    bool matches = pod_admission_node_matches(pod, m->node_labels, m->node_name);
    pthread_mutex_unlock(&m->lock);
    if (!matches && stale) node_labels_refresh(m);
}

void start_facts_free(start_facts_t *f)
{
    json_decref(f->resume);
    f->resume = NULL;
}

/* When the pod reached this node's watch at the earliest: its binding
 * (the PodScheduled condition's time) or, without one, its creation.
 * Realtime ns, 1 s resolution; 0: unknown. */
static int64_t pod_created_wall(json_t *pod)
{
    int64_t created = 0, scheduled = 0;
    const char *ct = json_str_at(pod, "metadata", "creationTimestamp");
    if (!ct || time_parse_rfc3339(ct, &created) == -1) created = 0;
    size_t i;
    json_t *c;
    json_array_foreach(json_at(pod, "status", "conditions"), i, c)
    {
        const char *type = json_str_at(c, "type");
        const char *at = json_str_at(c, "lastTransitionTime");
        if (type && at && strcmp(type, "PodScheduled") == 0 &&
            time_parse_rfc3339(at, &scheduled) == -1)
            scheduled = 0;
    }
    return scheduled > created ? scheduled : created;
}

/* WAITING: the sandbox cannot be made; said with an Event, retried. */
static void wait_for_sandbox_locked(pod_manager_t *m, entry_t *e, const char *msg)
{
    lock_assert_held(&m->lock);
    cluster_host_event_for(m->ch, e->pod, NULL, "Warning", "FailedCreatePodSandBox", msg);
    if (!e->fixed_status) {
        e->fixed_status = status_pending_json(e->pod, m->host_ip, time_now_ns());
        e->dirty = true;
    }
    e->sandbox_retry_at = time_mono_ns() + m->host.backoff_initial_ms * NS_PER_MS;
}

/* Starts e's worker (e is new or WAITING); RUNNING afterwards. */
static void run_locked(pod_manager_t *m, entry_t *e, start_facts_t *f, bool is_new)
{
    lock_assert_held(&m->lock);
    podspec_t *spec = NULL;
    err_t err;
    json_decref(e->fixed_status);
    e->fixed_status = NULL;
    const char *why = "started";
    if (podspec_parse(e->pod, &spec, &err) == -1) {
        e->fixed_status = json_pack("{s:s, s:s, s:s}", "phase", "Failed", "reason",
                                    "InvalidPodSpec", "message", err.msg);
        why = "invalid spec";
    } else {
        e->worker = pod_worker_start(&m->host, spec, f ? f->resume : NULL);
        /* A new pod's start is traced; a resumed one's is no start. */
        if (f && !f->resume) {
            pod_worker_trace_begin(e->worker, e->is_static ? 0 : pod_created_wall(e->pod),
                                   f->seen_wall, f->seen_mono);
            e->first_write_at = time_mono_ns() + FIRST_STATUS_GRACE_NS;
        }
        m->stats.pods_started++;
        e->refresh_at = time_mono_ns() + REFRESH_INTERVAL_NS;
    }
    e->dirty = true;
    if (is_new)
        entry_born_locked(m, e, ENTRY_RUNNING, why);
    else
        entry_transition_locked(m, e, ENTRY_RUNNING, why);
}

pod_admission_node_t manager_admission_node_locked(const pod_manager_t *m, const entry_t *e)
{
    lock_assert_held(&m->lock);
    pod_admission_node_t node = {
        .name = m->node_name,
        .labels = m->node_labels,
        .labels_unknown = !m->node_labels,
        .allocatable_cpu = m->cfg.allocatable_cpu,
        .allocatable_memory = m->cfg.allocatable_memory,
        .max_pods = m->cfg.max_pods,
    };
    for (const entry_t *o = m->entries; o; o = o->next) {
        if (o == e || !entry_active(o)) continue;
        node.used_cpu += o->cpu;
        node.used_memory += o->memory;
        node.used_pods++;
    }
    return node;
}

void start_admit_locked(pod_manager_t *m, entry_t *e, start_facts_t *f)
{
    lock_assert_held(&m->lock);
    pod_admission_node_t node = manager_admission_node_locked(m, e);
    /* A pod found again is admitted with what it was allocated. */
    json_t *admitted =
        f && f->resume ? pod_state_allocated_pod(e->pod, f->resume) : json_incref(e->pod);
    pod_admission_requests(admitted, &e->cpu, &e->memory);
    pod_admission_t v;
    pod_admit(admitted, &node, &v);
    json_decref(admitted);
    if (!v.admit) {
        /* As the kubelet's rejectPod: the Event has the message, the
         * status says the pod was rejected. */
        m->stats.admission_rejected++;
        char *msg = xasprintf("%s%s", POD_ADMISSION_STATUS_PREFIX, v.message);
        e->fixed_status =
            json_pack("{s:s, s:s, s:s}", "phase", "Failed", "reason", v.reason, "message", msg);
        free(msg);
        e->dirty = true;
        cluster_host_event_for(m->ch, e->pod, NULL, "Warning", v.reason, v.message);
        entry_born_locked(m, e, ENTRY_RUNNING, v.reason);
        return;
    }
    if (f && !f->sandbox_ok) {
        entry_born_locked(m, e, ENTRY_WAITING, "its sandbox cannot be created yet");
        wait_for_sandbox_locked(m, e, f->sandbox_error);
        return;
    }
    run_locked(m, e, f, true);
}

void start_sandbox_retry(pod_manager_t *m, entry_t *e)
{
    json_t *pod = json_incref(e->pod);
    pthread_mutex_unlock(&m->lock);
    start_facts_t f;
    start_facts_gather(m, pod, &f);
    json_decref(pod);
    pthread_mutex_lock(&m->lock);
    if (e->state == ENTRY_WAITING && !m->shutting_down) {
        if (f.sandbox_ok)
            run_locked(m, e, &f, false);
        else
            wait_for_sandbox_locked(m, e, f.sandbox_error);
    }
    start_facts_free(&f);
}
