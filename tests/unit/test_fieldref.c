/* test_fieldref.c: unit tests for kube/fieldref.h, the one resolver of
 * fieldRef and resourceFieldRef that env vars and downwardAPI volumes
 * share: every supported fieldPath, whole label/annotation maps (volumes
 * only) in the kubelet's format, malformed paths, requests and limits with
 * divisors and rounding, the node's allocatable for a missing limit, and
 * values near the int64 range. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/fieldref.h"
#include "kube/manifest.h"
#include "kube/pod_spec.h"
#include "util/err.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

static const kube_node_facts_t node = {
    .node_name = "node-7",
    .host_ip = "192.0.2.10",
    .allocatable_cpu = 4000,
    .allocatable_memory = INT64_C(8) << 30,
};

static podspec_t *pod(const char *spec_yaml)
{
    char *text = xasprintf("apiVersion: v1\n"
                           "kind: Pod\n"
                           "metadata:\n"
                           "  name: web-1\n"
                           "  namespace: shop\n"
                           "  uid: 0f1e2d3c-aaaa-bbbb-cccc-000000000001\n"
                           "  labels: {tier: front, app: web, \"x.example/role\": \"a\\\"b\"}\n"
                           "  annotations: {note: \"line1\\nline2\\t\\u00e9\"}\n"
                           "spec:\n"
                           "%s",
                           spec_yaml);
    json_t *docs;
    err_t err;
    if (manifest_parse(text, strlen(text), &docs, &err) == -1) fail_msg("%s", err.msg);
    podspec_t *spec;
    if (podspec_parse(json_array_get(docs, 0), &spec, &err) == -1) fail_msg("%s", err.msg);
    json_decref(docs);
    free(text);
    return spec;
}

static void field_is(const podspec_t *p, const char *path, unsigned flags, const char *want)
{
    err_t err = {0};
    char *got = kube_fieldref(&node, p, path, flags, &err);
    if (!got) fail_msg("%s: %s", path, err.msg);
    if (strcmp(got, want) != 0) fail_msg("%s: \"%s\", want \"%s\"", path, got, want);
    free(got);
}

static void field_fails(const podspec_t *p, const char *path, unsigned flags)
{
    err_t err = {0};
    char *got = kube_fieldref(&node, p, path, flags, &err);
    if (got) fail_msg("%s: accepted as \"%s\"", path, got);
    assert_non_null(strstr(err.msg, "unsupported fieldPath"));
}

static void field_paths(void **state)
{
    (void)state;
    podspec_t *p = pod("  serviceAccountName: robot\n"
                       "  containers: [{name: app, image: app.wasm}]\n");
    field_is(p, "metadata.name", 0, "web-1");
    field_is(p, "metadata.namespace", 0, "shop");
    field_is(p, "metadata.uid", 0, "0f1e2d3c-aaaa-bbbb-cccc-000000000001");
    field_is(p, "spec.serviceAccountName", 0, "robot");
    /* No nodeName of its own: the node's. */
    field_is(p, "spec.nodeName", 0, "node-7");
    /* A WASI module has no network of its own: every IP is the node's. */
    field_is(p, "status.hostIP", 0, "192.0.2.10");
    field_is(p, "status.hostIPs", 0, "192.0.2.10");
    field_is(p, "status.podIP", 0, "192.0.2.10");
    field_is(p, "status.podIPs", 0, "192.0.2.10");
    field_is(p, "metadata.labels['app']", 0, "web");
    field_is(p, "metadata.labels[\"x.example/role\"]", 0, "a\"b");
    field_is(p, "metadata.annotations['note']", 0, "line1\nline2\t\xc3\xa9");
    /* An absent key is an empty value, as the kubelet gives. */
    field_is(p, "metadata.labels['nope']", 0, "");
    /* Whole maps: only when asked for (downwardAPI volumes), sorted by
     * key, values as Go's %q (escapes, UTF-8 kept). */
    field_is(p, "metadata.labels", KUBE_FIELDREF_WHOLE_MAPS,
             "app=\"web\"\ntier=\"front\"\nx.example/role=\"a\\\"b\"");
    field_is(p, "metadata.annotations", KUBE_FIELDREF_WHOLE_MAPS,
             "note=\"line1\\nline2\\t\xc3\xa9\"");
    field_fails(p, "metadata.labels", 0);
    field_fails(p, "metadata.annotations", 0);
    static const char *const bad[] = {"metadata.labels[app]",
                                      "metadata.labels['app'",
                                      "metadata.labels['app']x",
                                      "metadata.labels['app\"]",
                                      "metadata.generateName",
                                      "spec.nonsense",
                                      "",
                                      "metadata.labelsx"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        field_fails(p, bad[i], KUBE_FIELDREF_WHOLE_MAPS);
    podspec_free(p);

    /* The pod's own nodeName wins; no host IP known: empty. */
    p = pod("  nodeName: pinned\n"
            "  containers: [{name: app, image: app.wasm}]\n");
    field_is(p, "spec.nodeName", 0, "pinned");
    kube_node_facts_t bare = {0};
    err_t err;
    char *v = kube_fieldref(&bare, p, "status.podIP", 0, &err);
    assert_string_equal(v, "");
    free(v);
    podspec_free(p);

    /* A pod without labels: an empty map, an empty value. */
    p = pod("  containers: [{name: app, image: app.wasm}]\n");
    json_object_del(json_object_get(p->raw, "metadata"), "labels");
    field_is(p, "metadata.labels", KUBE_FIELDREF_WHOLE_MAPS, "");
    field_is(p, "metadata.labels['app']", 0, "");
    podspec_free(p);
}

/* resourceFieldRef given as YAML, for container self. */
static char *resource(const podspec_t *p, const podspec_container_t *self, const char *ref_yaml,
                      err_t *err)
{
    char *text = xasprintf("ref: {%s}\n", ref_yaml);
    json_t *docs;
    if (manifest_parse(text, strlen(text), &docs, err) == -1) fail_msg("%s", err->msg);
    free(text);
    json_t *ref = json_object_get(json_array_get(docs, 0), "ref");
    char *v = kube_resource_fieldref(&node, p, self, ref, err);
    json_decref(docs);
    return v;
}

static void resource_is(const podspec_t *p, const char *ref_yaml, const char *want)
{
    err_t err = {0};
    char *got = resource(p, &p->containers[0], ref_yaml, &err);
    if (!got) fail_msg("%s: %s", ref_yaml, err.msg);
    if (strcmp(got, want) != 0) fail_msg("%s: \"%s\", want \"%s\"", ref_yaml, got, want);
    free(got);
}

static void resource_fails(const podspec_t *p, const char *ref_yaml, const char *want)
{
    err_t err = {0};
    char *got = resource(p, &p->containers[0], ref_yaml, &err);
    if (got) fail_msg("%s: accepted as \"%s\"", ref_yaml, got);
    if (!strstr(err.msg, want)) fail_msg("%s: \"%s\" lacks \"%s\"", ref_yaml, err.msg, want);
}

static void resource_refs(void **state)
{
    (void)state;
    podspec_t *p = pod("  initContainers:\n"
                       "    - {name: init, image: i.wasm, resources: {limits: {memory: 32Mi}}}\n"
                       "  containers:\n"
                       "    - name: app\n"
                       "      image: app.wasm\n"
                       "      resources:\n"
                       "        limits: {memory: 128Mi, cpu: 500m, ephemeral-storage: 2Gi}\n"
                       "        requests: {memory: 100M, cpu: 250m}\n"
                       "    - {name: side, image: s.wasm}\n");
    resource_is(p, "resource: limits.memory", "134217728");
    resource_is(p, "resource: limits.memory, divisor: 1Mi", "128");
    resource_is(p, "resource: requests.memory, divisor: 1Mi", "96"); /* 95.4 rounds up */
    resource_is(p, "resource: requests.memory, divisor: 1M", "100");
    resource_is(p, "resource: limits.cpu", "1"); /* 500m of one core, rounded up */
    resource_is(p, "resource: limits.cpu, divisor: 1m", "500");
    resource_is(p, "resource: limits.cpu, divisor: 1", "1");
    resource_is(p, "resource: requests.cpu, divisor: 1m", "250");
    resource_is(p, "resource: limits.cpu, divisor: \"0\"", "1");
    resource_is(p, "resource: limits.cpu, divisor: 0", "1");
    resource_is(p, "resource: limits.ephemeral-storage, divisor: 1Gi", "2");
    resource_is(p, "resource: requests.ephemeral-storage", "0");
    /* containerName picks another container (init ones too); one without
     * limits reads the node's allocatable, without requests 0. */
    resource_is(p, "containerName: side, resource: limits.memory", "8589934592");
    resource_is(p, "containerName: side, resource: limits.cpu, divisor: 1m", "4000");
    resource_is(p, "containerName: side, resource: requests.cpu, divisor: 1m", "0");
    resource_is(p, "containerName: init, resource: limits.memory, divisor: 1Mi", "32");
    resource_fails(p, "containerName: ghost, resource: limits.cpu", "ghost");
    resource_fails(p, "divisor: 1m", "resource is required");
    resource_fails(p, "resource: limits.gpu", "limits.gpu");
    resource_fails(p, "resource: limits.cpu, divisor: zero", "divisor");
    resource_fails(p, "resource: limits.cpu, divisor: \"-1\"", "divisor");
    podspec_free(p);
}

/* A limit and a divisor both near the int64 range (in thousandths of a
 * byte) once overflowed the rounding (value + divisor - 1). */
static void huge_values_do_not_overflow(void **state)
{
    (void)state;
    podspec_t *p = pod("  containers:\n"
                       "    - name: app\n"
                       "      image: app.wasm\n"
                       "      resources: {limits: {memory: 8P, ephemeral-storage: 9P}}\n");
    resource_is(p, "resource: limits.memory, divisor: 2P", "4");
    resource_is(p, "resource: limits.memory, divisor: 3P", "3");
    resource_is(p, "resource: limits.memory, divisor: 9P", "1");
    resource_is(p, "resource: limits.ephemeral-storage, divisor: 4P", "3");
    resource_is(p, "resource: limits.memory, divisor: 1m", "8000000000000000000");
    podspec_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(field_paths),
        cmocka_unit_test(resource_refs),
        cmocka_unit_test(huge_values_do_not_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
