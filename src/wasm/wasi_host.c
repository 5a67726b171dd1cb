/* wasi_host.c: the two WASI preview 1 functions wasmlet implements itself,
 * on top of Wasmtime's WASI: poll_oneoff and proc_exit.
 *
 * proc_exit: Wasmtime's accepts only codes below 126 and traps otherwise,
 * but a container's exit code is whatever the program passed to exit() (an
 * 8-bit value, as on Linux). Ours records the code in the run context and
 * unwinds with a trap that run.c recognises as a normal exit.
 *
 * poll_oneoff: every sleep of a WASI preview 1 program (sleep, nanosleep, usleep) is a
 * poll_oneoff on a clock. A sleeping module runs no wasm code, so epoch
 * interruption cannot reach it, and a pod deleted while its module sleeps
 * for an hour would hold its thread for that hour. This poll_oneoff waits
 * on the container's stop condition instead, so a stop ends the sleep at
 * once (the call traps and the container ends as stopped).
 *
 * Semantics, per the preview 1 ABI: clock subscriptions fire when their
 * timeout passes (relative, or absolute on the realtime clock; an absolute
 * monotonic timeout is read against the host's monotonic clock). A
 * container's descriptors are files and directories, which are always
 * ready, and its stdin is empty, so fd_read/fd_write subscriptions are
 * reported ready at once (fd_read on stdin with the hang-up flag). */
#include "wasm/internal.h"
#include "util/time.h"

#include <stdio.h>
#include <string.h>

#define SUB_SIZE 48
#define EVENT_SIZE 32
#define ERRNO_SUCCESS 0
#define ERRNO_FAULT 21
#define ERRNO_INVAL 28
#define ERRNO_NOTSUP 58
#define EVENTTYPE_CLOCK 0
#define EVENTTYPE_FD_READ 1
#define EVENTTYPE_FD_WRITE 2
#define CLOCK_REALTIME_ID 0
#define CLOCK_MONOTONIC_ID 1
#define SUBCLOCK_ABSTIME 1
#define EVENTRW_HANGUP 1
#define MAX_SUBS 4096

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v; /* wasm is little-endian, and so are the hosts wasmlet targets */
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void put_event(uint8_t *ev, uint64_t userdata, uint16_t error, uint8_t type,
                      uint16_t rwflags)
{
    memset(ev, 0, EVENT_SIZE);
    memcpy(ev, &userdata, 8);
    memcpy(ev + 8, &error, 2);
    ev[10] = type;
    memcpy(ev + 24, &rwflags, 2);
}

/* A clock subscription's deadline on the host's monotonic clock. */
static int64_t clock_deadline(const uint8_t *sub, int64_t t0_mono, int64_t t0_real)
{
    uint32_t id = rd32(sub + 16);
    uint64_t timeout = rd64(sub + 24);
    uint16_t flags;
    memcpy(&flags, sub + 40, 2);
    bool abs = flags & SUBCLOCK_ABSTIME;
    if (timeout > (uint64_t)INT64_MAX / 2) timeout = (uint64_t)INT64_MAX / 2;
    if (!abs) return t0_mono + (int64_t)timeout;
    if (id == CLOCK_REALTIME_ID) return t0_mono + ((int64_t)timeout - t0_real);
    return (int64_t)timeout;
}

static wasm_trap_t *poll_oneoff(void *env, wasmtime_caller_t *caller, const wasmtime_val_t *args,
                                size_t nargs, wasmtime_val_t *results, size_t nresults)
{
    (void)env;
    (void)nargs;
    (void)nresults;
    wasmtime_context_t *cx = wasmtime_caller_context(caller);
    wasmrt_run_ctx_t *run = wasmtime_context_get_data(cx);
    uint32_t in = (uint32_t)args[0].of.i32, out = (uint32_t)args[1].of.i32;
    uint32_t nsubs = (uint32_t)args[2].of.i32, nevents_ptr = (uint32_t)args[3].of.i32;
    results[0].kind = WASMTIME_I32;

    wasmtime_extern_t item;
    if (!wasmtime_caller_export_get(caller, "memory", 6, &item) ||
        item.kind != WASMTIME_EXTERN_MEMORY) {
        results[0].of.i32 = ERRNO_NOTSUP;
        return NULL;
    }
    uint8_t *mem = wasmtime_memory_data(cx, &item.of.memory);
    uint64_t size = wasmtime_memory_data_size(cx, &item.of.memory);
    if (nsubs == 0 || nsubs > MAX_SUBS) {
        results[0].of.i32 = ERRNO_INVAL;
        return NULL;
    }
    if ((uint64_t)in + (uint64_t)nsubs * SUB_SIZE > size ||
        (uint64_t)out + (uint64_t)nsubs * EVENT_SIZE > size || (uint64_t)nevents_ptr + 4 > size) {
        results[0].of.i32 = ERRNO_FAULT;
        return NULL;
    }

    const int64_t t0_mono = time_mono_ns(), t0_real = time_now_ns();
    int64_t earliest = INT64_MAX;
    uint32_t ready = 0;
    /* First pass: fd subscriptions are ready now; find the earliest clock. */
    for (uint32_t i = 0; i < nsubs; i++) {
        const uint8_t *sub = mem + in + (uint64_t)i * SUB_SIZE;
        uint8_t tag = sub[8];
        if (tag == EVENTTYPE_CLOCK) {
            uint32_t id = rd32(sub + 16);
            if (id != CLOCK_REALTIME_ID && id != CLOCK_MONOTONIC_ID) {
                put_event(mem + out + (uint64_t)ready++ * EVENT_SIZE, rd64(sub), ERRNO_NOTSUP, tag,
                          0);
                continue;
            }
            int64_t at = clock_deadline(sub, t0_mono, t0_real);
            if (at < earliest) earliest = at;
        } else if (tag == EVENTTYPE_FD_READ || tag == EVENTTYPE_FD_WRITE) {
            uint16_t flags = (tag == EVENTTYPE_FD_READ && rd32(sub + 16) == 0) ? EVENTRW_HANGUP : 0;
            put_event(mem + out + (uint64_t)ready++ * EVENT_SIZE, rd64(sub), ERRNO_SUCCESS, tag,
                      flags);
        } else {
            results[0].of.i32 = ERRNO_INVAL;
            return NULL;
        }
    }
    if (ready == 0 && earliest != INT64_MAX) {
        /* What it holds while it sleeps (no epoch tick samples it). */
        wasmrt_usage_sample(run, cx, true);
        /* A resize asked for while it sleeps is taken at once. */
        for (;;) {
            wasmrt_resize_apply(run, cx);
            if (earliest <= time_mono_ns()) break;
            wasmrt_wake_t why = wasmrt_stop_wait_or_resize(run->stop, earliest, run->resize_seen);
            if (why == WASMRT_WAKE_STOP) {
                run->stopped = true;
                static const char msg[] = "container stopped while sleeping";
                return wasmtime_trap_new(msg, sizeof msg - 1);
            }
            if (why == WASMRT_WAKE_DEADLINE) break;
        }
        /* A host call holds the store, so the memory base has not moved. */
        int64_t now = time_mono_ns();
        for (uint32_t i = 0; i < nsubs; i++) {
            const uint8_t *sub = mem + in + (uint64_t)i * SUB_SIZE;
            if (sub[8] != EVENTTYPE_CLOCK) continue;
            uint32_t id = rd32(sub + 16);
            if (id != CLOCK_REALTIME_ID && id != CLOCK_MONOTONIC_ID) continue;
            if (clock_deadline(sub, t0_mono, t0_real) <= now)
                put_event(mem + out + (uint64_t)ready++ * EVENT_SIZE, rd64(sub), ERRNO_SUCCESS,
                          EVENTTYPE_CLOCK, 0);
        }
    }
    uint32_t n = ready;
    memcpy(mem + nevents_ptr, &n, 4);
    results[0].of.i32 = ERRNO_SUCCESS;
    return NULL;
}

static wasm_trap_t *proc_exit(void *env, wasmtime_caller_t *caller, const wasmtime_val_t *args,
                              size_t nargs, wasmtime_val_t *results, size_t nresults)
{
    (void)env;
    (void)nargs;
    (void)results;
    (void)nresults;
    wasmrt_run_ctx_t *run = wasmtime_context_get_data(wasmtime_caller_context(caller));
    run->exited = true;
    run->exit_code = (int)((uint32_t)args[0].of.i32 & 0xff);
    static const char msg[] = "proc_exit";
    return wasmtime_trap_new(msg, sizeof msg - 1);
}

static int define(wasmtime_linker_t *linker, const char *name, size_t nparams, size_t nresults,
                  wasmtime_func_callback_t cb, err_t *err)
{
    wasm_valtype_vec_t params, results;
    wasm_valtype_t *p[4], *r[1];
    for (size_t i = 0; i < nparams; i++)
        p[i] = wasm_valtype_new_i32();
    for (size_t i = 0; i < nresults; i++)
        r[i] = wasm_valtype_new_i32();
    wasm_valtype_vec_new(&params, nparams, p);
    wasm_valtype_vec_new(&results, nresults, r);
    wasm_functype_t *type = wasm_functype_new(&params, &results);
    static const char module[] = "wasi_snapshot_preview1";
    wasmtime_error_t *error = wasmtime_linker_define_func(linker, module, sizeof module - 1, name,
                                                          strlen(name), type, cb, NULL, NULL);
    wasm_functype_delete(type);
    if (error) return wasmrt_error(err, error, name);
    return 0;
}

int wasmrt_define_wasi_overrides(wasmtime_linker_t *linker, err_t *err)
{
    if (define(linker, "poll_oneoff", 4, 1, poll_oneoff, err) == -1) return -1;
    return define(linker, "proc_exit", 1, 0, proc_exit, err);
}
