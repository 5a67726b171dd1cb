/* test_server.c: unit tests for server/, the kubelet HTTPS API, through a
 * real TLS client (libcurl) against a running server on 127.0.0.1.
 *
 * The pods and logs come from a fixture (server_pods_t, server/pods.h, over a temporary
 * directory of CRI log files written with log/'s writer); the API server
 * for TokenReview and SubjectAccessReview is kube_fixture.h's scripted
 * HTTP server, which records every review it is asked for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube_fixture.h"
#include "test_server_ca.h"

#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "log/crilog.h"
#include "metrics/registry.h"
#include "server/sampler.h"
#include "server/server.h"
#include "util/fs.h"
#include "util/pki.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- fixture: pods and logs -------------------------------------------------- */

typedef struct pods_fx {
    char root[256];      /* temp dir */
    char logdir[512];    /* <root>/logs/default_web_uid-1/app */
    atomic_bool running; /* the container's state, as the worker would report */
    atomic_int log_calls;
} pods_fx_t;

static json_t *fx_pod_list(void *ctx)
{
    (void)ctx;
    return json_pack("{s:s, s:s, s:{}, s:[{s:{s:s, s:s, s:s}, s:{s:[{s:s}]}, s:{s:s}}]}", "kind",
                     "PodList", "apiVersion", "v1", "metadata", "items", "metadata", "name", "web",
                     "namespace", "default", "uid", "uid-1", "spec", "containers", "name", "app",
                     "status", "startTime", "2026-01-01T00:00:00Z");
}

static int fx_container_logs(void *ctx, const char *ns, const char *pod, const char *container,
                             char **dir, bool *running, err_t *err)
{
    pods_fx_t *p = ctx;
    atomic_fetch_add(&p->log_calls, 1);
    if (strcmp(ns, "default") != 0 || strcmp(pod, "web") != 0)
        return err_set(err, "pod %s/%s is not on this node", ns, pod);
    if (strcmp(container, "app") != 0)
        return err_set(err, "container %s is not valid for pod %s", container, pod);
    *dir = xstrdup(p->logdir);
    *running = atomic_load(&p->running);
    return 0;
}

static int fx_pod_samples(void *ctx, server_pod_samples_t *out)
{
    json_t *list = fx_pod_list(ctx);
    server_pod_samples_from_list(list, out);
    json_decref(list);
    return 0;
}

static void fx_counters(void *ctx, server_pod_counters_t *out)
{
    (void)ctx;
    memset(out, 0, sizeof *out);
    out->pods_running = 1;
    out->containers_running = 1;
    out->pods_started = 3;
}

static void pods_fx_init(pods_fx_t *p)
{
    snprintf(p->root, sizeof p->root, "/tmp/wasmlet-test-server-XXXXXX");
    assert_non_null(mkdtemp(p->root));
    snprintf(p->logdir, sizeof p->logdir, "%s/logs/default_web_uid-1/app", p->root);
    assert_int_equal(fs_mkdir_p(p->logdir, 0755, NULL), 0);
    atomic_store(&p->running, true);
    atomic_store(&p->log_calls, 0);
}

static void pods_fx_done(pods_fx_t *p)
{
    fs_rm_rf(p->root, NULL);
}

/* Appends lines to run n's log ("<stream>:<text>" items; stream 1 or 2). */
static void write_run(pods_fx_t *p, int run, const char *const *lines, size_t n, int stream)
{
    char *path = crilog_run_path(p->logdir, run);
    err_t err;
    crilog_writer_t *w = crilog_open(path, 0, 0, &err);
    assert_non_null(w);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(crilog_write(w, stream, lines[i], strlen(lines[i]), &err), 0);
        assert_int_equal(crilog_write(w, stream, "\n", 1, &err), 0);
    }
    crilog_close(w, NULL);
    free(path);
}

/* --- fixture: the server ----------------------------------------------------- */

typedef struct srv {
    test_ca_t ca; /* issues client certificates */
    char *cert_pem, *key_pem;
    server_t *s;
    int port;
    pods_fx_t pods;
} srv_t;

/* The pod address allocator the next srv_start hands the server. */
static net_ipam_t *fx_pod_addresses;

static void srv_start(srv_t *t, kube_client_t *client, bool anonymous, int idle_timeout_s)
{
    memset(t, 0, sizeof *t);
    tca_init(&t->ca, "test-client-ca");
    pods_fx_init(&t->pods);
    const char *ips[] = {"127.0.0.1"}, *dns[] = {"localhost"};
    pki_name_t pn = {.cn = "node-a", .ips = ips, .nips = 1, .dns = dns, .ndns = 1};
    assert_int_equal(pki_key_new(&t->key_pem, NULL), 0);
    assert_int_equal(pki_self_signed(t->key_pem, &pn, 3600, &t->cert_pem, NULL), 0);
    char *logs = fs_join(t->pods.root, "logs");
    server_config_t cfg = {
        .bind_address = "127.0.0.1",
        .port = 0,
        .node_name = "node-a",
        .cert_pem = t->cert_pem,
        .key_pem = t->key_pem,
        .client_ca_pem = t->ca.cert_pem,
        .anonymous = anonymous,
        .client = client,
        .pods = {.ctx = &t->pods,
                 .pod_list = fx_pod_list,
                 .container_logs = fx_container_logs,
                 .pod_samples = fx_pod_samples,
                 .counters = fx_counters},
        .pod_addresses = fx_pod_addresses,
        .data_dir = t->pods.root,
        .logs_dir = logs,
        .idle_timeout_s = idle_timeout_s,
    };
    err_t err = {""};
    if (server_start(&cfg, &t->s, &err) != 0) fail_msg("server_start: %s", err.msg);
    free(logs);
    t->port = server_port(t->s);
    assert_true(t->port > 0);
}

static void srv_stop(srv_t *t)
{
    server_stop(t->s);
    pods_fx_done(&t->pods);
    tca_free(&t->ca);
    free(t->cert_pem);
    free(t->key_pem);
}

/* --- a client ------------------------------------------------------------------ */

typedef struct call {
    const char *method;
    const char *path;
    const char *cert_pem, *key_pem; /* client certificate, or NULL */
    const char *token;              /* bearer token, or NULL */
    /* out */
    long status;
    strbuf_t body;
    char content_type[128];
    /* streaming observation */
    long first_data_ms;
    atomic_long bytes;
    atomic_bool abort_now;
    const char *stop_at; /* abort once the body contains this */
    int slow_ms;         /* sleep this long per piece received (a slow client) */
} call_t;

/* Guards call bodies that a test reads while a follow still appends. */
static pthread_mutex_t body_mu = PTHREAD_MUTEX_INITIALIZER;

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    call_t *c = ctx;
    pthread_mutex_lock(&body_mu);
    if (!c->first_data_ms) c->first_data_ms = fx_now_ms();
    strbuf_append(&c->body, data, size * n);
    bool stop = c->stop_at && strstr(strbuf_str(&c->body), c->stop_at);
    pthread_mutex_unlock(&body_mu);
    atomic_fetch_add(&c->bytes, (long)(size * n));
    if (c->slow_ms) fx_sleep_ms(c->slow_ms);
    if (atomic_load(&c->abort_now) || stop) return 0;
    return size * n;
}

static void do_call(srv_t *t, call_t *c)
{
    CURL *h = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", t->port, c->path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method ? c->method : "GET");
    struct curl_blob ca = {
        .data = t->cert_pem, .len = strlen(t->cert_pem), .flags = CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
    struct curl_blob cb, kb;
    if (c->cert_pem) {
        cb = (struct curl_blob){(void *)c->cert_pem, strlen(c->cert_pem), CURL_BLOB_COPY};
        kb = (struct curl_blob){(void *)c->key_pem, strlen(c->key_pem), CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    struct curl_slist *hdrs = NULL;
    char auth[1024];
    if (c->token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token);
        hdrs = curl_slist_append(hdrs, auth);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L); /* valgrind is slow */
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
    char *ct = NULL;
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(c->content_type, sizeof c->content_type, "%s", ct ? ct : "");
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
}

static void call_free(call_t *c)
{
    strbuf_free(&c->body);
}

/* A client certificate of the server's client CA (CN user, O group). */
static void client_cert(srv_t *t, const char *user, const char *group, char **cert, char **key)
{
    tca_client(&t->ca, user, group, cert, key);
}

/* --- authentication without an API server -------------------------------------- */

static void client_certificates(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t, NULL, false, 0);
    char *cert, *key;
    client_cert(&t, "kube-apiserver-kubelet-client", NULL, &cert, &key);

    call_t ok = {.path = "/healthz", .cert_pem = cert, .key_pem = key};
    do_call(&t, &ok);
    assert_int_equal(ok.status, 200);
    assert_string_equal(strbuf_str(&ok.body), "ok");

    call_t none = {.path = "/healthz"};
    do_call(&t, &none);
    assert_int_equal(none.status, 401);
    assert_string_equal(strbuf_str(&none.body), "Unauthorized\n");

    /* A certificate from another CA does not authenticate. */
    test_ca_t other;
    tca_init(&other, "someone-else");
    char *ocert, *okey;
    tca_client(&other, "mallory", "system:masters", &ocert, &okey);
    call_t foreign = {.path = "/pods", .cert_pem = ocert, .key_pem = okey};
    do_call(&t, &foreign);
    assert_int_equal(foreign.status, 401);

    /* Without an API server, tokens are refused. */
    call_t tok = {.path = "/pods", .token = "abc"};
    do_call(&t, &tok);
    assert_int_equal(tok.status, 401);

    call_t pods = {.path = "/pods", .cert_pem = cert, .key_pem = key};
    do_call(&t, &pods);
    assert_int_equal(pods.status, 200);
    assert_string_equal(pods.content_type, "application/json");
    json_t *list = json_loads(strbuf_str(&pods.body), 0, NULL);
    assert_non_null(list);
    assert_string_equal(json_string_value(json_object_get(list, "kind")), "PodList");
    assert_int_equal(json_array_size(json_object_get(list, "items")), 1);
    json_decref(list);

    call_t *all[] = {&ok, &none, &foreign, &tok, &pods};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        call_free(all[i]);
    free(ocert);
    free(okey);
    tca_free(&other);
    free(cert);
    free(key);
    srv_stop(&t);
}

static void anonymous_when_enabled(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t, NULL, true, 0);
    call_t c = {.path = "/healthz"};
    do_call(&t, &c);
    assert_int_equal(c.status, 200);
    call_free(&c);
    srv_stop(&t);
}

/* --- TokenReview and SubjectAccessReview ------------------------------------- */

typedef struct api {
    atomic_int token_reviews, access_reviews;
    char last_sar[4096];
    pthread_mutex_t mu;
} api_t;

/* Tokens: "alice" (group readers) and "bob" authenticate; anything else
 * does not. Alice may do anything but exec (create on proxy); bob nothing;
 * "down" makes the SAR fail with a 500. */
static int api_handler(fx_conn_t *conn, const fx_req_t *req, void *ctx)
{
    api_t *a = ctx;
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    json_t *spec = json_object_get(body, "spec");
    char out[2048];
    if (strstr(req->target, "/tokenreviews")) {
        atomic_fetch_add(&a->token_reviews, 1);
        const char *tok = json_string_value(json_object_get(spec, "token"));
        if (tok &&
            (strcmp(tok, "alice") == 0 || strcmp(tok, "bob") == 0 || strcmp(tok, "down") == 0))
            snprintf(out, sizeof out,
                     "{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"%s\","
                     "\"uid\":\"u-%s\",\"groups\":[\"readers\",\"system:authenticated\"],"
                     "\"extra\":{\"scopes\":[\"a\"]}}}}",
                     tok, tok);
        else
            snprintf(out, sizeof out,
                     "{\"status\":{\"authenticated\":false,\"error\":\"invalid token\"}}");
        fx_respond_json(conn, 201, out);
    } else if (strstr(req->target, "/subjectaccessreviews")) {
        atomic_fetch_add(&a->access_reviews, 1);
        pthread_mutex_lock(&a->mu);
        snprintf(a->last_sar, sizeof a->last_sar, "%.*s", (int)req->body_len, req->body);
        pthread_mutex_unlock(&a->mu);
        const char *user = json_string_value(json_object_get(spec, "user"));
        json_t *ra = json_object_get(spec, "resourceAttributes");
        const char *verb = json_string_value(json_object_get(ra, "verb"));
        if (user && strcmp(user, "down") == 0) {
            fx_respond_status(conn, 500, "InternalError", "etcd is on fire");
        } else {
            bool allowed = user && strcmp(user, "alice") == 0 && strcmp(verb, "create") != 0;
            snprintf(out, sizeof out, "{\"status\":{\"allowed\":%s%s}}", allowed ? "true" : "false",
                     allowed ? "" : ",\"reason\":\"no RBAC policy matched\"");
            fx_respond_json(conn, 201, out);
        }
    } else {
        fx_respond_status(conn, 404, "NotFound", "not found");
    }
    json_decref(body);
    return 0;
}

static kube_client_t *api_client(const char *url)
{
    kube_kubeconfig_t *cfg = kube_kubeconfig_new(url, NULL, NULL, NULL, "node-token");
    kube_client_t *c = NULL;
    assert_int_equal(kube_client_new(cfg, &c, NULL), 0);
    kube_kubeconfig_free(cfg);
    return c;
}

static void tokens_and_access_reviews(void **state)
{
    (void)state;
    api_t a = {.mu = PTHREAD_MUTEX_INITIALIZER};
    fx_t fx;
    fx_start(&fx, api_handler, &a, NULL);
    kube_client_t *kc = api_client(fx.url);
    srv_t t;
    srv_start(&t, kc, false, 0);

    call_t ok = {.path = "/pods", .token = "alice"};
    do_call(&t, &ok);
    assert_int_equal(ok.status, 200);
    assert_int_equal(atomic_load(&a.token_reviews), 1);
    assert_int_equal(atomic_load(&a.access_reviews), 1);
    /* The review asked for get on nodes/node-a, subresource pods, with the
     * token's user, uid, groups and extra. */
    json_t *sar = json_loads(a.last_sar, 0, NULL);
    assert_non_null(sar);
    json_t *spec = json_object_get(sar, "spec"), *ra = json_object_get(spec, "resourceAttributes");
    assert_string_equal(json_string_value(json_object_get(sar, "kind")), "SubjectAccessReview");
    assert_string_equal(json_string_value(json_object_get(spec, "user")), "alice");
    assert_string_equal(json_string_value(json_object_get(spec, "uid")), "u-alice");
    assert_string_equal(json_string_value(json_array_get(json_object_get(spec, "groups"), 0)),
                        "readers");
    assert_non_null(json_object_get(json_object_get(spec, "extra"), "scopes"));
    assert_string_equal(json_string_value(json_object_get(ra, "verb")), "get");
    assert_string_equal(json_string_value(json_object_get(ra, "resource")), "nodes");
    assert_string_equal(json_string_value(json_object_get(ra, "name")), "node-a");
    assert_string_equal(json_string_value(json_object_get(ra, "subresource")), "pods");
    json_decref(sar);

    /* Cached: the same again asks the API server nothing. */
    call_t again = {.path = "/pods", .token = "alice"};
    do_call(&t, &again);
    assert_int_equal(again.status, 200);
    assert_int_equal(atomic_load(&a.token_reviews), 1);
    assert_int_equal(atomic_load(&a.access_reviews), 1);

    /* Each path asks for its own subresource. */
    static const struct {
        const char *path, *sub;
    } subs[] = {{"/stats/summary", "stats"},      {"/metrics", "metrics"},
                {"/metrics/resource", "metrics"}, {"/containerLogs/default/web/app", "proxy"},
                {"/healthz", "healthz"},          {"/logs/", "log"}};
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
        call_t c = {.path = subs[i].path, .token = "alice"};
        do_call(&t, &c);
        assert_true(c.status != 401 && c.status != 403);
        pthread_mutex_lock(&a.mu);
        json_t *o = json_loads(a.last_sar, 0, NULL);
        pthread_mutex_unlock(&a.mu);
        const char *got = json_string_value(json_object_get(
            json_object_get(json_object_get(o, "spec"), "resourceAttributes"), "subresource"));
        if (!got || strcmp(got, subs[i].sub) != 0)
            fail_msg("%s: subresource %s, want %s", subs[i].path, got ? got : "(none)",
                     subs[i].sub);
        json_decref(o);
        call_free(&c);
    }

    /* Bob authenticates but may not: 403 naming both subresources tried. */
    call_t bob = {.path = "/pods", .token = "bob"};
    do_call(&t, &bob);
    assert_int_equal(bob.status, 403);
    assert_non_null(strstr(strbuf_str(&bob.body), "user=bob"));
    assert_non_null(strstr(strbuf_str(&bob.body), "verb=get"));
    assert_non_null(strstr(strbuf_str(&bob.body), "subresource(s)=[pods proxy]"));

    /* An unknown token: 401. */
    call_t bad = {.path = "/pods", .token = "nobody"};
    do_call(&t, &bad);
    assert_int_equal(bad.status, 401);

    /* POST /exec is "create" on proxy, which alice lacks. */
    call_t exec = {.method = "POST", .path = "/exec/default/web/app?command=sh", .token = "alice"};
    do_call(&t, &exec);
    assert_int_equal(exec.status, 403);
    assert_non_null(strstr(strbuf_str(&exec.body), "verb=create"));

    /* The API server failing is a 500, not a guess. */
    call_t down = {.path = "/pods", .token = "down"};
    do_call(&t, &down);
    assert_int_equal(down.status, 500);
    assert_non_null(strstr(strbuf_str(&down.body), "Authorization error"));

    call_t *all[] = {&ok, &again, &bob, &bad, &exec, &down};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        call_free(all[i]);
    srv_stop(&t);
    kube_client_free(kc);
    fx_stop(&fx);
}

/* --- containerLogs ------------------------------------------------------------- */

static void get_logs(srv_t *t, const char *cert, const char *key, const char *query, call_t *c)
{
    static char path[512];
    snprintf(path, sizeof path, "/containerLogs/default/web/app%s%s", query ? "?" : "",
             query ? query : "");
    memset(c, 0, sizeof *c);
    c->path = path;
    c->cert_pem = cert;
    c->key_pem = key;
    do_call(t, c);
}

static void log_options(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t, NULL, false, 0);
    char *cert, *key;
    client_cert(&t, "admin", NULL, &cert, &key);
    const char *run0[] = {"old one", "old two"};
    write_run(&t.pods, 0, run0, 2, 1);
    int64_t between = time_now_ns();
    time_sleep_ms(20);
    const char *out1[] = {"line 1", "line 2", "line 3"};
    const char *err1[] = {"oops"};
    write_run(&t.pods, 1, out1, 3, 1);
    write_run(&t.pods, 1, err1, 1, 2);
    atomic_store(&t.pods.running, false);

    call_t c;
    get_logs(&t, cert, key, NULL, &c);
    assert_int_equal(c.status, 200);
    assert_string_equal(strbuf_str(&c.body), "line 1\nline 2\nline 3\noops\n");
    assert_non_null(strstr(c.content_type, "text/plain"));
    call_free(&c);

    get_logs(&t, cert, key, "tailLines=2", &c);
    assert_string_equal(strbuf_str(&c.body), "line 3\noops\n");
    call_free(&c);

    get_logs(&t, cert, key, "limitBytes=9", &c);
    assert_string_equal(strbuf_str(&c.body), "line 1\nli");
    call_free(&c);

    get_logs(&t, cert, key, "previous=true", &c);
    assert_int_equal(c.status, 200);
    assert_string_equal(strbuf_str(&c.body), "old one\nold two\n");
    call_free(&c);

    get_logs(&t, cert, key, "stream=Stderr", &c);
    assert_string_equal(strbuf_str(&c.body), "oops\n");
    call_free(&c);

    get_logs(&t, cert, key, "timestamps=true&tailLines=1", &c);
    /* "2026-...Z oops\n": an RFC 3339 time, a space, the line. */
    int64_t ns;
    char ts[64];
    assert_int_equal(sscanf(strbuf_str(&c.body), "%63s", ts), 1);
    assert_int_equal(time_parse_rfc3339(ts, &ns), 0);
    assert_string_equal(strbuf_str(&c.body) + strlen(ts), " oops\n");
    call_free(&c);

    char q[128], tbuf[64];
    snprintf(q, sizeof q, "sinceTime=%s",
             time_format_rfc3339nano(tbuf, sizeof tbuf, between + 10 * NS_PER_MS));
    get_logs(&t, cert, key, q, &c);
    assert_string_equal(strbuf_str(&c.body), "line 1\nline 2\nline 3\noops\n");
    call_free(&c);

    get_logs(&t, cert, key, "sinceSeconds=3600", &c);
    assert_string_equal(strbuf_str(&c.body), "line 1\nline 2\nline 3\noops\n");
    call_free(&c);

    /* A follow of a container that is not running returns at once. */
    get_logs(&t, cert, key, "follow=true", &c);
    assert_int_equal(c.status, 200);
    assert_string_equal(strbuf_str(&c.body), "line 1\nline 2\nline 3\noops\n");
    call_free(&c);

    static const char *const bad[] = {
        "tailLines=-1",        "limitBytes=0", "sinceSeconds=0",
        "sinceTime=yesterday", "follow=maybe", "sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z",
        "stream=Both"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        get_logs(&t, cert, key, bad[i], &c);
        if (c.status != 400) fail_msg("%s: status %ld", bad[i], c.status);
        call_free(&c);
    }

    call_t nopod = {.path = "/containerLogs/default/nope/app", .cert_pem = cert, .key_pem = key};
    do_call(&t, &nopod);
    assert_int_equal(nopod.status, 404);
    assert_non_null(strstr(strbuf_str(&nopod.body), "not on this node"));
    call_free(&nopod);

    call_t badpath = {.path = "/containerLogs/default/web", .cert_pem = cert, .key_pem = key};
    do_call(&t, &badpath);
    assert_int_equal(badpath.status, 400);
    call_free(&badpath);

    /* No earlier run to show: --previous says so. */
    char *p1 = crilog_run_path(t.pods.logdir, 0);
    unlink(p1);
    free(p1);
    get_logs(&t, cert, key, "previous=true", &c);
    assert_int_equal(c.status, 400);
    assert_non_null(strstr(strbuf_str(&c.body), "previous terminated container"));
    call_free(&c);

    free(cert);
    free(key);
    srv_stop(&t);
}

typedef struct follower {
    srv_t *t;
    call_t c;
    pthread_t thread;
    atomic_bool done;
    long done_ms;
} follower_t;

static void *follow_main(void *arg)
{
    follower_t *f = arg;
    do_call(f->t, &f->c);
    f->done_ms = fx_now_ms();
    atomic_store(&f->done, true);
    return NULL;
}

static bool wait_body(follower_t *f, const char *text, long max_ms)
{
    long until = fx_now_ms() + max_ms;
    for (;;) {
        pthread_mutex_lock(&body_mu);
        bool found = strstr(strbuf_str(&f->c.body), text) != NULL;
        pthread_mutex_unlock(&body_mu);
        if (found) return true;
        if (fx_now_ms() > until) return false;
        fx_sleep_ms(2);
    }
}

static void follow_streams_and_ends(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t, NULL, false, 1); /* a 1 s idle timeout must not end a follow */
    char *cert, *key;
    client_cert(&t, "admin", NULL, &cert, &key);
    const char *first[] = {"before"};
    write_run(&t.pods, 0, first, 1, 1);

    follower_t f = {.t = &t,
                    .c = {.path = "/containerLogs/default/web/app?follow=true",
                          .cert_pem = cert,
                          .key_pem = key}};
    pthread_create(&f.thread, NULL, follow_main, &f);
    assert_true(wait_body(&f, "before\n", 5000));

    /* Quiet for longer than the idle timeout, then a new line: it arrives
     * within a fraction of a second. */
    fx_sleep_ms(2500);
    assert_false(atomic_load(&f.done));
    char *path = crilog_run_path(t.pods.logdir, 0);
    crilog_writer_t *w = crilog_open(path, 0, 0, NULL);
    free(path);
    long t0 = fx_now_ms();
    crilog_write(w, 1, "fresh\n", 6, NULL);
    assert_true(wait_body(&f, "fresh\n", 2000));
    long latency = fx_now_ms() - t0;
    if (latency > 300) fail_msg("a followed line took %ld ms", latency);
    crilog_close(w, NULL);

    /* The container ends: the follow sends what is left and ends. */
    atomic_store(&t.pods.running, false);
    long stop = fx_now_ms();
    pthread_join(f.thread, NULL);
    assert_int_equal(f.c.status, 200);
    assert_string_equal(strbuf_str(&f.c.body), "before\nfresh\n");
    if (f.done_ms - stop > 1500)
        fail_msg("follow ended %ld ms after the container", f.done_ms - stop);
    call_free(&f.c);
    free(cert);
    free(key);
    srv_stop(&t);
}

static void follow_client_gone(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t, NULL, false, 0);
    char *cert, *key;
    client_cert(&t, "admin", NULL, &cert, &key);
    const char *first[] = {"hello"};
    write_run(&t.pods, 0, first, 1, 1);
    follower_t f = {.t = &t,
                    .c = {.path = "/containerLogs/default/web/app?follow=1",
                          .cert_pem = cert,
                          .key_pem = key,
                          .stop_at = "hello\n"}};
    pthread_create(&f.thread, NULL, follow_main, &f);
    pthread_join(f.thread, NULL); /* the client hangs up after the first line */
    /* The follower checks the container ~every 50 ms while it runs; once
     * it noticed the hang-up it stops checking. */
    fx_sleep_ms(500);
    int calls = atomic_load(&t.pods.log_calls);
    fx_sleep_ms(500);
    assert_int_equal(atomic_load(&t.pods.log_calls), calls);
    call_free(&f.c);
    free(cert);
    free(key);
    srv_stop(&t);
}

/* A log far larger than the stream's buffer arrives whole and in order. */
static void large_log(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t, NULL, false, 0);
    char *cert, *key;
    client_cert(&t, "admin", NULL, &cert, &key);
    char *path = crilog_run_path(t.pods.logdir, 0);
    crilog_writer_t *w = crilog_open(path, 64 * 1024 * 1024, 2, NULL);
    free(path);
    char line[128];
    size_t want = 0;
    for (int i = 0; i < 60000; i++) {
        int n = snprintf(line, sizeof line, "line %06d %s\n", i,
                         "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
        crilog_write(w, 1, line, (size_t)n, NULL);
        want += (size_t)n;
    }
    crilog_close(w, NULL);
    atomic_store(&t.pods.running, false);
    call_t c;
    get_logs(&t, cert, key, NULL, &c);
    assert_int_equal(c.status, 200);
    assert_int_equal(c.body.len, want);
    assert_memory_equal(c.body.data, "line 000000 ", 12);
    assert_non_null(strstr(c.body.data + c.body.len - 200, "line 059999 "));
    call_free(&c);
    /* A slow client: the server waits for it rather than buffering. */
    call_t slow = {
        .path = "/containerLogs/default/web/app", .cert_pem = cert, .key_pem = key, .slow_ms = 5};
    do_call(&t, &slow);
    assert_int_equal(slow.status, 200);
    assert_int_equal(slow.body.len, want);
    call_free(&slow);
    free(cert);
    free(key);
    srv_stop(&t);
}

/* Stopping the server ends a follow in progress and returns. */
static void stop_ends_follow(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t, NULL, false, 0);
    char *cert, *key;
    client_cert(&t, "admin", NULL, &cert, &key);
    const char *first[] = {"x"};
    write_run(&t.pods, 0, first, 1, 1);
    follower_t f = {.t = &t,
                    .c = {.path = "/containerLogs/default/web/app?follow=true",
                          .cert_pem = cert,
                          .key_pem = key}};
    pthread_create(&f.thread, NULL, follow_main, &f);
    assert_true(wait_body(&f, "x\n", 5000));
    long t0 = fx_now_ms();
    server_stop(t.s);
    t.s = NULL;
    pthread_join(f.thread, NULL);
    if (fx_now_ms() - t0 > 3000) fail_msg("stop took %ld ms", fx_now_ms() - t0);
    call_free(&f.c);
    free(cert);
    free(key);
    srv_stop(&t);
}

/* --- other paths --------------------------------------------------------------- */

static void interactive_refused(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t, NULL, false, 0);
    char *cert, *key;
    client_cert(&t, "admin", NULL, &cert, &key);
    static const struct {
        const char *method, *path, *word;
    } cases[] = {
        {"POST", "/exec/default/web/app?command=sh&stdin=true", "exec is not supported"},
        {"GET", "/exec/default/web/app?command=ls", "WASI"},
        {"POST", "/attach/default/web/app", "attach is not supported"},
        {"POST", "/run/default/web/app", "exec is not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        call_t c = {
            .method = cases[i].method, .path = cases[i].path, .cert_pem = cert, .key_pem = key};
        do_call(&t, &c);
        if (c.status != 400 || !strstr(strbuf_str(&c.body), cases[i].word))
            fail_msg("%s %s: %ld %s", cases[i].method, cases[i].path, c.status,
                     strbuf_str(&c.body));
        call_free(&c);
    }
    /* portForward is served (test_portforward.c); without a way to reach
     * pods' ports the node says so rather than refusing as for exec. */
    call_t pf = {
        .method = "POST", .path = "/portForward/default/web", .cert_pem = cert, .key_pem = key};
    do_call(&t, &pf);
    if (pf.status != 501 || !strstr(strbuf_str(&pf.body), "cannot reach"))
        fail_msg("portForward: %ld %s", pf.status, strbuf_str(&pf.body));
    call_free(&pf);
    call_t nf = {.path = "/nothing/here", .cert_pem = cert, .key_pem = key};
    do_call(&t, &nf);
    assert_int_equal(nf.status, 404);
    call_free(&nf);
    call_t na = {.method = "DELETE", .path = "/pods", .cert_pem = cert, .key_pem = key};
    do_call(&t, &na);
    assert_int_equal(na.status, 405);
    call_free(&na);
    free(cert);
    free(key);
    srv_stop(&t);
}

/* Runs promtool check metrics on text when promtool is installed. */
static void promtool_check(const char *text)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        print_message("promtool not installed; exposition checked by this test only\n");
        return;
    }
    char tmpl[] = "/tmp/wasmlet-metrics-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s.out 2>&1", tmpl, tmpl);
    int rc = system(cmd);
    if (rc != 0) {
        char out[256], *msg = NULL;
        snprintf(out, sizeof out, "%s.out", tmpl);
        fs_read_all(out, &msg, NULL, NULL);
        fail_msg("promtool check metrics failed:\n%s\n---\n%s", msg ? msg : "", text);
    }
    char out[256];
    snprintf(out, sizeof out, "%s.out", tmpl);
    unlink(out);
    unlink(tmpl);
}

static void *burn(void *arg)
{
    (void)arg;
    metrics_container_begin("uid-1", "app");
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    int64_t start = ts.tv_sec * NS_PER_SEC + ts.tv_nsec, now = start;
    volatile uint64_t x = 0;
    (void)x;
    while (now - start < 200 * NS_PER_MS) {
        for (int i = 0; i < 100000; i++)
            x += (uint64_t)i;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        now = ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
    }
    metrics_container_end("uid-1", "app", (uint64_t)(now - start), 2 * 65536);
    return NULL;
}

static void metrics_and_stats(void **state)
{
    (void)state;
    metrics_reset();
    /* Pod addresses: a /24 (253 for pods) with two held, and a /64. */
    err_t aerr;
    assert_int_equal(net_ipam_new("10.9.0.0/24,fd00:9::/64", &fx_pod_addresses, &aerr), 0);
    json_t *held = json_pack("{s:[{s:s},{s:s}]}", "addresses", "address", "10.9.0.7/24", "address",
                             "10.9.0.8/24");
    net_ipam_mark(fx_pod_addresses, held, true);
    json_decref(held);
    srv_t t;
    srv_start(&t, NULL, false, 0);
    char *cert, *key;
    client_cert(&t, "admin", NULL, &cert, &key);
    metrics_pod_started("uid-1", 0.4);
    metrics_pod_started("uid-1", 9.0); /* the same pod again: ignored */
    metrics_pod_started("uid-2", 2.5);
    metrics_module_loaded(0);
    metrics_module_loaded(1);
    metrics_module_loaded(1);
    metrics_cert_expiry(METRICS_CERT_SERVING, time_now_ns() + 3600 * NS_PER_SEC);
    pthread_t b;
    pthread_create(&b, NULL, burn, NULL);
    pthread_join(b, NULL);
    const char *lines[] = {"some output"};
    write_run(&t.pods, 0, lines, 1, 1);

    call_t h = {.path = "/healthz", .cert_pem = cert, .key_pem = key};
    do_call(&t, &h);
    assert_int_equal(h.status, 200);
    call_free(&h);
    call_t m = {.path = "/metrics", .cert_pem = cert, .key_pem = key};
    do_call(&t, &m);
    assert_int_equal(m.status, 200);
    const char *text = strbuf_str(&m.body);
    assert_non_null(strstr(text, "kubelet_pod_start_duration_seconds_count 2\n"));
    assert_non_null(strstr(text, "kubelet_pod_start_duration_seconds_bucket{le=\"0.5\"} 1\n"));
    assert_non_null(strstr(text, "kubelet_pod_start_duration_seconds_bucket{le=\"3\"} 2\n"));
    assert_non_null(strstr(text, "wasmlet_module_loads_total{source=\"disk\"} 2\n"));
    assert_non_null(strstr(text, "wasmlet_module_loads_total{source=\"memory\"} 1\n"));
    assert_non_null(strstr(text, "kubelet_running_pods 1\n"));
    assert_non_null(strstr(text, "kubelet_started_pods_total 3\n"));
    assert_non_null(strstr(text, "kubelet_certificate_manager_server_ttl_seconds 35"));
    assert_non_null(strstr(text, "wasmlet_http_requests_total{code=\"200\""));
    assert_non_null(
        strstr(text, "wasmlet_pod_addresses_held{cidr=\"10.9.0.0/24\",family=\"ipv4\"} 2\n"));
    assert_non_null(
        strstr(text, "wasmlet_pod_addresses_capacity{cidr=\"10.9.0.0/24\",family=\"ipv4\"} 253\n"));
    assert_non_null(
        strstr(text, "wasmlet_pod_addresses_held{cidr=\"fd00:9::/64\",family=\"ipv6\"} 0\n"));
    assert_non_null(strstr(
        text, "wasmlet_pod_addresses_capacity{cidr=\"fd00:9::/64\",family=\"ipv6\"} 65534\n"));
    promtool_check(text);
    call_free(&m);

    call_t r = {.path = "/metrics/resource", .cert_pem = cert, .key_pem = key};
    do_call(&t, &r);
    assert_int_equal(r.status, 200);
    text = strbuf_str(&r.body);
    assert_non_null(
        strstr(text, "container_cpu_usage_seconds_total{container=\"app\",namespace=\"default\","
                     "pod=\"web\"} 0.2"));
    assert_non_null(strstr(text, "container_memory_working_set_bytes{container=\"app\","
                                 "namespace=\"default\",pod=\"web\"} 131072 "));
    assert_non_null(strstr(text, "node_cpu_usage_seconds_total "));
    assert_non_null(strstr(text, "pod_cpu_usage_seconds_total{namespace=\"default\",pod=\"web\"}"));
    assert_non_null(strstr(text, "resource_scrape_error 0\n"));
    promtool_check(text);
    call_free(&r);

    call_t s = {.path = "/stats/summary", .cert_pem = cert, .key_pem = key};
    do_call(&t, &s);
    assert_int_equal(s.status, 200);
    json_t *sum = json_loads(strbuf_str(&s.body), 0, NULL);
    assert_non_null(sum);
    json_t *node = json_object_get(sum, "node");
    assert_string_equal(json_string_value(json_object_get(node, "nodeName")), "node-a");
    assert_true(json_integer_value(
                    json_object_get(json_object_get(node, "cpu"), "usageCoreNanoSeconds")) > 0);
    assert_true(json_integer_value(
                    json_object_get(json_object_get(node, "memory"), "workingSetBytes")) > 0);
    assert_true(json_integer_value(json_object_get(json_object_get(node, "fs"), "capacityBytes")) >
                0);
    json_t *kub = json_array_get(json_object_get(node, "systemContainers"), 0);
    assert_string_equal(json_string_value(json_object_get(kub, "name")), "kubelet");
    json_t *pod = json_array_get(json_object_get(sum, "pods"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(pod, "podRef"), "uid")),
                        "uid-1");
    json_t *c = json_array_get(json_object_get(pod, "containers"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "name")), "app");
    json_int_t cpu =
        json_integer_value(json_object_get(json_object_get(c, "cpu"), "usageCoreNanoSeconds"));
    assert_true(cpu >= 190 * NS_PER_MS);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(c, "memory"), "workingSetBytes")),
        131072);
    assert_true(json_integer_value(json_object_get(json_object_get(c, "logs"), "usedBytes")) > 0);
    assert_true(json_integer_value(
                    json_object_get(json_object_get(pod, "ephemeral-storage"), "usedBytes")) > 0);
    json_decref(sum);
    call_free(&s);
    free(cert);
    free(key);
    srv_stop(&t);
    net_ipam_free(fx_pod_addresses);
    fx_pod_addresses = NULL;
    metrics_reset();
}

/* A new serving certificate applies to the next connection. */
static void serving_cert_rotation(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t, NULL, true, 0);
    call_t c1 = {.path = "/healthz"};
    do_call(&t, &c1);
    assert_int_equal(c1.status, 200);

    char *key2, *cert2;
    const char *ips[] = {"127.0.0.1"};
    pki_name_t pn = {.cn = "node-a-rotated", .ips = ips, .nips = 1};
    assert_int_equal(pki_key_new(&key2, NULL), 0);
    assert_int_equal(pki_self_signed(key2, &pn, 3600, &cert2, NULL), 0);
    err_t err;
    /* A mismatched pair is refused and the old one stays. */
    assert_int_equal(server_set_cert(t.s, cert2, t.key_pem, &err), -1);
    do_call(&t, &c1);
    assert_int_equal(c1.status, 200);
    assert_int_equal(server_set_cert(t.s, cert2, key2, &err), 0);

    /* Trusting only the old certificate now fails; the new one works. */
    call_t old = {.path = "/healthz"};
    do_call(&t, &old);
    assert_int_equal(old.status, 0);
    char *keep = t.cert_pem;
    t.cert_pem = cert2;
    call_t neu = {.path = "/healthz"};
    do_call(&t, &neu);
    assert_int_equal(neu.status, 200);
    t.cert_pem = keep;
    call_free(&c1);
    call_free(&old);
    call_free(&neu);
    free(cert2);
    free(key2);
    srv_stop(&t);
}

/* Many requests at once, some slow (follows), are all answered. */
typedef struct par {
    srv_t *t;
    const char *cert, *key;
    atomic_int ok;
} par_t;

static void *par_main(void *arg)
{
    par_t *p = arg;
    for (int i = 0; i < 20; i++) {
        call_t c = {.path = i % 2 ? "/pods" : "/healthz", .cert_pem = p->cert, .key_pem = p->key};
        do_call(p->t, &c);
        if (c.status == 200) atomic_fetch_add(&p->ok, 1);
        call_free(&c);
    }
    return NULL;
}

static void concurrent_requests(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t, NULL, false, 0);
    char *cert, *key;
    client_cert(&t, "admin", NULL, &cert, &key);
    const char *first[] = {"x"};
    write_run(&t.pods, 0, first, 1, 1);
    /* Two follows hold their threads the whole time. */
    follower_t f[2];
    for (int i = 0; i < 2; i++) {
        f[i] = (follower_t){.t = &t,
                            .c = {.path = "/containerLogs/default/web/app?follow=true",
                                  .cert_pem = cert,
                                  .key_pem = key}};
        pthread_create(&f[i].thread, NULL, follow_main, &f[i]);
    }
    par_t p = {.t = &t, .cert = cert, .key = key};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, par_main, &p);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&p.ok), 80);
    atomic_store(&t.pods.running, false);
    for (int i = 0; i < 2; i++) {
        pthread_join(f[i].thread, NULL);
        assert_string_equal(strbuf_str(&f[i].c.body), "x\n");
        call_free(&f[i].c);
    }
    free(cert);
    free(key);
    srv_stop(&t);
}

/* --- the sampler (server/sampler.h) ----------------------------------------- */

/* A provider whose pod samples take a long time, as a copy of a big pod
 * table under a busy lock would; it counts the calls. */
typedef struct slow_fx {
    pods_fx_t *p;
    long delay_ms;
    atomic_int calls;
} slow_fx_t;

static int slow_pod_samples(void *ctx, server_pod_samples_t *out)
{
    slow_fx_t *f = ctx;
    atomic_fetch_add(&f->calls, 1);
    fx_sleep_ms(f->delay_ms);
    return fx_pod_samples(f->p, out);
}

/* Sampling the pods never runs on the event loop: with pod samples that
 * take 1.5 s each, requests are answered at their usual speed across two
 * sampling rounds (the sampler runs every 5 s; its first round starts with
 * the server). When the timer ran on the loop, a request arriving during a
 * round waited for it. */
static void sampling_off_the_loop(void **state)
{
    (void)state;
    srv_t t;
    srv_start(&t, NULL, true, 0);
    /* Restart with the slow provider, same certificate and fixture. */
    server_stop(t.s);
    slow_fx_t f = {.p = &t.pods, .delay_ms = 1500};
    server_config_t cfg = {
        .bind_address = "127.0.0.1",
        .node_name = "node-a",
        .cert_pem = t.cert_pem,
        .key_pem = t.key_pem,
        .anonymous = true,
        .pods = {.ctx = &f, .pod_list = fx_pod_list, .pod_samples = slow_pod_samples},
        .data_dir = t.pods.root,
    };
    err_t err = {""};
    assert_int_equal(server_start(&cfg, &t.s, &err), 0);
    t.port = server_port(t.s);
    long worst = 0, t0 = fx_now_ms();
    int answered = 0;
    while (fx_now_ms() - t0 < 7000) {
        call_t c = {.path = "/healthz"};
        long a = fx_now_ms();
        do_call(&t, &c);
        long took = fx_now_ms() - a;
        if (c.status == 200) answered++;
        if (took > worst) worst = took;
        call_free(&c);
        fx_sleep_ms(100);
    }
    /* Both rounds ran (at 0 s and 5 s) while requests kept coming. */
    assert_true(atomic_load(&f.calls) >= 2);
    assert_true(answered >= 10);
    if (worst >= 1000) fail_msg("a request waited %ld ms for the sampler", worst);
    srv_stop(&t);
}

typedef struct burner {
    const char *uid;
    long ms;
} burner_t;

static void *burn_for(void *arg)
{
    burner_t *b = arg;
    metrics_container_begin(b->uid, "app");
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    int64_t start = ts.tv_sec * NS_PER_SEC + ts.tv_nsec, now = start;
    long wall0 = fx_now_ms();
    volatile uint64_t x = 0;
    while (fx_now_ms() - wall0 < b->ms) {
        for (int i = 0; i < 100000; i++)
            x += (uint64_t)i;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        now = ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
    }
    (void)x;
    metrics_container_end(b->uid, "app", (uint64_t)(now - start), 65536);
    return NULL;
}

/* Rates come from snapshots the sampler publishes: a busy container has a
 * rate, a pod its containers' sum, a key never sampled none; a snapshot
 * stays readable after newer ones replace it and after the sampler stops;
 * a pod no longer listed is forgotten by the registry. */
static void sampler_rates(void **state)
{
    (void)state;
    metrics_reset();
    pods_fx_t p;
    pods_fx_init(&p);
    /* A container of a pod the provider does not list (ended long ago). */
    metrics_container_begin("uid-gone", "app");
    metrics_container_end("uid-gone", "app", 1000, 65536);
    assert_true(metrics_container_usage("uid-gone", "app", &(metrics_usage_t){0}));

    burner_t b = {.uid = "uid-1", .ms = 1200};
    pthread_t th;
    pthread_create(&th, NULL, burn_for, &b);
    fx_sleep_ms(50);
    server_pods_t pods = {.ctx = &p, .pod_list = fx_pod_list, .pod_samples = fx_pod_samples};
    server_sampler_t *sm = server_sampler_start(&pods, 200);
    assert_non_null(sm);
    fx_sleep_ms(700); /* a few samples while the container burns */
    server_rates_t *rt = server_sampler_rates(sm);
    uint64_t c = 0, pod = 0, node = 0, none = 0;
    assert_true(server_rates_get(rt, "c/uid-1/app", &c));
    assert_true(server_rates_get(rt, "p/uid-1", &pod));
    assert_true(server_rates_get(rt, "node", &node));
    assert_true(server_rates_get(rt, "kubelet", &none));
    assert_false(server_rates_get(rt, "c/uid-2/app", &none));
    /* One busy thread: more than nothing, not more than one core (with a
     * margin for the clocks). */
    assert_true(c > 0);
    assert_true(c < UINT64_C(1300000000));
    assert_true(pod == c); /* one container */
    /* The registry forgot the pod that is no longer listed. */
    metrics_usage_t u;
    assert_false(metrics_container_usage("uid-gone", "app", &u));
    assert_true(metrics_container_usage("uid-1", "app", &u));
    pthread_join(th, NULL);
    fx_sleep_ms(500); /* newer snapshots replace the one held */
    server_sampler_stop(sm);
    /* The old snapshot is still whole (ASan would see a use after free). */
    uint64_t again = 0;
    assert_true(server_rates_get(rt, "c/uid-1/app", &again));
    assert_int_equal(again, c);
    server_rates_release(rt);
    pods_fx_done(&p);
    metrics_reset();
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(client_certificates),
        cmocka_unit_test(anonymous_when_enabled),
        cmocka_unit_test(tokens_and_access_reviews),
        cmocka_unit_test(log_options),
        cmocka_unit_test(follow_streams_and_ends),
        cmocka_unit_test(follow_client_gone),
        cmocka_unit_test(large_log),
        cmocka_unit_test(stop_ends_follow),
        cmocka_unit_test(interactive_refused),
        cmocka_unit_test(metrics_and_stats),
        cmocka_unit_test(serving_cert_rotation),
        cmocka_unit_test(concurrent_requests),
        cmocka_unit_test(sampling_off_the_loop),
        cmocka_unit_test(sampler_rates),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
