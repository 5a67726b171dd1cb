/* resizing.c: in-place resize inside a pod worker (see worker.h for the
 * API, worker_priv.h for the fields, resize.h for the decisions).
 *
 * Each container keeps two sets of resources: allocated (what the node
 * admitted for it: its allocatedResources) and actual (what its current
 * run has in force: its status's resources). A resize the pod manager
 * found to fit becomes the allocation of every container whose resources
 * changed; a running one then either takes the new limits live (the CPU
 * quota and the memory cap of its store, through wasmrt_resize on its
 * stop) or, when the resizePolicy of a resource that changed says
 * RestartContainer, is stopped and started again at once (restartCount +
 * 1) with them, as an image change restarts it. A container not running
 * takes them at its next start. The run tells the worker on its own
 * thread when it took a live resize (crun_resized): actual becomes the
 * allocation, or, for a memory limit below what the module already holds
 * (linear memory never shrinks), the refusal is kept and the pod shows
 * PodResizeInProgress with reason Error and the kubelet's message.
 *
 * Threads and locking: pod_worker_resize runs on the manager's thread with
 * the manager's lock held, so it does not publish (the manager marks the
 * pod's status itself); crun_resized runs on the container's thread and
 * publishes after releasing w->lock. Neither waits on a module. */
#include "pod/worker.h"
#include "pod/worker_priv.h"
#include "util/diag.h"
#include "util/json.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <string.h>

uint64_t crun_memory_limit(const pod_worker_t *w, const crun_t *c)
{
    /* Without limits.memory a container may use what the node can give
     * (allocatable), as a cgroup under the node's would. */
    int64_t m = c->alloc.v[POD_RES_MEMORY_LIMIT];
    return (uint64_t)(m > 0 ? m : w->host.node_allocatable_memory);
}

static crun_t *crun_at(pod_worker_t *w, size_t i)
{
    return i < w->ninit ? &w->inits[i] : &w->apps[i - w->ninit];
}

/* What the newest spec asks for container i (inits first). */
static void desired_of(const pod_worker_t *w, const podspec_t *spec, size_t i, pod_resources_t *out)
{
    const podspec_container_t *cs =
        i < w->ninit ? &spec->init_containers[i] : &spec->containers[i - w->ninit];
    pod_resources_of(cs, out);
}

static bool resize_wanted_locked(const pod_worker_t *w)
{
    lock_assert_held(&w->lock);
    if (w->lc >= PLC_STOPPING) return false;
    const podspec_t *spec = worker_spec_now(w);
    for (size_t i = 0; i < w->ninit + w->napps; i++) {
        pod_resources_t d;
        desired_of(w, spec, i, &d);
        if (!pod_resources_equal(&d, &crun_at((pod_worker_t *)w, i)->alloc)) return true;
    }
    return false;
}

bool pod_worker_resize_wanted(pod_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    bool wanted = resize_wanted_locked(w);
    pthread_mutex_unlock(&w->lock);
    return wanted;
}

/* The newest spec's metadata.generation (0 when it has none). */
static int64_t generation_locked(const pod_worker_t *w)
{
    lock_assert_held(&w->lock);
    return json_int_at(worker_spec_now(w)->raw, 0, "metadata", "generation");
}

/* PodResizePending; true when it changed. */
static bool set_pending_locked(pod_worker_t *w, const char *reason, const char *message)
{
    lock_assert_held(&w->lock);
    int64_t gen = generation_locked(w);
    if (strcmp(w->resize_pending_reason, reason) == 0 &&
        strcmp(w->resize_pending_message, message) == 0 && w->gen_resize_pending == gen)
        return false;
    w->gen_resize_pending = gen;
    if (strcmp(w->resize_pending_reason, reason) != 0) w->t_resize_pending = time_now_ns();
    snprintf(w->resize_pending_reason, sizeof w->resize_pending_reason, "%s", reason);
    snprintf(w->resize_pending_message, sizeof w->resize_pending_message, "%s", message);
    return true;
}

static bool clear_pending_locked(pod_worker_t *w)
{
    lock_assert_held(&w->lock);
    if (!w->resize_pending_reason[0]) return false;
    w->resize_pending_reason[0] = '\0';
    w->resize_pending_message[0] = '\0';
    w->t_resize_pending = 0;
    return true;
}

/* Allocates d to c and has its run (if any) take it. True when c must
 * restart for it (the caller sends the Killing event). */
static bool allocate_locked(pod_worker_t *w, crun_t *c, const pod_resources_t *d)
{
    lock_assert_held(&w->lock);
    c->alloc = *d;
    c->resize_error[0] = '\0';
    if (c->lc != CLC_RUNNING || c->restart_requested) {
        /* Taken at its next start. */
        c->actual = c->alloc;
        c->resizing = false;
        return false;
    }
    switch (pod_resize_action(&c->actual, &c->alloc, c->spec->resize_restarts_cpu,
                              c->spec->resize_restarts_memory)) {
    case POD_RESIZE_NOTHING:
        c->resizing = false;
        return false;
    case POD_RESIZE_RESTART:
        c->restart_requested = true;
        wasmrt_stop_request(c->stop);
        return true;
    case POD_RESIZE_LIVE:
        break;
    }
    if (!pod_resources_limits_differ(&c->actual, &c->alloc)) {
        /* Requests only: nothing the module has in force changes. */
        c->actual = c->alloc;
        c->resizing = false;
        return false;
    }
    c->resizing = true;
    c->resize_asked = true;
    wasmrt_resize(c->stop, crun_memory_limit(w, c), (uint32_t)c->alloc.v[POD_RES_CPU_LIMIT]);
    return false;
}

bool pod_worker_resize(pod_worker_t *w, const pod_resize_verdict_t *verdict)
{
    size_t n = w->ninit + w->napps;
    crun_t **restarted = xcalloc(n + 1, sizeof *restarted);
    size_t nrestarted = 0;
    bool changed;
    pthread_mutex_lock(&w->lock);
    if (!resize_wanted_locked(w)) {
        changed = clear_pending_locked(w);
    } else if (verdict && verdict->fit != POD_RESIZE_FITS) {
        changed = set_pending_locked(w, verdict->reason, verdict->message);
    } else {
        clear_pending_locked(w);
        changed = true;
        w->t_resize_started = time_now_ns();
        w->gen_resize_started = generation_locked(w);
        const podspec_t *spec = worker_spec_now(w);
        for (size_t i = 0; i < n; i++) {
            crun_t *c = crun_at(w, i);
            pod_resources_t d;
            desired_of(w, spec, i, &d);
            if (pod_resources_equal(&d, &c->alloc)) continue;
            if (allocate_locked(w, c, &d)) restarted[nrestarted++] = c;
        }
        diag_info("pod %s/%s: resize allocated", spec->namespace, spec->name);
    }
    pthread_mutex_unlock(&w->lock);
    /* As the kubelet words a restart for a resize. */
    for (size_t i = 0; i < nrestarted; i++)
        worker_event(w, restarted[i], "Normal", "Killing", "Container %s resize requires restart",
                     restarted[i]->name);
    free(restarted);
    return changed;
}

void crun_resized(void *ctx, bool ok, uint64_t memory_limit, uint32_t cpu_millicores,
                  uint64_t usage)
{
    crun_t *c = ctx;
    pod_worker_t *w = c->w;
    bool changed = false;
    pthread_mutex_lock(&w->lock);
    /* An older request may arrive before the newest: only the allocation
     * itself completes (or fails) the resize. */
    bool current = memory_limit == crun_memory_limit(w, c) &&
                   cpu_millicores == (uint32_t)c->alloc.v[POD_RES_CPU_LIMIT];
    if (current && ok) {
        changed = c->resizing || c->resize_error[0] || !pod_resources_equal(&c->actual, &c->alloc);
        c->actual = c->alloc;
        c->resizing = false;
        c->resize_error[0] = '\0';
    } else if (current) {
        char msg[sizeof c->resize_error];
        if (usage > memory_limit)
            pod_resize_memory_error(c->name, (int64_t)memory_limit, usage, msg, sizeof msg);
        else /* a run that started without a memory cap cannot get one */
            snprintf(msg, sizeof msg,
                     "cannot set a memory limit on container \"%s\": it started without one",
                     c->name);
        changed = c->resizing || strcmp(msg, c->resize_error) != 0;
        snprintf(c->resize_error, sizeof c->resize_error, "%s", msg);
        c->resizing = false;
    }
    pthread_mutex_unlock(&w->lock);
    if (!changed) return;
    if (ok)
        diag_info("container %s: resized live (memory limit %llu, cpu %u m)", c->name,
                  (unsigned long long)memory_limit, cpu_millicores);
    else
        diag_info("container %s: resize refused: %s", c->name, c->resize_error);
    worker_publish(w);
}

bool pod_resize_in_progress_locked(const pod_worker_t *w)
{
    lock_assert_held(&w->lock);
    for (size_t i = 0; i < w->ninit + w->napps; i++) {
        const crun_t *c = i < w->ninit ? &w->inits[i] : &w->apps[i - w->ninit];
        if (c->init && !c->spec->sidecar) continue;
        if (c->state.kind != CSTATE_RUNNING) continue;
        if (c->resizing || c->resize_error[0] || !pod_resources_equal(&c->actual, &c->alloc))
            return true;
    }
    return false;
}

void pod_worker_allocated_requests(pod_worker_t *w, int64_t *cpu, int64_t *memory)
{
    *cpu = *memory = 0;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->napps; i++) {
        *cpu += w->apps[i].alloc.v[POD_RES_CPU_REQUEST];
        *memory += w->apps[i].alloc.v[POD_RES_MEMORY_REQUEST];
    }
    for (size_t i = 0; i < w->ninit; i++) {
        if (w->inits[i].alloc.v[POD_RES_CPU_REQUEST] > *cpu)
            *cpu = w->inits[i].alloc.v[POD_RES_CPU_REQUEST];
        if (w->inits[i].alloc.v[POD_RES_MEMORY_REQUEST] > *memory)
            *memory = w->inits[i].alloc.v[POD_RES_MEMORY_REQUEST];
    }
    pthread_mutex_unlock(&w->lock);
}
