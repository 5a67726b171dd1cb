/* test_env.c: unit tests for pod/env.h: $(VAR) expansion, the order and
 * precedence of env sources, ConfigMap/Secret references through a fake
 * host lookup, the downward API (fieldRef, resourceFieldRef) and argv. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/manifest.h"
#include "kube/pod_spec.h"
#include "pod/env.h"
#include "util/err.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- $(VAR) expansion --------------------------------------------------------- */

/* A lookup over a NULL-terminated list of "NAME=value". */
static const char *list_lookup(void *ctx, const char *name, size_t len)
{
    for (const char *const *e = ctx; *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') return *e + len + 1;
    return NULL;
}

static void expands(const char *text, const char *want)
{
    static const char *const vars[] = {
        "A=alpha", "B=beta", "EMPTY=", "DOLLAR=$(A)", "X_1=under", NULL};
    char *got = pod_env_expand(text, list_lookup, (void *)vars);
    if (strcmp(got, want) != 0) fail_msg("expand \"%s\": \"%s\", want \"%s\"", text, got, want);
    free(got);
}

static void expansion_rules(void **state)
{
    (void)state;
    expands("", "");
    expands("plain", "plain");
    expands("$(A)", "alpha");
    expands("$(A)$(B)", "alphabeta");
    expands("x-$(A)-y", "x-alpha-y");
    expands("$(X_1)", "under");
    expands("$(EMPTY)", "");
    expands("[$(EMPTY)]", "[]");
    /* Undefined references stay as written. */
    expands("$(NOPE)", "$(NOPE)");
    expands("a $(NOPE) b $(A)", "a $(NOPE) b alpha");
    /* $$ is a literal $, and escapes a reference. */
    expands("$$", "$");
    expands("$$(A)", "$(A)");
    expands("$$$(A)", "$alpha");
    expands("$$$$(A)", "$$(A)");
    expands("cost: $$5", "cost: $5");
    /* A lone $ and unclosed references are kept. */
    expands("$", "$");
    expands("a$", "a$");
    expands("$A", "$A");
    expands("$(A", "$(A");
    expands("$(", "$(");
    expands("$()", "$()");
    /* A value is not expanded again. */
    expands("$(DOLLAR)", "$(A)");
    /* Nested references are not a thing: the first ) ends the name. */
    expands("$(A$(B))", "$(A$(B))");
    /* Names are exact: a prefix or a name with = does not match. */
    expands("$(AA)", "$(AA)");
    expands("$(A=alpha)", "$(A=alpha)");
}

/* --- a fake host ------------------------------------------------------------------ */

typedef struct fake {
    json_t *configmaps; /* name -> {key: value} */
    json_t *secrets;
    int lookups;
    bool fail_lookup; /* the API server is unreachable */
    strvec_t *warmed; /* objects warmed, in call order */
} fake_t;

static int fake_lookup(void *ctx, const char *ns, bool secret, const char *name, json_t **data,
                       err_t *err)
{
    fake_t *f = ctx;
    f->lookups++;
    assert_string_equal(ns, "shop");
    if (f->fail_lookup) return err_set(err, "the API server is not reachable");
    json_t *v = json_object_get(secret ? f->secrets : f->configmaps, name);
    *data = v ? json_deep_copy(v) : NULL;
    return 0;
}

static json_t *fake_service_env(void *ctx, const podspec_t *p)
{
    (void)ctx;
    assert_string_equal(p->namespace, "shop");
    return json_pack("{s:s, s:s}", "KUBERNETES_SERVICE_HOST", "10.0.0.1", "SHARED", "from-service");
}

static pod_host_t host_for(fake_t *f)
{
    pod_host_t h = {
        .ctx = f,
        .node_name = "node-7",
        .host_ip = "192.0.2.10",
        .node_allocatable_cpu = 4000,
        .node_allocatable_memory = INT64_C(8) << 30,
        .lookup = fake_lookup,
    };
    return h;
}

static void fake_init(fake_t *f)
{
    memset(f, 0, sizeof *f);
    f->configmaps = json_pack("{s:{s:s, s:s, s:s}, s:{s:s}}", "settings", "mode", "fast", "level",
                              "3", "A", "from-configmap", "other", "x", "y");
    f->secrets = json_pack("{s:{s:s, s:s}}", "creds", "password", "s3cret", "user", "admin");
}

static void fake_free(fake_t *f)
{
    json_decref(f->configmaps);
    json_decref(f->secrets);
}

static podspec_t *pod(const char *containers_yaml)
{
    char *text = xasprintf("apiVersion: v1\n"
                           "kind: Pod\n"
                           "metadata:\n"
                           "  name: web-1\n"
                           "  namespace: shop\n"
                           "  uid: 0f1e2d3c-aaaa-bbbb-cccc-000000000001\n"
                           "  labels: {app: web, \"tier.example/role\": front}\n"
                           "  annotations: {note: \"hello there\"}\n"
                           "spec:\n"
                           "  serviceAccountName: robot\n"
                           "%s",
                           containers_yaml);
    json_t *docs;
    err_t err;
    if (manifest_parse(text, strlen(text), &docs, &err) == -1) fail_msg("%s", err.msg);
    podspec_t *spec;
    if (podspec_parse(json_array_get(docs, 0), &spec, &err) == -1) fail_msg("%s", err.msg);
    json_decref(docs);
    free(text);
    return spec;
}

/* Builds env and argv for the first container; returns 0 or -1. */
static int build(const pod_host_t *h, podspec_t *spec, strvec_t *env, strvec_t *argv, err_t *err)
{
    err->msg[0] = '\0';
    return pod_env_build(h, spec, &spec->containers[0], env, argv, err);
}

/* The env as one "A=1;B=2" string for exact comparisons. */
static char *joined(const strvec_t *v)
{
    size_t n = 1;
    for (size_t i = 0; i < v->len; i++)
        n += strlen(v->items[i]) + 1;
    char *s = xcalloc(1, n);
    for (size_t i = 0; i < v->len; i++) {
        if (i) strcat(s, ";");
        strcat(s, v->items[i]);
    }
    return s;
}

static void assert_vec(const strvec_t *v, const char *want)
{
    char *got = joined(v);
    if (strcmp(got, want) != 0) fail_msg("got  \"%s\"\nwant \"%s\"", got, want);
    free(got);
}

/* --- env order and sources ------------------------------------------------------- */

static void env_order_and_override(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    pod_host_t h = host_for(&f);
    podspec_t *s = pod("  containers:\n"
                       "    - name: app\n"
                       "      image: registry.example/app:1\n"
                       "      env:\n"
                       "        - {name: ONE, value: \"1\"}\n"
                       "        - {name: TWO, value: \"$(ONE)+$(ONE)\"}\n"
                       "        - {name: LATER, value: \"$(THREE)\"}\n"
                       "        - {name: THREE, value: \"3\"}\n"
                       "        - {name: ONE, value: \"uno\"}\n"
                       "        - {name: AFTER, value: \"$(ONE)\"}\n"
                       "        - {name: NOVALUE}\n"
                       "        - {name: ESC, value: \"$$(ONE)\"}\n");
    strvec_t env = STRVEC_INIT, argv = STRVEC_INIT;
    err_t err;
    assert_int_equal(build(&h, s, &env, &argv, &err), 0);
    /* Definition order; a redefinition replaces in place; a reference sees
     * only what was defined before it (LATER keeps $(THREE)). */
    assert_vec(&env, "ONE=uno;TWO=1+1;LATER=$(THREE);THREE=3;AFTER=uno;NOVALUE=;ESC=$(ONE)");
    /* No command: argv[0] is the image's name. */
    assert_vec(&argv, "app");
    assert_int_equal(f.lookups, 0);
    strvec_free(&env);
    strvec_free(&argv);
    podspec_free(s);
    fake_free(&f);
}

/* A reference names one variable exactly: "$(A=x)" names a variable
 * "A=x" (which cannot exist), not the first part of "A=x=y". */
static void reference_names_are_exact(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    pod_host_t h = host_for(&f);
    podspec_t *s = pod("  containers:\n"
                       "    - name: app\n"
                       "      image: app.wasm\n"
                       "      args: [\"$(A=x)\", \"$(A)\", \"$(AB)\"]\n"
                       "      env:\n"
                       "        - {name: A, value: \"x=y\"}\n"
                       "        - {name: B, value: \"$(A=x)\"}\n");
    strvec_t env = STRVEC_INIT, argv = STRVEC_INIT;
    err_t err;
    assert_int_equal(build(&h, s, &env, &argv, &err), 0);
    char *got_env = joined(&env), *got_argv = joined(&argv);
    strvec_free(&env);
    strvec_free(&argv);
    podspec_free(s);
    fake_free(&f);
    /* (Compared after freeing, so that a failure leaks nothing.) */
    char buf[256];
    snprintf(buf, sizeof buf, "%s | %s", got_env, got_argv);
    free(got_env);
    free(got_argv);
    assert_string_equal(buf, "A=x=y;B=$(A=x) | app;$(A=x);x=y;$(AB)");
}

static void env_from_with_prefix(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    pod_host_t h = host_for(&f);
    h.service_env = fake_service_env;
    podspec_t *s = pod("  containers:\n"
                       "    - name: app\n"
                       "      image: app.wasm\n"
                       "      envFrom:\n"
                       "        - configMapRef: {name: settings}\n"
                       "        - prefix: DB_\n"
                       "          secretRef: {name: creds}\n"
                       "        - configMapRef: {name: absent, optional: true}\n"
                       "      env:\n"
                       "        - {name: A, value: \"from-env\"}\n"
                       "        - {name: SHARED, value: \"from-pod\"}\n"
                       "        - {name: COMBO, value: \"$(mode)-$(DB_user)-$(SHARED)\"}\n");
    strvec_t env = STRVEC_INIT, argv = STRVEC_INIT;
    err_t err;
    if (build(&h, s, &env, &argv, &err) == -1) fail_msg("%s", err.msg);
    /* Service variables first, then envFrom in order (keys with their
     * prefix), then env; a later source replaces an earlier one. */
    assert_vec(&env, "KUBERNETES_SERVICE_HOST=10.0.0.1;SHARED=from-pod;mode=fast;level=3;"
                     "A=from-env;DB_password=s3cret;DB_user=admin;COMBO=fast-admin-from-pod");
    assert_int_equal(f.lookups, 3);
    strvec_free(&env);
    strvec_free(&argv);
    podspec_free(s);

    /* A required envFrom source that does not exist. */
    s = pod("  containers:\n"
            "    - name: app\n"
            "      image: app.wasm\n"
            "      envFrom:\n"
            "        - secretRef: {name: nothere}\n");
    env = (strvec_t)STRVEC_INIT;
    argv = (strvec_t)STRVEC_INIT;
    assert_int_equal(build(&h, s, &env, &argv, &err), -1);
    assert_non_null(strstr(err.msg, "secret \"nothere\" not found"));
    strvec_free(&env);
    strvec_free(&argv);
    podspec_free(s);
    fake_free(&f);
}

static void key_refs(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    pod_host_t h = host_for(&f);
    podspec_t *s = pod("  containers:\n"
                       "    - name: app\n"
                       "      image: app.wasm\n"
                       "      env:\n"
                       "        - name: MODE\n"
                       "          valueFrom: {configMapKeyRef: {name: settings, key: mode}}\n"
                       "        - name: PASS\n"
                       "          valueFrom: {secretKeyRef: {name: creds, key: password}}\n"
                       "        - name: OPT_ABSENT_MAP\n"
                       "          valueFrom:\n"
                       "            configMapKeyRef: {name: nomap, key: k, optional: true}\n"
                       "        - name: OPT_ABSENT_KEY\n"
                       "          valueFrom:\n"
                       "            configMapKeyRef: {name: settings, key: nokey, optional: true}\n"
                       "        - name: OPT_SECRET\n"
                       "          valueFrom:\n"
                       "            secretKeyRef: {name: nosecret, key: k, optional: true}\n"
                       "        - {name: USES, value: \"$(MODE):$(OPT_ABSENT_MAP)\"}\n");
    strvec_t env = STRVEC_INIT, argv = STRVEC_INIT;
    err_t err;
    if (build(&h, s, &env, &argv, &err) == -1) fail_msg("%s", err.msg);
    /* Optional and absent: the variable is not set at all. */
    assert_vec(&env, "MODE=fast;PASS=s3cret;USES=fast:$(OPT_ABSENT_MAP)");
    strvec_free(&env);
    strvec_free(&argv);
    podspec_free(s);

    /* Required and absent: the error names the object and the key in the
     * kubelet's words, as CreateContainerConfigError shows them; the
     * downward API errors name the variable. */
    static const struct {
        const char *ref;
        const char *want[3];
    } cases[] = {
        {"configMapKeyRef: {name: settings, key: nokey}",
         {"couldn't find key nokey in ConfigMap shop/settings", NULL}},
        {"configMapKeyRef: {name: nomap, key: k}", {"configmap \"nomap\" not found", NULL}},
        {"secretKeyRef: {name: creds, key: token}",
         {"couldn't find key token in Secret shop/creds", NULL}},
        {"secretKeyRef: {name: nosecret, key: k}", {"secret \"nosecret\" not found", NULL}},
        {"secretKeyRef: {name: creds}", {"key", NULL}},
        {"fieldRef: {fieldPath: spec.nonsense}", {"env MISSING", "spec.nonsense", NULL}},
        {"fieldRef: {}", {"env MISSING", "fieldPath", NULL}},
        {"resourceFieldRef: {resource: limits.gpu}", {"env MISSING", "limits.gpu", NULL}},
        {"resourceFieldRef: {resource: limits.cpu, divisor: zero}",
         {"env MISSING", "divisor", NULL}},
        {"resourceFieldRef: {resource: limits.cpu, containerName: ghost}",
         {"env MISSING", "ghost", NULL}},
        {"somethingElse: {}", {"env MISSING", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *yaml = xasprintf("  containers:\n"
                               "    - name: app\n"
                               "      image: app.wasm\n"
                               "      env:\n"
                               "        - {name: FINE, value: ok}\n"
                               "        - name: MISSING\n"
                               "          valueFrom: {%s}\n",
                               cases[i].ref);
        s = pod(yaml);
        free(yaml);
        env = (strvec_t)STRVEC_INIT;
        argv = (strvec_t)STRVEC_INIT;
        if (build(&h, s, &env, &argv, &err) != -1) fail_msg("%s: accepted", cases[i].ref);
        for (int k = 0; k < 3 && cases[i].want[k]; k++)
            if (!strstr(err.msg, cases[i].want[k]))
                fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].ref, err.msg, cases[i].want[k]);
        strvec_free(&env);
        strvec_free(&argv);
        podspec_free(s);
    }

    /* The lookup itself fails (API server down): that error, not "absent". */
    f.fail_lookup = true;
    s = pod("  containers:\n"
            "    - name: app\n"
            "      image: app.wasm\n"
            "      env:\n"
            "        - name: MODE\n"
            "          valueFrom:\n"
            "            configMapKeyRef: {name: settings, key: mode, optional: true}\n");
    env = (strvec_t)STRVEC_INIT;
    argv = (strvec_t)STRVEC_INIT;
    assert_int_equal(build(&h, s, &env, &argv, &err), -1);
    assert_non_null(strstr(err.msg, "not reachable"));
    strvec_free(&env);
    strvec_free(&argv);
    podspec_free(s);

    /* No cluster at all (wasmlet run): optional refs are skipped, required
     * ones fail saying why. */
    f.fail_lookup = false;
    h.lookup = NULL;
    s = pod("  containers:\n"
            "    - name: app\n"
            "      image: app.wasm\n"
            "      envFrom: [{configMapRef: {name: settings, optional: true}}]\n"
            "      env:\n"
            "        - name: OPT\n"
            "          valueFrom:\n"
            "            configMapKeyRef: {name: settings, key: mode, optional: true}\n"
            "        - {name: PLAIN, value: v}\n");
    env = (strvec_t)STRVEC_INIT;
    argv = (strvec_t)STRVEC_INIT;
    if (build(&h, s, &env, &argv, &err) == -1) fail_msg("%s", err.msg);
    assert_vec(&env, "PLAIN=v");
    strvec_free(&env);
    strvec_free(&argv);
    podspec_free(s);
    s = pod("  containers:\n"
            "    - name: app\n"
            "      image: app.wasm\n"
            "      env:\n"
            "        - name: REQ\n"
            "          valueFrom: {secretKeyRef: {name: creds, key: user}}\n");
    env = (strvec_t)STRVEC_INIT;
    argv = (strvec_t)STRVEC_INIT;
    assert_int_equal(build(&h, s, &env, &argv, &err), -1);
    assert_non_null(strstr(err.msg, "creds"));
    assert_non_null(strstr(err.msg, "no cluster"));
    strvec_free(&env);
    strvec_free(&argv);
    podspec_free(s);
    fake_free(&f);
}

static void field_refs(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    pod_host_t h = host_for(&f);
    podspec_t *s =
        pod("  containers:\n"
            "    - name: app\n"
            "      image: app.wasm\n"
            "      env:\n"
            "        - {name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n"
            "        - {name: NS, valueFrom: {fieldRef: {fieldPath: "
            "metadata.namespace}}}\n"
            "        - {name: UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}\n"
            "        - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}\n"
            "        - {name: SA, valueFrom: {fieldRef: {fieldPath: "
            "spec.serviceAccountName}}}\n"
            "        - {name: HOSTIP, valueFrom: {fieldRef: {fieldPath: "
            "status.hostIP}}}\n"
            "        - {name: PODIP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n"
            "        - {name: PODIPS, valueFrom: {fieldRef: {fieldPath: "
            "status.podIPs}}}\n"
            "        - name: APP\n"
            "          valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}\n"
            "        - name: ROLE\n"
            "          valueFrom:\n"
            "            fieldRef: {fieldPath: \"metadata.labels['tier.example/role']\"}\n"
            "        - name: NOLABEL\n"
            "          valueFrom: {fieldRef: {fieldPath: \"metadata.labels['nope']\"}}\n"
            "        - name: NOTE\n"
            "          valueFrom:\n"
            "            fieldRef: {fieldPath: \"metadata.annotations['note']\"}\n"
            "        - name: DQ\n"
            "          valueFrom: {fieldRef: {fieldPath: 'metadata.labels[\"app\"]'}}\n"
            "        - {name: MSG, value: \"$(NAME) on $(NODE)\"}\n");
    strvec_t env = STRVEC_INIT, argv = STRVEC_INIT;
    err_t err;
    if (build(&h, s, &env, &argv, &err) == -1) fail_msg("%s", err.msg);
    assert_vec(&env, "NAME=web-1;NS=shop;UID=0f1e2d3c-aaaa-bbbb-cccc-000000000001;NODE=node-7;"
                     "SA=robot;HOSTIP=192.0.2.10;PODIP=192.0.2.10;PODIPS=192.0.2.10;APP=web;"
                     "ROLE=front;NOLABEL=;NOTE=hello there;DQ=web;MSG=web-1 on node-7");
    strvec_free(&env);
    strvec_free(&argv);
    podspec_free(s);

    /* The pod's own nodeName wins over the host's. */
    s = pod("  nodeName: pinned\n"
            "  containers:\n"
            "    - name: app\n"
            "      image: app.wasm\n"
            "      env: [{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]\n");
    env = (strvec_t)STRVEC_INIT;
    argv = (strvec_t)STRVEC_INIT;
    assert_int_equal(build(&h, s, &env, &argv, &err), 0);
    assert_vec(&env, "NODE=pinned");
    strvec_free(&env);
    strvec_free(&argv);
    podspec_free(s);

    /* Malformed label paths are refused, not guessed at. */
    static const char *const bad[] = {"metadata.labels[app]", "metadata.labels['app'",
                                      "metadata.labels['app']x", "metadata.labels",
                                      "metadata.generateName"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *yaml = xasprintf("  containers:\n"
                               "    - name: app\n"
                               "      image: app.wasm\n"
                               "      env:\n"
                               "        - name: X\n"
                               "          valueFrom: {fieldRef: {fieldPath: \"%s\"}}\n",
                               bad[i]);
        s = pod(yaml);
        free(yaml);
        env = (strvec_t)STRVEC_INIT;
        argv = (strvec_t)STRVEC_INIT;
        if (build(&h, s, &env, &argv, &err) != -1) fail_msg("fieldPath %s accepted", bad[i]);
        assert_non_null(strstr(err.msg, "env X"));
        strvec_free(&env);
        strvec_free(&argv);
        podspec_free(s);
    }
    fake_free(&f);
}

static void resource_field_refs(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    pod_host_t h = host_for(&f);
    podspec_t *s = pod(
        "  initContainers:\n"
        "    - name: init\n"
        "      image: init.wasm\n"
        "      resources: {limits: {memory: 32Mi}}\n"
        "  containers:\n"
        "    - name: app\n"
        "      image: app.wasm\n"
        "      resources:\n"
        "        limits: {memory: 128Mi, cpu: 500m}\n"
        "        requests: {memory: 100M, cpu: 250m}\n"
        "      env:\n"
        "        - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory}}}\n"
        "        - name: MEM_MI\n"
        "          valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}\n"
        "        - name: MEM_REQ_MI\n"
        "          valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1Mi}}\n"
        "        - name: MEM_REQ_M\n"
        "          valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1M}}\n"
        "        - {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}\n"
        "        - name: CPU_M\n"
        "          valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}\n"
        "        - name: CPU_REQ_M\n"
        "          valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}\n"
        "        - name: CPU_INT_DIV\n"
        "          valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1}}\n"
        "        - name: OTHER_MEM\n"
        "          valueFrom:\n"
        "            resourceFieldRef: {containerName: side, resource: limits.memory}\n"
        "        - name: OTHER_CPU\n"
        "          valueFrom:\n"
        "            resourceFieldRef: {containerName: side, resource: limits.cpu, divisor: 1m}\n"
        "        - name: INIT_MEM_MI\n"
        "          valueFrom:\n"
        "            resourceFieldRef: {containerName: init, resource: limits.memory, "
        "divisor: 1Mi}\n"
        "        - name: EPH\n"
        "          valueFrom: {resourceFieldRef: {resource: limits.ephemeral-storage}}\n"
        "        - name: CPU_DIV0\n"
        "          valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: \"0\"}}\n"
        "        - name: SIDE_EPH_MI\n"
        "          valueFrom:\n"
        "            resourceFieldRef: {containerName: side, resource: "
        "requests.ephemeral-storage, divisor: 1Mi}\n"
        "    - name: side\n"
        "      image: side.wasm\n"
        "      resources: {requests: {ephemeral-storage: 1Gi}}\n");
    strvec_t env = STRVEC_INIT, argv = STRVEC_INIT;
    err_t err;
    if (build(&h, s, &env, &argv, &err) == -1) fail_msg("%s", err.msg);
    /* Values round up (500m of cpu with divisor 1 is 1); an unset limit
     * reads as the node's allocatable (side has none: 8Gi, 4 cores); a
     * divisor "0" (how the API server stores an unset one) means 1. */
    assert_vec(&env, "MEM=134217728;MEM_MI=128;MEM_REQ_MI=96;MEM_REQ_M=100;CPU=1;CPU_M=500;"
                     "CPU_REQ_M=250;CPU_INT_DIV=1;OTHER_MEM=8589934592;OTHER_CPU=4000;"
                     "INIT_MEM_MI=32;EPH=0;CPU_DIV0=1;SIDE_EPH_MI=1024");
    strvec_free(&env);
    strvec_free(&argv);
    podspec_free(s);
    fake_free(&f);
}

/* --- argv -------------------------------------------------------------------------- */

/* warm: "ns/cm:name" or "ns/secret:name" per call, joined by ';'. */
static void record_warm(void *ctx, const char *ns, bool secret, const char *name)
{
    strvec_t *seen = ((fake_t *)ctx)->warmed;
    char *s = xasprintf("%s/%s:%s", ns, secret ? "secret" : "cm", name);
    strvec_push(seen, s);
    free(s);
}

static void warm_names_every_referenced_object(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    strvec_t seen = STRVEC_INIT;
    f.warmed = &seen;
    pod_host_t h = host_for(&f);
    h.warm = record_warm;
    podspec_t *s = pod("  containers:\n"
                       "    - name: app\n"
                       "      image: app.wasm\n"
                       "      env:\n"
                       "        - {name: PLAIN, value: x}\n"
                       "        - name: FROM_CM\n"
                       "          valueFrom: {configMapKeyRef: {name: settings, key: mode}}\n"
                       "        - name: FROM_SECRET\n"
                       "          valueFrom: {secretKeyRef: {name: creds, key: user}}\n"
                       "        - name: FROM_FIELD\n"
                       "          valueFrom: {fieldRef: {fieldPath: metadata.name}}\n"
                       "      envFrom:\n"
                       "        - configMapRef: {name: other}\n"
                       "        - secretRef: {name: more-creds}\n");
    pod_env_warm(&h, s, &s->containers[0]);
    assert_vec(&seen, "shop/cm:settings;shop/secret:creds;shop/cm:other;shop/secret:more-creds");
    /* Without a warm callback nothing is called. */
    h.warm = NULL;
    pod_env_warm(&h, s, &s->containers[0]);
    assert_int_equal(seen.len, 4);
    strvec_free(&seen);
    podspec_free(s);
    fake_free(&f);
}

static char *argv_of(const char *container_yaml)
{
    fake_t f;
    fake_init(&f);
    pod_host_t h = host_for(&f);
    podspec_t *s = pod(container_yaml);
    strvec_t env = STRVEC_INIT, argv = STRVEC_INIT;
    err_t err;
    if (build(&h, s, &env, &argv, &err) == -1) fail_msg("%s", err.msg);
    /* argv is NULL-terminated for WASI. */
    assert_null(argv.items[argv.len]);
    char *j = joined(&argv);
    strvec_free(&env);
    strvec_free(&argv);
    podspec_free(s);
    fake_free(&f);
    return j;
}

static void argv_rules(void **state)
{
    (void)state;
    static const struct {
        const char *image;
        const char *want;
    } names[] = {
        {"app.wasm", "app"},
        {"./build/examples/hello.wasm", "hello"},
        {"/abs/path/tool.wasm", "tool"},
        {"registry.example/team/web:1.2", "web"},
        {"registry.example:5000/team/web:1.2", "web"},
        {"registry.example/web@sha256:abcd", "web"},
        {"registry.example/web.wasm:v3", "web"},
        {"file:///srv/mods/job.wasm", "job"},
        {"plain", "plain"},
        {".wasm", ".wasm"}, /* nothing left without the suffix: keep it */
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *yaml = xasprintf("  containers:\n    - {name: c, image: \"%s\", args: [a1]}\n",
                               names[i].image);
        char *got = argv_of(yaml);
        char *want = xasprintf("%s;a1", names[i].want);
        if (strcmp(got, want) != 0)
            fail_msg("image %s: argv \"%s\", want \"%s\"", names[i].image, got, want);
        free(want);
        free(got);
        free(yaml);
    }

    /* command replaces argv[0]; args follow; both are expanded against the
     * final environment (even variables defined after... all of env). */
    char *got = argv_of("  containers:\n"
                        "    - name: c\n"
                        "      image: ignored.wasm\n"
                        "      command: [\"/bin/$(TOOL)\", \"--mode=$(MODE)\"]\n"
                        "      args: [\"$(MODE)\", \"$$(MODE)\", \"$(UNSET)\", \"\", \"a b\"]\n"
                        "      env:\n"
                        "        - {name: MODE, value: first}\n"
                        "        - {name: TOOL, value: run}\n"
                        "        - {name: MODE, value: last}\n");
    assert_string_equal(got, "/bin/run;--mode=last;last;$(MODE);$(UNSET);;a b");
    free(got);

    /* args without a command: after the image name. */
    got = argv_of("  containers:\n    - {name: c, image: x.wasm, args: [\"$(HOSTNAME)\"]}\n");
    assert_string_equal(got, "x;$(HOSTNAME)");
    free(got);

    /* Neither: just the name. */
    got = argv_of("  containers:\n    - {name: c, image: x.wasm}\n");
    assert_string_equal(got, "x");
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(expansion_rules),
        cmocka_unit_test(env_order_and_override),
        cmocka_unit_test(reference_names_are_exact),
        cmocka_unit_test(env_from_with_prefix),
        cmocka_unit_test(key_refs),
        cmocka_unit_test(field_refs),
        cmocka_unit_test(resource_field_refs),
        cmocka_unit_test(argv_rules),
        cmocka_unit_test(warm_names_every_referenced_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
