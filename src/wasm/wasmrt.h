/* wasmrt.h: the WebAssembly runtime layer of wasmlet ("wasm runtime", prefix
 * wasmrt_ so as not to collide with the wasm_* names of the Wasmtime C API).
 *
 * One wasmrt_t per process holds the shared Wasmtime engine, the linker with
 * WASI preview 1, an epoch ticker thread and the table of loaded modules. A
 * module is compiled once per content digest; the compiled form is kept on
 * disk (<cache_dir>/<sha256 hex>.cwasm) and mapped back by later starts, and
 * while any container uses it, it stays in memory with its pre-linked
 * instance, so a warm start is one instantiation.
 *
 * wasmrt_run() runs one container to its end on the calling thread, in a
 * store of its own: argv, env, preopened mounts and nothing else of the host;
 * stdout/stderr go to a callback (the container's log). It returns how the
 * container ended: exit code, trap, OOM (linear memory past the limit), or
 * stopped from another thread through a wasmrt_stop_t (within ~20 ms, even
 * in a tight loop or a sleep). */
#ifndef WASMLET_WASM_WASMRT_H
#define WASMLET_WASM_WASMRT_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wasmrt wasmrt_t;
typedef struct wasmrt_module wasmrt_module_t;
typedef struct wasmrt_stop wasmrt_stop_t;

typedef struct wasmrt_options {
    const char *cache_dir; /* compiled modules on disk; NULL keeps them in memory only */
    int epoch_tick_ms;     /* stop latency and CPU-limit granularity; 0 = 10 ms */
} wasmrt_options_t;

int wasmrt_open(const wasmrt_options_t *opts, wasmrt_t **out, err_t *err);
void wasmrt_close(wasmrt_t *rt);
/* "48.0.8": the Wasmtime version linked in. */
const char *wasmrt_engine_version(void);

/* How wasmrt_load found the module, for metrics and the start-up breakdown. */
typedef enum wasmrt_load_source {
    WASMRT_FROM_MEMORY,   /* already loaded by another container */
    WASMRT_FROM_DISK,     /* compiled form mapped from the disk cache */
    WASMRT_FROM_COMPILER, /* compiled now (first start of this digest) */
} wasmrt_load_source_t;

typedef struct wasmrt_load_info {
    wasmrt_load_source_t source;
    int64_t load_ns; /* read + hash + compile or deserialize + link */
} wasmrt_load_info_t;

/* Loads the module in the file at path (its digest is computed). Every
 * defect a user can cause gets a message that says what is wrong: not a
 * WebAssembly module, truncated or invalid, a component (WASI preview 2),
 * no _start, imports the host does not provide (all named). */
int wasmrt_load_file(wasmrt_t *rt, const char *path, wasmrt_module_t **out,
                     wasmrt_load_info_t *info, err_t *err);
/* Same, from bytes in memory. */
int wasmrt_load_bytes(wasmrt_t *rt, const uint8_t *wasm, size_t len, wasmrt_module_t **out,
                      wasmrt_load_info_t *info, err_t *err);
void wasmrt_module_release(wasmrt_module_t *mod);
/* "sha256:<hex>" of the module's bytes. */
const char *wasmrt_module_digest(const wasmrt_module_t *mod);
/* Number of modules held in memory (for metrics and tests). */
size_t wasmrt_loaded_modules(wasmrt_t *rt);

/* A stop request for one running container. Created by the owner of the
 * container, requested from any thread, checked by wasmrt_run. */
wasmrt_stop_t *wasmrt_stop_new(void);
void wasmrt_stop_request(wasmrt_stop_t *stop);
bool wasmrt_stop_requested(wasmrt_stop_t *stop);
void wasmrt_stop_free(wasmrt_stop_t *stop);
/* Sleeps up to ms milliseconds, returning early (true) when stop is requested.
 * Used by callers that wait between restarts of a container. */
bool wasmrt_stop_wait(wasmrt_stop_t *stop, int64_t ms);

typedef struct wasmrt_mount {
    const char *host_path;  /* a directory on the host */
    const char *guest_path; /* where the module sees it (absolute) */
    bool read_only;
} wasmrt_mount_t;

/* stream is 1 for stdout, 2 for stderr. Called from Wasmtime's I/O threads,
 * one per stream, so stdout and stderr may arrive at the same time. */
typedef void (*wasmrt_output_fn)(void *ctx, int stream, const char *data, size_t len);

typedef struct wasmrt_spec {
    const char *const *argv;
    size_t argc;
    const char *const *env; /* "NAME=value" */
    size_t envc;
    const wasmrt_mount_t *mounts;
    size_t nmounts;
    uint64_t memory_limit;   /* bytes of linear memory; 0 = no limit */
    uint32_t cpu_millicores; /* 0 = no limit */
    wasmrt_output_fn output; /* NULL discards output */
    void *output_ctx;
} wasmrt_spec_t;

typedef enum wasmrt_outcome {
    WASMRT_EXITED,       /* _start returned (0) or proc_exit(code) */
    WASMRT_TRAPPED,      /* a trap: unreachable, out of bounds, stack overflow ... */
    WASMRT_OOM,          /* linear memory would have grown past memory_limit */
    WASMRT_STOPPED,      /* wasmrt_stop_request */
    WASMRT_START_FAILED, /* could not be instantiated (mounts, imports, start-up) */
} wasmrt_outcome_t;

/* Exit codes for the outcomes that have no code of their own, chosen as a
 * container runtime would report the equivalent signal or failure. */
#define WASMRT_EXIT_TRAP 134         /* 128 + SIGABRT */
#define WASMRT_EXIT_KILLED 137       /* 128 + SIGKILL: OOM and stop */
#define WASMRT_EXIT_START_FAILED 128 /* what runtimes report for StartError */

typedef struct wasmrt_result {
    wasmrt_outcome_t outcome;
    int exit_code;
    char message[1024];     /* trap or failure text; empty on a clean exit */
    int64_t instantiate_ns; /* store + WASI + instantiate */
    int64_t run_ns;         /* _start to end */
    uint64_t memory_bytes;  /* linear memory size at the end */
    uint64_t cpu_ns;        /* CPU time of the container's thread */
} wasmrt_result_t;

/* Runs the container to its end on this thread. Returns 0 with *result
 * filled for every way a container can end (including START_FAILED); -1 only
 * for misuse. stop may be NULL. */
int wasmrt_run(wasmrt_t *rt, wasmrt_module_t *mod, const wasmrt_spec_t *spec, wasmrt_stop_t *stop,
               wasmrt_result_t *result);

/* The outcome as a Kubernetes container-state reason:
 * Completed / Error / OOMKilled / ... */
const char *wasmrt_outcome_reason(const wasmrt_result_t *result);

#endif
