/* internal.h: what the files of wasm/ share and nothing outside uses: the
 * runtime, module and stop structures and the per-container store data. */
#ifndef WASMLET_WASM_INTERNAL_H
#define WASMLET_WASM_INTERNAL_H

#include "wasm/wasmlet_capi.h"
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
    /* Cancelled with the request: ends a component's blocking WASI waits
     * (poll, pollable.block, blocking stream calls), which epoch
     * interruption cannot reach. */
    wasmlet_cancel_token_t *token;
    /* wasmrt_stop_drain_by's deadline (monotonic ns), 0 for none. */
    _Atomic int64_t drain_deadline;
    /* In-place resize (wasmrt_resize): the limits asked for, under lock;
     * resize_gen counts the requests, read without the lock by the run's
     * epoch callback (one atomic load per tick). */
    uint64_t want_memory;
    uint32_t want_cpu;
    atomic_uint_fast64_t resize_gen;
};

/* How a wait of a sleeping container ended. */
typedef enum wasmrt_wake {
    WASMRT_WAKE_DEADLINE,
    WASMRT_WAKE_STOP,
    WASMRT_WAKE_RESIZE
} wasmrt_wake_t;
/* Waits on stop until the monotonic deadline, a stop, or a resize request
 * newer than seen_gen. */
wasmrt_wake_t wasmrt_stop_wait_or_resize(wasmrt_stop_t *stop, int64_t deadline_mono_ns,
                                         uint64_t seen_gen);

/* Waits on stop until the monotonic deadline; true when stopped. */
bool wasmrt_stop_wait_until(wasmrt_stop_t *stop, int64_t deadline_mono_ns);

struct wasmrt_module {
    wasmrt_t *rt;
    wasmrt_kind_t kind;
    char digest[7 + 64 + 1]; /* "sha256:" + hex */
    /* A core module: */
    wasmtime_module_t *module;
    wasmtime_instance_pre_t *pre; /* linked against rt->linker once */
    /* A component: */
    wasmtime_component_t *component;
    wasmtime_component_export_index_t *run; /* wasi:cli/run's run */
    /* A wasi:http component on rt's serving engine, made at its first
     * serve (guarded by rt->lock; NULL until then). */
    wasmtime_component_t *served;
    int refs;                   /* guarded by rt->lock */
    struct wasmrt_module *next; /* rt->modules list */
};

struct wasmrt {
    wasm_engine_t *engine;
    /* The engine served wasi:http components run on: the same settings
     * (so compiled code moves between them), with the pooling allocator.
     * Made at the first serve (serve_lock); the ticker bumps it too. */
    _Atomic(wasm_engine_t *) serve_engine;
    bool serve_engine_tried;
    pthread_mutex_t serve_lock;
    wasmtime_linker_t *linker; /* WASI preview 1 + our poll_oneoff; shared, read-only */
    /* WASI preview 2 with cancellable waits, outgoing wasi:http through the
     * store's policy, and exit-with-code; shared, read-only. */
    wasmtime_component_linker_t *clinker;
    char *cache_dir;
    int tick_ms;
    size_t max_wasm_stack; /* bytes; see wasmrt_thread_stack_size */

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
    wasmrt_kind_t kind;
    /* CPU limit: time budget per period, enforced at epoch ticks. */
    int64_t cpu_period_ns;
    int64_t cpu_quota_ns;
    int64_t period_start_mono;
    int64_t period_start_cpu;
    /* The limits in force: spec's at the start, then each applied resize. */
    uint64_t memory_limit;
    uint32_t cpu_millicores;
    uint64_t resize_seen; /* the last stop->resize_gen taken */
    /* Usage samples: descriptors and linear memory (wasmrt_usage_sample). */
    int64_t sampled_ns;       /* monotonic, of the last count */
    size_t fds_reported;      /* the last figure reported ... */
    bool fds_reported_any;    /* ... if any */
    bool sampled_any;         /* a sample was taken */
    uint64_t memory_reported; /* the last linear memory figure reported (spec->memory) */
    bool has_memory;          /* a core module's exported memory, for its usage */
    wasmtime_memory_t memory;
    bool stopped;  /* the run ended because of stop */
    bool exited;   /* proc_exit (or wasi:cli/exit's exit-with-code) was called ... */
    int exit_code; /* ... with this code */
} wasmrt_run_ctx_t;

/* Takes a pending wasmrt_resize into the store (run.c): called on the
 * run's thread from the epoch callback and from a sleeping poll_oneoff. */
void wasmrt_resize_apply(wasmrt_run_ctx_t *run, wasmtime_context_t *cx);

/* Counts the descriptors the run holds and reports them through
 * spec->descriptors, and its linear memory through spec->memory, each when
 * its figure changed (run.c); unless now, at most every
 * WASMRT_DESCRIPTOR_SAMPLE_MS. On the run's thread only: it reads the
 * store. */
void wasmrt_usage_sample(wasmrt_run_ctx_t *run, wasmtime_context_t *cx, bool now);
/* The same as a wasmlet_context_set_descriptor_observer callback (data: the
 * run), for a component about to wait in wasi:io/poll. */
void wasmrt_descriptors_observed(void *data, size_t held);
/* The cap a run's store gets: max_open_files less kept_descriptors, at
 * least 1 (0: no cap). */
size_t wasmrt_store_descriptor_cap(const wasmrt_spec_t *spec);

/* --- components (component.c) --- */

/* Builds rt->clinker. */
int wasmrt_component_linker_new(wasmrt_t *rt, err_t *err);
/* Checks that a loaded component can run as a container: it exports
 * wasi:cli/run (*run gets its run function) or, failing that,
 * wasi:http/incoming-handler (*kind becomes WASMRT_HTTP_COMPONENT and *run
 * stays NULL), and imports only what rt->clinker provides. Errors name
 * what is wrong. */
int wasmrt_component_check(wasmrt_t *rt, const wasmtime_component_t *component,
                           wasmtime_component_export_index_t **run, wasmrt_kind_t *kind,
                           err_t *err);
/* The serving engine (made on the first call), or NULL when it cannot be
 * made: then why says so and callers use rt->engine (engine.c). */
wasm_engine_t *wasmrt_serve_engine(wasmrt_t *rt, char *why, size_t len);
/* Serves a WASMRT_HTTP_COMPONENT until stop, then drains (http.c). */
void wasmrt_http_serve(wasmrt_t *rt, wasmrt_module_t *mod, const wasmrt_spec_t *spec,
                       wasmrt_stop_t *stop, wasmrt_result_t *result);
/* Instantiates the component in the store (WASI already set) and calls
 * wasi:cli/run, filling result; the caller deletes the store. */
void wasmrt_component_run(wasmrt_run_ctx_t *run, wasmrt_module_t *mod, wasmtime_store_t *store,
                          wasmrt_result_t *result);

/* --- sockets (net.c) --- */

/* Applies spec->net to a WASI configuration of a component: TCP, UDP and
 * name lookup with the address check, or nothing at all. */
void wasmrt_net_configure(wasi_config_t *wasi, const wasmrt_spec_t *spec);
/* Sets the store's outgoing-HTTP policy from spec->net; on failure fills
 * msg and returns -1. */
int wasmrt_net_http_policy(wasmtime_context_t *cx, const wasmrt_spec_t *spec, char *msg,
                           size_t len);

/* Frees a loaded module or component (module.c). */
void wasmrt_module_free(wasmrt_module_t *m);

/* Defines wasi_snapshot_preview1.poll_oneoff and proc_exit on the linker,
 * shadowing Wasmtime's (wasi_host.c). */
int wasmrt_define_wasi_overrides(wasmtime_linker_t *linker, err_t *err);

/* Turns a Wasmtime error into err_t text (and frees it). */
int wasmrt_error(err_t *err, wasmtime_error_t *error, const char *what);
/* The whole text of an error or a trap, however long (its backtrace
 * included); the caller frees it. */
char *wasmrt_error_text(const wasmtime_error_t *error);
char *wasmrt_trap_text(const wasm_trap_t *trap);
/* Condenses such a text into one line of at most size bytes in out: the
 * cause first, always (engine.c). */
void wasmrt_condense(const char *full, char *out, size_t size);
/* wasmrt_condense of an error's or a trap's text, into buf. */
void wasmrt_trap_message(const wasm_trap_t *trap, char *buf, size_t len);
void wasmrt_error_message(const wasmtime_error_t *error, char *buf, size_t len);
/* Condenses a failed call's error or trap (either may be NULL) into out
 * and frees it; true when it was a memory creation or growth the limiter
 * refused (WASMLET_OOM_MESSAGE). */
bool wasmrt_take_failure(wasmtime_error_t *error, wasm_trap_t *trap, char *out, size_t size);

#endif
