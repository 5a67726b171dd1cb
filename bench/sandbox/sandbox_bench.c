/* sandbox_bench.c: what a pod's network sandbox costs (bench/sandbox/run.sh).
 *
 * Creates N sandboxes one after the other with wasmlet's default network
 * config (ptp with wasmlet's addresses through "static" IPAM; its portmap
 * runs only for a hostPort, and these pods have none) over a /22 of the
 * benchmarking block, keeps them all, then destroys them, and prints:
 *   - the time of each step of a create: the namespace alone (net_ns_create,
 *     measured on its own namespaces) and the whole create (state, namespace,
 *     CNI ADD of ptp and static), and of a destroy (CNI DEL, unmount);
 *   - the memory they hold while they exist: the machine's MemAvailable,
 *     Slab and (when it is readable) the kernel's per-namespace figures,
 *     before and with the N sandboxes, per sandbox; and this process's RSS
 *     (the sandboxes cost wasmlet nothing in user space).
 *   - how a create and a destroy change as sandboxes accumulate: their
 *     medians over each fifth of the N (the k-th fifth made while k-1
 *     fifths were held; destroyed in the order made, so the last fifth
 *     goes with the fewest left);
 *   - with -t, the wall time of each plugin call, per plugin and command and
 *     per fifth: the plugins are run through timing wrappers (a shell and
 *     two date(1) calls each, so these figures, and the create and destroy
 *     times of that run, include a few ms of wrapper; the IPAM plugin
 *     runs inside ptp, so ptp's time includes it).
 * Output: one "name key=value ..." line per figure, times in microseconds
 * (median, p90), memory in KiB.
 *
 * Usage: sandbox_bench [-n N] [-b PLUGIN_DIR] [-t]. Needs root and the plugins.
 * Traffic: none (no packet is sent). Addresses come from 198.18.20.0/22,
 * inside 198.18.16.0/20, the part of the benchmarking block the local
 * cluster leaves to tests; the net unit tests' lock keeps runs apart. */
#include "net/net.h"
#include "util/fs.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define BENCH_CIDR "198.18.20.0/22"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The medians of each fifth of ns[0..n) (before report sorts it). */
static void report_fifths(const char *name, const int64_t *ns, int n)
{
    printf("%s n=%d medians_by_fifth=", name, n);
    for (int k = 0; k < 5; k++) {
        int lo = n * k / 5, hi = n * (k + 1) / 5;
        if (hi - lo < 1) continue;
        int64_t *part = xcalloc((size_t)(hi - lo), sizeof *part);
        memcpy(part, ns + lo, (size_t)(hi - lo) * sizeof *part);
        qsort(part, (size_t)(hi - lo), sizeof *part, cmp_i64);
        printf("%s%lld", k ? "," : "", (long long)(part[(hi - lo) / 2] / 1000));
        free(part);
    }
    printf("\n");
}

static void report(const char *name, int64_t *ns, int n)
{
    qsort(ns, (size_t)n, sizeof *ns, cmp_i64);
    printf("%s n=%d median=%lld p90=%lld min=%lld\n", name, n, (long long)(ns[n / 2] / 1000),
           (long long)(ns[(n * 9) / 10] / 1000), (long long)(ns[0] / 1000));
}

/* A field of /proc/meminfo in KiB. */
static long long meminfo(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    long long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') v = atoll(line + kl + 1);
    fclose(f);
    return v;
}

static long long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = atoll(line + 6);
    fclose(f);
    return v;
}

#define PLUGINS 4
static const char *const plugin_names[PLUGINS] = {"ptp", "static", "host-local", "portmap"};

/* Writes into wrap_dir, for each plugin, a wrapper that runs the real one
 * from real_dir and appends "plugin command microseconds" to log. */
static int write_wrappers(const char *wrap_dir, const char *real_dir, const char *log, err_t *err)
{
    if (fs_mkdir_p(wrap_dir, 0755, err) == -1) return -1;
    for (int i = 0; i < PLUGINS; i++) {
        char *path = fs_join(wrap_dir, plugin_names[i]);
        char *text = xasprintf("#!/bin/sh\n"
                               "t0=$(date +%%s%%N)\n"
                               "%s/%s \"$@\"\n"
                               "rc=$?\n"
                               "t1=$(date +%%s%%N)\n"
                               "echo \"%s $CNI_COMMAND $(( (t1 - t0) / 1000 ))\" >>%s\n"
                               "exit $rc\n",
                               real_dir, plugin_names[i], plugin_names[i], log);
        int rc = fs_write_atomic(path, text, strlen(text), 0755, err);
        free(text);
        free(path);
        if (rc == -1) return -1;
    }
    return 0;
}

/* Reads the wrappers' log and prints each plugin's ADD and DEL times. */
static void report_plugins(const char *log)
{
    for (int i = 0; i < PLUGINS; i++) {
        for (int cmd = 0; cmd < 2; cmd++) {
            const char *want = cmd ? "DEL" : "ADD";
            FILE *f = fopen(log, "r");
            if (!f) return;
            int64_t *ns = NULL;
            int n = 0, cap = 0;
            char line[256], name[64], command[16];
            long long us;
            while (fgets(line, sizeof line, f)) {
                if (sscanf(line, "%63s %15s %lld", name, command, &us) != 3) continue;
                if (strcmp(name, plugin_names[i]) || strcmp(command, want)) continue;
                if (n == cap) ns = xrealloc(ns, (size_t)(cap = cap ? cap * 2 : 256) * sizeof *ns);
                ns[n++] = us * 1000;
            }
            fclose(f);
            if (n >= 5) {
                char label[96];
                snprintf(label, sizeof label, "plugin_%s_%s_us", plugin_names[i], want);
                report_fifths(label, ns, n);
            }
            free(ns);
        }
    }
}

int main(int argc, char **argv)
{
    int n = 100;
    const char *bins[3] = {"/usr/lib/cni", "/opt/cni/bin", NULL};
    bool timed = false;
    int opt;
    while ((opt = getopt(argc, argv, "n:b:t")) != -1) {
        if (opt == 'n')
            n = atoi(optarg);
        else if (opt == 'b')
            bins[0] = optarg, bins[1] = NULL;
        else if (opt == 't')
            timed = true;
        else {
            fprintf(stderr, "usage: sandbox_bench [-n N] [-b PLUGIN_DIR] [-t]\n");
            return 2;
        }
    }
    if (n < 2 || n > 1000) {
        fprintf(stderr, "sandbox_bench: -n from 2 to 1000\n");
        return 2;
    }
    int lock = open("/tmp/wasmlet-test-net.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (lock >= 0) flock(lock, LOCK_EX);
    char tmpl[] = "/tmp/wasmlet-bench-sandbox-XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir) return 1;
    char *conf = fs_join(dir, "net.d"), *run = fs_join(dir, "netns"),
         *state = fs_join(dir, "sandboxes"), *nsonly = fs_join(dir, "nsonly");
    err_t err;
    fs_mkdir_p(conf, 0755, &err);
    char *file = fs_join(conf, "10-wasmlet.conflist");
    net_default_opts_t o = {BENCH_CIDR, "wasmlet-bench", false};
    net_ipam_t *ipam = NULL;
    if (net_ipam_new(BENCH_CIDR, &ipam, &err) == -1) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (net_default_conf_write(file, &o, &err) == -1) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    char *wraps = fs_join(dir, "plugins"), *plugin_log = fs_join(dir, "plugins.log");
    if (timed) {
        /* The wrappers run the plugins of the first dir that has ptp. */
        const char *real = bins[0];
        for (int i = 0; bins[i]; i++) {
            char *ptp = fs_join(bins[i], "ptp");
            bool here = access(ptp, X_OK) == 0;
            free(ptp);
            if (here) {
                real = bins[i];
                break;
            }
        }
        if (write_wrappers(wraps, real, plugin_log, &err) == -1) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        bins[0] = wraps, bins[1] = NULL;
    }
    net_config_t cfg = {conf, bins, run, state,
                        0,    ipam, true}; /* the default list, as the node has it */
    int64_t *t_ns = xcalloc((size_t)n, sizeof *t_ns), *t_add = xcalloc((size_t)n, sizeof *t_add),
            *t_del = xcalloc((size_t)n, sizeof *t_del),
            *t_nsdel = xcalloc((size_t)n, sizeof *t_nsdel);
    char **ids = xcalloc((size_t)n, sizeof *ids);
    int rc = 1, made = 0;

    /* The namespace alone (create + delete), on namespaces of its own. */
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "ns-%d", i);
        char *path = NULL;
        int64_t t0 = time_mono_ns();
        if (net_ns_create(nsonly, name, &path, &err) == -1) goto fail;
        t_ns[i] = time_mono_ns() - t0;
        t0 = time_mono_ns();
        net_ns_delete(path, NULL);
        t_nsdel[i] = time_mono_ns() - t0;
        free(path);
    }
    net_ns_run_dir_release(nsonly, NULL);

    time_sleep_ms(500);
    long long avail0 = meminfo("MemAvailable"), slab0 = meminfo("Slab"),
              unrecl0 = meminfo("SUnreclaim"), rss0 = rss_kib();
    for (int i = 0; i < n; i++) {
        char id[NET_SANDBOX_ID_MAX + 1];
        net_sandbox_new_id(id);
        ids[i] = xstrdup(id);
        char uid[64];
        snprintf(uid, sizeof uid, "bench-%d", i);
        net_pod_t pod = {"bench", uid, uid, NULL, 0};
        net_sandbox_t *sb = NULL;
        int64_t t0 = time_mono_ns();
        if (net_sandbox_create(&cfg, id, &pod, &sb, &err) == -1) goto fail;
        t_add[i] = time_mono_ns() - t0;
        net_sandbox_free(sb);
        made++;
    }
    time_sleep_ms(500);
    long long avail1 = meminfo("MemAvailable"), slab1 = meminfo("Slab"),
              unrecl1 = meminfo("SUnreclaim"), rss1 = rss_kib();
    for (int i = 0; i < n; i++) {
        int64_t t0 = time_mono_ns();
        if (net_sandbox_destroy(&cfg, ids[i], &err) == -1) goto fail;
        t_del[i] = time_mono_ns() - t0;
        made--;
    }
    report("netns_create_us", t_ns, n);
    report("netns_delete_us", t_nsdel, n);
    report_fifths("sandbox_create_us", t_add, n);
    report_fifths("sandbox_destroy_us", t_del, n);
    report("sandbox_create_us", t_add, n);
    report("sandbox_destroy_us", t_del, n);
    if (timed) report_plugins(plugin_log);
    printf("memory n=%d mem_available_drop_kib_per_sandbox=%.1f slab_kib_per_sandbox=%.1f "
           "slab_unreclaimable_kib_per_sandbox=%.1f process_rss_kib_per_sandbox=%.2f\n",
           n, (double)(avail0 - avail1) / n, (double)(slab1 - slab0) / n,
           (double)(unrecl1 - unrecl0) / n, (double)(rss1 - rss0) / n);
    rc = 0;
fail:
    if (rc) fprintf(stderr, "sandbox_bench: %s\n", err.msg);
    for (int i = 0; i < n; i++)
        if (ids[i]) net_sandbox_destroy(&cfg, ids[i], NULL);
    net_ns_run_dir_release(run, NULL);
    net_ns_run_dir_release(nsonly, NULL);
    fs_rm_rf(dir, NULL);
    free(wraps);
    free(plugin_log);
    net_ipam_free(ipam);
    (void)made;
    return rc;
}
