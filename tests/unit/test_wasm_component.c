/* test_wasm_component.c: unit tests for WASI preview 2 components in wasm/
 * (wasmrt.h), run against the component twins of the examples and the
 * preview-2 programs of examples/components (found through
 * $WASMLET_EXAMPLES as <name>.component.wasm).
 *
 * The twins of test_wasm.c's cases: output, exit codes, traps, the memory
 * limit over all memories, stops of a spinning and of a sleeping component
 * (within 100 ms), argv and env, mounts and escapes, the refusal of
 * components that cannot run (each with its reason), the compile cache;
 * and the network: sockets and outgoing HTTP against servers on loopback,
 * denied by default, allowed with allow_local, none at all with net.none. */
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
#include "loopback_servers.h"
#include "wasm_signals.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* strerror(EDQUOT) in wasi-libc: what a C program built with the
 * preview-1 adapter prints for open-at's error-code quota. */
#define QUOTA_TEXT "Quota exceeded"

/* --- fixtures ------------------------------------------------------------- */

static char *component(const char *name)
{
    const char *dir = getenv("WASMLET_EXAMPLES");
    return xasprintf("%s/%s.component.wasm", dir && *dir ? dir : "build/examples", name);
}

static char *example_file(const char *rel)
{
    const char *dir = getenv("WASMLET_EXAMPLES");
    return xasprintf("%s/%s", dir && *dir ? dir : "build/examples", rel);
}

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
    pthread_mutex_lock(&c->lock);
    strbuf_append(&c->out[stream], data, len);
    pthread_mutex_unlock(&c->lock);
    if (memchr(data, '\n', len)) atomic_store(&c->seen, 1);
}

static const char *out_of(capture_t *c, int stream)
{
    return strbuf_str(&c->out[stream]);
}

typedef struct fixture {
    wasmrt_t *rt;
    char *tmp;
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
    char tmpl[] = "/tmp/wasmlet-test-component-XXXXXX";
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
    char *path = component(name);
    wasmrt_module_t *mod = NULL;
    err_t err;
    if (wasmrt_load_file(rt, path, &mod, NULL, &err) == -1)
        fail_msg("loading %s: %s", path, err.msg);
    free(path);
    assert_int_equal(wasmrt_module_kind(mod), WASMRT_COMPONENT);
    return mod;
}

/* One run of a component on a thread sized as a container's, so that the
 * default 8 MiB wasm stack is safe. */
typedef struct job {
    wasmrt_t *rt;
    const char *name;
    const char *const *argv;
    wasmrt_spec_t extra;
    wasmrt_stop_t *stop;
    capture_t cap;
    wasmrt_result_t res;
    int64_t ended; /* mono ns */
} job_t;

static void *job_main(void *arg)
{
    job_t *j = arg;
    wasmrt_module_t *mod = load(j->rt, j->name);
    wasmrt_spec_t spec = j->extra;
    spec.argv = j->argv;
    spec.argc = 0;
    while (j->argv[spec.argc])
        spec.argc++;
    spec.output = on_output;
    spec.output_ctx = &j->cap;
    wasmrt_run(j->rt, mod, &spec, j->stop, &j->res);
    j->ended = time_mono_ns();
    wasmrt_module_release(mod);
    return NULL;
}

static pthread_t job_start(job_t *j)
{
    capture_init(&j->cap);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, wasmrt_thread_stack_size(j->rt));
    pthread_t t;
    assert_int_equal(pthread_create(&t, &attr, job_main, j), 0);
    pthread_attr_destroy(&attr);
    return t;
}

/* Runs name with argv (NULL-terminated) to its end; free j->cap after. */
static void run(job_t *j, wasmrt_t *rt, const char *name, const char *const *argv,
                const wasmrt_spec_t *extra)
{
    memset(j, 0, sizeof *j);
    j->rt = rt;
    j->name = name;
    j->argv = argv;
    if (extra) j->extra = *extra;
    pthread_join(job_start(j), NULL);
}

/* --- running ---------------------------------------------------------------- */

static void hello_runs(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    job_t j;
    const char *argv[] = {"hello", NULL};
    run(&j, f->rt, "hello", argv, NULL);
    assert_int_equal(j.res.outcome, WASMRT_EXITED);
    assert_int_equal(j.res.exit_code, 0);
    assert_string_equal(j.res.message, "");
    assert_string_equal(wasmrt_outcome_reason(&j.res), "Completed");
    assert_string_equal(out_of(&j.cap, 1), "Hello from wasmlet!\n");
    assert_string_equal(out_of(&j.cap, 2), "");
    assert_true(j.res.instantiate_ns > 0);
    assert_true(j.res.run_ns > 0);
    /* All the component's memories together: at least the program's own. */
    assert_true(j.res.memory_bytes >= 65536);
    assert_true(j.res.cpu_ns > 0);
    capture_free(&j.cap);

    /* The two kinds side by side, told apart by their bytes. */
    wasmrt_module_t *c = load(f->rt, "hello");
    char *core_path = example_file("hello.wasm");
    wasmrt_module_t *m = NULL;
    err_t err;
    assert_int_equal(wasmrt_load_file(f->rt, core_path, &m, NULL, &err), 0);
    assert_int_equal(wasmrt_module_kind(m), WASMRT_CORE_MODULE);
    assert_string_equal(wasmrt_kind_name(WASMRT_CORE_MODULE), "module");
    assert_string_equal(wasmrt_kind_name(wasmrt_module_kind(c)), "component");
    assert_string_not_equal(wasmrt_module_digest(c), wasmrt_module_digest(m));
    wasmrt_module_release(m);
    wasmrt_module_release(c);
    free(core_path);
}

static void exit_codes(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    /* Through the preview-1 adapter, exit(n) is wasi:cli/exit's exit: ok
     * for 0 and err (exit code 1) for any other n; a return from main is
     * the same. */
    static const struct {
        const char *n;
        int want;
    } cases[] = {{"0", 0}, {"1", 1}, {"3", 1}, {"255", 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[] = {"exitcode", cases[i].n, "leaving", NULL};
        job_t j;
        run(&j, f->rt, "exitcode", argv, NULL);
        assert_int_equal(j.res.outcome, WASMRT_EXITED);
        if (j.res.exit_code != cases[i].want)
            fail_msg("exit(%s): exit code %d, want %d", cases[i].n, j.res.exit_code, cases[i].want);
        assert_string_equal(out_of(&j.cap, 2), "leaving\n");
        assert_string_equal(wasmrt_outcome_reason(&j.res), cases[i].want ? "Error" : "Completed");
        capture_free(&j.cap);
    }
}

static void trap_is_reported(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"trap", NULL};
    job_t j;
    run(&j, f->rt, "trap", argv, NULL);
    assert_int_equal(j.res.outcome, WASMRT_TRAPPED);
    assert_int_equal(j.res.exit_code, 134);
    if (!strstr(j.res.message, "unreachable")) fail_msg("message: %s", j.res.message);
    assert_null(strchr(j.res.message, '\n'));
    assert_string_equal(out_of(&j.cap, 1), "about to trap\n");
    capture_free(&j.cap);

    const char *rargv[] = {"recurse", NULL};
    run(&j, f->rt, "recurse", rargv, NULL);
    assert_int_equal(j.res.outcome, WASMRT_TRAPPED);
    if (strncmp(j.res.message, "wasm trap: call stack exhausted", 31) != 0)
        fail_msg("message: %s", j.res.message);
    capture_free(&j.cap);
}

static void memory_limit_is_oom(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    /* The memhog twin cannot serve here: the preview-1 adapter asserts
     * (line 2857) at its first WASI call, with or without a limit. The
     * summed limiter itself is tested in test_wasmtime_wrapper.c; here a
     * component whose initial memories exceed the limit is OOMKilled. */
    job_t j;
    wasmrt_spec_t extra = {0};
    const char *hello[] = {"hello", NULL};
    extra.memory_limit = 65536;
    run(&j, f->rt, "hello", hello, &extra);
    assert_int_equal(j.res.outcome, WASMRT_OOM);
    assert_int_equal(j.res.exit_code, 137);
    assert_non_null(strstr(j.res.message, "initial memories"));
    assert_string_equal(out_of(&j.cap, 1), "");
    capture_free(&j.cap);
}

/* Stops a running component once it wrote a line and delay_ms passed;
 * returns the latency from the request to the end of wasmrt_run. */
static int64_t stop_after(fixture_t *f, const char *name, const char *const *argv, int64_t delay_ms,
                          const wasmrt_spec_t *extra, job_t *j)
{
    memset(j, 0, sizeof *j);
    j->rt = f->rt;
    j->name = name;
    j->argv = argv;
    if (extra) j->extra = *extra;
    j->stop = wasmrt_stop_new();
    pthread_t t = job_start(j);
    int64_t deadline = time_mono_ns() + 20 * NS_PER_SEC;
    while (!atomic_load(&j->cap.seen) && time_mono_ns() < deadline)
        time_sleep_ms(1);
    time_sleep_ms(delay_ms);
    int64_t requested = time_mono_ns();
    wasmrt_stop_request(j->stop);
    pthread_join(t, NULL);
    wasmrt_stop_free(j->stop);
    return j->ended - requested;
}

static void spin_is_stopped(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"spin", NULL};
    for (int i = 0; i < 5; i++) {
        job_t j;
        int64_t lat = stop_after(f, "spin", argv, 5 + 3 * i, NULL, &j);
        assert_int_equal(j.res.outcome, WASMRT_STOPPED);
        assert_int_equal(j.res.exit_code, 137);
        assert_string_equal(out_of(&j.cap, 1), "spinning\n");
        if (lat >= 100 * NS_PER_MS) fail_msg("stop took %.1f ms", (double)lat / 1e6);
        capture_free(&j.cap);
    }
}

static void sleeper_is_stopped(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    /* Blocked in the host (wasi:io/poll), where epoch interruption cannot
     * reach: the stop's cancel token ends the wait. */
    const char *argv[] = {"sleeper", "3600", NULL};
    job_t j;
    int64_t lat = stop_after(f, "sleeper", argv, 50, NULL, &j);
    printf("component sleeper stop latency: %.2f ms\n", (double)lat / 1e6);
    assert_int_equal(j.res.outcome, WASMRT_STOPPED);
    assert_int_equal(j.res.exit_code, 137);
    assert_string_equal(out_of(&j.cap, 1), "sleeping 3600\n");
    if (lat >= 100 * NS_PER_MS) fail_msg("stop took %.1f ms", (double)lat / 1e6);
    capture_free(&j.cap);

    /* Not stopped: it sleeps its time and ends by itself. */
    const char *short_argv[] = {"sleeper", "0.2", NULL};
    int64_t t0 = time_mono_ns();
    run(&j, f->rt, "sleeper", short_argv, NULL);
    assert_int_equal(j.res.outcome, WASMRT_EXITED);
    assert_int_equal(j.res.exit_code, 0);
    assert_true(time_mono_ns() - t0 >= 200 * NS_PER_MS);
    assert_true(j.res.cpu_ns < (uint64_t)j.res.run_ns / 2);
    assert_string_equal(out_of(&j.cap, 1), "sleeping 0.2\nwoke\n");
    capture_free(&j.cap);

    /* Stopped before it starts. */
    wasmrt_module_t *mod = load(f->rt, "hello");
    wasmrt_stop_t *stop = wasmrt_stop_new();
    wasmrt_stop_request(stop);
    const char *h[] = {"hello"};
    wasmrt_spec_t spec = {.argv = h, .argc = 1};
    wasmrt_result_t res;
    assert_int_equal(wasmrt_run(f->rt, mod, &spec, stop, &res), 0);
    assert_int_equal(res.outcome, WASMRT_STOPPED);
    wasmrt_stop_free(stop);
    wasmrt_module_release(mod);
}

static void cpu_limit_throttles(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"spin", NULL};
    wasmrt_spec_t extra = {.cpu_millicores = 250};
    job_t j;
    int64_t t0 = time_mono_ns();
    stop_after(f, "spin", argv, 1000, &extra, &j);
    int64_t wall = time_mono_ns() - t0;
    assert_int_equal(j.res.outcome, WASMRT_STOPPED);
    double share = (double)j.res.cpu_ns / (double)wall;
    printf("component cpu limit 250m: %.1f%% of %.0f ms\n", share * 100, (double)wall / 1e6);
    assert_true(share <= 0.40);
    capture_free(&j.cap);
}

static void argv_and_env_exact(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"printenv", "a b", "", "caf\xc3\xa9", NULL};
    const char *env[] = {"ZED=last", "ALPHA=1", "EMPTY=", "WITH_EQ=x=y"};
    wasmrt_spec_t extra = {.env = env, .envc = 4};
    job_t j;
    run(&j, f->rt, "printenv", argv, &extra);
    assert_int_equal(j.res.exit_code, 0);
    assert_string_equal(out_of(&j.cap, 1), "arg[0]=printenv\n"
                                           "arg[1]=a b\n"
                                           "arg[2]=\n"
                                           "arg[3]=caf\xc3\xa9\n"
                                           "env ALPHA=1\n"
                                           "env EMPTY=\n"
                                           "env WITH_EQ=x=y\n"
                                           "env ZED=last\n");
    capture_free(&j.cap);
}

/* --- mounts and the sandbox --------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void mounts_and_escapes(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    char *rw = xasprintf("%s/rw", f->tmp), *ro = xasprintf("%s/ro", f->tmp);
    char *outside = xasprintf("%s/outside", f->tmp);
    assert_int_equal(fs_mkdir_p(rw, 0755, NULL), 0);
    assert_int_equal(fs_mkdir_p(ro, 0755, NULL), 0);
    assert_int_equal(fs_mkdir_p(outside, 0755, NULL), 0);
    char *secret = xasprintf("%s/secret.txt", outside);
    write_file(secret, "host secret");
    char *given = xasprintf("%s/given.txt", ro);
    write_file(given, "read me");
    char *link = xasprintf("%s/secretlink", rw);
    assert_int_equal(symlink(secret, link), 0);
    wasmrt_mount_t m[2] = {{.host_path = rw, .guest_path = "/data"},
                           {.host_path = ro, .guest_path = "/ro", .read_only = true}};
    wasmrt_spec_t extra = {.mounts = m, .nmounts = 2};

    job_t j;
    const char *w[] = {"files", "write", "/data/out.txt", "written by a component", NULL};
    run(&j, f->rt, "files", w, &extra);
    assert_int_equal(j.res.exit_code, 0);
    capture_free(&j.cap);
    char *out = xasprintf("%s/out.txt", rw), *text = NULL;
    size_t len;
    assert_int_equal(fs_read_all(out, &text, &len, NULL), 0);
    assert_string_equal(text, "written by a component");
    free(text);
    free(out);

    const char *c[] = {"files", "cat", "/ro/given.txt", NULL};
    run(&j, f->rt, "files", c, &extra);
    assert_int_equal(j.res.exit_code, 0);
    assert_string_equal(out_of(&j.cap, 1), "read me");
    capture_free(&j.cap);

    /* Writes to the read-only mount, and escapes, fail. */
    const char *const *fails[] = {
        (const char *[]){"files", "write", "/ro/new.txt", "x", NULL},
        (const char *[]){"files", "write", "/ro/given.txt", "changed", NULL},
        (const char *[]){"files", "mkdir", "/ro/dir", NULL},
        (const char *[]){"files", "write", "/data/secretlink", "pwned", NULL},
        (const char *[]){"files", "write", "/data/../outside/new.txt", "pwned", NULL},
        (const char *[]){"files", "cat", "/etc/passwd", NULL},
        (const char *[]){"files", "cat", "/data/secretlink", NULL},
    };
    for (size_t i = 0; i < sizeof fails / sizeof fails[0]; i++) {
        run(&j, f->rt, "files", fails[i], &extra);
        assert_int_equal(j.res.outcome, WASMRT_EXITED);
        if (j.res.exit_code == 0) fail_msg("files %s %s succeeded", fails[i][1], fails[i][2]);
        assert_null(strstr(out_of(&j.cap, 1), "host secret"));
        capture_free(&j.cap);
    }
    assert_int_equal(fs_read_all(given, &text, &len, NULL), 0);
    assert_string_equal(text, "read me");
    free(text);
    assert_int_equal(fs_read_all(secret, &text, &len, NULL), 0);
    assert_string_equal(text, "host secret");
    free(text);
    char *p = xasprintf("%s/new.txt", outside);
    assert_int_equal(access(p, F_OK), -1);
    free(p);
    free(link);
    free(given);
    free(secret);
    free(outside);
    free(ro);
    free(rw);
}

/* --- refused components -------------------------------------------------------- */

static void refused(wasmrt_t *rt, const char *path, const char *const *want, size_t nwant)
{
    wasmrt_module_t *mod = NULL;
    err_t err = {{0}};
    if (wasmrt_load_file(rt, path, &mod, NULL, &err) != -1) fail_msg("%s loaded", path);
    for (size_t i = 0; i < nwant; i++)
        if (!strstr(err.msg, want[i])) fail_msg("%s: \"%s\" lacks \"%s\"", path, err.msg, want[i]);
    assert_null(strchr(err.msg, '\n'));
}

static void bad_components_refused(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    size_t before = wasmrt_loaded_modules(f->rt);
    struct {
        char *path;
        const char *want[3];
    } cases[] = {
        {example_file("bad/component-truncated.wasm"), {"invalid WebAssembly component"}},
        {example_file("bad/component-keyvalue.wasm"),
         {"imports what wasmlet does not provide", "wasi:keyvalue/store@0.2.0"}},
        {example_file("bad/component-wasi03.wasm"),
         {"wasi:cli/environment@0.3.0", "WASI version this host cannot link",
          "it has WASI " WASMRT_WASI_P2_VERSION}},
        {example_file("bad/component.wasm"),
         {"exports neither wasi:cli/run", "wasi:http/incoming-handler", "exports nothing"}},
        {component("reactor"), {"exports neither wasi:cli/run", "work"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = 0;
        while (n < 3 && cases[i].want[n])
            n++;
        refused(f->rt, cases[i].path, cases[i].want, n);
        free(cases[i].path);
    }
    assert_int_equal(wasmrt_loaded_modules(f->rt), before);
}

/* --- the compile cache ------------------------------------------------------------ */

static wasmrt_load_source_t load_source(wasmrt_t *rt, const char *path, wasmrt_module_t **mod)
{
    wasmrt_load_info_t info = {.source = -1};
    err_t err;
    if (wasmrt_load_file(rt, path, mod, &info, &err) == -1) fail_msg("%s: %s", path, err.msg);
    return info.source;
}

static void compile_cache(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    char *cache = xasprintf("%s/cache", f->tmp);
    char *path = component("hello");
    wasmrt_options_t opts = {.cache_dir = cache};
    err_t err;
    wasmrt_t *rt;
    assert_int_equal(wasmrt_open(&opts, &rt, &err), 0);
    wasmrt_module_t *a, *b;
    assert_int_equal(load_source(rt, path, &a), WASMRT_FROM_COMPILER);
    assert_int_equal(load_source(rt, path, &b), WASMRT_FROM_MEMORY);
    assert_ptr_equal(a, b);
    wasmrt_module_release(a);
    wasmrt_module_release(b);
    wasmrt_close(rt);

    /* A new runtime maps the compiled component from disk, and runs it. */
    assert_int_equal(wasmrt_open(&opts, &rt, &err), 0);
    int64_t t0 = time_mono_ns();
    assert_int_equal(load_source(rt, path, &a), WASMRT_FROM_DISK);
    printf("component warm load: %.2f ms\n", (double)(time_mono_ns() - t0) / 1e6);
    wasmrt_module_release(a);
    job_t j;
    const char *argv[] = {"hello", NULL};
    run(&j, rt, "hello", argv, NULL);
    assert_int_equal(j.res.exit_code, 0);
    assert_string_equal(out_of(&j.cap, 1), "Hello from wasmlet!\n");
    printf("component instantiate: %.3f ms\n", (double)j.res.instantiate_ns / 1e6);
    capture_free(&j.cap);
    wasmrt_close(rt);
    free(path);
    free(cache);
}

/* --- the network ------------------------------------------------------------------ */

static void destination_check(void **state)
{
    (void)state;
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(80)};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(80)};
    const char *node[] = {"192.0.2.7", "2001:db8::7"};
    wasmrt_net_t net = {.node_addrs = node, .n_node_addrs = 2};
    static const struct {
        const char *ip;
        bool allowed;
    } cases[] = {
        {"127.0.0.1", false},   {"127.1.2.3", false},        {"169.254.169.254", false},
        {"0.0.0.0", false},     {"192.0.2.7", false},        {"198.51.100.1", true},
        {"::1", false},         {"fe80::1", false},          {"::", false},
        {"2001:db8::7", false}, {"::ffff:127.0.0.1", false}, {"2001:db8::8", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got;
        if (inet_pton(AF_INET, cases[i].ip, &v4.sin_addr) == 1)
            got = wasmrt_net_allows_destination(&net, (struct sockaddr *)&v4, sizeof v4);
        else {
            assert_int_equal(inet_pton(AF_INET6, cases[i].ip, &v6.sin6_addr), 1);
            got = wasmrt_net_allows_destination(&net, (struct sockaddr *)&v6, sizeof v6);
        }
        if (got != cases[i].allowed) fail_msg("%s: %s", cases[i].ip, got ? "allowed" : "denied");
    }
    inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
    net.allow_local = true;
    assert_true(wasmrt_net_allows_destination(&net, (struct sockaddr *)&v4, sizeof v4));
    net.none = true;
    inet_pton(AF_INET, "198.51.100.1", &v4.sin_addr);
    assert_false(wasmrt_net_allows_destination(&net, (struct sockaddr *)&v4, sizeof v4));
}

static void on_descriptors(void *ctx, size_t held)
{
    size_t *max = ctx;
    if (held > *max) *max = held;
}

/* The descriptor cap of a component: files opened through open-at stop at
 * the cap with error-code quota (the adapter's EDQUOT), the mount's
 * preopen and what the caller keeps counting; TCP and UDP sockets are
 * refused with new-socket-limit. */
static void descriptors_capped(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    char *dir = xasprintf("%s/fds", f->tmp);
    assert_int_equal(fs_mkdir_p(dir, 0755, NULL), 0);
    char *file = xasprintf("%s/f", dir);
    write_file(file, "x");
    wasmrt_mount_t m = {.host_path = dir, .guest_path = "/d", .read_only = true};
    size_t max_seen = 0;
    wasmrt_spec_t extra = {.mounts = &m,
                           .nmounts = 1,
                           .max_open_files = 8,
                           .kept_descriptors = 2,
                           .descriptors = on_descriptors,
                           .descriptors_ctx = &max_seen};
    const char *argv[] = {"files", "hold", "/d/f", "100", "0", NULL};
    job_t j;
    run(&j, f->rt, "files", argv, &extra);
    assert_int_equal(j.res.exit_code, 0);
    assert_string_equal(out_of(&j.cap, 1), "held 5\nopen: " QUOTA_TEXT "\n");
    /* Its sleep (wasi:io/poll, through the adapter) reported the whole
     * cap: the preopen, 5 files and the 2 kept. */
    assert_int_equal(max_seen, 8);
    capture_free(&j.cap);

    /* No cap: all of them. */
    extra.max_open_files = 0;
    run(&j, f->rt, "files", argv, &extra);
    assert_string_equal(out_of(&j.cap, 1), "held 100\n");
    capture_free(&j.cap);

    /* Sockets count and stop at the cap (3 left by the 2 kept; no mount
     * here, and tcp-client opens no file) with new-socket-limit. */
    wasmrt_spec_t net = {.max_open_files = 5, .kept_descriptors = 2};
    const char *tcp[] = {"tcp-client", "sockets", "50", NULL};
    run(&j, f->rt, "tcp-client", tcp, &net);
    assert_int_equal(j.res.exit_code, 1);
    assert_string_equal(out_of(&j.cap, 1), "sockets 3\n");
    assert_string_equal(out_of(&j.cap, 2), "tcp-client: socket: new-socket-limit\n");
    capture_free(&j.cap);
    net.max_open_files = 0;
    run(&j, f->rt, "tcp-client", tcp, &net);
    assert_int_equal(j.res.exit_code, 0);
    assert_string_equal(out_of(&j.cap, 1), "sockets 50\n");
    capture_free(&j.cap);
    /* UDP the same. */
    net.max_open_files = 4;
    const char *udp[] = {"udp-echo", "sockets", "50", NULL};
    run(&j, f->rt, "udp-echo", udp, &net);
    assert_int_equal(j.res.exit_code, 1);
    assert_string_equal(out_of(&j.cap, 1), "sockets 2\n");
    assert_string_equal(out_of(&j.cap, 2), "udp-echo: socket: new-socket-limit\n");
    capture_free(&j.cap);
    free(file);
    free(dir);
}

static void tcp_to_loopback(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    loopback_server_t srv;
    assert_int_equal(loopback_start(&srv, SOCK_STREAM, false, 1), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    const char *argv[] = {"tcp-client", "127.0.0.1", port, "ping over tcp", NULL};

    /* Denied by default: loopback is the node's. */
    job_t j;
    run(&j, f->rt, "tcp-client", argv, NULL);
    assert_int_equal(j.res.outcome, WASMRT_EXITED);
    assert_int_equal(j.res.exit_code, 1);
    if (!strstr(out_of(&j.cap, 2), "access-denied")) fail_msg("stderr: %s", out_of(&j.cap, 2));
    assert_int_equal(atomic_load(&srv.served), 0);
    capture_free(&j.cap);

    /* Allowed with allow_local: the echo comes back. */
    wasmrt_spec_t extra = {.net = {.allow_local = true}};
    run(&j, f->rt, "tcp-client", argv, &extra);
    if (j.res.exit_code != 0) fail_msg("tcp-client: %s%s", out_of(&j.cap, 2), j.res.message);
    assert_string_equal(out_of(&j.cap, 1), "ping over tcp\n");
    capture_free(&j.cap);
    loopback_stop(&srv);
    assert_int_equal(atomic_load(&srv.served), 1);

    /* No network at all. */
    extra.net.none = true;
    run(&j, f->rt, "tcp-client", argv, &extra);
    assert_int_equal(j.res.exit_code, 1);
    assert_non_null(strstr(out_of(&j.cap, 2), "tcp-client: "));
    capture_free(&j.cap);
}

static void udp_to_loopback(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    loopback_server_t srv;
    assert_int_equal(loopback_start(&srv, SOCK_DGRAM, false, 1), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    const char *argv[] = {"udp-echo", "client", "127.0.0.1", port, "ping over udp", NULL};
    job_t j;
    run(&j, f->rt, "udp-echo", argv, NULL);
    assert_int_equal(j.res.exit_code, 1);
    if (!strstr(out_of(&j.cap, 2), "access-denied")) fail_msg("stderr: %s", out_of(&j.cap, 2));
    capture_free(&j.cap);
    wasmrt_spec_t extra = {.net = {.allow_local = true}};
    run(&j, f->rt, "udp-echo", argv, &extra);
    if (j.res.exit_code != 0) fail_msg("udp-echo: %s%s", out_of(&j.cap, 2), j.res.message);
    assert_non_null(strstr(out_of(&j.cap, 1), "ping over udp"));
    capture_free(&j.cap);
    loopback_stop(&srv);
}

static void name_lookup(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    const char *argv[] = {"lookup", "localhost", NULL};
    job_t j;
    run(&j, f->rt, "lookup", argv, NULL);
    if (j.res.exit_code != 0) fail_msg("lookup: %s", out_of(&j.cap, 2));
    const char *out = out_of(&j.cap, 1);
    assert_true(strstr(out, "127.0.0.1\n") || strstr(out, "::1\n"));
    capture_free(&j.cap);
    wasmrt_spec_t extra = {.net = {.none = true}};
    run(&j, f->rt, "lookup", argv, &extra);
    assert_int_equal(j.res.exit_code, 1);
    assert_non_null(strstr(out_of(&j.cap, 2), "lookup: localhost: "));
    capture_free(&j.cap);
}

static void http_get(void **state)
{
    wasm_signals_restore();
    fixture_t *f = *state;
    loopback_server_t srv;
    assert_int_equal(loopback_start(&srv, SOCK_STREAM, true, 2), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/path?q=1", srv.port);
    const char *argv[] = {"http-get", url, NULL};

    job_t j;
    run(&j, f->rt, "http-get", argv, NULL);
    assert_int_equal(j.res.exit_code, 1);
    if (!strstr(out_of(&j.cap, 2), "HTTP-request-denied")) fail_msg("%s", out_of(&j.cap, 2));
    capture_free(&j.cap);

    wasmrt_spec_t extra = {.net = {.allow_local = true}};
    run(&j, f->rt, "http-get", argv, &extra);
    if (j.res.exit_code != 0) fail_msg("http-get: %s%s", out_of(&j.cap, 2), j.res.message);
    assert_string_equal(out_of(&j.cap, 1), "status: 200\n" LOOPBACK_BODY);
    assert_string_equal(srv.last_request, "GET /path?q=1 HTTP/1.1");
    capture_free(&j.cap);

    /* An allow-list without this host. */
    const char *hosts[] = {"example.com"};
    extra.net.http_hosts_set = true;
    extra.net.http_hosts = hosts;
    extra.net.n_http_hosts = 1;
    run(&j, f->rt, "http-get", argv, &extra);
    assert_int_equal(j.res.exit_code, 1);
    assert_non_null(strstr(out_of(&j.cap, 2), "HTTP-request-denied"));
    capture_free(&j.cap);
    /* With it. */
    hosts[0] = "127.0.0.1";
    run(&j, f->rt, "http-get", argv, &extra);
    assert_int_equal(j.res.exit_code, 0);
    capture_free(&j.cap);
    loopback_stop(&srv);

    /* No network: denied. */
    wasmrt_spec_t none = {.net = {.none = true, .allow_local = true}};
    run(&j, f->rt, "http-get", argv, &none);
    assert_int_equal(j.res.exit_code, 1);
    assert_non_null(strstr(out_of(&j.cap, 2), "HTTP-request-denied"));
    capture_free(&j.cap);
}

int main(void)
{
    wasm_signals_save();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hello_runs),
        cmocka_unit_test(exit_codes),
        cmocka_unit_test(trap_is_reported),
        cmocka_unit_test(memory_limit_is_oom),
        cmocka_unit_test(spin_is_stopped),
        cmocka_unit_test(sleeper_is_stopped),
        cmocka_unit_test(cpu_limit_throttles),
        cmocka_unit_test(argv_and_env_exact),
        cmocka_unit_test(mounts_and_escapes),
        cmocka_unit_test(bad_components_refused),
        cmocka_unit_test(compile_cache),
        cmocka_unit_test(destination_check),
        cmocka_unit_test(descriptors_capped),
        cmocka_unit_test(tcp_to_loopback),
        cmocka_unit_test(udp_to_loopback),
        cmocka_unit_test(name_lookup),
        cmocka_unit_test(http_get),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
