/* engine.c: the process-wide Wasmtime engine, its linker and epoch ticker.
 *
 * One engine serves every container: compiled code and the linker are
 * shared, and a container costs only its store and linear memory. The
 * engine runs with epoch interruption: a ticker thread advances the epoch
 * every tick (10 ms by default) and every running store has a deadline one
 * tick ahead, so the store's callback (run.c) runs at least once per tick to
 * check for a stop and to enforce the CPU limit. The cost is one load and
 * compare per loop header and function entry in generated code, which is
 * what Wasmtime documents as its cheapest interruption mechanism. */
#include "wasm/internal.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *wasmrt_error_text(const wasmtime_error_t *error)
{
    wasm_name_t msg;
    wasmtime_error_message(error, &msg);
    char *text = xmalloc(msg.size + 1);
    memcpy(text, msg.data, msg.size);
    text[msg.size] = '\0';
    wasm_byte_vec_delete(&msg);
    return text;
}

/* What a trap code means, for a trap whose text lost its cause. */
static const char *trap_code_text(uint8_t code)
{
    switch (code) {
    case WASMTIME_TRAP_CODE_STACK_OVERFLOW:
        return "wasm trap: call stack exhausted";
    case WASMTIME_TRAP_CODE_MEMORY_OUT_OF_BOUNDS:
        return "wasm trap: out of bounds memory access";
    case WASMTIME_TRAP_CODE_INDIRECT_CALL_TO_NULL:
        return "wasm trap: uninitialized element";
    case WASMTIME_TRAP_CODE_BAD_SIGNATURE:
        return "wasm trap: indirect call type mismatch";
    case WASMTIME_TRAP_CODE_INTEGER_OVERFLOW:
        return "wasm trap: integer overflow";
    case WASMTIME_TRAP_CODE_INTEGER_DIVISION_BY_ZERO:
        return "wasm trap: integer divide by zero";
    case WASMTIME_TRAP_CODE_UNREACHABLE_CODE_REACHED:
        return "wasm trap: wasm `unreachable` instruction executed";
    case WASMTIME_TRAP_CODE_INTERRUPT:
        return "wasm trap: interrupt";
    default:
        return NULL;
    }
}

char *wasmrt_trap_text(const wasm_trap_t *trap)
{
    wasm_message_t msg;
    wasm_trap_message(trap, &msg);
    /* The message is NUL-terminated and its size counts the NUL. */
    size_t n = msg.size;
    if (n && msg.data[n - 1] == '\0') n--;
    char *text = xmalloc(n + 1);
    memcpy(text, msg.data, n);
    text[n] = '\0';
    wasm_byte_vec_delete(&msg);
    uint8_t code;
    const char *known = wasmtime_trap_code(trap, &code) ? trap_code_text(code) : NULL;
    if (known && !strstr(text, known + strlen("wasm trap: "))) {
        /* The cause is missing from the text (never seen, but the code
         * is authoritative): put it in front. */
        char *both = xasprintf("%s\nCaused by:\n    %s", text, known);
        free(text);
        text = both;
    }
    return text;
}

/* Condenses a Wasmtime error into one line a user can act on. Its text is
 * "error while executing at wasm backtrace:\n    0: 0x1a2 - f\n ...
 * \nCaused by:\n    wasm trap: ..." for a trap: the cause comes first,
 * then the innermost frame ("... (at 0x1a2 - abort)"). Other messages keep
 * their first line, with the cause after a colon when there is one. The
 * full text is read whatever its length (a stack overflow's backtrace has
 * thousands of frames), so the cause is never cut off: only the result is
 * bounded by size. */
void wasmrt_condense(const char *full, char *out, size_t size)
{
    if (!size) return;
    char cause[512] = "", frame[256] = "";
    /* The last "Caused by:" holds the root cause. */
    const char *c = NULL;
    for (const char *p = strstr(full, "Caused by:"); p; p = strstr(p + 1, "Caused by:"))
        c = p;
    if (c) {
        c += strlen("Caused by:");
        while (*c == '\n' || *c == ' ')
            c++;
        /* "0: context\n    1: root": keep the deepest numbered line. */
        if (c[0] >= '0' && c[0] <= '9' && strstr(c, ": ")) {
            const char *last = c;
            for (const char *q = strchr(c, '\n'); q; q = strchr(q + 1, '\n')) {
                const char *r = q + 1;
                while (*r == ' ')
                    r++;
                if (*r >= '0' && *r <= '9') last = r;
            }
            c = last;
            while (*c >= '0' && *c <= '9')
                c++;
            if (c[0] == ':' && c[1] == ' ') c += 2;
        }
        snprintf(cause, sizeof cause, "%.*s", (int)strcspn(c, "\n"), c);
    }
    const char *f = strstr(full, "\n    0: ");
    if (f) {
        f += strlen("\n    0: ");
        while (*f == ' ')
            f++;
        snprintf(frame, sizeof frame, "%.*s", (int)strcspn(f, "\n"), f);
    }
    char head[512];
    snprintf(head, sizeof head, "%.*s", (int)strcspn(full, "\n"), full);
    if (cause[0] && frame[0] && strstr(head, "backtrace"))
        snprintf(out, size, "%s (at %s)", cause, frame);
    else if (cause[0])
        snprintf(out, size, "%s: %s", head, cause);
    else
        snprintf(out, size, "%s", head);
}

void wasmrt_error_message(const wasmtime_error_t *error, char *buf, size_t len)
{
    char *text = wasmrt_error_text(error);
    wasmrt_condense(text, buf, len);
    free(text);
}

void wasmrt_trap_message(const wasm_trap_t *trap, char *buf, size_t len)
{
    char *text = wasmrt_trap_text(trap);
    wasmrt_condense(text, buf, len);
    free(text);
}

bool wasmrt_take_failure(wasmtime_error_t *error, wasm_trap_t *trap, char *out, size_t size)
{
    char *text = error ? wasmrt_error_text(error) : trap ? wasmrt_trap_text(trap) : xstrdup("");
    bool memory = strstr(text, WASMLET_OOM_MESSAGE) || strstr(text, "memory growth failure");
    wasmrt_condense(text, out, size);
    free(text);
    if (error) wasmtime_error_delete(error);
    if (trap) wasm_trap_delete(trap);
    return memory;
}

int wasmrt_error(err_t *err, wasmtime_error_t *error, const char *what)
{
    char text[ERR_MSG_MAX];
    wasmrt_error_message(error, text, sizeof text);
    wasmtime_error_delete(error);
    return err_set(err, "%s: %s", what, text);
}

const char *wasmrt_engine_version(void)
{
    return WASMTIME_VERSION;
}

size_t wasmrt_max_wasm_stack(const wasmrt_t *rt)
{
    return rt ? rt->max_wasm_stack : WASMRT_DEFAULT_MAX_WASM_STACK;
}

size_t wasmrt_thread_stack_size(const wasmrt_t *rt)
{
    return wasmrt_max_wasm_stack(rt) + WASMRT_HOST_STACK_MARGIN;
}

static void *ticker_main(void *arg)
{
    thread_set_name("epoch-ticker");
    wasmrt_t *rt = arg;
    pthread_mutex_lock(&rt->ticker_lock);
    int64_t next = time_mono_ns();
    while (!rt->ticker_quit) {
        next += rt->tick_ms * NS_PER_MS;
        while (!rt->ticker_quit && cond_wait_until(&rt->ticker_cond, &rt->ticker_lock, next))
            ;
        wasmtime_engine_increment_epoch(rt->engine);
        wasm_engine_t *serve = atomic_load(&rt->serve_engine);
        if (serve) wasmtime_engine_increment_epoch(serve);
    }
    pthread_mutex_unlock(&rt->ticker_lock);
    return NULL;
}

/* The settings of both engines (the serving engine adds pooling). */
static wasm_config_t *base_config(const wasmrt_t *rt)
{
    wasm_config_t *config = wasm_config_new();
    wasmtime_config_epoch_interruption_set(config, true);
    wasmtime_config_cranelift_opt_level_set(config, WASMTIME_OPT_LEVEL_SPEED);
    /* Linear memory initialised copy-on-write from the compiled image:
     * instantiation maps pages instead of copying data segments. */
    wasmtime_config_memory_init_cow_set(config, true);
    /* Wasm runs on the calling thread's stack (sync calls), up to
     * max_wasm_stack below its entry; container threads are sized for it
     * (wasmrt_thread_stack_size). Wasmtime refuses a max_wasm_stack above
     * async_stack_size once async support is compiled in, as it is for the
     * component model, so the two move together. Async stacks are used
     * only by served wasi:http requests (http.c), which run async. */
    wasmtime_config_max_wasm_stack_set(config, rt->max_wasm_stack);
    wasmtime_config_async_stack_size_set(config, rt->max_wasm_stack + WASMRT_HOST_STACK_MARGIN);
    return config;
}

int wasmrt_open(const wasmrt_options_t *opts, wasmrt_t **out, err_t *err)
{
    wasmrt_t *rt = xcalloc(1, sizeof *rt);
    rt->tick_ms = opts && opts->epoch_tick_ms > 0 ? opts->epoch_tick_ms : 10;
    rt->cache_dir = opts && opts->cache_dir ? xstrdup(opts->cache_dir) : NULL;
    rt->max_wasm_stack =
        opts && opts->max_wasm_stack ? opts->max_wasm_stack : WASMRT_DEFAULT_MAX_WASM_STACK;
    pthread_mutex_init(&rt->lock, NULL);
    pthread_mutex_init(&rt->compile_lock, NULL);
    pthread_mutex_init(&rt->ticker_lock, NULL);
    pthread_mutex_init(&rt->serve_lock, NULL);
    cond_init_monotonic(&rt->ticker_cond);

    rt->engine = wasm_engine_new_with_config(base_config(rt));
    if (!rt->engine) {
        err_set(err, "cannot create the Wasmtime engine");
        goto fail;
    }

    rt->linker = wasmtime_linker_new(rt->engine);
    wasmtime_error_t *error = wasmtime_linker_define_wasi(rt->linker);
    if (error) {
        wasmrt_error(err, error, "define WASI preview 1");
        goto fail;
    }
    error = wasmlet_linker_cap_descriptors(rt->linker); /* spec->max_open_files */
    if (error) {
        wasmrt_error(err, error, "cap WASI descriptors");
        goto fail;
    }
    wasmtime_linker_allow_shadowing(rt->linker, true);
    if (wasmrt_define_wasi_overrides(rt->linker, err) == -1) goto fail;
    wasmtime_linker_allow_shadowing(rt->linker, false);
    if (wasmrt_component_linker_new(rt, err) == -1) goto fail;

    if (pthread_create(&rt->ticker, NULL, ticker_main, rt) != 0) {
        err_set(err, "cannot start the epoch ticker thread");
        goto fail;
    }
    *out = rt;
    return 0;
fail:
    if (rt->clinker) wasmtime_component_linker_delete(rt->clinker);
    if (rt->linker) wasmtime_linker_delete(rt->linker);
    if (rt->engine) wasm_engine_delete(rt->engine);
    pthread_cond_destroy(&rt->ticker_cond);
    pthread_mutex_destroy(&rt->ticker_lock);
    pthread_mutex_destroy(&rt->serve_lock);
    pthread_mutex_destroy(&rt->compile_lock);
    pthread_mutex_destroy(&rt->lock);
    free(rt->cache_dir);
    free(rt);
    return -1;
}

/* A module whose one call, fd_write of nothing to stdout, goes through
 * Wasmtime's WASI host into its shared tokio runtime. */
static const char IO_START_WAT[] =
    "(module (import \"wasi_snapshot_preview1\" \"fd_write\""
    " (func $w (param i32 i32 i32 i32) (result i32)))"
    " (memory (export \"memory\") 1)"
    " (func (export \"_start\") (drop (call $w (i32.const 1) (i32.const 0) (i32.const 0)"
    " (i32.const 8)))))";

int wasmrt_start_io_threads(wasmrt_t *rt, err_t *err)
{
    wasm_byte_vec_t bin = {0};
    wasmtime_module_t *module = NULL;
    wasmtime_store_t *store = NULL;
    wasm_trap_t *trap = NULL;
    int rc = -1;
    wasmtime_error_t *error = wasmtime_wat2wasm(IO_START_WAT, sizeof IO_START_WAT - 1, &bin);
    if (!error)
        error = wasmtime_module_new(rt->engine, (const uint8_t *)bin.data, bin.size, &module);
    if (error) {
        wasmrt_error(err, error, "start the WASI I/O threads");
        goto out;
    }
    store = wasmtime_store_new(rt->engine, NULL, NULL);
    wasmtime_context_t *cx = wasmtime_store_context(store);
    wasmtime_context_set_epoch_deadline(cx, 1000);
    error = wasmtime_context_set_wasi(cx, wasi_config_new());
    wasmtime_instance_t inst;
    if (!error) error = wasmtime_linker_instantiate(rt->linker, cx, module, &inst, &trap);
    wasmtime_extern_t start;
    if (!error && !trap && !wasmtime_instance_export_get(cx, &inst, "_start", 6, &start)) {
        err_set(err, "start the WASI I/O threads: no _start");
        goto out;
    }
    if (!error && !trap) error = wasmtime_func_call(cx, &start.of.func, NULL, 0, NULL, 0, &trap);
    if (error || trap) {
        char why[256];
        wasmrt_take_failure(error, trap, why, sizeof why);
        err_set(err, "start the WASI I/O threads: %s", why);
        goto out;
    }
    /* And the threads that serve wasi:http components, for the same reason. */
    error = wasmlet_http_runtime_start();
    if (error) {
        wasmrt_error(err, error, "start the HTTP serving threads");
        goto out;
    }
    rc = 0;
out:
    if (store) wasmtime_store_delete(store);
    if (module) wasmtime_module_delete(module);
    wasm_byte_vec_delete(&bin);
    return rc;
}

void wasmrt_close(wasmrt_t *rt)
{
    if (!rt) return;
    pthread_mutex_lock(&rt->ticker_lock);
    rt->ticker_quit = true;
    pthread_cond_signal(&rt->ticker_cond);
    pthread_mutex_unlock(&rt->ticker_lock);
    pthread_join(rt->ticker, NULL);
    /* Modules still referenced here are a caller bug; free them anyway so
     * the engine can go. */
    wasmrt_module_t *m = rt->modules;
    while (m) {
        wasmrt_module_t *next = m->next;
        wasmrt_module_free(m);
        m = next;
    }
    wasmtime_component_linker_delete(rt->clinker);
    wasmtime_linker_delete(rt->linker);
    wasm_engine_delete(rt->engine);
    if (atomic_load(&rt->serve_engine)) wasm_engine_delete(atomic_load(&rt->serve_engine));
    pthread_mutex_destroy(&rt->serve_lock);
    pthread_cond_destroy(&rt->ticker_cond);
    pthread_mutex_destroy(&rt->ticker_lock);
    pthread_mutex_destroy(&rt->compile_lock);
    pthread_mutex_destroy(&rt->lock);
    free(rt->cache_dir);
    free(rt);
}

/* The serving engine's pool, node-wide. A request's instance of a
 * component built with the preview-1 adapter holds about three core
 * instances and two memories, so these let some 500 requests run at once
 * across the node; past that an instantiation fails and the request is
 * answered 503. Each memory slot reserves Wasmtime's default 4 GiB of
 * address space (plus guards), never committed until used. */
#define SERVE_POOL_COMPONENT_INSTANCES 1024
#define SERVE_POOL_CORE_INSTANCES 4096
#define SERVE_POOL_MEMORIES 1024
#define SERVE_POOL_TABLES 4096
#define SERVE_POOL_STACKS 1024

wasm_engine_t *wasmrt_serve_engine(wasmrt_t *rt, char *why, size_t len)
{
    pthread_mutex_lock(&rt->serve_lock);
    wasm_engine_t *engine = atomic_load(&rt->serve_engine);
    if (!engine && !rt->serve_engine_tried) {
        rt->serve_engine_tried = true;
        wasm_config_t *config = base_config(rt);
        wasmtime_pooling_allocation_config_t *pool = wasmtime_pooling_allocation_config_new();
        wasmtime_pooling_allocation_config_total_component_instances_set(
            pool, SERVE_POOL_COMPONENT_INSTANCES);
        wasmtime_pooling_allocation_config_total_core_instances_set(pool,
                                                                    SERVE_POOL_CORE_INSTANCES);
        wasmtime_pooling_allocation_config_total_memories_set(pool, SERVE_POOL_MEMORIES);
        wasmtime_pooling_allocation_config_total_tables_set(pool, SERVE_POOL_TABLES);
        wasmtime_pooling_allocation_config_total_stacks_set(pool, SERVE_POOL_STACKS);
        wasmtime_pooling_allocation_strategy_set(config, pool);
        wasmtime_pooling_allocation_config_delete(pool);
        engine = wasm_engine_new_with_config(config);
        atomic_store(&rt->serve_engine, engine);
    }
    pthread_mutex_unlock(&rt->serve_lock);
    if (!engine) snprintf(why, len, "the pooling allocator is not available here (address space?)");
    return engine;
}
