/* metrics.c: GET /metrics, the node's own metrics in the Prometheus text
 * format (version 0.0.4).
 *
 * Names follow the kubelet's where a kubelet metric means the same thing
 * (kubelet_running_pods, kubelet_pod_start_duration_seconds,
 * rest_client_requests_total, the certificate managers' TTLs), so existing
 * dashboards and alerts work; what only wasmlet has is wasmlet_*. Every
 * family has HELP and TYPE, counters end in _total, and units are base
 * units, so `promtool check metrics` passes. The text is built fresh for
 * each scrape from snapshots: the pod provider's counters, the registry
 * (metrics/registry.h, which renders its own families), the prober's
 * prober_probe_total (probe/probe.h), the API client's
 * request counters, the image store, the runtime and the pod address
 * allocator (net/ipam.c); the process figures
 * come from util/proc.h. */
#include "kube/client.h"
#include "metrics/descriptors.h"
#include "metrics/prom.h"
#include "metrics/registry.h"
#include "metrics/served.h"
#include "probe/probe.h"
#include "server/endpoints.h"
#include "util/proc.h"
#include "util/time.h"

#include <stdio.h>

#ifndef WASMLET_VERSION
#define WASMLET_VERSION "dev"
#endif

static void pods_section(strbuf_t *sb, const server_t *s, const metrics_snapshot_t *m)
{
    server_pod_counters_t ps = {0};
    if (s->pods.counters) s->pods.counters(s->pods.ctx, &ps);
    prom_family(sb, "kubelet_running_pods", "gauge",
                "Number of pods that have a running container.");
    strbuf_printf(sb, "kubelet_running_pods %llu\n", (unsigned long long)ps.pods_running);
    prom_family(sb, "kubelet_running_containers", "gauge", "Number of containers by state.");
    strbuf_printf(sb, "kubelet_running_containers{container_state=\"running\"} %llu\n",
                  (unsigned long long)ps.containers_running);
    prom_family(sb, "kubelet_started_pods_total", "counter", "Pods this node started.");
    strbuf_printf(sb, "kubelet_started_pods_total %llu\n", (unsigned long long)ps.pods_started);
    prom_family(sb, "wasmlet_pod_admission_rejections_total", "counter",
                "Pods rejected at admission because they did not fit the node.");
    strbuf_printf(sb, "wasmlet_pod_admission_rejections_total %llu\n",
                  (unsigned long long)ps.admission_rejected);
    prom_family(sb, "wasmlet_pod_status_updates_total", "counter",
                "Pod status writes to the API server, by result.");
    strbuf_printf(sb, "wasmlet_pod_status_updates_total{result=\"ok\"} %llu\n",
                  (unsigned long long)ps.status_patches);
    strbuf_printf(sb, "wasmlet_pod_status_updates_total{result=\"error\"} %llu\n",
                  (unsigned long long)ps.status_errors);
    metrics_render_pod_starts(sb, m);
    metrics_render_pod_start_stages(sb, m);
    metrics_render_container_runs(sb, m);
}

static void runtime_section(strbuf_t *sb, const server_t *s, const metrics_snapshot_t *m)
{
    metrics_render_module_loads(sb, m);
    if (s->rt) {
        prom_family(sb, "wasmlet_modules_in_memory", "gauge", "Compiled modules held in memory.");
        strbuf_printf(sb, "wasmlet_modules_in_memory %zu\n", wasmrt_loaded_modules(s->rt));
    }
    if (s->images) {
        image_store_stats_t is;
        image_store_stats(s->images, &is);
        prom_family(sb, "wasmlet_image_manifest_requests_total", "counter",
                    "Manifest requests to registries (one or two per pull that asks a registry).");
        strbuf_printf(sb, "wasmlet_image_manifest_requests_total %llu\n",
                      (unsigned long long)is.manifest_requests);
        prom_family(sb, "wasmlet_image_blob_downloads_total", "counter",
                    "Blobs downloaded from registries.");
        strbuf_printf(sb, "wasmlet_image_blob_downloads_total %llu\n",
                      (unsigned long long)is.blob_downloads);
        prom_family(sb, "wasmlet_image_downloaded_bytes_total", "counter",
                    "Blob bytes downloaded from registries.");
        strbuf_printf(sb, "wasmlet_image_downloaded_bytes_total %llu\n",
                      (unsigned long long)is.bytes_downloaded);
    }
}

static void api_section(strbuf_t *sb, const server_t *s)
{
    if (!s->client) return;
    kube_client_metrics_t km;
    kube_client_metrics_snapshot(s->client, &km);
    static const char *const classes[KUBE_STATUS_CLASSES] = {"<error>", "1xx", "2xx",
                                                             "3xx",     "4xx", "5xx"};
    prom_family(sb, "rest_client_requests_total", "counter",
                "Requests to the API server, by status class and method.");
    for (int v = 0; v < KUBE_VERB_COUNT; v++)
        for (int c = 0; c < KUBE_STATUS_CLASSES; c++)
            if (km.requests[v][c])
                strbuf_printf(sb, "rest_client_requests_total{code=\"%s\",method=\"%s\"} %llu\n",
                              classes[c], kube_metric_verb_name((enum kube_metric_verb)v),
                              (unsigned long long)km.requests[v][c]);
    prom_family(sb, "rest_client_request_duration_seconds", "histogram",
                "API server request latency in seconds, by verb (watches are not timed).");
    for (int v = 0; v < KUBE_VERB_COUNT; v++) {
        if (v == KUBE_VERB_WATCH || km.latency_count[v] == 0) continue;
        char labels[64];
        snprintf(labels, sizeof labels, "verb=\"%s\"",
                 kube_metric_verb_name((enum kube_metric_verb)v));
        prom_histogram(sb, "rest_client_request_duration_seconds", labels, kube_latency_bounds,
                       KUBE_LATENCY_BUCKETS, km.latency_bucket[v], km.latency_count[v],
                       km.latency_sum_seconds[v]);
    }
    prom_family(sb, "wasmlet_api_connections_opened_total", "counter",
                "Connections opened to the API server, each a TCP and TLS handshake: requests "
                "share HTTP/2 connections, each watch has its own.");
    strbuf_printf(sb, "wasmlet_api_connections_opened_total %llu\n",
                  (unsigned long long)km.connections_opened);
}

static void pod_network_section(strbuf_t *sb, const server_t *s)
{
    if (!s->pod_addresses) return;
    net_ipam_range_stats_t st[2];
    size_t n = net_ipam_stats(s->pod_addresses, st, 2);
    static const char *const names[2] = {"wasmlet_pod_addresses_held",
                                         "wasmlet_pod_addresses_capacity"};
    static const char *const helps[2] = {
        "Pod addresses held by network sandboxes, by podCIDR (the default network config's, "
        "which wasmlet hands out).",
        "Pod addresses a podCIDR has in all (without its network, gateway and broadcast "
        "addresses)."};
    for (int f = 0; f < 2; f++) {
        prom_family(sb, names[f], "gauge", helps[f]);
        for (size_t i = 0; i < n; i++) {
            strbuf_printf(sb, "%s{cidr=\"", names[f]);
            prom_label_value(sb, st[i].cidr);
            strbuf_printf(sb, "\",family=\"ipv%d\"} %u\n", st[i].family,
                          (unsigned)(f == 0 ? st[i].held : st[i].capacity));
        }
    }
}

static void process_section(strbuf_t *sb)
{
    prom_family(sb, "process_cpu_seconds_total", "counter", "User and system CPU time in seconds.");
    strbuf_printf(sb, "process_cpu_seconds_total %.6f\n",
                  (double)proc_self_cpu_ns() / (double)NS_PER_SEC);
    prom_family(sb, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    strbuf_printf(sb, "process_resident_memory_bytes %llu\n",
                  (unsigned long long)proc_self_rss_bytes());
    prom_family(sb, "process_open_fds", "gauge", "Number of open file descriptors.");
    strbuf_printf(sb, "process_open_fds %zu\n", proc_self_open_fds());
    uint64_t soft, hard;
    proc_nofile_limits(&soft, &hard);
    prom_family(sb, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    strbuf_printf(sb, "process_max_fds %llu\n", (unsigned long long)soft);
    prom_family(sb, "wasmlet_fd_headroom", "gauge",
                "File descriptors wasmlet keeps for itself out of process_max_fds.");
    strbuf_printf(sb, "wasmlet_fd_headroom %llu\n", (unsigned long long)proc_nofile_headroom(soft));
}

void server_handle_metrics(server_t *s, http_req_t *r)
{
    metrics_snapshot_t m;
    metrics_snapshot(&m);
    strbuf_t sb = STRBUF_INIT;
    prom_family(&sb, "wasmlet_build_info", "gauge",
                "Version of wasmlet and of its WebAssembly runtime.");
    strbuf_printf(&sb, "wasmlet_build_info{version=\"%s\",wasmtime_version=\"", WASMLET_VERSION);
    prom_label_value(&sb, wasmrt_engine_version());
    strbuf_puts(&sb, "\"} 1\n");
    pods_section(&sb, s, &m);
    runtime_section(&sb, s, &m);
    api_section(&sb, s);
    metrics_render_http(&sb);
    metrics_render_served(&sb);
    metrics_render_descriptors(&sb);
    metrics_render_certs(&sb, &m, time_now_ns());
    probe_metrics_render(&sb);
    pod_network_section(&sb, s);
    process_section(&sb);
    http_req_reply(r, 200, PROM_CONTENT_TYPE, strbuf_str(&sb), sb.len);
    strbuf_free(&sb);
}
