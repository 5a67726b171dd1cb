/* render.c: the registry's own families in the Prometheus text format
 * (see registry.h). Names follow the kubelet's where a kubelet metric means
 * the same thing; what only wasmlet has is wasmlet_*. The caller (the
 * kubelet API's /metrics) decides where each family goes in the page. */
#include "metrics/prom.h"
#include "metrics/registry.h"
#include "util/time.h"

#include <stdio.h>
#include <stdlib.h>

void metrics_render_pod_starts(strbuf_t *sb, const metrics_snapshot_t *m)
{
    prom_family(sb, "kubelet_pod_start_duration_seconds", "histogram",
                "Seconds from the node accepting a pod to its first app container running.");
    prom_histogram(sb, "kubelet_pod_start_duration_seconds", NULL, metrics_pod_start_bounds,
                   METRICS_POD_START_BUCKETS, m->pod_start_bucket, m->pod_start_count,
                   m->pod_start_sum);
}

void metrics_render_pod_start_stages(strbuf_t *sb, const metrics_snapshot_t *m)
{
    prom_family(sb, "wasmlet_pod_start_stage_duration_seconds", "histogram",
                "Seconds each stage of a pod start took, from wasmlet's own timestamps: watch "
                "(creation or binding to the watch delivering the pod; creationTimestamp has 1 s "
                "resolution), admission, sandbox, volumes, pull, load, instantiate (the first app "
                "container's), status (its running state to the status write that carried it "
                "acknowledged), node (delivered to the last of them).");
    for (int s = 0; s < METRICS_STAGE_COUNT; s++) {
        char labels[48];
        snprintf(labels, sizeof labels, "stage=\"%s\"", metrics_start_stage_names[s]);
        prom_histogram(sb, "wasmlet_pod_start_stage_duration_seconds", labels, metrics_stage_bounds,
                       METRICS_STAGE_BUCKETS, m->stage_bucket[s], m->stage_count[s],
                       m->stage_sum[s]);
    }
}

void metrics_render_container_runs(strbuf_t *sb, const metrics_snapshot_t *m)
{
    prom_family(sb, "wasmlet_container_runs_total", "counter",
                "Container runs begun (first starts and restarts).");
    strbuf_printf(sb, "wasmlet_container_runs_total %llu\n", (unsigned long long)m->container_runs);
}

void metrics_render_module_loads(strbuf_t *sb, const metrics_snapshot_t *m)
{
    static const char *const sources[METRICS_LOAD_SOURCES] = {"memory", "disk", "compiler"};
    prom_family(sb, "wasmlet_module_loads_total", "counter",
                "Module loads for container starts, by where the compiled module came from: "
                "memory (already loaded), disk (compile cache hit) or compiler (cache miss).");
    for (int i = 0; i < METRICS_LOAD_SOURCES; i++)
        strbuf_printf(sb, "wasmlet_module_loads_total{source=\"%s\"} %llu\n", sources[i],
                      (unsigned long long)m->module_loads[i]);
}

void metrics_render_http(strbuf_t *sb)
{
    size_t n;
    metrics_http_entry_t *e = metrics_http_entries(&n);
    prom_family(sb, "wasmlet_http_requests_total", "counter",
                "Requests to this node's HTTPS API, by path, method and status.");
    for (size_t i = 0; i < n; i++)
        strbuf_printf(sb,
                      "wasmlet_http_requests_total{code=\"%d\",method=\"%s\",path=\"%s\"} %llu\n",
                      e[i].status, e[i].method, e[i].path_class, (unsigned long long)e[i].count);
    prom_family(sb, "wasmlet_http_request_duration_seconds", "summary",
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

void metrics_render_certs(strbuf_t *sb, const metrics_snapshot_t *m, int64_t now_ns)
{
    static const char *const ttl_names[2] = {"kubelet_certificate_manager_client_ttl_seconds",
                                             "kubelet_certificate_manager_server_ttl_seconds"};
    static const char *const helps[2] = {"Seconds until the node's client certificate expires.",
                                         "Seconds until the node's serving certificate expires."};
    for (int i = 0; i < 2; i++) {
        if (!m->cert_not_after[i]) continue;
        prom_family(sb, ttl_names[i], "gauge", helps[i]);
        strbuf_printf(sb, "%s %.3f\n", ttl_names[i],
                      (double)(m->cert_not_after[i] - now_ns) / (double)NS_PER_SEC);
    }
    prom_family(sb, "wasmlet_certificate_renewals_total", "counter",
                "Certificate renewals through a CertificateSigningRequest, by certificate and "
                "result.");
    static const char *const which[2] = {"client", "serving"};
    for (int i = 0; i < 2; i++)
        for (int ok = 0; ok < 2; ok++)
            strbuf_printf(sb,
                          "wasmlet_certificate_renewals_total{certificate=\"%s\",result=\"%s\"} "
                          "%llu\n",
                          which[i], ok ? "ok" : "error",
                          (unsigned long long)m->cert_renewals[i][ok]);
}
