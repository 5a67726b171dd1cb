/* worker.c: the pod thread and the worker's public API (see worker.h and,
 * for the inside, worker_priv.h).
 *
 * Threads: pod_worker_start creates the pod thread, which attaches the
 * pod's network sandbox (sandbox.c), sets up the volumes, then starts one
 * container thread per init container in turn (waiting for each to
 * complete, or for a sidecar to run), then one per app container. Then it
 * hands the pod over to the pod runner (runner.c) and returns, so that a
 * running pod holds no thread but its containers': a runner thread fires
 * the active deadline, and ends the pod once its last app container is
 * done (after a stop too: every app container ends then). Until the hand
 * over the pod thread watches the deadline, after it the runner; both
 * fire it only on a pod not yet stopping, under the lock, so it fires
 * once. The end (pod_finish, on the pod thread when the pod stopped before
 * the hand-over, else on the runner) stops the sidecars, joins every
 * container thread, destroys the sandbox (on every path: deletion,
 * eviction, a failed start, the last container done) and publishes the
 * final status.
 * pod_worker_stop and pod_worker_update run on the caller's thread (the
 * pod manager's) and only change state under the lock, request stops and
 * wake the pod thread.
 *
 * Locking: w->lock (see worker_priv.h); the pod thread drops it for
 * the sandbox's CNI calls, volume set-up, joins and every host callback. */
#include "pod/env.h"
#include "pod/worker.h"
#include "pod/worker_priv.h"
#include "util/diag.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"
#include "volume/volume.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int (*pod_worker_thread_create)(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
                                void *arg) = pthread_create;

#define DEADLINE_REASON "DeadlineExceeded"
#define DEADLINE_MESSAGE "Pod was active on the node longer than the specified deadline"

/* --- helpers shared by the worker's files ------------------------------------------ */

void worker_publish(pod_worker_t *w)
{
    if (w->host.status_changed) w->host.status_changed(w->host.ctx, w);
}

void worker_event(pod_worker_t *w, crun_t *c, const char *type, const char *reason, const char *fmt,
                  ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const podspec_t *s = worker_spec_now(w);
    diag_info("pod %s/%s%s%s: %s: %s", s->namespace, s->name, c ? " container " : "",
              c ? c->name : "", reason, msg);
    if (strcmp(type, "Warning") == 0) atomic_store(&w->warned, true);
    if (w->host.event) w->host.event(w->host.ctx, w, type, reason, c ? c->field_path : NULL, msg);
}

bool pod_worker_warned(pod_worker_t *w)
{
    return atomic_load(&w->warned);
}

/* --- stopping ------------------------------------------------------------------------ */

/* Requests every container's stop and moves the pod to STOPPING. */
static void stop_all_locked(pod_worker_t *w)
{
    lock_assert_held(&w->lock);
    if (w->lc < PLC_STOPPING) pod_transition_locked(w, PLC_STOPPING);
    for (size_t i = 0; i < w->ninit; i++)
        wasmrt_stop_request(w->inits[i].stop);
    /* A running app container gets its preStop hook first (probes.c). */
    int64_t grace =
        w->deletion_grace >= 0 ? w->deletion_grace : worker_spec_now(w)->termination_grace_period;
    for (size_t i = 0; i < w->napps; i++)
        crun_stop_locked(w, &w->apps[i], grace);
    pthread_cond_broadcast(&w->cond);
}

/* The pod fails as a whole (the first verdict stays) and stops. */
static void fail_pod_locked(pod_worker_t *w, const char *reason, const char *message)
{
    lock_assert_held(&w->lock);
    if (w->lc == PLC_FINISHED) return;
    if (!w->failed) {
        w->failed = true;
        snprintf(w->reason, sizeof w->reason, "%s", reason ? reason : "");
        snprintf(w->message, sizeof w->message, "%s", message ? message : "");
    }
    stop_all_locked(w);
}

/* --- the pod thread ---------------------------------------------------------------- */

typedef enum pod_wait {
    POD_WAIT_MET,      /* the predicate holds */
    POD_WAIT_TIMEOUT,  /* until passed */
    POD_WAIT_STOPPED,  /* the pod is stopping */
    POD_WAIT_DEADLINE, /* this wait fired the active deadline (the pod is stopping) */
} pod_wait_t;

/* Waits until pred holds, until passes, or the pod stops. The one watcher
 * of the active deadline: when it has passed, the pod fails with
 * DeadlineExceeded here (the caller sends the event, without the lock). */
static pod_wait_t pod_wait_locked(pod_worker_t *w, bool (*pred)(const pod_worker_t *, const void *),
                                  const void *arg, int64_t until)
{
    lock_assert_held(&w->lock);
    for (;;) {
        if (w->lc >= PLC_STOPPING) return POD_WAIT_STOPPED;
        if (pred && pred(w, arg)) return POD_WAIT_MET;
        if (w->deadline && time_mono_ns() >= w->deadline) {
            fail_pod_locked(w, DEADLINE_REASON, DEADLINE_MESSAGE);
            return POD_WAIT_DEADLINE;
        }
        if (time_mono_ns() >= until) return POD_WAIT_TIMEOUT;
        int64_t t = w->deadline && w->deadline < until ? w->deadline : until;
        cond_wait_until(&w->cond, &w->lock, t);
    }
}

static bool container_done(const pod_worker_t *w, const void *arg)
{
    (void)w;
    return ((const crun_t *)arg)->lc == CLC_DONE;
}

static bool sidecar_up(const pod_worker_t *w, const void *arg)
{
    const crun_t *c = arg;
    return container_done(w, c) || c->state.kind == CSTATE_RUNNING;
}

static bool apps_done(const pod_worker_t *w, const void *arg)
{
    (void)arg;
    for (size_t i = 0; i < w->napps; i++)
        if (w->apps[i].lc != CLC_DONE) return false;
    return true;
}

static void start_container_locked(pod_worker_t *w, crun_t *c)
{
    lock_assert_held(&w->lock);
    /* The module runs on this thread's stack: size it for the runtime's
     * max_wasm_stack (only the touched pages become resident). */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, wasmrt_thread_stack_size(w->host.rt));
    int rc = pod_worker_thread_create(&c->thread, &attr, container_main, c);
    pthread_attr_destroy(&attr);
    if (rc == 0) {
        c->joinable = true;
        return;
    }
    cstate_set(&c->state, CSTATE_TERMINATED, "StartError", "cannot create a thread");
    c->state.exit_code = WASMRT_EXIT_START_FAILED;
    crun_transition_locked(w, c, CLC_DONE);
}

/* Starts fetching every ConfigMap and Secret the pod's volumes and
 * environment read, so that a first read's list runs beside the pod's
 * other start work (its sandbox, its TokenRequest) rather than after it;
 * and, for a pod that may get a network sandbox first, its TokenRequests,
 * which then run beside the sandbox's making. */
static void warm_references(pod_worker_t *w)
{
    const podspec_t *pod = worker_spec_now(w);
    volume_host_t vh = pod_host_volumes(&w->host);
    volume_warm(&vh, pod);
    pthread_mutex_lock(&w->lock);
    bool sandbox_first = w->sandbox_wanted || w->sandbox_undecided;
    pthread_mutex_unlock(&w->lock);
    if (sandbox_first) volume_warm_tokens(&vh, pod);
    for (size_t i = 0; i < pod->ninit; i++)
        pod_env_warm(&w->host, pod, &pod->init_containers[i]);
    for (size_t i = 0; i < pod->ncontainers; i++)
        pod_env_warm(&w->host, pod, &pod->containers[i]);
}

/* Volumes: retried as the kubelet does (the Node authorizer may not yet
 * know the pod is ours, a ConfigMap may not exist yet), except for what no
 * retry can fix. Returns how the wait for the next try ended, or
 * POD_WAIT_MET once the volumes are ready. */
static pod_wait_t setup_volumes(pod_worker_t *w)
{
    /* The first retry comes quickly: right after binding, the Node
     * authorizer often needs a few milliseconds to learn the pod is ours. */
    int64_t delay_ms = 20;
    for (;;) {
        err_t err;
        int rc = fs_mkdir_p(w->pod_dir, 0750, &err);
        if (rc == 0) {
            volume_host_t vh = pod_host_volumes(&w->host);
            rc = volume_setup(&vh, worker_spec_now(w), w->pod_dir, &err);
        }
        if (rc == 0) return POD_WAIT_MET;
        /* Quiet for the first few quick retries (a transient race). */
        if (rc == VOLUME_PERMANENT || w->host.give_up_on_setup_error || delay_ms >= 160)
            worker_event(w, NULL, "Warning", "FailedMount", "%s", err.msg);
        pthread_mutex_lock(&w->lock);
        pod_wait_t r;
        if (rc == VOLUME_PERMANENT || w->host.give_up_on_setup_error) {
            fail_pod_locked(w, "FailedMount", err.msg);
            r = POD_WAIT_STOPPED;
        } else {
            r = pod_wait_locked(w, NULL, NULL, deadline_after_ms(delay_ms));
        }
        pthread_mutex_unlock(&w->lock);
        if (r != POD_WAIT_TIMEOUT) return r;
        delay_ms = delay_ms * 2 > 10000 ? 10000 : delay_ms * 2;
    }
}

/* The network sandbox: retried until it exists or the pod stops, as the
 * kubelet retries a failed RunPodSandbox (the pod stays Pending, each
 * failure a FailedCreatePodSandBox Event). POD_WAIT_MET once it exists
 * (or when the pod wants none). */
static pod_wait_t setup_sandbox(pod_worker_t *w)
{
    int64_t delay_ms = 500;
    sandbox_decide(w);
    for (;;) {
        err_t err;
        if (sandbox_attach(w, &err) == 0) return POD_WAIT_MET;
        worker_event(w, NULL, "Warning", "FailedCreatePodSandBox",
                     "Failed to create pod sandbox: %s", err.msg);
        worker_publish(w);
        pthread_mutex_lock(&w->lock);
        pod_wait_t r = pod_wait_locked(w, NULL, NULL, deadline_after_ms(delay_ms));
        pthread_mutex_unlock(&w->lock);
        if (r != POD_WAIT_TIMEOUT) return r;
        delay_ms = delay_ms * 2 > 30000 ? 30000 : delay_ms * 2;
    }
}

/* Runs the init containers in order; POD_WAIT_MET when all completed. */
static pod_wait_t run_inits_locked(pod_worker_t *w)
{
    lock_assert_held(&w->lock);
    for (size_t i = 0; i < w->ninit; i++) {
        crun_t *c = &w->inits[i];
        if (w->lc >= PLC_STOPPING) return POD_WAIT_STOPPED;
        /* A resumed init container that ended in an earlier wasmlet is not
         * run again, but how it ended still decides whether the pod goes
         * on (one lost under restartPolicy Never ended unknown: failed). */
        if (c->lc == CLC_NEW) start_container_locked(w, c);
        /* The next init container starts once a sidecar runs, or once an
         * ordinary one completed. */
        pod_wait_t r =
            pod_wait_locked(w, c->spec->sidecar ? sidecar_up : container_done, c, SYNC_FOREVER);
        if (r != POD_WAIT_MET) return r;
        if (c->spec->sidecar) continue;
        if (c->state.kind != CSTATE_TERMINATED || c->state.exit_code != 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "init container %s failed", c->spec->name);
            fail_pod_locked(w, "InitContainerFailed", msg);
            return POD_WAIT_STOPPED;
        }
    }
    return POD_WAIT_MET;
}

static void pod_finish(pod_worker_t *w, pod_wait_t r);

static void *pod_main(void *arg)
{
    thread_set_name("pod");
    pod_worker_t *w = arg;
    int64_t t0 = time_mono_ns();
    warm_references(w);
    pod_wait_t r = setup_sandbox(w);
    int64_t t1 = time_mono_ns();
    if (r == POD_WAIT_MET) r = setup_volumes(w);
    int64_t t2 = time_mono_ns();
    pthread_mutex_lock(&w->lock);
    if (r == POD_WAIT_MET) {
        pod_trace_mark(&w->trace, METRICS_STAGE_SANDBOX, t0, t1);
        pod_trace_mark(&w->trace, METRICS_STAGE_VOLUMES, t1, t2);
    }
    if (r == POD_WAIT_MET && w->lc == PLC_STARTING) {
        pod_transition_locked(w, PLC_INITIALIZING);
        pthread_mutex_unlock(&w->lock);
        worker_publish(w);
        pthread_mutex_lock(&w->lock);
        r = run_inits_locked(w);
    }
    if (r == POD_WAIT_MET && w->lc == PLC_INITIALIZING) {
        pod_transition_locked(w, PLC_RUNNING);
        for (size_t i = 0; i < w->napps; i++)
            if (w->apps[i].lc == CLC_NEW)
                cstate_set(&w->apps[i].state, CSTATE_WAITING, "ContainerCreating", NULL);
        pthread_mutex_unlock(&w->lock);
        worker_publish(w);
        pthread_mutex_lock(&w->lock);
        for (size_t i = 0; i < w->napps; i++)
            if (w->apps[i].lc == CLC_NEW) start_container_locked(w, &w->apps[i]);
        /* A running pod holds no thread of its own: its deadline and its
         * end (the last app container done, which a stop also leads to)
         * are the pod runner's from here. */
        if (w->lc == PLC_RUNNING && !apps_done(w, NULL) &&
            !(w->deadline && time_mono_ns() >= w->deadline)) {
            w->handed_over = true;
            if (w->deadline) pod_runner_arm(w, w->deadline);
            /* Nobody joins this thread: its stack goes back as it ends,
             * not when the pod does. Past the unlock it touches nothing
             * of the worker, which may be freed as soon as it can be
             * locked. */
            if (w->joinable) {
                w->joinable = false;
                pthread_detach(pthread_self());
            }
            pthread_mutex_unlock(&w->lock);
            return NULL;
        }
        /* Wait for the app containers, a stop, or the deadline. */
        r = pod_wait_locked(w, apps_done, NULL, SYNC_FOREVER);
    }
    pthread_mutex_unlock(&w->lock);
    pod_finish(w, r);
    return NULL;
}

/* --- the pod runner's part -------------------------------------------------------------- */

void worker_end_if_due_locked(pod_worker_t *w)
{
    lock_assert_held(&w->lock);
    if (!w->handed_over || w->end_wanted || !apps_done(w, NULL)) return;
    w->end_wanted = true;
    pod_runner_arm(w, 0);
}

void worker_runner_fire(pod_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    bool end = w->end_wanted && !w->end_started;
    bool fired = false;
    if (end) {
        w->end_started = true;
    } else if (w->lc < PLC_STOPPING && w->deadline) {
        /* The active deadline of a running pod (before, the pod thread
         * watched it): fails the pod once; a deadline moved later (or
         * earlier, which arms it again) waits on. */
        if (time_mono_ns() >= w->deadline) {
            fail_pod_locked(w, DEADLINE_REASON, DEADLINE_MESSAGE);
            fired = true;
        } else {
            pod_runner_arm(w, w->deadline);
        }
    }
    pthread_mutex_unlock(&w->lock);
    if (fired) {
        worker_event(w, NULL, "Normal", DEADLINE_REASON, DEADLINE_MESSAGE);
        worker_publish(w);
    }
    if (!end) return;
    /* The pod thread detached itself when it handed the pod over. */
    pod_finish(w, POD_WAIT_MET);
}

/* The pod's end, on the pod thread or (a handed-over pod) on a runner
 * thread: the app containers are done, or the pod stops, so sidecars end
 * too; every container thread is joined, the sandbox destroyed, and the
 * pod FINISHED. r: how the pod thread's last wait ended. */
static void pod_finish(pod_worker_t *w, pod_wait_t r)
{
    pthread_mutex_lock(&w->lock);
    stop_all_locked(w);
    pthread_mutex_unlock(&w->lock);
    if (r == POD_WAIT_DEADLINE) {
        worker_event(w, NULL, "Normal", DEADLINE_REASON, DEADLINE_MESSAGE);
        worker_publish(w);
    }

    for (size_t i = 0; i < w->ninit; i++)
        if (w->inits[i].joinable) pthread_join(w->inits[i].thread, NULL);
    for (size_t i = 0; i < w->napps; i++)
        if (w->apps[i].joinable) pthread_join(w->apps[i].thread, NULL);
    pthread_mutex_lock(&w->lock);
    /* App containers that never started (a failed init, a stop) end here;
     * init containers the pod never reached stay waiting. */
    for (size_t i = 0; i < w->napps; i++) {
        crun_t *c = &w->apps[i];
        if (c->lc == CLC_DONE) continue;
        if (c->state.kind == CSTATE_WAITING) {
            cstate_set(&c->state, CSTATE_TERMINATED, "ContainerStatusUnknown",
                       w->failed ? w->message : "The pod ended before the container started");
            c->state.exit_code = WASMRT_EXIT_KILLED;
            c->state.finished_at = time_now_ns();
        }
        crun_transition_locked(w, c, CLC_DONE);
    }
    pthread_mutex_unlock(&w->lock);
    /* Every container thread is joined: nothing is in the namespace now. */
    sandbox_teardown(w);
    pthread_mutex_lock(&w->lock);
    pod_transition_locked(w, PLC_FINISHED);
    pthread_mutex_unlock(&w->lock);
    worker_publish(w);
}

/* --- the public API ------------------------------------------------------------------- */

static void init_crun(pod_worker_t *w, crun_t *c, const podspec_container_t *spec, bool init,
                      int index)
{
    c->w = w;
    c->name = spec->name;
    c->spec = spec;
    c->init = init;
    c->index = index;
    c->lc = CLC_NEW;
    c->stop = wasmrt_stop_new();
    const char *reason = "PodInitializing";
    if ((init && index == 0) || (!init && w->ninit == 0)) reason = "ContainerCreating";
    cstate_set(&c->state, CSTATE_WAITING, reason, NULL);
    snprintf(c->field_path, sizeof c->field_path, "spec.%s{%s}",
             init ? "initContainers" : "containers", spec->name);
    pod_resources_of(spec, &c->alloc);
    c->actual = c->alloc;
    pod_state_apply(w, c, w->resume);
}

/* The deadline for activeDeadlineSeconds ads (<= 0: none), on the
 * monotonic clock, counted from the pod's start. */
static int64_t deadline_of(const pod_worker_t *w, int64_t ads)
{
    return ads > 0 ? w->start_mono + ads * NS_PER_SEC : 0;
}

pod_worker_t *pod_worker_start(const pod_host_t *host, podspec_t *spec, json_t *resume)
{
    pod_worker_t *w = xcalloc(1, sizeof *w);
    w->host = *host;
    if (w->host.backoff_max_ms <= 0) w->host.backoff_max_ms = 300000;
    if (w->host.backoff_reset_ms <= 0) w->host.backoff_reset_ms = 600000;
    atomic_init(&w->spec, spec);
    atomic_init(&w->warned, false);
    w->resume = resume ? json_incref(resume) : NULL;
    w->pod_dir = spec->uid[0]
                     ? xasprintf("%s/pods/%s", host->data_dir, spec->uid)
                     : xasprintf("%s/pods/%s_%s", host->data_dir, spec->namespace, spec->name);
    if (host->logs_dir)
        w->log_dir = xasprintf("%s/%s_%s_%s", host->logs_dir, spec->namespace, spec->name,
                               spec->uid[0] ? spec->uid : "local");
    pthread_mutex_init(&w->lock, NULL);
    cond_init_monotonic(&w->cond);
    w->lc = PLC_STARTING;
    w->deletion_grace = -1;
    sandbox_need_t need = sandbox_wanted(host, spec);
    w->sandbox_wanted = need == SANDBOX_YES;
    w->sandbox_undecided = need == SANDBOX_IF_COMPONENT;
    /* A resumed pod keeps its start time (and so its deadline). */
    int64_t start = json_int_at(resume, 0, "startTime");
    int64_t now = time_now_ns();
    w->start_time = start ? start : now;
    w->start_mono = time_mono_ns() - (now - w->start_time);
    w->deadline = deadline_of(w, spec->active_deadline_seconds);
    w->ninit = spec->ninit;
    w->napps = spec->ncontainers;
    /* No crun for a list that is empty (a crun is about 3 KiB). */
    w->inits = w->ninit ? xcalloc(w->ninit, sizeof *w->inits) : NULL;
    w->apps = w->napps ? xcalloc(w->napps, sizeof *w->apps) : NULL;
    for (size_t i = 0; i < w->ninit; i++)
        init_crun(w, &w->inits[i], &spec->init_containers[i], true, (int)i);
    for (size_t i = 0; i < w->napps; i++)
        init_crun(w, &w->apps[i], &spec->containers[i], false, (int)i);
    pthread_mutex_lock(&w->lock);
    if (pod_worker_thread_create(&w->thread, NULL, pod_main, w) == 0) {
        w->joinable = true;
    } else {
        w->failed = true;
        snprintf(w->message, sizeof w->message, "cannot create the pod's thread");
        pod_transition_locked(w, PLC_FINISHED);
    }
    pthread_mutex_unlock(&w->lock);
    return w;
}

void pod_worker_stop(pod_worker_t *w, const char *reason, const char *message)
{
    pthread_mutex_lock(&w->lock);
    if (w->lc != PLC_FINISHED) {
        if (reason)
            fail_pod_locked(w, reason, message);
        else
            stop_all_locked(w);
    }
    pthread_mutex_unlock(&w->lock);
}

void pod_worker_stop_for_node_shutdown(pod_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    if (w->lc != PLC_FINISHED) {
        if (!w->failed) w->t_disruption = time_now_ns();
        fail_pod_locked(w, POD_NODE_SHUTDOWN_REASON, POD_NODE_SHUTDOWN_MESSAGE);
    }
    pthread_mutex_unlock(&w->lock);
}

/* --- spec updates ----------------------------------------------------------------------- */

static bool same_json(json_t *a, json_t *b)
{
    return (!a && !b) || (a && b && json_equal(a, b));
}

/* Whether the update changes nothing the worker keeps. */
static bool same_version(const podspec_t *a, const podspec_t *b)
{
    return same_json(json_at(a->raw, "spec"), json_at(b->raw, "spec")) &&
           same_json(json_at(a->raw, "metadata", "labels"),
                     json_at(b->raw, "metadata", "labels")) &&
           same_json(json_at(a->raw, "metadata", "annotations"),
                     json_at(b->raw, "metadata", "annotations"));
}

/* Whether b has a's containers, by name and in order (all the API server
 * allows). */
static bool same_containers(const podspec_t *a, const podspec_t *b)
{
    if (a->ninit != b->ninit || a->ncontainers != b->ncontainers) return false;
    for (size_t i = 0; i < a->ninit; i++)
        if (strcmp(a->init_containers[i].name, b->init_containers[i].name) != 0) return false;
    for (size_t i = 0; i < a->ncontainers; i++)
        if (strcmp(a->containers[i].name, b->containers[i].name) != 0) return false;
    return true;
}

/* Update step: activeDeadlineSeconds. The pod thread, woken by the
 * caller's broadcast, applies it (and fires it when already past). */
static void update_deadline_locked(pod_worker_t *w, const podspec_t *spec)
{
    lock_assert_held(&w->lock);
    int64_t d = deadline_of(w, spec->active_deadline_seconds);
    if (d != w->deadline) w->deadline = d;
    /* A handed-over pod's deadline is the runner's to watch. */
    if (w->handed_over && d && w->lc < PLC_STOPPING) pod_runner_arm(w, d);
}

/* Update step: container images. A container whose image changed takes
 * its new definition at its next start; a running one (or one preparing
 * or waiting out a back-off) is asked to end now and start again. Fills
 * killed with the containers that were running (for their Killing
 * events); returns their count. */
static size_t update_images_locked(pod_worker_t *w, const podspec_t *spec, crun_t **killed)
{
    lock_assert_held(&w->lock);
    size_t n = 0;
    for (size_t i = 0; i < w->ninit + w->napps; i++) {
        bool init = i < w->ninit;
        crun_t *c = init ? &w->inits[i] : &w->apps[i - w->ninit];
        const podspec_container_t *nc =
            init ? &spec->init_containers[i] : &spec->containers[i - w->ninit];
        const podspec_container_t *cur = c->next_spec ? c->next_spec : c->spec;
        if (strcmp(cur->image, nc->image) == 0) continue;
        c->next_spec = nc;
        if (w->lc >= PLC_STOPPING) continue;
        if (c->lc == CLC_RUNNING) killed[n++] = c;
        if (c->lc == CLC_RUNNING || c->lc == CLC_PREPARING || c->lc == CLC_BACKOFF) {
            c->restart_requested = true;
            wasmrt_stop_request(c->stop);
        }
    }
    return n;
}

void pod_worker_update(pod_worker_t *w, podspec_t *spec)
{
    if (!spec) return;
    pthread_mutex_lock(&w->lock);
    podspec_t *old = worker_spec_now(w);
    /* A deletion's grace period is the preStop hooks' time (probes.c). */
    json_t *dg = json_at(spec->raw, "metadata", "deletionGracePeriodSeconds");
    if (json_is_integer(dg) && json_integer_value(dg) >= 0)
        w->deletion_grace = json_integer_value(dg);
    if (same_version(old, spec) || !same_containers(old, spec)) {
        if (!same_containers(old, spec))
            diag_warn("pod %s/%s: an update changed its containers; ignored", old->namespace,
                      old->name);
        pthread_mutex_unlock(&w->lock);
        podspec_free(spec);
        return;
    }
    diag_info("pod %s/%s: spec updated", old->namespace, old->name);
    update_deadline_locked(w, spec);
    crun_t **killed = xcalloc(w->ninit + w->napps + 1, sizeof *killed);
    size_t nkilled = update_images_locked(w, spec, killed);
    /* Resources (in-place resize) are the manager's to admit: it calls
     * pod_worker_resize with its verdict on the new spec (resizing.c). */
    /* The old spec stays alive: threads may still point into it. */
    w->retired = xrealloc(w->retired, (w->nretired + 1) * sizeof *w->retired);
    w->retired[w->nretired++] = old;
    atomic_store_explicit(&w->spec, spec, memory_order_release);
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < nkilled; i++)
        worker_event(w, killed[i], "Normal", "Killing",
                     "Container %s definition changed, will be restarted", killed[i]->name);
    free(killed);
}

/* --- the start trace ------------------------------------------------------------------- */

void worker_trace_emit(pod_worker_t *w, const pod_trace_t *t)
{
    const podspec_t *s = worker_spec_now(w);
    pod_trace_emit(t, s->namespace, s->name, s->uid);
}

void pod_worker_trace_begin(pod_worker_t *w, int64_t created_wall, int64_t seen_wall,
                            int64_t seen_mono)
{
    pthread_mutex_lock(&w->lock);
    pod_trace_begin(&w->trace, created_wall, seen_wall, seen_mono, time_mono_ns());
    pthread_mutex_unlock(&w->lock);
}

bool pod_worker_trace_running(pod_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    bool running = w->trace.on && w->trace.begin[METRICS_STAGE_STATUS] != 0 &&
                   w->trace.end[METRICS_STAGE_STATUS] == 0;
    pthread_mutex_unlock(&w->lock);
    return running;
}

void pod_worker_trace_acked(pod_worker_t *w)
{
    pod_trace_t done;
    pthread_mutex_lock(&w->lock);
    int64_t b = w->trace.begin[METRICS_STAGE_STATUS];
    if (b && !w->trace.end[METRICS_STAGE_STATUS])
        pod_trace_mark(&w->trace, METRICS_STAGE_STATUS, b, time_mono_ns());
    bool whole = pod_trace_take(&w->trace, &done);
    pthread_mutex_unlock(&w->lock);
    if (whole) worker_trace_emit(w, &done);
}

/* --- waiting and freeing ----------------------------------------------------------------- */

bool pod_worker_wait(pod_worker_t *w, int64_t timeout_ms)
{
    int64_t until = deadline_after_ms(timeout_ms);
    pthread_mutex_lock(&w->lock);
    while (w->lc != PLC_FINISHED && cond_wait_until(&w->cond, &w->lock, until)) {
    }
    bool done = w->lc == PLC_FINISHED;
    pthread_mutex_unlock(&w->lock);
    return done;
}

bool pod_worker_finished(pod_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    bool done = w->lc == PLC_FINISHED;
    pthread_mutex_unlock(&w->lock);
    return done;
}

void pod_worker_free(pod_worker_t *w)
{
    if (!w) return;
    pod_worker_wait(w, -1);
    /* FINISHED is set before the end's last publish: wait it out. */
    pod_runner_forget(w);
    if (w->joinable) pthread_join(w->thread, NULL);
    for (size_t i = 0; i < w->ninit; i++) {
        wasmrt_stop_free(w->inits[i].stop);
        cstate_clear(&w->inits[i].state);
        cstate_clear(&w->inits[i].last);
    }
    for (size_t i = 0; i < w->napps; i++) {
        wasmrt_stop_free(w->apps[i].stop);
        cstate_clear(&w->apps[i].state);
        cstate_clear(&w->apps[i].last);
    }
    free(w->inits);
    free(w->apps);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    json_decref(w->resume);
    const podspec_t *last = worker_spec_now(w);
    probe_metrics_forget(last->uid[0] ? last->uid : last->name);
    podspec_free(worker_spec_now(w));
    for (size_t i = 0; i < w->nretired; i++)
        podspec_free(w->retired[i]);
    free(w->retired);
    free(w->pod_dir);
    free(w->log_dir);
    free(w->netns);
    free(w->pod_ips);
    free(w);
}

const podspec_t *pod_worker_spec(const pod_worker_t *w)
{
    return worker_spec_now(w);
}
