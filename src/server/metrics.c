/* metrics.c: GET /metrics, the node's own metrics in the Prometheus text
 * format (version 0.0.4).
 *
 * Names follow the kubelet's where a kubelet metric means the same thing
 * (kubelet_running_pods, kubelet_pod_start_duration_seconds,
 * rest_client_requests_total, the certificate managers' TTLs), so existing
 * dashboards and alerts work; what only wasmlet has is wasmlet_*. Every
 * family has HELP and TYPE, counters end in _total, and units are base
 * units, so `promtool check metrics` passes. The text is built fresh for
 * each scrape from snapshots: pod manager counters, the registry
 * (metrics_registry.h), the API client's request counters, the image
 * store and the runtime. */
#include "kube/client.h"
#include "server/metrics_registry.h"
#include "server/server_internal.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef WASMLET_VERSION
#define WASMLET_VERSION "dev"
#endif

void server_prom_label(strbuf_t *sb, const char *v)
{
    for (; v && *v; v++) {
        if (*v == '\\')
            strbuf_puts(sb, "\\\\");
        else if (*v == '"')
            strbuf_puts(sb, "\\\"");
        else if (*v == '\n')
            strbuf_puts(sb, "\\n");
        else
            strbuf_putc(sb, *v);
    }
}

static void family(strbuf_t *sb, const char *name, const char *type, const char *help)
{
    strbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(strbuf_t *sb, const char *name, const char *labels, const double *bounds,
                      size_t nb, const uint64_t *cumulative, uint64_t count, double sum)
{
    const char *sep = labels && *labels ? "," : "";
    for (size_t i = 0; i < nb; i++)
        strbuf_printf(sb, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels ? labels : "", sep,
                      bounds[i], (unsigned long long)cumulative[i]);
    strbuf_printf(sb, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels ? labels : "", sep,
                  (unsigned long long)count);
    if (labels && *labels) {
        strbuf_printf(sb, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name, labels, sum, name, labels,
                      (unsigned long long)count);
    } else {
        strbuf_printf(sb, "%s_sum %.9g\n%s_count %llu\n", name, sum, name,
                      (unsigned long long)count);
    }
}

static size_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* the directory itself */
}

static void pods_section(strbuf_t *sb, const server_config_t *cfg, const metrics_snapshot_t *m)
{
    pod_manager_stats_t ps = {0};
    if (cfg->pods.stats) cfg->pods.stats(cfg->pods.ctx, &ps);
    family(sb, "kubelet_running_pods", "gauge", "Number of pods that have a running container.");
    strbuf_printf(sb, "kubelet_running_pods %llu\n", (unsigned long long)ps.pods_running);
    family(sb, "kubelet_running_containers", "gauge", "Number of containers by state.");
    strbuf_printf(sb, "kubelet_running_containers{container_state=\"running\"} %llu\n",
                  (unsigned long long)ps.containers_running);
    family(sb, "kubelet_started_pods_total", "counter", "Pods this node started.");
    strbuf_printf(sb, "kubelet_started_pods_total %llu\n", (unsigned long long)ps.pods_started);
    family(sb, "wasmlet_pod_admission_rejections_total", "counter",
           "Pods rejected at admission because they did not fit the node.");
    strbuf_printf(sb, "wasmlet_pod_admission_rejections_total %llu\n",
                  (unsigned long long)ps.admission_rejected);
    family(sb, "wasmlet_pod_status_updates_total", "counter",
           "Pod status writes to the API server, by result.");
    strbuf_printf(sb, "wasmlet_pod_status_updates_total{result=\"ok\"} %llu\n",
                  (unsigned long long)ps.status_patches);
    strbuf_printf(sb, "wasmlet_pod_status_updates_total{result=\"error\"} %llu\n",
                  (unsigned long long)ps.status_errors);
    family(sb, "kubelet_pod_start_duration_seconds", "histogram",
           "Seconds from the node accepting a pod to its first app container running.");
    histogram(sb, "kubelet_pod_start_duration_seconds", NULL, metrics_pod_start_bounds,
              METRICS_POD_START_BUCKETS, m->pod_start_bucket, m->pod_start_count, m->pod_start_sum);
    family(sb, "wasmlet_container_runs_total", "counter",
           "Container runs begun (first starts and restarts).");
    strbuf_printf(sb, "wasmlet_container_runs_total %llu\n", (unsigned long long)m->container_runs);
}

static void runtime_section(strbuf_t *sb, const server_config_t *cfg, const metrics_snapshot_t *m)
{
    static const char *const sources[METRICS_LOAD_SOURCES] = {"memory", "disk", "compiler"};
    family(sb, "wasmlet_module_loads_total", "counter",
           "Module loads for container starts, by where the compiled module came from: memory "
           "(already loaded), disk (compile cache hit) or compiler (cache miss).");
    for (int i = 0; i < METRICS_LOAD_SOURCES; i++)
        strbuf_printf(sb, "wasmlet_module_loads_total{source=\"%s\"} %llu\n", sources[i],
                      (unsigned long long)m->module_loads[i]);
    if (cfg->rt) {
        family(sb, "wasmlet_modules_in_memory", "gauge", "Compiled modules held in memory.");
        strbuf_printf(sb, "wasmlet_modules_in_memory %zu\n", wasmrt_loaded_modules(cfg->rt));
    }
    if (cfg->images) {
        image_store_stats_t is;
        image_store_stats(cfg->images, &is);
        family(sb, "wasmlet_image_manifest_requests_total", "counter",
               "Manifest requests to registries (one or two per pull that asks a registry).");
        strbuf_printf(sb, "wasmlet_image_manifest_requests_total %llu\n",
                      (unsigned long long)is.manifest_requests);
        family(sb, "wasmlet_image_blob_downloads_total", "counter",
               "Blobs downloaded from registries.");
        strbuf_printf(sb, "wasmlet_image_blob_downloads_total %llu\n",
                      (unsigned long long)is.blob_downloads);
        family(sb, "wasmlet_image_downloaded_bytes_total", "counter",
               "Blob bytes downloaded from registries.");
        strbuf_printf(sb, "wasmlet_image_downloaded_bytes_total %llu\n",
                      (unsigned long long)is.bytes_downloaded);
    }
}

static void api_section(strbuf_t *sb, const server_config_t *cfg)
{
    if (!cfg->client) return;
    kube_client_metrics_t km;
    kube_client_metrics_snapshot(cfg->client, &km);
    static const char *const classes[KUBE_STATUS_CLASSES] = {"<error>", "1xx", "2xx",
                                                             "3xx",     "4xx", "5xx"};
    family(sb, "rest_client_requests_total", "counter",
           "Requests to the API server, by status class and method.");
    for (int v = 0; v < KUBE_VERB_COUNT; v++)
        for (int c = 0; c < KUBE_STATUS_CLASSES; c++)
            if (km.requests[v][c])
                strbuf_printf(sb, "rest_client_requests_total{code=\"%s\",method=\"%s\"} %llu\n",
                              classes[c], kube_metric_verb_name((enum kube_metric_verb)v),
                              (unsigned long long)km.requests[v][c]);
    family(sb, "rest_client_request_duration_seconds", "histogram",
           "API server request latency in seconds, by verb (watches are not timed).");
    for (int v = 0; v < KUBE_VERB_COUNT; v++) {
        if (v == KUBE_VERB_WATCH || km.latency_count[v] == 0) continue;
        char labels[64];
        snprintf(labels, sizeof labels, "verb=\"%s\"",
                 kube_metric_verb_name((enum kube_metric_verb)v));
        histogram(sb, "rest_client_request_duration_seconds", labels, kube_latency_bounds,
                  KUBE_LATENCY_BUCKETS, km.latency_bucket[v], km.latency_count[v],
                  km.latency_sum_seconds[v]);
    }
}

static void http_section(strbuf_t *sb)
{
    size_t n;
    metrics_http_entry_t *e = metrics_http_entries(&n);
    family(sb, "wasmlet_http_requests_total", "counter",
           "Requests to this node's HTTPS API, by path, method and status.");
    for (size_t i = 0; i < n; i++)
        strbuf_printf(sb,
                      "wasmlet_http_requests_total{code=\"%d\",method=\"%s\",path=\"%s\"} %llu\n",
                      e[i].status, e[i].method, e[i].path_class, (unsigned long long)e[i].count);
    family(sb, "wasmlet_http_request_duration_seconds", "summary",
           "Seconds to answer requests to the HTTPS API (to the headers, for streams).");
    for (size_t i = 0; i < n; i++) {
        char labels[128];
        snprintf(labels, sizeof labels, "code=\"%d\",method=\"%s\",path=\"%s\"", e[i].status,
                 e[i].method, e[i].path_class);
        strbuf_printf(sb,
                      "wasmlet_http_request_duration_seconds_sum{%s} %.9g\n"
                      "wasmlet_http_request_duration_seconds_count{%s} %llu\n",
                      labels, e[i].seconds_sum, labels, (unsigned long long)e[i].count);
    }
    free(e);
}

static void cert_section(strbuf_t *sb, const metrics_snapshot_t *m)
{
    static const char *const ttl_names[2] = {"kubelet_certificate_manager_client_ttl_seconds",
                                             "kubelet_certificate_manager_server_ttl_seconds"};
    static const char *const helps[2] = {"Seconds until the node's client certificate expires.",
                                         "Seconds until the node's serving certificate expires."};
    int64_t now = time_now_ns();
    for (int i = 0; i < 2; i++) {
        if (!m->cert_not_after[i]) continue;
        family(sb, ttl_names[i], "gauge", helps[i]);
        strbuf_printf(sb, "%s %.3f\n", ttl_names[i],
                      (double)(m->cert_not_after[i] - now) / (double)NS_PER_SEC);
    }
    family(sb, "wasmlet_certificate_renewals_total", "counter",
           "Certificate renewals through a CertificateSigningRequest, by certificate and result.");
    static const char *const which[2] = {"client", "serving"};
    for (int i = 0; i < 2; i++)
        for (int ok = 0; ok < 2; ok++)
            strbuf_printf(sb,
                          "wasmlet_certificate_renewals_total{certificate=\"%s\",result=\"%s\"} "
                          "%llu\n",
                          which[i], ok ? "ok" : "error",
                          (unsigned long long)m->cert_renewals[i][ok]);
}

static void process_section(strbuf_t *sb)
{
    family(sb, "process_cpu_seconds_total", "counter", "User and system CPU time in seconds.");
    strbuf_printf(sb, "process_cpu_seconds_total %.6f\n",
                  (double)server_process_cpu_ns() / (double)NS_PER_SEC);
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &rss) != 2) rss = 0;
        fclose(f);
    }
    family(sb, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    strbuf_printf(sb, "process_resident_memory_bytes %llu\n",
                  rss * (unsigned long long)sysconf(_SC_PAGESIZE));
    family(sb, "process_open_fds", "gauge", "Number of open file descriptors.");
    strbuf_printf(sb, "process_open_fds %zu\n", open_fds());
}

void server_handle_metrics(sreq_t *r)
{
    const server_config_t *cfg = server_config(sreq_server(r));
    metrics_snapshot_t m;
    metrics_snapshot(&m);
    strbuf_t sb = STRBUF_INIT;
    family(&sb, "wasmlet_build_info", "gauge",
           "Version of wasmlet and of its WebAssembly runtime.");
    strbuf_printf(&sb, "wasmlet_build_info{version=\"%s\",wasmtime_version=\"", WASMLET_VERSION);
    server_prom_label(&sb, wasmrt_engine_version());
    strbuf_puts(&sb, "\"} 1\n");
    pods_section(&sb, cfg, &m);
    runtime_section(&sb, cfg, &m);
    api_section(&sb, cfg);
    http_section(&sb);
    cert_section(&sb, &m);
    process_section(&sb);
    sreq_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", strbuf_str(&sb), sb.len);
    strbuf_free(&sb);
}
