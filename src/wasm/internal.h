/* internal.h: what the files of wasm/ share and nothing outside uses: the
 * runtime, module and stop structures and the per-container store data. */
#ifndef WASMLET_WASM_INTERNAL_H
#define WASMLET_WASM_INTERNAL_H

#include "wasm/wasmrt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <wasi.h>
#include <wasm.h>
#include <wasmtime.h>

struct wasmrt_stop {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    atomic_bool requested;
};

/* Waits on stop until the monotonic deadline; true when stopped. */
bool wasmrt_stop_wait_until(wasmrt_stop_t *stop, int64_t deadline_mono_ns);

struct wasmrt_module {
    wasmrt_t *rt;
    char digest[7 + 64 + 1]; /* "sha256:" + hex */
    wasmtime_module_t *module;
    wasmtime_instance_pre_t *pre; /* linked against rt->linker once */
    int refs;                     /* guarded by rt->lock */
    struct wasmrt_module *next;   /* rt->modules list */
};

struct wasmrt {
    wasm_engine_t *engine;
    wasmtime_linker_t *linker; /* WASI preview 1 + our poll_oneoff; shared, read-only */
    char *cache_dir;
    int tick_ms;

    pthread_t ticker;
    pthread_mutex_t ticker_lock;
    pthread_cond_t ticker_cond;
    bool ticker_quit;

    /* Loaded modules, by digest. A short list: a node runs few distinct
     * modules, and a lookup happens once per container start. */
    pthread_mutex_t lock;
    wasmrt_module_t *modules;
    /* Serialises compiles of new digests, so that a hundred pods of one new
     * image compile it once and the rest find it loaded. */
    pthread_mutex_t compile_lock;
};

/* The data of one running container's store (wasmtime_context_get_data). */
typedef struct wasmrt_run_ctx {
    wasmrt_t *rt;
    wasmrt_stop_t *stop;
    const wasmrt_spec_t *spec;
    /* CPU limit: time budget per period, enforced at epoch ticks. */
    int64_t cpu_period_ns;
    int64_t cpu_quota_ns;
    int64_t period_start_mono;
    int64_t period_start_cpu;
    bool stopped;  /* the run ended because of stop */
    bool exited;   /* proc_exit was called ... */
    int exit_code; /* ... with this code */
} wasmrt_run_ctx_t;

/* Defines wasi_snapshot_preview1.poll_oneoff and proc_exit on the linker,
 * shadowing Wasmtime's (wasi_host.c). */
int wasmrt_define_wasi_overrides(wasmtime_linker_t *linker, err_t *err);

/* Turns a Wasmtime error into err_t text (and frees it). */
int wasmrt_error(err_t *err, wasmtime_error_t *error, const char *what);
/* The message of a trap or error, into buf. */
void wasmrt_trap_message(wasm_trap_t *trap, char *buf, size_t len);
void wasmrt_error_message(wasmtime_error_t *error, char *buf, size_t len);
/* Condenses a multi-line Wasmtime message into one line (engine.c). */
void wasmrt_condense(char *msg, size_t size);

#endif
