/* wasmrt.h: the WebAssembly runtime layer of wasmlet ("wasm runtime", prefix
 * wasmrt_ so as not to collide with the wasm_* names of the Wasmtime C API).
 *
 * One wasmrt_t per process holds the shared Wasmtime engine, the linkers
 * (WASI preview 1 for core modules, WASI preview 2 for components), an epoch
 * ticker thread and the table of loaded modules. A container's bytes are
 * either a core module or a component (their header says which); both load
 * and run through the same calls, and wasmrt_module_kind tells them apart.
 * Each is compiled once per content digest; the compiled form is kept on
 * disk (<cache_dir>/<sha256 hex>.cwasm) and mapped back by later starts, and
 * while any container uses it, it stays in memory (a core module with its
 * pre-linked instance), so a warm start is one instantiation.
 *
 * wasmrt_run() runs one container to its end on the calling thread, in a
 * store of its own: argv, env, preopened mounts and nothing else of the host
 * (a component may also get sockets and outgoing HTTP, see wasmrt_net_t);
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
#include <sys/socket.h>

typedef struct wasmrt wasmrt_t;
/* A loaded core module or component. */
typedef struct wasmrt_module wasmrt_module_t;
typedef struct wasmrt_stop wasmrt_stop_t;

/* The largest WebAssembly call stack, by default: what Go's own wasip1
 * runner (go_wasip1_wasm_exec) gives wasmtime, since Go programs need far
 * more than Wasmtime's 512 KiB. */
#define WASMRT_DEFAULT_MAX_WASM_STACK ((size_t)8 << 20)
/* How often a running container's descriptors are counted, at most. */
#define WASMRT_DESCRIPTOR_SAMPLE_MS 100

/* The default cap on the host descriptors a container holds (files,
 * directories, its preopens, a component's sockets, what wasmlet keeps for
 * it): the usual soft RLIMIT_NOFILE. */
#define WASMRT_DEFAULT_MAX_OPEN_FILES 1024
/* Native stack a thread running wasm needs beyond max_wasm_stack: the host
 * frames above the first wasm frame and those of host calls made at the
 * deepest wasm frame (WASI, the component model's lifting and lowering). */
#define WASMRT_HOST_STACK_MARGIN ((size_t)4 << 20)

typedef struct wasmrt_options {
    const char *cache_dir; /* compiled modules on disk; NULL keeps them in memory only */
    int epoch_tick_ms;     /* stop latency and CPU-limit granularity; 0 = 10 ms */
    /* Bytes of native stack WebAssembly may use before it traps with "call
     * stack exhausted"; 0 = WASMRT_DEFAULT_MAX_WASM_STACK. */
    size_t max_wasm_stack;
} wasmrt_options_t;

int wasmrt_open(const wasmrt_options_t *opts, wasmrt_t **out, err_t *err);
void wasmrt_close(wasmrt_t *rt);
/* Starts, on the calling thread, the threads Wasmtime's WASI host does
 * its I/O on (its shared tokio runtime: outgoing HTTP, name lookups, async
 * waits). Threads inherit their creator's network namespace, and that
 * runtime is otherwise made by the first WASI call of any container: on a
 * node whose containers run inside their pods' namespaces, those threads
 * would live in one pod's namespace (or in a dead one) for every other
 * pod. The same goes for the threads that serve wasi:http components,
 * started here too. `wasmlet node` calls this from its main thread (the
 * host's namespace) before any container runs. */
int wasmrt_start_io_threads(wasmrt_t *rt, err_t *err);
/* The runtime's max_wasm_stack (the default for a NULL rt). */
size_t wasmrt_max_wasm_stack(const wasmrt_t *rt);
/* The stack size a thread that calls wasmrt_run must have: wasm runs on
 * the caller's stack, so it must hold max_wasm_stack and the host's frames
 * (WASMRT_HOST_STACK_MARGIN). Only the pages touched become resident.
 * Creators of container threads pass it to pthread_attr_setstacksize. */
size_t wasmrt_thread_stack_size(const wasmrt_t *rt);
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

/* What a container's bytes are. */
typedef enum wasmrt_kind {
    WASMRT_CORE_MODULE, /* a WASI preview 1 command (_start) */
    WASMRT_COMPONENT,   /* a WASI preview 2 wasi:cli/command component (wasi:cli/run) */
    /* A wasi:http/proxy component (it exports wasi:http/incoming-handler and
     * no wasi:cli/run): wasmrt_run serves it over HTTP (see wasmrt_http_t). */
    WASMRT_HTTP_COMPONENT,
} wasmrt_kind_t;

/* The highest WASI 0.2 version the host links (Wasmtime 48's wasmtime-wasi);
 * a component's imports of 0.2.0 up to it link, by semver. */
#define WASMRT_WASI_P2_VERSION "0.2.12"

/* Loads the module or component in the file at path (its digest is
 * computed). Every defect a user can cause gets a message that says what
 * is wrong: not WebAssembly, truncated or invalid; for a core module no
 * _start or imports the host does not provide (all named); for a component
 * no wasi:cli/run export nor wasi:http/incoming-handler (naming what it
 * exports), imports the host
 * does not provide (each named), or a WASI version the host cannot link
 * (naming the one it has). */
int wasmrt_load_file(wasmrt_t *rt, const char *path, wasmrt_module_t **out,
                     wasmrt_load_info_t *info, err_t *err);
/* Same, from bytes in memory. */
int wasmrt_load_bytes(wasmrt_t *rt, const uint8_t *wasm, size_t len, wasmrt_module_t **out,
                      wasmrt_load_info_t *info, err_t *err);
void wasmrt_module_release(wasmrt_module_t *mod);
/* "sha256:<hex>" of the module's bytes. */
const char *wasmrt_module_digest(const wasmrt_module_t *mod);
/* Which kind the file at path holds, from its header alone (nothing is
 * compiled); an error when it is not WebAssembly. */
int wasmrt_file_kind(const char *path, wasmrt_kind_t *kind, err_t *err);
/* A core module or a component. */
wasmrt_kind_t wasmrt_module_kind(const wasmrt_module_t *mod);
/* "module", "component" or "wasi:http component", for messages. */
const char *wasmrt_kind_name(wasmrt_kind_t kind);
/* Number of modules held in memory (for metrics and tests). */
size_t wasmrt_loaded_modules(wasmrt_t *rt);

/* A stop request for one running container. Created by the owner of the
 * container, requested from any thread, checked by wasmrt_run. */
wasmrt_stop_t *wasmrt_stop_new(void);
void wasmrt_stop_request(wasmrt_stop_t *stop);
bool wasmrt_stop_requested(wasmrt_stop_t *stop);
void wasmrt_stop_free(wasmrt_stop_t *stop);
/* Lets a later stop drain until the monotonic deadline: a served
 * wasi:http component stops accepting and gives its requests in flight
 * until then (a command is stopped at once whatever this says). */
void wasmrt_stop_drain_by(wasmrt_stop_t *stop, int64_t deadline_mono_ns);
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

/* In-place resize: asks the run that uses stop (running now, or the next
 * one to start with it) to take new limits without a restart. The run
 * applies them at its next epoch tick, or at once when it sleeps in a WASI
 * clock wait (a component blocked inside Wasmtime's WASI takes them when it
 * runs wasm again): the CPU quota from the next period on, the memory cap
 * for later growths. Linear memory never shrinks, so a memory limit below
 * what the run already holds is refused, and then nothing of the request
 * is applied. Later requests replace earlier ones. */
void wasmrt_resize(wasmrt_stop_t *stop, uint64_t memory_limit, uint32_t cpu_millicores);

/* Called on the run's own thread when a wasmrt_resize reached the store:
 * ok with the limits now in force, or !ok with the limits refused (those in
 * force stay) when the memory limit was below usage, the bytes of linear
 * memory held (or the run started without a memory limit at all). */
typedef void (*wasmrt_resized_fn)(void *ctx, bool ok, uint64_t memory_limit,
                                  uint32_t cpu_millicores, uint64_t usage);

/* The network of a component (a core module has none: WASI preview 1 has
 * no sockets). By default a component may create TCP and UDP sockets, look
 * names up and make outgoing wasi:http requests, except to what the node
 * must keep to itself: loopback, link-local, the unspecified address and
 * the node's own addresses are denied as destinations (of a connect, a
 * datagram, an HTTP request) unless allow_local is set. */
typedef struct wasmrt_net {
    bool none;                     /* no sockets, no name lookup, no outgoing HTTP at all */
    bool allow_local;              /* lift the deny of loopback, link-local and node addresses */
    const char *const *node_addrs; /* the node's own addresses, textual IPv4/IPv6 */
    size_t n_node_addrs;
    /* Outgoing HTTP: with http_hosts_set, only these hosts ("*.example.com"
     * allows names under example.com); otherwise every host. */
    bool http_hosts_set;
    const char *const *http_hosts;
    size_t n_http_hosts;
    /* PEM files HTTPS trusts besides the node's bundle (host paths). */
    const char *const *http_ca_files;
    size_t n_http_ca_files;
} wasmrt_net_t;

/* Whether net lets a component connect or send to addr (a sockaddr_in or
 * sockaddr_in6): the check its sockets and outgoing HTTP go through. */
bool wasmrt_net_allows_destination(const wasmrt_net_t *net, const struct sockaddr *addr,
                                   socklen_t len);

/* One request a served wasi:http component finished (see wasmrt_http_t). */
typedef enum wasmrt_http_outcome {
    WASMRT_HTTP_ANSWERED,    /* the component answered */
    WASMRT_HTTP_TRAPPED,     /* it trapped or outgrew its memory: 500 unless it had answered */
    WASMRT_HTTP_TIMED_OUT,   /* past the request timeout: 504 unless it had answered */
    WASMRT_HTTP_OVERLOADED,  /* refused (503): too many requests in flight */
    WASMRT_HTTP_ENDED,       /* ended by a stop past its drain deadline */
    WASMRT_HTTP_NO_RESPONSE, /* it returned or failed without answering: 500 */
} wasmrt_http_outcome_t;

typedef struct wasmrt_http_request {
    const char *method;
    const char *target; /* path and query */
    int status;         /* what was sent; 0 when nothing was */
    wasmrt_http_outcome_t outcome;
    int64_t duration_ns;
    int64_t instantiate_ns; /* 0 when no instance was made */
} wasmrt_http_request_t;

#define WASMRT_HTTP_DEFAULT_PORT 8080
#define WASMRT_HTTP_DEFAULT_MAX_IN_FLIGHT 256
#define WASMRT_HTTP_DEFAULT_TIMEOUT_MS 60000

/* How a WASMRT_HTTP_COMPONENT is served: HTTP/1.1 with keep-alive on each
 * port, on the calling thread's network namespace (a pod's, when the thread
 * entered it), with a fresh instance per request (wasmlet_http_server_*).
 * Each instance gets the spec's argv, env, mounts and output, and its
 * memory_limit; cpu_millicores throttles all requests together. The access
 * log (one line per request on stdout's stream, "http: GET / 200 0.41ms")
 * and the trap text of each failed request (on stderr's) go to output. */
typedef struct wasmrt_http {
    const uint16_t *ports; /* none: WASMRT_HTTP_DEFAULT_PORT */
    size_t nports;
    const char *bind_addr;      /* an IPv4 literal; NULL: every address (0.0.0.0) */
    uint32_t max_in_flight;     /* 0: WASMRT_HTTP_DEFAULT_MAX_IN_FLIGHT */
    int64_t request_timeout_ms; /* 0: WASMRT_HTTP_DEFAULT_TIMEOUT_MS */
    bool no_access_log;
    /* Once listening, with the addresses ("0.0.0.0:8080"), on the calling
     * thread; may be NULL. */
    void (*serving)(void *ctx, const char *addrs);
    /* Each finished request, on the server's threads; may be NULL. */
    void (*request_done)(void *ctx, const wasmrt_http_request_t *req);
    void *ctx;
} wasmrt_http_t;

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
    wasmrt_resized_fn resized; /* NULL: resizes are applied silently */
    void *resized_ctx;
    wasmrt_net_t net; /* components only */
    /* Called on the running thread once the instance exists, before its
     * entry point (_start, wasi:cli/run) is called, with how long the
     * store, WASI and the instantiation took; NULL: not called. Not called
     * when the instantiation fails. */
    void (*started)(void *ctx, int64_t instantiate_ns);
    void *started_ctx;
    wasmrt_http_t http; /* wasi:http components only */
    /* Host descriptors the container may hold (files, directories,
     * preopens, a component's sockets), kept_descriptors included: its
     * store gets max_open_files - kept_descriptors (at least 1). Past it a
     * core module's open fails with WASI's "too many open files" (EMFILE);
     * a component's open-at with error-code quota, its socket creation
     * with new-socket-limit (wasmlet_capi.h). 0 = no cap. Served wasi:http
     * components (a store per request) are not capped. */
    size_t max_open_files;
    /* Descriptors the caller keeps open for this container while it runs
     * (its log file, a saved network namespace). */
    size_t kept_descriptors;
    /* Called on the running thread with the host descriptors the container
     * holds (its store's, wasmlet_context_descriptors_held, plus
     * kept_descriptors, plus a served component's listeners) each time a
     * sample differs from the last: after instantiation, at epoch ticks at
     * most every WASMRT_DESCRIPTOR_SAMPLE_MS while wasm runs, when a core
     * module goes to sleep in poll_oneoff, and when a component is about
     * to wait in wasi:io/poll (poll, pollable.block: its sleeps and socket
     * waits; not its blocking stream reads and writes). NULL: not
     * called. */
    void (*descriptors)(void *ctx, size_t held);
    void *descriptors_ctx;
    /* Called on the running thread with the bytes of linear memory the
     * container holds (a core module's memory, all of a component's
     * memories together) when a sample differs from the last, at the same
     * points as descriptors; NULL: not called. */
    void (*memory)(void *ctx, uint64_t bytes);
    void *memory_ctx;
} wasmrt_spec_t;

typedef enum wasmrt_outcome {
    WASMRT_EXITED,       /* _start returned (0) or proc_exit(code); wasi:cli/run returned
                          * ok (0) or err (1), or wasi:cli/exit ended it with its code */
    WASMRT_TRAPPED,      /* a trap: unreachable, out of bounds, stack overflow ... */
    WASMRT_OOM,          /* linear memory (of all a component's memories together)
                          * would have grown past memory_limit */
    WASMRT_STOPPED,      /* wasmrt_stop_request (a served wasi:http component that
                          * drained all its requests in time exits 0) */
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
    uint64_t memory_bytes;  /* linear memory size at the end (all memories of a component) */
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
