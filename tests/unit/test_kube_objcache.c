/* test_kube_objcache.c: unit tests for kube/objcache against the scripted
 * HTTP server in kube_fixture.h: a burst of reads costs one LIST and no GET,
 * changes arrive through the watch without a request, an absent object
 * appears when it is created, a refused list falls back to a GET, and the
 * Services of a namespace come from the one cluster-wide watch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/client.h"
#include "kube/objcache.h"
#include "util/json.h"
#include "util/xalloc.h"

#include "kube_fixture.h"

typedef struct server {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool exists;      /* the ConfigMap "cm" exists */
    char value[64];   /* its data.k */
    int rv;           /* its resourceVersion */
    bool refuse_list; /* answer LISTs of configmaps with 403 */
    int pending;      /* events queued for the watch stream */
    char pending_type[16];
    int list_delay_ms; /* hold each LIST this long (a burst piles up) */
} server_t;

static void cm_json(char *out, size_t n, const server_t *s)
{
    snprintf(out, n,
             "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm\",\"namespace\":\"ns\","
             "\"resourceVersion\":\"%d\"},\"data\":{\"k\":\"%s\"}}",
             s->rv, s->value);
}

static int handler(fx_conn_t *conn, const fx_req_t *req, void *ctx)
{
    server_t *s = ctx;
    char path[256], watch[8] = "";
    fx_path(req, path, sizeof path);
    fx_query(req, "watch", watch, sizeof watch);
    char obj[512];
    if (strcmp(path, "/api/v1/services") == 0) {
        if (watch[0]) {
            fx_stream_begin(conn);
            fx_wait_client_gone(conn, 20000);
            return -1;
        }
        fx_respond_json(
            conn, 200,
            "{\"kind\":\"ServiceList\",\"metadata\":{\"resourceVersion\":\"5\"},\"items\":["
            "{\"metadata\":{\"name\":\"web\",\"namespace\":\"ns\"},\"spec\":{\"clusterIP\":"
            "\"198.19.0.10\"}},"
            "{\"metadata\":{\"name\":\"db\",\"namespace\":\"other\"},\"spec\":{\"clusterIP\":"
            "\"198.19.0.11\"}}]}");
        return 0;
    }
    if (strcmp(path, "/api/v1/namespaces/ns/configmaps") == 0 && watch[0]) {
        fx_stream_begin(conn);
        for (int i = 0; i < 2000; i++) { /* up to 20 s */
            pthread_mutex_lock(&s->mu);
            if (s->pending) {
                s->pending = 0;
                cm_json(obj, sizeof obj, s);
                pthread_mutex_unlock(&s->mu);
                char *e = xasprintf("{\"type\":\"%s\",\"object\":%s}\n", s->pending_type, obj);
                int rc = fx_chunk(conn, e, strlen(e));
                free(e);
                if (rc == -1) return -1;
                continue;
            }
            pthread_mutex_unlock(&s->mu);
            if (fx_wait_client_gone(conn, 10)) return -1;
        }
        return -1;
    }
    if (strcmp(path, "/api/v1/namespaces/ns/configmaps") == 0) {
        pthread_mutex_lock(&s->mu);
        int delay = s->list_delay_ms;
        bool refuse = s->refuse_list;
        pthread_mutex_unlock(&s->mu);
        if (delay) fx_sleep_ms(delay);
        if (refuse) {
            fx_respond_status(conn, 403, "Forbidden", "configmaps is forbidden");
            return 0;
        }
        pthread_mutex_lock(&s->mu);
        cm_json(obj, sizeof obj, s);
        char *body = xasprintf("{\"kind\":\"ConfigMapList\",\"metadata\":{\"resourceVersion\":"
                               "\"%d\"},\"items\":[%s]}",
                               s->rv, s->exists ? obj : "");
        pthread_mutex_unlock(&s->mu);
        fx_respond_json(conn, 200, body);
        free(body);
        return 0;
    }
    if (strcmp(path, "/api/v1/namespaces/ns/configmaps/cm") == 0) {
        pthread_mutex_lock(&s->mu);
        cm_json(obj, sizeof obj, s);
        bool exists = s->exists;
        pthread_mutex_unlock(&s->mu);
        if (exists)
            fx_respond_json(conn, 200, obj);
        else
            fx_respond_status(conn, 404, "NotFound", "configmaps \\\"cm\\\" not found");
        return 0;
    }
    fx_respond_status(conn, 404, "NotFound", "no such path");
    return 0;
}

static kube_client_t *plain_client(const char *url)
{
    kube_kubeconfig_t *cfg = kube_kubeconfig_new(url, NULL, NULL, NULL, NULL);
    kube_client_t *c;
    err_t err;
    assert_int_equal(kube_client_new(cfg, &c, &err), 0);
    kube_kubeconfig_free(cfg);
    return c;
}

/* Requests whose path is exactly path, split by whether they watch. */
static void count(fx_t *fx, const char *path, int *lists, int *watches)
{
    *lists = *watches = 0;
    for (size_t i = 0; i < fx_count(fx); i++) {
        fx_req_t r;
        if (!fx_get(fx, i, &r)) continue;
        char p[256], w[8] = "";
        fx_path(&r, p, sizeof p);
        fx_query(&r, "watch", w, sizeof w);
        if (strcmp(p, path) == 0) (*(w[0] ? watches : lists))++;
        fx_release(&r);
    }
}

static const char *value_of(json_t *cm)
{
    return json_str_at(cm, "data", "k");
}

typedef struct reader {
    kube_objcache_t *oc;
    json_t *got;
    int rc;
} reader_t;

static void *read_main(void *arg)
{
    reader_t *r = arg;
    err_t err;
    r->rc = kube_objcache_get(r->oc, KUBE_OBJ_CONFIGMAP, "ns", "cm", &r->got, &err);
    return NULL;
}

static void setup_server(server_t *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->exists = true;
    s->rv = 10;
    snprintf(s->value, sizeof s->value, "one");
}

/* Twenty pods starting at once read the same object: one LIST, no GET. */
static void burst_costs_one_list(void **state)
{
    (void)state;
    server_t s;
    setup_server(&s);
    s.list_delay_ms = 200;
    fx_t fx;
    fx_start(&fx, handler, &s, NULL);
    kube_client_t *c = plain_client(fx.url);
    kube_objcache_t *oc = kube_objcache_new(c, NULL);

    enum { N = 20 };
    reader_t r[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        r[i] = (reader_t){.oc = oc};
        pthread_create(&t[i], NULL, read_main, &r[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(r[i].rc, 0);
        assert_non_null(r[i].got);
        assert_string_equal(value_of(r[i].got), "one");
        json_decref(r[i].got);
    }
    int lists, watches, gets, gw;
    count(&fx, "/api/v1/namespaces/ns/configmaps", &lists, &watches);
    count(&fx, "/api/v1/namespaces/ns/configmaps/cm", &gets, &gw);
    assert_int_equal(lists, 1);
    assert_int_equal(gets, 0);
    kube_objcache_stats_t st;
    kube_objcache_stats(oc, &st);
    assert_int_equal(st.hits, N);
    assert_int_equal(st.fallbacks, 0);
    assert_int_equal(st.watches, 1);

    kube_objcache_free(oc);
    kube_client_free(c);
    fx_stop(&fx);
}

/* A change made after the first read reaches later reads through the
 * watch, without another request; so does a deletion. */
static void changes_arrive_through_the_watch(void **state)
{
    (void)state;
    server_t s;
    setup_server(&s);
    fx_t fx;
    fx_start(&fx, handler, &s, NULL);
    kube_client_t *c = plain_client(fx.url);
    kube_objcache_t *oc = kube_objcache_new(c, NULL);
    err_t err;
    json_t *cm = NULL;
    assert_int_equal(kube_objcache_get(oc, KUBE_OBJ_CONFIGMAP, "ns", "cm", &cm, &err), 0);
    assert_string_equal(value_of(cm), "one");
    json_decref(cm);

    pthread_mutex_lock(&s.mu);
    snprintf(s.value, sizeof s.value, "two");
    s.rv = 11;
    snprintf(s.pending_type, sizeof s.pending_type, "MODIFIED");
    s.pending = 1;
    pthread_mutex_unlock(&s.mu);
    bool seen = false;
    for (int i = 0; i < 300 && !seen; i++) {
        assert_int_equal(kube_objcache_get(oc, KUBE_OBJ_CONFIGMAP, "ns", "cm", &cm, &err), 0);
        seen = cm && strcmp(value_of(cm), "two") == 0;
        json_decref(cm);
        if (!seen) fx_sleep_ms(10);
    }
    assert_true(seen);

    pthread_mutex_lock(&s.mu);
    s.rv = 12;
    snprintf(s.pending_type, sizeof s.pending_type, "DELETED");
    s.pending = 1;
    pthread_mutex_unlock(&s.mu);
    bool gone = false;
    for (int i = 0; i < 300 && !gone; i++) {
        assert_int_equal(kube_objcache_get(oc, KUBE_OBJ_CONFIGMAP, "ns", "cm", &cm, &err), 0);
        gone = cm == NULL;
        json_decref(cm);
        if (!gone) fx_sleep_ms(10);
    }
    assert_true(gone);

    int lists, watches, gets, gw;
    count(&fx, "/api/v1/namespaces/ns/configmaps", &lists, &watches);
    count(&fx, "/api/v1/namespaces/ns/configmaps/cm", &gets, &gw);
    assert_int_equal(lists, 1);
    assert_int_equal(gets, 0);
    assert_true(watches >= 1);
    kube_objcache_free(oc);
    kube_client_free(c);
    fx_stop(&fx);
}

/* An object that does not exist yet reads as NULL, and is there as soon
 * as its ADDED event arrives. */
static void absent_object_appears(void **state)
{
    (void)state;
    server_t s;
    setup_server(&s);
    s.exists = false;
    fx_t fx;
    fx_start(&fx, handler, &s, NULL);
    kube_client_t *c = plain_client(fx.url);
    kube_objcache_t *oc = kube_objcache_new(c, NULL);
    err_t err;
    json_t *cm = (json_t *)1;
    assert_int_equal(kube_objcache_get(oc, KUBE_OBJ_CONFIGMAP, "ns", "cm", &cm, &err), 0);
    assert_null(cm);

    pthread_mutex_lock(&s.mu);
    s.exists = true;
    s.rv = 20;
    snprintf(s.pending_type, sizeof s.pending_type, "ADDED");
    s.pending = 1;
    pthread_mutex_unlock(&s.mu);
    bool seen = false;
    for (int i = 0; i < 300 && !seen; i++) {
        assert_int_equal(kube_objcache_get(oc, KUBE_OBJ_CONFIGMAP, "ns", "cm", &cm, &err), 0);
        seen = cm != NULL;
        json_decref(cm);
        if (!seen) fx_sleep_ms(10);
    }
    assert_true(seen);
    kube_objcache_free(oc);
    kube_client_free(c);
    fx_stop(&fx);
}

/* A list the API server refuses (the Node authorizer has not seen the pod
 * yet) does not hold the read back: it is answered by a GET. */
static void refused_list_falls_back_to_get(void **state)
{
    (void)state;
    server_t s;
    setup_server(&s);
    s.refuse_list = true;
    fx_t fx;
    fx_start(&fx, handler, &s, NULL);
    kube_client_t *c = plain_client(fx.url);
    kube_objcache_t *oc = kube_objcache_new(c, NULL);
    err_t err;
    json_t *cm = NULL;
    long t0 = fx_now_ms();
    assert_int_equal(kube_objcache_get(oc, KUBE_OBJ_CONFIGMAP, "ns", "cm", &cm, &err), 0);
    assert_true(fx_now_ms() - t0 < 5000);
    assert_non_null(cm);
    assert_string_equal(value_of(cm), "one");
    json_decref(cm);
    kube_objcache_stats_t st;
    kube_objcache_stats(oc, &st);
    assert_int_equal(st.fallbacks, 1);
    assert_int_equal(st.hits, 0);
    kube_objcache_free(oc);
    kube_client_free(c);
    fx_stop(&fx);
}

/* Services come from one watch of the whole cluster, filtered by namespace. */
static void services_by_namespace(void **state)
{
    (void)state;
    server_t s;
    setup_server(&s);
    fx_t fx;
    fx_start(&fx, handler, &s, NULL);
    kube_client_t *c = plain_client(fx.url);
    kube_objcache_t *oc = kube_objcache_new(c, NULL);
    err_t err;
    json_t *list = NULL;
    assert_int_equal(kube_objcache_services(oc, "ns", &list, &err), 0);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_str_at(json_array_get(list, 0), "metadata", "name"), "web");
    json_decref(list);
    assert_int_equal(kube_objcache_services(oc, "other", &list, &err), 0);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
    assert_int_equal(kube_objcache_services(oc, "none", &list, &err), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    int lists, watches;
    count(&fx, "/api/v1/services", &lists, &watches);
    assert_int_equal(lists, 1);
    kube_objcache_free(oc);
    kube_client_free(c);
    fx_stop(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_costs_one_list),  cmocka_unit_test(changes_arrive_through_the_watch),
        cmocka_unit_test(absent_object_appears), cmocka_unit_test(refused_list_falls_back_to_get),
        cmocka_unit_test(services_by_namespace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
