/* test_admission.c: unit tests for pod/admission.h, the kubelet's
 * admission verdict: resources in the kubelet's order and words, and node
 * affinity (nodeSelector, required nodeSelectorTerms with every operator
 * and matchFields metadata.name) against the Node's labels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pod/admission.h"

#include <string.h>

#define NODE_AFFINITY_MSG                                                                          \
    "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"

/* A Pod with one container and the given extra spec fields (a JSON
 * object's members, without braces). */
static json_t *pod_with(const char *spec_extra, const char *resources)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\","
             "\"namespace\":\"default\",\"uid\":\"u1\"},\"spec\":{%s%s\"containers\":[{"
             "\"name\":\"app\",\"image\":\"app.wasm\"%s}]}}",
             spec_extra ? spec_extra : "", spec_extra && *spec_extra ? "," : "",
             resources ? resources : "");
    json_error_t jerr;
    json_t *pod = json_loads(text, 0, &jerr);
    if (!pod) fail_msg("bad test pod: %s: %s", jerr.text, text);
    return pod;
}

static json_t *labels(void)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "kubernetes.io/arch", "wasm32-wasi",
                     "kubernetes.io/hostname", "wasm-1", "pool", "blue", "slots", "8");
}

static pod_admission_node_t node_of(json_t *l)
{
    return (pod_admission_node_t){.name = "wasm-1",
                                  .labels = l,
                                  .allocatable_cpu = 1000,
                                  .allocatable_memory = 1 << 30,
                                  .max_pods = 10};
}

/* The verdict for a pod with spec_extra on the usual node. */
static pod_admission_t verdict(const char *spec_extra)
{
    json_t *l = labels();
    pod_admission_node_t n = node_of(l);
    json_t *pod = pod_with(spec_extra, NULL);
    pod_admission_t v;
    pod_admit(pod, &n, &v);
    json_decref(pod);
    json_decref(l);
    return v;
}

static void assert_admitted(const char *spec_extra)
{
    pod_admission_t v = verdict(spec_extra);
    if (!v.admit) fail_msg("rejected (%s: %s): %s", v.reason, v.message, spec_extra);
}

static void assert_node_affinity(const char *spec_extra)
{
    pod_admission_t v = verdict(spec_extra);
    if (v.admit) fail_msg("admitted: %s", spec_extra);
    assert_string_equal(v.reason, "NodeAffinity");
    assert_string_equal(v.message, NODE_AFFINITY_MSG);
}

/* A required node affinity with one term holding exprs and fields
 * (either may be NULL). */
static const char *affinity(char *buf, size_t len, const char *exprs, const char *fields)
{
    char term[1500];
    snprintf(term, sizeof term, "%s%s%s%s%s%s%s", exprs ? "\"matchExpressions\":[" : "",
             exprs ? exprs : "", exprs ? "]" : "", exprs && fields ? "," : "",
             fields ? "\"matchFields\":[" : "", fields ? fields : "", fields ? "]" : "");
    snprintf(buf, len,
             "\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
             "{\"nodeSelectorTerms\":[{%s}]}}}",
             term);
    return buf;
}

static void no_constraints(void **state)
{
    (void)state;
    assert_admitted("");
}

static void node_selector(void **state)
{
    (void)state;
    assert_admitted("\"nodeSelector\":{\"kubernetes.io/arch\":\"wasm32-wasi\"}");
    assert_admitted("\"nodeSelector\":{\"kubernetes.io/arch\":\"wasm32-wasi\","
                    "\"kubernetes.io/hostname\":\"wasm-1\"}");
    assert_node_affinity("\"nodeSelector\":{\"kubernetes.io/arch\":\"amd64\"}");
    /* Every pair must match: one wrong is enough to reject. */
    assert_node_affinity("\"nodeSelector\":{\"kubernetes.io/arch\":\"wasm32-wasi\","
                         "\"pool\":\"green\"}");
    assert_node_affinity("\"nodeSelector\":{\"missing\":\"x\"}");
    /* The value must be equal, not a prefix. */
    assert_node_affinity("\"nodeSelector\":{\"pool\":\"blu\"}");
}

static void operators(void **state)
{
    (void)state;
    char b[2048];
#define EXPR(k, op, vals) "{\"key\":\"" k "\",\"operator\":\"" op "\"" vals "}"
    assert_admitted(
        affinity(b, sizeof b, EXPR("pool", "In", ",\"values\":[\"red\",\"blue\"]"), NULL));
    assert_node_affinity(affinity(b, sizeof b, EXPR("pool", "In", ",\"values\":[\"red\"]"), NULL));
    assert_node_affinity(affinity(b, sizeof b, EXPR("nolabel", "In", ",\"values\":[\"x\"]"), NULL));
    assert_admitted(affinity(b, sizeof b, EXPR("pool", "NotIn", ",\"values\":[\"red\"]"), NULL));
    assert_node_affinity(
        affinity(b, sizeof b, EXPR("pool", "NotIn", ",\"values\":[\"blue\"]"), NULL));
    /* NotIn of a label the node lacks matches. */
    assert_admitted(affinity(b, sizeof b, EXPR("nolabel", "NotIn", ",\"values\":[\"x\"]"), NULL));
    assert_admitted(affinity(b, sizeof b, EXPR("pool", "Exists", ""), NULL));
    assert_node_affinity(affinity(b, sizeof b, EXPR("nolabel", "Exists", ""), NULL));
    assert_admitted(affinity(b, sizeof b, EXPR("nolabel", "DoesNotExist", ""), NULL));
    assert_node_affinity(affinity(b, sizeof b, EXPR("pool", "DoesNotExist", ""), NULL));
    assert_admitted(affinity(b, sizeof b, EXPR("slots", "Gt", ",\"values\":[\"7\"]"), NULL));
    assert_node_affinity(affinity(b, sizeof b, EXPR("slots", "Gt", ",\"values\":[\"8\"]"), NULL));
    assert_admitted(affinity(b, sizeof b, EXPR("slots", "Lt", ",\"values\":[\"9\"]"), NULL));
    assert_node_affinity(affinity(b, sizeof b, EXPR("slots", "Lt", ",\"values\":[\"8\"]"), NULL));
    /* Gt on a label that is not a number, or absent: no match. */
    assert_node_affinity(affinity(b, sizeof b, EXPR("pool", "Gt", ",\"values\":[\"1\"]"), NULL));
    assert_node_affinity(affinity(b, sizeof b, EXPR("nolabel", "Lt", ",\"values\":[\"1\"]"), NULL));
    /* Expressions of a term are ANDed. */
    assert_admitted(affinity(
        b, sizeof b,
        EXPR("pool", "In", ",\"values\":[\"blue\"]") "," EXPR("slots", "Gt", ",\"values\":[\"1\"]"),
        NULL));
    assert_node_affinity(affinity(
        b, sizeof b,
        EXPR("pool", "In", ",\"values\":[\"blue\"]") "," EXPR("slots", "Gt", ",\"values\":[\"9\"]"),
        NULL));
}

static void malformed_terms_select_nothing(void **state)
{
    (void)state;
    char b[2048];
    /* In/NotIn need values, Exists/DoesNotExist take none, Gt/Lt one
     * integer; an unknown operator is invalid: the term selects no node. */
    assert_node_affinity(affinity(b, sizeof b, EXPR("pool", "In", ",\"values\":[]"), NULL));
    assert_node_affinity(affinity(b, sizeof b, EXPR("nolabel", "NotIn", ""), NULL));
    assert_node_affinity(
        affinity(b, sizeof b, EXPR("pool", "Exists", ",\"values\":[\"blue\"]"), NULL));
    assert_node_affinity(affinity(b, sizeof b, EXPR("slots", "Gt", ",\"values\":[\"x\"]"), NULL));
    assert_node_affinity(
        affinity(b, sizeof b, EXPR("slots", "Gt", ",\"values\":[\"1\",\"2\"]"), NULL));
    assert_node_affinity(
        affinity(b, sizeof b, EXPR("pool", "Equals", ",\"values\":[\"blue\"]"), NULL));
    /* An empty term selects nothing. */
    assert_node_affinity("\"affinity\":{\"nodeAffinity\":{"
                         "\"requiredDuringSchedulingIgnoredDuringExecution\":{"
                         "\"nodeSelectorTerms\":[{}]}}}");
    /* No terms at all: nothing matches either. */
    assert_node_affinity("\"affinity\":{\"nodeAffinity\":{"
                         "\"requiredDuringSchedulingIgnoredDuringExecution\":{"
                         "\"nodeSelectorTerms\":[]}}}");
}

static void terms_are_ored(void **state)
{
    (void)state;
    const char *two =
        "\"affinity\":{\"nodeAffinity\":{"
        "\"requiredDuringSchedulingIgnoredDuringExecution\":{\"nodeSelectorTerms\":["
        "{\"matchExpressions\":[" EXPR(
            "pool", "In", ",\"values\":[\"red\"]") "]},"
                                                   "{\"matchExpressions\":[" EXPR(
                                                       "pool", "In",
                                                       ",\"values\":[\"blue\"]") "]}"
                                                                                 "]}}}";
    assert_admitted(two);
    /* A malformed term does not spoil a good one beside it. */
    const char *bad_and_good =
        "\"affinity\":{\"nodeAffinity\":{"
        "\"requiredDuringSchedulingIgnoredDuringExecution\":{\"nodeSelectorTerms\":["
        "{\"matchExpressions\":[" EXPR("pool", "Bogus", "") "]},"
                                                            "{\"matchExpressions\":[" EXPR(
                                                                "pool", "Exists", "") "]}"
                                                                                      "]}}}";
    assert_admitted(bad_and_good);
    /* The preferred affinity is not admission's business. */
    assert_admitted("\"affinity\":{\"nodeAffinity\":{"
                    "\"preferredDuringSchedulingIgnoredDuringExecution\":[{\"weight\":1,"
                    "\"preference\":{\"matchExpressions\":[" EXPR(
                        "pool", "In", ",\"values\":[\"red\"]") "]}}]}}");
    /* nodeSelector and affinity must both match. */
    char b[2048];
    char both[2300];
    snprintf(both, sizeof both, "\"nodeSelector\":{\"pool\":\"red\"},%s",
             affinity(b, sizeof b, EXPR("pool", "Exists", ""), NULL));
    assert_node_affinity(both);
}

static void match_fields(void **state)
{
    (void)state;
    char b[2048];
    assert_admitted(
        affinity(b, sizeof b, NULL, EXPR("metadata.name", "In", ",\"values\":[\"wasm-1\"]")));
    assert_node_affinity(
        affinity(b, sizeof b, NULL, EXPR("metadata.name", "In", ",\"values\":[\"other\"]")));
    assert_admitted(
        affinity(b, sizeof b, NULL, EXPR("metadata.name", "NotIn", ",\"values\":[\"other\"]")));
    assert_node_affinity(
        affinity(b, sizeof b, NULL, EXPR("metadata.name", "NotIn", ",\"values\":[\"wasm-1\"]")));
    /* Only metadata.name is a node field; only In/NotIn of one value. */
    assert_node_affinity(
        affinity(b, sizeof b, NULL, EXPR("metadata.uid", "In", ",\"values\":[\"wasm-1\"]")));
    assert_node_affinity(affinity(b, sizeof b, NULL, EXPR("metadata.name", "Exists", "")));
    assert_node_affinity(affinity(
        b, sizeof b, NULL, EXPR("metadata.name", "In", ",\"values\":[\"wasm-1\",\"other\"]")));
    /* Fields and expressions of one term are ANDed. */
    assert_node_affinity(affinity(b, sizeof b, EXPR("pool", "In", ",\"values\":[\"red\"]"),
                                  EXPR("metadata.name", "In", ",\"values\":[\"wasm-1\"]")));
    assert_admitted(affinity(b, sizeof b, EXPR("pool", "In", ",\"values\":[\"blue\"]"),
                             EXPR("metadata.name", "In", ",\"values\":[\"wasm-1\"]")));
#undef EXPR
}

static void resources_come_first(void **state)
{
    (void)state;
    json_t *l = labels();
    pod_admission_node_t n = node_of(l);
    n.used_cpu = 600;
    json_t *pod = pod_with("\"nodeSelector\":{\"kubernetes.io/arch\":\"amd64\"}",
                           ",\"resources\":{\"requests\":{\"cpu\":\"600m\"}}");
    pod_admission_t v;
    pod_admit(pod, &n, &v);
    assert_false(v.admit);
    assert_string_equal(v.reason, "OutOfcpu");
    assert_string_equal(v.message, "Node didn't have enough resource: cpu, requested: 600, used: "
                                   "600, capacity: 1000");
    /* Pods before cpu. */
    n.used_pods = 10;
    pod_admit(pod, &n, &v);
    assert_string_equal(v.reason, "OutOfpods");
    assert_string_equal(v.message,
                        "Node didn't have enough resource: pods, requested: 1, used: 10, "
                        "capacity: 10");
    json_decref(pod);
    /* Memory. */
    n.used_pods = 0;
    pod = pod_with(NULL, ",\"resources\":{\"requests\":{\"memory\":\"2Gi\"}}");
    pod_admit(pod, &n, &v);
    assert_string_equal(v.reason, "OutOfmemory");
    assert_non_null(
        strstr(v.message, "memory, requested: 2147483648, used: 0, capacity: 1073741824"));
    json_decref(pod);
    /* What fits is admitted, a request of 0 always fits the resource. */
    n.used_cpu = 400;
    pod = pod_with(NULL, ",\"resources\":{\"requests\":{\"cpu\":\"600m\"}}");
    pod_admit(pod, &n, &v);
    assert_true(v.admit);
    assert_string_equal(v.reason, "");
    json_decref(pod);
    json_decref(l);
}

static void unknown_labels_skip_affinity(void **state)
{
    (void)state;
    pod_admission_node_t n = node_of(NULL);
    json_t *pod = pod_with("\"nodeSelector\":{\"kubernetes.io/arch\":\"wasm32-wasi\"}", NULL);
    pod_admission_t v;
    /* A node with no labels matches no selector... */
    pod_admit(pod, &n, &v);
    assert_false(v.admit);
    assert_string_equal(v.reason, "NodeAffinity");
    /* ...but labels that could not be read are not "no labels". */
    n.labels_unknown = true;
    pod_admit(pod, &n, &v);
    assert_true(v.admit);
    json_decref(pod);
}

static void init_containers_requests(void **state)
{
    (void)state;
    json_t *pod = json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:{s:[{s:s, s:s, s:{s:{s:s, s:s}}}], s:[{s:s, s:s, "
        "s:{s:{s:s}}}, {s:s, s:s, s:{s:{s:s}}}]}}",
        "apiVersion", "v1", "kind", "Pod", "metadata", "name", "p", "uid", "u", "spec",
        "initContainers", "name", "init", "image", "i.wasm", "resources", "requests", "cpu", "900m",
        "memory", "1Mi", "containers", "name", "a", "image", "a.wasm", "resources", "requests",
        "cpu", "200m", "name", "b", "image", "b.wasm", "resources", "requests", "memory", "3Mi");
    int64_t cpu, mem;
    pod_admission_requests(pod, &cpu, &mem);
    assert_int_equal(cpu, 900);             /* the init container's is larger */
    assert_int_equal(mem, 3 * 1024 * 1024); /* the apps' sum is larger */
    json_decref(pod);
    /* A pod that does not parse requests nothing. */
    json_t *bad = json_pack("{s:s}", "kind", "Pod");
    pod_admission_requests(bad, &cpu, &mem);
    assert_int_equal(cpu, 0);
    assert_int_equal(mem, 0);
    json_decref(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_constraints),
        cmocka_unit_test(node_selector),
        cmocka_unit_test(operators),
        cmocka_unit_test(malformed_terms_select_nothing),
        cmocka_unit_test(terms_are_ored),
        cmocka_unit_test(match_fields),
        cmocka_unit_test(resources_come_first),
        cmocka_unit_test(unknown_labels_skip_affinity),
        cmocka_unit_test(init_containers_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
