/* cluster_host.c: the pod host callbacks of `wasmlet node` (see host.h).
 *
 * - pull: the image store (image/), with the credentials of the pod's
 *   imagePullSecrets added to the node's own (a secret that cannot be read
 *   is reported with a FailedToRetrieveImagePullSecret Event, and the pull
 *   goes on without it);
 * - lookup: ConfigMaps and Secrets from kube/objcache: one watch per
 *   object a pod references (the Node authorizer lets a node read only
 *   those), so a node of a thousand pods reading the same kube-root-ca.crt
 *   lists it once and then reads it from memory, always as fresh as the
 *   watch; warm starts an object's watch at the pod's start, so its
 *   first list runs beside the pod's TokenRequest;
 * - token: TokenRequest bound to the pod, reused until 80% of its lifetime
 *   (or 24 h) has passed, as the kubelet's token manager does. The cache
 *   holds every pod's tokens until the pod goes (cluster_host_forget_pod),
 *   however many pods there are: each running pod's volumes are refreshed
 *   every few seconds, and a token missing from the cache is a new
 *   TokenRequest and a rewritten volume. One request per token is in
 *   flight at a time; a second asker waits for it. token_warm starts the
 *   request on a short-lived thread of its own, so that a pod whose network
 *   sandbox comes first has its token by the time its volumes are made;
 * - service_env: the Docker-link style variables of the services of the
 *   pod's namespace (all of them with enableServiceLinks, else only the
 *   kubernetes service of default), from the object cache's one watch of
 *   Services;
 * - event: Events through pod/events.c, about the pod and the container's
 *   fieldPath;
 * - runtime classes (for the pod manager): the handler of a RuntimeClass
 *   (node.k8s.io/v1; the Node authorizer lets a node get them), kept for
 *   30 s (a class's handler cannot change); an absent class is asked
 *   again every time.
 * A pull that fails is classified as the kubelet does: InvalidImageName
 * and ErrImageNeverPull with the kubelet's messages, ErrImagePull for
 * everything the registry or the network said.
 *
 * Threads: every callback runs on the calling worker's (or the manager's)
 * thread, token_warm's requests on threads of their own (counted in
 * warming; cluster_host_free waits for them); ch->lock guards the token
 * and class caches only and is never held across a request (the object
 * cache has its own lock). */
#include "pod/cluster_host.h"
#include "kube/objcache.h"
#include "pod/worker.h"
#include "util/base64.h"
#include "util/json.h"
#include "util/strbuf.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLASS_TTL_NS (30 * NS_PER_SEC)
#define CLASS_CACHE_MAX 32
#define TOKEN_WARM_STACK (256u * 1024u) /* a request's JSON and the wait for its answer */

typedef struct cached {
    char key[512];
    json_t *data; /* NULL: not found */
    int64_t at;   /* mono ns */
} cached_t;

struct cluster_host {
    kube_client_t *client;
    image_store_t *images;
    pod_events_t *events;
    char *node;
    kube_objcache_t *objects;
    void (*status_changed)(void *ctx, pod_worker_t *w);
    void *status_ctx;
    pthread_mutex_t lock;
    /* pod uid -> token_ask_t.key -> {"token", "refresh" (mono ns),
     * "expires" (wall ns)}, or {"pending": true} while its request is in
     * flight. */
    json_t *tokens;
    pthread_cond_t token_cond; /* a pending request ended, or a warm thread */
    int warming;               /* token_warm threads running */
    cached_t classes[CLASS_CACHE_MAX];
    size_t class_next;
};

/* --- lookup ----------------------------------------------------------------- */

static json_t *decode_secret(json_t *data)
{
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(data, k, v)
    {
        const char *text = json_string_value(v);
        unsigned char *bytes = NULL;
        size_t n = 0;
        if (text && base64_decode(text, strlen(text), &bytes, &n) == 0)
            json_object_set_new(out, k, json_stringn_nocheck((const char *)bytes, n));
        free(bytes);
    }
    return out;
}

static int lookup(void *ctx, const char *ns, bool secret, const char *name, json_t **data,
                  err_t *err)
{
    cluster_host_t *ch = ctx;
    json_t *obj = NULL;
    *data = NULL;
    if (kube_objcache_get(ch->objects, secret ? KUBE_OBJ_SECRET : KUBE_OBJ_CONFIGMAP, ns, name,
                          &obj, err) == -1)
        return -1;
    if (!obj) return 0;
    json_t *fields = json_object_get(obj, "data");
    if (secret) {
        *data = decode_secret(fields);
    } else {
        *data = fields ? json_incref(fields) : json_object();
        json_t *dec = decode_secret(json_object_get(obj, "binaryData"));
        json_object_update(*data, dec);
        json_decref(dec);
    }
    json_decref(obj);
    return 0;
}

static void warm(void *ctx, const char *ns, bool secret, const char *name)
{
    cluster_host_t *ch = ctx;
    kube_objcache_warm(ch->objects, secret ? KUBE_OBJ_SECRET : KUBE_OBJ_CONFIGMAP, ns, name);
}

/* --- token -------------------------------------------------------------------- */

/* What a TokenRequest needs of its pod, copied: a warm thread outlives the
 * spec it was started from. */
typedef struct token_ask {
    char *ns, *name, *uid, *sa, *audience; /* audience: NULL for the API server's */
    int64_t seconds;
    char key[512]; /* <sa>/<audience>/<seconds>, within the pod's uid */
} token_ask_t;

static void token_ask_init(token_ask_t *a, const podspec_t *pod, const char *audience,
                           int64_t seconds)
{
    a->ns = xstrdup(pod->namespace);
    a->name = xstrdup(pod->name);
    a->uid = xstrdup(pod->uid);
    a->sa = xstrdup(pod->service_account);
    a->audience = audience && *audience ? xstrdup(audience) : NULL;
    a->seconds = seconds;
    snprintf(a->key, sizeof a->key, "%s/%s/%lld", pod->service_account, audience ? audience : "",
             (long long)seconds);
}

static void token_ask_free(token_ask_t *a)
{
    free(a->ns);
    free(a->name);
    free(a->uid);
    free(a->sa);
    free(a->audience);
}

/* The TokenRequest itself: the token and its lifetime (ns; the API server
 * may grant another than asked) and expiry (wall ns, 0: not said). */
static int token_request(cluster_host_t *ch, const token_ask_t *a, char **out, int64_t *life,
                         int64_t *exp_ns, err_t *err)
{
    char *path = xasprintf("/api/v1/namespaces/%s/serviceaccounts/%s/token", a->ns, a->sa);
    json_t *req = json_pack("{s:s, s:s, s:{s:I, s:{s:s, s:s, s:s, s:s}}}", "apiVersion",
                            "authentication.k8s.io/v1", "kind", "TokenRequest", "spec",
                            "expirationSeconds", (json_int_t)a->seconds, "boundObjectRef", "kind",
                            "Pod", "apiVersion", "v1", "name", a->name, "uid", a->uid);
    if (a->audience)
        json_object_set_new(json_object_get(req, "spec"), "audiences",
                            json_pack("[s]", a->audience));
    json_t *resp = NULL;
    kube_result_t res;
    int rc = kube_create(ch->client, path, req, &resp, &res, err);
    json_decref(req);
    free(path);
    if (rc == -1) return -1;
    json_t *status = json_object_get(resp, "status");
    const char *tok = json_str_at(status, "token");
    if (!tok) {
        json_decref(resp);
        return err_set(err, "TokenRequest answered without a token");
    }
    *life = a->seconds * NS_PER_SEC;
    *exp_ns = 0;
    const char *exp = json_str_at(status, "expirationTimestamp");
    if (exp && time_parse_rfc3339(exp, exp_ns) == 0) *life = *exp_ns - time_now_ns();
    if (*life < NS_PER_SEC) *life = NS_PER_SEC;
    *out = xstrdup(tok);
    json_decref(resp);
    return 0;
}

/* The cache entry of a (ch->lock held), or NULL. */
static json_t *token_cached_locked(cluster_host_t *ch, const token_ask_t *a)
{
    return json_object_get(json_object_get(ch->tokens, a->uid), a->key);
}

/* Sets (entry) or removes (NULL) the cache entry of a; ch->lock held. */
static void token_cache_set_locked(cluster_host_t *ch, const token_ask_t *a, json_t *entry)
{
    json_t *pod = json_object_get(ch->tokens, a->uid);
    if (!entry) {
        json_object_del(pod, a->key);
        if (pod && json_object_size(pod) == 0) json_object_del(ch->tokens, a->uid);
        return;
    }
    if (!pod) json_object_set_new(ch->tokens, a->uid, pod = json_object());
    json_object_set_new(pod, a->key, entry);
}

/* The cached token of a, or a new one: one request per key in flight, a
 * second asker waits for the first's answer. */
static int token_get(cluster_host_t *ch, const token_ask_t *a, char **out, int64_t *expires_ns,
                     err_t *err)
{
    pthread_mutex_lock(&ch->lock);
    for (;;) {
        json_t *c = token_cached_locked(ch, a);
        if (!c) break;
        if (json_is_true(json_object_get(c, "pending"))) {
            pthread_cond_wait(&ch->token_cond, &ch->lock);
            continue;
        }
        if (time_mono_ns() < json_integer_value(json_object_get(c, "refresh"))) {
            *out = xstrdup(json_string_value(json_object_get(c, "token")));
            *expires_ns = json_integer_value(json_object_get(c, "expires"));
            pthread_mutex_unlock(&ch->lock);
            return 0;
        }
        break; /* due for refresh */
    }
    json_t *mark = json_pack("{s:b}", "pending", 1);
    token_cache_set_locked(ch, a, json_incref(mark));
    pthread_mutex_unlock(&ch->lock);

    int64_t asked = time_mono_ns(), life = 0, exp_ns = 0;
    char *tok = NULL;
    int rc = token_request(ch, a, &tok, &life, &exp_ns, err);

    pthread_mutex_lock(&ch->lock);
    /* A pod forgotten meanwhile keeps nothing cached. */
    bool ours = token_cached_locked(ch, a) == mark;
    if (rc == 0 && ours) {
        /* The kubelet's token manager: refresh at 80% of the lifetime, and
         * after 24 h whatever the lifetime. */
        int64_t refresh = life * 8 / 10;
        if (refresh > 24 * 3600 * NS_PER_SEC) refresh = 24 * 3600 * NS_PER_SEC;
        token_cache_set_locked(ch, a,
                               json_pack("{s:s, s:I, s:I}", "token", tok, "refresh",
                                         (json_int_t)(asked + refresh), "expires",
                                         (json_int_t)exp_ns));
    } else if (ours) {
        token_cache_set_locked(ch, a, NULL);
    }
    pthread_cond_broadcast(&ch->token_cond);
    pthread_mutex_unlock(&ch->lock);
    json_decref(mark);
    if (rc == -1) return -1;
    *out = tok;
    *expires_ns = exp_ns;
    return 0;
}

static int token(void *ctx, const podspec_t *pod, const char *audience, int64_t seconds, char **out,
                 int64_t *expires_ns, err_t *err)
{
    token_ask_t a;
    token_ask_init(&a, pod, audience, seconds);
    int rc = token_get(ctx, &a, out, expires_ns, err);
    token_ask_free(&a);
    return rc;
}

typedef struct token_warm_job {
    cluster_host_t *ch;
    token_ask_t ask;
} token_warm_job_t;

static void *token_warm_main(void *arg)
{
    thread_set_name("token-request");
    token_warm_job_t *j = arg;
    cluster_host_t *ch = j->ch;
    char *tok = NULL;
    int64_t exp = 0;
    err_t err;
    /* A failure is the later asker's to see and retry: nothing is cached. */
    if (token_get(ch, &j->ask, &tok, &exp, &err) == 0) free(tok);
    token_ask_free(&j->ask);
    free(j);
    pthread_mutex_lock(&ch->lock);
    ch->warming--;
    pthread_cond_broadcast(&ch->token_cond);
    pthread_mutex_unlock(&ch->lock);
    return NULL;
}

static void token_warm(void *ctx, const podspec_t *pod, const char *audience, int64_t seconds)
{
    cluster_host_t *ch = ctx;
    token_warm_job_t *j = xcalloc(1, sizeof *j);
    j->ch = ch;
    token_ask_init(&j->ask, pod, audience, seconds);
    pthread_mutex_lock(&ch->lock);
    bool known = token_cached_locked(ch, &j->ask) != NULL;
    if (!known) ch->warming++;
    pthread_mutex_unlock(&ch->lock);
    if (!known) {
        pthread_attr_t attr;
        pthread_t t;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, TOKEN_WARM_STACK);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, token_warm_main, j);
        pthread_attr_destroy(&attr);
        if (rc == 0) return;
        pthread_mutex_lock(&ch->lock); /* no thread: the later asker asks */
        ch->warming--;
        pthread_cond_broadcast(&ch->token_cond);
        pthread_mutex_unlock(&ch->lock);
    }
    token_ask_free(&j->ask);
    free(j);
}

void cluster_host_forget_pod(cluster_host_t *ch, const char *uid)
{
    pthread_mutex_lock(&ch->lock);
    json_object_del(ch->tokens, uid);
    pthread_mutex_unlock(&ch->lock);
}

/* --- pull ---------------------------------------------------------------------- */

/* A failed pull in the kubelet's words: its image manager has its own
 * reason and message for a reference that does not parse (it fails where
 * the default tag is applied) and for an image absent under policy Never;
 * everything else is ErrImagePull with the registry's words. */
static int pull_failed(const char *image, image_pull_failure_t failure, pod_pulled_t *out,
                       err_t *err)
{
    out->failure_reason = failure == IMAGE_PULL_FAILED ? NULL : image_pull_failure_reason(failure);
    if (failure == IMAGE_PULL_INVALID_NAME)
        return err_set(err,
                       "Failed to apply default image tag \"%s\": couldn't parse image name "
                       "\"%s\": invalid reference format",
                       image, image);
    if (failure == IMAGE_PULL_NEVER_NOT_PRESENT)
        return err_set(err, "Container image \"%s\" is not present with pull policy of Never",
                       image);
    return -1;
}

/* The container's pull policy (IfNotPresent when unset or unknown). */
static image_pull_policy_t policy_of(const podspec_container_t *c)
{
    image_pull_policy_t policy = IMAGE_PULL_IF_NOT_PRESENT;
    image_pull_policy_parse(c->pull_policy, &policy);
    return policy;
}

static int pull(void *ctx, const podspec_t *pod, const podspec_container_t *c, pod_pulled_t *out,
                err_t *err)
{
    cluster_host_t *ch = ctx;
    image_auth_t auth = IMAGE_AUTH_INIT;
    json_t *secrets = json_at(pod->raw, "spec", "imagePullSecrets");
    strbuf_t missing = STRBUF_INIT;
    size_t i;
    json_t *s;
    json_array_foreach(secrets, i, s)
    {
        const char *name = json_str_at(s, "name");
        json_t *data = NULL;
        err_t lerr;
        if (!name || lookup(ch, pod->namespace, true, name, &data, &lerr) == -1 || !data) {
            strbuf_printf(&missing, "%s%s", missing.len ? ", " : "", name ? name : "");
            continue;
        }
        json_t *cfg = json_object_get(data, ".dockerconfigjson");
        if (!cfg) cfg = json_object_get(data, ".dockercfg");
        if (json_is_string(cfg))
            image_auth_from_dockerconfigjson(&auth, json_string_value(cfg), json_string_length(cfg),
                                             NULL);
        json_decref(data);
    }
    /* As the kubelet does: the pull goes on, without those credentials. */
    if (missing.len) {
        char *msg = xasprintf("Unable to retrieve some image pull secrets (%s); attempting to "
                              "pull the image may not succeed.",
                              strbuf_str(&missing));
        cluster_host_event_for(ch, pod->raw, NULL, "Warning", "FailedToRetrieveImagePullSecret",
                               msg);
        free(msg);
    }
    strbuf_free(&missing);
    image_pull_policy_t policy = policy_of(c);
    image_pulled_t pulled;
    memset(&pulled, 0, sizeof pulled);
    int rc = image_pull(ch->images, c->image, policy, &auth, &pulled, err);
    image_auth_free(&auth);
    if (rc == -1) return pull_failed(c->image, pulled.failure, out, err);
    out->module_path = xstrdup(pulled.module_path);
    out->image_id = xstrdup(pulled.repo_digest ? pulled.repo_digest : pulled.image_id);
    image_pulled_free(&pulled);
    return 0;
}

static bool image_on_node(void *ctx, const podspec_container_t *c)
{
    cluster_host_t *ch = ctx;
    image_pull_policy_t policy = policy_of(c);
    return image_present(ch->images, c->image, policy);
}

/* --- service links ------------------------------------------------------------ */

static void service_vars(json_t *vars, json_t *svc)
{
    json_t *spec = json_object_get(svc, "spec");
    const char *ip = json_str_at(spec, "clusterIP");
    const char *name = json_str_at(svc, "metadata", "name");
    if (!ip || !name || strcmp(ip, "None") == 0 || !*ip) return;
    char prefix[300];
    size_t n = 0;
    for (const char *p = name; *p && n < sizeof prefix - 1; p++)
        prefix[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    prefix[n] = '\0';
    char key[400], val[400];
    snprintf(key, sizeof key, "%s_SERVICE_HOST", prefix);
    json_object_set_new(vars, key, json_string(ip));
    json_t *ports = json_object_get(spec, "ports");
    size_t i;
    json_t *port;
    json_array_foreach(ports, i, port)
    {
        long long p = json_integer_value(json_object_get(port, "port"));
        const char *proto = json_str_at(port, "protocol");
        const char *pname = json_str_at(port, "name");
        char lproto[16], uproto[16];
        snprintf(uproto, sizeof uproto, "%s", proto ? proto : "TCP");
        size_t k = 0;
        for (; uproto[k]; k++)
            lproto[k] = (char)tolower((unsigned char)uproto[k]);
        lproto[k] = '\0';
        if (i == 0) {
            snprintf(key, sizeof key, "%s_SERVICE_PORT", prefix);
            snprintf(val, sizeof val, "%lld", p);
            json_object_set_new(vars, key, json_string(val));
            snprintf(key, sizeof key, "%s_PORT", prefix);
            snprintf(val, sizeof val, "%s://%s:%lld", lproto, ip, p);
            json_object_set_new(vars, key, json_string(val));
        }
        if (pname && *pname) {
            char upname[200];
            k = 0;
            for (const char *q = pname; *q && k < sizeof upname - 1; q++)
                upname[k++] = *q == '-' ? '_' : (char)toupper((unsigned char)*q);
            upname[k] = '\0';
            snprintf(key, sizeof key, "%s_SERVICE_PORT_%s", prefix, upname);
            snprintf(val, sizeof val, "%lld", p);
            json_object_set_new(vars, key, json_string(val));
        }
        snprintf(key, sizeof key, "%s_PORT_%lld_%s", prefix, p, uproto);
        snprintf(val, sizeof val, "%s://%s:%lld", lproto, ip, p);
        json_object_set_new(vars, key, json_string(val));
        snprintf(key, sizeof key, "%s_PORT_%lld_%s_PROTO", prefix, p, uproto);
        json_object_set_new(vars, key, json_string(lproto));
        snprintf(key, sizeof key, "%s_PORT_%lld_%s_PORT", prefix, p, uproto);
        snprintf(val, sizeof val, "%lld", p);
        json_object_set_new(vars, key, json_string(val));
        snprintf(key, sizeof key, "%s_PORT_%lld_%s_ADDR", prefix, p, uproto);
        json_object_set_new(vars, key, json_string(ip));
    }
}

/* Service links from the watched Services: nothing is asked of the API
 * server once the watch has listed. */
static json_t *service_env_for(cluster_host_t *ch, const char *ns, bool links)
{
    json_t *vars = json_object();
    json_t *list = NULL;
    size_t i;
    json_t *svc;
    if (links && kube_objcache_services(ch->objects, ns, &list, NULL) == 0) {
        json_array_foreach(list, i, svc) service_vars(vars, svc);
    }
    json_decref(list);
    /* The master service is always there (the kubelet adds it to every pod). */
    list = NULL;
    if (kube_objcache_services(ch->objects, "default", &list, NULL) == 0) {
        json_array_foreach(list, i, svc)
        {
            const char *name = json_str_at(svc, "metadata", "name");
            if (name && strcmp(name, "kubernetes") == 0) service_vars(vars, svc);
        }
    }
    json_decref(list);
    return vars;
}

static json_t *service_env(void *ctx, const podspec_t *pod)
{
    json_t *links = json_at(pod->raw, "spec", "enableServiceLinks");
    return service_env_for(ctx, pod->namespace, !json_is_false(links));
}

/* --- runtime classes ---------------------------------------------------------- */

int cluster_host_runtime_handler(cluster_host_t *ch, const char *name, char **handler, err_t *err)
{
    *handler = NULL;
    int64_t now = time_mono_ns();
    pthread_mutex_lock(&ch->lock);
    for (size_t i = 0; i < CLASS_CACHE_MAX; i++) {
        cached_t *c = &ch->classes[i];
        if (c->key[0] && strcmp(c->key, name) == 0 && now - c->at < CLASS_TTL_NS) {
            *handler = xstrdup(json_string_value(c->data));
            pthread_mutex_unlock(&ch->lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&ch->lock);
    char *path = xasprintf("/apis/node.k8s.io/v1/runtimeclasses/%s", name);
    json_t *rc_obj = NULL;
    kube_result_t res;
    err_t gerr;
    int rc = kube_get(ch->client, path, &rc_obj, &res, &gerr);
    free(path);
    if (rc == -1) {
        /* As the kubelet's runtime class manager words them. */
        if (res.status == 404)
            return err_set(err, "runtimeclass.node.k8s.io \"%s\" not found", name);
        return err_set(err, "failed to lookup RuntimeClass %s: %s", name, gerr.msg);
    }
    const char *h = json_str_at(rc_obj, "handler");
    *handler = xstrdup(h ? h : "");
    pthread_mutex_lock(&ch->lock);
    cached_t *slot = NULL;
    for (size_t i = 0; i < CLASS_CACHE_MAX && !slot; i++)
        if (strcmp(ch->classes[i].key, name) == 0) slot = &ch->classes[i];
    if (!slot) slot = &ch->classes[ch->class_next++ % CLASS_CACHE_MAX];
    json_decref(slot->data);
    snprintf(slot->key, sizeof slot->key, "%s", name);
    slot->data = json_string(*handler);
    slot->at = now;
    pthread_mutex_unlock(&ch->lock);
    json_decref(rc_obj);
    return 0;
}

/* --- events and status ------------------------------------------------------ */

void cluster_host_event_for(cluster_host_t *ch, json_t *pod, const char *field_path,
                            const char *type, const char *reason, const char *message)
{
    json_t *meta = json_at(pod, "metadata");
    json_t *ref = json_pack("{s:s, s:s, s:O, s:O, s:O}", "kind", "Pod", "apiVersion", "v1",
                            "namespace", json_at(meta, "namespace"), "name", json_at(meta, "name"),
                            "uid", json_at(meta, "uid"));
    if (field_path) json_object_set_new(ref, "fieldPath", json_string(field_path));
    pod_events_post(ch->events, ref, type, reason, message);
    json_decref(ref);
}

static void event(void *ctx, pod_worker_t *w, const char *type, const char *reason,
                  const char *field_path, const char *message)
{
    cluster_host_t *ch = ctx;
    cluster_host_event_for(ch, pod_worker_spec(w)->raw, field_path, type, reason, message);
}

static void status_changed(void *ctx, pod_worker_t *w)
{
    cluster_host_t *ch = ctx;
    if (ch->status_changed) ch->status_changed(ch->status_ctx, w);
}

/* --- public ---------------------------------------------------------------------- */

cluster_host_t *cluster_host_new(kube_client_t *c, image_store_t *images, pod_events_t *events,
                                 const char *node_name)
{
    cluster_host_t *ch = xcalloc(1, sizeof *ch);
    ch->client = c;
    ch->images = images;
    ch->events = events;
    ch->node = xstrdup(node_name);
    ch->objects = kube_objcache_new(c, NULL);
    ch->tokens = json_object();
    pthread_mutex_init(&ch->lock, NULL);
    pthread_cond_init(&ch->token_cond, NULL);
    return ch;
}

void cluster_host_fill(cluster_host_t *ch, pod_host_t *host,
                       void (*status_cb)(void *ctx, pod_worker_t *w), void *status_ctx)
{
    ch->status_changed = status_cb;
    ch->status_ctx = status_ctx;
    memset(host, 0, sizeof *host);
    host->ctx = ch;
    host->pull = pull;
    host->image_present = image_on_node;
    host->lookup = lookup;
    host->warm = warm;
    host->token = token;
    host->token_warm = token_warm;
    host->service_env = service_env;
    host->status_changed = status_changed;
    host->event = event;
}

void cluster_host_free(cluster_host_t *ch)
{
    if (!ch) return;
    pthread_mutex_lock(&ch->lock);
    while (ch->warming > 0)
        pthread_cond_wait(&ch->token_cond, &ch->lock);
    pthread_mutex_unlock(&ch->lock);
    kube_objcache_free(ch->objects);
    json_decref(ch->tokens);
    for (size_t i = 0; i < CLASS_CACHE_MAX; i++)
        json_decref(ch->classes[i].data);
    pthread_cond_destroy(&ch->token_cond);
    pthread_mutex_destroy(&ch->lock);
    free(ch->node);
    free(ch);
}
