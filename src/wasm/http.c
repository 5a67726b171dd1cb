/* http.c: serving a wasi:http/proxy component (WASMRT_HTTP_COMPONENT) as a
 * container, through the wrapper's HTTP server (wasmlet_http_server_*).
 *
 * wasmrt_run hands such a component here. The listening sockets are opened
 * on the calling thread, so in the network namespace it is in (a pod's: the
 * container thread entered it); the wrapper serves them on its own threads,
 * a fresh instance per request. This thread then waits for the stop; a stop
 * drains: no new connection, the requests in flight get until the stop's
 * drain deadline (wasmrt_stop_drain_by: the end of the pod's grace period),
 * and the run ends with exit code 0 if they all finished, 137 if some had
 * to be ended.
 *
 * The instances' output and the access log reach spec->output from the
 * server's threads, several at once: a lock keeps each write whole. */
#include "wasm/internal.h"
#include "util/diag.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct serve_ctx {
    const wasmrt_spec_t *spec;
    pthread_mutex_t output_lock; /* keeps writes to spec->output whole */
} serve_ctx_t;

static void emit(serve_ctx_t *s, int stream, const char *data, size_t len)
{
    if (!s->spec->output) return;
    pthread_mutex_lock(&s->output_lock);
    s->spec->output(s->spec->output_ctx, stream, data, len);
    pthread_mutex_unlock(&s->output_lock);
}

static void on_output(void *data, int stream, const uint8_t *buf, size_t len)
{
    emit(data, stream, (const char *)buf, len);
}

static const char *outcome_text(wasmrt_http_outcome_t o)
{
    switch (o) {
    case WASMRT_HTTP_ANSWERED:
        return "answered";
    case WASMRT_HTTP_TRAPPED:
        return "trapped";
    case WASMRT_HTTP_TIMED_OUT:
        return "timed out";
    case WASMRT_HTTP_OVERLOADED:
        return "refused, too many requests in flight";
    case WASMRT_HTTP_ENDED:
        return "ended by the container's stop";
    case WASMRT_HTTP_NO_RESPONSE:
        return "not answered";
    }
    return "?";
}

static void on_request_done(void *data, const wasmlet_http_request_log_t *log)
{
    serve_ctx_t *s = data;
    const wasmrt_http_t *http = &s->spec->http;
    wasmrt_http_request_t req = {
        .method = log->method,
        .target = log->target,
        .status = log->status,
        .outcome = (wasmrt_http_outcome_t)log->outcome,
        .duration_ns = (int64_t)log->duration_ns,
        .instantiate_ns = (int64_t)log->instantiate_ns,
    };
    if (!http->no_access_log) {
        char line[640];
        int n = snprintf(line, sizeof line, "http: %s %.400s %d %.3fms\n", req.method, req.target,
                         req.status, (double)req.duration_ns / 1e6);
        if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
        if (n > 0) emit(s, 1, line, (size_t)n);
    }
    if (req.outcome != WASMRT_HTTP_ANSWERED) {
        char cause[900];
        wasmrt_condense(log->message ? log->message : "", cause, sizeof cause);
        char line[1400];
        int n = snprintf(line, sizeof line, "wasmlet: %s %.300s %s: %s\n", req.method, req.target,
                         outcome_text(req.outcome), cause);
        if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
        if (n > 0) emit(s, 2, line, (size_t)n);
    }
    if (http->request_done) http->request_done(http->ctx, &req);
}

/* The component on the serving engine (the pooling allocator makes a
 * request's instance in microseconds), made once per module from its
 * compiled code; the node's engine's when that cannot be (said once). */
static const wasmtime_component_t *served_component(wasmrt_t *rt, wasmrt_module_t *mod)
{
    pthread_mutex_lock(&rt->lock);
    const wasmtime_component_t *have = mod->served;
    pthread_mutex_unlock(&rt->lock);
    if (have) return have;
    char why[512] = "";
    wasm_engine_t *engine = wasmrt_serve_engine(rt, why, sizeof why);
    wasmtime_component_t *made = NULL;
    if (engine) {
        wasm_byte_vec_t code;
        wasmtime_error_t *error = wasmtime_component_serialize(mod->component, &code);
        if (!error) {
            error = wasmtime_component_deserialize(engine, (const uint8_t *)code.data, code.size,
                                                   &made);
            wasm_byte_vec_delete(&code);
        }
        if (error) {
            char msg[400];
            wasmrt_error_message(error, msg, sizeof msg);
            wasmtime_error_delete(error);
            snprintf(why, sizeof why, "cannot move the component to the serving engine: %s", msg);
        }
    }
    if (!made) {
        static atomic_bool said;
        if (!atomic_exchange(&said, true))
            diag_warn("serving wasi:http without the pooling allocator: %s", why);
        return mod->component;
    }
    pthread_mutex_lock(&rt->lock);
    if (!mod->served)
        mod->served = made;
    else
        wasmtime_component_delete(made); /* another container made it first */
    have = mod->served;
    pthread_mutex_unlock(&rt->lock);
    return have;
}

/* A listening TCP socket on addr:port; -1 with msg filled. */
static int listen_on(const char *addr, uint16_t port, char *msg, size_t len)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        snprintf(msg, len, "cannot serve on %s: not an IPv4 address", addr);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(msg, len, "cannot serve on %s:%u: socket: %s", addr, port, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == -1 || listen(fd, 1024) == -1) {
        snprintf(msg, len, "cannot serve on %s:%u: %s", addr, port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void failed(wasmrt_result_t *result, const char *msg)
{
    result->outcome = WASMRT_START_FAILED;
    result->exit_code = WASMRT_EXIT_START_FAILED;
    snprintf(result->message, sizeof result->message, "%s", msg);
}

void wasmrt_http_serve(wasmrt_t *rt, wasmrt_module_t *mod, const wasmrt_spec_t *spec,
                       wasmrt_stop_t *stop, wasmrt_result_t *result)
{
    const wasmrt_http_t *http = &spec->http;
    int64_t t0 = time_mono_ns();
    uint16_t default_port = WASMRT_HTTP_DEFAULT_PORT;
    const uint16_t *ports = http->nports ? http->ports : &default_port;
    size_t nports = http->nports ? http->nports : 1;
    const char *addr = http->bind_addr ? http->bind_addr : "0.0.0.0";
    int *fds = xcalloc(nports, sizeof *fds);
    char msg[512];
    size_t opened = 0;
    for (; opened < nports; opened++) {
        fds[opened] = listen_on(addr, ports[opened], msg, sizeof msg);
        if (fds[opened] < 0) break;
    }
    wasmlet_http_mount_t *mounts = xcalloc(spec->nmounts + 1, sizeof *mounts);
    for (size_t i = 0; i < spec->nmounts; i++)
        mounts[i] = (wasmlet_http_mount_t){spec->mounts[i].host_path, spec->mounts[i].guest_path,
                                           spec->mounts[i].read_only};
    serve_ctx_t s = {.spec = spec};
    pthread_mutex_init(&s.output_lock, NULL);
    wasmlet_http_server_t *server = NULL;
    if (opened < nports) {
        failed(result, msg);
        goto out;
    }
    wasmlet_http_server_config_t config = {
        .listen_fds = fds,
        .n_listen_fds = nports,
        .args = spec->argv,
        .n_args = spec->argc,
        .env = spec->env,
        .n_env = spec->envc,
        .mounts = mounts,
        .n_mounts = spec->nmounts,
        .memory_limit = (size_t)spec->memory_limit,
        .max_in_flight =
            http->max_in_flight ? http->max_in_flight : WASMRT_HTTP_DEFAULT_MAX_IN_FLIGHT,
        .request_timeout_ms =
            (uint64_t)(http->request_timeout_ms > 0 ? http->request_timeout_ms
                                                    : WASMRT_HTTP_DEFAULT_TIMEOUT_MS),
        .cpu_millicores = spec->cpu_millicores,
        .epoch_tick_ms = (uint32_t)rt->tick_ms,
        .output = on_output,
        .request_done = on_request_done,
        .callback_data = &s,
    };
    wasmtime_error_t *error =
        wasmlet_http_server_start(served_component(rt, mod), &config, &server);
    if (error) {
        char why[480];
        wasmrt_error_message(error, why, sizeof why);
        wasmtime_error_delete(error);
        snprintf(msg, sizeof msg, "cannot serve the component: %s", why);
        failed(result, msg);
        goto out;
    }
    opened = 0; /* the server owns the sockets now */
    /* Its stores live per request inside the server: what this run holds
     * for the figures is the listeners (and what the caller keeps). */
    if (spec->descriptors)
        spec->descriptors(spec->descriptors_ctx, spec->kept_descriptors + nports);
    result->instantiate_ns = time_mono_ns() - t0;
    /* Serving: what the start trace calls instantiated. */
    if (spec->started) spec->started(spec->started_ctx, result->instantiate_ns);
    if (http->serving) {
        /* The ports bound, port 0 resolved. */
        char addrs[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < nports && used < sizeof addrs; i++) {
            struct sockaddr_in sa;
            socklen_t sl = sizeof sa;
            unsigned port = getsockname(fds[i], (struct sockaddr *)&sa, &sl) == 0
                                ? ntohs(sa.sin_port)
                                : ports[i];
            used += (size_t)snprintf(addrs + used, sizeof addrs - used, "%s%s:%u", i ? ", " : "",
                                     addr, port);
        }
        http->serving(http->ctx, addrs);
    }

    while (!wasmrt_stop_wait(stop, 1000))
        ;
    int64_t deadline = atomic_load(&stop->drain_deadline);
    int64_t grace_ns = deadline > 0 ? deadline - time_mono_ns() : 0;
    size_t ended =
        wasmlet_http_server_shutdown(server, grace_ns > 0 ? (uint64_t)(grace_ns / NS_PER_MS) : 0);
    result->outcome = WASMRT_STOPPED;
    result->run_ns = time_mono_ns() - t0 - result->instantiate_ns;
    result->exit_code = ended ? WASMRT_EXIT_KILLED : 0;
    if (ended)
        snprintf(result->message, sizeof result->message,
                 "stopped serving; %zu requests were still in flight at the end of the grace "
                 "period and were ended",
                 ended);
out:
    /* After the shutdown no callback runs: s can go. */
    wasmlet_http_server_delete(server);
    for (size_t i = 0; i < opened; i++)
        close(fds[i]);
    pthread_mutex_destroy(&s.output_lock);
    free(mounts);
    free(fds);
}
