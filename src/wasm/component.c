/* component.c: WASI preview 2 components as containers.
 *
 * A component is a wasi:cli/command: it exports wasi:cli/run, whose run
 * function is the container's main. It gets what a core module gets (argv,
 * env, the preopened mounts, stdout/stderr to the output callback, an empty
 * stdin, the same limits and stop), through the same store set-up as a
 * core module (run.c), plus a network of its own choosing (net.c).
 *
 * The linker (rt->clinker, shared and read-only once built) holds:
 *  - Wasmtime's WASI preview 2 (wasmtime_component_linker_add_wasip2);
 *  - wasi:io/poll and wasi:io/streams again, with blocking waits that the
 *    store's cancel token ends (the stop's token, stop.c): a component
 *    sleeping or waiting on a socket is stopped at once, where epoch
 *    interruption cannot reach it;
 *  - wasi:http/outgoing-handler through the store's policy (net.c).
 *
 * How a component ends: run returns ok (exit 0) or err (exit 1);
 * wasi:cli/exit's exit ends it with 0 or 1 (Wasmtime's I32Exit) and
 * exit-with-code with its code; a trap is exit 134 with the trap's cause;
 * a memory growth past the limit, summed over all the component's
 * memories (wasmlet_store_limit_memory_total), is OOMKilled; a stop is
 * exit 137. */
#include "wasm/internal.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wasmrt_component_linker_new(wasmrt_t *rt, err_t *err)
{
    rt->clinker = wasmtime_component_linker_new(rt->engine);
    wasmtime_error_t *error = wasmtime_component_linker_add_wasip2(rt->clinker);
    if (error) return wasmrt_error(err, error, "link WASI preview 2");
    error = wasmlet_component_linker_cap_descriptors(rt->clinker); /* spec->max_open_files */
    if (error) return wasmrt_error(err, error, "cap WASI descriptors");
    error = wasmlet_component_linker_add_cancellable_waits(rt->clinker);
    if (error) return wasmrt_error(err, error, "link cancellable WASI waits");
    error = wasmlet_component_linker_add_wasi_http(rt->clinker);
    if (error) return wasmrt_error(err, error, "link wasi:http");
    return 0;
}

/* --- checks at load ------------------------------------------------------------- */

static bool starts_with(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

/* Whether a WASI 0.2 host can link an interface of this version (0.2.x). */
static bool wasi_version_links(const char *name, size_t len)
{
    const char *at = memchr(name, '@', len);
    if (!at) return true;
    size_t rest = len - (size_t)(at + 1 - name);
    return starts_with(at + 1, rest, "0.2.") || (rest == 3 && memcmp(at + 1, "0.2", 3) == 0);
}

/* Finds the run function of wasi:cli/run, or says what the component is
 * instead. */
static int find_run(wasmrt_t *rt, const wasmtime_component_t *component,
                    wasmtime_component_export_index_t **run, wasmrt_kind_t *kind, err_t *err)
{
    wasmtime_component_type_t *ty = wasmtime_component_type(component);
    size_t n = wasmtime_component_type_export_count(ty, rt->engine);
    strbuf_t names = STRBUF_INIT;
    const char *run_name = NULL, *http_name = NULL, *other_run = NULL;
    size_t run_len = 0, http_len = 0, other_len = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name;
        size_t len;
        wasmtime_component_item_t item;
        if (!wasmtime_component_type_export_nth(ty, rt->engine, i, &name, &len, &item)) continue;
        wasmtime_component_item_delete(&item);
        strbuf_printf(&names, "%s%.*s", names.len ? ", " : "", (int)len, name);
        if (starts_with(name, len, "wasi:cli/run@")) {
            if (wasi_version_links(name, len)) {
                run_name = name;
                run_len = len;
            } else {
                other_run = name;
                other_len = len;
            }
        } else if (starts_with(name, len, "wasi:http/incoming-handler@")) {
            http_name = name;
            http_len = len;
        }
    }
    int rc = -1;
    if (run_name) {
        wasmtime_component_export_index_t *inst =
            wasmtime_component_get_export_index(component, NULL, run_name, run_len);
        *run = inst ? wasmtime_component_get_export_index(component, inst, "run", 3) : NULL;
        if (inst) wasmtime_component_export_index_delete(inst);
        if (*run)
            rc = 0;
        else
            err_set(err, "the component's %.*s export has no run function", (int)run_len, run_name);
    } else if (other_run) {
        err_set(err,
                "the component exports %.*s, a WASI version this host cannot run: it runs "
                "WASI 0.2 components (wasi:cli/run@0.2.x, up to %s)",
                (int)other_len, other_run, WASMRT_WASI_P2_VERSION);
    } else if (http_name && wasi_version_links(http_name, http_len)) {
        *kind = WASMRT_HTTP_COMPONENT; /* served: wasmrt_http_serve */
        rc = 0;
    } else if (http_name) {
        err_set(err,
                "the component exports %.*s, a WASI version this host cannot serve: it serves "
                "WASI 0.2 components (wasi:http/incoming-handler@0.2.x, up to %s)",
                (int)http_len, http_name, WASMRT_WASI_P2_VERSION);
    } else {
        err_set(err,
                "the component exports neither wasi:cli/run (the entry point of a "
                "wasi:cli/command component) nor wasi:http/incoming-handler (that of a "
                "wasi:http/proxy component); it exports %s",
                names.len ? strbuf_str(&names) : "nothing");
    }
    strbuf_free(&names);
    wasmtime_component_type_delete(ty);
    return rc;
}

typedef struct unsatisfied {
    strbuf_t names;
    strbuf_t other; /* a cause that names no import */
    bool old_or_new_wasi;
} unsatisfied_t;

static void on_unsatisfied(void *data, const char *name, size_t name_len, const char *why,
                           size_t why_len)
{
    unsatisfied_t *u = data;
    if (name_len == 0) {
        if (!u->other.len) strbuf_printf(&u->other, "%.*s", (int)why_len, why);
        return;
    }
    strbuf_printf(&u->names, "%s%.*s", u->names.len ? ", " : "", (int)name_len, name);
    if (starts_with(name, name_len, "wasi:") && !wasi_version_links(name, name_len)) {
        strbuf_printf(&u->names, " (a WASI version this host cannot link: it has WASI %s)",
                      WASMRT_WASI_P2_VERSION);
        u->old_or_new_wasi = true;
    } else if (why_len) {
        /* why is not NUL-terminated: a bounded copy for the searches. */
        char cause[201];
        snprintf(cause, sizeof cause, "%.*s", (int)(why_len > 200 ? 200 : why_len), why);
        if (!strstr(cause, "not found") && !strstr(cause, "expected"))
            strbuf_printf(&u->names, " (%s)", cause);
    }
}

int wasmrt_component_check(wasmrt_t *rt, const wasmtime_component_t *component,
                           wasmtime_component_export_index_t **run, wasmrt_kind_t *kind, err_t *err)
{
    *run = NULL;
    if (find_run(rt, component, run, kind, err) == -1) return -1;
    unsatisfied_t u = {STRBUF_INIT, STRBUF_INIT, false};
    ptrdiff_t n = wasmlet_component_linker_unsatisfied(rt->clinker, component, on_unsatisfied, &u);
    int rc = 0;
    if (n < 0) {
        rc = err_set(err, "cannot check the component's imports (internal error)");
    } else if (u.names.len) {
        rc = err_set(err,
                     "the component imports what wasmlet does not provide: %s; a container "
                     "gets WASI %s (wasi:cli, wasi:clocks, wasi:filesystem, wasi:io, wasi:random, "
                     "wasi:sockets) and wasi:http/outgoing-handler",
                     strbuf_str(&u.names), WASMRT_WASI_P2_VERSION);
    } else if (n > 0) {
        rc = err_set(err, "the component's imports do not link: %s",
                     u.other.len ? strbuf_str(&u.other) : "unknown reason");
    }
    strbuf_free(&u.names);
    strbuf_free(&u.other);
    if (rc == -1) {
        wasmtime_component_export_index_delete(*run);
        *run = NULL;
    }
    return rc;
}

/* --- running -------------------------------------------------------------------- */

static void stopped(wasmrt_result_t *result)
{
    result->outcome = WASMRT_STOPPED;
    result->exit_code = WASMRT_EXIT_KILLED;
    snprintf(result->message, sizeof result->message, "stopped");
}

static void oom(wasmrt_result_t *result, uint64_t limit, bool at_start)
{
    result->outcome = WASMRT_OOM;
    result->exit_code = WASMRT_EXIT_KILLED;
    snprintf(result->message, sizeof result->message,
             at_start ? "the component's initial memories exceed the memory limit of %llu bytes"
                      : "the component's memories together would exceed the memory limit of "
                        "%llu bytes",
             (unsigned long long)limit);
}

/* How a failed call ended: exit (Wasmtime's I32Exit, from wasi:cli/exit's
 * exit or exit-with-code), stop, OOM or a trap. Takes error. */
static void ended_with_error(wasmrt_run_ctx_t *run, wasmtime_error_t *error,
                             wasmrt_result_t *result)
{
    int status;
    if (run->exited) {
        result->outcome = WASMRT_EXITED;
        result->exit_code = run->exit_code;
        wasmtime_error_delete(error);
        return;
    }
    if (wasmtime_error_exit_status(error, &status)) {
        result->outcome = WASMRT_EXITED;
        result->exit_code = status & 0xff;
        wasmtime_error_delete(error);
        return;
    }
    bool memory = wasmrt_take_failure(error, NULL, result->message, sizeof result->message);
    if (run->stopped || wasmrt_stop_requested(run->stop)) {
        stopped(result);
    } else if (memory && run->memory_limit) {
        oom(result, run->memory_limit, false);
    } else {
        result->outcome = WASMRT_TRAPPED;
        result->exit_code = WASMRT_EXIT_TRAP;
    }
}

void wasmrt_component_run(wasmrt_run_ctx_t *run, wasmrt_module_t *mod, wasmtime_store_t *store,
                          wasmrt_result_t *result)
{
    const wasmrt_spec_t *spec = run->spec;
    wasmtime_context_t *cx = wasmtime_store_context(store);
    int64_t t0 = time_mono_ns();
    /* Always the summed limiter: it also counts the memory for the figures. */
    wasmtime_error_t *error = wasmlet_store_limit_memory_total(
        store, spec->memory_limit ? (size_t)spec->memory_limit : SIZE_MAX);
    if (!error && run->stop) error = wasmlet_context_set_cancel_token(cx, run->stop->token);
    /* run outlives the store (wasmrt_run deletes it before returning). */
    if (!error && spec->descriptors)
        error = wasmlet_context_set_descriptor_observer(cx, wasmrt_descriptors_observed, run);
    if (error) {
        char msg[512];
        wasmrt_take_failure(error, NULL, msg, sizeof msg);
        result->outcome = WASMRT_START_FAILED;
        result->exit_code = WASMRT_EXIT_START_FAILED;
        snprintf(result->message, sizeof result->message, "store set-up failed: %s", msg);
        return;
    }
    if (wasmrt_net_http_policy(cx, spec, result->message, sizeof result->message) == -1) {
        result->outcome = WASMRT_START_FAILED;
        result->exit_code = WASMRT_EXIT_START_FAILED;
        return;
    }

    wasmtime_component_instance_t inst;
    error = wasmtime_component_linker_instantiate(run->rt->clinker, cx, mod->component, &inst);
    if (error) {
        if (run->stopped || wasmrt_stop_requested(run->stop)) {
            wasmtime_error_delete(error);
            stopped(result);
            return;
        }
        char msg[900];
        if (wasmrt_take_failure(error, NULL, msg, sizeof msg) && spec->memory_limit) {
            oom(result, spec->memory_limit, true);
        } else {
            result->outcome = WASMRT_START_FAILED;
            result->exit_code = WASMRT_EXIT_START_FAILED;
            snprintf(result->message, sizeof result->message, "instantiation failed: %s", msg);
        }
        result->memory_bytes = wasmlet_context_memory_total(cx);
        return;
    }
    result->instantiate_ns = time_mono_ns() - t0;
    wasmrt_usage_sample(run, cx, true);
    if (spec->started) spec->started(spec->started_ctx, result->instantiate_ns);

    wasmtime_component_func_t func;
    if (!wasmtime_component_instance_get_func(&inst, cx, mod->run, &func)) {
        result->outcome = WASMRT_START_FAILED;
        result->exit_code = WASMRT_EXIT_START_FAILED;
        snprintf(result->message, sizeof result->message,
                 "the component's wasi:cli/run has no run function");
        return;
    }
    wasmtime_component_val_t ret = {.kind = WASMTIME_COMPONENT_BOOL};
    int64_t t1 = time_mono_ns();
    error = wasmtime_component_func_call(&func, cx, NULL, 0, &ret, 1);
    result->run_ns = time_mono_ns() - t1;
    if (error) {
        ended_with_error(run, error, result);
    } else {
        result->outcome = WASMRT_EXITED;
        result->exit_code = ret.kind == WASMTIME_COMPONENT_RESULT && !ret.of.result.is_ok ? 1 : 0;
        wasmtime_component_val_delete(&ret);
    }
    result->memory_bytes = wasmlet_context_memory_total(cx);
}
