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

void wasmrt_error_message(wasmtime_error_t *error, char *buf, size_t len)
{
    wasm_name_t msg;
    wasmtime_error_message(error, &msg);
    snprintf(buf, len, "%.*s", (int)msg.size, msg.data);
    wasm_byte_vec_delete(&msg);
}

void wasmrt_trap_message(wasm_trap_t *trap, char *buf, size_t len)
{
    wasm_message_t msg;
    wasm_trap_message(trap, &msg);
    /* The message is NUL-terminated and its size counts the NUL. */
    size_t n = msg.size;
    if (n && msg.data[n - 1] == '\0') n--;
    snprintf(buf, len, "%.*s", (int)n, msg.data);
    wasm_byte_vec_delete(&msg);
}

/* Condenses a Wasmtime error into one line a user can act on. Its text is
 * "error while executing at wasm backtrace:\n    0: 0x1a2 - f\n ...
 * \nCaused by:\n    wasm trap: ..." for a trap: the cause comes first,
 * then the innermost frame ("... (at 0x1a2 - abort)"). Other messages keep
 * their first line, with the cause after a colon when there is one. */
void wasmrt_condense(char *msg, size_t size)
{
    char cause[512] = "", frame[256] = "";
    const char *c = strstr(msg, "Caused by:");
    if (c) {
        c += strlen("Caused by:");
        while (*c == '\n' || *c == ' ')
            c++;
        snprintf(cause, sizeof cause, "%.*s", (int)strcspn(c, "\n"), c);
    }
    const char *f = strstr(msg, "\n    0: ");
    if (f) {
        f += strlen("\n    0: ");
        while (*f == ' ')
            f++;
        snprintf(frame, sizeof frame, "%.*s", (int)strcspn(f, "\n"), f);
    }
    char head[512];
    snprintf(head, sizeof head, "%.*s", (int)strcspn(msg, "\n"), msg);
    if (cause[0] && frame[0])
        snprintf(msg, size, "%s (at %s)", cause, frame);
    else if (cause[0])
        snprintf(msg, size, "%s: %s", head, cause);
    else
        snprintf(msg, size, "%s", head);
}

int wasmrt_error(err_t *err, wasmtime_error_t *error, const char *what)
{
    char text[ERR_MSG_MAX];
    wasmrt_error_message(error, text, sizeof text);
    wasmrt_condense(text, sizeof text);
    wasmtime_error_delete(error);
    return err_set(err, "%s: %s", what, text);
}

const char *wasmrt_engine_version(void)
{
    return WASMTIME_VERSION;
}

static void *ticker_main(void *arg)
{
    wasmrt_t *rt = arg;
    pthread_mutex_lock(&rt->ticker_lock);
    int64_t next = time_mono_ns();
    while (!rt->ticker_quit) {
        next += rt->tick_ms * NS_PER_MS;
        while (!rt->ticker_quit && cond_wait_until(&rt->ticker_cond, &rt->ticker_lock, next))
            ;
        wasmtime_engine_increment_epoch(rt->engine);
    }
    pthread_mutex_unlock(&rt->ticker_lock);
    return NULL;
}

int wasmrt_open(const wasmrt_options_t *opts, wasmrt_t **out, err_t *err)
{
    wasmrt_t *rt = xcalloc(1, sizeof *rt);
    rt->tick_ms = opts && opts->epoch_tick_ms > 0 ? opts->epoch_tick_ms : 10;
    rt->cache_dir = opts && opts->cache_dir ? xstrdup(opts->cache_dir) : NULL;
    pthread_mutex_init(&rt->lock, NULL);
    pthread_mutex_init(&rt->compile_lock, NULL);
    pthread_mutex_init(&rt->ticker_lock, NULL);
    cond_init_monotonic(&rt->ticker_cond);

    wasm_config_t *config = wasm_config_new();
    wasmtime_config_epoch_interruption_set(config, true);
    wasmtime_config_cranelift_opt_level_set(config, WASMTIME_OPT_LEVEL_SPEED);
    /* Linear memory initialised copy-on-write from the compiled image:
     * instantiation maps pages instead of copying data segments. */
    wasmtime_config_memory_init_cow_set(config, true);
    rt->engine = wasm_engine_new_with_config(config);
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
    wasmtime_linker_allow_shadowing(rt->linker, true);
    if (wasmrt_define_wasi_overrides(rt->linker, err) == -1) goto fail;
    wasmtime_linker_allow_shadowing(rt->linker, false);

    if (pthread_create(&rt->ticker, NULL, ticker_main, rt) != 0) {
        err_set(err, "cannot start the epoch ticker thread");
        goto fail;
    }
    *out = rt;
    return 0;
fail:
    if (rt->linker) wasmtime_linker_delete(rt->linker);
    if (rt->engine) wasm_engine_delete(rt->engine);
    pthread_cond_destroy(&rt->ticker_cond);
    pthread_mutex_destroy(&rt->ticker_lock);
    pthread_mutex_destroy(&rt->compile_lock);
    pthread_mutex_destroy(&rt->lock);
    free(rt->cache_dir);
    free(rt);
    return -1;
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
        wasmtime_instance_pre_delete(m->pre);
        wasmtime_module_delete(m->module);
        free(m);
        m = next;
    }
    wasmtime_linker_delete(rt->linker);
    wasm_engine_delete(rt->engine);
    pthread_cond_destroy(&rt->ticker_cond);
    pthread_mutex_destroy(&rt->ticker_lock);
    pthread_mutex_destroy(&rt->compile_lock);
    pthread_mutex_destroy(&rt->lock);
    free(rt->cache_dir);
    free(rt);
}
