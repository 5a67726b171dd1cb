/* startup_bench.c: how long a container of wasmlet takes to start, in
 * process, split into its steps (issue 2: warm instantiation under 1 ms).
 *
 *   startup_bench [-n RUNS] [-c COLD_RUNS] MODULE.wasm
 *
 * Measures, with the runtime layer (wasm/wasmrt.h) alone:
 *   open        wasmrt_open: the engine, the WASI linker, the ticker thread
 *   cold        first load of the module with an empty compile cache
 *               (read + hash + Cranelift compile + write the .cwasm + link)
 *   disk        load by a fresh runtime from the cache (.cwasm mapped back)
 *   memory      load of a module already loaded (a second container)
 *   instantiate wasmrt_run's store + WASI context + instantiation
 *   run         _start to exit (for hello: one write and proc_exit)
 *   total       instantiate + run as the caller sees wasmrt_run
 * each as the median (and p90, min) over its runs, in microseconds, one
 * line per metric: "<name> median_us=<x> p90_us=<y> min_us=<z> n=<n>", so
 * that run.sh (and a reader) can take them apart with awk.
 *
 * Output of the module is discarded: a log write is the caller's cost and
 * is measured end to end by `wasmlet run` in run.sh. */
#include "util/err.h"
#include "util/fs.h"
#include "util/time.h"
#include "util/xalloc.h"
#include "wasm/wasmrt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *name, int64_t *ns, size_t n)
{
    if (n == 0) return;
    qsort(ns, n, sizeof *ns, cmp_i64);
    printf("%-12s median_us=%.1f p90_us=%.1f min_us=%.1f n=%zu\n", name, (double)ns[n / 2] / 1e3,
           (double)ns[(n * 9) / 10] / 1e3, (double)ns[0] / 1e3, n);
}

static void die(const char *what, const err_t *err)
{
    fprintf(stderr, "startup_bench: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

static void discard(void *ctx, int stream, const char *data, size_t len)
{
    (void)ctx;
    (void)stream;
    (void)data;
    (void)len;
}

int main(int argc, char **argv)
{
    int runs = 1000, cold_runs = 10, opt;
    while ((opt = getopt(argc, argv, "n:c:")) != -1) {
        if (opt == 'n')
            runs = atoi(optarg);
        else if (opt == 'c')
            cold_runs = atoi(optarg);
        else
            goto usage;
    }
    if (optind != argc - 1 || runs < 1 || cold_runs < 1) goto usage;
    const char *module = argv[optind];

    char tmpl[] = "/tmp/wasmlet-startup-bench-XXXXXX";
    char *tmp = mkdtemp(tmpl);
    if (!tmp) die("mkdtemp", NULL);
    char *cache = xasprintf("%s/cache", tmp);
    err_t err;

    int64_t *open_ns = xcalloc((size_t)cold_runs, sizeof *open_ns);
    int64_t *cold_ns = xcalloc((size_t)cold_runs, sizeof *cold_ns);
    int64_t *disk_ns = xcalloc((size_t)cold_runs, sizeof *disk_ns);
    for (int i = 0; i < cold_runs; i++) {
        /* Cold: an empty cache dir, a fresh runtime. */
        fs_rm_rf(cache, NULL);
        wasmrt_options_t o = {.cache_dir = cache};
        wasmrt_t *rt;
        int64_t t0 = time_mono_ns();
        if (wasmrt_open(&o, &rt, &err) == -1) die("wasmrt_open", &err);
        open_ns[i] = time_mono_ns() - t0;
        wasmrt_module_t *mod;
        wasmrt_load_info_t info;
        if (wasmrt_load_file(rt, module, &mod, &info, &err) == -1) die(module, &err);
        if (info.source != WASMRT_FROM_COMPILER) die("cold load was not compiled", NULL);
        cold_ns[i] = info.load_ns;
        wasmrt_module_release(mod);
        wasmrt_close(rt);
        /* Disk: a fresh runtime (as a new process would be) on that cache. */
        if (wasmrt_open(&o, &rt, &err) == -1) die("wasmrt_open", &err);
        if (wasmrt_load_file(rt, module, &mod, &info, &err) == -1) die(module, &err);
        if (info.source != WASMRT_FROM_DISK) die("warm load was not from disk", NULL);
        disk_ns[i] = info.load_ns;
        wasmrt_module_release(mod);
        wasmrt_close(rt);
    }
    report("open", open_ns, (size_t)cold_runs);
    report("cold", cold_ns, (size_t)cold_runs);
    report("disk", disk_ns, (size_t)cold_runs);

    /* Warm: one runtime, the module held, many containers. */
    wasmrt_options_t o = {.cache_dir = cache};
    wasmrt_t *rt;
    if (wasmrt_open(&o, &rt, &err) == -1) die("wasmrt_open", &err);
    wasmrt_module_t *held;
    if (wasmrt_load_file(rt, module, &held, NULL, &err) == -1) die(module, &err);
    int64_t *mem_ns = xcalloc((size_t)runs, sizeof *mem_ns);
    int64_t *inst_ns = xcalloc((size_t)runs, sizeof *inst_ns);
    int64_t *run_ns = xcalloc((size_t)runs, sizeof *run_ns);
    int64_t *total_ns = xcalloc((size_t)runs, sizeof *total_ns);
    const char *args[] = {"hello"};
    wasmrt_spec_t spec = {.argv = args, .argc = 1, .output = discard};
    for (int i = 0; i < runs; i++) {
        wasmrt_module_t *mod;
        wasmrt_load_info_t info;
        if (wasmrt_load_file(rt, module, &mod, &info, &err) == -1) die(module, &err);
        mem_ns[i] = info.load_ns;
        wasmrt_result_t res;
        int64_t t0 = time_mono_ns();
        if (wasmrt_run(rt, mod, &spec, NULL, &res) == -1) die("wasmrt_run", NULL);
        total_ns[i] = time_mono_ns() - t0;
        if (res.outcome != WASMRT_EXITED || res.exit_code != 0) die("the module failed", NULL);
        inst_ns[i] = res.instantiate_ns;
        run_ns[i] = res.run_ns;
        wasmrt_module_release(mod);
    }
    report("memory", mem_ns, (size_t)runs);
    report("instantiate", inst_ns, (size_t)runs);
    report("run", run_ns, (size_t)runs);
    report("total", total_ns, (size_t)runs);
    wasmrt_module_release(held);
    wasmrt_close(rt);

    fs_rm_rf(tmp, NULL);
    free(cache);
    free(open_ns);
    free(cold_ns);
    free(disk_ns);
    free(mem_ns);
    free(inst_ns);
    free(run_ns);
    free(total_ns);
    return 0;
usage:
    fputs("usage: startup_bench [-n RUNS] [-c COLD_RUNS] MODULE.wasm\n", stderr);
    return 2;
}
