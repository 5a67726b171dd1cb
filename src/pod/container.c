/* container.c: one container's thread (see worker_priv.h).
 *
 * The thread loops: take the newest definition (a spec update may have
 * changed its image), pull, build env and argv, mount, load the module,
 * run it, record how it ended (with its termination message), and then
 * either end or wait out its back-off and start again, as the restart
 * policy says. A spec update that changed the image of a running container
 * stops the run; the loop then starts it again at once from the new image,
 * whatever the restart policy (as the kubelet does), and that counts as a
 * restart.
 *
 * Threads and locking: one thread per container, started by the pod
 * thread (init containers included). It takes w->lock for every change of
 * the container's state and drops it while it pulls, loads, runs, waits
 * out a back-off or calls the host.
 *
 * Restart back-off follows the kubelet: the first restart is immediate,
 * then host.backoff_initial_ms (10 s), doubling up to backoff_max_ms
 * (5 min); a container that ran for backoff_reset_ms (10 min) before
 * ending starts from the beginning again. While it waits, its state is
 * waiting/CrashLoopBackOff.
 *
 * A run's probes and hooks (probes.c) start with it and are stopped when
 * its module ends; a run that wasmlet ended itself (a failed liveness or
 * startup probe, a failed postStart hook) exited with 137 and restarts as
 * the policy and back-off say, like a crash. */
#include "log/crilog.h"
#include "pod/annotations.h"
#include "pod/env.h"
#include "pod/worker_priv.h"
#include "metrics/descriptors.h"
#include "metrics/registry.h"
#include "metrics/served.h"
#include "net/net.h"
#include "util/diag.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"
#include "volume/volume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- output ------------------------------------------------------------------- */

typedef struct output_ctx {
    pod_worker_t *w;
    crun_t *c;
    const podspec_t *spec;
    crilog_writer_t *log;
    strbuf_t line[3];      /* per stream, for host->output */
    pod_term_tail_t *tail; /* FallbackToLogsOnError: the output's tail */
    size_t max_open_files; /* the run's descriptor cap, for the figures */
} output_ctx_t;

static void on_output(void *ctx, int stream, const char *data, size_t len)
{
    output_ctx_t *o = ctx;
    if (o->log) crilog_write(o->log, stream, data, len, NULL);
    if (o->tail) pod_term_tail_feed(o->tail, stream, data, len);
    if (!o->w->host.output || stream < 1 || stream > 2) return;
    strbuf_t *sb = &o->line[stream];
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            o->w->host.output(o->w->host.ctx, o->w, o->c->name, stream, strbuf_str(sb), sb->len);
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
            o->w->host.output(o->w->host.ctx, o->w, o->c->name, s, strbuf_str(&o->line[s]),
                              o->line[s].len);
        strbuf_free(&o->line[s]);
    }
    if (o->log) crilog_close(o->log, NULL);
    o->log = NULL;
}

/* --- preparing a run ------------------------------------------------------------- */

typedef struct prepared {
    pod_pulled_t pulled;
    strvec_t env, argv;
    wasmrt_mount_t *mounts;
    size_t nmounts;
    wasmrt_module_t *module;
    wasmrt_load_info_t load;
    pod_net_policy_t net;       /* a component's network, from the pod's annotations */
    pod_http_serving_t serving; /* a wasi:http component's ports and settings */
    size_t max_open_files;
} prepared_t;

static void prepared_free(prepared_t *p)
{
    free(p->pulled.module_path);
    free(p->pulled.image_id);
    strvec_free(&p->env);
    strvec_free(&p->argv);
    volume_mounts_free(p->mounts, p->nmounts);
    wasmrt_module_release(p->module);
    pod_net_policy_free(&p->net);
    pod_http_serving_free(&p->serving);
    memset(p, 0, sizeof *p);
}

typedef enum prep_result { PREP_OK, PREP_WAIT, PREP_START_FAILED } prep_result_t;

/* Prepares everything a run needs; on failure fills reason for a waiting
 * state (ErrImagePull, CreateContainerConfigError: PREP_WAIT) or a start
 * failure (StartError). */
static prep_result_t prepare(pod_worker_t *w, crun_t *c, prepared_t *p, char *reason,
                             size_t reason_len, err_t *err)
{
    memset(p, 0, sizeof *p);
    const podspec_container_t *cs = c->spec;
    const podspec_t *spec = worker_spec_now(w);
    c->t_pull[0] = c->t_pull[1] = time_mono_ns();
    if (w->host.pull) {
        /* The kubelet's Events: "Pulling" then "Successfully pulled" when a
         * registry is asked, one "already present on machine" when not. The
         * sandbox decision may have pulled the image for this pod already,
         * "Pulling" included (peek_pulling_at): this pull then finds it
         * present and tells how long that took. */
        pthread_mutex_lock(&w->lock);
        int64_t announced = c->peek_pulling_at;
        c->peek_pulling_at = 0;
        pthread_mutex_unlock(&w->lock);
        bool present = w->host.image_present && w->host.image_present(w->host.ctx, cs);
        if (!present && !announced)
            worker_event(w, c, "Normal", "Pulling", "Pulling image \"%s\"", cs->image);
        int64_t t0 = time_mono_ns();
        c->t_pull[0] = t0;
        if (w->host.pull(w->host.ctx, spec, cs, &p->pulled, err) == -1) {
            snprintf(reason, reason_len, "%s",
                     p->pulled.failure_reason ? p->pulled.failure_reason : "ErrImagePull");
            worker_event(w, c, "Warning", "Failed", "Failed to pull image \"%s\": %s", cs->image,
                         err->msg);
            return PREP_WAIT;
        }
        c->t_pull[1] = time_mono_ns();
        if (present && !announced)
            worker_event(w, c, "Normal", "Pulled",
                         "Container image \"%s\" already present on machine", cs->image);
        else
            worker_event(w, c, "Normal", "Pulled", "Successfully pulled image \"%s\" in %.3fs",
                         cs->image, (double)(c->t_pull[1] - (announced ? announced : t0)) / 1e9);
        pthread_mutex_lock(&w->lock);
        if (p->pulled.image_id) snprintf(c->image_id, sizeof c->image_id, "%s", p->pulled.image_id);
        pthread_mutex_unlock(&w->lock);
    }
    if (pod_env_build(&w->host, spec, cs, &p->env, &p->argv, err) == -1) {
        snprintf(reason, reason_len, "CreateContainerConfigError");
        worker_event(w, c, "Warning", "Failed", "Error: %s", err->msg);
        return PREP_WAIT;
    }
    if (volume_mounts(spec, cs, w->pod_dir, &p->mounts, &p->nmounts, err) == -1) {
        snprintf(reason, reason_len, "CreateContainerConfigError");
        worker_event(w, c, "Warning", "Failed", "Error: %s", err->msg);
        return PREP_WAIT;
    }
    if (pod_net_policy_from_annotations(spec, p->mounts, p->nmounts, w->host.host_ip, &p->net,
                                        err) == -1 ||
        pod_max_open_files(spec, w->host.max_open_files, &p->max_open_files, err) == -1) {
        snprintf(reason, reason_len, "CreateContainerConfigError");
        worker_event(w, c, "Warning", "Failed", "Error: %s", err->msg);
        return PREP_WAIT;
    }
    c->t_load[0] = time_mono_ns();
    int lrc = wasmrt_load_file(w->host.rt, p->pulled.module_path, &p->module, &p->load, err);
    c->t_load[1] = time_mono_ns();
    if (lrc == -1) {
        snprintf(reason, reason_len, "StartError");
        worker_event(w, c, "Warning", "Failed", "Error: %s", err->msg);
        return PREP_START_FAILED;
    }
    if (wasmrt_module_kind(p->module) == WASMRT_HTTP_COMPONENT &&
        pod_http_serving_from_spec(spec, cs, &p->serving, err) == -1) {
        snprintf(reason, reason_len, "CreateContainerConfigError");
        worker_event(w, c, "Warning", "Failed", "Error: %s", err->msg);
        return PREP_WAIT;
    }
    pthread_mutex_lock(&w->lock);
    if (!c->image_id[0])
        snprintf(c->image_id, sizeof c->image_id, "%s", wasmrt_module_digest(p->module));
    pthread_mutex_unlock(&w->lock);
    return PREP_OK;
}

/* --- serving a wasi:http component ----------------------------------------------- */

static void on_serving(void *ctx, const char *addrs)
{
    output_ctx_t *o = ctx;
    pthread_mutex_lock(&o->w->lock);
    crun_hooks_start_locked(o->w, o->c);
    pthread_mutex_unlock(&o->w->lock);
    worker_event(o->w, o->c, "Normal", "Serving",
                 "Serving wasi:http on %s (HTTP/1.1, a fresh instance per request)", addrs);
}

static void on_request_done(void *ctx, const wasmrt_http_request_t *req)
{
    output_ctx_t *o = ctx;
    metrics_served_request(o->spec->uid, o->spec->namespace, o->spec->name, o->c->name, req->status,
                           req->outcome != WASMRT_HTTP_ANSWERED, (double)req->duration_ns / 1e9,
                           (double)req->instantiate_ns / 1e9);
}

/* What the run holds now (wasmrt_spec_t's descriptors), for /metrics. */
static void on_descriptors(void *ctx, size_t held)
{
    output_ctx_t *o = ctx;
    metrics_descriptors_set(o->spec->uid, o->spec->namespace, o->spec->name, o->c->name, held,
                            o->max_open_files);
}

/* The run's linear memory now (wasmrt_spec_t's memory): its usage for
 * stats and for the eviction ranking while it runs. */
static void on_memory(void *ctx, uint64_t bytes)
{
    output_ctx_t *o = ctx;
    metrics_container_memory(o->spec->uid, o->c->name, bytes);
}

/* "(a wasi:http component, served on port 8080)" for the Started event. */
static void serving_note(const prepared_t *p, char *out, size_t len)
{
    out[0] = '\0';
    if (wasmrt_module_kind(p->module) != WASMRT_HTTP_COMPONENT) return;
    const wasmrt_http_t *h = &p->serving.http;
    size_t used = (size_t)snprintf(out, len, " (a wasi:http component, served on port%s ",
                                   h->nports > 1 ? "s" : "");
    if (!h->nports)
        used += (size_t)snprintf(out + used, len - used, "%d", WASMRT_HTTP_DEFAULT_PORT);
    for (size_t i = 0; i < h->nports && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s%u", i ? ", " : "", h->ports[i]);
    if (used < len) snprintf(out + used, len - used, ")");
}

/* --- one run ------------------------------------------------------------------------ */

/* The terminated state's message: the runtime's, then (after ": ") what
 * the container left as its termination message (see termination.h). */
static void termination_message(const pod_term_stamp_t *before, const char *file, const char *root,
                                pod_term_tail_t *tail, int exit_code, const char *runtime_msg,
                                char *out, size_t cap)
{
    char *msg = xmalloc(POD_TERM_FILE_MAX + 1);
    pod_term_read(file, root, before, msg, POD_TERM_FILE_MAX + 1);
    if (!msg[0] && tail && exit_code != 0) pod_term_tail_finish(tail, msg, POD_TERM_FILE_MAX + 1);
    const char *rt = runtime_msg ? runtime_msg : "";
    snprintf(out, cap, "%s%s%s", rt, rt[0] && msg[0] ? ": " : "", msg);
    free(msg);
}

/* wasmrt's started callback, on the container's thread: the traced run's
 * instantiate stage. */
static void on_started(void *ctx, int64_t instantiate_ns)
{
    crun_t *c = ctx;
    pod_worker_t *w = c->w;
    pod_trace_t done;
    int64_t now = time_mono_ns();
    pthread_mutex_lock(&w->lock);
    bool whole = false;
    if (w->trace_crun == c && !w->trace.end[METRICS_STAGE_INSTANTIATE]) {
        pod_trace_mark(&w->trace, METRICS_STAGE_INSTANTIATE, now - instantiate_ns, now);
        whole = pod_trace_take(&w->trace, &done);
    }
    pthread_mutex_unlock(&w->lock);
    if (whole) worker_trace_emit(w, &done);
}

/* Runs the container once, unless a spec update came while it prepared
 * (false: nothing ran). Returns after the module ended; the container is
 * EXITED then. */
static bool run_once(pod_worker_t *w, crun_t *c, prepared_t *p)
{
    const podspec_t *spec = worker_spec_now(w);
    output_ctx_t out = {.w = w, .c = c, .spec = spec};
    pod_term_tail_t *tail = NULL;
    if (c->spec->termination_message_policy == TERM_MSG_FALLBACK_TO_LOGS_ON_ERROR) {
        tail = xmalloc(sizeof *tail);
        pod_term_tail_init(tail);
        out.tail = tail;
    }
    const char *root = NULL;
    char *file =
        pod_term_host_path(p->mounts, p->nmounts, c->spec->termination_message_path, &root);
    pod_term_stamp_t before;
    pod_term_stamp(file, &before);

    pthread_mutex_lock(&w->lock);
    if (c->restart_requested) {
        pthread_mutex_unlock(&w->lock);
        free(file);
        if (tail) pod_term_tail_free(tail);
        free(tail);
        return false;
    }
    crun_run_begin_locked(w, c, wasmrt_module_kind(p->module) == WASMRT_HTTP_COMPONENT);
    cstate_set(&c->state, CSTATE_RUNNING, NULL, NULL);
    c->state.started_at = time_now_ns();
    c->state.finished_at = 0;
    c->state.killed = false;
    snprintf(c->state.container_id, sizeof c->state.container_id, "wasmlet://%s-%s-%d",
             spec->uid[0] ? spec->uid : spec->name, c->name, c->restart_count);
    c->runs++;
    /* The run starts with what the container is allocated (resizing.c).
     * A stop that carried live resizes of an earlier run is told the
     * current limits, so none of its older requests is taken. */
    c->actual = c->alloc;
    c->resizing = false;
    c->resize_error[0] = '\0';
    uint64_t memory_limit = crun_memory_limit(w, c);
    uint32_t cpu_limit = (uint32_t)c->alloc.v[POD_RES_CPU_LIMIT];
    if (c->resize_asked) wasmrt_resize(c->stop, memory_limit, cpu_limit);
    crun_transition_locked(w, c, CLC_RUNNING);
    if (!c->init) metrics_pod_started(spec->uid, (double)(time_now_ns() - w->start_time) / 1e9);
    if (!c->init && !w->trace_crun) {
        /* The first app container to run: the start trace follows it. */
        w->trace_crun = c;
        pod_trace_mark(&w->trace, METRICS_STAGE_PULL, c->t_pull[0], c->t_pull[1]);
        pod_trace_mark(&w->trace, METRICS_STAGE_LOAD, c->t_load[0], c->t_load[1]);
        w->trace.begin[METRICS_STAGE_STATUS] = time_mono_ns();
    }
    pthread_mutex_unlock(&w->lock);

    if (w->log_dir) {
        char *dir = xasprintf("%s/%s", w->log_dir, c->name);
        err_t err;
        if (fs_mkdir_p(dir, 0755, &err) == 0) {
            char *path = crilog_run_path(dir, c->restart_count);
            out.log = crilog_open(path, w->host.log_max_bytes, w->host.log_max_files, &err);
            free(path);
        }
        if (!out.log) diag_warn("container %s: no log file: %s", c->name, err.msg);
        free(dir);
    }
    wasmrt_spec_t rs = {
        .argv = (const char *const *)p->argv.items,
        .argc = p->argv.len,
        .env = (const char *const *)p->env.items,
        .envc = p->env.len,
        .mounts = p->mounts,
        .nmounts = p->nmounts,
        .memory_limit = memory_limit,
        .cpu_millicores = cpu_limit,
        .output = on_output,
        .output_ctx = &out,
        .resized = crun_resized,
        .resized_ctx = c,
        .net = p->net.net,
        .started = on_started,
        .started_ctx = c,
        .http = p->serving.http,
        .max_open_files = p->max_open_files,
        /* Held for the run by this thread: the log file and, in a pod's
         * namespace, the host's (net_enter's saved descriptor). */
        .kept_descriptors = (out.log ? 1u : 0u) + (w->netns ? 1u : 0u),
        .descriptors = on_descriptors,
        .descriptors_ctx = &out,
        .memory = on_memory,
        .memory_ctx = &out,
    };
    out.max_open_files = p->max_open_files;
    rs.http.bind_addr = w->host.serve_addr;
    rs.http.serving = on_serving;
    rs.http.request_done = on_request_done;
    rs.http.ctx = &out;
    char note[160];
    serving_note(p, note, sizeof note);
    worker_event(w, c, "Normal", "Created", "Created container %s", c->name);
    worker_event(w, c, "Normal", "Started", "Started container %s%s", c->name, note);
    worker_publish(w);

    wasmrt_result_t res;
    metrics_module_loaded(p->load.source);
    metrics_container_begin(spec->uid, c->name);
    /* The module runs inside its pod's network namespace (this thread
     * only): every socket it opens lives there. w->netns is fixed while
     * container threads exist (worker_priv.h). */
    int saved_ns = -1;
    err_t ns_err;
    if (w->netns && net_enter(w->netns, &saved_ns, &ns_err) == -1) {
        memset(&res, 0, sizeof res);
        res.outcome = WASMRT_START_FAILED;
        res.exit_code = WASMRT_EXIT_START_FAILED;
        snprintf(res.message, sizeof res.message, "%s", ns_err.msg);
    } else {
        wasmrt_run(w->host.rt, p->module, &rs, c->stop, &res);
        if (saved_ns >= 0 && net_leave(&saved_ns, &ns_err) == -1) {
            /* A thread stuck in a pod's namespace would pull the next
             * image from there: nothing sane is left to do. */
            fprintf(stderr, "wasmlet: fatal: %s\n", ns_err.msg);
            abort();
        }
    }
    metrics_container_end(spec->uid, c->name, res.cpu_ns, res.memory_bytes);
    metrics_descriptors_end(spec->uid, c->name);
    pthread_mutex_lock(&w->lock);
    /* A traced run that never got its instance is no start to trace. */
    if (w->trace_crun == c && !w->trace.end[METRICS_STAGE_INSTANTIATE]) w->trace.on = false;
    pthread_mutex_unlock(&w->lock);
    output_finish(&out);
    bool probe_killed = crun_run_end(w, c); /* its Killing event is sent */

    char *msg = xmalloc(CSTATE_MESSAGE_MAX);
    termination_message(&before, file, root, tail, res.exit_code, res.message, msg,
                        CSTATE_MESSAGE_MAX);
    free(file);
    if (tail) pod_term_tail_free(tail);
    free(tail);

    pthread_mutex_lock(&w->lock);
    cstate_set(&c->state, CSTATE_TERMINATED, wasmrt_outcome_reason(&res), msg);
    c->state.exit_code = res.exit_code;
    c->state.finished_at = time_now_ns();
    c->state.killed = res.outcome == WASMRT_STOPPED;
    c->run_ns = res.run_ns;
    bool for_restart = c->restart_requested && w->lc < PLC_STOPPING;
    crun_transition_locked(w, c, CLC_EXITED);
    pthread_mutex_unlock(&w->lock);
    free(msg);
    if (res.outcome == WASMRT_OOM)
        worker_event(w, c, "Warning", "OOMKilled", "Container %s ended: %s", c->name, res.message);
    else if (res.outcome == WASMRT_TRAPPED)
        worker_event(w, c, "Warning", "Failed", "Container %s trapped: %s", c->name, res.message);
    else if (res.outcome == WASMRT_STOPPED && !for_restart && !probe_killed)
        worker_event(w, c, "Normal", "Killing", "Stopped container %s", c->name);
    return true;
}

/* --- the loop ------------------------------------------------------------------------ */

bool container_restarts(const pod_worker_t *w, const crun_t *c, int exit_code)
{
    const podspec_t *s = worker_spec_now(w);
    if (c->spec->sidecar) return true;
    if (c->init) return exit_code != 0 && s->restart_policy != RESTART_NEVER;
    switch (s->restart_policy) {
    case RESTART_ALWAYS:
        return true;
    case RESTART_ON_FAILURE:
        return exit_code != 0;
    case RESTART_NEVER:
        return false;
    }
    return false;
}

/* Whether a stop that ended a run or a wait was for a restart from a new
 * definition, and the pod goes on. */
static bool redefined_locked(const pod_worker_t *w, const crun_t *c)
{
    lock_assert_held(&w->lock);
    return c->restart_requested && w->lc < PLC_STOPPING;
}

/* The start of an attempt: false when the container must not run again.
 * Takes a spec update's definition, with a fresh stop for the new run. */
static bool begin_attempt(pod_worker_t *w, crun_t *c)
{
    pthread_mutex_lock(&w->lock);
    bool go = w->lc < PLC_STOPPING && (!wasmrt_stop_requested(c->stop) || c->restart_requested);
    if (go) {
        if (c->restart_requested) {
            wasmrt_stop_free(c->stop);
            c->stop = wasmrt_stop_new();
            c->restart_requested = false;
        }
        if (c->next_spec) {
            c->spec = c->next_spec;
            c->next_spec = NULL;
            c->image_id[0] = '\0'; /* the new image's comes with its pull */
        }
        crun_transition_locked(w, c, CLC_PREPARING);
    }
    pthread_mutex_unlock(&w->lock);
    return go;
}

/* Waits out the back-off before the next start; false when the container
 * must not start again. reason and message are what the waiting state
 * says (message NULL: the kubelet's crash-loop text). */
static bool back_off(pod_worker_t *w, crun_t *c, const char *reason, const char *message)
{
    const podspec_t *s = worker_spec_now(w);
    int64_t delay = c->backoff_ms;
    char msg[1100];
    if (message)
        snprintf(msg, sizeof msg, "%s", message);
    else
        snprintf(msg, sizeof msg, "back-off %llds restarting failed container=%s pod=%s_%s(%s)",
                 (long long)(delay / 1000), c->name, s->name, s->namespace, s->uid);
    pthread_mutex_lock(&w->lock);
    if (delay > 0) {
        if (c->state.kind == CSTATE_TERMINATED) cstate_copy(&c->last, &c->state);
        cstate_set(&c->state, CSTATE_WAITING, reason, msg);
    }
    crun_transition_locked(w, c, CLC_BACKOFF);
    pthread_mutex_unlock(&w->lock);
    if (delay > 0) {
        worker_event(w, c, "Warning", "BackOff", "%s", msg);
        worker_publish(w);
    }
    /* Next delay: first restart immediate, then initial, doubling to max. */
    c->backoff_ms = c->backoff_ms == 0 ? w->host.backoff_initial_ms : c->backoff_ms * 2;
    if (c->backoff_ms > w->host.backoff_max_ms) c->backoff_ms = w->host.backoff_max_ms;
    if (!wasmrt_stop_wait(c->stop, delay)) return true;
    pthread_mutex_lock(&w->lock);
    bool go = redefined_locked(w, c);
    pthread_mutex_unlock(&w->lock);
    return go;
}

/* A setup error (pull, configuration): back-off and retry, or, for
 * `wasmlet run`, the end. False when the container must not start again. */
static bool setup_failed(pod_worker_t *w, crun_t *c, const char *reason, const err_t *err)
{
    pthread_mutex_lock(&w->lock);
    cstate_set(&c->state, CSTATE_WAITING, reason, err->msg);
    pthread_mutex_unlock(&w->lock);
    worker_publish(w);
    if (w->host.give_up_on_setup_error) {
        /* No retries in this mode: the container ends here. */
        pthread_mutex_lock(&w->lock);
        cstate_set(&c->state, CSTATE_TERMINATED, reason, err->msg);
        c->state.exit_code = WASMRT_EXIT_START_FAILED;
        c->state.finished_at = time_now_ns();
        crun_transition_locked(w, c, CLC_DONE);
        pthread_mutex_unlock(&w->lock);
        return false;
    }
    /* As the kubelet words them: a pull waits in ImagePullBackOff
     * (doubling), a configuration error stays CreateContainerConfigError
     * and is retried every backoff_initial_ms. */
    bool pulling = strcmp(reason, "ErrImagePull") == 0;
    char msg[1100];
    if (pulling)
        snprintf(msg, sizeof msg, "Back-off pulling image \"%s\": ErrImagePull: %s", c->spec->image,
                 err->msg);
    else
        snprintf(msg, sizeof msg, "%s", err->msg);
    if (c->backoff_ms == 0 || !pulling) c->backoff_ms = w->host.backoff_initial_ms;
    return back_off(w, c, pulling ? "ImagePullBackOff" : reason, msg);
}

/* The container's whole life: runs until it is done or the pod stops. */
static void container_loop(pod_worker_t *w, crun_t *c)
{
    while (begin_attempt(w, c)) {
        prepared_t p;
        err_t err;
        char reason[64];
        /* The pod thread's pull for its sandbox decision was this
         * container's first, and failed: start from there. */
        pthread_mutex_lock(&w->lock);
        bool pull_failed = c->first_pull_reason[0] != '\0';
        if (pull_failed) {
            snprintf(reason, sizeof reason, "%s", c->first_pull_reason);
            err = c->first_pull_err;
            c->first_pull_reason[0] = '\0';
        }
        pthread_mutex_unlock(&w->lock);
        if (pull_failed) {
            if (!setup_failed(w, c, reason, &err)) break;
            continue;
        }
        prep_result_t pr = prepare(w, c, &p, reason, sizeof reason, &err);
        if (pr == PREP_WAIT) {
            prepared_free(&p);
            if (!setup_failed(w, c, reason, &err)) break;
            continue;
        }
        int64_t started = time_mono_ns();
        bool ran = true;
        if (pr == PREP_START_FAILED) {
            pthread_mutex_lock(&w->lock);
            cstate_set(&c->state, CSTATE_TERMINATED, "StartError", err.msg);
            c->state.exit_code = WASMRT_EXIT_START_FAILED;
            c->state.started_at = c->state.finished_at = time_now_ns();
            c->state.killed = false;
            crun_transition_locked(w, c, CLC_EXITED);
            pthread_mutex_unlock(&w->lock);
        } else {
            ran = run_once(w, c, &p);
        }
        prepared_free(&p);
        if (!ran) continue; /* redefined while it prepared: prepare the new one */
        if (time_mono_ns() - started >= w->host.backoff_reset_ms * NS_PER_MS) c->backoff_ms = 0;

        pthread_mutex_lock(&w->lock);
        bool redefined = redefined_locked(w, c);
        bool again =
            redefined || (w->lc < PLC_STOPPING && container_restarts(w, c, c->state.exit_code));
        if (!again) crun_transition_locked(w, c, CLC_DONE);
        pthread_mutex_unlock(&w->lock);
        worker_publish(w);
        if (!again) break;
        /* A new definition starts at once; a restart waits its back-off. */
        if (!redefined && !back_off(w, c, "CrashLoopBackOff", NULL)) break;
        pthread_mutex_lock(&w->lock);
        if (c->state.kind == CSTATE_TERMINATED) cstate_copy(&c->last, &c->state);
        c->restart_count++;
        cstate_set(&c->state, CSTATE_WAITING, "ContainerCreating", NULL);
        pthread_mutex_unlock(&w->lock);
    }
    pthread_mutex_lock(&w->lock);
    if (c->lc != CLC_DONE) {
        /* Stopped before or between runs. */
        if (c->state.kind == CSTATE_WAITING && c->last.kind == CSTATE_TERMINATED) {
            cstate_copy(&c->state, &c->last);
        } else if (c->state.kind == CSTATE_WAITING) {
            cstate_set(&c->state, CSTATE_TERMINATED, "ContainerStatusUnknown",
                       "The container could not be started before the pod stopped");
            c->state.exit_code = WASMRT_EXIT_KILLED;
            c->state.finished_at = time_now_ns();
        }
        crun_transition_locked(w, c, CLC_DONE);
    }
    pthread_mutex_unlock(&w->lock);
    worker_publish(w);
}

void *container_main(void *arg)
{
    crun_t *c = arg;
    char name[16];
    snprintf(name, sizeof name, "ctr:%s", c->name);
    thread_set_name(name);
    container_loop(c->w, c);
    return NULL;
}
