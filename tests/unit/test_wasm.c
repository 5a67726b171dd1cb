/* test_wasm.c: unit tests for wasm/ (wasmrt.h), run against the example
 * modules of examples/ (found through $WASMLET_EXAMPLES).
 *
 * Every test loads a real module and runs it in a real store: output through
 * the callback, exit codes, traps, the memory limit, stops from another
 * thread (with their latency measured), the CPU limit, argv and env, the
 * mount sandbox, the refusal of broken modules and the compile cache.
 *
 * Timing bounds are the (stop within 100 ms and so on). Under
 * valgrind everything runs tens of times slower, so the bounds are scaled by
 * slow_factor(): 1 natively, WASMLET_TEST_SLOW if set, 20 under valgrind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/err.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"
#include "wasm/wasmrt.h"
#include "wasm_signals.h"

#include <wasmtime.h>

#include <dirent.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

/* --- fixtures ------------------------------------------------------------- */

static const char *examples_dir(void)
{
    const char *dir = getenv("WASMLET_EXAMPLES");
    return dir && *dir ? dir : "build/examples";
}

/* "<examples>/<name>.wasm"; the caller frees. */
static char *example(const char *name)
{
    return xasprintf("%s/%s.wasm", examples_dir(), name);
}

static int64_t slow_factor(void)
{
    const char *s = getenv("WASMLET_TEST_SLOW");
    if (s && atoi(s) > 0) return atoi(s);
    return RUNNING_ON_VALGRIND ? 20 : 1;
}

/* What a container wrote, per stream (1 stdout, 2 stderr). The callback runs
 * on one of Wasmtime's I/O threads; `seen` lets another thread wait for a
 * first complete line. */
typedef struct capture {
    pthread_mutex_t lock;
    strbuf_t out[3];
    atomic_int seen;
} capture_t;

static void capture_init(capture_t *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
}

static void capture_free(capture_t *c)
{
    for (int i = 0; i < 3; i++)
        strbuf_free(&c->out[i]);
    pthread_mutex_destroy(&c->lock);
}

static void on_output(void *ctx, int stream, const char *data, size_t len)
{
    capture_t *c = ctx;
    assert_true(stream == 1 || stream == 2);
    pthread_mutex_lock(&c->lock);
    strbuf_append(&c->out[stream], data, len);
    pthread_mutex_unlock(&c->lock);
    /* A line is complete (WASI writes "text\n" as "text" and "\n" when
     * libc hands it two buffers). */
    if (memchr(data, '\n', len)) atomic_store(&c->seen, 1);
}

static const char *out_of(capture_t *c, int stream)
{
    return strbuf_str(&c->out[stream]);
}

typedef struct fixture {
    wasmrt_t *rt;
    char *tmp; /* a scratch directory, removed afterwards */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = xcalloc(1, sizeof *f);
    err_t err;
    if (wasmrt_open(NULL, &f->rt, &err) == -1) {
        fprintf(stderr, "wasmrt_open: %s\n", err.msg);
        free(f);
        return -1;
    }
    char tmpl[] = "/tmp/wasmlet-test-wasm-XXXXXX";
    f->tmp = xstrdup(mkdtemp(tmpl));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    wasmrt_close(f->rt);
    fs_rm_rf(f->tmp, NULL);
    free(f->tmp);
    free(f);
    return 0;
}

static wasmrt_module_t *load(wasmrt_t *rt, const char *name)
{
    char *path = example(name);
    wasmrt_module_t *mod = NULL;
    err_t err;
    int rc = wasmrt_load_file(rt, path, &mod, NULL, &err);
    if (rc == -1) fail_msg("loading %s: %s", path, err.msg);
    free(path);
    return mod;
}

/* Runs module name with argv (NULL-terminated) and the spec's other fields
 * taken from extra (may be NULL). */
static void run_argv(wasmrt_t *rt, const char *name, const char *const *argv,
                     const wasmrt_spec_t *extra, wasmrt_stop_t *stop, capture_t *cap,
                     wasmrt_result_t *res)
{
    wasmrt_module_t *mod = load(rt, name);
    wasmrt_spec_t spec = {0};
    if (extra) spec = *extra;
    spec.argv = argv;
    spec.argc = 0;
    while (argv[spec.argc])
        spec.argc++;
    spec.output = on_output;
    spec.output_ctx = cap;
    assert_int_equal(wasmrt_run(rt, mod, &spec, stop, res), 0);
    wasmrt_module_release(mod);
}

/* A thread that requests a stop once the container has written something
 * (so it is surely running) and delay_ms more have passed. */
typedef struct stopper {
    wasmrt_stop_t *stop;
    capture_t *cap;
    int64_t delay_ms;
    int64_t requested_at; /* mono ns */
    pthread_t thread;
} stopper_t;

static void *stopper_main(void *arg)
{
    stopper_t *s = arg;
    while (s->cap && !atomic_load(&s->cap->seen))
        time_sleep_ms(1);
    time_sleep_ms(s->delay_ms);
    s->requested_at = time_mono_ns();
    wasmrt_stop_request(s->stop);
    return NULL;
}

static void stopper_start(stopper_t *s, wasmrt_stop_t *stop, capture_t *cap, int64_t delay_ms)
{
    s->stop = stop;
    s->cap = cap;
    s->delay_ms = delay_ms;
    s->requested_at = 0;
    assert_int_equal(pthread_create(&s->thread, NULL, stopper_main, s), 0);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* The whole file, or NULL when it cannot be read; the caller frees. */
static char *read_file(const char *path)
{
    char *data = NULL;
    size_t len;
    if (fs_read_all(path, &data, &len, NULL) == -1) return NULL;
    return data;
}

/* --- running ---------------------------------------------------------------- */

static void hello_runs(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    wasmrt_module_t *mod = load(f->rt, "hello");
    const char *digest = wasmrt_module_digest(mod);
    assert_int_equal(strlen(digest), 7 + 64);
    assert_memory_equal(digest, "sha256:", 7);

    capture_t cap;
    capture_init(&cap);
    const char *argv[] = {"hello"};
    wasmrt_spec_t spec = {.argv = argv, .argc = 1, .output = on_output, .output_ctx = &cap};
    wasmrt_result_t res;
    assert_int_equal(wasmrt_run(f->rt, mod, &spec, NULL, &res), 0);
    assert_int_equal(res.outcome, WASMRT_EXITED);
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(res.message, "");
    assert_string_equal(wasmrt_outcome_reason(&res), "Completed");
    assert_string_equal(out_of(&cap, 1), "Hello from wasmlet!\n");
    assert_string_equal(out_of(&cap, 2), "");
    assert_true(res.instantiate_ns > 0);
    assert_true(res.run_ns > 0);
    assert_true(res.memory_bytes >= 65536);
    capture_free(&cap);

    /* The same module runs again in a fresh store, and output can be
     * discarded (no callback). */
    spec.output = NULL;
    assert_int_equal(wasmrt_run(f->rt, mod, &spec, NULL, &res), 0);
    assert_int_equal(res.outcome, WASMRT_EXITED);
    assert_int_equal(res.exit_code, 0);

    /* Misuse: no argv. */
    spec.argc = 0;
    assert_int_equal(wasmrt_run(f->rt, mod, &spec, NULL, &res), -1);
    wasmrt_module_release(mod);
}

static void exit_codes(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    static const int codes[] = {0, 1, 3, 42, 200, 255};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char n[8], msg[32];
        snprintf(n, sizeof n, "%d", codes[i]);
        snprintf(msg, sizeof msg, "leaving with %d", codes[i]);
        const char *argv[] = {"exitcode", n, msg, NULL};
        capture_t cap;
        capture_init(&cap);
        wasmrt_result_t res;
        run_argv(f->rt, "exitcode", argv, NULL, NULL, &cap, &res);
        assert_int_equal(res.outcome, WASMRT_EXITED);
        assert_int_equal(res.exit_code, codes[i]);
        assert_string_equal(wasmrt_outcome_reason(&res), codes[i] ? "Error" : "Completed");
        /* The message goes to stderr (stream 2), nothing to stdout. */
        char want[40];
        snprintf(want, sizeof want, "%s\n", msg);
        assert_string_equal(out_of(&cap, 2), want);
        assert_string_equal(out_of(&cap, 1), "");
        capture_free(&cap);
    }
    /* A usage error is exit 2 from main's return. */
    const char *argv[] = {"exitcode", "256", NULL};
    capture_t cap;
    capture_init(&cap);
    wasmrt_result_t res;
    run_argv(f->rt, "exitcode", argv, NULL, NULL, &cap, &res);
    assert_int_equal(res.outcome, WASMRT_EXITED);
    assert_int_equal(res.exit_code, 2);
    assert_non_null(strstr(out_of(&cap, 2), "usage: exitcode"));
    capture_free(&cap);
}

static void trap_is_reported(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"trap", NULL};
    capture_t cap;
    capture_init(&cap);
    wasmrt_result_t res;
    run_argv(f->rt, "trap", argv, NULL, NULL, &cap, &res);
    assert_int_equal(res.outcome, WASMRT_TRAPPED);
    assert_int_equal(res.exit_code, WASMRT_EXIT_TRAP);
    assert_int_equal(res.exit_code, 134);
    assert_non_null(strstr(res.message, "unreachable"));
    assert_null(strchr(res.message, '\n')); /* condensed to one line */
    assert_string_equal(wasmrt_outcome_reason(&res), "Error");
    assert_string_equal(out_of(&cap, 1), "about to trap\n");
    capture_free(&cap);
}

/* Runs fn(arg) on a thread with the stack a container thread gets
 * (wasmrt_thread_stack_size), as pod workers do: with the default 8 MiB
 * max_wasm_stack, deep recursion on a smaller stack would overflow the
 * native stack instead of trapping. */
static void on_container_thread(wasmrt_t *rt, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    assert_int_equal(pthread_attr_setstacksize(&attr, wasmrt_thread_stack_size(rt)), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, &attr, fn, arg), 0);
    pthread_attr_destroy(&attr);
    pthread_join(t, NULL);
}

typedef struct threaded_run {
    wasmrt_t *rt;
    wasmrt_module_t *mod; /* or name: */
    const char *name;
    const char *const *argv;
    capture_t cap;
    wasmrt_result_t res;
} threaded_run_t;

static void *threaded_run_main(void *arg)
{
    threaded_run_t *t = arg;
    wasmrt_module_t *mod = t->mod ? t->mod : load(t->rt, t->name);
    wasmrt_spec_t spec = {.argv = t->argv, .output = on_output, .output_ctx = &t->cap};
    while (t->argv[spec.argc])
        spec.argc++;
    wasmrt_run(t->rt, mod, &spec, NULL, &t->res);
    if (!t->mod) wasmrt_module_release(mod);
    return NULL;
}

static void recursion_traps(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"recurse", NULL};
    threaded_run_t t = {.rt = f->rt, .name = "recurse", .argv = argv};
    capture_init(&t.cap);
    on_container_thread(f->rt, threaded_run_main, &t);
    assert_int_equal(t.res.outcome, WASMRT_TRAPPED);
    assert_int_equal(t.res.exit_code, 134);
    /* The cause comes first, whatever the length of the backtrace (an 8 MiB
     * stack holds hundreds of thousands of frames). */
    if (strncmp(t.res.message, "wasm trap: call stack exhausted", 31) != 0)
        fail_msg("message: %s", t.res.message);
    assert_null(strstr(t.res.message, "backtrace"));
    assert_null(strchr(t.res.message, '\n'));
    assert_non_null(strstr(out_of(&t.cap, 1), "recursing"));
    capture_free(&t.cap);
}

/* A module whose _start recurses 60000 calls deep and returns: at least
 * 16 bytes a frame (return address and frame pointer) is 960 KB, more than
 * Wasmtime's default 512 KiB stack, and at 100 bytes a frame it is 6 MB,
 * within the default 8 MiB. */
static const char deep_wat[] = "(module\n"
                               "  (func $rec (param $n i32) (result i32)\n"
                               "    local.get $n\n"
                               "    i32.eqz\n"
                               "    if (result i32)\n"
                               "      i32.const 0\n"
                               "    else\n"
                               "      local.get $n\n"
                               "      i32.const 1\n"
                               "      i32.sub\n"
                               "      call $rec\n"
                               "      i32.const 1\n"
                               "      i32.add\n"
                               "    end)\n"
                               "  (func (export \"_start\")\n"
                               "    i32.const 60000\n"
                               "    call $rec\n"
                               "    i32.const 60000\n"
                               "    i32.ne\n"
                               "    if unreachable end))\n";

static wasmrt_module_t *load_wat(wasmrt_t *rt, const char *wat)
{
    wasm_byte_vec_t bin;
    wasmtime_error_t *error = wasmtime_wat2wasm(wat, strlen(wat), &bin);
    assert_null(error);
    wasmrt_module_t *mod = NULL;
    err_t err;
    if (wasmrt_load_bytes(rt, (const uint8_t *)bin.data, bin.size, &mod, NULL, &err) == -1)
        fail_msg("load: %s", err.msg);
    wasm_byte_vec_delete(&bin);
    return mod;
}

static void wasm_stack_is_configurable(void **state)
{
    wasm_signals_restore();
    (void)state;
    /* The sizes: the default, and what a container thread needs on top. */
    assert_int_equal(wasmrt_max_wasm_stack(NULL), 8u << 20);
    assert_int_equal(wasmrt_thread_stack_size(NULL), (8u << 20) + WASMRT_HOST_STACK_MARGIN);
    err_t err;
    wasmrt_t *def, *small;
    assert_int_equal(wasmrt_open(NULL, &def, &err), 0);
    assert_int_equal(wasmrt_max_wasm_stack(def), WASMRT_DEFAULT_MAX_WASM_STACK);
    wasmrt_options_t opts = {.max_wasm_stack = 256 << 10};
    assert_int_equal(wasmrt_open(&opts, &small, &err), 0);
    assert_int_equal(wasmrt_max_wasm_stack(small), 256u << 10);
    assert_int_equal(wasmrt_thread_stack_size(small), (256u << 10) + WASMRT_HOST_STACK_MARGIN);

    /* 60000 frames: too deep for 256 KiB ... */
    const char *argv[] = {"deep", NULL};
    threaded_run_t t = {.rt = small, .argv = argv};
    t.mod = load_wat(small, deep_wat);
    capture_init(&t.cap);
    on_container_thread(small, threaded_run_main, &t);
    assert_int_equal(t.res.outcome, WASMRT_TRAPPED);
    if (strncmp(t.res.message, "wasm trap: call stack exhausted", 31) != 0)
        fail_msg("message: %s", t.res.message);
    wasmrt_module_release(t.mod);
    capture_free(&t.cap);

    /* ... and fine with the default (Wasmtime's own default, 512 KiB, would
     * trap as well). */
    memset(&t, 0, sizeof t);
    t.rt = def;
    t.argv = argv;
    t.mod = load_wat(def, deep_wat);
    capture_init(&t.cap);
    on_container_thread(def, threaded_run_main, &t);
    if (t.res.outcome != WASMRT_EXITED) fail_msg("deep recursion: %s", t.res.message);
    assert_int_equal(t.res.exit_code, 0);
    wasmrt_module_release(t.mod);
    capture_free(&t.cap);
    wasmrt_close(small);
    wasmrt_close(def);
}

static void memory_limit_is_oom(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"memhog", NULL};
    capture_t cap;
    capture_init(&cap);
    wasmrt_spec_t extra = {.memory_limit = 16 << 20};
    wasmrt_result_t res;
    run_argv(f->rt, "memhog", argv, &extra, NULL, &cap, &res);
    assert_int_equal(res.outcome, WASMRT_OOM);
    assert_int_equal(res.exit_code, WASMRT_EXIT_KILLED);
    assert_int_equal(res.exit_code, 137);
    assert_string_equal(wasmrt_outcome_reason(&res), "OOMKilled");
    assert_non_null(strstr(res.message, "16777216"));
    assert_true(res.memory_bytes <= (16u << 20));
    /* It got most of the way: ~15 MiB in 1 MiB steps. */
    assert_non_null(strstr(out_of(&cap, 1), "allocated 10240 KiB\n"));
    assert_null(strstr(out_of(&cap, 1), "allocated 16384 KiB"));
    /* Not the module's own malloc failure path (exit 3). */
    assert_null(strstr(out_of(&cap, 2), "malloc failed"));
    capture_free(&cap);

    /* A limit below the module's initial memory: it cannot even start. */
    const char *hello[] = {"hello", NULL};
    capture_init(&cap);
    extra.memory_limit = 65536;
    run_argv(f->rt, "hello", hello, &extra, NULL, &cap, &res);
    assert_int_equal(res.outcome, WASMRT_OOM);
    assert_int_equal(res.exit_code, 137);
    assert_non_null(strstr(res.message, "initial memory"));
    assert_string_equal(out_of(&cap, 1), "");
    capture_free(&cap);
}

static void memhog_without_limit_is_stopped(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"memhog", NULL};
    capture_t cap;
    capture_init(&cap);
    wasmrt_stop_t *stop = wasmrt_stop_new();
    stopper_t s;
    stopper_start(&s, stop, NULL, 200);
    wasmrt_result_t res;
    int64_t t0 = time_mono_ns();
    run_argv(f->rt, "memhog", argv, NULL, stop, &cap, &res);
    int64_t elapsed = time_mono_ns() - t0;
    pthread_join(s.thread, NULL);
    assert_int_equal(res.outcome, WASMRT_STOPPED);
    assert_int_equal(res.exit_code, 137);
    assert_true(elapsed >= 200 * NS_PER_MS);
    assert_true(time_mono_ns() - s.requested_at < 100 * NS_PER_MS * slow_factor());
    /* Without a limit it grew past where the limited run was stopped. */
    assert_non_null(strstr(out_of(&cap, 1), "allocated 1024 KiB\n"));
    assert_true(wasmrt_stop_requested(stop));
    wasmrt_stop_free(stop);
    capture_free(&cap);
}

/* --- in-place resize ------------------------------------------------------ */

/* What the run told of the resizes it took (wasmrt_resized_fn). */
typedef struct resized {
    pthread_mutex_t lock;
    int calls;
    bool ok;
    uint64_t memory_limit, usage;
    uint32_t cpu;
} resized_t;

static void on_resized(void *ctx, bool ok, uint64_t memory_limit, uint32_t cpu, uint64_t usage)
{
    resized_t *r = ctx;
    pthread_mutex_lock(&r->lock);
    r->calls++;
    r->ok = ok;
    r->memory_limit = memory_limit;
    r->cpu = cpu;
    r->usage = usage;
    pthread_mutex_unlock(&r->lock);
}

/* Waits (up to 10 s) until the run reported `calls` resizes. */
static resized_t resized_wait(resized_t *r, int calls)
{
    int64_t until = time_mono_ns() + 10 * NS_PER_SEC * slow_factor();
    for (;;) {
        pthread_mutex_lock(&r->lock);
        resized_t copy = *r;
        pthread_mutex_unlock(&r->lock);
        if (copy.calls >= calls || time_mono_ns() > until) return copy;
        time_sleep_ms(2);
    }
}

/* Waits (up to 10 s) until stdout holds text. */
static bool output_wait(capture_t *cap, const char *text)
{
    int64_t until = time_mono_ns() + 10 * NS_PER_SEC * slow_factor();
    while (time_mono_ns() < until) {
        pthread_mutex_lock(&cap->lock);
        bool found = strstr(out_of(cap, 1), text) != NULL;
        pthread_mutex_unlock(&cap->lock);
        if (found) return true;
        time_sleep_ms(5);
    }
    return false;
}

/* A container run on a thread of its own, resized from this one. */
typedef struct resize_run {
    wasmrt_t *rt;
    const char *name;
    const char *const *argv;
    wasmrt_spec_t spec;
    wasmrt_stop_t *stop;
    capture_t cap;
    resized_t resized;
    wasmrt_result_t res;
    pthread_t thread;
} resize_run_t;

static void *resize_run_main(void *arg)
{
    resize_run_t *r = arg;
    run_argv(r->rt, r->name, r->argv, &r->spec, r->stop, &r->cap, &r->res);
    return NULL;
}

static void resize_run_start(resize_run_t *r, wasmrt_t *rt, const char *name,
                             const char *const *argv, uint64_t memory_limit, uint32_t cpu)
{
    memset(r, 0, sizeof *r);
    r->rt = rt;
    r->name = name;
    r->argv = argv;
    capture_init(&r->cap);
    pthread_mutex_init(&r->resized.lock, NULL);
    r->stop = wasmrt_stop_new();
    r->spec.memory_limit = memory_limit;
    r->spec.cpu_millicores = cpu;
    r->spec.resized = on_resized;
    r->spec.resized_ctx = &r->resized;
    /* The stack a container thread gets (see on_container_thread). */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    assert_int_equal(pthread_attr_setstacksize(&attr, wasmrt_thread_stack_size(rt)), 0);
    assert_int_equal(pthread_create(&r->thread, &attr, resize_run_main, r), 0);
    pthread_attr_destroy(&attr);
}

static void resize_run_end(resize_run_t *r)
{
    wasmrt_stop_request(r->stop);
    pthread_join(r->thread, NULL);
    wasmrt_stop_free(r->stop);
    capture_free(&r->cap);
    pthread_mutex_destroy(&r->resized.lock);
}

static void cpu_limit_resized_live(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"spin", NULL};
    resize_run_t r;
    resize_run_start(&r, f->rt, "spin", argv, 0, 100);
    assert_true(output_wait(&r.cap, "spinning"));
    time_sleep_ms(500);
    /* From 100m to no throttling at all (1000m for one thread). */
    wasmrt_resize(r.stop, 0, 1000);
    resized_t got = resized_wait(&r.resized, 1);
    assert_int_equal(got.calls, 1);
    assert_true(got.ok);
    assert_int_equal(got.cpu, 1000);
    time_sleep_ms(1500);
    resize_run_end(&r);
    assert_int_equal(r.res.outcome, WASMRT_STOPPED);
    /* Throttled all along, 2 s at 100m would be ~200 ms of CPU; 1.5 s
     * unthrottled is far more (even a loaded machine gives a spinning
     * thread well over the quota). */
    printf("spin CPU with 0.5 s at 100m then 1.5 s at 1000m: %.0f ms\n",
           (double)r.res.cpu_ns / 1e6);
    assert_true(r.res.cpu_ns > 400 * (uint64_t)NS_PER_MS);

    /* And back down: from unthrottled to 100m. */
    resize_run_start(&r, f->rt, "spin", argv, 0, 0);
    assert_true(output_wait(&r.cap, "spinning"));
    wasmrt_resize(r.stop, 0, 100);
    got = resized_wait(&r.resized, 1);
    assert_true(got.ok);
    assert_int_equal(got.cpu, 100);
    time_sleep_ms(1000);
    resize_run_end(&r);
    printf("spin CPU with 1 s at 100m: %.0f ms\n", (double)r.res.cpu_ns / 1e6);
    assert_true(r.res.cpu_ns < 400 * (uint64_t)NS_PER_MS * (uint64_t)slow_factor());
}

static void memory_limit_raised_live(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    /* 1 MiB every 30 ms up to 24 MiB, under a 16 MiB limit raised to
     * 64 MiB as soon as it started: it gets past 16 MiB and holds 24. */
    const char *argv[] = {"memhog", "1024", "24576", "30", NULL};
    resize_run_t r;
    resize_run_start(&r, f->rt, "memhog", argv, 16 << 20, 0);
    assert_true(output_wait(&r.cap, "allocated 1024 KiB"));
    wasmrt_resize(r.stop, 64 << 20, 0);
    resized_t got = resized_wait(&r.resized, 1);
    assert_true(got.ok);
    assert_int_equal(got.memory_limit, 64 << 20);
    assert_true(got.usage > 0 && got.usage < (16u << 20));
    assert_true(output_wait(&r.cap, "holding 24576 KiB"));
    resize_run_end(&r);
    assert_int_equal(r.res.outcome, WASMRT_STOPPED);
    assert_true(r.res.memory_bytes > (24u << 20));

    /* Without the raise the same module is OOMKilled at 16 MiB. */
    resize_run_start(&r, f->rt, "memhog", argv, 16 << 20, 0);
    pthread_join(r.thread, NULL);
    assert_int_equal(r.res.outcome, WASMRT_OOM);
    assert_non_null(strstr(r.res.message, "16777216"));
    wasmrt_stop_free(r.stop);
    capture_free(&r.cap);
    pthread_mutex_destroy(&r.resized.lock);
}

static void memory_limit_below_usage_refused(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"memhog", "1024", "8192", NULL};
    resize_run_t r;
    resize_run_start(&r, f->rt, "memhog", argv, 64 << 20, 200);
    assert_true(output_wait(&r.cap, "holding 8192 KiB"));
    /* Below the linear memory it holds: refused, nothing applied (not even
     * the CPU part); the refused limits and the usage are told. */
    wasmrt_resize(r.stop, 4 << 20, 500);
    resized_t got = resized_wait(&r.resized, 1);
    assert_int_equal(got.calls, 1);
    assert_false(got.ok);
    assert_int_equal(got.memory_limit, 4 << 20);
    assert_int_equal(got.cpu, 500);
    assert_true(got.usage > (8u << 20) && got.usage < (16u << 20));
    /* Lowered, but above what it holds: applied while it sleeps. */
    wasmrt_resize(r.stop, 32 << 20, 500);
    got = resized_wait(&r.resized, 2);
    assert_int_equal(got.calls, 2);
    assert_true(got.ok);
    assert_int_equal(got.memory_limit, 32 << 20);
    assert_int_equal(got.cpu, 500);
    resize_run_end(&r);
    assert_int_equal(r.res.outcome, WASMRT_STOPPED);
}

static void spin_stop_latency(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    enum { RUNS = 20 };
    int64_t lat[RUNS];
    wasmrt_module_t *mod = load(f->rt, "spin");
    for (int i = 0; i < RUNS; i++) {
        capture_t cap;
        capture_init(&cap);
        const char *argv[] = {"spin"};
        wasmrt_spec_t spec = {.argv = argv, .argc = 1, .output = on_output, .output_ctx = &cap};
        wasmrt_stop_t *stop = wasmrt_stop_new();
        stopper_t s;
        stopper_start(&s, stop, &cap, 5 + i % 7); /* spread over the tick */
        wasmrt_result_t res;
        assert_int_equal(wasmrt_run(f->rt, mod, &spec, stop, &res), 0);
        int64_t end = time_mono_ns();
        pthread_join(s.thread, NULL);
        lat[i] = end - s.requested_at;
        assert_int_equal(res.outcome, WASMRT_STOPPED);
        assert_int_equal(res.exit_code, 137);
        assert_string_equal(out_of(&cap, 1), "spinning\n");
        assert_true(res.run_ns > 0);
        if (lat[i] >= 100 * NS_PER_MS * slow_factor())
            fail_msg("run %d: stop took %.1f ms", i, (double)lat[i] / 1e6);
        wasmrt_stop_free(stop);
        capture_free(&cap);
    }
    wasmrt_module_release(mod);
    qsort(lat, RUNS, sizeof lat[0], cmp_i64);
    printf("spin stop latency over %d runs: median %.2f ms, max %.2f ms\n", RUNS,
           (double)lat[RUNS / 2] / 1e6, (double)lat[RUNS - 1] / 1e6);
}

static void stop_before_start(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    wasmrt_stop_t *stop = wasmrt_stop_new();
    assert_false(wasmrt_stop_requested(stop));
    wasmrt_stop_request(stop);
    assert_true(wasmrt_stop_requested(stop));
    /* A stop wait returns at once when stopped. */
    int64_t t0 = time_mono_ns();
    assert_true(wasmrt_stop_wait(stop, 5000));
    assert_true(time_mono_ns() - t0 < 1000 * NS_PER_MS);

    const char *argv[] = {"hello", NULL};
    capture_t cap;
    capture_init(&cap);
    wasmrt_result_t res;
    run_argv(f->rt, "hello", argv, NULL, stop, &cap, &res);
    assert_int_equal(res.outcome, WASMRT_STOPPED);
    assert_int_equal(res.exit_code, 137);
    assert_string_equal(out_of(&cap, 1), "");
    capture_free(&cap);
    wasmrt_stop_free(stop);

    /* Not stopped: the wait takes its time and says so. */
    stop = wasmrt_stop_new();
    t0 = time_mono_ns();
    assert_false(wasmrt_stop_wait(stop, 50));
    assert_true(time_mono_ns() - t0 >= 50 * NS_PER_MS);
    wasmrt_stop_free(stop);
    assert_false(wasmrt_stop_requested(NULL));
}

static void sleeper_is_stopped(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"sleeper", "3600", NULL};
    capture_t cap;
    capture_init(&cap);
    wasmrt_stop_t *stop = wasmrt_stop_new();
    stopper_t s;
    stopper_start(&s, stop, &cap, 50);
    wasmrt_result_t res;
    run_argv(f->rt, "sleeper", argv, NULL, stop, &cap, &res);
    int64_t end = time_mono_ns();
    pthread_join(s.thread, NULL);
    int64_t lat = end - s.requested_at;
    printf("sleeper stop latency: %.2f ms\n", (double)lat / 1e6);
    assert_true(lat < 100 * NS_PER_MS * slow_factor());
    assert_int_equal(res.outcome, WASMRT_STOPPED);
    assert_int_equal(res.exit_code, 137);
    assert_string_equal(out_of(&cap, 1), "sleeping 3600\n");
    wasmrt_stop_free(stop);
    capture_free(&cap);
}

static void sleeper_sleeps(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"sleeper", "0.2", "7", NULL};
    capture_t cap;
    capture_init(&cap);
    wasmrt_stop_t *stop = wasmrt_stop_new(); /* present, never requested */
    wasmrt_result_t res;
    int64_t t0 = time_mono_ns();
    run_argv(f->rt, "sleeper", argv, NULL, stop, &cap, &res);
    int64_t wall = time_mono_ns() - t0;
    assert_int_equal(res.outcome, WASMRT_EXITED);
    assert_int_equal(res.exit_code, 7);
    assert_true(wall >= 200 * NS_PER_MS);
    assert_true(res.run_ns >= 200 * NS_PER_MS);
    assert_true(res.run_ns < 2000 * NS_PER_MS * slow_factor());
    /* Sleeping is not spinning. */
    assert_true(res.cpu_ns < (uint64_t)res.run_ns / 2);
    assert_string_equal(out_of(&cap, 1), "sleeping 0.2\nwoke\n");
    wasmrt_stop_free(stop);
    capture_free(&cap);

    /* No stop object at all: sleeping still works. */
    const char *argv0[] = {"sleeper", "0.05", NULL};
    capture_init(&cap);
    run_argv(f->rt, "sleeper", argv0, NULL, NULL, &cap, &res);
    assert_int_equal(res.outcome, WASMRT_EXITED);
    assert_int_equal(res.exit_code, 0);
    assert_true(res.run_ns >= 50 * NS_PER_MS);
    capture_free(&cap);
}

static void cpu_limit_throttles(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"spin", NULL};
    capture_t cap;
    capture_init(&cap);
    wasmrt_stop_t *stop = wasmrt_stop_new();
    stopper_t s;
    stopper_start(&s, stop, NULL, 1000);
    wasmrt_spec_t extra = {.cpu_millicores = 250};
    wasmrt_result_t res;
    int64_t t0 = time_mono_ns();
    run_argv(f->rt, "spin", argv, &extra, stop, &cap, &res);
    int64_t wall = time_mono_ns() - t0;
    pthread_join(s.thread, NULL);
    assert_int_equal(res.outcome, WASMRT_STOPPED);
    double share = (double)res.cpu_ns / (double)wall;
    printf("cpu limit 250m: %.1f%% of %.0f ms wall\n", share * 100, (double)wall / 1e6);
    assert_true(wall >= 1000 * NS_PER_MS);
    wasmrt_stop_free(stop);
    capture_free(&cap);
    /* valgrind runs one thread at a time and wakes the epoch ticker far less
     * often than every 10 ms, so throttling cannot be measured under it. */
    if (RUNNING_ON_VALGRIND) skip();
    assert_true(share <= 0.40);
    /* The limit is a ceiling: on a machine too busy to give an unlimited
     * spin most of a core, 25% may not be reached either. A control run
     * tells which case this is. */
    capture_init(&cap);
    stop = wasmrt_stop_new();
    stopper_start(&s, stop, NULL, 300);
    t0 = time_mono_ns();
    run_argv(f->rt, "spin", argv, NULL, stop, &cap, &res);
    wall = time_mono_ns() - t0;
    pthread_join(s.thread, NULL);
    wasmrt_stop_free(stop);
    capture_free(&cap);
    double control = (double)res.cpu_ns / (double)wall;
    printf("unlimited control: %.1f%%\n", control * 100);
    if (control >= 0.6) assert_true(share >= 0.15);
}

static void argv_and_env_exact(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"printenv", "a b", "", "caf\xc3\xa9", "$(NOT_EXPANDED)", NULL};
    const char *env[] = {"ZED=last", "ALPHA=1", "EMPTY=", "WITH_EQ=x=y", "SPACE=a b"};
    wasmrt_spec_t extra = {.env = env, .envc = 5};
    capture_t cap;
    capture_init(&cap);
    wasmrt_result_t res;
    run_argv(f->rt, "printenv", argv, &extra, NULL, &cap, &res);
    assert_int_equal(res.outcome, WASMRT_EXITED);
    assert_int_equal(res.exit_code, 0);
    /* Exactly these, and nothing of the host's environment. */
    assert_string_equal(out_of(&cap, 1), "arg[0]=printenv\n"
                                         "arg[1]=a b\n"
                                         "arg[2]=\n"
                                         "arg[3]=caf\xc3\xa9\n"
                                         "arg[4]=$(NOT_EXPANDED)\n"
                                         "env ALPHA=1\n"
                                         "env EMPTY=\n"
                                         "env SPACE=a b\n"
                                         "env WITH_EQ=x=y\n"
                                         "env ZED=last\n");
    capture_free(&cap);

    /* argv that is not UTF-8 cannot be given to WASI: a start failure, not
     * a crash. */
    const char *bad[] = {"printenv", "\xff\xfe", NULL};
    capture_init(&cap);
    run_argv(f->rt, "printenv", bad, NULL, NULL, &cap, &res);
    assert_int_equal(res.outcome, WASMRT_START_FAILED);
    assert_int_equal(res.exit_code, WASMRT_EXIT_START_FAILED);
    assert_string_equal(wasmrt_outcome_reason(&res), "StartError");
    assert_string_equal(out_of(&cap, 1), "");
    capture_free(&cap);
}

/* Every byte a module writes reaches the callback, in order per stream,
 * before wasmrt_run returns (the callback runs on Wasmtime's I/O threads,
 * not necessarily on the caller's, so this is worth checking). */
static void output_complete_and_ordered(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"flood", "20000", "50", NULL};
    capture_t cap;
    capture_init(&cap);
    wasmrt_result_t res;
    run_argv(f->rt, "flood", argv, NULL, NULL, &cap, &res);
    assert_int_equal(res.outcome, WASMRT_EXITED);
    assert_int_equal(res.exit_code, 0);
    pthread_mutex_lock(&cap.lock);
    const strbuf_t *out = &cap.out[1];
    assert_int_equal(out->len, 20000 * 50);
    char want[51];
    for (int i = 0; i < 20000; i++) {
        snprintf(want, sizeof want, "%08d %s\n", i + 1,
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"); /* 8 + 1 + 40 + 1 */
        if (memcmp(out->data + (size_t)i * 50, want, 50) != 0)
            fail_msg("line %d: %.50s", i + 1, out->data + (size_t)i * 50);
    }
    pthread_mutex_unlock(&cap.lock);
    capture_free(&cap);

    const char *partial[] = {"flood", "--partial", "777", NULL};
    capture_init(&cap);
    run_argv(f->rt, "flood", partial, NULL, NULL, &cap, &res);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(cap.out[1].len, 777);
    assert_null(memchr(cap.out[1].data, '\n', 777));
    capture_free(&cap);
}

/* --- descriptors ------------------------------------------------------------ */

typedef struct fds_seen {
    size_t first, max, calls;
} fds_seen_t;

static void on_descriptors(void *ctx, size_t held)
{
    fds_seen_t *s = ctx;
    if (s->calls++ == 0) s->first = held;
    if (held > s->max) s->max = held;
}

/* The cap less what the caller keeps: with max_open_files 10 and 2 kept,
 * the store holds 8 (the mount's preopen and 7 files) and the 8th open
 * fails with EMFILE; the figure reported rises from the 2 kept before the
 * first WASI call to all 10 while the module sleeps holding them. */
static void descriptors_capped_and_counted(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    char *dir = xasprintf("%s/fds", f->tmp);
    assert_int_equal(fs_mkdir_p(dir, 0755, NULL), 0);
    char *file = xasprintf("%s/f", dir);
    write_file(file, "x");
    wasmrt_mount_t m = {.host_path = dir, .guest_path = "/d", .read_only = true};
    fds_seen_t seen = {0};
    wasmrt_spec_t extra = {.mounts = &m,
                           .nmounts = 1,
                           .max_open_files = 10,
                           .kept_descriptors = 2,
                           .descriptors = on_descriptors,
                           .descriptors_ctx = &seen};
    const char *argv[] = {"files", "hold", "/d/f", "100", "0", NULL};
    capture_t cap;
    capture_init(&cap);
    wasmrt_result_t res;
    run_argv(f->rt, "files", argv, &extra, NULL, &cap, &res);
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(out_of(&cap, 1), "held 7\nopen: No file descriptors available\n");
    assert_int_equal(seen.first, 2);
    assert_int_equal(seen.max, 10);
    capture_free(&cap);

    /* Uncapped, the figure follows what it holds: 1 + 40 + 2. */
    extra.max_open_files = 0;
    seen = (fds_seen_t){0};
    const char *argv40[] = {"files", "hold", "/d/f", "40", "0", NULL};
    capture_init(&cap);
    run_argv(f->rt, "files", argv40, &extra, NULL, &cap, &res);
    assert_string_equal(out_of(&cap, 1), "held 40\n");
    assert_int_equal(seen.max, 43);
    capture_free(&cap);

    /* Keeping as many as the cap leaves the store one: its preopen. */
    extra.max_open_files = 2;
    capture_init(&cap);
    run_argv(f->rt, "files", argv, &extra, NULL, &cap, &res);
    assert_string_equal(out_of(&cap, 1), "held 0\nopen: No file descriptors available\n");
    capture_free(&cap);
    free(file);
    free(dir);
}

/* --- live memory ------------------------------------------------------------ */

typedef struct mem_seen {
    uint64_t first, last;
    size_t calls;
} mem_seen_t;

static void on_memory(void *ctx, uint64_t bytes)
{
    mem_seen_t *s = ctx;
    if (s->calls++ == 0) s->first = bytes;
    s->last = bytes;
}

/* A running module's linear memory is reported while it runs: once
 * instantiated, and again (unchanged here) before it sleeps, so a figure
 * is there for stats and eviction before the run ends, and it is the size
 * the run ends with. */
static void memory_reported_while_running(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    mem_seen_t seen = {0};
    wasmrt_spec_t extra = {.memory = on_memory, .memory_ctx = &seen};
    const char *argv[] = {"sleeper", "0", NULL};
    capture_t cap;
    capture_init(&cap);
    wasmrt_result_t res;
    run_argv(f->rt, "sleeper", argv, &extra, NULL, &cap, &res);
    assert_int_equal(res.exit_code, 0);
    assert_true(seen.calls >= 1);
    assert_true(seen.first >= 65536);
    assert_true(seen.first % 65536 == 0);
    assert_int_equal(seen.last, res.memory_bytes);
    capture_free(&cap);
}

/* --- mounts and the sandbox --------------------------------------------------- */

static void mount_read_write(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    char *dir = xasprintf("%s/rw", f->tmp);
    assert_int_equal(fs_mkdir_p(dir, 0755, NULL), 0);
    char *given = xasprintf("%s/given.txt", dir);
    write_file(given, "from the host\n");
    wasmrt_mount_t m = {.host_path = dir, .guest_path = "/data", .read_only = false};
    wasmrt_spec_t extra = {.mounts = &m, .nmounts = 1};

    const char *w[] = {"files", "write", "/data/out.txt", "written by wasm", NULL};
    capture_t cap;
    capture_init(&cap);
    wasmrt_result_t res;
    run_argv(f->rt, "files", w, &extra, NULL, &cap, &res);
    assert_int_equal(res.exit_code, 0);
    capture_free(&cap);
    char *path = xasprintf("%s/out.txt", dir);
    char *text = read_file(path);
    assert_non_null(text);
    assert_string_equal(text, "written by wasm");
    free(text);
    free(path);

    const char *c[] = {"files", "cat", "/data/given.txt", NULL};
    capture_init(&cap);
    run_argv(f->rt, "files", c, &extra, NULL, &cap, &res);
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(out_of(&cap, 1), "from the host\n");
    capture_free(&cap);

    const char *mk[] = {"files", "mkdir", "/data/sub", NULL};
    capture_init(&cap);
    run_argv(f->rt, "files", mk, &extra, NULL, &cap, &res);
    assert_int_equal(res.exit_code, 0);
    capture_free(&cap);
    char *sub = xasprintf("%s/sub", dir);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    free(sub);

    const char *ls[] = {"files", "ls", "/data", NULL};
    capture_init(&cap);
    run_argv(f->rt, "files", ls, &extra, NULL, &cap, &res);
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(out_of(&cap, 1), "given.txt\nout.txt\nsub\n");
    capture_free(&cap);

    /* A mount whose directory does not exist fails the start. */
    wasmrt_mount_t gone = {.host_path = "/nonexistent/wasmlet/dir", .guest_path = "/x"};
    wasmrt_spec_t bad = {.mounts = &gone, .nmounts = 1};
    capture_init(&cap);
    run_argv(f->rt, "files", ls, &bad, NULL, &cap, &res);
    assert_int_equal(res.outcome, WASMRT_START_FAILED);
    assert_int_equal(res.exit_code, 128);
    assert_non_null(strstr(res.message, "/nonexistent/wasmlet/dir"));
    capture_free(&cap);

    free(given);
    free(dir);
}

static void mount_read_only(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    char *dir = xasprintf("%s/ro", f->tmp);
    assert_int_equal(fs_mkdir_p(dir, 0755, NULL), 0);
    char *existing = xasprintf("%s/existing.txt", dir);
    write_file(existing, "original");
    wasmrt_mount_t m = {.host_path = dir, .guest_path = "/ro", .read_only = true};
    wasmrt_spec_t extra = {.mounts = &m, .nmounts = 1};

    /* Reading works. */
    const char *cat[] = {"files", "cat", "/ro/existing.txt", NULL};
    capture_t cap;
    capture_init(&cap);
    wasmrt_result_t res;
    run_argv(f->rt, "files", cat, &extra, NULL, &cap, &res);
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(out_of(&cap, 1), "original");
    capture_free(&cap);

    /* Every kind of write is refused, and the host is unchanged. */
    const char *const *writes[] = {
        (const char *[]){"files", "write", "/ro/new.txt", "x", NULL},
        (const char *[]){"files", "write", "/ro/existing.txt", "changed", NULL},
        (const char *[]){"files", "append", "/ro/existing.txt", "more", NULL},
        (const char *[]){"files", "mkdir", "/ro/newdir", NULL},
        (const char *[]){"files", "symlink", "/", "/ro/link", NULL},
    };
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        capture_init(&cap);
        run_argv(f->rt, "files", writes[i], &extra, NULL, &cap, &res);
        assert_int_equal(res.outcome, WASMRT_EXITED);
        if (res.exit_code == 0)
            fail_msg("files %s %s succeeded on a read-only mount", writes[i][1], writes[i][2]);
        assert_non_null(strstr(out_of(&cap, 2), "files: "));
        capture_free(&cap);
    }
    char *text = read_file(existing);
    assert_string_equal(text, "original");
    free(text);
    char *p = xasprintf("%s/new.txt", dir);
    assert_int_equal(access(p, F_OK), -1);
    free(p);
    p = xasprintf("%s/newdir", dir);
    assert_int_equal(access(p, F_OK), -1);
    free(p);
    p = xasprintf("%s/link", dir);
    struct stat st;
    assert_int_equal(lstat(p, &st), -1);
    free(p);
    free(existing);
    free(dir);
}

/* Runs `files probe paths...` and checks which opened. */
static void probe(fixture_t *f, const wasmrt_spec_t *extra, const char *const *paths, size_t n,
                  const bool *want_ok)
{
    const char **argv = xcalloc(n + 3, sizeof *argv);
    argv[0] = "files";
    argv[1] = "probe";
    for (size_t i = 0; i < n; i++)
        argv[i + 2] = paths[i];
    capture_t cap;
    capture_init(&cap);
    wasmrt_result_t res;
    run_argv(f->rt, "files", argv, extra, NULL, &cap, &res);
    assert_int_equal(res.exit_code, 0);
    const char *out = out_of(&cap, 1);
    for (size_t i = 0; i < n; i++) {
        char *ok = xasprintf("open %s: ok\n", paths[i]);
        char *any = xasprintf("open %s: ", paths[i]);
        assert_non_null(strstr(out, any)); /* every path was tried */
        bool opened = strstr(out, ok) != NULL;
        if (opened != want_ok[i])
            fail_msg("probe %s: %s (output:\n%s)", paths[i], opened ? "opened" : "refused", out);
        free(ok);
        free(any);
    }
    capture_free(&cap);
    free(argv);
}

static void sandbox_escapes_fail(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    char *mnt = xasprintf("%s/mnt", f->tmp);
    char *outside = xasprintf("%s/outside", f->tmp);
    assert_int_equal(fs_mkdir_p(mnt, 0755, NULL), 0);
    assert_int_equal(fs_mkdir_p(outside, 0755, NULL), 0);
    char *secret = xasprintf("%s/secret.txt", outside);
    write_file(secret, "host secret");
    char *inside = xasprintf("%s/inside.txt", mnt);
    write_file(inside, "inside");
    /* Symlinks planted in the mount by the host (or an earlier container). */
    char *l;
    l = xasprintf("%s/rootlink", mnt);
    assert_int_equal(symlink("/", l), 0);
    free(l);
    l = xasprintf("%s/secretlink", mnt);
    assert_int_equal(symlink(secret, l), 0);
    free(l);
    l = xasprintf("%s/rellink", mnt);
    assert_int_equal(symlink("../outside/secret.txt", l), 0);
    free(l);
    l = xasprintf("%s/dirlink", mnt);
    assert_int_equal(symlink(outside, l), 0);
    free(l);
    l = xasprintf("%s/okLink", mnt);
    assert_int_equal(symlink("inside.txt", l), 0); /* stays inside: allowed */
    free(l);

    wasmrt_mount_t m = {.host_path = mnt, .guest_path = "/mnt", .read_only = false};
    wasmrt_spec_t extra = {.mounts = &m, .nmounts = 1};
    const char *paths[] = {
        "/mnt/inside.txt",
        "/mnt/okLink",
        "/etc/passwd",
        "../x",
        "/mnt/../../etc/passwd",
        "/mnt/../outside/secret.txt",
        "/mnt/rootlink/etc/passwd",
        "/mnt/secretlink",
        "/mnt/rellink",
        "/mnt/dirlink/secret.txt",
        "/",
        "/proc/self/environ",
        secret,
    };
    const bool want[] = {true,  true,  false, false, false, false, false,
                         false, false, false, false, false, false};
    assert_int_equal(sizeof paths / sizeof paths[0], sizeof want / sizeof want[0]);
    probe(f, &extra, paths, sizeof paths / sizeof paths[0], want);

    /* Nor can anything outside be written through the links, or through a
     * link the module makes itself. */
    const char *const *writes[] = {
        (const char *[]){"files", "write", "/mnt/secretlink", "pwned", NULL},
        (const char *[]){"files", "write", "/mnt/rellink", "pwned", NULL},
        (const char *[]){"files", "write", "/mnt/dirlink/secret.txt", "pwned", NULL},
        (const char *[]){"files", "write", "/mnt/dirlink/new.txt", "pwned", NULL},
        (const char *[]){"files", "write", "/mnt/rootlink/tmp/wasmlet-pwned", "x", NULL},
        (const char *[]){"files", "write", "/mnt/../outside/new.txt", "pwned", NULL},
    };
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        capture_t cap;
        capture_init(&cap);
        wasmrt_result_t res;
        run_argv(f->rt, "files", writes[i], &extra, NULL, &cap, &res);
        if (res.exit_code == 0) fail_msg("files write %s succeeded", writes[i][2]);
        capture_free(&cap);
    }
    const char *mk[] = {"files", "symlink", "/", "/mnt/madelink", NULL};
    capture_t cap;
    capture_init(&cap);
    wasmrt_result_t res;
    run_argv(f->rt, "files", mk, &extra, NULL, &cap, &res);
    capture_free(&cap);
    const char *via[] = {"files", "write", "/mnt/madelink/tmp/wasmlet-pwned2", "x", NULL};
    capture_init(&cap);
    run_argv(f->rt, "files", via, &extra, NULL, &cap, &res);
    assert_int_not_equal(res.exit_code, 0);
    capture_free(&cap);
    const char *made[] = {"/mnt/madelink/etc/passwd"};
    const bool made_ok[] = {false};
    probe(f, &extra, made, 1, made_ok);

    char *text = read_file(secret);
    assert_string_equal(text, "host secret");
    free(text);
    char *p = xasprintf("%s/new.txt", outside);
    assert_int_equal(access(p, F_OK), -1);
    free(p);
    assert_int_equal(access("/tmp/wasmlet-pwned", F_OK), -1);
    assert_int_equal(access("/tmp/wasmlet-pwned2", F_OK), -1);

    /* With no mounts at all, nothing opens. */
    const char *bare[] = {"/etc/passwd", "/", ".", "/tmp"};
    const bool none[] = {false, false, false, false};
    probe(f, NULL, bare, 4, none);

    free(inside);
    free(secret);
    free(outside);
    free(mnt);
}

/* --- refused modules ------------------------------------------------------------ */

static void bad_modules_refused(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    static const struct {
        const char *name;
        const char *want;
    } cases[] = {
        {"bad/empty", "the file is empty"},
        {"bad/notwasm", "does not start with the \\0asm magic"},
        {"bad/component", "exports neither wasi:cli/run"},
        {"bad/nostart", "no _start"},
        {"bad/nostart-export", "no _start"},
        {"bad/truncated", "unexpected end-of-file"},
        {"reactor", "no _start"},
        {"imports", "wasmlet_test::mystery"},
    };
    size_t before = wasmrt_loaded_modules(f->rt);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = example(cases[i].name);
        wasmrt_module_t *mod = NULL;
        err_t err = {{0}};
        wasmrt_load_info_t info;
        int rc = wasmrt_load_file(f->rt, path, &mod, &info, &err);
        if (rc != -1) fail_msg("%s loaded", path);
        if (!strstr(err.msg, cases[i].want))
            fail_msg("%s: message \"%s\" lacks \"%s\"", cases[i].name, err.msg, cases[i].want);
        assert_null(strchr(err.msg, '\n'));
        /* And the same from memory. */
        char *data;
        size_t len;
        assert_int_equal(fs_read_all(path, &data, &len, NULL), 0);
        err.msg[0] = '\0';
        assert_int_equal(wasmrt_load_bytes(f->rt, (const uint8_t *)data, len, &mod, NULL, &err),
                         -1);
        assert_non_null(strstr(err.msg, cases[i].want));
        free(data);
        free(path);
    }
    /* imports.wasm names what is missing and what is offered. */
    char *path = example("imports");
    wasmrt_module_t *mod = NULL;
    err_t err;
    assert_int_equal(wasmrt_load_file(f->rt, path, &mod, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "wasi_snapshot_preview1"));
    free(path);
    /* A missing file names the file. */
    assert_int_equal(wasmrt_load_file(f->rt, "/nonexistent/x.wasm", &mod, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/x.wasm"));
    /* Nothing stays loaded from the failures. */
    assert_int_equal(wasmrt_loaded_modules(f->rt), before);
    /* A version-2 core-looking header that is neither. */
    static const uint8_t v2[] = {0, 'a', 's', 'm', 2, 0, 0, 0};
    assert_int_equal(wasmrt_load_bytes(f->rt, v2, sizeof v2, &mod, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "unsupported WebAssembly binary version 2"));
}

/* --- the compile cache ------------------------------------------------------------ */

static char *sha256_hex_of_file(const char *path)
{
    char *data;
    size_t len;
    assert_int_equal(fs_read_all(path, &data, &len, NULL), 0);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    free(data);
    char *hex = xcalloc(1, 65);
    for (unsigned i = 0; i < n; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
    return hex;
}

static void run_hello_ok(wasmrt_t *rt, wasmrt_module_t *mod)
{
    capture_t cap;
    capture_init(&cap);
    const char *argv[] = {"hello"};
    wasmrt_spec_t spec = {.argv = argv, .argc = 1, .output = on_output, .output_ctx = &cap};
    wasmrt_result_t res;
    assert_int_equal(wasmrt_run(rt, mod, &spec, NULL, &res), 0);
    assert_int_equal(res.outcome, WASMRT_EXITED);
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(out_of(&cap, 1), "Hello from wasmlet!\n");
    capture_free(&cap);
}

static wasmrt_load_source_t load_source(wasmrt_t *rt, const char *path, wasmrt_module_t **mod)
{
    wasmrt_load_info_t info = {.source = -1, .load_ns = -1};
    err_t err;
    if (wasmrt_load_file(rt, path, mod, &info, &err) == -1) fail_msg("%s: %s", path, err.msg);
    assert_true(info.load_ns >= 0);
    return info.source;
}

static void compile_cache(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    char *cache = xasprintf("%s/cache/compiled", f->tmp); /* created on demand */
    char *path = example("hello");
    char *hex = sha256_hex_of_file(path);
    char *cwasm = xasprintf("%s/%s.cwasm", cache, hex);
    wasmrt_options_t opts = {.cache_dir = cache};
    err_t err;

    wasmrt_t *rt;
    assert_int_equal(wasmrt_open(&opts, &rt, &err), 0);
    wasmrt_module_t *a, *b;
    assert_int_equal(load_source(rt, path, &a), WASMRT_FROM_COMPILER);
    char *want_digest = xasprintf("sha256:%s", hex);
    assert_string_equal(wasmrt_module_digest(a), want_digest);
    free(want_digest);
    struct stat st;
    assert_int_equal(stat(cwasm, &st), 0);
    assert_true(st.st_size > 0);
    assert_int_equal(st.st_mode & 077, 0); /* the cache is wasmlet's alone */
    char *cache_parent = xasprintf("%s", cache);
    assert_int_equal(stat(cache_parent, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);
    free(cache_parent);
    assert_int_equal(load_source(rt, path, &b), WASMRT_FROM_MEMORY);
    assert_ptr_equal(a, b);
    assert_int_equal(wasmrt_loaded_modules(rt), 1);
    run_hello_ok(rt, b);
    wasmrt_module_release(a);
    wasmrt_module_release(b);
    /* Kept in memory while idle: a restart does not even map it again. */
    assert_int_equal(load_source(rt, path, &a), WASMRT_FROM_MEMORY);
    wasmrt_module_release(a);
    wasmrt_close(rt);

    /* A new runtime (a new wasmlet process) maps it from disk. */
    assert_int_equal(wasmrt_open(&opts, &rt, &err), 0);
    assert_int_equal(load_source(rt, path, &a), WASMRT_FROM_DISK);
    run_hello_ok(rt, a);
    wasmrt_module_release(a);
    wasmrt_close(rt);

    /* A damaged cache file is detected and replaced, never run. */
    size_t good_size = (size_t)st.st_size;
    assert_int_equal(stat(cwasm, &st), 0);
    good_size = (size_t)st.st_size;
    char *good;
    size_t len;
    assert_int_equal(fs_read_all(cwasm, &good, &len, NULL), 0);
    const char *damage[] = {"junk", "truncated", "flipped-header"};
    for (size_t i = 0; i < 3; i++) {
        if (i == 0) {
            write_file(cwasm, "this is not a compiled module, just junk\n");
        } else if (i == 1) {
            assert_int_equal(fs_write_atomic(cwasm, good, len / 2, 0600, NULL), 0);
        } else {
            char *bad = xmalloc(len);
            memcpy(bad, good, len);
            for (size_t k = 16; k < 64 && k < len; k++)
                bad[k] ^= 0x5a;
            assert_int_equal(fs_write_atomic(cwasm, bad, len, 0600, NULL), 0);
            free(bad);
        }
        assert_int_equal(wasmrt_open(&opts, &rt, &err), 0);
        wasmrt_load_source_t src = load_source(rt, path, &a);
        if (src != WASMRT_FROM_COMPILER)
            fail_msg("damaged cache (%s): source %d, not FROM_COMPILER", damage[i], (int)src);
        run_hello_ok(rt, a);
        wasmrt_module_release(a);
        wasmrt_close(rt);
        /* Rewritten with a good compiled form. */
        assert_int_equal(stat(cwasm, &st), 0);
        assert_int_equal((size_t)st.st_size, good_size);
        assert_int_equal(wasmrt_open(&opts, &rt, &err), 0);
        assert_int_equal(load_source(rt, path, &a), WASMRT_FROM_DISK);
        wasmrt_module_release(a);
        wasmrt_close(rt);
    }
    free(good);

    /* No cache dir: every new runtime compiles. */
    assert_int_equal(wasmrt_open(NULL, &rt, &err), 0);
    assert_int_equal(load_source(rt, path, &a), WASMRT_FROM_COMPILER);
    wasmrt_module_release(a);
    wasmrt_close(rt);

    free(cwasm);
    free(hex);
    free(path);
    free(cache);
}

typedef struct concurrent {
    wasmrt_t *rt;
    const char *path;
    pthread_barrier_t *go;
    wasmrt_load_source_t source;
    int load_rc;
    wasmrt_result_t res;
    capture_t cap;
} concurrent_t;

static void *concurrent_main(void *arg)
{
    concurrent_t *c = arg;
    pthread_barrier_wait(c->go);
    wasmrt_module_t *mod = NULL;
    wasmrt_load_info_t info;
    err_t err;
    c->load_rc = wasmrt_load_file(c->rt, c->path, &mod, &info, &err);
    if (c->load_rc == -1) return NULL;
    c->source = info.source;
    const char *argv[] = {"hello"};
    wasmrt_spec_t spec = {.argv = argv, .argc = 1, .output = on_output, .output_ctx = &c->cap};
    wasmrt_run(c->rt, mod, &spec, NULL, &c->res);
    wasmrt_module_release(mod);
    return NULL;
}

static void concurrent_runs(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    enum { N = 8 };
    char *cache = xasprintf("%s/cache-concurrent", f->tmp);
    wasmrt_options_t opts = {.cache_dir = cache};
    wasmrt_t *rt;
    err_t err;
    assert_int_equal(wasmrt_open(&opts, &rt, &err), 0);
    char *path = example("hello");
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    concurrent_t cs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        memset(&cs[i], 0, sizeof cs[i]);
        cs[i].rt = rt;
        cs[i].path = path;
        cs[i].go = &go;
        capture_init(&cs[i].cap);
        assert_int_equal(pthread_create(&th[i], NULL, concurrent_main, &cs[i]), 0);
    }
    int compiled = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(cs[i].load_rc, 0);
        assert_int_equal(cs[i].res.outcome, WASMRT_EXITED);
        assert_int_equal(cs[i].res.exit_code, 0);
        assert_string_equal(out_of(&cs[i].cap, 1), "Hello from wasmlet!\n");
        compiled += cs[i].source == WASMRT_FROM_COMPILER;
        capture_free(&cs[i].cap);
    }
    /* One compile served all eight. */
    assert_int_equal(compiled, 1);
    assert_int_equal(wasmrt_loaded_modules(rt), 1);
    pthread_barrier_destroy(&go);
    wasmrt_close(rt);
    free(path);
    free(cache);
}

static void engine_version(void **state)
{
    wasm_signals_restore();
    (void)state;
    const char *v = wasmrt_engine_version();
    assert_non_null(v);
    assert_string_equal(v, WASMTIME_VERSION);
    assert_true(strchr(v, '.') != NULL);
}

/* The tokio worker threads of this process, each checked to be in the
 * network namespace ns. */
static int count_io_threads(const char *ns_want)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int workers = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[128], comm[64] = {0}, ns[64] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (!fgets(comm, sizeof comm, f)) comm[0] = '\0';
        fclose(f);
        if (strncmp(comm, "tokio-", 6) != 0) continue; /* tokio-rt-worker */
        snprintf(path, sizeof path, "/proc/self/task/%s/ns/net", e->d_name);
        assert_true(readlink(path, ns, sizeof ns - 1) > 0);
        assert_string_equal(ns, ns_want);
        workers++;
    }
    closedir(d);
    return workers;
}

/* The WASI host's I/O threads (Wasmtime's tokio runtime) start on the
 * calling thread, so they share its network namespace: here, the test's. */
static void io_threads_start_here(void **state)
{
    (void)state;
    wasmrt_t *rt = NULL;
    err_t err;
    assert_int_equal(wasmrt_open(NULL, &rt, &err), 0);
    if (wasmrt_start_io_threads(rt, &err) == -1) fail_msg("%s", err.msg);
    char mine[64] = {0};
    assert_true(readlink("/proc/self/ns/net", mine, sizeof mine - 1) > 0);
    /* A new thread names itself once it runs: look for up to 2 s. */
    int workers = 0;
    for (int tries = 0; tries < 200 && workers == 0; tries++) {
        if (tries) time_sleep_ms(10);
        workers = count_io_threads(mine);
    }
    assert_true(workers > 0);
    /* A second call is harmless. */
    assert_int_equal(wasmrt_start_io_threads(rt, &err), 0);
    wasmrt_close(rt);
}

int main(void)
{
    wasm_signals_save();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(engine_version),
        cmocka_unit_test(io_threads_start_here),
        cmocka_unit_test(hello_runs),
        cmocka_unit_test(exit_codes),
        cmocka_unit_test(trap_is_reported),
        cmocka_unit_test(recursion_traps),
        cmocka_unit_test(wasm_stack_is_configurable),
        cmocka_unit_test(memory_limit_is_oom),
        cmocka_unit_test(memhog_without_limit_is_stopped),
        cmocka_unit_test(spin_stop_latency),
        cmocka_unit_test(stop_before_start),
        cmocka_unit_test(sleeper_is_stopped),
        cmocka_unit_test(sleeper_sleeps),
        cmocka_unit_test(cpu_limit_throttles),
        cmocka_unit_test(argv_and_env_exact),
        cmocka_unit_test(output_complete_and_ordered),
        cmocka_unit_test(mount_read_write),
        cmocka_unit_test(mount_read_only),
        cmocka_unit_test(sandbox_escapes_fail),
        cmocka_unit_test(bad_modules_refused),
        cmocka_unit_test(compile_cache),
        cmocka_unit_test(concurrent_runs),
        cmocka_unit_test(cpu_limit_resized_live),
        cmocka_unit_test(memory_limit_raised_live),
        cmocka_unit_test(memory_limit_below_usage_refused),
        cmocka_unit_test(descriptors_capped_and_counted),
        cmocka_unit_test(memory_reported_while_running),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
