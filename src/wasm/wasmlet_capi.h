/* wasmlet_capi.h: the entry points that wasmlet's Wasmtime wrapper crate
 * (deps/wasmtime-capi, libwasmtime.a) adds to the Wasmtime 48 C API, for
 * what that API lacks: TCP/UDP and a socket address check for WASI preview 2,
 * cancellable blocking WASI waits, a memory limit summed over a store's
 * memories, outgoing wasi:http with a per-store policy, a check of a
 * component's imports that names each one a linker lacks, and serving
 * wasi:http/proxy components (the incoming half of wasi:http).
 *
 * Errors: functions returning wasmtime_error_t * return NULL on success, else
 * an error the caller owns (wasmtime_error_message, wasmtime_error_delete).
 * No Rust panic crosses into C: an internal failure is reported the same way
 * (or as false / 0 where the function has no error return).
 *
 * Per-store state: the limiter, cancel token and HTTP policy of a store live
 * in an entry of the store's WASI resource table (the C API offers no other
 * slot), so every wasmlet_context_* / wasmlet_store_* function here requires
 * wasmtime_context_set_wasi on that store first (else it returns an error),
 * and setting a new WASI context later drops that state. Call them right
 * after wasmtime_context_set_wasi, which also keeps their lookups O(1).
 *
 * Threads: like the C API, a store, context, linker or wasi_config_t is used
 * by one thread at a time; only wasmlet_cancel_token_cancel and
 * wasmlet_cancel_token_is_cancelled may run on any thread at any time. */
#ifndef WASMLET_WASM_WASMLET_CAPI_H
#define WASMLET_WASM_WASMLET_CAPI_H

#include <wasi.h>
#include <wasmtime.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- memory limits ------------------------------------------------------- */

/* Part of every trap message of a refused memory creation or growth, from
 * both limiters below (Wasmtime's own StoreLimits says the same): what C
 * recognises as OOMKilled. */
#define WASMLET_OOM_MESSAGE "growing memory"

/* Caps each linear memory of the store at `bytes` and makes a refused
 * memory.grow trap. Requires a limiter installed by wasmtime_store_limiter.
 * Per memory; see wasmlet_store_limit_memory_total for the sum. */
void wasmlet_context_trap_on_memory_limit(wasmtime_context_t *cx, size_t bytes);

/* Installs the store's limiter: a memory creation or growth that would take
 * the SUM of all linear memories of the store past `bytes` traps with a
 * message containing WASMLET_OOM_MESSAGE (at instantiation, the instantiate
 * call fails with it). Growth past a memory's own declared maximum returns
 * -1 as the spec says. Table growth past a table's maximum traps. Replaces
 * any limiter set by wasmtime_store_limiter (do not call that afterwards).
 * Requires wasmtime_context_set_wasi first. Errors: NULL store, no WASI. */
wasmtime_error_t *wasmlet_store_limit_memory_total(wasmtime_store_t *store, size_t bytes);

/* Bytes of linear memory the summed limiter has granted to the store's
 * memories so far; 0 without one. */
size_t wasmlet_context_memory_total(wasmtime_context_t *cx);

/* Moves the summed limiter's cap to `bytes` (an in-place resize of
 * limits.memory), for later growths. False, changing nothing, when bytes
 * is below what the memories already hold (linear memory never shrinks)
 * or the store has no summed limiter. */
bool wasmlet_context_set_memory_limit_total(wasmtime_context_t *cx, size_t bytes);

/* --- sockets (wasi:sockets, preview 2) ---------------------------------- */

/* What an address is about to be used for (wasmtime_wasi::SocketAddrUse,
 * plus the wasi:http connection of the HTTP policy below). */
enum wasmlet_addr_use {
    WASMLET_ADDR_TCP_BIND = 0,    /* explicit bind, or the wildcard of an implicit one */
    WASMLET_ADDR_TCP_LISTEN = 1,  /* listen on the socket's local address */
    WASMLET_ADDR_TCP_ACCEPT = 2,  /* peer of an accepted client (denied: dropped) */
    WASMLET_ADDR_TCP_CONNECT = 3, /* remote address of a connect */
    WASMLET_ADDR_UDP_BIND = 4,    /* explicit or implicit bind */
    WASMLET_ADDR_UDP_SEND = 5,    /* destination of a datagram or a connect */
    WASMLET_ADDR_UDP_RECEIVE = 6, /* source of a datagram (denied: dropped) */
    WASMLET_ADDR_HTTP_CONNECT = 7 /* a resolved address of an outgoing HTTP request */
};

/* Decides whether `addr` (a sockaddr_in or sockaddr_in6 of `len` bytes) may be
 * used for `use` (enum wasmlet_addr_use); true allows. Called from Wasmtime's
 * threads (the calling store thread or a tokio worker), possibly several at
 * once: it must be thread-safe, fast and must not block. */
typedef bool (*wasmlet_addr_check_t)(void *data, const struct sockaddr *addr, socklen_t len,
                                     int use);

/* Allows (or again denies) creating TCP sockets; Wasmtime denies them by
 * default. Addresses are still subject to the address check, which denies
 * everything unless set below or by wasi_config_inherit_network. Name lookup
 * has its own switch in the C API: wasi_config_allow_ip_name_lookup.
 * These three wasmlet_wasi_config_* functions reach the WasiCtxBuilder
 * behind wasi_config_t by a cast that relies on the layout of the pinned
 * wasmtime-c-api-impl 48.0.8 (checked at build time and by the unit test).
 * NULL config: no-op. */
void wasmlet_wasi_config_allow_tcp(wasi_config_t *config, bool allow);

/* Same for UDP sockets. */
void wasmlet_wasi_config_allow_udp(wasi_config_t *config, bool allow);

/* Installs `check` as the socket address check of the WASI context built from
 * `config`, replacing the default deny-all (or inherit_network's allow-all).
 * `finalizer` (may be NULL) is called with `data` once the check is no longer
 * used: when the config and every context and socket made from it are gone,
 * or at once if this returns false. Returns false for a NULL config or
 * check. */
bool wasmlet_wasi_config_socket_addr_check(wasi_config_t *config, wasmlet_addr_check_t check,
                                           void *data, void (*finalizer)(void *));

/* --- cancellable blocking waits ------------------------------------------ */

/* Part of the trap message of a blocking WASI call cut short by a cancel. */
#define WASMLET_CANCELLED_MESSAGE "blocking WASI call cancelled"

typedef struct wasmlet_cancel_token wasmlet_cancel_token_t;

/* A new, not yet cancelled token; the caller owns it (..._delete). NULL only
 * on an internal failure. */
wasmlet_cancel_token_t *wasmlet_cancel_token_new(void);

/* Cancels: every blocking wait of the stores holding the token returns
 * within milliseconds with a trap containing WASMLET_CANCELLED_MESSAGE, and
 * so does every later one at once. Core wasm code is not interrupted by
 * this (use the epoch deadline for that). Irreversible. Any thread. NULL:
 * no-op. */
void wasmlet_cancel_token_cancel(const wasmlet_cancel_token_t *token);

/* Whether the token was cancelled. Any thread. */
bool wasmlet_cancel_token_is_cancelled(const wasmlet_cancel_token_t *token);

/* Drops the caller's reference; stores holding the token keep theirs. */
void wasmlet_cancel_token_delete(wasmlet_cancel_token_t *token);

/* Makes the store's blocking waits cancellable by `token` (the store takes a
 * reference of its own). Requires wasmtime_context_set_wasi first and a
 * linker set up by wasmlet_component_linker_add_cancellable_waits. Errors:
 * NULL token, no WASI. */
wasmtime_error_t *wasmlet_context_set_cancel_token(wasmtime_context_t *cx,
                                                   const wasmlet_cancel_token_t *token);

/* Redefines wasi:io/poll and wasi:io/streams in `linker` (call after
 * wasmtime_component_linker_add_wasip2, before instantiating): the stock
 * implementations, except that poll, pollable.block and the blocking stream
 * operations (blocking-read/-skip/-write-and-flush/-write-zeroes-and-flush/
 * -flush/-splice) race the store's cancel token. Sleeps (monotonic-clock
 * subscribe + block), socket and HTTP body waits all go through these.
 * Turns the linker's shadowing on for the redefinition and leaves it off.
 * Errors: NULL linker, or the linker lacks the WASI preview 2 resources. */
wasmtime_error_t *
wasmlet_component_linker_add_cancellable_waits(wasmtime_component_linker_t *linker);

/* --- outgoing wasi:http --------------------------------------------------- */

/* Adds wasi:http/outgoing-handler and wasi:http/types to `linker` (after
 * wasmtime_component_linker_add_wasip2; use instead of
 * wasmtime_component_linker_add_wasi_http, not with it). Requests go through
 * the store's policy (below); wasmtime_context_set_wasi_http is not needed.
 * A store without a policy fails every request inside the component with
 * internal-error("outgoing HTTP is not configured for this store ...")
 * instead of aborting the process. Errors: NULL linker, name clashes. */
wasmtime_error_t *wasmlet_component_linker_add_wasi_http(wasmtime_component_linker_t *linker);

/* Sets the store's outgoing-HTTP policy (replacing an earlier one):
 * - allowed_hosts: host names a request may go to (case-insensitive; an
 *   entry "*.example.com" allows any name under example.com); NULL allows
 *   every host; a non-NULL list with n_allowed_hosts 0 allows none. A host
 *   not allowed fails the request with the wasi:http error
 *   HTTP-request-denied.
 * - check (may be NULL: no check): called with each resolved address of the
 *   host, use WASMLET_ADDR_HTTP_CONNECT; only allowed addresses are
 *   connected to, and if none is allowed the request fails with
 *   HTTP-request-denied. check_finalizer(check_data) runs once the policy is
 *   dropped (with the store, or when replaced), or at once on error / when
 *   check is NULL.
 * - ca_files: PEM files whose certificates HTTPS trusts, all of them; NULL
 *   trusts the node's bundle /etc/ssl/certs/ca-certificates.crt. Each must be
 *   readable now (checked here); they are parsed at the first HTTPS request.
 * The strings are copied. Requires wasmtime_context_set_wasi first. Errors:
 * NULL/non-UTF-8 strings, unreadable CA file, no WASI. */
wasmtime_error_t *wasmlet_context_set_http_policy(wasmtime_context_t *cx,
                                                  const char *const *allowed_hosts,
                                                  size_t n_allowed_hosts,
                                                  wasmlet_addr_check_t check, void *check_data,
                                                  void (*check_finalizer)(void *),
                                                  const char *const *ca_files, size_t n_ca_files);

/* --- checking a component's imports -------------------------------------- */

/* One import a linker cannot satisfy: its name (empty when the error is not
 * about one import) and the root cause, neither NUL-terminated, both valid
 * during the call only. */
typedef void (*wasmlet_unsatisfied_fn)(void *data, const char *name, size_t name_len,
                                       const char *why, size_t why_len);

/* Finds every import of `component` that `linker` cannot satisfy (not
 * defined, or defined with another type), without instantiating anything
 * and without changing the linker (a clone is checked, each import found
 * being stubbed in the clone so the check goes on past it). Calls `report`
 * (may be NULL) once for each, in the order Wasmtime checks them. Returns
 * how many: 0 when instantiation with `linker` would type-check; -1 for a
 * NULL linker or component or an internal failure. */
ptrdiff_t wasmlet_component_linker_unsatisfied(const wasmtime_component_linker_t *linker,
                                               const wasmtime_component_t *component,
                                               wasmlet_unsatisfied_fn report, void *data);

/* --- serving wasi:http/proxy components ------------------------------------ */

/* An HTTP/1.1 server (hyper, keep-alive) that answers each request on the
 * given listening sockets with a fresh instance of a component exporting
 * wasi:http/incoming-handler, as `wasmtime serve` does. It runs on a tokio
 * runtime of the wrapper's own (one for the process, a worker thread per
 * core); the caller keeps the lifecycle, limits, logs and metrics. */
typedef struct wasmlet_http_server wasmlet_http_server_t;

/* A directory preopened in every request's instance. */
typedef struct wasmlet_http_mount {
    const char *host_path;
    const char *guest_path;
    bool read_only;
} wasmlet_http_mount_t;

/* How a request ended (wasmlet_http_request_log_t.outcome). */
enum wasmlet_http_outcome {
    WASMLET_HTTP_ANSWERED = 0,    /* the component answered and returned */
    WASMLET_HTTP_TRAPPED = 1,     /* a trap (or a memory growth past the limit): 500 unless
                                   * the component had answered already */
    WASMLET_HTTP_TIMED_OUT = 2,   /* the request timeout ended the instance: 504 unless the
                                   * component had answered already */
    WASMLET_HTTP_OVERLOADED = 3,  /* refused with 503: max_in_flight requests in flight */
    WASMLET_HTTP_ENDED = 4,       /* ended by the server's shutdown past its grace */
    WASMLET_HTTP_NO_RESPONSE = 5, /* the component returned or failed without an answer: 500 */
};

/* One finished request, for the access log and metrics; valid during the
 * callback only. status is the status sent (0 if none was); message (NULL
 * when there is nothing to say) is the failure's whole text: for a trap,
 * Wasmtime's error with its backtrace (see wasmrt_condense). */
typedef struct wasmlet_http_request_log {
    const char *method;
    const char *target; /* path and query */
    uint16_t status;
    int outcome;             /* enum wasmlet_http_outcome */
    uint64_t duration_ns;    /* request head received to instance ended */
    uint64_t instantiate_ns; /* 0 if no instance was made */
    const char *message;
} wasmlet_http_request_log_t;

typedef struct wasmlet_http_server_config {
    /* Listening TCP sockets (bound and listening, any blocking mode). On
     * success the server owns and closes them; on error they stay the
     * caller's. Accepted connections belong to the sockets' network
     * namespace, whatever thread accepts them. */
    const int *listen_fds;
    size_t n_listen_fds;
    /* Every instance's argv, env ("NAME=value") and preopens, copied. */
    const char *const *args;
    size_t n_args;
    const char *const *env;
    size_t n_env;
    const wasmlet_http_mount_t *mounts;
    size_t n_mounts;
    /* Bytes all the memories of one instance may use together; 0: no cap. */
    size_t memory_limit;
    /* Requests in flight at once; past it the answer is 503. Positive. */
    uint32_t max_in_flight;
    /* The end of a request's instance, wherever it is (wasm or host call),
     * this long after the request arrived. Positive. */
    uint64_t request_timeout_ms;
    /* CPU all requests may use together, in thousandths of a core; 0: no
     * limit. Measured by sampling at epoch ticks of epoch_tick_ms (the
     * engine's ticker period; its engine must have epoch interruption). */
    uint32_t cpu_millicores;
    uint32_t epoch_tick_ms;
    /* stdout (1) and stderr (2) of the instances, and each finished request;
     * either may be NULL. Called on the server's threads, concurrently, with
     * callback_data, until wasmlet_http_server_delete returns. */
    void (*output)(void *data, int stream, const uint8_t *buf, size_t len);
    void (*request_done)(void *data, const wasmlet_http_request_log_t *log);
    void *callback_data;
} wasmlet_http_server_config_t;

/* Starts the server's runtime threads (one per core) now, if not yet:
 * they inherit the calling thread's network namespace, so a caller that
 * enters pods' namespaces calls this first from the host's (otherwise the
 * first wasmlet_http_server_start starts them, on its thread's). */
wasmtime_error_t *wasmlet_http_runtime_start(void);

/* Pre-links `component` (WASI preview 2 and wasi:http; outgoing requests
 * fail inside the component with internal-error naming why) and starts
 * serving. Errors: no wasi:http/incoming-handler export, imports the host
 * lacks, unusable mount directories are found per request (answer 500).
 * The component's engine must tick its epoch (every epoch_tick_ms). */
wasmtime_error_t *wasmlet_http_server_start(const wasmtime_component_t *component,
                                            const wasmlet_http_server_config_t *config,
                                            wasmlet_http_server_t **out);

/* Drains: closes the listeners, lets each connection finish the request it
 * serves (then closes it), waits up to grace_ms for requests in flight,
 * then ends whatever is left and returns once it has ended. Returns how
 * many requests were still in flight at grace_ms (0: drained). Blocks;
 * call it from a thread of the caller's, not from a callback. Later calls
 * do nothing and return 0. */
size_t wasmlet_http_server_shutdown(wasmlet_http_server_t *server, uint64_t grace_ms);

/* Requests in flight now. */
size_t wasmlet_http_server_in_flight(const wasmlet_http_server_t *server);

/* Shuts down with no grace if not done yet, and frees the server. NULL is
 * ignored. */
void wasmlet_http_server_delete(wasmlet_http_server_t *server);
/* Descriptor cap (fdcap.rs). Shadows wasi_snapshot_preview1.path_open in a
 * core linker that already has WASI preview 1 (wasmtime_linker_define_wasi):
 * in a store with a cap (wasmlet_context_set_descriptor_cap), an open when
 * the store already holds `max` host descriptors (see
 * wasmlet_context_descriptors_held) returns errno 33, `mfile` ("too many
 * open files"), opening nothing; otherwise Wasmtime's own path_open runs.
 * Errors: NULL linker. */
wasmtime_error_t *wasmlet_linker_cap_descriptors(wasmtime_linker_t *linker);

/* The same cap for components (fdcap_component.rs), in a component linker
 * that already has WASI 0.2 (wasmtime_component_linker_add_wasip2). At the
 * store's cap:
 *  - wasi:filesystem/types [method]descriptor.open-at returns error-code
 *    `quota`. WASI 0.2's filesystem error-code has no "too many open files";
 *    quota (a storage allowance used up, recoverable by closing something)
 *    is the closest case. A C program built with the preview-1 adapter sees
 *    errno EDQUOT ("Disk quota exceeded");
 *  - wasi:sockets create-tcp-socket and create-udp-socket return error-code
 *    `new-socket-limit` (WASI 0.2's EMFILE/ENFILE for sockets).
 * Not refused, only counted: sockets accepted by a listening TCP socket.
 * No path of these traps at the cap. Below it Wasmtime's own functions run.
 * Errors: NULL linker. */
wasmtime_error_t *wasmlet_component_linker_cap_descriptors(wasmtime_component_linker_t *linker);

/* Sets the store's cap (0: none, the default) for a linker set up by
 * wasmlet_linker_cap_descriptors or wasmlet_component_linker_cap_descriptors.
 * Errors: no WASI context yet. */
wasmtime_error_t *wasmlet_context_set_descriptor_cap(wasmtime_context_t *cx, size_t max);

/* Sets (NULL: clears) the store's observer of its held descriptors: a
 * component's store calls observer(data, held), on the thread running the
 * store, each time the component is about to wait in wasi:io/poll (poll,
 * pollable.block) of a linker set up by
 * wasmlet_component_linker_add_cancellable_waits, where no epoch tick runs;
 * held is what wasmlet_context_descriptors_held would return. The observer
 * must not call into the store; data must stay valid as long as the store.
 * Errors: no WASI context yet. */
wasmtime_error_t *wasmlet_context_set_descriptor_observer(wasmtime_context_t *cx,
                                                          void (*observer)(void *data, size_t held),
                                                          void *data);

/* The host descriptors the store's WASI context holds now: files and
 * directories (preopens included; a core module's preopens are opened on
 * its first WASI call) and, for a component, its TCP and UDP sockets
 * (accepted ones included); 0 without a WASI context. Scans the store's
 * table: call it on the store's own thread, never while another thread
 * runs the store. */
size_t wasmlet_context_descriptors_held(wasmtime_context_t *cx);

#ifdef __cplusplus
}
#endif

#endif
