/* stats.c: GET /stats/summary and GET /metrics/resource, the node's and its
 * pods' resource use in the two shapes the resource metrics pipeline reads
 * (the kubelet's stats/v1alpha1 Summary, and the Prometheus text of
 * /metrics/resource), plus the CPU samples both need for rates.
 *
 * Where the numbers come from:
 *   node       /proc/stat (CPU), /proc/meminfo and /proc/vmstat (memory),
 *              statvfs of the data dir (fs), the module store (imageFs)
 *   wasmlet    this process's CPU clock and resident set ("kubelet" system
 *              container)
 *   container  metrics_registry: the CPU clock of the thread running its
 *              module; memory is the linear memory size the runtime
 *              reports when a run ends, so a container in its first run has
 *              no memory figure yet (left out rather than invented)
 *   logs       disk used by the container's log files (rotation included)
 *   pod        sums of its containers; ephemeral-storage is logs plus the
 *              pod's directory (volumes, state)
 *
 * Rates (usageNanoCores) come from two samples the loop takes every few
 * seconds (server_rates_sample), as the kubelet's come from its
 * housekeeping interval. */
#include "log/crilog.h"
#include "server/metrics_registry.h"
#include "server/server_internal.h"
#include "util/fs.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* --- host readings ---------------------------------------------------------- */

uint64_t server_node_cpu_ns(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 4) return 0;
    /* user nice system [idle iowait] irq softirq steal */
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? (uint64_t)busy * (uint64_t)(NS_PER_SEC / hz) : 0;
}

uint64_t server_process_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t process_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size = 0, rss = 0;
    int n = fscanf(f, "%llu %llu", &size, &rss);
    fclose(f);
    return n == 2 ? rss * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

/* Boot time (s since the epoch) from /proc/stat's btime. */
static int64_t boot_time_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    char line[512];
    long long bt = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %lld", &bt) == 1) break;
    fclose(f);
    return bt;
}

static int64_t process_start_ns(void)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return 0;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* after the command name, which may hold spaces */
    if (!p) return 0;
    unsigned long long start = 0;
    /* Fields 3..22 follow; starttime is field 22. */
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (++field == 22) {
            start = strtoull(tok, NULL, 10);
            break;
        }
    }
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0) return 0;
    return boot_time_s() * NS_PER_SEC + (int64_t)(start * (uint64_t)(NS_PER_SEC / hz));
}

typedef struct meminfo {
    uint64_t total, free, available, inactive_file, anon, pgfault, pgmajfault;
} meminfo_t;

static void read_meminfo(meminfo_t *m)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char key[64];
        unsigned long long kb;
        while (fscanf(f, "%63s %llu%*[^\n]", key, &kb) == 2) {
            uint64_t b = kb * 1024;
            if (strcmp(key, "MemTotal:") == 0)
                m->total = b;
            else if (strcmp(key, "MemFree:") == 0)
                m->free = b;
            else if (strcmp(key, "MemAvailable:") == 0)
                m->available = b;
            else if (strcmp(key, "Inactive(file):") == 0)
                m->inactive_file = b;
            else if (strcmp(key, "AnonPages:") == 0)
                m->anon = b;
        }
        fclose(f);
    }
    f = fopen("/proc/vmstat", "r");
    if (f) {
        char key[64];
        unsigned long long v;
        while (fscanf(f, "%63s %llu", key, &v) == 2) {
            if (strcmp(key, "pgfault") == 0)
                m->pgfault = v;
            else if (strcmp(key, "pgmajfault") == 0)
                m->pgmajfault = v;
        }
        fclose(f);
    }
}

/* --- rates ----------------------------------------------------------------- */

typedef struct rentry {
    char *key;
    int64_t t[2];
    uint64_t v[2];
    int n;
    unsigned gen;
    struct rentry *next;
} rentry_t;

struct server_rates {
    pthread_mutex_t mu;
    rentry_t *list;
    unsigned gen;
};

server_rates_t *server_rates_new(void)
{
    server_rates_t *rt = xcalloc(1, sizeof *rt);
    pthread_mutex_init(&rt->mu, NULL);
    return rt;
}

void server_rates_free(server_rates_t *rt)
{
    if (!rt) return;
    while (rt->list) {
        rentry_t *e = rt->list;
        rt->list = e->next;
        free(e->key);
        free(e);
    }
    pthread_mutex_destroy(&rt->mu);
    free(rt);
}

static void rates_put_locked(server_rates_t *rt, const char *key, int64_t t, uint64_t v)
{
    rentry_t *e = rt->list;
    while (e && strcmp(e->key, key) != 0)
        e = e->next;
    if (!e) {
        e = xcalloc(1, sizeof *e);
        e->key = xstrdup(key);
        e->next = rt->list;
        rt->list = e;
    }
    e->t[0] = e->t[1];
    e->v[0] = e->v[1];
    e->t[1] = t;
    e->v[1] = v;
    if (e->n < 2) e->n++;
    e->gen = rt->gen;
}

bool server_rates_get(server_rates_t *rt, const char *key, uint64_t *nanocores)
{
    bool ok = false;
    pthread_mutex_lock(&rt->mu);
    for (rentry_t *e = rt->list; e; e = e->next) {
        if (strcmp(e->key, key) != 0) continue;
        if (e->n == 2 && e->t[1] > e->t[0] && e->v[1] >= e->v[0]) {
            double cores = (double)(e->v[1] - e->v[0]) / (double)(e->t[1] - e->t[0]);
            *nanocores = (uint64_t)(cores * 1e9);
            ok = true;
        }
        break;
    }
    pthread_mutex_unlock(&rt->mu);
    return ok;
}

static const char *jstr(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    if (b) v = json_object_get(v, b);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Calls fn for every container (app and init) of every pod in list. */
typedef void (*container_fn)(void *ctx, json_t *pod, const char *uid, const char *name);

static void each_container(json_t *list, container_fn fn, void *ctx)
{
    size_t i;
    json_t *pod;
    json_array_foreach(json_object_get(list, "items"), i, pod)
    {
        const char *uid = jstr(pod, "metadata", "uid");
        if (!uid) continue;
        static const char *const kinds[] = {"initContainers", "containers"};
        for (int k = 0; k < 2; k++) {
            size_t j;
            json_t *c;
            json_array_foreach(json_object_get(json_object_get(pod, "spec"), kinds[k]), j, c)
            {
                const char *name = jstr(c, "name", NULL);
                if (name) fn(ctx, pod, uid, name);
            }
        }
    }
}

typedef struct sample_ctx {
    server_rates_t *rt;
    int64_t t;
    json_t *pod_cpu; /* uid -> integer ns */
} sample_ctx_t;

static void sample_container(void *ctx, json_t *pod, const char *uid, const char *name)
{
    (void)pod;
    sample_ctx_t *sc = ctx;
    metrics_usage_t u;
    if (!metrics_container_usage(uid, name, &u)) return;
    char key[512];
    snprintf(key, sizeof key, "c/%s/%s", uid, name);
    rates_put_locked(sc->rt, key, sc->t, u.cpu_ns);
    json_t *sum = json_object_get(sc->pod_cpu, uid);
    json_object_set_new(sc->pod_cpu, uid,
                        json_integer((json_integer_value(sum) + (json_int_t)u.cpu_ns)));
}

void server_rates_sample(server_t *s, server_rates_t *rt)
{
    const server_config_t *cfg = server_config(s);
    json_t *list = cfg->pods.pod_list ? cfg->pods.pod_list(cfg->pods.ctx) : NULL;
    int64_t t = time_mono_ns();
    uint64_t node = server_node_cpu_ns(), proc = server_process_cpu_ns();
    sample_ctx_t sc = {.rt = rt, .t = t, .pod_cpu = json_object()};
    pthread_mutex_lock(&rt->mu);
    rt->gen++;
    rates_put_locked(rt, "node", t, node);
    rates_put_locked(rt, "kubelet", t, proc);
    if (list) each_container(list, sample_container, &sc);
    const char *uid;
    json_t *v;
    json_object_foreach(sc.pod_cpu, uid, v)
    {
        char key[256];
        snprintf(key, sizeof key, "p/%s", uid);
        rates_put_locked(rt, key, t, (uint64_t)json_integer_value(v));
    }
    /* Forget what this sample did not see (pods that are gone). */
    rentry_t **pp = &rt->list;
    while (*pp) {
        rentry_t *e = *pp;
        if (e->gen != rt->gen) {
            *pp = e->next;
            free(e->key);
            free(e);
        } else {
            pp = &e->next;
        }
    }
    pthread_mutex_unlock(&rt->mu);
    json_decref(sc.pod_cpu);
    if (list) {
        size_t n = json_array_size(json_object_get(list, "items")), k = 0, i;
        const char **uids = xcalloc(n ? n : 1, sizeof *uids);
        json_t *pod;
        json_array_foreach(json_object_get(list, "items"), i, pod)
        {
            const char *u = jstr(pod, "metadata", "uid");
            if (u) uids[k++] = u;
        }
        metrics_forget_pods_except(uids, k);
        free(uids);
        json_decref(list);
    }
}

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
    struct statvfs st;
    if (dir && statvfs(dir, &st) == 0) {
        uint64_t bs = st.f_frsize;
        json_object_set_new(o, "availableBytes", ju64(st.f_bavail * bs));
        json_object_set_new(o, "capacityBytes", ju64(st.f_blocks * bs));
        json_object_set_new(o, "inodesFree", ju64(st.f_ffree));
        json_object_set_new(o, "inodes", ju64(st.f_files));
        if (!used) {
            json_object_set_new(o, "usedBytes", ju64((st.f_blocks - st.f_bfree) * bs));
            json_object_set_new(o, "inodesUsed", ju64(st.f_files - st.f_ffree));
        }
    }
    if (used) {
        json_object_set_new(o, "usedBytes", ju64(used->used_bytes));
        json_object_set_new(o, "inodesUsed", ju64(used->inodes));
    }
    return o;
}

static json_t *cpu_stats(server_rates_t *rt, const char *key, uint64_t total_ns, int64_t now)
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

typedef struct pod_acc {
    server_t *s;
    int64_t now;
    json_t *pods;    /* output array */
    json_t *current; /* the pod entry being built */
    const char *cur_uid;
    uint64_t cpu_ns, mem_bytes, logs_bytes, logs_inodes;
    bool any_mem, any;
} pod_acc_t;

static char *log_dir_of(const server_config_t *cfg, json_t *pod, const char *name)
{
    if (!cfg->logs_dir) return NULL;
    const char *ns = jstr(pod, "metadata", "namespace"), *pn = jstr(pod, "metadata", "name");
    const char *uid = jstr(pod, "metadata", "uid");
    if (!ns || !pn || !uid) return NULL;
    return name ? xasprintf("%s/%s_%s_%s/%s", cfg->logs_dir, ns, pn, uid, name)
                : xasprintf("%s/%s_%s_%s", cfg->logs_dir, ns, pn, uid);
}

static void summary_container(void *ctx, json_t *pod, const char *uid, const char *name)
{
    pod_acc_t *acc = ctx;
    const server_config_t *cfg = server_config(acc->s);
    metrics_usage_t u;
    if (!metrics_container_usage(uid, name, &u)) return;
    char key[512];
    snprintf(key, sizeof key, "c/%s/%s", uid, name);
    json_t *c = json_pack("{s:s, s:o, s:o}", "name", name, "startTime", jtime(u.started_ns), "cpu",
                          cpu_stats(server_rates(acc->s), key, u.cpu_ns, acc->now));
    if (u.memory_known) {
        json_object_set_new(c, "memory", mem_stats(u.memory_bytes, acc->now));
        acc->mem_bytes += u.memory_bytes;
        acc->any_mem = true;
    }
    char *dir = log_dir_of(cfg, pod, name);
    crilog_usage_t lu = {0, 0};
    if (dir && crilog_usage(dir, &lu, NULL) == 0) {
        json_object_set_new(c, "logs", fs_stats(cfg->logs_dir, acc->now, &lu));
        acc->logs_bytes += lu.used_bytes;
        acc->logs_inodes += lu.inodes;
    }
    free(dir);
    acc->cpu_ns += u.cpu_ns;
    acc->any = true;
    json_array_append_new(json_object_get(acc->current, "containers"), c);
}

static json_t *node_summary(server_t *s, int64_t now)
{
    const server_config_t *cfg = server_config(s);
    meminfo_t m;
    read_meminfo(&m);
    uint64_t usage = m.total - m.free;
    uint64_t ws = usage > m.inactive_file ? usage - m.inactive_file : 0;
    json_t *mem = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "time", jtime(now),
                            "availableBytes", ju64(m.total > ws ? m.total - ws : 0), "usageBytes",
                            ju64(usage), "workingSetBytes", ju64(ws), "rssBytes", ju64(m.anon),
                            "pageFaults", ju64(m.pgfault), "majorPageFaults", ju64(m.pgmajfault));
    int64_t pstart = process_start_ns();
    json_t *kubelet = json_pack("{s:s, s:o, s:o, s:o}", "name", "kubelet", "startTime",
                                jtime(pstart ? pstart : now), "cpu",
                                cpu_stats(server_rates(s), "kubelet", server_process_cpu_ns(), now),
                                "memory", mem_stats(process_rss_bytes(), now));
    json_t *node =
        json_pack("{s:s, s:[o], s:o, s:o, s:o}", "nodeName", cfg->node_name, "systemContainers",
                  kubelet, "startTime", jtime(boot_time_s() * NS_PER_SEC), "cpu",
                  cpu_stats(server_rates(s), "node", server_node_cpu_ns(), now), "memory", mem);
    if (cfg->data_dir) {
        json_object_set_new(node, "fs", fs_stats(cfg->data_dir, now, NULL));
        char *modules = fs_join(cfg->data_dir, "modules");
        crilog_usage_t mu = {0, 0};
        crilog_usage(modules, &mu, NULL);
        json_object_set_new(node, "runtime",
                            json_pack("{s:o}", "imageFs", fs_stats(cfg->data_dir, now, &mu)));
        free(modules);
    }
    return node;
}

static json_t *summary(server_t *s)
{
    const server_config_t *cfg = server_config(s);
    int64_t now = time_now_ns();
    json_t *list = cfg->pods.pod_list ? cfg->pods.pod_list(cfg->pods.ctx) : NULL;
    json_t *pods = json_array();
    size_t i;
    json_t *pod;
    json_array_foreach(json_object_get(list, "items"), i, pod)
    {
        const char *uid = jstr(pod, "metadata", "uid");
        const char *name = jstr(pod, "metadata", "name");
        const char *ns = jstr(pod, "metadata", "namespace");
        if (!uid || !name || !ns) continue;
        pod_acc_t acc = {.s = s, .now = now, .pods = pods};
        acc.current = json_pack("{s:{s:s, s:s, s:s}, s:[]}", "podRef", "name", name, "namespace",
                                ns, "uid", uid, "containers");
        const char *started = jstr(pod, "status", "startTime");
        if (started) json_object_set_new(acc.current, "startTime", json_string(started));
        json_t *one = json_pack("{s:[O]}", "items", pod);
        each_container(one, summary_container, &acc);
        json_decref(one);
        char key[256];
        snprintf(key, sizeof key, "p/%s", uid);
        json_object_set_new(acc.current, "cpu", cpu_stats(server_rates(s), key, acc.cpu_ns, now));
        if (acc.any_mem) json_object_set_new(acc.current, "memory", mem_stats(acc.mem_bytes, now));
        /* ephemeral-storage: logs plus the pod's own directory. */
        crilog_usage_t pu = {acc.logs_bytes, acc.logs_inodes};
        if (cfg->data_dir) {
            char *dir = xasprintf("%s/pods/%s", cfg->data_dir, uid);
            crilog_usage_t du = {0, 0};
            if (crilog_usage(dir, &du, NULL) == 0) {
                pu.used_bytes += du.used_bytes;
                pu.inodes += du.inodes;
            }
            free(dir);
        }
        json_object_set_new(acc.current, "ephemeral-storage",
                            fs_stats(cfg->data_dir ? cfg->data_dir : cfg->logs_dir, now, &pu));
        json_array_append_new(pods, acc.current);
    }
    json_decref(list);
    return json_pack("{s:o, s:o}", "node", node_summary(s, now), "pods", pods);
}

void server_handle_stats_summary(sreq_t *r)
{
    json_t *sum = summary(sreq_server(r));
    char *body = json_dumps(sum, JSON_COMPACT);
    sreq_reply(r, 200, "application/json", body, strlen(body));
    free(body);
    json_decref(sum);
}

/* --- /metrics/resource ---------------------------------------------------- */

typedef struct res_ctx {
    strbuf_t cpu, mem, start;
    json_t *pod_cpu; /* "ns\npod" -> [cpu_ns, mem_bytes, mem_known] */
    int64_t ms;
} res_ctx_t;

static void res_labels(strbuf_t *sb, const char *metric, json_t *pod, const char *name)
{
    strbuf_printf(sb, "%s{container=\"", metric);
    server_prom_label(sb, name);
    strbuf_puts(sb, "\",namespace=\"");
    server_prom_label(sb, jstr(pod, "metadata", "namespace"));
    strbuf_puts(sb, "\",pod=\"");
    server_prom_label(sb, jstr(pod, "metadata", "name"));
    strbuf_puts(sb, "\"}");
}

static void res_container(void *ctx, json_t *pod, const char *uid, const char *name)
{
    res_ctx_t *rc = ctx;
    metrics_usage_t u;
    if (!metrics_container_usage(uid, name, &u)) return;
    res_labels(&rc->cpu, "container_cpu_usage_seconds_total", pod, name);
    strbuf_printf(&rc->cpu, " %.9f %lld\n", (double)u.cpu_ns / 1e9, (long long)rc->ms);
    if (u.memory_known) {
        res_labels(&rc->mem, "container_memory_working_set_bytes", pod, name);
        strbuf_printf(&rc->mem, " %llu %lld\n", (unsigned long long)u.memory_bytes,
                      (long long)rc->ms);
    }
    res_labels(&rc->start, "container_start_time_seconds", pod, name);
    strbuf_printf(&rc->start, " %.9f %lld\n", (double)u.started_ns / 1e9, (long long)rc->ms);
    json_t *acc = json_object_get(rc->pod_cpu, uid);
    if (!acc) {
        acc = json_pack("{s:O, s:I, s:I, s:b}", "pod", pod, "cpu", (json_int_t)0, "mem",
                        (json_int_t)0, "mem_known", 0);
        json_object_set_new(rc->pod_cpu, uid, acc);
    }
    json_object_set_new(
        acc, "cpu",
        json_integer(json_integer_value(json_object_get(acc, "cpu")) + (json_int_t)u.cpu_ns));
    if (u.memory_known) {
        json_object_set_new(acc, "mem",
                            json_integer(json_integer_value(json_object_get(acc, "mem")) +
                                         (json_int_t)u.memory_bytes));
        json_object_set_new(acc, "mem_known", json_true());
    }
}

void server_handle_metrics_resource(sreq_t *r)
{
    const server_config_t *cfg = server_config(sreq_server(r));
    int64_t now = time_now_ns();
    res_ctx_t rc = {STRBUF_INIT, STRBUF_INIT, STRBUF_INIT, json_object(), now / NS_PER_MS};
    json_t *list = cfg->pods.pod_list ? cfg->pods.pod_list(cfg->pods.ctx) : NULL;
    if (list) each_container(list, res_container, &rc);
    meminfo_t m;
    read_meminfo(&m);
    uint64_t usage = m.total - m.free;
    uint64_t ws = usage > m.inactive_file ? usage - m.inactive_file : 0;

    strbuf_t out = STRBUF_INIT;
    strbuf_printf(&out,
                  "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed "
                  "by the container in core-seconds\n"
                  "# TYPE container_cpu_usage_seconds_total counter\n%s",
                  strbuf_str(&rc.cpu));
    strbuf_printf(&out,
                  "# HELP container_memory_working_set_bytes [STABLE] Current working set of the "
                  "container in bytes\n"
                  "# TYPE container_memory_working_set_bytes gauge\n%s",
                  strbuf_str(&rc.mem));
    strbuf_printf(&out,
                  "# HELP container_start_time_seconds [STABLE] Start time of the container since "
                  "unix epoch in seconds\n"
                  "# TYPE container_start_time_seconds gauge\n%s",
                  strbuf_str(&rc.start));
    strbuf_printf(&out,
                  "# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by "
                  "the node in core-seconds\n"
                  "# TYPE node_cpu_usage_seconds_total counter\n"
                  "node_cpu_usage_seconds_total %.9f %lld\n",
                  (double)server_node_cpu_ns() / 1e9, (long long)rc.ms);
    strbuf_printf(&out,
                  "# HELP node_memory_working_set_bytes [STABLE] Current working set of the node "
                  "in bytes\n"
                  "# TYPE node_memory_working_set_bytes gauge\n"
                  "node_memory_working_set_bytes %llu %lld\n",
                  (unsigned long long)ws, (long long)rc.ms);
    strbuf_t pcpu = STRBUF_INIT, pmem = STRBUF_INIT;
    const char *uid;
    json_t *acc;
    json_object_foreach(rc.pod_cpu, uid, acc)
    {
        json_t *pod = json_object_get(acc, "pod");
        strbuf_t *bufs[2] = {&pcpu, &pmem};
        for (int k = 0; k < 2; k++) {
            if (k == 1 && !json_is_true(json_object_get(acc, "mem_known"))) continue;
            strbuf_printf(bufs[k], "%s{namespace=\"",
                          k == 0 ? "pod_cpu_usage_seconds_total" : "pod_memory_working_set_bytes");
            server_prom_label(bufs[k], jstr(pod, "metadata", "namespace"));
            strbuf_puts(bufs[k], "\",pod=\"");
            server_prom_label(bufs[k], jstr(pod, "metadata", "name"));
            strbuf_puts(bufs[k], "\"}");
        }
        strbuf_printf(&pcpu, " %.9f %lld\n",
                      (double)json_integer_value(json_object_get(acc, "cpu")) / 1e9,
                      (long long)rc.ms);
        if (json_is_true(json_object_get(acc, "mem_known")))
            strbuf_printf(&pmem, " %lld %lld\n",
                          (long long)json_integer_value(json_object_get(acc, "mem")),
                          (long long)rc.ms);
    }
    strbuf_printf(&out,
                  "# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the "
                  "pod in core-seconds\n"
                  "# TYPE pod_cpu_usage_seconds_total counter\n%s",
                  strbuf_str(&pcpu));
    strbuf_printf(&out,
                  "# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in "
                  "bytes\n"
                  "# TYPE pod_memory_working_set_bytes gauge\n%s",
                  strbuf_str(&pmem));
    strbuf_puts(&out, "# HELP resource_scrape_error [STABLE] 1 if there was an error while getting "
                      "container metrics, 0 otherwise\n"
                      "# TYPE resource_scrape_error gauge\n");
    strbuf_printf(&out, "resource_scrape_error %d\n", list || !cfg->pods.pod_list ? 0 : 1);
    sreq_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", strbuf_str(&out), out.len);
    strbuf_free(&out);
    strbuf_free(&pcpu);
    strbuf_free(&pmem);
    strbuf_free(&rc.cpu);
    strbuf_free(&rc.mem);
    strbuf_free(&rc.start);
    json_decref(rc.pod_cpu);
    json_decref(list);
}
