/* test_bootstrap.c: unit tests for the node's identity (node/bootstrap.c)
 * and the PEM helpers under it (util/pki.c).
 *
 * The API server is kube_fixture.h's scripted HTTP server acting as the
 * certificates API: it records every CSR filed, answers GETs with the CSR
 * pending for a poll or two, then signed by a test CA (test_server_ca.h),
 * or denied, as a test asks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube_fixture.h"
#include "test_server_ca.h"

#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "node/bootstrap.h"
#include "util/base64.h"
#include "util/fs.h"
#include "util/pki.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- pki ------------------------------------------------------------------- */

static X509_REQ *parse_csr(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509_REQ *req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return req;
}

/* "DNS:a, IP Address:1.2.3.4" of a request's subjectAltName. */
static void csr_sans(X509_REQ *req, char *out, size_t len)
{
    out[0] = '\0';
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) != NID_subject_alt_name) continue;
        BIO *bio = BIO_new(BIO_s_mem());
        X509V3_EXT_print(bio, e, 0, 0);
        char *t = tca_bio_take(bio);
        snprintf(out, len, "%s", t);
        free(t);
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
}

static void subject_of(X509_REQ *req, char *out, size_t len)
{
    X509_NAME_oneline(X509_REQ_get_subject_name(req), out, (int)len);
}

static void pki_requests_and_certificates(void **state)
{
    (void)state;
    char *key = NULL, *csr = NULL, *cert = NULL;
    assert_int_equal(pki_key_new(&key, NULL), 0);
    assert_non_null(strstr(key, "PRIVATE KEY"));
    const char *orgs[] = {"system:nodes"}, *ips[] = {"127.0.0.1", "::1"}, *dns[] = {"host-a"};
    pki_name_t n = {.cn = "system:node:a",
                    .orgs = orgs,
                    .norgs = 1,
                    .ips = ips,
                    .nips = 2,
                    .dns = dns,
                    .ndns = 1};
    assert_int_equal(pki_csr_new(key, &n, &csr, NULL), 0);
    X509_REQ *req = parse_csr(csr);
    assert_non_null(req);
    EVP_PKEY *pub = X509_REQ_get_pubkey(req);
    assert_int_equal(X509_REQ_verify(req, pub), 1);
    EVP_PKEY_free(pub);
    char subj[256], sans[256];
    subject_of(req, subj, sizeof subj);
    assert_string_equal(subj, "/O=system:nodes/CN=system:node:a");
    csr_sans(req, sans, sizeof sans);
    assert_non_null(strstr(sans, "DNS:host-a"));
    assert_non_null(strstr(sans, "IP Address:127.0.0.1"));
    assert_non_null(strstr(sans, "IP Address:0:0:0:0:0:0:0:1"));
    X509_REQ_free(req);

    assert_int_equal(pki_self_signed(key, &n, 3600, &cert, NULL), 0);
    pki_cert_info_t info;
    assert_int_equal(pki_cert_info(cert, &info, NULL), 0);
    assert_string_equal(info.cn, "system:node:a");
    assert_string_equal(info.org, "system:nodes");
    assert_true(info.self_signed);
    int64_t now = time_now_ns();
    assert_true(info.not_before_ns <= now && info.not_after_ns > now + 3500 * NS_PER_SEC &&
                info.not_after_ns <= now + 3601 * NS_PER_SEC);
    assert_true(pki_key_matches(cert, key));
    char *other = NULL;
    assert_int_equal(pki_key_new(&other, NULL), 0);
    assert_false(pki_key_matches(cert, other));

    /* A file holding a chain and a key splits back into both. */
    char *both = xasprintf("%s%s%s", cert, key, cert);
    char *certs = pki_pem_select(both, false), *keys = pki_pem_select(both, true);
    const char *second = strstr(certs, "BEGIN CERTIFICATE");
    assert_non_null(second);
    assert_non_null(strstr(second + 1, "BEGIN CERTIFICATE")); /* both certificates */
    assert_null(strstr(certs, "PRIVATE KEY"));
    assert_non_null(strstr(keys, "PRIVATE KEY"));
    assert_null(strstr(keys, "CERTIFICATE"));
    assert_true(pki_key_matches(certs, keys));

    /* Bad input is an error, not a crash. */
    err_t err;
    assert_int_equal(pki_csr_new("not a key", &n, &csr, &err), -1);
    pki_name_t badip = {.cn = "x", .ips = (const char *[]){"300.1.1.1"}, .nips = 1};
    char *c2 = NULL;
    assert_int_equal(pki_csr_new(key, &badip, &c2, &err), -1);
    assert_non_null(strstr(err.msg, "300.1.1.1"));
    assert_int_equal(pki_cert_info("garbage", &info, &err), -1);

    free(both);
    free(certs);
    free(keys);
    free(other);
    free(key);
    free(csr);
    free(cert);
}

static void rotation_deadline(void **state)
{
    (void)state;
    int64_t nb = 1000 * NS_PER_SEC, na = nb + 100 * NS_PER_SEC;
    assert_true(bootstrap_rotation_deadline(nb, na, 0) == nb + 70 * NS_PER_SEC);
    int64_t late = bootstrap_rotation_deadline(nb, na, 0.9999);
    assert_true(late > nb + 89 * NS_PER_SEC && late <= nb + 90 * NS_PER_SEC);
    for (int i = 0; i < 100; i++) {
        int64_t d = bootstrap_rotation_deadline(nb, na, (double)i / 100.0);
        assert_true(d >= nb + 70 * NS_PER_SEC && d <= nb + 90 * NS_PER_SEC);
    }
}

/* --- the certificates API ---------------------------------------------------- */

typedef struct csr_api {
    test_ca_t ca;
    pthread_mutex_t mu;
    json_t *csrs; /* name -> CSR object as filed */
    int filed, polls;
    int pending_polls; /* GETs answered "pending" before the answer */
    bool deny;
    long lifetime_s;
} csr_api_t;

static int csr_handler(fx_conn_t *conn, const fx_req_t *req, void *ctx)
{
    csr_api_t *a = ctx;
    char path[512];
    fx_path(req, path, sizeof path);
    const char *base = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    pthread_mutex_lock(&a->mu);
    if (strcmp(req->method, "POST") == 0 && strcmp(path, base) == 0) {
        json_t *obj = json_loadb(req->body, req->body_len, 0, NULL);
        char name[32];
        snprintf(name, sizeof name, "csr-%d", ++a->filed);
        json_object_set_new(json_object_get(obj, "metadata"), "name", json_string(name));
        json_object_set(a->csrs, name, obj);
        char *out = json_dumps(obj, JSON_COMPACT);
        pthread_mutex_unlock(&a->mu);
        fx_respond_json(conn, 201, out);
        free(out);
        json_decref(obj);
        return 0;
    }
    if (strcmp(req->method, "GET") == 0 && strncmp(path, base, strlen(base)) == 0 &&
        path[strlen(base)] == '/') {
        const char *name = path + strlen(base) + 1;
        json_t *obj = json_object_get(a->csrs, name);
        if (!obj) {
            pthread_mutex_unlock(&a->mu);
            fx_respond_status(conn, 404, "NotFound", "not found");
            return 0;
        }
        obj = json_deep_copy(obj);
        int n = ++a->polls;
        if (n > a->pending_polls) {
            json_t *spec = json_object_get(obj, "spec");
            const char *b64 = json_string_value(json_object_get(spec, "request"));
            unsigned char *pem;
            size_t len;
            base64_decode(b64, strlen(b64), &pem, &len);
            bool serving = strcmp(json_string_value(json_object_get(spec, "signerName")),
                                  "kubernetes.io/kubelet-serving") == 0;
            if (a->deny) {
                json_object_set_new(obj, "status",
                                    json_pack("{s:[{s:s, s:s, s:s}]}", "conditions", "type",
                                              "Denied", "reason", "NotMine", "message", "go away"));
            } else {
                char *cert = tca_sign_csr(&a->ca, (char *)pem, a->lifetime_s,
                                          serving ? "serverAuth" : "clientAuth");
                char *cert64 = base64_encode(cert, strlen(cert));
                json_object_set_new(obj, "status",
                                    json_pack("{s:[{s:s}], s:s}", "conditions", "type", "Approved",
                                              "certificate", cert64));
                free(cert);
                free(cert64);
            }
            free(pem);
        }
        pthread_mutex_unlock(&a->mu);
        char *out = json_dumps(obj, JSON_COMPACT);
        fx_respond_json(conn, 200, out);
        free(out);
        json_decref(obj);
        return 0;
    }
    pthread_mutex_unlock(&a->mu);
    fx_respond_status(conn, 404, "NotFound", "not found");
    return 0;
}

static int api_filed(csr_api_t *a)
{
    pthread_mutex_lock(&a->mu);
    int n = a->filed;
    pthread_mutex_unlock(&a->mu);
    return n;
}

/* The CSR filed as number i (1-based), decoded request included. */
static json_t *api_csr(csr_api_t *a, int i, char *subject, size_t slen, char *sans, size_t sanlen)
{
    char name[32];
    snprintf(name, sizeof name, "csr-%d", i);
    pthread_mutex_lock(&a->mu);
    json_t *obj = json_deep_copy(json_object_get(a->csrs, name));
    pthread_mutex_unlock(&a->mu);
    assert_non_null(obj);
    const char *b64 = json_string_value(json_object_get(json_object_get(obj, "spec"), "request"));
    unsigned char *pem;
    size_t len;
    assert_int_equal(base64_decode(b64, strlen(b64), &pem, &len), 0);
    X509_REQ *req = parse_csr((char *)pem);
    assert_non_null(req);
    subject_of(req, subject, slen);
    csr_sans(req, sans, sanlen);
    X509_REQ_free(req);
    free(pem);
    return obj;
}

typedef struct env {
    fx_t fx;
    csr_api_t api;
    char dir[256];
    char bootstrap[512];
} env_t;

static void env_start(env_t *e)
{
    memset(e, 0, sizeof *e);
    tca_init(&e->api.ca, "test-cluster-ca");
    pthread_mutex_init(&e->api.mu, NULL);
    e->api.csrs = json_object();
    e->api.pending_polls = 2;
    e->api.lifetime_s = 3600;
    fx_start(&e->fx, csr_handler, &e->api, NULL);
    snprintf(e->dir, sizeof e->dir, "/tmp/wasmlet-test-bootstrap-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->bootstrap, sizeof e->bootstrap, "%s/bootstrap.kubeconfig", e->dir);
    char *ca64 = base64_encode(e->api.ca.cert_pem, strlen(e->api.ca.cert_pem));
    char *text = xasprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
                           "    server: %s\n    certificate-authority-data: %s\nusers:\n"
                           "- name: u\n  user:\n    token: abcdef.0123456789abcdef\n"
                           "contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n"
                           "current-context: x\n",
                           e->fx.url, ca64);
    assert_int_equal(fs_write_atomic(e->bootstrap, text, strlen(text), 0600, NULL), 0);
    free(text);
    free(ca64);
}

static void env_stop(env_t *e)
{
    fx_stop(&e->fx);
    json_decref(e->api.csrs);
    pthread_mutex_destroy(&e->api.mu);
    tca_free(&e->api.ca);
    fs_rm_rf(e->dir, NULL);
}

static char *data_dir(env_t *e)
{
    return xasprintf("%s/data", e->dir);
}

static void bootstrap_files_and_reuse(void **state)
{
    (void)state;
    env_t e;
    env_start(&e);
    char *data = data_dir(&e);
    kube_client_t *client = NULL;
    bootstrap_t *boot = NULL;
    err_t err = {""};
    if (bootstrap_client(NULL, e.bootstrap, data, "node-x", &client, &boot, &err) != 0)
        fail_msg("bootstrap: %s", err.msg);
    assert_non_null(client);
    assert_int_equal(api_filed(&e.api), 1);

    /* The CSR: the kubelet client signer, its usages, the node's subject. */
    char subj[256], sans[256];
    json_t *csr = api_csr(&e.api, 1, subj, sizeof subj, sans, sizeof sans);
    json_t *spec = json_object_get(csr, "spec");
    assert_string_equal(json_string_value(json_object_get(spec, "signerName")),
                        "kubernetes.io/kube-apiserver-client-kubelet");
    assert_string_equal(json_string_value(json_array_get(json_object_get(spec, "usages"), 0)),
                        "digital signature");
    assert_string_equal(json_string_value(json_array_get(json_object_get(spec, "usages"), 1)),
                        "client auth");
    assert_string_equal(subj, "/O=system:nodes/CN=system:node:node-x");
    assert_string_equal(sans, "");
    json_decref(csr);

    /* Files: the current pair (mode 0600, a symlink to a dated file) and a
     * kubeconfig naming it. */
    char *cur = xasprintf("%s/pki/kubelet-client-current.pem", data);
    struct stat st;
    assert_int_equal(lstat(cur, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(stat(cur, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *kc = xasprintf("%s/kubeconfig", data);
    kube_kubeconfig_t *cfg = NULL;
    assert_int_equal(kube_kubeconfig_load(kc, NULL, &cfg, NULL), 0);
    assert_string_equal(cfg->server, e.fx.url);
    assert_non_null(cfg->ca_pem);
    assert_null(cfg->token);
    pki_cert_info_t info;
    assert_int_equal(pki_cert_info(cfg->cert_pem, &info, NULL), 0);
    assert_string_equal(info.cn, "system:node:node-x");
    assert_false(info.self_signed);
    kube_kubeconfig_free(cfg);
    assert_non_null(bootstrap_ca_pem(boot));
    bootstrap_free(boot);
    kube_client_free(client);

    /* A restart reuses them: no new CSR. */
    assert_int_equal(bootstrap_client(NULL, e.bootstrap, data, "node-x", &client, &boot, &err), 0);
    assert_int_equal(api_filed(&e.api), 1);
    bootstrap_free(boot);
    kube_client_free(client);
    /* So does a start with only the kubeconfig it wrote. */
    assert_int_equal(bootstrap_client(kc, NULL, data, "node-x", &client, &boot, &err), 0);
    assert_int_equal(api_filed(&e.api), 1);
    bootstrap_free(boot);
    kube_client_free(client);

    /* Another node name cannot use them: it bootstraps its own. */
    assert_int_equal(bootstrap_client(NULL, e.bootstrap, data, "node-y", &client, &boot, &err), 0);
    assert_int_equal(api_filed(&e.api), 2);
    bootstrap_free(boot);
    kube_client_free(client);

    free(kc);
    free(cur);
    free(data);
    env_stop(&e);
}

static void bootstrap_denied(void **state)
{
    (void)state;
    env_t e;
    env_start(&e);
    e.api.deny = true;
    char *data = data_dir(&e);
    kube_client_t *client = NULL;
    bootstrap_t *boot = NULL;
    err_t err = {""};
    assert_int_equal(bootstrap_client(NULL, e.bootstrap, data, "node-x", &client, &boot, &err), -1);
    assert_non_null(strstr(err.msg, "Denied"));
    assert_non_null(strstr(err.msg, "go away"));
    assert_null(client);
    assert_null(boot);
    free(data);
    env_stop(&e);
}

static char *read_current(const char *data, const char *kind)
{
    char *p = xasprintf("%s/pki/kubelet-%s-current.pem", data, kind);
    char *text = NULL;
    fs_read_all(p, &text, NULL, NULL);
    free(p);
    return text;
}

static bool wait_filed(csr_api_t *a, int n, long max_ms)
{
    long until = fx_now_ms() + max_ms;
    while (api_filed(a) < n) {
        if (fx_now_ms() > until) return false;
        fx_sleep_ms(20);
    }
    return true;
}

typedef struct applied {
    pthread_mutex_t mu;
    int n;
    char *cert, *key;
} applied_t;

static void on_apply(void *ctx, const char *cert, const char *key)
{
    applied_t *a = ctx;
    pthread_mutex_lock(&a->mu);
    a->n++;
    free(a->cert);
    free(a->key);
    a->cert = xstrdup(cert);
    a->key = xstrdup(key);
    pthread_mutex_unlock(&a->mu);
}

static void rotation_and_serving(void **state)
{
    (void)state;
    env_t e;
    env_start(&e);
    e.api.pending_polls = 0;
    char *data = data_dir(&e);
    setenv("WASMLET_CERT_ROTATE_AFTER_SECONDS", "1.5", 1);
    kube_client_t *client = NULL;
    bootstrap_t *boot = NULL;
    err_t err = {""};
    assert_int_equal(bootstrap_client(NULL, e.bootstrap, data, "node-r", &client, &boot, &err), 0);
    unsetenv("WASMLET_CERT_ROTATE_AFTER_SECONDS");
    char *first = read_current(data, "client");

    /* Serving: self-signed at first, for the node's names ... */
    const char *ips[] = {"127.0.0.1"}, *dns[] = {"host-r"};
    char *scert = NULL, *skey = NULL;
    assert_int_equal(bootstrap_serving_cert(boot, ips, 1, dns, 1, &scert, &skey, &err), 0);
    pki_cert_info_t info;
    assert_int_equal(pki_cert_info(scert, &info, NULL), 0);
    assert_true(info.self_signed);
    assert_true(pki_key_matches(scert, skey));
    applied_t ap = {.mu = PTHREAD_MUTEX_INITIALIZER};
    bootstrap_serving_manage(boot, on_apply, &ap);

    /* ... then a kubelet-serving CSR naming them, whose certificate reaches
     * the server (apply). */
    long until = fx_now_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&ap.mu);
        int n = ap.n;
        pthread_mutex_unlock(&ap.mu);
        if (n > 0) break;
        if (fx_now_ms() > until) fail_msg("no serving certificate applied");
        fx_sleep_ms(20);
    }
    pthread_mutex_lock(&ap.mu);
    assert_int_equal(pki_cert_info(ap.cert, &info, NULL), 0);
    assert_false(info.self_signed);
    assert_string_equal(info.cn, "system:node:node-r");
    assert_true(pki_key_matches(ap.cert, ap.key));
    pthread_mutex_unlock(&ap.mu);
    bool found_serving = false;
    for (int i = 1; i <= api_filed(&e.api); i++) {
        char subj[256], sans[256];
        json_t *c = api_csr(&e.api, i, subj, sizeof subj, sans, sizeof sans);
        json_t *spec = json_object_get(c, "spec");
        if (strcmp(json_string_value(json_object_get(spec, "signerName")),
                   "kubernetes.io/kubelet-serving") == 0) {
            found_serving = true;
            assert_string_equal(
                json_string_value(json_array_get(json_object_get(spec, "usages"), 1)),
                "server auth");
            assert_non_null(strstr(sans, "DNS:host-r"));
            assert_non_null(strstr(sans, "IP Address:127.0.0.1"));
            assert_string_equal(subj, "/O=system:nodes/CN=system:node:node-r");
        }
        json_decref(c);
    }
    assert_true(found_serving);

    /* Both renew 1.5 s after they were obtained: more CSRs, a new client
     * file, the kubeconfig still valid. */
    assert_true(wait_filed(&e.api, 4, 10000));
    until = fx_now_ms() + 10000;
    char *now = NULL;
    for (;;) {
        free(now);
        now = read_current(data, "client");
        if (now && strcmp(now, first) != 0) break;
        if (fx_now_ms() > until) fail_msg("client certificate file not renewed");
        fx_sleep_ms(50);
    }
    char *kc = xasprintf("%s/kubeconfig", data);
    kube_kubeconfig_t *cfg = NULL;
    assert_int_equal(kube_kubeconfig_load(kc, NULL, &cfg, NULL), 0);
    assert_true(pki_key_matches(cfg->cert_pem, cfg->key_pem));
    kube_kubeconfig_free(cfg);
    free(kc);
    /* Old files are pruned: at most two dated files per kind. */
    fx_sleep_ms(3500);
    bootstrap_stop(boot);
    char *cmd = xasprintf("test $(ls %s/pki | grep -c '^kubelet-client-2') -le 2", data);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    bootstrap_free(boot);
    kube_client_free(client);

    /* A restart serves the signed serving certificate at once. */
    assert_int_equal(bootstrap_client(NULL, e.bootstrap, data, "node-r", &client, &boot, &err), 0);
    char *scert2 = NULL, *skey2 = NULL;
    assert_int_equal(bootstrap_serving_cert(boot, ips, 1, dns, 1, &scert2, &skey2, &err), 0);
    assert_int_equal(pki_cert_info(scert2, &info, NULL), 0);
    assert_false(info.self_signed);
    bootstrap_free(boot);
    kube_client_free(client);

    free(scert2);
    free(skey2);
    free(now);
    free(first);
    free(scert);
    free(skey);
    free(ap.cert);
    free(ap.key);
    free(data);
    env_stop(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pki_requests_and_certificates), cmocka_unit_test(rotation_deadline),
        cmocka_unit_test(bootstrap_files_and_reuse),     cmocka_unit_test(bootstrap_denied),
        cmocka_unit_test(rotation_and_serving),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
