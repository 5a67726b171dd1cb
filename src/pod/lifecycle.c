/* lifecycle.c: the pod's and the containers' state machines (see
 * lifecycle.h): the tables of legal moves, and the one function per
 * machine that moves it. Both are called with w->lock held, from any of the
 * worker's threads; they never drop it, never call the host, and never
 * block. Each move is logged once (diag_info), keeps the Ready condition
 * and its transition time, and wakes every waiter on w->cond. */
#include "pod/lifecycle.h"
#include "pod/worker_priv.h"
#include "util/diag.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const bool pod_moves[PLC_COUNT][PLC_COUNT] = {
    [PLC_STARTING] = {[PLC_INITIALIZING] = true, [PLC_STOPPING] = true, [PLC_FINISHED] = true},
    [PLC_INITIALIZING] = {[PLC_RUNNING] = true, [PLC_STOPPING] = true},
    [PLC_RUNNING] = {[PLC_STOPPING] = true},
    [PLC_STOPPING] = {[PLC_FINISHED] = true},
    [PLC_FINISHED] = {0},
};

static const bool container_moves[CLC_COUNT][CLC_COUNT] = {
    [CLC_NEW] = {[CLC_PREPARING] = true, [CLC_DONE] = true},
    [CLC_PREPARING] = {[CLC_PREPARING] = true,
                       [CLC_RUNNING] = true,
                       [CLC_EXITED] = true,
                       [CLC_BACKOFF] = true,
                       [CLC_DONE] = true},
    [CLC_RUNNING] = {[CLC_EXITED] = true},
    [CLC_EXITED] = {[CLC_PREPARING] = true, [CLC_BACKOFF] = true, [CLC_DONE] = true},
    [CLC_BACKOFF] = {[CLC_PREPARING] = true, [CLC_DONE] = true},
    [CLC_DONE] = {0},
};

bool pod_lifecycle_pod_legal(pod_lc_t from, pod_lc_t to)
{
    return from >= 0 && from < PLC_COUNT && to >= 0 && to < PLC_COUNT && pod_moves[from][to];
}

bool pod_lifecycle_container_legal(container_lc_t from, container_lc_t to)
{
    return from >= 0 && from < CLC_COUNT && to >= 0 && to < CLC_COUNT && container_moves[from][to];
}

const char *pod_lifecycle_pod_name(pod_lc_t s)
{
    static const char *const names[PLC_COUNT] = {"Starting", "Initializing", "Running", "Stopping",
                                                 "Finished"};
    return s >= 0 && s < PLC_COUNT ? names[s] : "?";
}

const char *pod_lifecycle_container_name(container_lc_t s)
{
    static const char *const names[CLC_COUNT] = {"New",    "Preparing", "Running",
                                                 "Exited", "BackOff",   "Done"};
    return s >= 0 && s < CLC_COUNT ? names[s] : "?";
}

void cstate_set(cstate_t *s, cstate_kind_t kind, const char *reason, const char *message)
{
    s->kind = kind;
    snprintf(s->reason, sizeof s->reason, "%s", reason ? reason : "");
    free(s->message);
    s->message = message && *message ? xstrndup(message, CSTATE_MESSAGE_MAX - 1) : NULL;
}

void cstate_copy(cstate_t *dst, const cstate_t *src)
{
    if (dst == src) return;
    char *message = src->message ? xstrdup(src->message) : NULL;
    free(dst->message);
    *dst = *src;
    dst->message = message;
}

void cstate_clear(cstate_t *s)
{
    free(s->message);
    memset(s, 0, sizeof *s);
}

/* Ready and ContainersReady: the app containers are all ready (running,
 * started, passing their readiness probes) and the sidecars all run, in a
 * pod that has initialized and not finished. Called after every
 * transition, so the time is the transition's. */
void pod_ready_refresh_locked(pod_worker_t *w)
{
    lock_assert_held(&w->lock);
    bool all = w->t_initialized != 0 && w->lc != PLC_FINISHED;
    for (size_t i = 0; i < w->napps; i++)
        all &= crun_ready(&w->apps[i]);
    for (size_t i = 0; i < w->ninit; i++)
        if (w->inits[i].spec->sidecar) all &= w->inits[i].state.kind == CSTATE_RUNNING;
    if (all != w->ready) {
        w->ready = all;
        w->t_ready = time_now_ns();
    }
}

bool pod_transition_locked(pod_worker_t *w, pod_lc_t to)
{
    lock_assert_held(&w->lock);
    const podspec_t *s = worker_spec_now(w);
    if (!pod_lifecycle_pod_legal(w->lc, to)) {
        diag_error("pod %s/%s: refused lifecycle move %s -> %s", s->namespace, s->name,
                   pod_lifecycle_pod_name(w->lc), pod_lifecycle_pod_name(to));
        return false;
    }
    diag_info("pod %s/%s: %s -> %s", s->namespace, s->name, pod_lifecycle_pod_name(w->lc),
              pod_lifecycle_pod_name(to));
    w->lc = to;
    if (to == PLC_INITIALIZING) w->t_ready_to_start = time_now_ns();
    if (to == PLC_RUNNING) w->t_initialized = time_now_ns();
    pod_ready_refresh_locked(w);
    pthread_cond_broadcast(&w->cond);
    return true;
}

bool crun_transition_locked(pod_worker_t *w, crun_t *c, container_lc_t to)
{
    lock_assert_held(&w->lock);
    const podspec_t *s = worker_spec_now(w);
    if (!pod_lifecycle_container_legal(c->lc, to)) {
        diag_error("pod %s/%s container %s: refused lifecycle move %s -> %s", s->namespace, s->name,
                   c->name, pod_lifecycle_container_name(c->lc), pod_lifecycle_container_name(to));
        return false;
    }
    diag_info("pod %s/%s container %s: %s -> %s", s->namespace, s->name, c->name,
              pod_lifecycle_container_name(c->lc), pod_lifecycle_container_name(to));
    c->lc = to;
    pod_ready_refresh_locked(w);
    pthread_cond_broadcast(&w->cond);
    if (to == CLC_DONE) worker_end_if_due_locked(w);
    return true;
}
