/* worker.c: one pod's lifecycle (see worker.h).
 *
 * Threads: the pod thread prepares volumes, runs the init containers one
 * after the other (on itself), starts one thread per app container and per
 * sidecar, and then waits for them, for a stop, or for the pod's active
 * deadline. A container thread loops: pull, build env and argv, load the
 * module, run it, record how it ended, and either end or wait out its
 * back-off and start again, as the restart policy says.
 *
 * Locking: w->lock guards every field of the worker and of its containers
 * that more than one thread touches (states, counts, flags); it is never
 * held while a module runs, an image is pulled or a callback of the host
 * is called, so status reads never wait on a container.
 *
 * Restart back-off follows the kubelet: the first restart is immediate,
 * then 10 s, doubling up to 5 min; a container that ran for 10 min before
 * ending starts from the beginning again. While it waits, its state is
 * waiting/CrashLoopBackOff. */
#include "pod/worker.h"
#include "log/crilog.h"
#include "pod/env.h"
#include "server/metrics_registry.h"
#include "util/diag.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"
#include "volume/volume.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum cstate_kind { CSTATE_WAITING, CSTATE_RUNNING, CSTATE_TERMINATED } cstate_kind_t;

typedef struct cstate {
    cstate_kind_t kind;
    char reason[64];
    char message[1024];
    int exit_code;
    int64_t started_at; /* ns, realtime; 0 = unset */
    int64_t finished_at;
    char container_id[160];
} cstate_t;

typedef struct crun {
    pod_worker_t *w;
    const podspec_container_t *spec;
    bool init; /* an init container (a sidecar is one too) */
    int index; /* within its list */
    cstate_t state, last;
    bool has_last;
    int restart_count;
    bool ever_started; /* has run at least once (status.started history) */
    bool done;         /* ended and will not run again */
    bool interrupted;  /* its last run was ended by a stop, not by itself */
    bool thread_started;
    pthread_t thread;
    wasmrt_stop_t *stop;
    char image_id[256];
    int64_t backoff_ms;
    int64_t run_ns;
    char field_path[96]; /* spec.containers{name} for events */
} crun_t;

struct pod_worker {
    pod_host_t host; /* a copy: the caller's may go */
    podspec_t *spec;
    char *pod_dir;
    char *log_dir; /* <logs>/<ns>_<name>_<uid> */
    json_t *resume;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; signalled on every container end and stop */
    pthread_t thread;

    /* guarded by lock */
    crun_t *inits, *apps;
    char phase[16];
    char reason[64];
    char message[512];
    int64_t start_time;
    int64_t t_ready_to_start, t_initialized, t_ready; /* condition transition times */
    bool ready_to_start, initialized, containers_ready;
    bool stopping;
    bool finished;
    int64_t deadline; /* mono ns of activeDeadlineSeconds; 0 = none */
    pthread_t deadline_thread;
    bool deadline_thread_started;
    bool failed; /* the pod failed as a whole (init failure, deadline, mount) */
};

/* --- small helpers -------------------------------------------------------- */

static void set_state(cstate_t *s, cstate_kind_t kind, const char *reason, const char *message)
{
    s->kind = kind;
    snprintf(s->reason, sizeof s->reason, "%s", reason ? reason : "");
    snprintf(s->message, sizeof s->message, "%s", message ? message : "");
}

static void publish(pod_worker_t *w)
{
    if (w->host.status_changed) w->host.status_changed(w->host.ctx, w);
}

static void event(pod_worker_t *w, crun_t *c, const char *type, const char *reason, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));
static void event(pod_worker_t *w, crun_t *c, const char *type, const char *reason, const char *fmt,
                  ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_info("pod %s/%s%s%s: %s: %s", w->spec->namespace, w->spec->name, c ? " container " : "",
              c ? c->spec->name : "", reason, msg);
    if (w->host.event) w->host.event(w->host.ctx, w, type, reason, c ? c->field_path : NULL, msg);
}

static bool stopping(pod_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    bool s = w->stopping;
    pthread_mutex_unlock(&w->lock);
    return s;
}

/* --- one container run ------------------------------------------------------ */

typedef struct output_ctx {
    pod_worker_t *w;
    crun_t *c;
    crilog_writer_t *log;
    strbuf_t line[3]; /* per stream, for host->output */
} output_ctx_t;

static void on_output(void *ctx, int stream, const char *data, size_t len)
{
    output_ctx_t *o = ctx;
    if (o->log) crilog_write(o->log, stream, data, len, NULL);
    if (!o->w->host.output || stream < 1 || stream > 2) return;
    strbuf_t *sb = &o->line[stream];
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            o->w->host.output(o->w->host.ctx, o->w, o->c->spec->name, stream, strbuf_str(sb),
                              sb->len);
            strbuf_reset(sb);
        } else {
            strbuf_putc(sb, data[i]);
        }
    }
}

static void output_finish(output_ctx_t *o)
{
    for (int s = 1; s <= 2; s++) {
        if (o->line[s].len && o->w->host.output)
            o->w->host.output(o->w->host.ctx, o->w, o->c->spec->name, s, strbuf_str(&o->line[s]),
                              o->line[s].len);
        strbuf_free(&o->line[s]);
    }
    if (o->log) crilog_close(o->log, NULL);
    o->log = NULL;
}

/* Prepares everything a run needs; on failure fills reason/message for a
 * waiting state (ErrImagePull, CreateContainerConfigError) and returns -1. */
typedef struct prepared {
    pod_pulled_t pulled;
    strvec_t env, argv;
    wasmrt_mount_t *mounts;
    size_t nmounts;
    wasmrt_module_t *module;
    wasmrt_load_info_t load;
} prepared_t;

static void prepared_free(prepared_t *p)
{
    free(p->pulled.module_path);
    free(p->pulled.image_id);
    strvec_free(&p->env);
    strvec_free(&p->argv);
    volume_mounts_free(p->mounts, p->nmounts);
    wasmrt_module_release(p->module);
    memset(p, 0, sizeof *p);
}

typedef enum prep_result { PREP_OK, PREP_WAIT, PREP_START_FAILED } prep_result_t;

static prep_result_t prepare(pod_worker_t *w, crun_t *c, prepared_t *p, char *reason,
                             size_t reason_len, err_t *err)
{
    memset(p, 0, sizeof *p);
    const podspec_container_t *cs = c->spec;
    if (w->host.pull) {
        event(w, c, "Normal", "Pulling", "Pulling image \"%s\"", cs->image);
        int64_t t0 = time_mono_ns();
        if (w->host.pull(w->host.ctx, w->spec, cs, &p->pulled, err) == -1) {
            snprintf(reason, reason_len, "ErrImagePull");
            event(w, c, "Warning", "Failed", "Failed to pull image \"%s\": %s", cs->image,
                  err->msg);
            return PREP_WAIT;
        }
        event(w, c, "Normal", "Pulled", "Successfully pulled image \"%s\" in %.3fs", cs->image,
              (double)(time_mono_ns() - t0) / 1e9);
        pthread_mutex_lock(&w->lock);
        if (p->pulled.image_id) snprintf(c->image_id, sizeof c->image_id, "%s", p->pulled.image_id);
        pthread_mutex_unlock(&w->lock);
    }
    if (pod_env_build(&w->host, w->spec, cs, &p->env, &p->argv, err) == -1) {
        snprintf(reason, reason_len, "CreateContainerConfigError");
        event(w, c, "Warning", "Failed", "Error: %s", err->msg);
        return PREP_WAIT;
    }
    if (volume_mounts(w->spec, cs, w->pod_dir, &p->mounts, &p->nmounts, err) == -1) {
        snprintf(reason, reason_len, "CreateContainerConfigError");
        event(w, c, "Warning", "Failed", "Error: %s", err->msg);
        return PREP_WAIT;
    }
    if (wasmrt_load_file(w->host.rt, p->pulled.module_path, &p->module, &p->load, err) == -1) {
        snprintf(reason, reason_len, "StartError");
        event(w, c, "Warning", "Failed", "Error: %s", err->msg);
        return PREP_START_FAILED;
    }
    if (!c->image_id[0]) {
        pthread_mutex_lock(&w->lock);
        snprintf(c->image_id, sizeof c->image_id, "%s", wasmrt_module_digest(p->module));
        pthread_mutex_unlock(&w->lock);
    }
    return PREP_OK;
}

/* Runs the container once. Returns after it ended; the state is
 * terminated. */
static void run_once(pod_worker_t *w, crun_t *c, prepared_t *p)
{
    output_ctx_t out = {.w = w, .c = c};
    if (w->log_dir) {
        char *dir = xasprintf("%s/%s", w->log_dir, c->spec->name);
        err_t err;
        if (fs_mkdir_p(dir, 0755, &err) == 0) {
            char *path = crilog_run_path(dir, c->restart_count);
            out.log = crilog_open(path, w->host.log_max_bytes, w->host.log_max_files, &err);
            free(path);
        }
        if (!out.log) diag_warn("container %s: no log file: %s", c->spec->name, err.msg);
        free(dir);
    }
    wasmrt_spec_t rs = {
        .argv = (const char *const *)p->argv.items,
        .argc = p->argv.len,
        .env = (const char *const *)p->env.items,
        .envc = p->env.len,
        .mounts = p->mounts,
        .nmounts = p->nmounts,
        .memory_limit = (uint64_t)c->spec->memory_limit,
        .cpu_millicores = (uint32_t)c->spec->cpu_limit,
        .output = on_output,
        .output_ctx = &out,
    };
    pthread_mutex_lock(&w->lock);
    set_state(&c->state, CSTATE_RUNNING, NULL, NULL);
    c->state.started_at = time_now_ns();
    c->state.finished_at = 0;
    snprintf(c->state.container_id, sizeof c->state.container_id, "wasmlet://%s-%s-%d",
             w->spec->uid[0] ? w->spec->uid : w->spec->name, c->spec->name, c->restart_count);
    c->ever_started = true;
    pthread_cond_broadcast(&w->cond); /* the pod thread may wait for a sidecar to run */
    if (!c->init) metrics_pod_started(w->spec->uid, (double)(time_now_ns() - w->start_time) / 1e9);
    pthread_mutex_unlock(&w->lock);
    event(w, c, "Normal", "Created", "Created container %s", c->spec->name);
    event(w, c, "Normal", "Started", "Started container %s", c->spec->name);
    publish(w);

    wasmrt_result_t res;
    metrics_module_loaded(p->load.source);
    metrics_container_begin(w->spec->uid, c->spec->name);
    wasmrt_run(w->host.rt, p->module, &rs, c->stop, &res);
    metrics_container_end(w->spec->uid, c->spec->name, res.cpu_ns, res.memory_bytes);
    output_finish(&out);

    pthread_mutex_lock(&w->lock);
    set_state(&c->state, CSTATE_TERMINATED, wasmrt_outcome_reason(&res), res.message);
    c->state.exit_code = res.exit_code;
    c->state.finished_at = time_now_ns();
    c->run_ns = res.run_ns;
    c->interrupted = res.outcome == WASMRT_STOPPED;
    pthread_mutex_unlock(&w->lock);
    if (res.outcome == WASMRT_OOM)
        event(w, c, "Warning", "OOMKilled", "Container %s ended: %s", c->spec->name, res.message);
    else if (res.outcome == WASMRT_TRAPPED)
        event(w, c, "Warning", "Failed", "Container %s trapped: %s", c->spec->name, res.message);
    else if (res.outcome == WASMRT_STOPPED)
        event(w, c, "Normal", "Killing", "Stopped container %s", c->spec->name);
}

/* Whether a container that ended with exit_code runs again. */
static bool restarts(const pod_worker_t *w, const crun_t *c, int exit_code)
{
    if (c->spec->sidecar) return true;
    if (c->init) return exit_code != 0 && w->spec->restart_policy != RESTART_NEVER;
    switch (w->spec->restart_policy) {
    case RESTART_ALWAYS:
        return true;
    case RESTART_ON_FAILURE:
        return exit_code != 0;
    case RESTART_NEVER:
        return false;
    }
    return false;
}

/* Waits out the back-off before the next start; false when stopped. */
/* Waits out the back-off before the next start; false when stopped.
 * message is what the waiting state says (NULL: the kubelet's crash-loop
 * text). */
static bool back_off(pod_worker_t *w, crun_t *c, const char *reason, const char *message)
{
    int64_t delay = c->backoff_ms;
    if (delay > 0) {
        char msg[1100];
        if (message)
            snprintf(msg, sizeof msg, "%s", message);
        else
            snprintf(msg, sizeof msg, "back-off %llds restarting failed container=%s pod=%s_%s(%s)",
                     (long long)(delay / 1000), c->spec->name, w->spec->name, w->spec->namespace,
                     w->spec->uid);
        pthread_mutex_lock(&w->lock);
        if (c->state.kind == CSTATE_TERMINATED) {
            c->last = c->state;
            c->has_last = true;
        }
        set_state(&c->state, CSTATE_WAITING, reason, msg);
        pthread_mutex_unlock(&w->lock);
        event(w, c, "Warning", "BackOff", "%s", msg);
        publish(w);
    }
    /* Next delay: first restart immediate, then initial, doubling to max. */
    c->backoff_ms = c->backoff_ms == 0 ? w->host.backoff_initial_ms : c->backoff_ms * 2;
    if (c->backoff_ms > w->host.backoff_max_ms) c->backoff_ms = w->host.backoff_max_ms;
    return !wasmrt_stop_wait(c->stop, delay);
}

/* The container's whole life: runs until it is done or the pod stops. */
static void container_loop(pod_worker_t *w, crun_t *c)
{
    for (;;) {
        if (wasmrt_stop_requested(c->stop)) break;
        prepared_t p;
        err_t err;
        char reason[64];
        prep_result_t pr = prepare(w, c, &p, reason, sizeof reason, &err);
        if (pr == PREP_WAIT) {
            prepared_free(&p);
            pthread_mutex_lock(&w->lock);
            set_state(&c->state, CSTATE_WAITING, reason, err.msg);
            pthread_mutex_unlock(&w->lock);
            publish(w);
            if (w->host.give_up_on_setup_error) {
                /* No retries in this mode: the container ends here. */
                pthread_mutex_lock(&w->lock);
                set_state(&c->state, CSTATE_TERMINATED, reason, err.msg);
                c->state.exit_code = WASMRT_EXIT_START_FAILED;
                c->state.finished_at = time_now_ns();
                c->done = true;
                pthread_mutex_unlock(&w->lock);
                break;
            }
            /* As the kubelet words them: a pull waits in ImagePullBackOff
             * (doubling), a configuration error stays
             * CreateContainerConfigError and is retried every 10 s. */
            bool pulling = strcmp(reason, "ErrImagePull") == 0;
            char msg[1100];
            if (pulling)
                snprintf(msg, sizeof msg, "Back-off pulling image \"%s\": ErrImagePull: %s",
                         c->spec->image, err.msg);
            else
                snprintf(msg, sizeof msg, "%s", err.msg);
            if (c->backoff_ms == 0 || !pulling) c->backoff_ms = w->host.backoff_initial_ms;
            if (!back_off(w, c, pulling ? "ImagePullBackOff" : reason, msg)) break;
            continue;
        }
        int64_t started = time_mono_ns();
        if (pr == PREP_START_FAILED) {
            pthread_mutex_lock(&w->lock);
            set_state(&c->state, CSTATE_TERMINATED, "StartError", err.msg);
            c->state.exit_code = WASMRT_EXIT_START_FAILED;
            c->state.started_at = c->state.finished_at = time_now_ns();
            pthread_mutex_unlock(&w->lock);
        } else {
            run_once(w, c, &p);
        }
        prepared_free(&p);
        if (time_mono_ns() - started >= w->host.backoff_reset_ms * NS_PER_MS) c->backoff_ms = 0;

        pthread_mutex_lock(&w->lock);
        int code = c->state.exit_code;
        bool again = !w->stopping && restarts(w, c, code);
        if (!again) c->done = true;
        pthread_mutex_unlock(&w->lock);
        publish(w);
        if (!again) break;
        if (!back_off(w, c, "CrashLoopBackOff", NULL)) break;
        pthread_mutex_lock(&w->lock);
        if (c->state.kind == CSTATE_TERMINATED) {
            c->last = c->state;
            c->has_last = true;
        }
        c->restart_count++;
        set_state(&c->state, CSTATE_WAITING, "ContainerCreating", NULL);
        pthread_mutex_unlock(&w->lock);
    }
    pthread_mutex_lock(&w->lock);
    c->done = true;
    if (c->state.kind != CSTATE_TERMINATED) {
        /* Stopped before or between runs. */
        if (c->state.kind == CSTATE_WAITING && c->has_last) {
            c->state = c->last;
        } else if (c->state.kind == CSTATE_WAITING) {
            set_state(&c->state, CSTATE_TERMINATED, "ContainerStatusUnknown",
                      "The container could not be started before the pod stopped");
            c->state.exit_code = WASMRT_EXIT_KILLED;
            c->state.finished_at = time_now_ns();
        }
    }
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    publish(w);
}

static void *container_main(void *arg)
{
    crun_t *c = arg;
    container_loop(c->w, c);
    return NULL;
}

/* --- the pod ---------------------------------------------------------------- */

/* Kubernetes' pod phase from the containers' states (the kubelet's
 * getPhase), with the worker's own verdicts (init failure, deadline). */
static void update_phase_locked(pod_worker_t *w)
{
    const podspec_t *s = w->spec;
    if (w->failed) {
        snprintf(w->phase, sizeof w->phase, "Failed");
        return;
    }
    if (!w->initialized) {
        snprintf(w->phase, sizeof w->phase, "Pending");
        return;
    }
    size_t running = 0, waiting = 0, succeeded = 0, failed = 0;
    for (size_t i = 0; i < s->ncontainers; i++) {
        crun_t *c = &w->apps[i];
        if (!c->done) {
            if (c->state.kind == CSTATE_RUNNING || c->ever_started)
                running++;
            else
                waiting++;
        } else if (c->state.exit_code == 0 && c->state.kind == CSTATE_TERMINATED) {
            succeeded++;
        } else {
            failed++;
        }
    }
    const char *phase;
    if (waiting && !running)
        phase = "Pending";
    else if (running || waiting)
        phase = "Running";
    else if (failed)
        phase = "Failed";
    else
        phase = "Succeeded";
    snprintf(w->phase, sizeof w->phase, "%s", phase);
}

static void start_thread(pod_worker_t *w, crun_t *c)
{
    if (pthread_create(&c->thread, NULL, container_main, c) == 0) {
        c->thread_started = true;
        return;
    }
    pthread_mutex_lock(&w->lock);
    set_state(&c->state, CSTATE_TERMINATED, "StartError", "cannot create a thread");
    c->state.exit_code = WASMRT_EXIT_START_FAILED;
    c->done = true;
    pthread_mutex_unlock(&w->lock);
}

static void stop_all_locked(pod_worker_t *w)
{
    w->stopping = true;
    for (size_t i = 0; i < w->spec->ninit; i++)
        wasmrt_stop_request(w->inits[i].stop);
    for (size_t i = 0; i < w->spec->ncontainers; i++)
        wasmrt_stop_request(w->apps[i].stop);
    pthread_cond_broadcast(&w->cond);
}

static void fail_pod(pod_worker_t *w, const char *reason, const char *message)
{
    pthread_mutex_lock(&w->lock);
    w->failed = true;
    snprintf(w->reason, sizeof w->reason, "%s", reason);
    snprintf(w->message, sizeof w->message, "%s", message);
    stop_all_locked(w);
    pthread_mutex_unlock(&w->lock);
}

/* Applies what an earlier wasmlet recorded: restart counts go on, and a
 * container that ended for good is not run again. */
static void apply_resume(pod_worker_t *w, crun_t *c)
{
    json_t *r = json_object_get(w->resume, c->spec->name);
    if (!json_is_object(r)) return;
    c->restart_count = (int)json_integer_value(json_object_get(r, "restartCount"));
    if (json_is_true(json_object_get(r, "done"))) {
        c->done = true;
        c->ever_started = true;
        set_state(&c->state, CSTATE_TERMINATED, json_string_value(json_object_get(r, "reason")),
                  json_string_value(json_object_get(r, "message")));
        c->state.exit_code = (int)json_integer_value(json_object_get(r, "exitCode"));
        c->state.started_at = json_integer_value(json_object_get(r, "startedAt"));
        c->state.finished_at = json_integer_value(json_object_get(r, "finishedAt"));
        const char *cid = json_string_value(json_object_get(r, "containerID"));
        if (cid) snprintf(c->state.container_id, sizeof c->state.container_id, "%s", cid);
    } else if (json_integer_value(json_object_get(r, "startedAt"))) {
        /* It was running when wasmlet went away. Its run is lost, as a
         * container's is when its runtime dies: under restartPolicy Never
         * it is not run again (nothing runs twice) and ends unknown;
         * otherwise the next run counts as a restart. */
        c->ever_started = true;
        if (!restarts(w, c, 1)) {
            c->done = true;
            set_state(&c->state, CSTATE_TERMINATED, "ContainerStatusUnknown",
                      "The container was running when wasmlet stopped and its restartPolicy "
                      "does not allow another run");
            c->state.exit_code = WASMRT_EXIT_KILLED;
            c->state.started_at = json_integer_value(json_object_get(r, "startedAt"));
            c->state.finished_at = time_now_ns();
        } else {
            c->restart_count++;
        }
    }
    const char *image_id = json_string_value(json_object_get(r, "imageID"));
    if (image_id) snprintf(c->image_id, sizeof c->image_id, "%s", image_id);
}

/* activeDeadlineSeconds covers the whole pod, init containers included,
 * which run on the pod thread: a thread of its own watches the deadline. */
static void *deadline_main(void *arg)
{
    pod_worker_t *w = arg;
    struct timespec ts = {.tv_sec = w->deadline / NS_PER_SEC, .tv_nsec = w->deadline % NS_PER_SEC};
    pthread_mutex_lock(&w->lock);
    while (!w->finished && !w->stopping && time_mono_ns() < w->deadline)
        pthread_cond_timedwait(&w->cond, &w->lock, &ts);
    bool fire = !w->finished && !w->stopping;
    pthread_mutex_unlock(&w->lock);
    if (fire) {
        event(w, NULL, "Normal", "DeadlineExceeded",
              "Pod was active on the node longer than the specified deadline");
        fail_pod(w, "DeadlineExceeded",
                 "Pod was active on the node longer than the specified deadline");
    }
    return NULL;
}

static void *pod_main(void *arg)
{
    pod_worker_t *w = arg;
    const podspec_t *s = w->spec;
    err_t err;

    int64_t deadline = 0;
    if (s->active_deadline_seconds > 0) {
        int64_t elapsed = time_now_ns() - w->start_time;
        deadline = time_mono_ns() + s->active_deadline_seconds * NS_PER_SEC - elapsed;
        w->deadline = deadline;
        w->deadline_thread_started =
            pthread_create(&w->deadline_thread, NULL, deadline_main, w) == 0;
    }

    /* Volumes: retried as the kubelet does (the Node authorizer may not
     * yet know the pod is ours, a ConfigMap may not exist yet), except
     * for what no retry can fix. */
    /* The first retry comes quickly: right after binding, the Node
     * authorizer often needs a few milliseconds to learn the pod is ours. */
    int64_t delay_ms = 20;
    for (;;) {
        int rc = fs_mkdir_p(w->pod_dir, 0750, &err);
        if (rc == 0) rc = volume_setup(&w->host, s, w->pod_dir, &err);
        if (rc == 0) break;
        /* Quiet for the first few quick retries (a transient race). */
        if (rc == VOLUME_PERMANENT || w->host.give_up_on_setup_error || delay_ms >= 160)
            event(w, NULL, "Warning", "FailedMount", "%s", err.msg);
        if (rc == VOLUME_PERMANENT || w->host.give_up_on_setup_error) {
            fail_pod(w, "FailedMount", err.msg);
            goto finish;
        }
        pthread_mutex_lock(&w->lock);
        int64_t until = time_mono_ns() + delay_ms * NS_PER_MS;
        struct timespec ts = {.tv_sec = until / NS_PER_SEC, .tv_nsec = until % NS_PER_SEC};
        while (!w->stopping && time_mono_ns() < until)
            pthread_cond_timedwait(&w->cond, &w->lock, &ts);
        bool stop = w->stopping;
        pthread_mutex_unlock(&w->lock);
        if (stop) goto finish;
        delay_ms = delay_ms * 2 > 10000 ? 10000 : delay_ms * 2;
    }
    pthread_mutex_lock(&w->lock);
    w->ready_to_start = true;
    w->t_ready_to_start = time_now_ns();
    pthread_mutex_unlock(&w->lock);
    publish(w);

    for (size_t i = 0; i < s->ninit && !stopping(w); i++) {
        crun_t *c = &w->inits[i];
        if (c->spec->sidecar) {
            if (c->done) continue;
            start_thread(w, c);
            /* The next init container starts once the sidecar runs. */
            pthread_mutex_lock(&w->lock);
            while (!w->stopping && !c->done && c->state.kind != CSTATE_RUNNING) {
                int64_t until = time_mono_ns() + NS_PER_SEC;
                struct timespec ts = {.tv_sec = until / NS_PER_SEC, .tv_nsec = until % NS_PER_SEC};
                pthread_cond_timedwait(&w->cond, &w->lock, &ts);
            }
            pthread_mutex_unlock(&w->lock);
            continue;
        }
        /* A resumed init container that ended in an earlier wasmlet is not
         * run again, but how it ended still decides whether the pod goes
         * on (one lost under restartPolicy Never ended unknown: failed). */
        if (!c->done) container_loop(w, c);
        pthread_mutex_lock(&w->lock);
        bool ok = c->state.kind == CSTATE_TERMINATED && c->state.exit_code == 0;
        pthread_mutex_unlock(&w->lock);
        if (!ok && !stopping(w)) {
            char msg[256];
            snprintf(msg, sizeof msg, "init container %s failed", c->spec->name);
            fail_pod(w, "InitContainerFailed", msg);
        }
    }
    if (!stopping(w)) {
        pthread_mutex_lock(&w->lock);
        w->initialized = true;
        w->t_initialized = time_now_ns();
        for (size_t i = 0; i < s->ncontainers; i++)
            if (!w->apps[i].done)
                set_state(&w->apps[i].state, CSTATE_WAITING, "ContainerCreating", NULL);
        update_phase_locked(w);
        pthread_mutex_unlock(&w->lock);
        publish(w);
        for (size_t i = 0; i < s->ncontainers; i++)
            if (!w->apps[i].done) start_thread(w, &w->apps[i]);
    }

    /* Wait for the app containers, a stop, or the deadline. */
    pthread_mutex_lock(&w->lock);
    for (;;) {
        bool all_done = true;
        for (size_t i = 0; i < s->ncontainers; i++)
            all_done &= w->apps[i].done;
        if (all_done || w->stopping) break;
        if (deadline && time_mono_ns() >= deadline) {
            pthread_mutex_unlock(&w->lock);
            event(w, NULL, "Normal", "DeadlineExceeded",
                  "Pod was active on the node longer than the specified deadline");
            fail_pod(w, "DeadlineExceeded",
                     "Pod was active on the node longer than the specified deadline");
            pthread_mutex_lock(&w->lock);
            break;
        }
        int64_t until = deadline ? deadline : time_mono_ns() + 3600 * NS_PER_SEC;
        struct timespec ts = {.tv_sec = until / NS_PER_SEC, .tv_nsec = until % NS_PER_SEC};
        pthread_cond_timedwait(&w->cond, &w->lock, &ts);
    }
    /* App containers are done (or the pod stops): sidecars end too. */
    for (size_t i = 0; i < s->ninit; i++)
        if (w->inits[i].spec->sidecar) wasmrt_stop_request(w->inits[i].stop);
    pthread_mutex_unlock(&w->lock);

finish:
    for (size_t i = 0; i < s->ninit; i++)
        if (w->inits[i].thread_started) pthread_join(w->inits[i].thread, NULL);
    for (size_t i = 0; i < s->ncontainers; i++)
        if (w->apps[i].thread_started) pthread_join(w->apps[i].thread, NULL);
    pthread_mutex_lock(&w->lock);
    /* Containers that never started (a failed init, a stop) end here. */
    for (size_t i = 0; i < s->ncontainers; i++) {
        crun_t *c = &w->apps[i];
        if (c->state.kind == CSTATE_WAITING) {
            set_state(&c->state, CSTATE_TERMINATED, "ContainerStatusUnknown",
                      w->failed ? w->message : "The pod ended before the container started");
            c->state.exit_code = WASMRT_EXIT_KILLED;
            c->state.finished_at = time_now_ns();
        }
        c->done = true;
    }
    w->containers_ready = false;
    update_phase_locked(w);
    w->finished = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (w->deadline_thread_started) pthread_join(w->deadline_thread, NULL);
    publish(w);
    return NULL;
}

static void init_crun(pod_worker_t *w, crun_t *c, const podspec_container_t *spec, bool init,
                      int index)
{
    c->w = w;
    c->spec = spec;
    c->init = init;
    c->index = index;
    c->stop = wasmrt_stop_new();
    set_state(&c->state, CSTATE_WAITING, init ? "PodInitializing" : "PodInitializing", NULL);
    if (init && index == 0) set_state(&c->state, CSTATE_WAITING, "ContainerCreating", NULL);
    if (!init && w->spec->ninit == 0)
        set_state(&c->state, CSTATE_WAITING, "ContainerCreating", NULL);
    snprintf(c->field_path, sizeof c->field_path, "spec.%s{%s}",
             init ? "initContainers" : "containers", spec->name);
    apply_resume(w, c);
}

pod_worker_t *pod_worker_start(const pod_host_t *host, podspec_t *spec, json_t *resume)
{
    pod_worker_t *w = xcalloc(1, sizeof *w);
    w->host = *host;
    if (w->host.backoff_max_ms <= 0) w->host.backoff_max_ms = 300000;
    if (w->host.backoff_reset_ms <= 0) w->host.backoff_reset_ms = 600000;
    w->spec = spec;
    w->resume = resume ? json_incref(resume) : NULL;
    const char *id = spec->uid[0] ? spec->uid : NULL;
    w->pod_dir = id ? xasprintf("%s/pods/%s", host->data_dir, id)
                    : xasprintf("%s/pods/%s_%s", host->data_dir, spec->namespace, spec->name);
    if (host->logs_dir)
        w->log_dir = xasprintf("%s/%s_%s_%s", host->logs_dir, spec->namespace, spec->name,
                               spec->uid[0] ? spec->uid : "local");
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    snprintf(w->phase, sizeof w->phase, "Pending");
    /* A resumed pod keeps its start time. */
    int64_t start = json_integer_value(json_object_get(resume, "startTime"));
    w->start_time = start ? start : time_now_ns();
    w->inits = xcalloc(spec->ninit ? spec->ninit : 1, sizeof *w->inits);
    w->apps = xcalloc(spec->ncontainers, sizeof *w->apps);
    for (size_t i = 0; i < spec->ninit; i++)
        init_crun(w, &w->inits[i], &spec->init_containers[i], true, (int)i);
    for (size_t i = 0; i < spec->ncontainers; i++)
        init_crun(w, &w->apps[i], &spec->containers[i], false, (int)i);
    for (size_t i = 0; i < spec->ncontainers; i++) {
        const podspec_container_t *c = &spec->containers[i];
        if (c->liveness_probe || c->readiness_probe || c->startup_probe)
            event(w, &w->apps[i], "Warning", "ProbeUnsupported",
                  "container %s: liveness, readiness and startup probes need a process to exec "
                  "or a port to reach, which a WASI preview 1 module has not; the probes are not "
                  "run and the container is ready while it runs",
                  c->name);
    }
    if (pthread_create(&w->thread, NULL, pod_main, w) != 0) {
        pthread_mutex_lock(&w->lock);
        w->failed = true;
        w->finished = true;
        snprintf(w->message, sizeof w->message, "cannot create the pod's thread");
        update_phase_locked(w);
        pthread_mutex_unlock(&w->lock);
        w->thread = pthread_self(); /* marks "no thread" for free */
    }
    return w;
}

void pod_worker_stop(pod_worker_t *w, const char *reason, const char *message)
{
    pthread_mutex_lock(&w->lock);
    if (reason && !w->failed && !w->finished) {
        w->failed = true;
        snprintf(w->reason, sizeof w->reason, "%s", reason);
        snprintf(w->message, sizeof w->message, "%s", message ? message : "");
    }
    stop_all_locked(w);
    pthread_mutex_unlock(&w->lock);
}

bool pod_worker_wait(pod_worker_t *w, int64_t timeout_ms)
{
    int64_t until = time_mono_ns() + (timeout_ms < 0 ? 0 : timeout_ms) * NS_PER_MS;
    pthread_mutex_lock(&w->lock);
    while (!w->finished) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&w->cond, &w->lock);
            continue;
        }
        struct timespec ts = {.tv_sec = until / NS_PER_SEC, .tv_nsec = until % NS_PER_SEC};
        if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) != 0 && time_mono_ns() >= until) break;
    }
    bool done = w->finished;
    pthread_mutex_unlock(&w->lock);
    return done;
}

bool pod_worker_finished(pod_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    bool done = w->finished;
    pthread_mutex_unlock(&w->lock);
    return done;
}

void pod_worker_free(pod_worker_t *w)
{
    if (!w) return;
    pod_worker_wait(w, -1);
    if (!pthread_equal(w->thread, pthread_self())) pthread_join(w->thread, NULL);
    for (size_t i = 0; i < w->spec->ninit; i++)
        wasmrt_stop_free(w->inits[i].stop);
    for (size_t i = 0; i < w->spec->ncontainers; i++)
        wasmrt_stop_free(w->apps[i].stop);
    free(w->inits);
    free(w->apps);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    json_decref(w->resume);
    podspec_free(w->spec);
    free(w->pod_dir);
    free(w->log_dir);
    free(w);
}

const podspec_t *pod_worker_spec(const pod_worker_t *w)
{
    return w->spec;
}

const char *pod_worker_phase(pod_worker_t *w)
{
    static const char *const phases[] = {"Pending", "Running", "Succeeded", "Failed"};
    pthread_mutex_lock(&w->lock);
    update_phase_locked(w);
    const char *p = phases[0];
    for (size_t i = 0; i < 4; i++)
        if (strcmp(w->phase, phases[i]) == 0) p = phases[i];
    pthread_mutex_unlock(&w->lock);
    return p;
}

/* --- status JSON -------------------------------------------------------------- */

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
    case CSTATE_WAITING:
        if (s->reason[0]) json_object_set_new(inner, "reason", json_string(s->reason));
        if (s->message[0]) json_object_set_new(inner, "message", json_string(s->message));
        break;
    case CSTATE_RUNNING:
        key = "running";
        json_object_set_new(inner, "startedAt", time_json(s->started_at));
        break;
    case CSTATE_TERMINATED:
        key = "terminated";
        json_object_set_new(inner, "exitCode", json_integer(s->exit_code));
        if (s->reason[0]) json_object_set_new(inner, "reason", json_string(s->reason));
        if (s->message[0]) json_object_set_new(inner, "message", json_string(s->message));
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
    json_t *cs =
        json_pack("{s:s, s:o, s:b, s:i, s:s, s:s, s:b}", "name", c->spec->name, "state",
                  state_json(&c->state), "ready", running, "restartCount", c->restart_count,
                  "image", c->spec->image, "imageID", c->image_id, "started", running);
    json_object_set_new(cs, "lastState", c->has_last ? state_json(&c->last) : json_object());
    const char *cid = c->state.container_id[0] ? c->state.container_id
                      : c->has_last            ? c->last.container_id
                                               : "";
    if (cid[0]) json_object_set_new(cs, "containerID", json_string(cid));
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

json_t *pod_worker_status_json(pod_worker_t *w)
{
    const podspec_t *s = w->spec;
    pthread_mutex_lock(&w->lock);
    update_phase_locked(w);
    bool all_running = !w->finished && w->initialized;
    for (size_t i = 0; i < s->ncontainers; i++)
        all_running &= w->apps[i].state.kind == CSTATE_RUNNING;
    for (size_t i = 0; i < s->ninit; i++)
        if (s->init_containers[i].sidecar) all_running &= w->inits[i].state.kind == CSTATE_RUNNING;
    if (all_running && !w->containers_ready) w->t_ready = time_now_ns();
    if (!all_running && w->containers_ready) w->t_ready = time_now_ns();
    w->containers_ready = all_running;
    int64_t t_ready = w->t_ready ? w->t_ready : w->start_time;
    bool completed = strcmp(w->phase, "Succeeded") == 0 || strcmp(w->phase, "Failed") == 0;
    const char *not_ready = completed ? "PodCompleted" : "ContainersNotReady";

    json_t *conds = json_array();
    json_array_append_new(
        conds, condition("PodReadyToStartContainers", w->ready_to_start && !w->finished,
                         w->t_ready_to_start ? w->t_ready_to_start : w->start_time, NULL));
    json_array_append_new(conds,
                          condition("Initialized", w->initialized,
                                    w->t_initialized ? w->t_initialized : w->start_time,
                                    completed ? "PodCompleted" : "ContainersNotInitialized"));
    json_array_append_new(conds, condition("Ready", all_running, t_ready, not_ready));
    json_array_append_new(conds, condition("ContainersReady", all_running, t_ready, not_ready));
    json_array_append_new(conds, condition("PodScheduled", true, w->start_time, NULL));

    const char *ip = w->host.host_ip ? w->host.host_ip : "";
    json_t *status = json_pack("{s:s, s:o, s:o}", "phase", w->phase, "conditions", conds,
                               "startTime", time_json(w->start_time));
    if (ip[0]) {
        json_object_set_new(status, "hostIP", json_string(ip));
        json_object_set_new(status, "hostIPs", json_pack("[{s:s}]", "ip", ip));
        json_object_set_new(status, "podIP", json_string(ip));
        json_object_set_new(status, "podIPs", json_pack("[{s:s}]", "ip", ip));
    }
    if (w->reason[0]) json_object_set_new(status, "reason", json_string(w->reason));
    if (w->message[0]) json_object_set_new(status, "message", json_string(w->message));
    json_t *inits = json_array(), *apps = json_array();
    for (size_t i = 0; i < s->ninit; i++)
        json_array_append_new(inits, container_status_json(&w->inits[i]));
    for (size_t i = 0; i < s->ncontainers; i++)
        json_array_append_new(apps, container_status_json(&w->apps[i]));
    if (s->ninit)
        json_object_set_new(status, "initContainerStatuses", inits);
    else
        json_decref(inits);
    json_object_set_new(status, "containerStatuses", apps);
    pthread_mutex_unlock(&w->lock);
    return status;
}

/* A container interrupted by a stop (node shutdown) is not done: a later
 * wasmlet runs it again if its restart policy allows, or reports it lost. */
static json_t *resume_entry(const crun_t *c)
{
    return json_pack("{s:i, s:b, s:i, s:s, s:s, s:I, s:I, s:s, s:s}", "restartCount",
                     c->restart_count, "done", c->done && !c->interrupted, "exitCode",
                     c->state.exit_code, "reason", c->state.reason, "message", c->state.message,
                     "startedAt", (json_int_t)c->state.started_at, "finishedAt",
                     (json_int_t)c->state.finished_at, "imageID", c->image_id, "containerID",
                     c->state.container_id);
}

json_t *pod_worker_resume_json(pod_worker_t *w)
{
    json_t *r = json_object();
    pthread_mutex_lock(&w->lock);
    json_object_set_new(r, "startTime", json_integer(w->start_time));
    for (size_t i = 0; i < w->spec->ninit; i++)
        json_object_set_new(r, w->inits[i].spec->name, resume_entry(&w->inits[i]));
    for (size_t i = 0; i < w->spec->ncontainers; i++)
        json_object_set_new(r, w->apps[i].spec->name, resume_entry(&w->apps[i]));
    pthread_mutex_unlock(&w->lock);
    return r;
}

size_t pod_worker_summaries(pod_worker_t *w, pod_container_summary_t *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->spec->ninit + w->spec->ncontainers && n < max; i++) {
        crun_t *c = i < w->spec->ninit ? &w->inits[i] : &w->apps[i - w->spec->ninit];
        pod_container_summary_t *s = &out[n++];
        s->name = c->spec->name;
        s->init = c->init;
        s->restart_count = c->restart_count;
        s->exit_code = c->state.kind == CSTATE_TERMINATED ? c->state.exit_code : -1;
        snprintf(s->reason, sizeof s->reason, "%s", c->state.reason);
        snprintf(s->message, sizeof s->message, "%s", c->state.message);
        s->run_ns = c->state.finished_at && c->state.started_at
                        ? c->state.finished_at - c->state.started_at
                        : 0;
    }
    pthread_mutex_unlock(&w->lock);
    return n;
}
