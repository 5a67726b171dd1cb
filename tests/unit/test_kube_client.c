/* test_kube_client.c: unit tests for kube/kubeconfig and kube/client against
 * the scripted HTTP server in kube_fixture.h: kubeconfig forms, request
 * shape (verbs, headers, content types, bodies), Status errors, timeouts,
 * concurrency, metrics, and TLS with client certificates and rotation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "kube/watch.h"
#include "util/base64.h"
#include "util/fs.h"
#include "util/xalloc.h"

#include "kube_fixture.h"

#include <signal.h>
#include <sys/stat.h>

/* --- helpers ------------------------------------------------------------ */

static char *make_tmpdir(void)
{
    char tmpl[] = "/tmp/wasmlet-kube-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char *p = fs_join(dir, name);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    err_t err;
    assert_int_equal(fs_mkdir_p(p, 0755, &err), 0);
    *slash = '/';
    assert_int_equal(fs_write_atomic(p, text, strlen(text), 0600, &err), 0);
    free(p);
}

static char *read_file(const char *dir, const char *name)
{
    char *p = fs_join(dir, name), *data;
    err_t err;
    assert_int_equal(fs_read_all(p, &data, NULL, &err), 0);
    free(p);
    return data;
}

static kube_client_t *plain_client(const char *url, const char *token)
{
    kube_kubeconfig_t *cfg = kube_kubeconfig_new(url, NULL, NULL, NULL, token);
    kube_client_t *c;
    err_t err;
    assert_int_equal(kube_client_new(cfg, &c, &err), 0);
    kube_kubeconfig_free(cfg);
    return c;
}

static void rm_dir(char *dir)
{
    err_t err;
    assert_int_equal(fs_rm_rf(dir, &err), 0);
    free(dir);
}

/* --- base64 and escaping ------------------------------------------------ */

static void base64_round_trip(void **state)
{
    (void)state;
    const char *cases[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *e = base64_encode(cases[i], strlen(cases[i]));
        assert_string_equal(e, want[i]);
        unsigned char *d;
        size_t n;
        assert_int_equal(base64_decode(e, strlen(e), &d, &n), 0);
        assert_int_equal(n, strlen(cases[i]));
        assert_memory_equal(d, cases[i], n);
        free(d);
        free(e);
    }
    unsigned char *d;
    size_t n;
    assert_int_equal(base64_decode("Zm9v\nYmFy\n", 10, &d, &n), 0); /* wrapped lines */
    assert_int_equal(n, 6);
    free(d);
    assert_int_equal(base64_decode("Zm9v!", 5, &d, &n), -1);
    assert_int_equal(base64_decode("Zg==Zg==", 8, &d, &n), -1);
    assert_int_equal(base64_decode("Z", 1, &d, &n), -1);
}

static void escape_query_values(void **state)
{
    (void)state;
    char *e = kube_escape("spec.nodeName=node-1,app in (a b)~");
    assert_string_equal(e, "spec.nodeName%3Dnode-1%2Capp%20in%20%28a%20b%29~");
    free(e);
}

/* --- kubeconfig ------------------------------------------------------- */

static void kubeconfig_data_form(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char *ca = base64_encode("CA-PEM\n", 7), *cert = base64_encode("CERT-PEM\n", 9),
         *key = base64_encode("KEY-PEM\n", 8);
    char *text = xasprintf("apiVersion: v1\n"
                           "kind: Config\n"
                           "current-context: second\n"
                           "clusters:\n"
                           "- name: c1\n"
                           "  cluster: {server: \"https://one.example:6443\"}\n"
                           "- name: c2\n"
                           "  cluster:\n"
                           "    server: https://10.0.0.2:6443/\n"
                           "    certificate-authority-data: %s\n"
                           "    insecure-skip-tls-verify: true\n"
                           "users:\n"
                           "- name: u1\n"
                           "  user:\n"
                           "    token: abc.def\n"
                           "- name: u2\n"
                           "  user:\n"
                           "    client-certificate-data: %s\n"
                           "    client-key-data: %s\n"
                           "contexts:\n"
                           "- name: first\n"
                           "  context: {cluster: c1, user: u1}\n"
                           "- name: second\n"
                           "  context:\n"
                           "    cluster: c2\n"
                           "    user: u2\n"
                           "    namespace: kube-system\n",
                           ca, cert, key);
    write_file(dir, "config", text);
    char *path = fs_join(dir, "config");
    kube_kubeconfig_t *cfg;
    err_t err;
    assert_int_equal(kube_kubeconfig_load(path, NULL, &cfg, &err), 0);
    assert_string_equal(cfg->context, "second");
    assert_string_equal(cfg->server, "https://10.0.0.2:6443");
    assert_string_equal(cfg->ca_pem, "CA-PEM\n");
    assert_string_equal(cfg->cert_pem, "CERT-PEM\n");
    assert_string_equal(cfg->key_pem, "KEY-PEM\n");
    assert_null(cfg->token);
    assert_true(cfg->insecure_skip_tls_verify);
    assert_string_equal(cfg->namespace, "kube-system");
    kube_kubeconfig_free(cfg);

    assert_int_equal(kube_kubeconfig_load(path, "first", &cfg, &err), 0);
    assert_string_equal(cfg->server, "https://one.example:6443");
    assert_null(cfg->ca_pem);
    assert_null(cfg->cert_pem);
    assert_string_equal(cfg->token, "abc.def");
    assert_false(cfg->insecure_skip_tls_verify);
    assert_null(cfg->namespace);
    kube_kubeconfig_free(cfg);

    assert_int_equal(kube_kubeconfig_load(path, "third", &cfg, &err), -1);
    assert_non_null(strstr(err.msg, "context \"third\" not found"));
    assert_non_null(strstr(err.msg, path));
    free(path);
    free(text);
    free(ca);
    free(cert);
    free(key);
    rm_dir(dir);
}

static void kubeconfig_file_form(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    write_file(dir, "kube/pki/ca.crt", "CA FROM FILE\n");
    write_file(dir, "kube/pki/client.key", "KEY FROM FILE\n");
    write_file(dir, "elsewhere/client.crt", "CERT FROM FILE\n");
    write_file(dir, "kube/token", "sa-token-123\n");
    char *abs_cert = fs_join(dir, "elsewhere/client.crt");
    char *text = xasprintf("{\"current-context\": \"ctx\",\n"
                           " \"clusters\": [{\"name\": \"c\", \"cluster\": {\n"
                           "   \"server\": \"https://api:6443\",\n"
                           "   \"certificate-authority\": \"pki/ca.crt\"}}],\n"
                           " \"users\": [{\"name\": \"u\", \"user\": {\n"
                           "   \"client-certificate\": \"%s\",\n"
                           "   \"client-key\": \"pki/client.key\",\n"
                           "   \"tokenFile\": \"token\"}}],\n"
                           " \"contexts\": [{\"name\": \"ctx\",\n"
                           "   \"context\": {\"cluster\": \"c\", \"user\": \"u\"}}]}\n",
                           abs_cert);
    write_file(dir, "kube/config", text); /* JSON is YAML too */
    char *path = fs_join(dir, "kube/config");
    kube_kubeconfig_t *cfg;
    err_t err;
    assert_int_equal(kube_kubeconfig_load(path, NULL, &cfg, &err), 0);
    assert_string_equal(cfg->ca_pem, "CA FROM FILE\n");
    assert_string_equal(cfg->cert_pem, "CERT FROM FILE\n");
    assert_string_equal(cfg->key_pem, "KEY FROM FILE\n");
    assert_string_equal(cfg->token, "sa-token-123");
    char *want_tf = fs_join(dir, "kube/token");
    assert_string_equal(cfg->token_file, want_tf);
    free(want_tf);
    kube_kubeconfig_free(cfg);

    /* A relative path that does not exist is reported with its resolved path. */
    char *bad = fs_join(dir, "kube/config2");
    char *text2 = xasprintf("current-context: x\nclusters:\n- name: c\n  cluster:\n"
                            "    server: https://a\n    certificate-authority: missing/ca.crt\n"
                            "contexts:\n- name: x\n  context: {cluster: c}\n");
    write_file(dir, "kube/config2", text2);
    assert_int_equal(kube_kubeconfig_load(bad, NULL, &cfg, &err), -1);
    char *want_missing = fs_join(dir, "kube/missing/ca.crt");
    assert_non_null(strstr(err.msg, want_missing));
    assert_non_null(strstr(err.msg, "certificate-authority"));
    free(want_missing);
    free(text2);
    free(bad);
    free(path);
    free(text);
    free(abs_cert);
    rm_dir(dir);
}

static void kubeconfig_errors(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    struct {
        const char *text, *want;
    } cases[] = {
        {"clusters: [\n", "line"},
        {"clusters: []\n", "no current-context"},
        {"current-context: a\ncontexts:\n- name: a\n  context: {cluster: c}\n",
         "cluster \"c\" not found"},
        {"current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n"
         "clusters:\n- name: c\n  cluster: {server: \"https://x\", "
         "certificate-authority-data: \"@@@\"}\n",
         "certificate-authority-data: not valid base64"},
        {"current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n"
         "clusters:\n- name: c\n  cluster: {server: \"https://x\"}\n"
         "users:\n- name: u\n  user: {exec: {command: helper}}\n",
         "not supported"},
        {"current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n"
         "clusters:\n- name: c\n  cluster: {server: \"https://x\"}\n"
         "users:\n- name: u\n  user: {client-certificate-data: Zm9v}\n",
         "must be set together"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(dir, "config", cases[i].text);
        char *path = fs_join(dir, "config");
        kube_kubeconfig_t *cfg = NULL;
        err_t err;
        assert_int_equal(kube_kubeconfig_load(path, NULL, &cfg, &err), -1);
        if (!strstr(err.msg, cases[i].want)) fail_msg("case %zu: %s", i, err.msg);
        assert_null(cfg);
        free(path);
    }
    kube_kubeconfig_t *cfg;
    err_t err;
    assert_int_equal(kube_kubeconfig_load("/nonexistent/kubeconfig", NULL, &cfg, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/kubeconfig"));
    rm_dir(dir);
}

static void kubeconfig_write_round_trip(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    write_file(dir, "pki/kubelet-client-current.pem", "CERT AND KEY\n");
    char *pem = fs_join(dir, "pki/kubelet-client-current.pem");
    char *path = fs_join(dir, "kubelet.conf");
    err_t err;
    const char *ca = "-----BEGIN CERTIFICATE-----\nMIIB\"quoted\"\n-----END CERTIFICATE-----\n";
    assert_int_equal(kube_kubeconfig_write(path, "https://10.0.0.1:6443", ca, pem, pem, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    kube_kubeconfig_t *cfg;
    assert_int_equal(kube_kubeconfig_load(path, NULL, &cfg, &err), 0);
    assert_string_equal(cfg->server, "https://10.0.0.1:6443");
    assert_string_equal(cfg->ca_pem, ca);
    assert_string_equal(cfg->cert_pem, "CERT AND KEY\n");
    assert_string_equal(cfg->key_pem, "CERT AND KEY\n");
    kube_kubeconfig_free(cfg);
    free(path);
    free(pem);
    rm_dir(dir);
}

/* --- requests ------------------------------------------------------------ */

/* Echoes the request as JSON so the client side can check what arrived. */
static int echo_handler(fx_conn_t *conn, const fx_req_t *req, void *ctx)
{
    (void)ctx;
    json_t *o = json_pack("{s:s,s:s,s:s%}", "method", req->method, "target", req->target, "body",
                          req->body, req->body_len);
    char *s = json_dumps(o, JSON_COMPACT);
    fx_respond_json(conn, req->method[0] == 'P' && req->method[1] == 'O' ? 201 : 200, s);
    free(s);
    json_decref(o);
    return 0;
}

static void assert_header(const fx_req_t *r, const char *name, const char *want)
{
    char v[512];
    if (!want) {
        if (fx_header(r, name, v, sizeof v)) fail_msg("unexpected %s: %s", name, v);
        return;
    }
    if (!fx_header(r, name, v, sizeof v)) fail_msg("missing header %s", name);
    assert_string_equal(v, want);
}

static void json_verbs_and_headers(void **state)
{
    (void)state;
    fx_t fx;
    fx_start(&fx, echo_handler, NULL, NULL);
    kube_client_t *c = plain_client(fx.url, "s3cret");
    err_t err;
    kube_result_t res;
    json_t *out;

    assert_int_equal(kube_get(c, "/api/v1/namespaces/default/pods/web", &out, &res, &err), 0);
    assert_int_equal(res.status, 200);
    assert_string_equal(json_string_value(json_object_get(out, "method")), "GET");
    json_decref(out);
    fx_req_t r;
    assert_true(fx_get(&fx, 0, &r));
    assert_string_equal(r.method, "GET");
    assert_string_equal(r.target, "/api/v1/namespaces/default/pods/web");
    assert_header(&r, "accept", "application/json");
    assert_header(&r, "user-agent", "wasmlet/" WASMLET_VERSION);
    assert_header(&r, "authorization", "Bearer s3cret");
    assert_header(&r, "content-type", NULL);
    assert_int_equal(r.body_len, 0);
    fx_release(&r);

    json_t *pod = json_pack("{s:s,s:{s:s}}", "kind", "Pod", "metadata", "name", "web");
    assert_int_equal(kube_create(c, "/api/v1/namespaces/default/pods", pod, &out, &res, &err), 0);
    assert_int_equal(res.status, 201);
    json_decref(out);
    assert_true(fx_get(&fx, 1, &r));
    assert_string_equal(r.method, "POST");
    assert_header(&r, "content-type", "application/json");
    json_t *sent = json_loads(r.body, 0, NULL);
    assert_true(json_equal(sent, pod));
    json_decref(sent);
    fx_release(&r);

    assert_int_equal(
        kube_update(c, "/api/v1/namespaces/default/pods/web/status", pod, NULL, &res, &err), 0);
    assert_true(fx_get(&fx, 2, &r));
    assert_string_equal(r.method, "PUT");
    assert_string_equal(r.target, "/api/v1/namespaces/default/pods/web/status");
    assert_header(&r, "content-type", "application/json");
    fx_release(&r);
    json_decref(pod);

    /* Each patch type with its content type; apply gets a field manager. */
    struct {
        kube_patch_type_t type;
        const char *path, *ct, *target;
    } patches[] = {
        {KUBE_PATCH_MERGE, "/p", "application/merge-patch+json", "/p"},
        {KUBE_PATCH_STRATEGIC, "/p", "application/strategic-merge-patch+json", "/p"},
        {KUBE_PATCH_JSON, "/p", "application/json-patch+json", "/p"},
        {KUBE_PATCH_APPLY, "/p", "application/apply-patch+yaml", "/p?fieldManager=wasmlet"},
        {KUBE_PATCH_APPLY, "/p?force=true", "application/apply-patch+yaml",
         "/p?force=true&fieldManager=wasmlet"},
        {KUBE_PATCH_APPLY, "/p?fieldManager=me", "application/apply-patch+yaml",
         "/p?fieldManager=me"},
    };
    json_t *patch = json_pack("{s:{s:s}}", "status", "phase", "Running");
    json_t *jpatch =
        json_pack("[{s:s,s:s,s:s}]", "op", "replace", "path", "/status/phase", "value", "Running");
    for (size_t i = 0; i < sizeof patches / sizeof patches[0]; i++) {
        json_t *body = patches[i].type == KUBE_PATCH_JSON ? jpatch : patch;
        assert_int_equal(kube_patch(c, patches[i].path, patches[i].type, body, &out, &res, &err),
                         0);
        json_decref(out);
        assert_true(fx_get(&fx, 3 + i, &r));
        assert_string_equal(r.method, "PATCH");
        assert_string_equal(r.target, patches[i].target);
        assert_header(&r, "content-type", patches[i].ct);
        json_t *got = json_loads(r.body, 0, NULL);
        assert_true(json_equal(got, body));
        json_decref(got);
        fx_release(&r);
    }
    json_decref(patch);
    json_decref(jpatch);
    size_t next = 3 + sizeof patches / sizeof patches[0];

    json_t *opts =
        json_pack("{s:i,s:{s:s}}", "gracePeriodSeconds", 0, "preconditions", "uid", "1234-abcd");
    assert_int_equal(kube_delete(c, "/api/v1/namespaces/default/pods/web", opts, &out, &res, &err),
                     0);
    json_decref(out);
    assert_true(fx_get(&fx, next, &r));
    assert_string_equal(r.method, "DELETE");
    assert_header(&r, "content-type", "application/json");
    json_t *got = json_loads(r.body, 0, NULL);
    assert_true(json_equal(got, opts));
    json_decref(got);
    fx_release(&r);
    json_decref(opts);
    assert_int_equal(kube_delete(c, "/api/v1/namespaces/default/pods/web", NULL, NULL, &res, &err),
                     0);
    assert_true(fx_get(&fx, next + 1, &r));
    assert_string_equal(r.method, "DELETE");
    assert_header(&r, "content-type", NULL);
    assert_int_equal(r.body_len, 0);
    fx_release(&r);

    /* The raw layer hands back any status and the body as is. */
    long status;
    strbuf_t body = STRBUF_INIT;
    assert_int_equal(
        kube_request(c, "POST", "/raw", "text/plain", "hello", 5, &status, &body, &err), 0);
    assert_int_equal(status, 201);
    json_t *echo = json_loads(strbuf_str(&body), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(echo, "body")), "hello");
    json_decref(echo);
    strbuf_free(&body);

    kube_client_metrics_t m;
    kube_client_metrics_snapshot(c, &m);
    assert_int_equal(m.requests[KUBE_VERB_GET][2], 1);
    assert_int_equal(m.requests[KUBE_VERB_POST][2], 2);
    assert_int_equal(m.requests[KUBE_VERB_PUT][2], 1);
    assert_int_equal(m.requests[KUBE_VERB_PATCH][2], 6);
    assert_int_equal(m.requests[KUBE_VERB_DELETE][2], 2);
    assert_int_equal(m.latency_count[KUBE_VERB_PATCH], 6);
    kube_client_free(c);
    fx_stop(&fx);
}

static int error_handler(fx_conn_t *conn, const fx_req_t *req, void *ctx)
{
    (void)ctx;
    if (strstr(req->target, "/pods/x"))
        fx_respond_status(conn, 404, "NotFound", "pods \\\"x\\\" not found");
    else if (strstr(req->target, "/conflict"))
        fx_respond_status(conn, 409, "AlreadyExists", "pods \\\"web\\\" already exists");
    else if (strstr(req->target, "/html"))
        fx_respond(conn, 502, "text/html", "<html>Bad gateway</html>\n<body></body>");
    else if (strstr(req->target, "/empty"))
        fx_respond(conn, 503, "text/plain", "");
    else if (strstr(req->target, "/nojson"))
        fx_respond(conn, 200, "application/json", "{not json");
    else
        fx_respond_json(conn, 200, "{}");
    return 0;
}

static void status_errors(void **state)
{
    (void)state;
    fx_t fx;
    fx_start(&fx, error_handler, NULL, NULL);
    kube_client_t *c = plain_client(fx.url, NULL);
    err_t err;
    kube_result_t res;
    json_t *out = (json_t *)1;

    assert_int_equal(kube_get(c, "/api/v1/namespaces/default/pods/x", &out, &res, &err), -1);
    assert_null(out);
    assert_string_equal(err.msg, "pods \"x\" not found (404 NotFound)");
    assert_int_equal(res.status, 404);
    assert_string_equal(res.reason, "NotFound");

    json_t *obj = json_object();
    assert_int_equal(kube_create(c, "/conflict", obj, NULL, &res, &err), -1);
    assert_int_equal(res.status, 409);
    assert_string_equal(res.reason, "AlreadyExists");
    assert_non_null(strstr(err.msg, "already exists"));
    json_decref(obj);

    assert_int_equal(kube_get(c, "/html", NULL, &res, &err), -1);
    assert_int_equal(res.status, 502);
    assert_string_equal(res.reason, "");
    assert_string_equal(err.msg, "HTTP 502: <html>Bad gateway</html>");

    assert_int_equal(kube_get(c, "/empty", NULL, &res, &err), -1);
    assert_int_equal(res.status, 503);
    assert_non_null(strstr(err.msg, "503"));

    assert_int_equal(kube_get(c, "/nojson", &out, &res, &err), -1);
    assert_non_null(strstr(err.msg, "invalid JSON"));
    assert_null(out);

    kube_client_metrics_t m;
    kube_client_metrics_snapshot(c, &m);
    assert_int_equal(m.requests[KUBE_VERB_GET][4], 1);
    assert_int_equal(m.requests[KUBE_VERB_GET][5], 2);
    assert_int_equal(m.requests[KUBE_VERB_GET][2], 1);
    assert_int_equal(m.requests[KUBE_VERB_POST][4], 1);
    kube_client_free(c);
    fx_stop(&fx);
}

static void transport_error(void **state)
{
    (void)state;
    /* A port that was just free: nothing listens there. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    getsockname(s, (struct sockaddr *)&sa, &sl);
    close(s);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(sa.sin_port));
    kube_client_t *c = plain_client(url, NULL);
    err_t err;
    kube_result_t res = {.status = 99};
    assert_int_equal(kube_get(c, "/api", NULL, &res, &err), -1);
    assert_int_equal(res.status, 0);
    assert_non_null(strstr(err.msg, url));
    kube_client_metrics_t m;
    kube_client_metrics_snapshot(c, &m);
    assert_int_equal(m.requests[KUBE_VERB_GET][0], 1);
    kube_client_free(c);
}

static int slow_handler(fx_conn_t *conn, const fx_req_t *req, void *ctx)
{
    (void)req;
    (void)ctx;
    if (fx_wait_client_gone(conn, 3000)) return -1;
    fx_respond_json(conn, 200, "{}");
    return 0;
}

static void request_timeouts(void **state)
{
    (void)state;
    fx_t fx;
    fx_start(&fx, slow_handler, NULL, NULL);
    kube_client_t *c = plain_client(fx.url, NULL);
    err_t err;
    long status;
    kube_req_t req = {.method = "GET", .path = "/slow", .timeout_ms = 200};
    long t0 = fx_now_ms();
    assert_int_equal(kube_do(c, &req, &status, NULL, &err), -1);
    long took = fx_now_ms() - t0;
    assert_true(took >= 150 && took < 1500);
    assert_int_equal(status, 0);
    assert_non_null(strstr(err.msg, "timed out"));

    kube_client_set_timeout(c, 300);
    t0 = fx_now_ms();
    assert_int_equal(kube_get(c, "/slow", NULL, NULL, &err), -1);
    took = fx_now_ms() - t0;
    assert_true(took >= 250 && took < 1500);
    kube_client_free(c);
    fx_stop(&fx);
}

/* --- concurrency and metrics --------------------------------------------- */

typedef struct worker {
    kube_client_t *c;
    int id;
    int ok, bad;
} worker_t;

#define WORKERS 8
#define PER_WORKER 40

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < PER_WORKER; i++) {
        char path[64];
        snprintf(path, sizeof path, "/api/v1/namespaces/w%d/pods/p%d", w->id, i);
        json_t *out = NULL;
        err_t err;
        int rc;
        if (i % 4 == 3) {
            json_t *o = json_pack("{s:i,s:i}", "worker", w->id, "i", i);
            rc = kube_create(w->c, path, o, &out, NULL, &err);
            json_t *echo =
                out ? json_loads(json_string_value(json_object_get(out, "body")), 0, NULL) : NULL;
            if (rc == 0 && !json_equal(echo, o)) rc = -1;
            json_decref(echo);
            json_decref(o);
        } else {
            rc = kube_get(w->c, path, &out, NULL, &err);
        }
        if (rc == 0 && strcmp(json_string_value(json_object_get(out, "target")), path) == 0)
            w->ok++;
        else
            w->bad++;
        json_decref(out);
    }
    return NULL;
}

static void concurrent_requests(void **state)
{
    (void)state;
    fx_t fx;
    fx_start(&fx, echo_handler, NULL, NULL);
    kube_client_t *c = plain_client(fx.url, "t");
    pthread_t th[WORKERS];
    worker_t w[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        w[i] = (worker_t){c, i, 0, 0};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].bad, 0);
        assert_int_equal(w[i].ok, PER_WORKER);
    }
    assert_int_equal(fx_count(&fx), WORKERS * PER_WORKER);
    kube_client_metrics_t m;
    kube_client_metrics_snapshot(c, &m);
    assert_int_equal(m.requests[KUBE_VERB_GET][2], WORKERS * PER_WORKER * 3 / 4);
    assert_int_equal(m.requests[KUBE_VERB_POST][2], WORKERS * PER_WORKER / 4);
    assert_int_equal(m.latency_count[KUBE_VERB_GET], WORKERS * PER_WORKER * 3 / 4);
    for (int i = 1; i < KUBE_LATENCY_BUCKETS; i++)
        assert_true(m.latency_bucket[KUBE_VERB_GET][i] >= m.latency_bucket[KUBE_VERB_GET][i - 1]);
    assert_true(m.latency_bucket[KUBE_VERB_GET][KUBE_LATENCY_BUCKETS - 1] <=
                m.latency_count[KUBE_VERB_GET]);
    assert_true(m.latency_sum_seconds[KUBE_VERB_GET] > 0);
    /* Keep-alive: connections are reused, far fewer than requests. */
    pthread_mutex_lock(&fx.mu);
    size_t conns = 0;
    for (fx_conn_t *k = fx.conns; k; k = k->next)
        conns++;
    pthread_mutex_unlock(&fx.mu);
    assert_true(conns <= 2 * WORKERS);
    /* The client counts the connections the server saw. */
    kube_client_metrics_snapshot(c, &m);
    assert_int_equal(m.connections_opened, conns);
    /* Closing the idle connections: the server sees every one closed,
     * and the next requests, one at a time, share one new connection. */
    kube_client_close_idle(c);
    long until = fx_now_ms() + 2000;
    size_t open_now;
    do {
        open_now = 0;
        pthread_mutex_lock(&fx.mu);
        for (fx_conn_t *k = fx.conns; k; k = k->next)
            open_now += !k->gone;
        pthread_mutex_unlock(&fx.mu);
        if (open_now > 0) fx_sleep_ms(5);
    } while (open_now > 0 && fx_now_ms() < until);
    printf("connections: %zu opened, %zu open after closing the idle ones\n", conns, open_now);
    assert_true(conns > 1);
    assert_int_equal(open_now, 0);
    for (int i = 0; i < 3; i++) {
        json_t *out = NULL;
        err_t err;
        assert_int_equal(kube_get(c, "/api/v1/namespaces/x/pods/y", &out, NULL, &err), 0);
        json_decref(out);
    }
    pthread_mutex_lock(&fx.mu);
    size_t after = 0;
    for (fx_conn_t *k = fx.conns; k; k = k->next)
        after++;
    pthread_mutex_unlock(&fx.mu);
    assert_int_equal(after, conns + 1);
    kube_client_metrics_snapshot(c, &m);
    assert_int_equal(m.connections_opened, conns + 1);
    kube_client_free(c);
    fx_stop(&fx);
}

static void metrics_histogram(void **state)
{
    (void)state;
    kube_client_t *c = plain_client("http://127.0.0.1:1", NULL);
    kube_metrics_record(c, KUBE_VERB_PATCH, 200, 0.003);
    kube_metrics_record(c, KUBE_VERB_PATCH, 422, 0.2);
    kube_metrics_record(c, KUBE_VERB_PATCH, 500, 45.0);
    kube_metrics_record(c, KUBE_VERB_WATCH, 200, -1);
    kube_client_metrics_t m;
    kube_client_metrics_snapshot(c, &m);
    assert_int_equal(m.requests[KUBE_VERB_PATCH][2], 1);
    assert_int_equal(m.requests[KUBE_VERB_PATCH][4], 1);
    assert_int_equal(m.requests[KUBE_VERB_PATCH][5], 1);
    assert_int_equal(m.latency_count[KUBE_VERB_PATCH], 3);
    for (int i = 0; i < KUBE_LATENCY_BUCKETS; i++) {
        int want = (kube_latency_bounds[i] >= 0.003) + (kube_latency_bounds[i] >= 0.2);
        assert_int_equal(m.latency_bucket[KUBE_VERB_PATCH][i], want);
    }
    assert_true(m.latency_sum_seconds[KUBE_VERB_PATCH] > 45.2 &&
                m.latency_sum_seconds[KUBE_VERB_PATCH] < 45.21);
    assert_int_equal(m.requests[KUBE_VERB_WATCH][2], 1);
    assert_int_equal(m.latency_count[KUBE_VERB_WATCH], 0);
    assert_string_equal(kube_metric_verb_name(KUBE_VERB_WATCH), "WATCH");
    kube_client_free(c);
}

/* --- TLS with client certificates ----------------------------------------- */

static int run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0) fail_msg("command failed (%d): %s", rc, cmd);
    return rc;
}

/* A CA, a server certificate for 127.0.0.1, and client certificates for
 * system:node:n1 and system:node:n2, made with the openssl CLI. */
static void make_pki(const char *dir)
{
    const char *key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    char *cmd = xasprintf(
        "set -e; cd %s; exec 2>openssl.log\n"
        "openssl req -x509 %s -keyout ca.key -out ca.crt -subj /CN=test-ca -days 2\n"
        "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext\n"
        "openssl req %s -keyout server.key -out server.csr -subj /CN=127.0.0.1\n"
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "-out server.crt -days 2 -extfile san.ext\n"
        "for n in n1 n2; do\n"
        "  openssl req %s -keyout $n.key -out $n.csr -subj /O=system:nodes/CN=system:node:$n\n"
        "  openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "-out $n.crt -days 2\n"
        "  cat $n.crt $n.key > $n.pem\n"
        "done\n"
        "openssl req -x509 %s -keyout other.key -out other.crt -subj /CN=other-ca -days 2\n",
        dir, key, key, key, key);
    run(cmd);
    free(cmd);
}

static SSL_CTX *server_ctx(const char *dir)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char *crt = fs_join(dir, "server.crt"), *key = fs_join(dir, "server.key"),
         *ca = fs_join(dir, "ca.crt");
    assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, crt), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"kt", 2);
    free(crt);
    free(key);
    free(ca);
    return ctx;
}

typedef struct tls_ctx {
    atomic_bool release_watch;
} tls_ctx_t;

static int tls_handler(fx_conn_t *conn, const fx_req_t *req, void *ctx)
{
    tls_ctx_t *t = ctx;
    if (strstr(req->target, "watch=1")) {
        /* One event, then hold the stream until the test says go on. */
        fx_stream_begin(conn);
        const char *ev1 = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\","
                          "\"resourceVersion\":\"5\"}}}\n";
        fx_chunk(conn, ev1, strlen(ev1));
        long until = fx_now_ms() + 5000;
        while (!atomic_load(&t->release_watch) && fx_now_ms() < until)
            fx_sleep_ms(10);
        const char *ev2 = "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\","
                          "\"resourceVersion\":\"6\"}}}\n";
        fx_chunk(conn, ev2, strlen(ev2));
        fx_stream_end(conn);
        return 0;
    }
    char body[512];
    snprintf(body, sizeof body, "{\"cn\":\"%s\"}", req->peer_cn);
    fx_respond_json(conn, 200, body);
    return 0;
}

static char *get_cn(kube_client_t *c, err_t *err)
{
    json_t *out;
    if (kube_get(c, "/whoami", &out, NULL, err) == -1) return NULL;
    char *cn = xstrdup(json_string_value(json_object_get(out, "cn")));
    json_decref(out);
    return cn;
}

typedef struct watch_run {
    kube_client_t *c;
    atomic_int events;
    int rc;
    kube_watch_result_t res;
    err_t err;
} watch_run_t;

static int count_event(void *ctx, kube_event_type_t type, json_t *obj)
{
    (void)type;
    (void)obj;
    watch_run_t *w = ctx;
    atomic_fetch_add(&w->events, 1);
    return 0;
}

static void *watch_main(void *arg)
{
    watch_run_t *w = arg;
    memset(&w->res, 0, sizeof w->res);
    w->rc = kube_watch_stream(w->c, "/api/v1/pods?watch=1", count_event, w, NULL, &w->res, &w->err);
    return NULL;
}

static void tls_client_certificates(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    make_pki(dir);
    char *ca = read_file(dir, "ca.crt"), *n1 = read_file(dir, "n1.pem"),
         *n2crt = read_file(dir, "n2.crt"), *n2key = read_file(dir, "n2.key"),
         *other = read_file(dir, "other.crt");
    SSL_CTX *sctx = server_ctx(dir);
    tls_ctx_t t = {false};
    fx_t fx;
    fx_start(&fx, tls_handler, &t, sctx);
    err_t err;

    /* Certificate and key from one PEM holding both, as the rotated file does. */
    kube_kubeconfig_t *cfg = kube_kubeconfig_new(fx.url, ca, n1, n1, NULL);
    kube_client_t *c;
    assert_int_equal(kube_client_new(cfg, &c, &err), 0);
    kube_kubeconfig_free(cfg);
    char *cn = get_cn(c, &err);
    if (!cn) fail_msg("%s", err.msg);
    assert_string_equal(cn, "system:node:n1");
    free(cn);

    /* A watch started now keeps its connection and identity across rotation. */
    watch_run_t w = {.c = c};
    pthread_t th;
    pthread_create(&th, NULL, watch_main, &w);
    long until = fx_now_ms() + 5000;
    while (atomic_load(&w.events) < 1 && fx_now_ms() < until)
        fx_sleep_ms(5);
    assert_int_equal(atomic_load(&w.events), 1);
    size_t watch_req = fx_count(&fx) - 1;

    /* Rotation: the next request presents the new identity. */
    assert_int_equal(kube_client_set_cert(c, n2crt, n2key, &err), 0);
    cn = get_cn(c, &err);
    if (!cn) fail_msg("%s", err.msg);
    assert_string_equal(cn, "system:node:n2");
    free(cn);

    atomic_store(&t.release_watch, true);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, 0);
    assert_int_equal(atomic_load(&w.events), 2);
    assert_string_equal(w.res.resource_version, "6");
    fx_req_t r;
    assert_true(fx_get(&fx, watch_req, &r));
    assert_non_null(strstr(r.target, "watch=1"));
    assert_string_equal(r.peer_cn, "system:node:n1");
    fx_release(&r);
    /* The next watch reconnects with the new identity. */
    pthread_create(&th, NULL, watch_main, &w);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, 0);
    assert_true(fx_get(&fx, fx_count(&fx) - 1, &r));
    assert_string_equal(r.peer_cn, "system:node:n2");
    fx_release(&r);

    /* A mismatched pair is refused and the current identity stays. */
    assert_int_equal(kube_client_set_cert(c, n2crt, n1, &err), -1);
    assert_non_null(strstr(err.msg, "does not match"));
    cn = get_cn(c, &err);
    assert_non_null(cn);
    assert_string_equal(cn, "system:node:n2");
    free(cn);
    kube_client_free(c);

    /* No client certificate: the server refuses the handshake. */
    cfg = kube_kubeconfig_new(fx.url, ca, NULL, NULL, NULL);
    assert_int_equal(kube_client_new(cfg, &c, &err), 0);
    kube_kubeconfig_free(cfg);
    kube_result_t res;
    assert_int_equal(kube_get(c, "/whoami", NULL, &res, &err), -1);
    assert_int_equal(res.status, 0);
    kube_client_free(c);

    /* The wrong CA: the client refuses the server... */
    cfg = kube_kubeconfig_new(fx.url, other, n1, n1, NULL);
    assert_int_equal(kube_client_new(cfg, &c, &err), 0);
    assert_int_equal(kube_get(c, "/whoami", NULL, &res, &err), -1);
    assert_non_null(strstr(err.msg, "certificate"));
    kube_client_free(c);
    /* ... unless told to skip verification. */
    cfg->insecure_skip_tls_verify = true;
    assert_int_equal(kube_client_new(cfg, &c, &err), 0);
    kube_kubeconfig_free(cfg);
    cn = get_cn(c, &err);
    if (!cn) fail_msg("%s", err.msg);
    assert_string_equal(cn, "system:node:n1");
    free(cn);
    kube_client_free(c);

    /* A key that does not match the certificate is refused up front. */
    cfg = kube_kubeconfig_new(fx.url, ca, n2crt, n1, NULL);
    assert_int_equal(kube_client_new(cfg, &c, &err), -1);
    assert_non_null(strstr(err.msg, "does not match"));
    kube_kubeconfig_free(cfg);

    fx_stop(&fx);
    SSL_CTX_free(sctx);
    free(ca);
    free(n1);
    free(n2crt);
    free(n2key);
    free(other);
    rm_dir(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base64_round_trip),       cmocka_unit_test(escape_query_values),
        cmocka_unit_test(kubeconfig_data_form),    cmocka_unit_test(kubeconfig_file_form),
        cmocka_unit_test(kubeconfig_errors),       cmocka_unit_test(kubeconfig_write_round_trip),
        cmocka_unit_test(json_verbs_and_headers),  cmocka_unit_test(status_errors),
        cmocka_unit_test(transport_error),         cmocka_unit_test(request_timeouts),
        cmocka_unit_test(concurrent_requests),     cmocka_unit_test(metrics_histogram),
        cmocka_unit_test(tls_client_certificates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
