/* test_volume.c: unit tests for volume/ (and the lookup and token callbacks
 * of pod/cluster_host.c that feed it): the atomic ..data writer and its
 * updates, binary file contents, modes, read-only API data mounts, subPath
 * resolution that refuses planted symlinks, emptyDir sizeLimit measurement,
 * and a serviceAccountToken refreshed before it expires, against a scripted
 * API server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube_fixture.h"

#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "kube/manifest.h"
#include "kube/pod_spec.h"
#include "pod/cluster_host.h"
#include "util/fs.h"
#include "util/proc.h"
#include "util/time.h"
#include "util/xalloc.h"
#include "volume/volume.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- helpers ------------------------------------------------------------------ */

static podspec_t *pod(const char *spec_yaml)
{
    char *text = xasprintf("apiVersion: v1\n"
                           "kind: Pod\n"
                           "metadata:\n"
                           "  name: web-1\n"
                           "  namespace: shop\n"
                           "  uid: 0f1e2d3c-aaaa-bbbb-cccc-000000000001\n"
                           "  labels: {app: web}\n"
                           "  annotations: {note: \"say \\\"hi\\\"\\n\\tbye\"}\n"
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

static char *temp_dir(void)
{
    char tmpl[] = "/tmp/wasmlet-test-volume-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

static void rm_dir(char *dir)
{
    err_t err;
    assert_int_equal(fs_rm_rf(dir, &err), 0);
    free(dir);
}

static char *slurp(const char *dir, const char *rel, size_t *len)
{
    char *p = fs_join(dir, rel), *data = NULL;
    err_t err;
    if (fs_read_all(p, &data, len, &err) == -1) fail_msg("%s", err.msg);
    free(p);
    return data;
}

static void put(const char *dir, const char *rel, size_t size)
{
    char *p = fs_join(dir, rel);
    char *data = xmalloc(size ? size : 1);
    memset(data, 'x', size);
    err_t err;
    if (fs_write_atomic(p, data, size, 0644, &err) == -1) fail_msg("%s", err.msg);
    free(data);
    free(p);
}

static char *link_of(const char *dir, const char *rel)
{
    char *p = fs_join(dir, rel);
    char buf[512];
    ssize_t n = readlink(p, buf, sizeof buf - 1);
    free(p);
    if (n < 0) return NULL;
    buf[n] = '\0';
    return xstrdup(buf);
}

static int mode_of(const char *dir, const char *rel)
{
    char *p = fs_join(dir, rel);
    struct stat st;
    int rc = stat(p, &st);
    free(p);
    assert_int_equal(rc, 0);
    return (int)(st.st_mode & 0777);
}

static bool exists(const char *dir, const char *rel)
{
    char *p = fs_join(dir, rel);
    struct stat st;
    bool yes = lstat(p, &st) == 0;
    free(p);
    return yes;
}

/* A fake host: ConfigMaps and Secrets from JSON, tokens counted. */
typedef struct fake {
    json_t *configmaps, *secrets;
    int tokens;
} fake_t;

static int fake_lookup(void *ctx, const char *ns, bool secret, const char *name, json_t **data,
                       err_t *err)
{
    (void)err;
    fake_t *f = ctx;
    assert_string_equal(ns, "shop");
    json_t *v = json_object_get(secret ? f->secrets : f->configmaps, name);
    *data = v ? json_deep_copy(v) : NULL;
    return 0;
}

/* --- the atomic writer ---------------------------------------------------------- */

static void config_map_volume_and_updates(void **state)
{
    (void)state;
    char *dir = temp_dir();
    fake_t f = {0};
    /* A NUL and bytes that are not UTF-8 must arrive exactly. */
    f.configmaps = json_object();
    json_t *cm = json_object();
    json_object_set_new(cm, "app.conf", json_string("color=blue\n"));
    json_object_set_new(cm, "gone-later", json_string("x"));
    json_object_set_new(cm, "blob", json_stringn_nocheck("\0\x01\xff\xfe", 4));
    json_object_set_new(f.configmaps, "settings", cm);
    volume_host_t h = {.ctx = &f, .lookup = fake_lookup};
    podspec_t *s = pod("  containers:\n"
                       "    - name: app\n"
                       "      image: app.wasm\n"
                       "      volumeMounts:\n"
                       "        - {name: cfg, mountPath: /cfg}\n"
                       "        - {name: picked, mountPath: /picked, readOnly: false}\n"
                       "  volumes:\n"
                       "    - name: cfg\n"
                       "      configMap: {name: settings}\n"
                       "    - name: picked\n"
                       "      configMap:\n"
                       "        name: settings\n"
                       "        defaultMode: 256\n"
                       "        items:\n"
                       "          - {key: app.conf, path: deep/dir/app.conf}\n"
                       "          - {key: blob, path: blob.bin, mode: 384}\n");
    /* (modes in decimal: 256 is 0400, 384 is 0600, as the API server
     * stores them) */
    err_t err;
    if (volume_setup(&h, s, dir, &err) == -1) fail_msg("%s", err.msg);

    char *vol = fs_join(dir, "volumes/cfg");
    char *version = link_of(vol, "..data");
    assert_non_null(version);
    assert_int_equal(strncmp(version, "..20", 4), 0);
    assert_null(strchr(version, 'Z'));
    char *l = link_of(vol, "app.conf");
    assert_string_equal(l, "..data/app.conf");
    free(l);
    size_t len;
    char *data = slurp(vol, "blob", &len);
    assert_int_equal(len, 4);
    assert_memory_equal(data, "\0\x01\xff\xfe", 4);
    free(data);
    assert_int_equal(mode_of(vol, "..data/app.conf"), 0644);
    /* Nothing of wasmlet's own inside the volume. */
    assert_false(exists(vol, "..hash"));

    char *picked = fs_join(dir, "volumes/picked");
    data = slurp(picked, "deep/dir/app.conf", NULL);
    assert_string_equal(data, "color=blue\n");
    free(data);
    assert_int_equal(mode_of(picked, "..data/deep/dir/app.conf"), 0400);
    assert_int_equal(mode_of(picked, "..data/blob.bin"), 0600);
    assert_false(exists(picked, "gone-later"));

    /* Unchanged content: no new version. */
    int64_t expires = 0;
    if (volume_refresh(&h, s, dir, &expires, &err) == -1) fail_msg("%s", err.msg);
    char *same = link_of(vol, "..data");
    assert_string_equal(same, version);
    free(same);

    /* The same content written before the machine last started is not
     * trusted (nothing is fsynced): a hash of another boot rewrites it. */
    char *hash_path = xasprintf("%s..hash", vol);
    char *hash = NULL;
    if (fs_read_all(hash_path, &hash, NULL, &err) == -1) fail_msg("%s", err.msg);
    assert_non_null(strstr(hash, proc_boot_id()));
    assert_true(strlen(proc_boot_id()) == 36);
    char *other_boot = xstrdup(hash);
    memset(strchr(other_boot, ' ') + 1, '0', 36);
    if (fs_write_replace(hash_path, other_boot, strlen(other_boot), 0600, &err) == -1)
        fail_msg("%s", err.msg);
    usleep(2000); /* version names have nanoseconds, but be sure they differ */
    if (volume_refresh(&h, s, dir, &expires, &err) == -1) fail_msg("%s", err.msg);
    char *rewritten = link_of(vol, "..data");
    assert_string_not_equal(rewritten, version);
    free(version);
    version = rewritten;
    free(hash);
    free(other_boot);
    free(hash_path);

    /* A change: a new version, the old one and the gone key's link removed. */
    json_object_set_new(cm, "app.conf", json_string("color=red\n"));
    json_object_del(cm, "gone-later");
    json_object_set_new(cm, "added", json_string("new"));
    if (volume_refresh(&h, s, dir, &expires, &err) == -1) fail_msg("%s", err.msg);
    char *next = link_of(vol, "..data");
    assert_string_not_equal(next, version);
    assert_false(exists(vol, version));
    assert_false(exists(vol, "gone-later"));
    data = slurp(vol, "app.conf", NULL);
    assert_string_equal(data, "color=red\n");
    free(data);
    data = slurp(vol, "added", NULL);
    assert_string_equal(data, "new");
    free(data);
    free(next);

    /* API data volumes are read-only whatever the mount says. */
    wasmrt_mount_t *mounts;
    size_t n;
    if (volume_mounts(s, &s->containers[0], dir, &mounts, &n, &err) == -1) fail_msg("%s", err.msg);
    assert_int_equal(n, 2);
    assert_true(mounts[0].read_only);
    assert_true(mounts[1].read_only);
    volume_mounts_free(mounts, n);

    assert_int_equal(volume_teardown(dir, &err), 0);
    assert_false(exists(dir, "volumes"));
    free(version);
    free(vol);
    free(picked);
    json_decref(f.configmaps);
    podspec_free(s);
    rm_dir(dir);
}

static void record_warm(void *ctx, const char *ns, bool secret, const char *name)
{
    char *line = xasprintf("%s%s/%s:%s;", (char *)ctx, ns, secret ? "secret" : "cm", name);
    strcpy(ctx, line);
    free(line);
}

static void warm_names_the_volumes_objects(void **state)
{
    (void)state;
    char seen[512] = "";
    volume_host_t h = {.ctx = seen, .warm = record_warm};
    podspec_t *s = pod("  containers:\n"
                       "    - {name: app, image: app.wasm}\n"
                       "  volumes:\n"
                       "    - {name: scratch, emptyDir: {}}\n"
                       "    - {name: cfg, configMap: {name: settings}}\n"
                       "    - {name: keys, secret: {secretName: tls-keys}}\n"
                       "    - name: all\n"
                       "      projected:\n"
                       "        sources:\n"
                       "          - serviceAccountToken: {path: token}\n"
                       "          - configMap: {name: kube-root-ca.crt}\n"
                       "          - secret: {name: extra}\n"
                       "          - downwardAPI: {items: []}\n");
    volume_warm(&h, s);
    assert_string_equal(seen, "shop/cm:settings;shop/secret:tls-keys;"
                              "shop/cm:kube-root-ca.crt;shop/secret:extra;");
    podspec_free(s);
}

static void downward_api_formats_maps_as_the_kubelet(void **state)
{
    (void)state;
    char *dir = temp_dir();
    volume_host_t h = {.node = {.node_name = "n1", .host_ip = "192.0.2.1"}};
    podspec_t *s = pod("  containers:\n"
                       "    - {name: app, image: app.wasm}\n"
                       "  volumes:\n"
                       "    - name: info\n"
                       "      downwardAPI:\n"
                       "        items:\n"
                       "          - {path: labels, fieldRef: {fieldPath: metadata.labels}}\n"
                       "          - path: annotations\n"
                       "            fieldRef: {fieldPath: metadata.annotations}\n");
    err_t err;
    if (volume_setup(&h, s, dir, &err) == -1) fail_msg("%s", err.msg);
    char *vol = fs_join(dir, "volumes/info");
    char *data = slurp(vol, "labels", NULL);
    assert_string_equal(data, "app=\"web\"");
    free(data);
    /* Go's %q: quotes, newline and tab escaped. */
    data = slurp(vol, "annotations", NULL);
    assert_string_equal(data, "note=\"say \\\"hi\\\"\\n\\tbye\"");
    free(data);
    free(vol);
    podspec_free(s);

    /* Single values, resolved as env vars are: a fieldRef, and a
     * resourceFieldRef (an unset limit reads the node's allocatable). */
    h.node.allocatable_cpu = 3000;
    s = pod("  containers:\n"
            "    - {name: app, image: app.wasm, resources: {limits: {memory: 64Mi}}}\n"
            "    - {name: side, image: side.wasm}\n"
            "  volumes:\n"
            "    - name: one\n"
            "      projected:\n"
            "        sources:\n"
            "          - downwardAPI:\n"
            "              items:\n"
            "                - {path: name, fieldRef: {fieldPath: metadata.name}}\n"
            "                - {path: node, fieldRef: {fieldPath: spec.nodeName}}\n"
            "                - {path: ip, fieldRef: {fieldPath: status.podIP}}\n"
            "                - path: app\n"
            "                  fieldRef: {fieldPath: \"metadata.labels['app']\"}\n"
            "                - path: mem\n"
            "                  resourceFieldRef: {resource: limits.memory, divisor: 1Mi}\n"
            "                - path: cpu\n"
            "                  resourceFieldRef:\n"
            "                    {containerName: side, resource: limits.cpu, divisor: 1m}\n");
    if (volume_setup(&h, s, dir, &err) == -1) fail_msg("%s", err.msg);
    vol = fs_join(dir, "volumes/one");
    static const char *const want[][2] = {{"name", "web-1"}, {"node", "n1"}, {"ip", "192.0.2.1"},
                                          {"app", "web"},    {"mem", "64"},  {"cpu", "3000"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        data = slurp(vol, want[i][0], NULL);
        if (strcmp(data, want[i][1]) != 0)
            fail_msg("%s: \"%s\", want \"%s\"", want[i][0], data, want[i][1]);
        free(data);
    }
    free(vol);
    podspec_free(s);

    /* An unknown fieldPath names the item, not some env var. */
    s = pod("  containers:\n"
            "    - {name: app, image: app.wasm}\n"
            "  volumes:\n"
            "    - name: bad\n"
            "      downwardAPI:\n"
            "        items:\n"
            "          - {path: ok, fieldRef: {fieldPath: metadata.uid}}\n"
            "          - {path: x, fieldRef: {fieldPath: spec.nonsense}}\n");
    assert_int_equal(volume_setup(&h, s, dir, &err), -1);
    assert_string_equal(err.msg, "volume \"bad\": downwardAPI items[1]: fieldRef: unsupported "
                                 "fieldPath \"spec.nonsense\"");
    podspec_free(s);
    rm_dir(dir);
}

/* --- mounts and subPath --------------------------------------------------------- */

static void sub_path_stays_inside_its_volume(void **state)
{
    (void)state;
    char *dir = temp_dir();
    volume_host_t h = {0};
    podspec_t *s = pod("  containers:\n"
                       "    - name: app\n"
                       "      image: app.wasm\n"
                       "      volumeMounts:\n"
                       "        - {name: scratch, mountPath: /in, subPath: a/b}\n"
                       "    - name: evil\n"
                       "      image: app.wasm\n"
                       "      volumeMounts:\n"
                       "        - {name: scratch, mountPath: /out, subPath: escape}\n"
                       "    - name: evil2\n"
                       "      image: app.wasm\n"
                       "      volumeMounts:\n"
                       "        - {name: scratch, mountPath: /out, subPath: escape/made}\n"
                       "  volumes:\n"
                       "    - {name: scratch, emptyDir: {}}\n");
    err_t err;
    if (volume_setup(&h, s, dir, &err) == -1) fail_msg("%s", err.msg);
    wasmrt_mount_t *mounts;
    size_t n;
    /* A missing subPath directory is created inside the volume. */
    if (volume_mounts(s, &s->containers[0], dir, &mounts, &n, &err) == -1) fail_msg("%s", err.msg);
    char *want = fs_join(dir, "volumes/scratch/a/b");
    char *real = realpath(want, NULL);
    assert_string_equal(mounts[0].host_path, real);
    assert_false(mounts[0].read_only);
    volume_mounts_free(mounts, n);
    free(want);
    free(real);

    /* A symlink planted in the volume that leads out: refused, and no
     * directory is created through it. */
    char *outside = temp_dir();
    char *link = fs_join(dir, "volumes/scratch/escape");
    assert_int_equal(symlink(outside, link), 0);
    assert_int_equal(volume_mounts(s, &s->containers[1], dir, &mounts, &n, &err), -1);
    assert_non_null(strstr(err.msg, "resolves outside its volume"));
    assert_int_equal(volume_mounts(s, &s->containers[2], dir, &mounts, &n, &err), -1);
    assert_non_null(strstr(err.msg, "outside"));
    assert_false(exists(outside, "made"));
    free(link);
    rm_dir(outside);
    podspec_free(s);
    rm_dir(dir);
}

static void unsupported_types_are_permanent(void **state)
{
    (void)state;
    char *dir = temp_dir();
    volume_host_t h = {0};
    podspec_t *s = pod("  containers:\n"
                       "    - {name: app, image: app.wasm}\n"
                       "  volumes:\n"
                       "    - {name: data, persistentVolumeClaim: {claimName: c}}\n");
    err_t err;
    assert_int_equal(volume_setup(&h, s, dir, &err), VOLUME_PERMANENT);
    assert_non_null(strstr(err.msg, "volume \"data\""));
    assert_non_null(strstr(err.msg, "persistentVolumeClaim"));
    podspec_free(s);
    rm_dir(dir);
}

/* --- emptyDir sizeLimit ----------------------------------------------------------- */

static void empty_dir_size_limit(void **state)
{
    (void)state;
    char *dir = temp_dir();
    volume_host_t h = {0};
    podspec_t *s = pod("  containers:\n"
                       "    - {name: app, image: app.wasm}\n"
                       "  volumes:\n"
                       "    - {name: cache, emptyDir: {sizeLimit: 64Ki}}\n"
                       "    - {name: free, emptyDir: {}}\n");
    err_t err;
    if (volume_setup(&h, s, dir, &err) == -1) fail_msg("%s", err.msg);
    char *cache = fs_join(dir, "volumes/cache");
    char *free_dir = fs_join(dir, "volumes/free");
    assert_int_equal(volume_check_limits(s, dir, &err), 0);

    put(cache, "a", 32 * 1024);
    assert_int_equal(volume_check_limits(s, dir, &err), 0);
    /* A hard link is the same blocks: counted once, as du counts. */
    char *a = fs_join(cache, "a"), *a2 = fs_join(cache, "a2");
    assert_int_equal(link(a, a2), 0);
    /* A symlink to something big outside is not followed. */
    put(free_dir, "huge", 1024 * 1024);
    char *huge = fs_join(free_dir, "huge"), *ln = fs_join(cache, "huge");
    assert_int_equal(symlink(huge, ln), 0);
    assert_int_equal(volume_check_limits(s, dir, &err), 0);

    /* Over the limit, in a subdirectory: the kubelet's eviction message. */
    char *sub = fs_join(cache, "sub");
    assert_int_equal(mkdir(sub, 0755), 0);
    put(sub, "b", 40 * 1024);
    assert_int_equal(volume_check_limits(s, dir, &err), -1);
    assert_string_equal(err.msg, "Usage of EmptyDir volume \"cache\" exceeds the limit \"64Ki\".");

    /* Torn down: nothing to measure, no error. */
    assert_int_equal(volume_teardown(dir, &err), 0);
    assert_int_equal(volume_check_limits(s, dir, &err), 0);
    free(a);
    free(a2);
    free(huge);
    free(ln);
    free(sub);
    free(cache);
    free(free_dir);
    podspec_free(s);
    rm_dir(dir);
}

/* --- serviceAccountToken through cluster_host, against a scripted API ------------ */

typedef struct api {
    atomic_int tokens;
    int token_life_s; /* 0: 3 s */
    atomic_int cm_gets;
    atomic_bool cm_exists;
} api_t;

static int api_handler(fx_conn_t *conn, const fx_req_t *req, void *ctx)
{
    api_t *api = ctx;
    char path[512];
    fx_path(req, path, sizeof path);
    if (strcmp(req->method, "POST") == 0 &&
        strcmp(path, "/api/v1/namespaces/shop/serviceaccounts/robot/token") == 0) {
        int n = atomic_fetch_add(&api->tokens, 1) + 1;
        /* A token that lives 3 s: refreshed once 80% of it has passed. */
        char exp[40], body[256];
        int64_t life = api->token_life_s ? api->token_life_s : 3;
        time_format_rfc3339(exp, sizeof exp, time_now_ns() + life * NS_PER_SEC);
        snprintf(body, sizeof body,
                 "{\"kind\":\"TokenRequest\",\"status\":{\"token\":\"token-%d\","
                 "\"expirationTimestamp\":\"%s\"}}",
                 n, exp);
        fx_respond_json(conn, 201, body);
        return 0;
    }
    if (strcmp(path, "/api/v1/namespaces/shop/configmaps/late") == 0) {
        atomic_fetch_add(&api->cm_gets, 1);
        if (atomic_load(&api->cm_exists))
            fx_respond_json(conn, 200, "{\"kind\":\"ConfigMap\",\"data\":{\"k\":\"v\"}}");
        else
            fx_respond_status(conn, 404, "NotFound", "configmaps \\\"late\\\" not found");
        return 0;
    }
    fx_respond_status(conn, 404, "NotFound", "no such path");
    return 0;
}

/* A pod of ServiceAccount robot with one projected token volume. */
static const char TOKEN_POD[] = "  serviceAccountName: robot\n"
                                "  containers:\n"
                                "    - {name: app, image: app.wasm}\n"
                                "  volumes:\n"
                                "    - name: tok\n"
                                "      projected:\n"
                                "        sources:\n"
                                "          - serviceAccountToken: {path: token, "
                                "expirationSeconds: 600}\n";

/* cluster_host's volume callbacks against the scripted API server. */
typedef struct cluster_fixture {
    fx_t fx;
    kube_client_t *client;
    cluster_host_t *ch;
    pod_host_t ph;
} cluster_fixture_t;

static volume_host_t cluster_fixture_start(cluster_fixture_t *cf, api_t *api)
{
    fx_start(&cf->fx, api_handler, api, NULL);
    kube_kubeconfig_t *cfg = kube_kubeconfig_new(cf->fx.url, NULL, NULL, NULL, "admin-token");
    err_t err;
    assert_int_equal(kube_client_new(cfg, &cf->client, &err), 0);
    kube_kubeconfig_free(cfg);
    cf->ch = cluster_host_new(cf->client, NULL, NULL, "node-1");
    cluster_host_fill(cf->ch, &cf->ph, NULL, NULL);
    return pod_host_volumes(&cf->ph);
}

/* cf->ch may be NULL: a test that freed it itself. */
static void cluster_fixture_stop(cluster_fixture_t *cf)
{
    cluster_host_free(cf->ch);
    kube_client_free(cf->client);
    fx_stop(&cf->fx);
}

static void token_refreshed_before_expiry(void **state)
{
    (void)state;
    api_t api = {0};
    cluster_fixture_t cf;
    volume_host_t h = cluster_fixture_start(&cf, &api);
    cluster_host_t *ch = cf.ch;
    err_t err;

    char *dir = temp_dir();
    podspec_t *s = pod(TOKEN_POD);
    if (volume_setup(&h, s, dir, &err) == -1) fail_msg("%s", err.msg);
    char *vol = fs_join(dir, "volumes/tok");
    char *t = slurp(vol, "token", NULL);
    assert_string_equal(t, "token-1");
    free(t);
    assert_int_equal(atomic_load(&api.tokens), 1);

    /* Young: reused, the file untouched. */
    int64_t expires = 0;
    char *v1 = link_of(vol, "..data");
    if (volume_refresh(&h, s, dir, &expires, &err) == -1) fail_msg("%s", err.msg);
    assert_int_equal(atomic_load(&api.tokens), 1);
    assert_true(expires > time_now_ns());
    char *still = link_of(vol, "..data");
    assert_string_equal(still, v1);
    free(still);

    /* Past 80% of its life (but before it expires): a new one, written. */
    time_sleep_ms(2500);
    if (volume_refresh(&h, s, dir, &expires, &err) == -1) fail_msg("%s", err.msg);
    assert_int_equal(atomic_load(&api.tokens), 2);
    t = slurp(vol, "token", NULL);
    assert_string_equal(t, "token-2");
    free(t);
    char *v2 = link_of(vol, "..data");
    assert_string_not_equal(v2, v1);
    free(v1);
    free(v2);

    /* Another pod's going leaves this pod's young token cached; this
     * pod's going drops it (the kubelet's token manager does the same):
     * asked for again, a new one is requested. */
    cluster_host_forget_pod(ch, "0f1e2d3c-aaaa-bbbb-cccc-00000000000");
    cluster_host_forget_pod(ch, "other");
    if (volume_refresh(&h, s, dir, &expires, &err) == -1) fail_msg("%s", err.msg);
    assert_int_equal(atomic_load(&api.tokens), 2);
    cluster_host_forget_pod(ch, s->uid);
    if (volume_refresh(&h, s, dir, &expires, &err) == -1) fail_msg("%s", err.msg);
    assert_int_equal(atomic_load(&api.tokens), 3);
    t = slurp(vol, "token", NULL);
    assert_string_equal(t, "token-3");
    free(t);

    /* A ConfigMap that is absent is asked for again every time. */
    json_t *data = NULL;
    assert_int_equal(h.lookup(h.ctx, "shop", false, "late", &data, &err), 0);
    assert_null(data);
    assert_int_equal(h.lookup(h.ctx, "shop", false, "late", &data, &err), 0);
    assert_null(data);
    assert_int_equal(atomic_load(&api.cm_gets), 2);
    atomic_store(&api.cm_exists, true);
    assert_int_equal(h.lookup(h.ctx, "shop", false, "late", &data, &err), 0);
    assert_non_null(data);
    assert_string_equal(json_string_value(json_object_get(data, "k")), "v");
    json_decref(data);
    /* This API server serves no LIST, so the object's watch never lists
     * and every read is a GET (never a stale copy); reads from a watch
     * that lists are covered by test_kube_objcache. */
    assert_int_equal(h.lookup(h.ctx, "shop", false, "late", &data, &err), 0);
    assert_non_null(data);
    json_decref(data);
    assert_int_equal(atomic_load(&api.cm_gets), 4);

    free(vol);
    podspec_free(s);
    rm_dir(dir);
    cluster_fixture_stop(&cf);
}

/* Every pod's token stays cached however many pods there are (a node of
 * thousands refreshes each pod's volumes every few seconds: a token that
 * fell out of the cache would be a new TokenRequest each time); a warmed
 * token is the one the pod's volume then gets, with one request between
 * them even when the volume asks while the warm request is in flight; a
 * host freed while a warm request runs waits for it. */
static void tokens_of_many_pods_stay_cached_and_warm(void **state)
{
    (void)state;
    api_t api = {.token_life_s = 600};
    cluster_fixture_t cf;
    volume_host_t h = cluster_fixture_start(&cf, &api);
    cluster_host_t *ch = cf.ch;
    err_t err;
    assert_non_null(h.token_warm);
    podspec_t *s = pod(TOKEN_POD);

    enum { PODS = 300 };
    char uids[PODS][40];
    char *first[PODS];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < PODS; i++) {
            podspec_t p = *s;
            snprintf(uids[i], sizeof uids[i], "0f1e2d3c-0000-0000-0000-%012d", i);
            p.uid = uids[i];
            char *t = NULL;
            int64_t exp = 0;
            if (h.token(h.ctx, &p, NULL, 600, &t, &exp, &err) == -1) fail_msg("%s", err.msg);
            if (round == 0) {
                first[i] = t;
            } else {
                assert_string_equal(t, first[i]);
                free(t);
                free(first[i]);
            }
        }
        assert_int_equal(atomic_load(&api.tokens), PODS);
    }
    for (int i = 0; i < PODS; i++)
        cluster_host_forget_pod(ch, uids[i]);

    /* Warmed, then the volume made at once: one request, its token. */
    char *dir = temp_dir();
    volume_warm_tokens(&h, s);
    if (volume_setup(&h, s, dir, &err) == -1) fail_msg("%s", err.msg);
    assert_int_equal(atomic_load(&api.tokens), PODS + 1);
    char *vol = fs_join(dir, "volumes/tok");
    char *t = slurp(vol, "token", NULL);
    char want[32];
    snprintf(want, sizeof want, "token-%d", PODS + 1);
    assert_string_equal(t, want);
    free(t);
    /* Warming a token already cached asks nothing. */
    volume_warm_tokens(&h, s);
    if (volume_refresh(&h, s, dir, &(int64_t){0}, &err) == -1) fail_msg("%s", err.msg);
    assert_int_equal(atomic_load(&api.tokens), PODS + 1);

    /* A warm request still running when the host is freed. */
    cluster_host_forget_pod(ch, s->uid);
    volume_warm_tokens(&h, s);
    cluster_host_free(ch);
    cf.ch = NULL;
    assert_int_equal(atomic_load(&api.tokens), PODS + 2);

    free(vol);
    podspec_free(s);
    rm_dir(dir);
    cluster_fixture_stop(&cf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_map_volume_and_updates),
        cmocka_unit_test(warm_names_the_volumes_objects),
        cmocka_unit_test(downward_api_formats_maps_as_the_kubelet),
        cmocka_unit_test(sub_path_stays_inside_its_volume),
        cmocka_unit_test(unsupported_types_are_permanent),
        cmocka_unit_test(empty_dir_size_limit),
        cmocka_unit_test(token_refreshed_before_expiry),
        cmocka_unit_test(tokens_of_many_pods_stay_cached_and_warm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
