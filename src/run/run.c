/* run.c: `wasmlet run -f pod.yaml`.
 *
 * Reads the manifest (YAML or JSON, the first Pod in it), checks it as the
 * API server and kubelet would, and runs it with a pod worker whose host
 * callbacks suit a terminal: images are local module files (a path, or
 * file:///path; relative paths start at the manifest's directory), a pull
 * or configuration error ends the container at once instead of being
 * retried, each line a container writes is printed with its name in front,
 * and Events go to the diagnostic log (-v shows them). The pod's emptyDir
 * volumes live in a temporary directory removed at the end; compiled
 * modules are cached in the data dir so the next run starts warm.
 *
 * Exit status: 0 when the pod Succeeded, 1 when it Failed, 2 for a bad
 * command line (a numeric option that is not a number included, util/cli.h)
 * or manifest. A summary line per container says how it
 * ended. SIGINT or SIGTERM stops the pod (exit code 137 for its containers). */
#include "run/run.h"
#include "kube/manifest.h"
#include "kube/pod_spec.h"
#include "pod/worker.h"
#include "util/cli.h"
#include "util/diag.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/time.h"
#include "util/xalloc.h"
#include "wasm/wasmrt.h"

#include <getopt.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct run_ctx {
    char *manifest_dir;
    bool prefix; /* print "[name] " before each line */
    pthread_mutex_t out_lock;
} run_ctx_t;

static int pull_local(void *ctx, const podspec_t *pod, const podspec_container_t *c,
                      pod_pulled_t *out, err_t *err)
{
    (void)pod;
    run_ctx_t *r = ctx;
    const char *image = c->image;
    if (strncmp(image, "file://", 7) == 0) image += 7;
    char *path = image[0] == '/' ? xstrdup(image) : fs_join(r->manifest_dir, image);
    if (access(path, R_OK) != 0) {
        err_errno(err, "image %s: module file %s", c->image, path);
        free(path);
        return -1;
    }
    out->module_path = path;
    out->image_id = NULL; /* the worker reports the module's digest */
    return 0;
}

static void on_output(void *ctx, pod_worker_t *w, const char *container, int stream,
                      const char *line, size_t len)
{
    (void)w;
    run_ctx_t *r = ctx;
    FILE *f = stream == 2 ? stderr : stdout;
    pthread_mutex_lock(&r->out_lock);
    if (r->prefix) fprintf(f, "[%s] ", container);
    fwrite(line, 1, len, f);
    fputc('\n', f);
    fflush(f);
    pthread_mutex_unlock(&r->out_lock);
}

static void on_event(void *ctx, pod_worker_t *w, const char *type, const char *reason,
                     const char *field_path, const char *message)
{
    (void)ctx;
    (void)w;
    (void)type;
    (void)field_path;
    diag_debug("event %s: %s", reason, message);
}

static void usage(FILE *f)
{
    fputs("usage: wasmlet run -f POD.yaml [options]\n"
          "  -f, --filename FILE     the Pod manifest (YAML or JSON)\n"
          "      --data-dir DIR      compiled-module cache and pod files\n"
          "                          (default $WASMLET_DATA or ~/.cache/wasmlet)\n"
          "      --logs-dir DIR      also keep CRI-format container logs here\n"
          "      --backoff-initial MS  first CrashLoopBackOff delay (default 10000)\n"
          "      --backoff-max MS      longest delay (default 300000)\n"
          "      --max-wasm-stack BYTES  WebAssembly call stack of a container\n"
          "                          (default 8388608, as Go's wasip1 runner gives)\n"
          "      --max-open-files N  host descriptors a container may hold (default\n"
          "                          1024; 0: no cap; wasmlet.dev/max-open-files overrides)\n"
          "      --no-prefix         print container output without [name]\n"
          "  -v, --verbose           show events and timings\n",
          f);
}

static volatile sig_atomic_t got_signal;
static void on_signal(int sig)
{
    got_signal = sig;
}

int run_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"filename", required_argument, NULL, 'f'},
        {"data-dir", required_argument, NULL, 'd'},
        {"logs-dir", required_argument, NULL, 'l'},
        {"backoff-initial", required_argument, NULL, 'b'},
        {"backoff-max", required_argument, NULL, 'B'},
        {"no-prefix", no_argument, NULL, 'P'},
        {"max-wasm-stack", required_argument, NULL, 'S'},
        {"max-open-files", required_argument, NULL, 'F'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *data_dir = getenv("WASMLET_DATA"), *logs_dir = NULL;
    int64_t backoff_initial = 10000, backoff_max = 300000;
    int64_t max_wasm_stack = (int64_t)WASMRT_DEFAULT_MAX_WASM_STACK;
    int64_t max_open_files = WASMRT_DEFAULT_MAX_OPEN_FILES;
    bool prefix = true;
    int opt;
    optind = 1;
    diag_set_level(DIAG_WARN); /* events and timings with -v */
    while ((opt = getopt_long(argc, argv, "f:vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'f':
            file = optarg;
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 'l':
            logs_dir = optarg;
            break;
        case 'b':
            if (cli_parse_int("run", "backoff-initial", optarg, 0, INT64_C(86400000),
                              &backoff_initial) == -1)
                return CLI_USAGE_ERROR;
            break;
        case 'B':
            if (cli_parse_int("run", "backoff-max", optarg, 0, INT64_C(86400000), &backoff_max) ==
                -1)
                return CLI_USAGE_ERROR;
            break;
        case 'P':
            prefix = false;
            break;
        case 'S':
            if (cli_parse_int("run", "max-wasm-stack", optarg, 65536, INT64_C(1) << 30,
                              &max_wasm_stack) == -1)
                return CLI_USAGE_ERROR;
            break;
        case 'F':
            if (cli_parse_int("run", "max-open-files", optarg, 0, 1048576, &max_open_files) == -1)
                return CLI_USAGE_ERROR;
            break;
        case 'v':
            diag_set_level(DIAG_DEBUG);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!file || optind != argc) {
        usage(stderr);
        return 2;
    }

    err_t err;
    json_t *docs = NULL;
    if (manifest_load_file(file, &docs, &err) == -1) {
        fprintf(stderr, "wasmlet run: %s\n", err.msg);
        return 2;
    }
    json_t *pod = json_array_get(docs, 0);
    podspec_t *spec = NULL;
    if (!pod || podspec_parse(pod, &spec, &err) == -1) {
        fprintf(stderr, "wasmlet run: %s: %s\n", file, pod ? err.msg : "no document in the file");
        json_decref(docs);
        return 2;
    }
    json_decref(docs);

    char *home_cache = NULL;
    if (!data_dir) {
        const char *home = getenv("HOME");
        home_cache = xasprintf("%s/.cache/wasmlet", home ? home : "/tmp");
        data_dir = home_cache;
    }
    char *compiled = xasprintf("%s/modules/compiled", data_dir);
    char tmpl[] = "/tmp/wasmlet-run-XXXXXX";
    char *pods_dir = mkdtemp(tmpl);
    wasmrt_t *rt = NULL;
    int status = 2;
    if (!pods_dir) {
        fprintf(stderr, "wasmlet run: cannot create a temporary directory\n");
        goto out;
    }
    wasmrt_options_t ro = {.cache_dir = compiled, .max_wasm_stack = (size_t)max_wasm_stack};
    if (wasmrt_open(&ro, &rt, &err) == -1) {
        fprintf(stderr, "wasmlet run: %s\n", err.msg);
        goto out;
    }

    char *file_copy = xstrdup(file);
    run_ctx_t r = {.manifest_dir = xstrdup(dirname(file_copy)), .prefix = prefix};
    free(file_copy);
    pthread_mutex_init(&r.out_lock, NULL);
    pod_host_t host = {
        .ctx = &r,
        .rt = rt,
        .data_dir = pods_dir,
        .logs_dir = logs_dir,
        .node_name = "localhost",
        .host_ip = "127.0.0.1",
        .serve_addr = "127.0.0.1",
        .backoff_initial_ms = backoff_initial,
        .backoff_max_ms = backoff_max,
        .give_up_on_setup_error = true,
        .node_allocatable_cpu = sysconf(_SC_NPROCESSORS_ONLN) * 1000,
        .node_allocatable_memory =
            (int64_t)sysconf(_SC_PHYS_PAGES) * (int64_t)sysconf(_SC_PAGESIZE),
        .max_open_files = max_open_files,
        .pull = pull_local,
        .event = on_event,
        .output = on_output,
    };

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int64_t t0 = time_mono_ns();
    char name[256];
    snprintf(name, sizeof name, "%s", spec->name);
    pod_worker_t *w = pod_worker_start(&host, spec, NULL);
    while (!pod_worker_wait(w, 100)) {
        if (got_signal) {
            fprintf(stderr, "wasmlet run: signal %d: stopping pod %s\n", (int)got_signal, name);
            pod_worker_stop(w, NULL, NULL);
            got_signal = 0;
        }
    }
    const char *phase = pod_worker_phase(w);
    pod_container_summary_t sums[64];
    size_t n = pod_worker_summaries(w, sums, 64);
    json_t *st = pod_worker_status_json(w);
    const char *why = json_str_at(st, "reason");
    const char *what = json_str_at(st, "message");
    fprintf(stderr, "pod %s: %s", name, phase);
    if (why) fprintf(stderr, " (%s%s%s)", why, what ? ": " : "", what ? what : "");
    fprintf(stderr, " in %.3fs\n", (double)(time_mono_ns() - t0) / 1e9);
    json_decref(st);
    for (size_t i = 0; i < n; i++) {
        fprintf(stderr, "  %s%s: exit %d, %s, %.3fs, %d restart%s%s%s\n",
                sums[i].init ? "init " : "", sums[i].name, sums[i].exit_code,
                sums[i].reason[0] ? sums[i].reason : "-", (double)sums[i].run_ns / 1e9,
                sums[i].restart_count, sums[i].restart_count == 1 ? "" : "s",
                sums[i].message[0] ? ": " : "", sums[i].message);
    }
    status = strcmp(phase, "Succeeded") == 0 ? 0 : 1;
    pod_worker_free(w);
    pthread_mutex_destroy(&r.out_lock);
    free(r.manifest_dir);
out:
    wasmrt_close(rt);
    if (pods_dir) fs_rm_rf(pods_dir, NULL);
    free(compiled);
    free(home_cache);
    if (!pods_dir || !rt) podspec_free(spec);
    return status;
}
