/* test_resize.c: unit tests for pod/resize.h, the decisions of an in-place
 * pod resize: the node's verdict (fits, Infeasible, Deferred, in the
 * kubelet's words), what a running container does (nothing, live, restart)
 * under each resizePolicy, the resources as the status shows them, their
 * resume form, and the message of a memory limit below usage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/pod_spec.h"
#include "pod/resize.h"

#include <stdio.h>
#include <string.h>

/* A Pod with one container "app" with the given resources (a JSON object)
 * and resizePolicy (a JSON array, or NULL). */
static json_t *pod_with(const char *resources, const char *policy)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\","
             "\"namespace\":\"default\",\"uid\":\"u1\"},\"spec\":{\"containers\":[{"
             "\"name\":\"app\",\"image\":\"app.wasm\",\"resources\":%s%s%s}]}}",
             resources, policy ? ",\"resizePolicy\":" : "", policy ? policy : "");
    json_error_t jerr;
    json_t *pod = json_loads(text, 0, &jerr);
    if (!pod) fail_msg("bad test pod: %s: %s", jerr.text, text);
    return pod;
}

static podspec_t *spec_of(json_t *pod)
{
    podspec_t *spec = NULL;
    err_t err;
    if (podspec_parse(pod, &spec, &err) == -1) fail_msg("parse: %s", err.msg);
    return spec;
}

static void resources_of(const char *resources, pod_resources_t *out)
{
    json_t *pod = pod_with(resources, NULL);
    podspec_t *spec = spec_of(pod);
    pod_resources_of(&spec->containers[0], out);
    podspec_free(spec);
    json_decref(pod);
}

static pod_admission_node_t node(int64_t used_cpu, int64_t used_memory)
{
    return (pod_admission_node_t){.name = "wasm-1",
                                  .labels_unknown = true,
                                  .allocatable_cpu = 4000,
                                  .allocatable_memory = (int64_t)4 << 30,
                                  .max_pods = 10,
                                  .used_cpu = used_cpu,
                                  .used_memory = used_memory,
                                  .used_pods = 2};
}

static pod_resize_verdict_t admit(const char *resources, int64_t used_cpu, int64_t used_memory)
{
    json_t *pod = pod_with(resources, NULL);
    pod_admission_node_t n = node(used_cpu, used_memory);
    pod_resize_verdict_t v;
    pod_resize_admit(pod, &n, &v);
    json_decref(pod);
    return v;
}

static void fits_beside_the_others(void **state)
{
    (void)state;
    pod_resize_verdict_t v =
        admit("{\"requests\":{\"cpu\":\"2\",\"memory\":\"1Gi\"}}", 1000, (int64_t)1 << 30);
    assert_int_equal(v.fit, POD_RESIZE_FITS);
    assert_string_equal(v.reason, "");
    assert_string_equal(v.message, "");
}

static void more_than_the_node_is_infeasible(void **state)
{
    (void)state;
    /* As the kubelet's canResizePod words it: requested, capacity. */
    pod_resize_verdict_t v = admit("{\"requests\":{\"cpu\":\"5\"}}", 0, 0);
    assert_int_equal(v.fit, POD_RESIZE_INFEASIBLE);
    assert_string_equal(v.reason, "Infeasible");
    assert_string_equal(v.message,
                        "Node didn't have enough capacity: cpu, requested: 5000, capacity: 4000");
    /* Memory is named when both are short. */
    v = admit("{\"requests\":{\"cpu\":\"5\",\"memory\":\"4500M\"}}", 0, 0);
    assert_int_equal(v.fit, POD_RESIZE_INFEASIBLE);
    assert_string_equal(
        v.message,
        "Node didn't have enough capacity: memory, requested: 4500000000, capacity: 4294967296");
    /* Exactly the node is feasible. */
    v = admit("{\"requests\":{\"cpu\":\"4\",\"memory\":\"4Gi\"}}", 0, 0);
    assert_int_equal(v.fit, POD_RESIZE_FITS);
    /* Even when other pods make it wait, more than the node is infeasible. */
    v = admit("{\"requests\":{\"cpu\":\"4001m\"}}", 3000, 0);
    assert_int_equal(v.fit, POD_RESIZE_INFEASIBLE);
}

static void short_beside_the_others_is_deferred(void **state)
{
    (void)state;
    pod_resize_verdict_t v = admit("{\"requests\":{\"cpu\":\"1500m\"}}", 3000, 0);
    assert_int_equal(v.fit, POD_RESIZE_DEFERRED);
    assert_string_equal(v.reason, "Deferred");
    assert_string_equal(
        v.message,
        "Node didn't have enough resource: cpu, requested: 1500, used: 3000, capacity: 4000");
    v = admit("{\"requests\":{\"memory\":\"2Gi\"}}", 0, (int64_t)3 << 30);
    assert_int_equal(v.fit, POD_RESIZE_DEFERRED);
    assert_string_equal(v.message, "Node didn't have enough resource: memory, requested: "
                                   "2147483648, used: 3221225472, capacity: 4294967296");
}

static void what_a_running_container_does(void **state)
{
    (void)state;
    pod_resources_t a, b;
    resources_of("{\"limits\":{\"cpu\":\"200m\",\"memory\":\"64Mi\"}}", &a);
    /* Same values in other words: nothing. */
    resources_of("{\"limits\":{\"cpu\":\"0.2\",\"memory\":\"65536Ki\"}}", &b);
    assert_true(pod_resources_equal(&a, &b));
    assert_int_equal(pod_resize_action(&a, &b, true, true), POD_RESIZE_NOTHING);

    /* CPU changed: live unless cpu's policy restarts; memory's does not
     * matter. */
    resources_of("{\"limits\":{\"cpu\":\"500m\",\"memory\":\"64Mi\"}}", &b);
    assert_int_equal(pod_resize_action(&a, &b, false, false), POD_RESIZE_LIVE);
    assert_int_equal(pod_resize_action(&a, &b, false, true), POD_RESIZE_LIVE);
    assert_int_equal(pod_resize_action(&a, &b, true, false), POD_RESIZE_RESTART);
    assert_true(pod_resources_limits_differ(&a, &b));

    /* Memory changed, up or down. */
    resources_of("{\"limits\":{\"cpu\":\"200m\",\"memory\":\"128Mi\"}}", &b);
    assert_int_equal(pod_resize_action(&a, &b, true, false), POD_RESIZE_LIVE);
    assert_int_equal(pod_resize_action(&a, &b, false, true), POD_RESIZE_RESTART);
    assert_int_equal(pod_resize_action(&b, &a, false, true), POD_RESIZE_RESTART);

    /* Both: any restarting resource restarts. */
    resources_of("{\"limits\":{\"cpu\":\"1\",\"memory\":\"128Mi\"}}", &b);
    assert_int_equal(pod_resize_action(&a, &b, false, false), POD_RESIZE_LIVE);
    assert_int_equal(pod_resize_action(&a, &b, false, true), POD_RESIZE_RESTART);

    /* A request alone is a change too (live, and no limit differs). */
    resources_of("{\"requests\":{\"cpu\":\"100m\"},\"limits\":{\"cpu\":\"200m\",\"memory\":"
                 "\"64Mi\"}}",
                 &b);
    assert_false(pod_resources_equal(&a, &b));
    assert_int_equal(pod_resize_action(&a, &b, false, false), POD_RESIZE_LIVE);
    assert_false(pod_resources_limits_differ(&a, &b));
}

static void resize_policy_is_parsed(void **state)
{
    (void)state;
    json_t *pod = pod_with("{}", "[{\"resourceName\":\"memory\",\"restartPolicy\":"
                                 "\"RestartContainer\"},{\"resourceName\":\"cpu\","
                                 "\"restartPolicy\":\"NotRequired\"}]");
    podspec_t *spec = spec_of(pod);
    assert_true(spec->containers[0].resize_restarts_memory);
    assert_false(spec->containers[0].resize_restarts_cpu);
    podspec_free(spec);
    json_decref(pod);
    /* The default: NotRequired for both. */
    pod = pod_with("{}", NULL);
    spec = spec_of(pod);
    assert_false(spec->containers[0].resize_restarts_memory);
    assert_false(spec->containers[0].resize_restarts_cpu);
    podspec_free(spec);
    json_decref(pod);
    /* Something else is refused. */
    pod = pod_with("{}", "[{\"resourceName\":\"cpu\",\"restartPolicy\":\"Sometimes\"}]");
    podspec_t *bad = NULL;
    err_t err;
    assert_int_equal(podspec_parse(pod, &bad, &err), -1);
    assert_non_null(strstr(err.msg, "resizePolicy[0]"));
    json_decref(pod);
}

static void status_forms(void **state)
{
    (void)state;
    pod_resources_t r;
    /* The spec's own words; a request defaulted from its limit takes the
     * limit's. */
    resources_of("{\"requests\":{\"cpu\":\"100m\"},\"limits\":{\"cpu\":\"0.5\",\"memory\":"
                 "\"64Mi\"}}",
                 &r);
    json_t *j = pod_resources_json(&r);
    json_t *want = json_pack("{s:{s:s, s:s}, s:{s:s, s:s}}", "requests", "cpu", "100m", "memory",
                             "64Mi", "limits", "cpu", "0.5", "memory", "64Mi");
    if (!json_equal(j, want)) fail_msg("resources: %s", json_dumps(j, JSON_COMPACT));
    json_decref(want);
    json_decref(j);
    j = pod_resources_requests_json(&r);
    want = json_pack("{s:s, s:s}", "cpu", "100m", "memory", "64Mi");
    assert_true(json_equal(j, want));
    json_decref(want);
    json_decref(j);

    /* Nothing set: no field at all. */
    resources_of("{}", &r);
    assert_null(pod_resources_json(&r));
    assert_null(pod_resources_requests_json(&r));

    /* The resume form round-trips, text included. */
    resources_of("{\"requests\":{\"cpu\":\"250m\",\"memory\":\"100M\"},\"limits\":{\"memory\":"
                 "\"1Gi\"}}",
                 &r);
    json_t *saved = pod_resources_save(&r);
    pod_resources_t back;
    assert_true(pod_resources_load(saved, &back));
    assert_true(pod_resources_equal(&r, &back));
    assert_string_equal(back.text[POD_RES_MEMORY_REQUEST], "100M");
    assert_string_equal(back.text[POD_RES_MEMORY_LIMIT], "1Gi");
    json_decref(saved);
    /* A broken one is refused. */
    json_t *broken = json_pack("{s:[s, s]}", "requests.cpu", "x", "1");
    assert_false(pod_resources_load(broken, &back));
    json_decref(broken);
    assert_false(pod_resources_load(NULL, &back));
}

static void memory_below_usage_message(void **state)
{
    (void)state;
    char msg[256];
    pod_resize_memory_error("app", 33554432, 52428800, msg, sizeof msg);
    assert_string_equal(msg, "cannot decrease memory limits: attempting to set container \"app\" "
                             "memory limit (33554432) below current usage (52428800)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fits_beside_the_others),
        cmocka_unit_test(more_than_the_node_is_infeasible),
        cmocka_unit_test(short_beside_the_others_is_deferred),
        cmocka_unit_test(what_a_running_container_does),
        cmocka_unit_test(resize_policy_is_parsed),
        cmocka_unit_test(status_forms),
        cmocka_unit_test(memory_below_usage_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
