/* test_pod_trace.c: unit tests for pod/trace.h, a pod start's trace: when
 * it is whole (instantiate and status both ended, in either order), that
 * it is taken once, the node stage, its log line, and the registry's
 * histograms it feeds (metrics/registry.h, rendered as /metrics shows
 * them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "metrics/registry.h"
#include "pod/trace.h"
#include "util/strbuf.h"
#include "util/time.h"

#include <jansson.h>
#include <string.h>

#define MS NS_PER_MS

/* A trace seen at 1000 ms (mono) / 5000 ms (wall), created 300 ms before
 * it was seen, admitted 2 ms later, with every stage up to load marked. */
static void started(pod_trace_t *t)
{
    memset(t, 0, sizeof *t);
    pod_trace_begin(t, 4700 * MS, 5000 * MS, 1000 * MS, 1002 * MS);
    pod_trace_mark(t, METRICS_STAGE_SANDBOX, 1003 * MS, 1003 * MS);
    pod_trace_mark(t, METRICS_STAGE_VOLUMES, 1003 * MS, 1013 * MS);
    pod_trace_mark(t, METRICS_STAGE_PULL, 1014 * MS, 1015 * MS);
    pod_trace_mark(t, METRICS_STAGE_LOAD, 1015 * MS, 1020 * MS);
    t->begin[METRICS_STAGE_STATUS] = 1021 * MS; /* the running state published */
}

static void whole_needs_status_and_instance(void **state)
{
    (void)state;
    pod_trace_t t, out;
    started(&t);
    assert_false(pod_trace_whole(&t));
    assert_false(pod_trace_take(&t, &out));
    /* The status acknowledged first: still waiting for the instance. */
    pod_trace_mark(&t, METRICS_STAGE_STATUS, t.begin[METRICS_STAGE_STATUS], 1040 * MS);
    assert_false(pod_trace_whole(&t));
    pod_trace_mark(&t, METRICS_STAGE_INSTANTIATE, 1022 * MS, 1023 * MS);
    assert_true(pod_trace_whole(&t));
    assert_true(pod_trace_take(&t, &out));
    /* Taken once: a second acknowledgement or a restart adds nothing. */
    assert_false(pod_trace_whole(&t));
    assert_false(pod_trace_take(&t, &out));

    double sec[METRICS_STAGE_COUNT];
    bool have[METRICS_STAGE_COUNT];
    pod_trace_seconds(&out, sec, have);
    for (int s = 0; s < METRICS_STAGE_COUNT; s++)
        assert_true(have[s]);
    assert_float_equal(sec[METRICS_STAGE_WATCH], 0.300, 1e-9);
    assert_float_equal(sec[METRICS_STAGE_ADMISSION], 0.002, 1e-9);
    assert_float_equal(sec[METRICS_STAGE_SANDBOX], 0.0, 1e-9);
    assert_float_equal(sec[METRICS_STAGE_VOLUMES], 0.010, 1e-9);
    assert_float_equal(sec[METRICS_STAGE_PULL], 0.001, 1e-9);
    assert_float_equal(sec[METRICS_STAGE_LOAD], 0.005, 1e-9);
    assert_float_equal(sec[METRICS_STAGE_INSTANTIATE], 0.001, 1e-9);
    assert_float_equal(sec[METRICS_STAGE_STATUS], 0.019, 1e-9);
    /* node: seen (1000) to the last end (the status, 1040). */
    assert_float_equal(sec[METRICS_STAGE_NODE], 0.040, 1e-9);
}

static void instance_last_ends_node(void **state)
{
    (void)state;
    pod_trace_t t, out;
    started(&t);
    pod_trace_mark(&t, METRICS_STAGE_STATUS, t.begin[METRICS_STAGE_STATUS], 1030 * MS);
    pod_trace_mark(&t, METRICS_STAGE_INSTANTIATE, 1031 * MS, 1055 * MS);
    assert_true(pod_trace_take(&t, &out));
    double sec[METRICS_STAGE_COUNT];
    bool have[METRICS_STAGE_COUNT];
    pod_trace_seconds(&out, sec, have);
    assert_float_equal(sec[METRICS_STAGE_NODE], 0.055, 1e-9);
}

static void not_begun_never_whole(void **state)
{
    (void)state;
    /* A resumed pod, or `wasmlet run`: never begun, never reported. */
    pod_trace_t t = {0}, out;
    pod_trace_mark(&t, METRICS_STAGE_INSTANTIATE, 10, 20);
    pod_trace_mark(&t, METRICS_STAGE_STATUS, 10, 30);
    assert_false(pod_trace_whole(&t));
    assert_false(pod_trace_take(&t, &out));
    /* A trace switched off (its run never got an instance) neither. */
    started(&t);
    t.on = false;
    pod_trace_mark(&t, METRICS_STAGE_INSTANTIATE, 10, 20);
    pod_trace_mark(&t, METRICS_STAGE_STATUS, 10, 30);
    assert_false(pod_trace_take(&t, &out));
}

static void unknown_creation_no_watch_stage(void **state)
{
    (void)state;
    pod_trace_t t = {0}, out;
    pod_trace_begin(&t, 0, 5000 * MS, 1000 * MS, 1001 * MS);
    pod_trace_mark(&t, METRICS_STAGE_INSTANTIATE, 1002 * MS, 1003 * MS);
    pod_trace_mark(&t, METRICS_STAGE_STATUS, 1002 * MS, 1004 * MS);
    assert_true(pod_trace_take(&t, &out));
    double sec[METRICS_STAGE_COUNT];
    bool have[METRICS_STAGE_COUNT];
    pod_trace_seconds(&out, sec, have);
    assert_false(have[METRICS_STAGE_WATCH]);
    assert_false(have[METRICS_STAGE_SANDBOX]); /* never marked */
    assert_true(have[METRICS_STAGE_ADMISSION]);
    assert_true(have[METRICS_STAGE_NODE]);
    /* A stage that ended before it began (clock steps) counts as 0. */
    pod_trace_mark(&t, METRICS_STAGE_PULL, 50, 40);
    pod_trace_seconds(&t, sec, have);
    assert_true(have[METRICS_STAGE_PULL]);
    assert_float_equal(sec[METRICS_STAGE_PULL], 0.0, 1e-12);
}

static void log_line_is_json(void **state)
{
    (void)state;
    pod_trace_t t, out;
    started(&t);
    pod_trace_mark(&t, METRICS_STAGE_INSTANTIATE, 1022 * MS, 1022 * MS + 250000);
    pod_trace_mark(&t, METRICS_STAGE_STATUS, t.begin[METRICS_STAGE_STATUS], 1040 * MS);
    assert_true(pod_trace_take(&t, &out));
    strbuf_t sb = STRBUF_INIT;
    pod_trace_format(&out, "default", "web-\"1\"", "u-1", &sb);
    const char *prefix = "pod start trace ";
    assert_memory_equal(strbuf_str(&sb), prefix, strlen(prefix));
    json_error_t je;
    json_t *o = json_loads(strbuf_str(&sb) + strlen(prefix), 0, &je);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "pod")), "default/web-\"1\"");
    assert_string_equal(json_string_value(json_object_get(o, "uid")), "u-1");
    assert_int_equal(json_integer_value(json_object_get(o, "seen_wall_ns")), 5000 * MS);
    assert_float_equal(json_real_value(json_object_get(o, "watch_ms")), 300.0, 1e-6);
    assert_float_equal(json_real_value(json_object_get(o, "volumes_ms")), 10.0, 1e-6);
    assert_float_equal(json_real_value(json_object_get(o, "instantiate_ms")), 0.25, 1e-6);
    assert_float_equal(json_real_value(json_object_get(o, "status_ms")), 19.0, 1e-6);
    assert_float_equal(json_real_value(json_object_get(o, "node_ms")), 40.0, 1e-6);
    assert_float_equal(json_real_value(json_object_get(o, "running_at_ms")), 21.0, 1e-6);
    assert_float_equal(json_real_value(json_object_get(o, "acked_at_ms")), 40.0, 1e-6);
    assert_int_equal(json_object_size(o), 5 + METRICS_STAGE_COUNT);
    json_decref(o);
    strbuf_free(&sb);
}

static void emit_feeds_histograms(void **state)
{
    (void)state;
    metrics_reset();
    pod_trace_t t, out;
    started(&t);
    pod_trace_mark(&t, METRICS_STAGE_INSTANTIATE, 1022 * MS, 1023 * MS);
    pod_trace_mark(&t, METRICS_STAGE_STATUS, t.begin[METRICS_STAGE_STATUS], 1040 * MS);
    assert_true(pod_trace_take(&t, &out));
    pod_trace_emit(&out, "default", "p", "u-1");
    /* A second pod without a watch stage. */
    pod_trace_t t2 = {0};
    pod_trace_begin(&t2, 0, 1, 1000 * MS, 1001 * MS);
    pod_trace_mark(&t2, METRICS_STAGE_INSTANTIATE, 1002 * MS, 1003 * MS);
    pod_trace_mark(&t2, METRICS_STAGE_STATUS, 1002 * MS, 1004 * MS);
    assert_true(pod_trace_take(&t2, &out));
    pod_trace_emit(&out, "default", "q", "u-2");

    metrics_snapshot_t m;
    metrics_snapshot(&m);
    assert_int_equal(m.stage_count[METRICS_STAGE_WATCH], 1);
    assert_int_equal(m.stage_count[METRICS_STAGE_ADMISSION], 2);
    assert_int_equal(m.stage_count[METRICS_STAGE_NODE], 2);
    assert_float_equal(m.stage_sum[METRICS_STAGE_WATCH], 0.3, 1e-9);
    /* volumes 10 ms: not in the 5 ms bucket, in the 10 ms one. */
    assert_int_equal(m.stage_bucket[METRICS_STAGE_VOLUMES][3], 0);
    assert_true(metrics_stage_bounds[4] == 0.01);
    assert_int_equal(m.stage_bucket[METRICS_STAGE_VOLUMES][4], 1);

    strbuf_t sb = STRBUF_INIT;
    metrics_render_pod_start_stages(&sb, &m);
    const char *text = strbuf_str(&sb);
    assert_non_null(strstr(text, "# TYPE wasmlet_pod_start_stage_duration_seconds histogram\n"));
    assert_non_null(
        strstr(text, "wasmlet_pod_start_stage_duration_seconds_count{stage=\"watch\"} 1\n"));
    assert_non_null(
        strstr(text, "wasmlet_pod_start_stage_duration_seconds_count{stage=\"node\"} 2\n"));
    assert_non_null(strstr(text, "wasmlet_pod_start_stage_duration_seconds_bucket{stage="
                                 "\"status\",le=\"+Inf\"} 2\n"));
    for (int s = 0; s < METRICS_STAGE_COUNT; s++) {
        char want[128];
        snprintf(want, sizeof want, "wasmlet_pod_start_stage_duration_seconds_sum{stage=\"%s\"}",
                 metrics_start_stage_names[s]);
        assert_non_null(strstr(text, want));
    }
    strbuf_free(&sb);
    metrics_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(whole_needs_status_and_instance),
        cmocka_unit_test(instance_last_ends_node),
        cmocka_unit_test(not_begun_never_whole),
        cmocka_unit_test(unknown_creation_no_watch_stage),
        cmocka_unit_test(log_line_is_json),
        cmocka_unit_test(emit_feeds_histograms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
