/* auth.c: who is asking, and may they (see auth.h).
 *
 * Both questions go to the API server, as the kubelet's webhook modes do:
 * a bearer token is checked with a TokenReview, and every request is
 * authorized with a SubjectAccessReview for nodes/<node> and the
 * subresource its path implies. Answers are cached so that a `kubectl logs
 * -f` or a metrics scraper every 15 s costs the API server one review a
 * minute, not one per request: allowed decisions for authz_allow_ttl_ms,
 * denials for the shorter authz_deny_ttl_ms (so a newly granted role works
 * soon), token results for authn_ttl_ms. Tokens are cached by their SHA-256
 * digest, never as text. A review that fails (API server down) is not
 * cached and the request fails; a node does not guess.
 *
 * The cache is a list with a size cap, guarded by one mutex: a node sees
 * a handful of distinct clients (the API server, a scraper, an operator),
 * so a linear search of a few entries beats a hash table in plain-ness. */
#include "server/auth.h"
#include "util/json.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_MAX 1024
#define REVIEW_TIMEOUT_MS 10000

typedef struct centry {
    char *key;
    int64_t expires; /* mono ns */
    bool yes;
    char reason[256];
    server_user_t user; /* token results */
    struct centry *next;
} centry_t;

struct server_auth {
    kube_client_t *client;
    char *node_name;
    int64_t authn_ttl_ns, allow_ttl_ns, deny_ttl_ns;
    pthread_mutex_t mu;
    centry_t *cache;
    size_t n;
};

void server_user_free(server_user_t *u)
{
    if (!u) return;
    free(u->name);
    free(u->uid);
    strvec_free(&u->groups);
    json_decref(u->extra);
    memset(u, 0, sizeof *u);
}

static void user_copy(server_user_t *dst, const server_user_t *src)
{
    memset(dst, 0, sizeof *dst);
    dst->name = xstrdup(src->name ? src->name : "");
    dst->uid = xstrdup(src->uid ? src->uid : "");
    for (size_t i = 0; i < src->groups.len; i++)
        strvec_push(&dst->groups, src->groups.items[i]);
    dst->extra = src->extra ? json_deep_copy(src->extra) : NULL;
}

server_auth_t *server_auth_new(kube_client_t *client, const char *node_name, int64_t authn_ttl_ms,
                               int64_t allow_ttl_ms, int64_t deny_ttl_ms)
{
    server_auth_t *a = xcalloc(1, sizeof *a);
    a->client = client;
    a->node_name = xstrdup(node_name ? node_name : "");
    a->authn_ttl_ns = (authn_ttl_ms > 0 ? authn_ttl_ms : 120000) * NS_PER_MS;
    a->allow_ttl_ns = (allow_ttl_ms > 0 ? allow_ttl_ms : 60000) * NS_PER_MS;
    a->deny_ttl_ns = (deny_ttl_ms > 0 ? deny_ttl_ms : 10000) * NS_PER_MS;
    pthread_mutex_init(&a->mu, NULL);
    return a;
}

static void centry_free(centry_t *e)
{
    free(e->key);
    server_user_free(&e->user);
    free(e);
}

void server_auth_free(server_auth_t *a)
{
    if (!a) return;
    while (a->cache) {
        centry_t *e = a->cache;
        a->cache = e->next;
        centry_free(e);
    }
    pthread_mutex_destroy(&a->mu);
    free(a->node_name);
    free(a);
}

/* Looks key up; true when a live entry exists (copied into *out). */
static bool cache_get(server_auth_t *a, const char *key, bool *yes, char *reason, size_t rlen,
                      server_user_t *user)
{
    int64_t now = time_mono_ns();
    bool found = false;
    pthread_mutex_lock(&a->mu);
    for (centry_t *e = a->cache; e; e = e->next) {
        if (strcmp(e->key, key) != 0 || e->expires <= now) continue;
        *yes = e->yes;
        if (reason) snprintf(reason, rlen, "%s", e->reason);
        if (user && e->yes) user_copy(user, &e->user);
        found = true;
        break;
    }
    pthread_mutex_unlock(&a->mu);
    return found;
}

static void cache_put(server_auth_t *a, const char *key, bool yes, const char *reason,
                      const server_user_t *user, int64_t ttl_ns)
{
    int64_t now = time_mono_ns();
    centry_t *e = xcalloc(1, sizeof *e);
    e->key = xstrdup(key);
    e->yes = yes;
    e->expires = now + ttl_ns;
    snprintf(e->reason, sizeof e->reason, "%s", reason ? reason : "");
    if (user) user_copy(&e->user, user);
    pthread_mutex_lock(&a->mu);
    /* Drop expired entries and any older entry for the key; then, if still
     * full, the oldest (the list is newest first). */
    centry_t **pp = &a->cache;
    while (*pp) {
        centry_t *x = *pp;
        if (x->expires <= now || strcmp(x->key, key) == 0) {
            *pp = x->next;
            centry_free(x);
            a->n--;
        } else {
            pp = &x->next;
        }
    }
    if (a->n >= CACHE_MAX) {
        centry_t **last = &a->cache;
        while (*last && (*last)->next)
            last = &(*last)->next;
        if (*last) {
            centry_free(*last);
            *last = NULL;
            a->n--;
        }
    }
    e->next = a->cache;
    a->cache = e;
    a->n++;
    pthread_mutex_unlock(&a->mu);
}

/* POSTs obj to path with a short timeout; *out gets the decoded answer of
 * a 2xx. */
static int review(server_auth_t *a, const char *path, json_t *obj, json_t **out, err_t *err)
{
    char *body = json_dumps(obj, JSON_COMPACT);
    kube_req_t req = {
        .method = "POST",
        .path = path,
        .content_type = "application/json",
        .body = body,
        .body_len = strlen(body),
        .timeout_ms = REVIEW_TIMEOUT_MS,
    };
    long status = 0;
    strbuf_t resp = STRBUF_INIT;
    int rc = kube_do(a->client, &req, &status, &resp, err);
    free(body);
    if (rc == 0 && (status < 200 || status > 299)) {
        rc = kube_status_error(status, strbuf_str(&resp), resp.len, NULL, err);
    } else if (rc == 0) {
        json_error_t jerr;
        *out = json_loadb(strbuf_str(&resp), resp.len, 0, &jerr);
        if (!*out) rc = err_set(err, "%s: bad answer: %s", path, jerr.text);
    }
    strbuf_free(&resp);
    return rc;
}

static void hash_hex(const char *text, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

server_verdict_t server_authn_token(server_auth_t *a, const char *token, server_user_t *user,
                                    err_t *err)
{
    memset(user, 0, sizeof *user);
    if (!a->client) {
        err_set(err, "bearer tokens are not accepted here");
        return SERVER_NO;
    }
    char key[70] = "t:";
    hash_hex(token, key + 2);
    bool yes;
    if (cache_get(a, key, &yes, NULL, 0, user)) return yes ? SERVER_YES : SERVER_NO;

    json_t *obj = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "authentication.k8s.io/v1", "kind",
                            "TokenReview", "spec", "token", token);
    json_t *ans = NULL;
    int rc = review(a, "/apis/authentication.k8s.io/v1/tokenreviews", obj, &ans, err);
    json_decref(obj);
    if (rc == -1) {
        err_prefix(err, "TokenReview");
        return SERVER_UNKNOWN;
    }
    json_t *u = json_at(ans, "status", "user");
    const char *username = json_str_at(u, "username");
    yes = json_bool_at(ans, false, "status", "authenticated") && username;
    if (yes) {
        user->name = xstrdup(username);
        const char *uid = json_str_at(u, "uid");
        user->uid = xstrdup(uid ? uid : "");
        size_t i;
        json_t *g;
        json_array_foreach(json_at(u, "groups"), i, g)
        {
            if (json_is_string(g)) strvec_push(&user->groups, json_string_value(g));
        }
        json_t *extra = json_at(u, "extra");
        if (json_is_object(extra) && json_object_size(extra)) user->extra = json_deep_copy(extra);
    } else {
        const char *why = json_str_at(ans, "status", "error");
        err_set(err, "token not authenticated%s%s", why ? ": " : "", why ? why : "");
    }
    cache_put(a, key, yes, NULL, yes ? user : NULL, yes ? a->authn_ttl_ns : a->deny_ttl_ns);
    json_decref(ans);
    return yes ? SERVER_YES : SERVER_NO;
}

server_verdict_t server_authz(server_auth_t *a, const server_user_t *user, const char *verb,
                              const char *subresource, char *reason, size_t reason_len, err_t *err)
{
    if (reason_len) reason[0] = '\0';
    if (!a->client) return SERVER_YES; /* tests without an API server */
    strbuf_t key = STRBUF_INIT;
    strbuf_printf(&key, "z:%s\n%s\n%s\n%s\n", verb, subresource, user->name,
                  user->uid ? user->uid : "");
    for (size_t i = 0; i < user->groups.len; i++)
        strbuf_printf(&key, "%s,", user->groups.items[i]);
    if (user->extra) {
        char *x = json_dumps(user->extra, JSON_COMPACT | JSON_SORT_KEYS);
        strbuf_printf(&key, "\n%s", x);
        free(x);
    }
    bool yes;
    if (cache_get(a, strbuf_str(&key), &yes, reason, reason_len, NULL)) {
        strbuf_free(&key);
        return yes ? SERVER_YES : SERVER_NO;
    }
    json_t *groups = json_array();
    for (size_t i = 0; i < user->groups.len; i++)
        json_array_append_new(groups, json_string(user->groups.items[i]));
    json_t *spec =
        json_pack("{s:s, s:o, s:{s:s, s:s, s:s, s:s, s:s, s:s}}", "user", user->name, "groups",
                  groups, "resourceAttributes", "verb", verb, "group", "", "version", "v1",
                  "resource", "nodes", "subresource", subresource, "name", a->node_name);
    if (user->uid && user->uid[0]) json_object_set_new(spec, "uid", json_string(user->uid));
    if (user->extra) json_object_set(spec, "extra", user->extra);
    json_t *obj = json_pack("{s:s, s:s, s:o}", "apiVersion", "authorization.k8s.io/v1", "kind",
                            "SubjectAccessReview", "spec", spec);
    json_t *ans = NULL;
    int rc = review(a, "/apis/authorization.k8s.io/v1/subjectaccessreviews", obj, &ans, err);
    json_decref(obj);
    if (rc == -1) {
        strbuf_free(&key);
        err_prefix(err, "SubjectAccessReview");
        return SERVER_UNKNOWN;
    }
    yes = json_bool_at(ans, false, "status", "allowed") &&
          !json_bool_at(ans, false, "status", "denied");
    const char *why = json_str_at(ans, "status", "reason");
    if (!yes && reason_len) snprintf(reason, reason_len, "%s", why ? why : "");
    cache_put(a, strbuf_str(&key), yes, yes ? NULL : reason, NULL,
              yes ? a->allow_ttl_ns : a->deny_ttl_ns);
    strbuf_free(&key);
    json_decref(ans);
    return yes ? SERVER_YES : SERVER_NO;
}

const char *server_method_verb(const char *method)
{
    if (strcmp(method, "POST") == 0) return "create";
    if (strcmp(method, "PUT") == 0) return "update";
    if (strcmp(method, "PATCH") == 0) return "patch";
    if (strcmp(method, "DELETE") == 0) return "delete";
    return "get"; /* GET, HEAD, OPTIONS */
}

static bool under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

size_t server_path_subresources(const char *path, const char *out[2])
{
    /* As the kubelet maps them; /pods and /healthz first ask for their
     * own fine-grained subresource, then for proxy, which has always
     * covered them. */
    if (under(path, "/stats")) {
        out[0] = "stats";
        return 1;
    }
    if (under(path, "/metrics")) {
        out[0] = "metrics";
        return 1;
    }
    if (under(path, "/logs")) {
        out[0] = "log";
        return 1;
    }
    if (under(path, "/pods")) {
        out[0] = "pods";
        out[1] = "proxy";
        return 2;
    }
    if (under(path, "/healthz")) {
        out[0] = "healthz";
        out[1] = "proxy";
        return 2;
    }
    out[0] = "proxy";
    return 1;
}
