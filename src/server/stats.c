/* stats.c: GET /stats/summary and GET /metrics/resource, the node's and its
 * pods' resource use in the two shapes the resource metrics pipeline reads
 * (the kubelet's stats/v1alpha1 Summary, and the Prometheus text of
 * /metrics/resource), plus the CPU samples both need for rates.
 *
 * Where the numbers come from:
 *   node       util/proc.h: /proc/stat (CPU), /proc/meminfo and /proc/vmstat
 *              (memory), statvfs of the data dir (fs); the module store
 *              (imageFs)
 *   wasmlet    this process's CPU clock and resident set ("kubelet" system
 *              container)
 *   container  metrics/registry.h: the CPU clock of the thread running its
 *              module; memory is the linear memory size the runtime
 *              reports when a run ends, so a container in its first run has
 *              no memory figure yet (left out rather than invented)
 *   logs       disk used by the container's log files (rotation included)
 *   pod        sums of its containers; ephemeral-storage is logs plus the
 *              pod's directory (volumes, state)
 *
 * Rates (usageNanoCores) come from the sampler's latest snapshot
 * (sampler.h), as the kubelet's come from its housekeeping interval; every
 * other figure is read when the request comes, on its thread. */
#include "log/crilog.h"
#include "metrics/prom.h"
#include "metrics/registry.h"
#include "metrics/served.h"
#include "server/endpoints.h"
#include "util/fs.h"
#include "util/proc.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- /stats/summary ------------------------------------------------------ */

static json_t *jtime(int64_t ns)
{
    char buf[40];
    return json_string(time_format_rfc3339(buf, sizeof buf, ns));
}

static json_t *ju64(uint64_t v)
{
    return json_integer((json_int_t)v);
}

static json_t *fs_stats(const char *dir, int64_t now, const crilog_usage_t *used)
{
    json_t *o = json_pack("{s:o}", "time", jtime(now));
    proc_fs_t fs;
    if (dir && proc_fs_stat(dir, &fs) == 0) {
        json_object_set_new(o, "availableBytes", ju64(fs.available));
        json_object_set_new(o, "capacityBytes", ju64(fs.capacity));
        json_object_set_new(o, "inodesFree", ju64(fs.inodes_free));
        json_object_set_new(o, "inodes", ju64(fs.inodes));
        if (!used) {
            json_object_set_new(o, "usedBytes", ju64(fs.capacity - fs.free));
            json_object_set_new(o, "inodesUsed", ju64(fs.inodes - fs.inodes_free));
        }
    }
    if (used) {
        json_object_set_new(o, "usedBytes", ju64(used->used_bytes));
        json_object_set_new(o, "inodesUsed", ju64(used->inodes));
    }
    return o;
}

static json_t *cpu_stats(const server_rates_t *rt, const char *key, uint64_t total_ns, int64_t now)
{
    json_t *o = json_pack("{s:o, s:o}", "time", jtime(now), "usageCoreNanoSeconds", ju64(total_ns));
    uint64_t nc;
    if (server_rates_get(rt, key, &nc)) json_object_set_new(o, "usageNanoCores", ju64(nc));
    return o;
}

static json_t *mem_stats(uint64_t bytes, int64_t now)
{
    return json_pack("{s:o, s:o, s:o, s:o}", "time", jtime(now), "usageBytes", ju64(bytes),
                     "workingSetBytes", ju64(bytes), "rssBytes", ju64(bytes));
}

/* The sums of one pod's containers. */
typedef struct pod_acc {
    uint64_t cpu_ns, mem_bytes, logs_bytes, logs_inodes;
    bool any_mem;
} pod_acc_t;

static char *log_dir_of(const server_t *s, const server_pod_sample_t *p, const char *name)
{
    if (!s->logs_dir) return NULL;
    return name ? xasprintf("%s/%s_%s_%s/%s", s->logs_dir, p->ns, p->name, p->uid, name)
                : xasprintf("%s/%s_%s_%s", s->logs_dir, p->ns, p->name, p->uid);
}

/* One container's entry, or NULL when it never ran. */
static json_t *container_summary(server_t *s, const server_rates_t *rt,
                                 const server_pod_sample_t *p, const char *name, int64_t now,
                                 pod_acc_t *acc)
{
    metrics_usage_t u;
    if (!metrics_container_usage(p->uid, name, &u)) return NULL;
    char key[512];
    snprintf(key, sizeof key, "c/%s/%s", p->uid, name);
    json_t *c = json_pack("{s:s, s:o, s:o}", "name", name, "startTime", jtime(u.started_ns), "cpu",
                          cpu_stats(rt, key, u.cpu_ns, now));
    if (u.memory_known) {
        json_object_set_new(c, "memory", mem_stats(u.memory_bytes, now));
        acc->mem_bytes += u.memory_bytes;
        acc->any_mem = true;
    }
    char *dir = log_dir_of(s, p, name);
    crilog_usage_t lu = {0, 0};
    if (dir && crilog_usage(dir, &lu, NULL) == 0) {
        json_object_set_new(c, "logs", fs_stats(s->logs_dir, now, &lu));
        acc->logs_bytes += lu.used_bytes;
        acc->logs_inodes += lu.inodes;
    }
    free(dir);
    metrics_served_t sv;
    if (metrics_served_get(p->uid, name, &sv)) {
        /* A served wasi:http component's requests, as the Summary API's
         * user-defined metrics. */
        json_t *t = jtime(now);
        json_object_set_new(c, "userDefinedMetrics",
                            json_pack("[{s:s, s:s, s:s, s:O, s:f}, {s:s, s:s, s:s, s:O, s:f}, "
                                      "{s:s, s:s, s:s, s:O, s:f}]",
                                      "name", "served_requests", "type", "cumulative", "units",
                                      "requests", "time", t, "value", (double)sv.requests, "name",
                                      "served_request_errors", "type", "cumulative", "units",
                                      "requests", "time", t, "value", (double)sv.errors, "name",
                                      "served_request_seconds", "type", "cumulative", "units",
                                      "seconds", "time", t, "value", sv.seconds_sum));
        json_decref(t);
    }
    acc->cpu_ns += u.cpu_ns;
    return c;
}

static json_t *pod_summary(server_t *s, const server_rates_t *rt, const server_pod_sample_t *p,
                           int64_t now)
{
    pod_acc_t acc = {0};
    json_t *containers = json_array();
    for (size_t j = 0; j < p->containers.len; j++) {
        json_t *c = container_summary(s, rt, p, p->containers.items[j], now, &acc);
        if (c) json_array_append_new(containers, c);
    }
    json_t *pod = json_pack("{s:{s:s, s:s, s:s}, s:o}", "podRef", "name", p->name, "namespace",
                            p->ns, "uid", p->uid, "containers", containers);
    if (p->start_time) json_object_set_new(pod, "startTime", json_string(p->start_time));
    char key[256];
    snprintf(key, sizeof key, "p/%s", p->uid);
    json_object_set_new(pod, "cpu", cpu_stats(rt, key, acc.cpu_ns, now));
    if (acc.any_mem) json_object_set_new(pod, "memory", mem_stats(acc.mem_bytes, now));
    /* ephemeral-storage: logs plus the pod's own directory. */
    crilog_usage_t pu = {acc.logs_bytes, acc.logs_inodes};
    if (s->data_dir) {
        char *dir = xasprintf("%s/pods/%s", s->data_dir, p->uid);
        crilog_usage_t du = {0, 0};
        if (crilog_usage(dir, &du, NULL) == 0) {
            pu.used_bytes += du.used_bytes;
            pu.inodes += du.inodes;
        }
        free(dir);
    }
    json_object_set_new(pod, "ephemeral-storage",
                        fs_stats(s->data_dir ? s->data_dir : s->logs_dir, now, &pu));
    return pod;
}

/* The node's working set: what is in use less the page cache that could
 * be dropped, as the kubelet computes it. */
static uint64_t working_set(const proc_meminfo_t *m)
{
    uint64_t usage = m->total - m->free;
    return usage > m->inactive_file ? usage - m->inactive_file : 0;
}

static json_t *node_summary(server_t *s, const server_rates_t *rt, int64_t now)
{
    proc_meminfo_t m;
    proc_meminfo(&m);
    uint64_t ws = working_set(&m);
    json_t *mem =
        json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "time", jtime(now), "availableBytes",
                  ju64(m.total > ws ? m.total - ws : 0), "usageBytes", ju64(m.total - m.free),
                  "workingSetBytes", ju64(ws), "rssBytes", ju64(m.anon), "pageFaults",
                  ju64(m.pgfault), "majorPageFaults", ju64(m.pgmajfault));
    int64_t pstart = proc_self_start_ns();
    json_t *kubelet = json_pack("{s:s, s:o, s:o, s:o}", "name", "kubelet", "startTime",
                                jtime(pstart ? pstart : now), "cpu",
                                cpu_stats(rt, "kubelet", proc_self_cpu_ns(), now), "memory",
                                mem_stats(proc_self_rss_bytes(), now));
    json_t *node =
        json_pack("{s:s, s:[o], s:o, s:o, s:o}", "nodeName", s->node_name, "systemContainers",
                  kubelet, "startTime", jtime(proc_boot_time_s() * NS_PER_SEC), "cpu",
                  cpu_stats(rt, "node", proc_node_cpu_ns(), now), "memory", mem);
    if (s->data_dir) {
        json_object_set_new(node, "fs", fs_stats(s->data_dir, now, NULL));
        char *modules = fs_join(s->data_dir, "modules");
        crilog_usage_t mu = {0, 0};
        crilog_usage(modules, &mu, NULL);
        json_object_set_new(node, "runtime",
                            json_pack("{s:o}", "imageFs", fs_stats(s->data_dir, now, &mu)));
        free(modules);
    }
    return node;
}

/* The pods for stats, from the provider; false when it could not say. */
static bool pod_samples(server_t *s, server_pod_samples_t *out)
{
    const server_pods_t *pods = &s->pods;
    return pods->pod_samples && pods->pod_samples(pods->ctx, out) == 0;
}

void server_handle_stats_summary(server_t *s, http_req_t *r)
{
    int64_t now = time_now_ns();
    server_pod_samples_t ps = SERVER_POD_SAMPLES_INIT;
    pod_samples(s, &ps);
    server_rates_t *rt = server_sampler_rates(s->sampler);
    json_t *pods = json_array();
    for (size_t i = 0; i < ps.n; i++)
        json_array_append_new(pods, pod_summary(s, rt, &ps.items[i], now));
    json_t *sum = json_pack("{s:o, s:o}", "node", node_summary(s, rt, now), "pods", pods);
    server_rates_release(rt);
    server_pod_samples_free(&ps);
    char *body = json_dumps(sum, JSON_COMPACT);
    http_req_reply(r, 200, "application/json", body, strlen(body));
    free(body);
    json_decref(sum);
}

/* --- /metrics/resource ---------------------------------------------------- */

typedef struct res_ctx {
    strbuf_t cpu, mem, start, pcpu, pmem;
    long long ms;
} res_ctx_t;

static void res_labels(strbuf_t *sb, const char *metric, const server_pod_sample_t *p,
                       const char *container)
{
    strbuf_printf(sb, "%s{", metric);
    if (container) {
        strbuf_puts(sb, "container=\"");
        prom_label_value(sb, container);
        strbuf_puts(sb, "\",");
    }
    strbuf_puts(sb, "namespace=\"");
    prom_label_value(sb, p->ns);
    strbuf_puts(sb, "\",pod=\"");
    prom_label_value(sb, p->name);
    strbuf_puts(sb, "\"}");
}

/* The series of one pod's containers, then the pod's (when any of its
 * containers ran). */
static void res_pod(res_ctx_t *rc, const server_pod_sample_t *p)
{
    uint64_t cpu = 0, mem = 0;
    bool any = false, mem_known = false;
    for (size_t j = 0; j < p->containers.len; j++) {
        const char *name = p->containers.items[j];
        metrics_usage_t u;
        if (!metrics_container_usage(p->uid, name, &u)) continue;
        res_labels(&rc->cpu, "container_cpu_usage_seconds_total", p, name);
        strbuf_printf(&rc->cpu, " %.9f %lld\n", (double)u.cpu_ns / 1e9, rc->ms);
        if (u.memory_known) {
            res_labels(&rc->mem, "container_memory_working_set_bytes", p, name);
            strbuf_printf(&rc->mem, " %llu %lld\n", (unsigned long long)u.memory_bytes, rc->ms);
            mem += u.memory_bytes;
            mem_known = true;
        }
        res_labels(&rc->start, "container_start_time_seconds", p, name);
        strbuf_printf(&rc->start, " %.9f %lld\n", (double)u.started_ns / 1e9, rc->ms);
        cpu += u.cpu_ns;
        any = true;
    }
    if (!any) return;
    res_labels(&rc->pcpu, "pod_cpu_usage_seconds_total", p, NULL);
    strbuf_printf(&rc->pcpu, " %.9f %lld\n", (double)cpu / 1e9, rc->ms);
    if (mem_known) {
        res_labels(&rc->pmem, "pod_memory_working_set_bytes", p, NULL);
        strbuf_printf(&rc->pmem, " %lld %lld\n", (long long)mem, rc->ms);
    }
}

void server_handle_metrics_resource(server_t *s, http_req_t *r)
{
    int64_t now = time_now_ns();
    res_ctx_t rc = {STRBUF_INIT, STRBUF_INIT, STRBUF_INIT,
                    STRBUF_INIT, STRBUF_INIT, (long long)(now / NS_PER_MS)};
    server_pod_samples_t ps = SERVER_POD_SAMPLES_INIT;
    bool have_pods = pod_samples(s, &ps);
    for (size_t i = 0; i < ps.n; i++)
        res_pod(&rc, &ps.items[i]);
    server_pod_samples_free(&ps);
    proc_meminfo_t m;
    proc_meminfo(&m);

    strbuf_t out = STRBUF_INIT;
    prom_family(&out, "container_cpu_usage_seconds_total", "counter",
                "[STABLE] Cumulative cpu time consumed by the container in core-seconds");
    strbuf_puts(&out, strbuf_str(&rc.cpu));
    prom_family(&out, "container_memory_working_set_bytes", "gauge",
                "[STABLE] Current working set of the container in bytes");
    strbuf_puts(&out, strbuf_str(&rc.mem));
    prom_family(&out, "container_start_time_seconds", "gauge",
                "[STABLE] Start time of the container since unix epoch in seconds");
    strbuf_puts(&out, strbuf_str(&rc.start));
    prom_family(&out, "node_cpu_usage_seconds_total", "counter",
                "[STABLE] Cumulative cpu time consumed by the node in core-seconds");
    strbuf_printf(&out, "node_cpu_usage_seconds_total %.9f %lld\n",
                  (double)proc_node_cpu_ns() / 1e9, rc.ms);
    prom_family(&out, "node_memory_working_set_bytes", "gauge",
                "[STABLE] Current working set of the node in bytes");
    strbuf_printf(&out, "node_memory_working_set_bytes %llu %lld\n",
                  (unsigned long long)working_set(&m), rc.ms);
    prom_family(&out, "pod_cpu_usage_seconds_total", "counter",
                "[STABLE] Cumulative cpu time consumed by the pod in core-seconds");
    strbuf_puts(&out, strbuf_str(&rc.pcpu));
    prom_family(&out, "pod_memory_working_set_bytes", "gauge",
                "[STABLE] Current working set of the pod in bytes");
    strbuf_puts(&out, strbuf_str(&rc.pmem));
    prom_family(&out, "resource_scrape_error", "gauge",
                "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise");
    strbuf_printf(&out, "resource_scrape_error %d\n", have_pods || !s->pods.pod_samples ? 0 : 1);
    http_req_reply(r, 200, PROM_CONTENT_TYPE, strbuf_str(&out), out.len);
    strbuf_free(&out);
    strbuf_free(&rc.cpu);
    strbuf_free(&rc.mem);
    strbuf_free(&rc.start);
    strbuf_free(&rc.pcpu);
    strbuf_free(&rc.pmem);
}
