/* run.c: running one container to its end.
 *
 * Each container gets a store of its own holding its WASI context (argv,
 * env, preopened mounts, empty stdin, stdout/stderr to the caller's output
 * callback) and its limits, and is instantiated from the module's
 * pre-linked instance. The calling thread runs _start and blocks until the
 * module exits, traps, outgrows its memory limit or is stopped.
 *
 * Memory limit: the store's limiter caps linear memory and, through
 * wasmlet_context_trap_on_memory_limit (deps/wasmtime-capi), turns a
 * refused memory.grow into a trap, so a module that outgrows its limit ends
 * at once as OOMKilled, like a container killed by the kernel's OOM killer,
 * instead of running on with malloc returning NULL.
 *
 * A component takes the same path up to its WASI context, and then
 * component.c's (its memory limit is summed over all its memories).
 *
 * CPU limit: at every epoch tick the store's callback compares the thread's
 * CPU time in the current 100 ms period with the quota (limits.cpu of the
 * period, as CFS bandwidth control does for containers) and, once the quota
 * is spent, sleeps until the period ends. A module is single-threaded, so a
 * limit of 1000m or more never throttles.
 *
 * In-place resize (wasmrt_resize): the epoch callback, and poll_oneoff
 * while the module sleeps, take a pending request into the store: a new
 * quota from the next period on; a new memory cap through the limiter
 * (the stock one of a core module, the summed one of a component), unless
 * it is below the linear memory already held, which cannot shrink: then
 * nothing of the request is applied and the caller is told the usage.
 *
 * Descriptors: the store's cap (wasmlet_context_set_descriptor_cap) is
 * max_open_files less what the caller keeps for the container; the figure
 * for /metrics (spec->descriptors) is counted on this thread only, where
 * the store may be read: after instantiation, at epoch ticks (at most every
 * WASMRT_DESCRIPTOR_SAMPLE_MS), when a core module goes to sleep, and
 * (told by the wrapper's observer) when a component is about to wait in
 * wasi:io/poll. The run's linear memory (spec->memory) is sampled at the
 * same points, so a running container's memory usage is live in stats and
 * in the eviction ranking. */
#include "wasm/internal.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CPU_PERIOD_NS (100 * NS_PER_MS)

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static ptrdiff_t on_stdout(void *data, const unsigned char *buf, size_t len)
{
    const wasmrt_spec_t *spec = data;
    if (spec->output) spec->output(spec->output_ctx, 1, (const char *)buf, len);
    return (ptrdiff_t)len;
}

static ptrdiff_t on_stderr(void *data, const unsigned char *buf, size_t len)
{
    const wasmrt_spec_t *spec = data;
    if (spec->output) spec->output(spec->output_ctx, 2, (const char *)buf, len);
    return (ptrdiff_t)len;
}

/* The quota of a CPU limit (0: none; a module is single-threaded, so
 * 1000m or more never throttles). */
static void set_cpu_limit(wasmrt_run_ctx_t *run, uint32_t millicores)
{
    run->cpu_millicores = millicores;
    if (millicores > 0 && millicores < 1000) {
        if (run->cpu_quota_ns == 0) {
            run->period_start_mono = time_mono_ns();
            run->period_start_cpu = thread_cpu_ns();
        }
        run->cpu_period_ns = CPU_PERIOD_NS;
        run->cpu_quota_ns = CPU_PERIOD_NS * millicores / 1000;
    } else {
        run->cpu_quota_ns = 0;
    }
}

/* Bytes of linear memory the run holds now. */
static uint64_t memory_usage(wasmrt_run_ctx_t *run, wasmtime_context_t *cx)
{
    if (run->has_memory) return wasmtime_memory_data_size(cx, &run->memory);
    return wasmlet_context_memory_total(cx);
}

void wasmrt_resize_apply(wasmrt_run_ctx_t *run, wasmtime_context_t *cx)
{
    wasmrt_stop_t *stop = run->stop;
    if (!stop || atomic_load(&stop->resize_gen) == run->resize_seen) return;
    pthread_mutex_lock(&stop->lock);
    run->resize_seen = atomic_load(&stop->resize_gen);
    uint64_t memory = stop->want_memory;
    uint32_t cpu = stop->want_cpu;
    pthread_mutex_unlock(&stop->lock);
    uint64_t usage = memory_usage(run, cx);
    bool ok = true;
    if (memory != run->memory_limit) {
        size_t cap = memory ? (size_t)memory : SIZE_MAX;
        if (memory && memory < usage)
            ok = false;
        else if (run->kind == WASMRT_COMPONENT)
            ok = wasmlet_context_set_memory_limit_total(cx, cap);
        else if (run->memory_limit) /* the stock limiter is installed */
            wasmlet_context_trap_on_memory_limit(cx, cap);
        else
            ok = false; /* started without a limiter: none can be added now */
    }
    if (ok) {
        run->memory_limit = memory;
        set_cpu_limit(run, cpu);
    }
    if (run->spec->resized) run->spec->resized(run->spec->resized_ctx, ok, memory, cpu, usage);
}

/* Reports what the store holds (held) and the caller keeps, if changed. */
static void descriptors_report(wasmrt_run_ctx_t *run, size_t held)
{
    const wasmrt_spec_t *spec = run->spec;
    held += spec->kept_descriptors;
    if (run->fds_reported_any && held == run->fds_reported) return;
    run->fds_reported = held;
    run->fds_reported_any = true;
    spec->descriptors(spec->descriptors_ctx, held);
}

void wasmrt_usage_sample(wasmrt_run_ctx_t *run, wasmtime_context_t *cx, bool now)
{
    const wasmrt_spec_t *spec = run->spec;
    if (!spec->descriptors && !spec->memory) return;
    int64_t t = time_mono_ns();
    if (!now && run->sampled_any && t - run->sampled_ns < WASMRT_DESCRIPTOR_SAMPLE_MS * NS_PER_MS)
        return;
    run->sampled_ns = t;
    if (spec->descriptors) descriptors_report(run, wasmlet_context_descriptors_held(cx));
    if (spec->memory) {
        uint64_t bytes = memory_usage(run, cx);
        if (!run->sampled_any || bytes != run->memory_reported) {
            run->memory_reported = bytes;
            spec->memory(spec->memory_ctx, bytes);
        }
    }
    run->sampled_any = true;
}

void wasmrt_descriptors_observed(void *data, size_t held)
{
    wasmrt_run_ctx_t *run = data;
    run->sampled_ns = time_mono_ns();
    descriptors_report(run, held);
}

size_t wasmrt_store_descriptor_cap(const wasmrt_spec_t *spec)
{
    if (!spec->max_open_files) return 0;
    return spec->max_open_files > spec->kept_descriptors
               ? spec->max_open_files - spec->kept_descriptors
               : 1;
}

static wasmtime_error_t *on_epoch(wasmtime_context_t *cx, void *data, uint64_t *delta,
                                  wasmtime_update_deadline_kind_t *kind)
{
    wasmrt_run_ctx_t *run = data;
    *kind = WASMTIME_UPDATE_DEADLINE_CONTINUE;
    *delta = 1;
    if (wasmrt_stop_requested(run->stop)) {
        run->stopped = true;
        return wasmtime_error_new("container stopped");
    }
    wasmrt_resize_apply(run, cx);
    wasmrt_usage_sample(run, cx, false);
    if (run->cpu_quota_ns > 0) {
        int64_t now = time_mono_ns();
        if (now - run->period_start_mono >= run->cpu_period_ns) {
            run->period_start_mono = now;
            run->period_start_cpu = thread_cpu_ns();
        } else if (thread_cpu_ns() - run->period_start_cpu >= run->cpu_quota_ns) {
            if (wasmrt_stop_wait_until(run->stop, run->period_start_mono + run->cpu_period_ns)) {
                run->stopped = true;
                return wasmtime_error_new("container stopped");
            }
            run->period_start_mono = time_mono_ns();
            run->period_start_cpu = thread_cpu_ns();
        }
    }
    return NULL;
}

static void fail_start(wasmrt_result_t *result, const char *fmt, const char *detail)
{
    result->outcome = WASMRT_START_FAILED;
    result->exit_code = WASMRT_EXIT_START_FAILED;
    snprintf(result->message, sizeof result->message, fmt, detail);
}

static uint64_t memory_size(wasmtime_context_t *cx, const wasmtime_instance_t *inst)
{
    wasmtime_extern_t item;
    if (!wasmtime_instance_export_get(cx, inst, "memory", 6, &item)) return 0;
    uint64_t size = 0;
    if (item.kind == WASMTIME_EXTERN_MEMORY) size = wasmtime_memory_data_size(cx, &item.of.memory);
    wasmtime_extern_delete(&item);
    return size;
}

/* Sets the WASI context: argv, env, stdio, the mounts and, for a
 * component, its network. */
static int configure_wasi(wasmtime_context_t *cx, const wasmrt_spec_t *spec, wasmrt_kind_t kind,
                          wasmrt_result_t *result)
{
    wasi_config_t *wasi = wasi_config_new();
    if (!wasi_config_set_argv(wasi, spec->argc, (const char **)spec->argv)) {
        wasi_config_delete(wasi);
        fail_start(result, "%s", "invalid argv (not UTF-8)");
        return -1;
    }
    const char **names = xcalloc(spec->envc + 1, sizeof *names);
    const char **values = xcalloc(spec->envc + 1, sizeof *values);
    char **owned = xcalloc(spec->envc + 1, sizeof *owned);
    for (size_t i = 0; i < spec->envc; i++) {
        owned[i] = xstrdup(spec->env[i]);
        char *eq = strchr(owned[i], '=');
        if (eq) *eq = '\0';
        names[i] = owned[i];
        values[i] = eq ? eq + 1 : "";
    }
    bool env_ok = wasi_config_set_env(wasi, spec->envc, names, values);
    for (size_t i = 0; i < spec->envc; i++)
        free(owned[i]);
    free(owned);
    free(names);
    free(values);
    if (!env_ok) {
        wasi_config_delete(wasi);
        fail_start(result, "%s", "invalid environment (not UTF-8)");
        return -1;
    }
    wasm_byte_vec_t empty;
    wasm_byte_vec_new_empty(&empty);
    wasi_config_set_stdin_bytes(wasi, &empty);
    wasi_config_set_stdout_custom(wasi, on_stdout, (void *)spec, NULL);
    wasi_config_set_stderr_custom(wasi, on_stderr, (void *)spec, NULL);
    for (size_t i = 0; i < spec->nmounts; i++) {
        const wasmrt_mount_t *m = &spec->mounts[i];
        if (!wasi_config_preopen_dir(wasi, m->host_path, m->guest_path, !m->read_only)) {
            wasi_config_delete(wasi);
            char what[900];
            snprintf(what, sizeof what, "%s at %s", m->host_path, m->guest_path);
            fail_start(result, "cannot open the mount %s", what);
            return -1;
        }
    }
    if (kind == WASMRT_COMPONENT) wasmrt_net_configure(wasi, spec);
    wasmtime_error_t *error = wasmtime_context_set_wasi(cx, wasi); /* takes wasi */
    size_t cap = wasmrt_store_descriptor_cap(spec);
    if (!error && cap) error = wasmlet_context_set_descriptor_cap(cx, cap);
    if (error) {
        char msg[512];
        wasmrt_error_message(error, msg, sizeof msg);
        wasmtime_error_delete(error);
        fail_start(result, "WASI set-up failed: %s", msg);
        return -1;
    }
    return 0;
}

int wasmrt_run(wasmrt_t *rt, wasmrt_module_t *mod, const wasmrt_spec_t *spec, wasmrt_stop_t *stop,
               wasmrt_result_t *result)
{
    memset(result, 0, sizeof *result);
    if (!rt || !mod || !spec || spec->argc == 0) return -1;
    int64_t t0 = time_mono_ns();
    int64_t cpu0 = thread_cpu_ns();
    if (wasmrt_stop_requested(stop)) {
        result->outcome = WASMRT_STOPPED;
        result->exit_code = WASMRT_EXIT_KILLED;
        snprintf(result->message, sizeof result->message, "stopped before it started");
        return 0;
    }

    if (mod->kind == WASMRT_HTTP_COMPONENT) {
        wasmrt_http_serve(rt, mod, spec, stop, result);
        return 0;
    }
    wasmrt_run_ctx_t run = {.rt = rt,
                            .stop = stop,
                            .spec = spec,
                            .kind = mod->kind,
                            .memory_limit = spec->memory_limit};
    set_cpu_limit(&run, spec->cpu_millicores);
    wasmtime_store_t *store = wasmtime_store_new(rt->engine, &run, NULL);
    wasmtime_context_t *cx = wasmtime_store_context(store);
    if (spec->memory_limit > 0 && mod->kind == WASMRT_CORE_MODULE) {
        wasmtime_store_limiter(store, (int64_t)spec->memory_limit, -1, -1, -1, -1);
        wasmlet_context_trap_on_memory_limit(cx, (size_t)spec->memory_limit);
    }
    wasmtime_context_set_epoch_deadline(cx, 1);
    wasmtime_store_epoch_deadline_callback(store, on_epoch, &run, NULL);

    if (configure_wasi(cx, spec, mod->kind, result) == -1) goto out;
    if (mod->kind == WASMRT_COMPONENT) {
        wasmrt_component_run(&run, mod, store, result);
        goto out;
    }

    wasmtime_instance_t inst;
    wasm_trap_t *trap = NULL;
    wasmtime_error_t *error = wasmtime_instance_pre_instantiate(mod->pre, cx, &inst, &trap);
    if (error || trap) {
        char msg[900];
        bool oom = wasmrt_take_failure(error, trap, msg, sizeof msg) && spec->memory_limit;
        if (oom) {
            result->outcome = WASMRT_OOM;
            result->exit_code = WASMRT_EXIT_KILLED;
            snprintf(result->message, sizeof result->message,
                     "the module's initial memory exceeds the memory limit of %llu bytes",
                     (unsigned long long)spec->memory_limit);
        } else {
            fail_start(result, "instantiation failed: %s", msg);
        }
        goto out;
    }
    result->instantiate_ns = time_mono_ns() - t0;
    wasmtime_extern_t item;
    if (wasmtime_instance_export_get(cx, &inst, "memory", 6, &item)) {
        if (item.kind == WASMTIME_EXTERN_MEMORY) {
            run.memory = item.of.memory;
            run.has_memory = true;
        }
        wasmtime_extern_delete(&item);
    }
    wasmrt_usage_sample(&run, cx, true);
    if (spec->started) spec->started(spec->started_ctx, result->instantiate_ns);

    wasmtime_extern_t start;
    if (!wasmtime_instance_export_get(cx, &inst, "_start", 6, &start) ||
        start.kind != WASMTIME_EXTERN_FUNC) {
        fail_start(result, "%s", "the module has no _start function");
        goto out;
    }
    int64_t t1 = time_mono_ns();
    error = wasmtime_func_call(cx, &start.of.func, NULL, 0, NULL, 0, &trap);
    result->run_ns = time_mono_ns() - t1;
    if (run.exited) { /* our proc_exit unwound with a trap */
        result->outcome = WASMRT_EXITED;
        result->exit_code = run.exit_code;
        if (error) wasmtime_error_delete(error);
        if (trap) wasm_trap_delete(trap);
    } else if (error || trap) {
        bool oom = wasmrt_take_failure(error, trap, result->message, sizeof result->message) &&
                   run.memory_limit;
        if (run.stopped) {
            result->outcome = WASMRT_STOPPED;
            result->exit_code = WASMRT_EXIT_KILLED;
            snprintf(result->message, sizeof result->message, "stopped");
        } else if (oom) {
            result->outcome = WASMRT_OOM;
            result->exit_code = WASMRT_EXIT_KILLED;
            snprintf(result->message, sizeof result->message,
                     "linear memory would exceed the limit of %llu bytes",
                     (unsigned long long)run.memory_limit);
        } else {
            result->outcome = WASMRT_TRAPPED;
            result->exit_code = WASMRT_EXIT_TRAP;
        }
    } else {
        result->outcome = WASMRT_EXITED;
        result->exit_code = 0;
    }
    result->memory_bytes = memory_size(cx, &inst);
out:
    wasmtime_store_delete(store);
    result->cpu_ns = (uint64_t)(thread_cpu_ns() - cpu0);
    return 0;
}

const char *wasmrt_outcome_reason(const wasmrt_result_t *result)
{
    switch (result->outcome) {
    case WASMRT_EXITED:
        return result->exit_code == 0 ? "Completed" : "Error";
    case WASMRT_TRAPPED:
        return "Error";
    case WASMRT_OOM:
        return "OOMKilled";
    case WASMRT_STOPPED:
        return result->exit_code == 0 ? "Completed" : "Error";
    case WASMRT_START_FAILED:
        return "StartError";
    }
    return "Error";
}
