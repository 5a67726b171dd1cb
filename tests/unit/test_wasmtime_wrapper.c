/* test_wasmtime_wrapper.c: C tests of every entry point the wrapper crate
 * (deps/wasmtime-capi) adds to the Wasmtime C API (src/wasm/wasmlet_capi.h),
 * called directly, below wasm/: the TCP/UDP switches and the socket
 * address check, cancel tokens and cancellable waits, the memory limit
 * summed over a store's memories, outgoing wasi:http with a per-store
 * policy, the check of a component's imports, the per-memory limit, the
 * descriptor cap of a component's store, and the refusals of the HTTP
 * server's start (its serving is covered through
 * wasm/, by test_wasm_http.c).
 *
 * The components are the examples' (tcp-client, udp-echo, sleeper,
 * http-get; $WASMLET_EXAMPLES), run against servers on loopback; the
 * two-memory module is WAT built in-process. Each test also shows the value
 * set through the wrapper's casts behind a C API handle has its effect
 * (layout.rs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"
#include "util/fs.h"
#include "wasm/wasmlet_capi.h"
#include "loopback_servers.h"
#include "wasm_signals.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static wasm_engine_t *engine;
static wasmtime_component_linker_t *linker;

static void check_ok(wasmtime_error_t *error, const char *what)
{
    if (!error) return;
    wasm_name_t msg;
    wasmtime_error_message(error, &msg);
    fail_msg("%s: %.*s", what, (int)msg.size, msg.data);
}

/* The error's text (freed by the caller), and the error freed. */
static char *take_text(wasmtime_error_t *error)
{
    if (!error) fail_msg("expected an error");
    wasm_name_t msg;
    wasmtime_error_message(error, &msg);
    char *text = xasprintf("%.*s", (int)msg.size, msg.data);
    wasm_byte_vec_delete(&msg);
    wasmtime_error_delete(error);
    return text;
}

/* Asserts that the call failed. */
static void expect_error(wasmtime_error_t *error)
{
    free(take_text(error));
}

static wasmtime_component_t *load_component(const char *name)
{
    const char *dir = getenv("WASMLET_EXAMPLES");
    char *path = xasprintf("%s/%s.component.wasm", dir && *dir ? dir : "build/examples", name);
    char *data;
    size_t len;
    if (fs_read_all(path, &data, &len, NULL) == -1) fail_msg("cannot read %s", path);
    wasmtime_component_t *c = NULL;
    check_ok(wasmtime_component_new(engine, (const uint8_t *)data, len, &c), path);
    free(data);
    free(path);
    return c;
}

typedef struct output {
    pthread_mutex_t lock;
    strbuf_t text;
} output_t;

static ptrdiff_t on_write(void *data, const unsigned char *buf, size_t len)
{
    output_t *o = data;
    pthread_mutex_lock(&o->lock);
    strbuf_append(&o->text, (const char *)buf, len);
    pthread_mutex_unlock(&o->lock);
    return (ptrdiff_t)len;
}

/* A WASI configuration with argv and stdout/stderr captured into out. */
static wasi_config_t *wasi_with(const char *const *argv, output_t *out)
{
    wasi_config_t *wasi = wasi_config_new();
    size_t argc = 0;
    while (argv[argc])
        argc++;
    assert_true(wasi_config_set_argv(wasi, argc, (const char **)argv));
    wasi_config_set_stdout_custom(wasi, on_write, out, NULL);
    wasi_config_set_stderr_custom(wasi, on_write, out, NULL);
    return wasi;
}

/* Runs wasi:cli/run of a component instantiated in store; the exit code
 * (run's ok 0 / err 1, or wasi:cli/exit's), or -1 with *error_text set
 * for any other failure. */
static int call_run(wasmtime_store_t *store, wasmtime_component_t *c, char **error_text)
{
    wasmtime_context_t *cx = wasmtime_store_context(store);
    wasmtime_component_instance_t inst;
    check_ok(wasmtime_component_linker_instantiate(linker, cx, c, &inst), "instantiate");
    wasmtime_component_type_t *ty = wasmtime_component_type(c);
    wasmtime_component_export_index_t *iface = NULL;
    for (size_t i = 0; i < wasmtime_component_type_export_count(ty, engine) && !iface; i++) {
        const char *name;
        size_t len;
        wasmtime_component_item_t item;
        assert_true(wasmtime_component_type_export_nth(ty, engine, i, &name, &len, &item));
        wasmtime_component_item_delete(&item);
        if (len > 13 && memcmp(name, "wasi:cli/run@", 13) == 0)
            iface = wasmtime_component_get_export_index(c, NULL, name, len);
    }
    wasmtime_component_type_delete(ty);
    assert_non_null(iface);
    wasmtime_component_export_index_t *run =
        wasmtime_component_get_export_index(c, iface, "run", 3);
    assert_non_null(run);
    wasmtime_component_func_t func;
    assert_true(wasmtime_component_instance_get_func(&inst, cx, run, &func));
    wasmtime_component_export_index_delete(run);
    wasmtime_component_export_index_delete(iface);
    wasmtime_component_val_t ret = {.kind = WASMTIME_COMPONENT_BOOL};
    wasmtime_error_t *error = wasmtime_component_func_call(&func, cx, NULL, 0, &ret, 1);
    if (error) {
        int status;
        if (wasmtime_error_exit_status(error, &status)) {
            wasmtime_error_delete(error);
            return status;
        }
        *error_text = take_text(error);
        return -1;
    }
    int code = ret.kind == WASMTIME_COMPONENT_RESULT && !ret.of.result.is_ok;
    wasmtime_component_val_delete(&ret);
    return code;
}

/* --- descriptor cap --------------------------------------------------------------- */

/* tcp-client sockets 20 keeps every TCP socket it creates: with a cap of 4
 * the fifth create-tcp-socket returns new-socket-limit and the store holds
 * exactly 4; without a cap, 20 (sockets count as held descriptors). The
 * file side (open-at, error-code quota) is run through wasm/ in
 * test_wasm_component.c. */
static void descriptor_cap(void **state)
{
    (void)state;
    wasm_signals_restore();
    wasmtime_component_t *c = load_component("tcp-client");
    const char *argv[] = {"tcp-client", "sockets", "20", NULL};
    for (int capped = 1; capped >= 0; capped--) {
        output_t out = {PTHREAD_MUTEX_INITIALIZER, STRBUF_INIT};
        wasmtime_store_t *store = wasmtime_store_new(engine, NULL, NULL);
        wasmtime_context_t *cx = wasmtime_store_context(store);
        wasi_config_t *wasi = wasi_with(argv, &out);
        wasmlet_wasi_config_allow_tcp(wasi, true);
        check_ok(wasmtime_context_set_wasi(cx, wasi), "set_wasi");
        if (capped) check_ok(wasmlet_context_set_descriptor_cap(cx, 4), "set cap");
        assert_int_equal(wasmlet_context_descriptors_held(cx), 0);
        char *text = NULL;
        int code = call_run(store, c, &text);
        if (code == -1) fail_msg("tcp-client: %s", text);
        assert_int_equal(code, capped ? 1 : 0);
        assert_int_equal(wasmlet_context_descriptors_held(cx), capped ? 4 : 20);
        assert_string_equal(strbuf_str(&out.text),
                            capped ? "sockets 4\ntcp-client: socket: new-socket-limit\n"
                                   : "sockets 20\n");
        wasmtime_store_delete(store);
        strbuf_free(&out.text);
    }
    wasmtime_component_delete(c);
}

/* --- sockets ------------------------------------------------------------------ */

typedef struct check_log {
    atomic_int calls;
    atomic_int last_use;
    atomic_int last_port;
    atomic_int finalized;
    bool allow;
} check_log_t;

static bool check(void *data, const struct sockaddr *addr, socklen_t len, int use)
{
    check_log_t *log = data;
    atomic_fetch_add(&log->calls, 1);
    atomic_store(&log->last_use, use);
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
        atomic_store(&log->last_port, ntohs(((const struct sockaddr_in *)addr)->sin_port));
    /* Binds are allowed, so that only the destination decides. */
    if (use == WASMLET_ADDR_TCP_BIND || use == WASMLET_ADDR_UDP_BIND) return true;
    return log->allow;
}

static void check_finalize(void *data)
{
    check_log_t *log = data;
    atomic_fetch_add(&log->finalized, 1);
}

/* Runs a sockets component with TCP/UDP switched as given and the check. */
static int run_sockets(const char *name, const char *const *argv, bool tcp, bool udp,
                       check_log_t *log, output_t *out)
{
    wasmtime_component_t *c = load_component(name);
    wasmtime_store_t *store = wasmtime_store_new(engine, NULL, NULL);
    wasi_config_t *wasi = wasi_with(argv, out);
    wasmlet_wasi_config_allow_tcp(wasi, tcp);
    wasmlet_wasi_config_allow_udp(wasi, udp);
    wasi_config_allow_ip_name_lookup(wasi, true);
    assert_true(wasmlet_wasi_config_socket_addr_check(wasi, check, log, check_finalize));
    check_ok(wasmtime_context_set_wasi(wasmtime_store_context(store), wasi), "set_wasi");
    char *text = NULL;
    int code = call_run(store, c, &text);
    if (code == -1) fail_msg("%s: %s", name, text);
    wasmtime_store_delete(store);
    wasmtime_component_delete(c);
    return code;
}

static void sockets_switches_and_check(void **state)
{
    (void)state;
    wasm_signals_restore();
    loopback_server_t srv;
    assert_int_equal(loopback_start(&srv, SOCK_STREAM, false, 1), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    const char *argv[] = {"tcp-client", "127.0.0.1", port, "through the check", NULL};

    /* TCP allowed, the check denies: called for the connect, honoured. */
    check_log_t log = {.allow = false};
    output_t out = {PTHREAD_MUTEX_INITIALIZER, STRBUF_INIT};
    assert_int_equal(run_sockets("tcp-client", argv, true, false, &log, &out), 1);
    assert_true(atomic_load(&log.calls) >= 1);
    assert_int_equal(atomic_load(&log.last_use), WASMLET_ADDR_TCP_CONNECT);
    assert_int_equal(atomic_load(&log.last_port), srv.port);
    if (!strstr(strbuf_str(&out.text), "access-denied")) fail_msg("%s", strbuf_str(&out.text));
    assert_int_equal(atomic_load(&srv.served), 0);
    /* The finalizer ran once the store (and its sockets) were gone. */
    assert_int_equal(atomic_load(&log.finalized), 1);
    strbuf_free(&out.text);

    /* The check allows: the echo comes back. */
    check_log_t yes = {.allow = true};
    assert_int_equal(run_sockets("tcp-client", argv, true, false, &yes, &out), 0);
    assert_non_null(strstr(strbuf_str(&out.text), "through the check\n"));
    assert_int_equal(atomic_load(&yes.last_use), WASMLET_ADDR_TCP_CONNECT);
    assert_int_equal(atomic_load(&yes.finalized), 1);
    strbuf_free(&out.text);
    loopback_stop(&srv);

    /* TCP switched off: refused whatever the check says (Wasmtime's
     * default, which the switch overrides). */
    check_log_t off = {.allow = true};
    assert_int_equal(run_sockets("tcp-client", argv, false, true, &off, &out), 1);
    assert_non_null(strstr(strbuf_str(&out.text), "tcp-client: "));
    strbuf_free(&out.text);

    /* UDP: the same two ways. */
    loopback_server_t us;
    assert_int_equal(loopback_start(&us, SOCK_DGRAM, false, 1), 0);
    snprintf(port, sizeof port, "%d", us.port);
    const char *uargv[] = {"udp-echo", "client", "127.0.0.1", port, "datagram", NULL};
    check_log_t u = {.allow = true};
    assert_int_equal(run_sockets("udp-echo", uargv, false, true, &u, &out), 0);
    assert_non_null(strstr(strbuf_str(&out.text), "datagram"));
    assert_int_equal(atomic_load(&u.last_port), us.port);
    strbuf_free(&out.text);
    check_log_t uoff = {.allow = true};
    assert_int_equal(run_sockets("udp-echo", uargv, true, false, &uoff, &out), 1);
    strbuf_free(&out.text);
    loopback_stop(&us);

    /* NULL arguments. */
    wasmlet_wasi_config_allow_tcp(NULL, true);
    wasmlet_wasi_config_allow_udp(NULL, true);
    check_log_t never = {0};
    assert_false(wasmlet_wasi_config_socket_addr_check(NULL, check, &never, check_finalize));
    /* The finalizer runs at once when the check is refused. */
    assert_int_equal(atomic_load(&never.finalized), 1);
    wasi_config_t *wasi = wasi_config_new();
    assert_false(wasmlet_wasi_config_socket_addr_check(wasi, NULL, NULL, NULL));
    wasi_config_delete(wasi);
}

/* --- cancel tokens ---------------------------------------------------------------- */

typedef struct canceller {
    wasmlet_cancel_token_t *token;
    int64_t delay_ms;
    int64_t at;
} canceller_t;

static void *canceller_main(void *arg)
{
    canceller_t *c = arg;
    time_sleep_ms(c->delay_ms);
    c->at = time_mono_ns();
    wasmlet_cancel_token_cancel(c->token);
    return NULL;
}

static void cancel_token_ends_blocking_waits(void **state)
{
    (void)state;
    wasm_signals_restore();
    wasmlet_cancel_token_t *token = wasmlet_cancel_token_new();
    assert_non_null(token);
    assert_false(wasmlet_cancel_token_is_cancelled(token));
    wasmtime_component_t *c = load_component("sleeper");
    output_t out = {PTHREAD_MUTEX_INITIALIZER, STRBUF_INIT};

    /* Without WASI, and without a token: errors. */
    wasmtime_store_t *store = wasmtime_store_new(engine, NULL, NULL);
    wasmtime_context_t *cx = wasmtime_store_context(store);
    char *text = take_text(wasmlet_context_set_cancel_token(cx, token));
    assert_non_null(strstr(text, "wasmtime_context_set_wasi"));
    free(text);
    const char *argv[] = {"sleeper", "3600", NULL};
    check_ok(wasmtime_context_set_wasi(cx, wasi_with(argv, &out)), "set_wasi");
    text = take_text(wasmlet_context_set_cancel_token(cx, NULL));
    assert_non_null(strstr(text, "NULL"));
    free(text);

    /* A sleep of an hour (monotonic-clock subscribe + poll through the
     * preview-1 adapter) ends within 100 ms of the cancel. */
    check_ok(wasmlet_context_set_cancel_token(cx, token), "set token");
    canceller_t cn = {.token = token, .delay_ms = 200};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, canceller_main, &cn), 0);
    int code = call_run(store, c, &text);
    int64_t end = time_mono_ns();
    pthread_join(t, NULL);
    assert_int_equal(code, -1);
    if (!strstr(text, WASMLET_CANCELLED_MESSAGE)) fail_msg("error: %s", text);
    free(text);
    printf("cancel latency: %.2f ms\n", (double)(end - cn.at) / 1e6);
    assert_true(end - cn.at < 100 * NS_PER_MS);
    assert_true(wasmlet_cancel_token_is_cancelled(token));
    assert_non_null(strstr(strbuf_str(&out.text), "sleeping 3600"));
    wasmtime_store_delete(store);
    strbuf_free(&out.text);

    /* Already cancelled: the first blocking wait of a new store ends at
     * once. */
    store = wasmtime_store_new(engine, NULL, NULL);
    cx = wasmtime_store_context(store);
    check_ok(wasmtime_context_set_wasi(cx, wasi_with(argv, &out)), "set_wasi");
    check_ok(wasmlet_context_set_cancel_token(cx, token), "set token");
    int64_t t0 = time_mono_ns();
    assert_int_equal(call_run(store, c, &text), -1);
    assert_true(time_mono_ns() - t0 < 1000 * NS_PER_MS);
    assert_non_null(strstr(text, WASMLET_CANCELLED_MESSAGE));
    free(text);
    wasmtime_store_delete(store);
    strbuf_free(&out.text);

    /* The caller's reference goes; NULLs are harmless. */
    wasmlet_cancel_token_delete(token);
    wasmlet_cancel_token_cancel(NULL);
    assert_false(wasmlet_cancel_token_is_cancelled(NULL));
    wasmlet_cancel_token_delete(NULL);
    expect_error(wasmlet_component_linker_add_cancellable_waits(NULL));
    wasmtime_component_delete(c);
}

/* --- memory limits ------------------------------------------------------------------ */

/* Two memories of 10 pages (640 KiB) each; grow0/grow1 grow one by n
 * pages and return memory.grow's result. */
static const char two_memories[] = "(module\n"
                                   "  (memory $a 10)\n"
                                   "  (memory $b 10 20)\n"
                                   "  (func (export \"grow0\") (param i32) (result i32)\n"
                                   "    local.get 0 memory.grow $a)\n"
                                   "  (func (export \"grow1\") (param i32) (result i32)\n"
                                   "    local.get 0 memory.grow $b))\n";

typedef struct mem_store {
    wasmtime_store_t *store;
    wasmtime_instance_t inst;
} mem_store_t;

static void mem_store_new(mem_store_t *m, wasmtime_module_t *module, size_t limit, bool summed)
{
    m->store = wasmtime_store_new(engine, NULL, NULL);
    wasmtime_context_t *cx = wasmtime_store_context(m->store);
    if (!summed) {
        wasmtime_store_limiter(m->store, (int64_t)limit, -1, -1, -1, -1);
        wasmlet_context_trap_on_memory_limit(cx, limit);
    }
    check_ok(wasmtime_context_set_wasi(cx, wasi_config_new()), "set_wasi");
    if (summed) check_ok(wasmlet_store_limit_memory_total(m->store, limit), "limit");
    wasm_trap_t *trap = NULL;
    check_ok(wasmtime_instance_new(cx, module, NULL, 0, &m->inst, &trap), "instantiate");
    assert_null(trap);
}

/* Calls growN(pages): memory.grow's result, or -2 with *trap_text on a trap. */
static int grow(mem_store_t *m, int which, int pages, char **trap_text)
{
    wasmtime_context_t *cx = wasmtime_store_context(m->store);
    wasmtime_extern_t f;
    const char *name = which ? "grow1" : "grow0";
    assert_true(wasmtime_instance_export_get(cx, &m->inst, name, 5, &f));
    wasmtime_val_t arg = {.kind = WASMTIME_I32, .of.i32 = pages}, res;
    wasm_trap_t *trap = NULL;
    wasmtime_error_t *error = wasmtime_func_call(cx, &f.of.func, &arg, 1, &res, 1, &trap);
    if (error) {
        *trap_text = take_text(error);
        return -2;
    }
    if (trap) {
        wasm_message_t msg;
        wasm_trap_message(trap, &msg);
        *trap_text = xasprintf("%.*s", (int)msg.size, msg.data);
        wasm_byte_vec_delete(&msg);
        wasm_trap_delete(trap);
        return -2;
    }
    return res.of.i32;
}

static void memory_limit_summed(void **state)
{
    (void)state;
    wasm_signals_restore();
    wasm_byte_vec_t bin;
    check_ok(wasmtime_wat2wasm(two_memories, strlen(two_memories), &bin), "wat");
    wasmtime_module_t *module = NULL;
    check_ok(wasmtime_module_new(engine, (const uint8_t *)bin.data, bin.size, &module), "module");
    wasm_byte_vec_delete(&bin);
    const size_t page = 65536;

    /* A cap of 24 pages over both: 20 at the start, +2 fits, +3 more does
     * not, in the other memory. */
    mem_store_t m;
    mem_store_new(&m, module, 24 * page, true);
    wasmtime_context_t *cx = wasmtime_store_context(m.store);
    assert_int_equal(wasmlet_context_memory_total(cx), 20 * page);
    char *text = NULL;
    assert_int_equal(grow(&m, 0, 2, &text), 10);
    assert_int_equal(wasmlet_context_memory_total(cx), 22 * page);
    assert_int_equal(grow(&m, 1, 3, &text), -2);
    if (!strstr(text, WASMLET_OOM_MESSAGE)) fail_msg("trap: %s", text);
    free(text);
    assert_int_equal(wasmlet_context_memory_total(cx), 22 * page);
    wasmtime_store_delete(m.store);

    /* The cap moved (an in-place resize): not below the 22 pages held,
     * which changes nothing; above them, later growths see the new cap. */
    mem_store_new(&m, module, 24 * page, true);
    cx = wasmtime_store_context(m.store);
    assert_int_equal(grow(&m, 0, 2, &text), 10);
    assert_false(wasmlet_context_set_memory_limit_total(cx, 21 * page));
    assert_int_equal(grow(&m, 1, 3, &text), -2); /* still 24 pages */
    free(text);
    wasmtime_store_delete(m.store);
    mem_store_new(&m, module, 24 * page, true);
    cx = wasmtime_store_context(m.store);
    assert_int_equal(grow(&m, 0, 2, &text), 10);
    assert_true(wasmlet_context_set_memory_limit_total(cx, 30 * page));
    assert_int_equal(grow(&m, 1, 3, &text), 10);
    assert_int_equal(grow(&m, 0, 3, &text), 12);
    assert_int_equal(wasmlet_context_memory_total(cx), 28 * page);
    assert_int_equal(grow(&m, 1, 3, &text), -2); /* 31 > 30 */
    assert_non_null(strstr(text, WASMLET_OOM_MESSAGE));
    free(text);
    /* Lowered to exactly what is held: allowed, and nothing grows. */
    assert_true(wasmlet_context_set_memory_limit_total(cx, 28 * page));
    assert_int_equal(grow(&m, 0, 1, &text), -2);
    free(text);
    wasmtime_store_delete(m.store);
    /* A store without the summed limiter: refused. */
    mem_store_new(&m, module, 24 * page, false);
    assert_false(wasmlet_context_set_memory_limit_total(wasmtime_store_context(m.store), page));
    wasmtime_store_delete(m.store);

    /* Past a memory's own maximum (20 pages): -1, as the spec says, not a trap. */
    mem_store_new(&m, module, 1000 * page, true);
    assert_int_equal(grow(&m, 1, 11, &text), -1);
    assert_int_equal(grow(&m, 1, 10, &text), 10);
    wasmtime_store_delete(m.store);

    /* The per-memory limit lets each memory have 24 pages: the same growth
     * is not refused there. That is why containers use the sum. */
    mem_store_new(&m, module, 24 * page, false);
    assert_int_equal(grow(&m, 0, 2, &text), 10);
    assert_int_equal(grow(&m, 1, 3, &text), 10);
    /* Past 24 pages in one memory it traps (and the summed figure is 0:
     * this store has no summed limiter). */
    assert_int_equal(grow(&m, 0, 13, &text), -2);
    assert_non_null(strstr(text, WASMLET_OOM_MESSAGE));
    free(text);
    assert_int_equal(wasmlet_context_memory_total(wasmtime_store_context(m.store)), 0);
    wasmtime_store_delete(m.store);

    /* A cap below the initial memories fails the instantiation. */
    wasmtime_store_t *store = wasmtime_store_new(engine, NULL, NULL);
    cx = wasmtime_store_context(store);
    check_ok(wasmtime_context_set_wasi(cx, wasi_config_new()), "set_wasi");
    check_ok(wasmlet_store_limit_memory_total(store, 15 * page), "limit");
    wasmtime_instance_t inst;
    wasm_trap_t *trap = NULL;
    wasmtime_error_t *error = wasmtime_instance_new(cx, module, NULL, 0, &inst, &trap);
    assert_true(error || trap);
    if (error) {
        text = take_text(error);
    } else {
        wasm_message_t msg;
        wasm_trap_message(trap, &msg);
        text = xasprintf("%.*s", (int)msg.size, msg.data);
        wasm_byte_vec_delete(&msg);
        wasm_trap_delete(trap);
    }
    assert_non_null(strstr(text, WASMLET_OOM_MESSAGE));
    free(text);
    wasmtime_store_delete(store);

    /* Errors: no store, no WASI. */
    expect_error(wasmlet_store_limit_memory_total(NULL, page));
    store = wasmtime_store_new(engine, NULL, NULL);
    text = take_text(wasmlet_store_limit_memory_total(store, page));
    assert_non_null(strstr(text, "WASI"));
    free(text);
    assert_int_equal(wasmlet_context_memory_total(wasmtime_store_context(store)), 0);
    wasmtime_store_delete(store);
    wasmtime_module_delete(module);
}

/* --- outgoing HTTP ------------------------------------------------------------------ */

typedef struct policy {
    bool set;
    const char *const *hosts;
    size_t nhosts;
    check_log_t *log;
    const char *const *cas;
    size_t ncas;
} policy_t;

static int run_http(const char *url, const policy_t *p, output_t *out)
{
    wasmtime_component_t *c = load_component("http-get");
    wasmtime_store_t *store = wasmtime_store_new(engine, NULL, NULL);
    wasmtime_context_t *cx = wasmtime_store_context(store);
    const char *argv[] = {"http-get", url, NULL};
    check_ok(wasmtime_context_set_wasi(cx, wasi_with(argv, out)), "set_wasi");
    if (p->set)
        check_ok(wasmlet_context_set_http_policy(cx, p->hosts, p->nhosts, p->log ? check : NULL,
                                                 p->log, p->log ? check_finalize : NULL, p->cas,
                                                 p->ncas),
                 "policy");
    char *text = NULL;
    int code = call_run(store, c, &text);
    if (code == -1) fail_msg("http-get: %s", text);
    wasmtime_store_delete(store);
    wasmtime_component_delete(c);
    return code;
}

static void http_policy(void **state)
{
    (void)state;
    wasm_signals_restore();
    loopback_server_t srv;
    assert_int_equal(loopback_start(&srv, SOCK_STREAM, true, 2), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", srv.port);
    output_t out = {PTHREAD_MUTEX_INITIALIZER, STRBUF_INIT};

    /* No policy: the request fails inside the component, no abort. */
    policy_t none = {0};
    assert_int_equal(run_http(url, &none, &out), 1);
    if (!strstr(strbuf_str(&out.text), "internal-error")) fail_msg("%s", strbuf_str(&out.text));
    strbuf_free(&out.text);

    /* A host not in the list: HTTP-request-denied, the check never asked. */
    const char *hosts[] = {"example.com", "*.example.org"};
    check_log_t log = {.allow = true};
    policy_t listed = {.set = true, .hosts = hosts, .nhosts = 2, .log = &log};
    assert_int_equal(run_http(url, &listed, &out), 1);
    assert_non_null(strstr(strbuf_str(&out.text), "HTTP-request-denied"));
    assert_int_equal(atomic_load(&log.calls), 0);
    assert_int_equal(atomic_load(&log.finalized), 1);
    strbuf_free(&out.text);

    /* Every host, the check denies the address: denied, check asked. */
    check_log_t no = {.allow = false};
    policy_t denied = {.set = true, .log = &no};
    assert_int_equal(run_http(url, &denied, &out), 1);
    assert_non_null(strstr(strbuf_str(&out.text), "HTTP-request-denied"));
    assert_int_equal(atomic_load(&no.last_use), WASMLET_ADDR_HTTP_CONNECT);
    assert_int_equal(atomic_load(&no.last_port), srv.port);
    strbuf_free(&out.text);

    /* Allowed: the server's answer. */
    const char *mine[] = {"127.0.0.1"};
    check_log_t yes = {.allow = true};
    policy_t allowed = {.set = true, .hosts = mine, .nhosts = 1, .log = &yes};
    assert_int_equal(run_http(url, &allowed, &out), 0);
    assert_string_equal(strbuf_str(&out.text), "status: 200\n" LOOPBACK_BODY);
    assert_string_equal(srv.last_request, "GET /x HTTP/1.1");
    strbuf_free(&out.text);
    loopback_stop(&srv);

    /* An unreadable CA file is refused when the policy is set. */
    wasmtime_store_t *store = wasmtime_store_new(engine, NULL, NULL);
    wasmtime_context_t *cx = wasmtime_store_context(store);
    char *text = take_text(wasmlet_context_set_http_policy(cx, NULL, 0, NULL, NULL, NULL, NULL, 0));
    assert_non_null(strstr(text, "WASI"));
    free(text);
    check_ok(wasmtime_context_set_wasi(cx, wasi_config_new()), "set_wasi");
    const char *cas[] = {"/nonexistent/ca.pem"};
    text = take_text(wasmlet_context_set_http_policy(cx, NULL, 0, NULL, NULL, NULL, cas, 1));
    assert_non_null(strstr(text, "/nonexistent/ca.pem"));
    free(text);
    wasmtime_store_delete(store);
    expect_error(wasmlet_component_linker_add_wasi_http(NULL));
}

/* --- import check ---------------------------------------------------------------- */

static void on_unsatisfied(void *data, const char *name, size_t name_len, const char *why,
                           size_t why_len)
{
    (void)why;
    (void)why_len;
    strbuf_printf(data, "[%.*s]", (int)name_len, name);
}

static void unsatisfied_imports(void **state)
{
    (void)state;
    wasm_signals_restore();
    wasmtime_component_t *hello = load_component("hello");
    strbuf_t names = STRBUF_INIT;
    assert_int_equal(wasmlet_component_linker_unsatisfied(linker, hello, on_unsatisfied, &names),
                     0);
    assert_int_equal(names.len, 0);
    const char *dir = getenv("WASMLET_EXAMPLES");
    char *path = xasprintf("%s/bad/component-keyvalue.wasm", dir && *dir ? dir : "build/examples");
    char *data;
    size_t len;
    assert_int_equal(fs_read_all(path, &data, &len, NULL), 0);
    wasmtime_component_t *kv = NULL;
    check_ok(wasmtime_component_new(engine, (const uint8_t *)data, len, &kv), path);
    assert_int_equal(wasmlet_component_linker_unsatisfied(linker, kv, on_unsatisfied, &names), 1);
    assert_string_equal(strbuf_str(&names), "[wasi:keyvalue/store@0.2.0]");
    /* The linker was not changed: the same check again finds the same. */
    assert_int_equal(wasmlet_component_linker_unsatisfied(linker, kv, NULL, NULL), 1);
    assert_int_equal(wasmlet_component_linker_unsatisfied(NULL, kv, NULL, NULL), -1);
    strbuf_free(&names);
    free(data);
    free(path);
    wasmtime_component_delete(kv);
    wasmtime_component_delete(hello);
}

/* wasmlet_http_server_start refuses what it cannot serve, naming why, and
 * leaves the listening socket to the caller. */
static void http_server_refusals(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 4), 0);
    wasmtime_component_t *command = load_component("hello");
    wasmtime_component_t *served = load_component("http-hello");
    wasmlet_http_server_config_t config = {
        .listen_fds = &fd, .n_listen_fds = 1, .max_in_flight = 4, .request_timeout_ms = 1000};
    wasmlet_http_server_t *server = NULL;

    /* A command component exports no wasi:http/incoming-handler. */
    char *text = take_text(wasmlet_http_server_start(command, &config, &server));
    assert_non_null(strstr(text, "incoming-handler"));
    free(text);
    assert_null(server);
    /* Nothing to listen on; zero limits; NULL arguments. */
    wasmlet_http_server_config_t none = config;
    none.n_listen_fds = 0;
    text = take_text(wasmlet_http_server_start(served, &none, &server));
    assert_non_null(strstr(text, "no listening socket"));
    free(text);
    wasmlet_http_server_config_t zero = config;
    zero.max_in_flight = 0;
    text = take_text(wasmlet_http_server_start(served, &zero, &server));
    assert_non_null(strstr(text, "must be positive"));
    free(text);
    expect_error(wasmlet_http_server_start(NULL, &config, &server));
    expect_error(wasmlet_http_server_start(served, NULL, &server));
    assert_null(server);
    /* The socket is still the caller's, open: a start with it works, and
     * then the server owns it. */
    assert_int_equal(fcntl(fd, F_GETFD), FD_CLOEXEC);
    check_ok(wasmlet_http_server_start(served, &config, &server), "start");
    assert_non_null(server);
    assert_int_equal(wasmlet_http_server_in_flight(server), 0);
    assert_int_equal(wasmlet_http_server_shutdown(server, 0), 0);
    assert_int_equal(wasmlet_http_server_shutdown(server, 0), 0); /* once only */
    wasmlet_http_server_delete(server);
    char link[64] = "", proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (readlink(proc, link, sizeof link - 1) > 0) fail_msg("fd %d is still open: %s", fd, link);
    wasmlet_http_server_delete(NULL);
    wasmtime_component_delete(command);
    wasmtime_component_delete(served);
}

static int setup(void **state)
{
    (void)state;
    wasm_config_t *config = wasm_config_new();
    engine = wasm_engine_new_with_config(config);
    linker = wasmtime_component_linker_new(engine);
    if (wasmtime_component_linker_add_wasip2(linker) ||
        wasmlet_component_linker_add_cancellable_waits(linker) ||
        wasmlet_component_linker_add_wasi_http(linker) ||
        wasmlet_component_linker_cap_descriptors(linker))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    wasmtime_component_linker_delete(linker);
    wasm_engine_delete(engine);
    return 0;
}

int main(void)
{
    wasm_signals_save();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sockets_switches_and_check),
        cmocka_unit_test(cancel_token_ends_blocking_waits),
        cmocka_unit_test(memory_limit_summed),
        cmocka_unit_test(http_policy),
        cmocka_unit_test(unsatisfied_imports),
        cmocka_unit_test(http_server_refusals),
        cmocka_unit_test(descriptor_cap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
