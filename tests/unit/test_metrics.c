/* test_metrics.c: unit tests for metrics/: the process-wide registry
 * (registry.c), the Prometheus text pieces (prom.c) and the registry's own
 * families (render.c), checked as text and, when installed, by promtool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "metrics/descriptors.h"
#include "metrics/prom.h"
#include "metrics/registry.h"
#include "metrics/registry.h" /* the forwarding header still works */
#include "util/strbuf.h"
#include "util/time.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void label_escapes(void **state)
{
    (void)state;
    strbuf_t sb = STRBUF_INIT;
    prom_label_value(&sb, "a\\b\"c\nd");
    assert_string_equal(strbuf_str(&sb), "a\\\\b\\\"c\\nd");
    prom_label_value(&sb, NULL);
    assert_string_equal(strbuf_str(&sb), "a\\\\b\\\"c\\nd");
    strbuf_free(&sb);
}

static void family_and_histogram(void **state)
{
    (void)state;
    strbuf_t sb = STRBUF_INIT;
    prom_family(&sb, "x_seconds", "histogram", "Some seconds.");
    const double bounds[] = {0.5, 2};
    const uint64_t cum[] = {1, 3};
    prom_histogram(&sb, "x_seconds", NULL, bounds, 2, cum, 4, 7.25);
    assert_string_equal(strbuf_str(&sb), "# HELP x_seconds Some seconds.\n"
                                         "# TYPE x_seconds histogram\n"
                                         "x_seconds_bucket{le=\"0.5\"} 1\n"
                                         "x_seconds_bucket{le=\"2\"} 3\n"
                                         "x_seconds_bucket{le=\"+Inf\"} 4\n"
                                         "x_seconds_sum 7.25\n"
                                         "x_seconds_count 4\n");
    strbuf_reset(&sb);
    prom_histogram(&sb, "y", "verb=\"get\"", bounds, 1, cum, 1, 0.1);
    assert_string_equal(strbuf_str(&sb), "y_bucket{verb=\"get\",le=\"0.5\"} 1\n"
                                         "y_bucket{verb=\"get\",le=\"+Inf\"} 1\n"
                                         "y_sum{verb=\"get\"} 0.1\n"
                                         "y_count{verb=\"get\"} 1\n");
    strbuf_free(&sb);
}

/* Runs promtool check metrics on text when promtool is installed. */
static void promtool_check(const char *text)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0) return;
    char tmpl[] = "/tmp/wasmlet-metrics-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s >/dev/null 2>&1", tmpl);
    int rc = system(cmd);
    unlink(tmpl);
    if (rc != 0) fail_msg("promtool check metrics failed on:\n%s", text);
}

static void registry_families(void **state)
{
    (void)state;
    metrics_reset();
    metrics_pod_started("u1", 0.2);
    metrics_pod_started("u1", 50); /* once per pod */
    metrics_pod_started("u2", 4);
    metrics_module_loaded(2);
    metrics_module_loaded(7); /* not a source: ignored */
    metrics_container_begin("u1", "c");
    metrics_container_end("u1", "c", 5, 4096);
    metrics_cert_expiry(METRICS_CERT_CLIENT, time_now_ns() + 100 * NS_PER_SEC);
    metrics_cert_renewal(METRICS_CERT_SERVING, false);
    metrics_cert_renewal(METRICS_CERT_SERVING, true);
    metrics_cert_renewal(METRICS_CERT_SERVING, true);
    metrics_http_request("pods", "GET", 200, 0.5);
    metrics_http_request("pods", "GET", 200, 0.25);
    metrics_http_request("healthz", "GET", 401, 0.125);

    metrics_snapshot_t m;
    metrics_snapshot(&m);
    assert_int_equal(m.pod_start_count, 2);
    assert_int_equal(m.container_runs, 1);
    strbuf_t sb = STRBUF_INIT;
    metrics_render_pod_starts(&sb, &m);
    metrics_render_container_runs(&sb, &m);
    metrics_render_module_loads(&sb, &m);
    metrics_render_http(&sb);
    metrics_render_certs(&sb, &m, time_now_ns());
    const char *t = strbuf_str(&sb);
    assert_non_null(strstr(t, "kubelet_pod_start_duration_seconds_bucket{le=\"0.25\"} 1\n"));
    assert_non_null(strstr(t, "kubelet_pod_start_duration_seconds_bucket{le=\"5\"} 2\n"));
    assert_non_null(strstr(t, "kubelet_pod_start_duration_seconds_count 2\n"));
    assert_non_null(strstr(t, "wasmlet_container_runs_total 1\n"));
    assert_non_null(strstr(t, "wasmlet_module_loads_total{source=\"compiler\"} 1\n"));
    assert_non_null(strstr(t, "wasmlet_module_loads_total{source=\"memory\"} 0\n"));
    /* Oldest first. */
    const char *pods =
        strstr(t, "wasmlet_http_requests_total{code=\"200\",method=\"GET\",path=\"pods\"} 2\n");
    const char *health =
        strstr(t, "wasmlet_http_requests_total{code=\"401\",method=\"GET\",path=\"healthz\"} 1\n");
    assert_non_null(pods);
    assert_non_null(health);
    assert_true(pods < health);
    assert_non_null(strstr(t, "wasmlet_http_request_duration_seconds_sum{code=\"200\","
                              "method=\"GET\",path=\"pods\"} 0.75\n"));
    const char *ttl = strstr(t, "\nkubelet_certificate_manager_client_ttl_seconds ");
    assert_non_null(ttl);
    double secs = strtod(ttl + strlen("\nkubelet_certificate_manager_client_ttl_seconds "), NULL);
    assert_true(secs > 98 && secs <= 100);
    assert_null(strstr(t, "kubelet_certificate_manager_server_ttl_seconds"));
    assert_non_null(strstr(t, "wasmlet_certificate_renewals_total{certificate=\"serving\","
                              "result=\"ok\"} 2\n"));
    assert_non_null(strstr(t, "wasmlet_certificate_renewals_total{certificate=\"serving\","
                              "result=\"error\"} 1\n"));
    promtool_check(t);
    strbuf_free(&sb);
    metrics_reset();
}

static void *run_begin(void *arg)
{
    (void)arg;
    metrics_container_begin("keep", "running");
    return NULL;
}

/* Forgetting pods keeps the listed ones and any container still running. */
static void forget_pods(void **state)
{
    (void)state;
    metrics_reset();
    metrics_container_begin("a", "x");
    metrics_container_end("a", "x", 10, 0);
    metrics_container_begin("b", "x");
    metrics_container_end("b", "x", 20, 0);
    pthread_t t;
    pthread_create(&t, NULL, run_begin, NULL);
    pthread_join(t, NULL);
    const char *keep[] = {"a"};
    metrics_forget_pods_except(keep, 1);
    metrics_usage_t u;
    assert_true(metrics_container_usage("a", "x", &u));
    assert_int_equal(u.cpu_ns, 10);
    assert_false(u.running);
    assert_true(u.memory_known);
    assert_false(metrics_container_usage("b", "x", &u));
    assert_true(metrics_container_usage("keep", "running", &u));
    assert_true(u.running);
    /* A running container's live memory is its usage; an ended one's is
     * the size its run ended with (a late sample does not change it). */
    metrics_container_memory("keep", "running", 3 * 65536);
    assert_true(metrics_container_usage("keep", "running", &u));
    assert_true(u.memory_known);
    assert_int_equal(u.memory_bytes, 3 * 65536);
    uint64_t ended = 0;
    assert_true(metrics_container_usage("a", "x", &u));
    ended = u.memory_bytes;
    metrics_container_memory("a", "x", ended + 65536);
    assert_true(metrics_container_usage("a", "x", &u));
    assert_int_equal(u.memory_bytes, ended);
    metrics_reset();
    assert_false(metrics_container_usage("a", "x", &u));
}

/* Running containers' descriptors: per container (with the cap when there
 * is one), summed per pod; an ended run's entry goes. */
static void descriptor_gauges(void **state)
{
    (void)state;
    metrics_descriptors_reset();
    metrics_descriptors_set("u1", "ns", "web", "app", 5, 1024);
    metrics_descriptors_set("u1", "ns", "web", "side", 3, 0);
    metrics_descriptors_set("u2", "ns", "db", "app", 7, 16);
    metrics_descriptors_set("u1", "ns", "web", "app", 12, 1024); /* rises */
    size_t held = 0;
    assert_true(metrics_descriptors_get("u1", "app", &held));
    assert_int_equal(held, 12);
    strbuf_t sb = STRBUF_INIT;
    metrics_render_descriptors(&sb);
    const char *t = strbuf_str(&sb);
    assert_non_null(strstr(t, "# TYPE wasmlet_container_open_descriptors gauge\n"));
    assert_non_null(strstr(t, "wasmlet_container_open_descriptors{namespace=\"ns\",pod=\"web\","
                              "container=\"app\"} 12\n"));
    assert_non_null(strstr(t, "wasmlet_container_open_descriptors{namespace=\"ns\",pod=\"web\","
                              "container=\"side\"} 3\n"));
    assert_non_null(strstr(t, "wasmlet_container_open_descriptors_limit{namespace=\"ns\","
                              "pod=\"db\",container=\"app\"} 16\n"));
    assert_null(strstr(t, "container=\"side\"} 0\n"));
    assert_non_null(strstr(t, "wasmlet_pod_open_descriptors{namespace=\"ns\",pod=\"web\"} 15\n"));
    assert_non_null(strstr(t, "wasmlet_pod_open_descriptors{namespace=\"ns\",pod=\"db\"} 7\n"));
    /* One line per pod. */
    const char *first = strstr(t, "wasmlet_pod_open_descriptors{namespace=\"ns\",pod=\"web\"}");
    assert_null(strstr(first + 1, "wasmlet_pod_open_descriptors{namespace=\"ns\",pod=\"web\"}"));
    promtool_check(t);
    strbuf_free(&sb);

    metrics_descriptors_end("u1", "app");
    assert_false(metrics_descriptors_get("u1", "app", &held));
    sb = (strbuf_t)STRBUF_INIT;
    metrics_render_descriptors(&sb);
    assert_non_null(
        strstr(strbuf_str(&sb), "wasmlet_pod_open_descriptors{namespace=\"ns\",pod=\"web\"} 3\n"));
    strbuf_free(&sb);
    metrics_descriptors_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(label_escapes),     cmocka_unit_test(family_and_histogram),
        cmocka_unit_test(registry_families), cmocka_unit_test(forget_pods),
        cmocka_unit_test(descriptor_gauges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
