/* test_pod_spec.c: unit tests for kube/pod_spec.h (checking a Pod and
 * copying out what the kubelet acts on) and kube/quantity.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/manifest.h"
#include "kube/pod_spec.h"
#include "kube/quantity.h"
#include "util/err.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first document of a YAML text. */
static json_t *yaml(const char *text)
{
    json_t *docs = NULL;
    err_t err;
    if (manifest_parse(text, strlen(text), &docs, &err) == -1) fail_msg("%s", err.msg);
    json_t *d = json_incref(json_array_get(docs, 0));
    json_decref(docs);
    assert_non_null(d);
    return d;
}

static podspec_t *parse_ok(const char *text)
{
    json_t *pod = yaml(text);
    podspec_t *spec = NULL;
    err_t err;
    if (podspec_parse(pod, &spec, &err) == -1) fail_msg("podspec_parse: %s\n%s", err.msg, text);
    json_decref(pod); /* the spec holds its own reference */
    return spec;
}

/* The pod must be refused with a message containing every one of the
 * NULL-terminated strings. */
static void refused(const char *text, ...)
{
    json_t *pod = yaml(text);
    podspec_t *spec = NULL;
    err_t err = {{0}};
    int rc = podspec_parse(pod, &spec, &err);
    json_decref(pod);
    if (rc != -1) {
        podspec_free(spec);
        fail_msg("accepted:\n%s", text);
    }
    va_list ap;
    va_start(ap, text);
    for (const char *want; (want = va_arg(ap, const char *));)
        if (!strstr(err.msg, want)) fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
    va_end(ap);
}

static const char *FULL = "apiVersion: v1\n"
                          "kind: Pod\n"
                          "metadata:\n"
                          "  name: web\n"
                          "  namespace: shop\n"
                          "  uid: 1234-abcd\n"
                          "  labels: {app: web}\n"
                          "spec:\n"
                          "  nodeName: node-a\n"
                          "  serviceAccountName: builder\n"
                          "  restartPolicy: OnFailure\n"
                          "  activeDeadlineSeconds: 60\n"
                          "  terminationGracePeriodSeconds: 5\n"
                          "  volumes:\n"
                          "    - name: data\n"
                          "      emptyDir: {}\n"
                          "    - name: host\n"
                          "      hostPath: {path: /tmp, type: Directory}\n"
                          "    - name: cfg\n"
                          "      configMap: {name: settings}\n"
                          "  initContainers:\n"
                          "    - name: setup\n"
                          "      image: registry.example/setup:v1\n"
                          "    - name: proxy\n"
                          "      image: registry.example/proxy@sha256:0123\n"
                          "      restartPolicy: Always\n"
                          "  containers:\n"
                          "    - name: app\n"
                          "      image: registry.example/app:1.2\n"
                          "      command: [app, --serve]\n"
                          "      args: [\"--port\", \"8080\"]\n"
                          "      env:\n"
                          "        - {name: A, value: \"1\"}\n"
                          "      envFrom:\n"
                          "        - configMapRef: {name: settings}\n"
                          "      volumeMounts:\n"
                          "        - {name: data, mountPath: /data}\n"
                          "        - {name: host, mountPath: /host, readOnly: true}\n"
                          "        - {name: data, mountPath: /sub, subPath: a/b}\n"
                          "      resources:\n"
                          "        limits: {memory: 128Mi, cpu: 500m}\n"
                          "        requests: {memory: 64Mi, cpu: \"0.25\"}\n"
                          "      livenessProbe: {exec: {command: [true]}}\n"
                          "    - name: latest\n"
                          "      image: registry.example/tool:latest\n"
                          "      resources:\n"
                          "        limits: {memory: 1Gi, cpu: 2}\n"
                          "    - name: untagged\n"
                          "      image: registry.example:5000/team/tool\n"
                          "      imagePullPolicy: Never\n"
                          "    - name: local\n"
                          "      image: ./hello.wasm\n";

/* A newer version of a pod shares the parts that did not change with the
 * older one (a status write's echo keeps no second copy of the spec), and
 * says whether any of spec, labels, annotations changed. */
static void newer_version_shares_unchanged_parts(void **state)
{
    (void)state;
    const char *base = "apiVersion: v1\nkind: Pod\n"
                       "metadata: {name: p, resourceVersion: '1', labels: {app: a}}\n"
                       "spec:\n  containers: [{name: c, image: x.wasm}]\n";
    json_t *old = yaml(base);
    json_t *echo = yaml("apiVersion: v1\nkind: Pod\n"
                        "metadata: {name: p, resourceVersion: '2', labels: {app: a}}\n"
                        "spec:\n  containers: [{name: c, image: x.wasm}]\n"
                        "status: {phase: Running}\n");
    assert_false(pod_object_share_unchanged(old, echo));
    assert_ptr_equal(json_object_get(echo, "spec"), json_object_get(old, "spec"));
    assert_ptr_equal(json_object_get(json_object_get(echo, "metadata"), "labels"),
                     json_object_get(json_object_get(old, "metadata"), "labels"));
    /* The newer version's own fields stay its own. */
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(echo, "metadata"), "resourceVersion")),
        "2");
    /* Shared, not moved: the old version is whole after the new one goes. */
    json_decref(echo);
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(json_object_get(old, "spec"), "containers"), 0),
            "image")),
        "x.wasm");

    /* A changed label is a change; the equal spec is still shared. */
    json_t *relabel = yaml("apiVersion: v1\nkind: Pod\n"
                           "metadata: {name: p, labels: {app: b}}\n"
                           "spec:\n  containers: [{name: c, image: x.wasm}]\n");
    assert_true(pod_object_share_unchanged(old, relabel));
    assert_ptr_equal(json_object_get(relabel, "spec"), json_object_get(old, "spec"));
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(relabel, "metadata"), "labels"), "app")),
        "b");
    json_decref(relabel);

    /* Annotations that appear are a change; absent in both is none. */
    json_t *annotated = yaml("apiVersion: v1\nkind: Pod\n"
                             "metadata: {name: p, labels: {app: a}, annotations: {k: v}}\n"
                             "spec:\n  containers: [{name: c, image: x.wasm}]\n");
    assert_true(pod_object_share_unchanged(old, annotated));
    json_decref(annotated);

    /* A changed spec is a change, and not shared. */
    json_t *respec = yaml("apiVersion: v1\nkind: Pod\n"
                          "metadata: {name: p, labels: {app: a}}\n"
                          "spec:\n  containers: [{name: c, image: y.wasm}]\n");
    assert_true(pod_object_share_unchanged(old, respec));
    assert_ptr_not_equal(json_object_get(respec, "spec"), json_object_get(old, "spec"));
    json_decref(respec);
    json_decref(old);
}

static void valid_pod(void **state)
{
    (void)state;
    podspec_t *s = parse_ok(FULL);
    assert_string_equal(s->name, "web");
    assert_string_equal(s->namespace, "shop");
    assert_string_equal(s->uid, "1234-abcd");
    assert_string_equal(s->node_name, "node-a");
    assert_string_equal(s->service_account, "builder");
    assert_int_equal(s->restart_policy, RESTART_ON_FAILURE);
    assert_string_equal(podspec_restart_name(s->restart_policy), "OnFailure");
    assert_int_equal(s->active_deadline_seconds, 60);
    assert_int_equal(s->termination_grace_period, 5);
    assert_true(json_is_object(s->raw));

    assert_int_equal(s->ninit, 2);
    assert_string_equal(s->init_containers[0].name, "setup");
    assert_false(s->init_containers[0].sidecar);
    assert_string_equal(s->init_containers[0].pull_policy, "IfNotPresent");
    assert_string_equal(s->init_containers[1].name, "proxy");
    assert_true(s->init_containers[1].sidecar);
    assert_string_equal(s->init_containers[1].pull_policy, "IfNotPresent"); /* by digest */

    assert_int_equal(s->ncontainers, 4);
    const podspec_container_t *app = &s->containers[0];
    assert_string_equal(app->name, "app");
    assert_string_equal(app->image, "registry.example/app:1.2");
    assert_string_equal(app->pull_policy, "IfNotPresent");
    assert_int_equal(app->ncommand, 2);
    assert_string_equal(app->command[0], "app");
    assert_string_equal(app->command[1], "--serve");
    assert_int_equal(app->nargs, 2);
    assert_string_equal(app->args[1], "8080");
    assert_true(json_is_array(app->env));
    assert_true(json_is_array(app->env_from));
    assert_int_equal(app->nmounts, 3);
    assert_string_equal(app->mounts[0].name, "data");
    assert_string_equal(app->mounts[0].mount_path, "/data");
    assert_null(app->mounts[0].sub_path);
    assert_false(app->mounts[0].read_only);
    assert_true(app->mounts[1].read_only);
    assert_string_equal(app->mounts[2].sub_path, "a/b");
    assert_true(app->memory_limit == 128 * 1024 * 1024);
    assert_true(app->memory_request == 64 * 1024 * 1024);
    assert_int_equal(app->cpu_limit, 500);
    assert_int_equal(app->cpu_request, 250);
    assert_non_null(app->liveness_probe);
    assert_int_equal(app->liveness_probe->action.kind, ACTION_EXEC);
    assert_null(app->readiness_probe);
    assert_null(app->startup_probe);
    assert_false(app->sidecar);

    const podspec_container_t *latest = &s->containers[1];
    assert_string_equal(latest->pull_policy, "Always");
    assert_true(latest->memory_limit == INT64_C(1) << 30);
    assert_int_equal(latest->cpu_limit, 2000);
    /* Requests default to limits. */
    assert_true(latest->memory_request == INT64_C(1) << 30);
    assert_int_equal(latest->cpu_request, 2000);
    assert_int_equal(latest->ncommand, 0);
    assert_null(latest->env);

    const podspec_container_t *untagged = &s->containers[2];
    assert_string_equal(untagged->pull_policy, "Never"); /* as given */
    assert_int_equal(untagged->memory_limit, 0);
    assert_int_equal(untagged->cpu_limit, 0);

    assert_int_equal(s->nvolumes, 3);
    assert_string_equal(podspec_volume(s, "data")->type, "emptyDir");
    assert_string_equal(podspec_volume(s, "host")->type, "hostPath");
    assert_string_equal(
        json_string_value(json_object_get(podspec_volume(s, "host")->source, "path")), "/tmp");
    assert_string_equal(podspec_volume(s, "cfg")->type, "configMap");
    assert_null(podspec_volume(s, "nope"));
    podspec_free(s);
}

static void defaults(void **state)
{
    (void)state;
    podspec_t *s = parse_ok("apiVersion: v1\n"
                            "kind: Pod\n"
                            "metadata: {name: p}\n"
                            "spec:\n"
                            "  containers:\n"
                            "    - {name: c, image: app}\n"
                            "    - {name: d, image: \"app:v2\"}\n");
    assert_string_equal(s->namespace, "default");
    assert_string_equal(s->uid, "");
    assert_null(s->node_name);
    assert_string_equal(s->service_account, "default");
    assert_int_equal(s->restart_policy, RESTART_ALWAYS);
    assert_string_equal(podspec_restart_name(s->restart_policy), "Always");
    assert_int_equal(s->active_deadline_seconds, -1);
    assert_int_equal(s->termination_grace_period, 30);
    assert_int_equal(s->ninit, 0);
    assert_int_equal(s->nvolumes, 0);
    assert_string_equal(s->containers[0].pull_policy, "Always"); /* no tag = latest */
    assert_string_equal(s->containers[1].pull_policy, "IfNotPresent");
    podspec_free(s);

    /* Never and the apiVersion being optional; JSON works the same. */
    json_t *docs;
    err_t err;
    const char *js = "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"j\"},\"spec\":{\"restartPolicy\":"
                     "\"Never\",\"terminationGracePeriodSeconds\":0,\"containers\":[{\"name\":"
                     "\"c\",\"image\":\"x.wasm\",\"resources\":{\"limits\":{\"memory\":1048576,"
                     "\"cpu\":0.5}}}]}}";
    assert_int_equal(manifest_parse(js, strlen(js), &docs, &err), 0);
    podspec_t *j;
    if (podspec_parse(json_array_get(docs, 0), &j, &err) == -1) fail_msg("%s", err.msg);
    json_decref(docs);
    assert_int_equal(j->restart_policy, RESTART_NEVER);
    assert_int_equal(j->termination_grace_period, 0);
    assert_int_equal(j->containers[0].memory_limit, 1048576); /* a bare integer */
    assert_int_equal(j->containers[0].cpu_limit, 500);        /* a bare real */
    podspec_free(j);
}

#define POD_HEAD "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"

static void invalid_pods(void **state)
{
    (void)state;
    refused("apiVersion: v1\nkind: Deployment\nmetadata: {name: p}\nspec: {}\n", "kind",
            "Deployment", "not a Pod", NULL);
    refused("apiVersion: v1\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n",
            "kind", NULL);
    refused("apiVersion: apps/v1\nkind: Pod\nmetadata: {name: p}\n"
            "spec: {containers: [{name: c, image: i}]}\n",
            "apiVersion", "apps/v1", NULL);
    refused("apiVersion: v1\nkind: Pod\nspec: {containers: [{name: c, image: i}]}\n", "metadata",
            NULL);
    refused("apiVersion: v1\nkind: Pod\nmetadata: {namespace: x}\n"
            "spec: {containers: [{name: c, image: i}]}\n",
            "metadata.name", NULL);
    refused(POD_HEAD, "spec", NULL);
    refused(POD_HEAD "spec: {}\n", "spec.containers", NULL);
    refused(POD_HEAD "spec: {containers: []}\n", "spec.containers", NULL);
    refused(POD_HEAD "spec: {containers: {name: c}}\n", "spec.containers", "list", NULL);
    refused(POD_HEAD "spec:\n  containers:\n    - {name: a, image: i}\n    - {name: b}\n",
            "spec.containers[1].image", NULL);
    refused(POD_HEAD "spec:\n  containers:\n    - {name: a, image: \"\"}\n",
            "spec.containers[0].image", NULL);
    refused(POD_HEAD "spec:\n  containers:\n    - {image: i}\n", "spec.containers[0].name", NULL);
    refused(POD_HEAD "spec:\n  initContainers:\n    - {name: a}\n"
                     "  containers:\n    - {name: b, image: i}\n",
            "spec.initContainers[0].image", NULL);
    refused(POD_HEAD "spec:\n  volumes:\n    - {name: v, nfsx: {server: s}}\n"
                     "  containers:\n    - {name: c, image: i}\n",
            "spec.volumes[0]", "unknown volume type", "nfsx", NULL);
    refused(POD_HEAD "spec:\n  volumes:\n    - {name: v}\n"
                     "  containers:\n    - {name: c, image: i}\n",
            "spec.volumes[0]", "no volume source", NULL);
    refused(POD_HEAD "spec:\n  volumes:\n    - {name: v, emptyDir: {}}\n"
                     "    - {name: v, emptyDir: {}}\n"
                     "  containers:\n    - {name: c, image: i}\n",
            "spec.volumes[1].name", "used twice", NULL);
    refused(POD_HEAD "spec:\n  containers:\n    - name: c\n      image: i\n"
                     "      volumeMounts: [{name: missing, mountPath: /m}]\n",
            "spec.containers[0].volumeMounts[0].name", "missing", NULL);
    refused(POD_HEAD "spec:\n  volumes: [{name: v, emptyDir: {}}]\n"
                     "  initContainers:\n    - name: i\n      image: i\n"
                     "      volumeMounts: [{name: gone, mountPath: /m}]\n"
                     "  containers: [{name: c, image: i}]\n",
            "spec.initContainers[0].volumeMounts[0].name", "gone", NULL);
    refused(POD_HEAD "spec:\n  volumes: [{name: v, emptyDir: {}}]\n"
                     "  containers:\n    - name: c\n      image: i\n"
                     "      volumeMounts: [{name: v, mountPath: relative}]\n",
            "spec.containers[0].volumeMounts[0].mountPath", NULL);
    refused(POD_HEAD "spec:\n  volumes: [{name: v, emptyDir: {}}]\n"
                     "  containers:\n    - name: c\n      image: i\n"
                     "      volumeMounts: [{name: v, mountPath: /m, subPath: ../etc}]\n",
            "spec.containers[0].volumeMounts[0].subPath", NULL);
    refused(POD_HEAD "spec:\n  volumes: [{name: v, emptyDir: {}}]\n"
                     "  containers:\n    - name: c\n      image: i\n"
                     "      volumeMounts: [{name: v, mountPath: /m, subPath: a/../../b}]\n",
            "subPath", NULL);
    refused(POD_HEAD "spec:\n  volumes: [{name: v, emptyDir: {}}]\n"
                     "  containers:\n    - name: c\n      image: i\n"
                     "      volumeMounts: [{name: v, mountPath: /m, subPath: /abs}]\n",
            "subPath", NULL);
    refused(POD_HEAD "spec:\n  containers:\n    - name: c\n      image: i\n"
                     "      resources: {limits: {memory: lots}}\n",
            "spec.containers[0].resources.limits.memory", "lots", NULL);
    refused(POD_HEAD "spec:\n  containers:\n    - name: c\n      image: i\n"
                     "      resources: {requests: {cpu: 1x}}\n",
            "spec.containers[0].resources.requests.cpu", NULL);
    refused(POD_HEAD "spec:\n  containers:\n    - name: c\n      image: i\n"
                     "      resources: {limits: {memory: \"-1Gi\"}}\n",
            "resources.limits.memory", NULL);
    refused(POD_HEAD "spec:\n  restartPolicy: Sometimes\n  containers: [{name: c, image: i}]\n",
            "spec.restartPolicy", "Sometimes", NULL);
    refused(POD_HEAD "spec:\n  activeDeadlineSeconds: 0\n  containers: [{name: c, image: i}]\n",
            "spec.activeDeadlineSeconds", NULL);
    refused(POD_HEAD "spec:\n  activeDeadlineSeconds: soon\n  containers: [{name: c, image: i}]\n",
            "spec.activeDeadlineSeconds", NULL);
    refused(POD_HEAD
            "spec:\n  containers:\n    - {name: c, image: i, imagePullPolicy: Sometimes}\n",
            "spec.containers[0].imagePullPolicy", NULL);
    refused(POD_HEAD "spec:\n  containers:\n    - {name: c, image: i, command: run}\n",
            "spec.containers[0].command", NULL);
    refused(POD_HEAD "spec:\n  containers:\n    - {name: c, image: i, args: [a, [b]]}\n",
            "spec.containers[0].args[1]", NULL);
    refused(POD_HEAD "spec:\n  containers:\n    - {name: c, image: i, env: [{value: x}]}\n",
            "spec.containers[0].env[0].name", NULL);
    /* restartPolicy on a container is only for sidecars (init containers). */
    refused(POD_HEAD "spec:\n  containers:\n    - {name: c, image: i, restartPolicy: Always}\n",
            "spec.containers[0].restartPolicy", NULL);
    refused(POD_HEAD "spec:\n  initContainers:\n    - {name: s, image: i, restartPolicy: Never}\n"
                     "  containers: [{name: c, image: i}]\n",
            "spec.initContainers[0].restartPolicy", NULL);
    refused("[1, 2]\n", NULL);
}

/* A duplicate name is refused naming the second one's field, as every other
 * check does (and as the API server does: spec.containers[1].name:
 * Duplicate value). */
static void duplicate_names_name_the_field(void **state)
{
    (void)state;
    refused(POD_HEAD "spec:\n  containers:\n    - {name: c, image: i}\n    - {name: c, image: j}\n",
            "spec.containers[1].name", "\"c\"", NULL);
    /* An init container and an app container share one namespace of names. */
    refused(POD_HEAD "spec:\n  initContainers:\n    - {name: c, image: i}\n"
                     "  containers:\n    - {name: c, image: i}\n",
            "spec.containers[0].name", "\"c\"", NULL);
    refused(POD_HEAD "spec:\n  initContainers:\n    - {name: a, image: i}\n"
                     "    - {name: a, image: i}\n"
                     "  containers:\n    - {name: c, image: i}\n",
            "spec.initContainers[1].name", "\"a\"", NULL);
}

/* --- quantities ------------------------------------------------------------- */

static void quantity_table(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t milli; /* thousandths */
        int64_t value; /* rounded up to whole units */
    } ok[] = {
        {"0", 0, 0},
        {"1", 1000, 1},
        {"500m", 500, 1},
        {"1500m", 1500, 2},
        {"2", 2000, 2},
        {"0.5", 500, 1},
        {"0.25", 250, 1},
        {"1.5", 1500, 2},
        {".5", 500, 1},
        {"100m", 100, 1},
        {"1Ki", 1024000, 1024},
        {"128Mi", INT64_C(134217728000), 134217728},
        {"1Gi", INT64_C(1073741824000), INT64_C(1073741824)},
        {"1.5Gi", INT64_C(1610612736000), INT64_C(1610612736)},
        {"2Ti", INT64_C(2199023255552000), INT64_C(2199023255552)},
        {"1Pi", INT64_C(1125899906842624000), INT64_C(1125899906842624)},
        {"1k", 1000000, 1000},
        {"1M", INT64_C(1000000000), 1000000},
        {"1G", INT64_C(1000000000000), INT64_C(1000000000)},
        {"1.5G", INT64_C(1500000000000), INT64_C(1500000000)},
        {"1T", INT64_C(1000000000000000), INT64_C(1000000000000)},
        {"2e3", 2000000, 2000},
        {"1E3", 1000000, 1000},
        {"1e-3", 1, 1},
        {"+3", 3000, 3},
        {"1u", 1, 1},       /* 0.000001 rounds up to 1 milli */
        {"1n", 1, 1},       /* rounds up too */
        {"0.0001", 1, 1},   /* below a milli rounds up */
        {"1001m", 1001, 2}, /* rounds up to 2 */
        {"-500m", -500, 0},
        {"-2", -2000, -2},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t m = 0, v = 0;
        if (quantity_parse_milli(ok[i].text, &m) != 0) fail_msg("%s: refused", ok[i].text);
        if (m != ok[i].milli)
            fail_msg("%s: %lld milli, want %lld", ok[i].text, (long long)m, (long long)ok[i].milli);
        assert_int_equal(quantity_parse(ok[i].text, &v), 0);
        if (v != ok[i].value)
            fail_msg("%s: %lld, want %lld", ok[i].text, (long long)v, (long long)ok[i].value);
    }
    static const char *const bad[] = {"",     "Mi",   "abc",  "1.5.5", "1 Mi", " 1",
                                      "1Mi ", "1mi",  "1KI",  "1X",    "1e",   "1e99",
                                      "--1",  "1..5", "0x10", "1iB",   "1e3m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t m = 12345;
        if (quantity_parse_milli(bad[i], &m) != -1)
            fail_msg("\"%s\" accepted as %lld milli", bad[i], (long long)m);
        assert_int_equal(m, 12345); /* untouched */
        assert_int_equal(quantity_parse(bad[i], &m), -1);
    }
    int64_t m;
    assert_int_equal(quantity_parse_milli(NULL, &m), -1);
    /* Thousandths must fit in int64: 8Pi does, an exa does not. */
    assert_int_equal(quantity_parse("8Ei", &m), -1);
    assert_int_equal(quantity_parse("1Ei", &m), -1);
    assert_int_equal(quantity_parse("1E", &m), -1);
    assert_int_equal(quantity_parse("8Pi", &m), 0);
    assert_true(m == INT64_C(9007199254740992));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(newer_version_shares_unchanged_parts),
        cmocka_unit_test(valid_pod),
        cmocka_unit_test(defaults),
        cmocka_unit_test(invalid_pods),
        cmocka_unit_test(duplicate_names_name_the_field),
        cmocka_unit_test(quantity_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
