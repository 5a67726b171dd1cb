/* objcache.c: watched copies of the ConfigMaps, Secrets and Services a
 * node's pods reference (see objcache.h for the scoping and freshness).
 *
 * An entry is one watch. Its life: created by the first read and put in the
 * table (one reference), its thread started (a second reference, dropped
 * when the thread ends); removed from the table when idle or at free, which
 * sets its stop flag and drops the table's reference. Whoever drops the
 * last reference frees it. State of an entry, all under oc->mu:
 *   listed=false, failed=false  first list in flight: readers wait
 *   listed=false, failed=true   first list failed: readers use a GET
 *   listed=true                 obj / services are the watched truth */
#include "kube/objcache.h"
#include "kube/watch.h"
#include "util/diag.h"
#include "util/json.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OBJCACHE_RELIST_FIRST_MS 20 /* the reflector's first back-off */

#define KIND_SERVICES 2 /* internal: the one cluster-wide Service watch */

typedef struct entry {
    struct entry *next;
    kube_objcache_t *oc;
    int kind;
    char *ns, *name; /* NULL for the Service watch */
    char *list_path, *field_selector;
    atomic_bool stop;
    int refs;
    bool listed, failed;
    json_t *obj;      /* ConfigMap/Secret: the object, or NULL when absent */
    json_t *services; /* Service watch: "ns/name" -> Service */
    int64_t last_read;
} entry_t;

struct kube_objcache {
    kube_client_t *client;
    kube_objcache_opts_t opts;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* broadcast on every list, failure and thread end */
    entry_t *entries;
    int threads; /* watch threads still running */
    int64_t last_sweep;
    kube_objcache_stats_t stats;
};

static const char *kind_plural(int kind)
{
    return kind == KUBE_OBJ_SECRET      ? "secrets"
           : kind == KUBE_OBJ_CONFIGMAP ? "configmaps"
                                        : "services";
}

static void entry_unref_locked(kube_objcache_t *oc, entry_t *e)
{
    lock_assert_held(&oc->mu);
    if (--e->refs > 0) return;
    json_decref(e->obj);
    json_decref(e->services);
    free(e->ns);
    free(e->name);
    free(e->list_path);
    free(e->field_selector);
    free(e);
}

static char *service_key(json_t *svc)
{
    const char *ns = json_str_at(svc, "metadata", "namespace");
    const char *name = json_str_at(svc, "metadata", "name");
    if (!ns || !name) return NULL;
    return xasprintf("%s/%s", ns, name);
}

static int on_list(void *ctx, json_t *items, const char *rv)
{
    (void)rv;
    entry_t *e = ctx;
    kube_objcache_t *oc = e->oc;
    pthread_mutex_lock(&oc->mu);
    if (e->kind == KIND_SERVICES) {
        json_decref(e->services);
        e->services = json_object();
        size_t i;
        json_t *svc;
        json_array_foreach(items, i, svc)
        {
            char *key = service_key(svc);
            if (key) json_object_set(e->services, key, svc);
            free(key);
        }
    } else {
        json_decref(e->obj);
        e->obj = NULL;
        size_t i;
        json_t *obj;
        json_array_foreach(items, i, obj)
        {
            const char *name = json_str_at(obj, "metadata", "name");
            if (name && strcmp(name, e->name) == 0) e->obj = json_incref(obj);
        }
    }
    e->listed = true;
    e->failed = false;
    pthread_cond_broadcast(&oc->cond);
    pthread_mutex_unlock(&oc->mu);
    return 0;
}

static int on_event(void *ctx, kube_event_type_t type, json_t *obj)
{
    entry_t *e = ctx;
    kube_objcache_t *oc = e->oc;
    pthread_mutex_lock(&oc->mu);
    if (e->kind == KIND_SERVICES) {
        char *key = service_key(obj);
        if (key) {
            if (type == KUBE_EVENT_DELETED)
                json_object_del(e->services, key);
            else
                json_object_set(e->services, key, obj);
        }
        free(key);
    } else {
        const char *name = json_str_at(obj, "metadata", "name");
        if (name && strcmp(name, e->name) == 0) {
            json_decref(e->obj);
            e->obj = type == KUBE_EVENT_DELETED ? NULL : json_incref(obj);
        }
    }
    pthread_mutex_unlock(&oc->mu);
    return 0;
}

static void on_list_error(void *ctx, const err_t *err)
{
    (void)err;
    entry_t *e = ctx;
    pthread_mutex_lock(&e->oc->mu);
    if (!e->listed) e->failed = true;
    pthread_cond_broadcast(&e->oc->cond);
    pthread_mutex_unlock(&e->oc->mu);
}

static void *watch_thread(void *arg)
{
    thread_set_name("object-watch");
    entry_t *e = arg;
    kube_objcache_t *oc = e->oc;
    kube_reflector_opts_t ro = {
        .list_path = e->list_path,
        .field_selector = e->field_selector,
        .watch_timeout_s = oc->opts.watch_timeout_s,
        /* A first list refused because the Node authorizer has not yet
         * seen the pod that references the object lasts milliseconds; the
         * pod starts reading it meanwhile fall back to GETs, so relist
         * soon (doubling from here up to the cap). */
        .backoff_initial_ms = OBJCACHE_RELIST_FIRST_MS,
        .backoff_max_ms = oc->opts.backoff_max_ms,
    };
    kube_reflector_handlers_t h = {
        .on_list = on_list, .on_event = on_event, .on_list_error = on_list_error};
    err_t err;
    if (kube_reflector_run(oc->client, &ro, &h, e, &e->stop, &err) == -1)
        diag_warn("watch of %s: %s", e->list_path, err.msg);
    pthread_mutex_lock(&oc->mu);
    oc->threads--;
    oc->stats.watches--;
    entry_unref_locked(oc, e);
    pthread_cond_broadcast(&oc->cond);
    pthread_mutex_unlock(&oc->mu);
    return NULL;
}

/* Stops and forgets the watches nobody read for idle_ttl_s, at most once a
 * minute (a read is the only clock this cache has). */
static void sweep_idle_locked(kube_objcache_t *oc, int64_t now)
{
    lock_assert_held(&oc->mu);
    if (now - oc->last_sweep < 60 * NS_PER_SEC && oc->last_sweep) return;
    oc->last_sweep = now;
    int64_t ttl = (int64_t)oc->opts.idle_ttl_s * NS_PER_SEC;
    for (entry_t **p = &oc->entries; *p;) {
        entry_t *e = *p;
        if (e->kind != KIND_SERVICES && now - e->last_read > ttl) {
            *p = e->next;
            atomic_store(&e->stop, true);
            entry_unref_locked(oc, e);
        } else {
            p = &e->next;
        }
    }
}

static entry_t *find_locked(kube_objcache_t *oc, int kind, const char *ns, const char *name)
{
    lock_assert_held(&oc->mu);
    for (entry_t *e = oc->entries; e; e = e->next) {
        if (e->kind != kind) continue;
        if (kind == KIND_SERVICES) return e;
        if (strcmp(e->ns, ns) == 0 && strcmp(e->name, name) == 0) return e;
    }
    return NULL;
}

/* A new entry with its thread running, in the table; NULL when the thread
 * cannot start (the caller falls back to a direct request). */
static entry_t *start_locked(kube_objcache_t *oc, int kind, const char *ns, const char *name)
{
    lock_assert_held(&oc->mu);
    entry_t *e = xcalloc(1, sizeof *e);
    e->oc = oc;
    e->kind = kind;
    if (kind == KIND_SERVICES) {
        e->list_path = xstrdup("/api/v1/services");
    } else {
        e->ns = xstrdup(ns);
        e->name = xstrdup(name);
        e->list_path = xasprintf("/api/v1/namespaces/%s/%s", ns, kind_plural(kind));
        e->field_selector = xasprintf("metadata.name=%s", name);
    }
    atomic_init(&e->stop, false);
    e->refs = 2; /* the table's and the thread's */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t t;
    int rc = pthread_create(&t, &attr, watch_thread, e);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        e->refs = 1;
        entry_unref_locked(oc, e);
        return NULL;
    }
    oc->threads++;
    oc->stats.watches++;
    oc->stats.started++;
    e->next = oc->entries;
    oc->entries = e;
    return e;
}

/* The entry for kind/ns/name, started if new, once it has listed; NULL when
 * it has not (its first list failed or did not come in time). */
/* The entry for kind/ns/name, started if new, marked read now; NULL when
 * its watch cannot start. */
static entry_t *read_entry_locked(kube_objcache_t *oc, int kind, const char *ns, const char *name,
                                  int64_t now)
{
    lock_assert_held(&oc->mu);
    sweep_idle_locked(oc, now);
    entry_t *e = find_locked(oc, kind, ns, name);
    if (!e) e = start_locked(oc, kind, ns, name);
    if (e) e->last_read = now;
    return e;
}

static entry_t *listed_entry_locked(kube_objcache_t *oc, int kind, const char *ns, const char *name)
{
    lock_assert_held(&oc->mu);
    int64_t now = time_mono_ns();
    entry_t *e = read_entry_locked(oc, kind, ns, name, now);
    if (!e) return NULL;
    int64_t deadline = now + (int64_t)oc->opts.first_list_ms * NS_PER_MS;
    while (!e->listed && !e->failed && cond_wait_until(&oc->cond, &oc->mu, deadline))
        ;
    return e->listed ? e : NULL;
}

void kube_objcache_warm(kube_objcache_t *oc, kube_obj_kind_t kind, const char *ns, const char *name)
{
    pthread_mutex_lock(&oc->mu);
    read_entry_locked(oc, (int)kind, ns, name, time_mono_ns());
    pthread_mutex_unlock(&oc->mu);
}

int kube_objcache_get(kube_objcache_t *oc, kube_obj_kind_t kind, const char *ns, const char *name,
                      json_t **out, err_t *err)
{
    *out = NULL;
    pthread_mutex_lock(&oc->mu);
    entry_t *e = listed_entry_locked(oc, (int)kind, ns, name);
    if (e) {
        *out = e->obj ? json_deep_copy(e->obj) : NULL;
        oc->stats.hits++;
        pthread_mutex_unlock(&oc->mu);
        return 0;
    }
    oc->stats.fallbacks++;
    pthread_mutex_unlock(&oc->mu);
    char *path = xasprintf("/api/v1/namespaces/%s/%s/%s", ns, kind_plural((int)kind), name);
    kube_result_t res;
    int rc = kube_get(oc->client, path, out, &res, err);
    free(path);
    if (rc == -1 && res.status == 404) {
        *out = NULL;
        return 0;
    }
    return rc;
}

int kube_objcache_services(kube_objcache_t *oc, const char *ns, json_t **out, err_t *err)
{
    *out = NULL;
    pthread_mutex_lock(&oc->mu);
    entry_t *e = listed_entry_locked(oc, KIND_SERVICES, NULL, NULL);
    if (e) {
        json_t *list = json_array();
        const char *key;
        json_t *svc;
        json_object_foreach(e->services, key, svc)
        {
            const char *sns = json_str_at(svc, "metadata", "namespace");
            if (sns && strcmp(sns, ns) == 0) json_array_append_new(list, json_deep_copy(svc));
        }
        oc->stats.hits++;
        pthread_mutex_unlock(&oc->mu);
        *out = list;
        return 0;
    }
    oc->stats.fallbacks++;
    pthread_mutex_unlock(&oc->mu);
    char *path = xasprintf("/api/v1/namespaces/%s/services", ns);
    json_t *obj = NULL;
    kube_result_t res;
    int rc = kube_get(oc->client, path, &obj, &res, err);
    free(path);
    if (rc == -1) return -1;
    json_t *items = json_object_get(obj, "items");
    *out = json_is_array(items) ? json_incref(items) : json_array();
    json_decref(obj);
    return 0;
}

kube_objcache_t *kube_objcache_new(kube_client_t *c, const kube_objcache_opts_t *opts)
{
    kube_objcache_t *oc = xcalloc(1, sizeof *oc);
    oc->client = c;
    if (opts) oc->opts = *opts;
    if (oc->opts.idle_ttl_s <= 0) oc->opts.idle_ttl_s = 600;
    if (oc->opts.first_list_ms <= 0) oc->opts.first_list_ms = 10000;
    pthread_mutex_init(&oc->mu, NULL);
    cond_init_monotonic(&oc->cond);
    return oc;
}

void kube_objcache_free(kube_objcache_t *oc)
{
    if (!oc) return;
    pthread_mutex_lock(&oc->mu);
    while (oc->entries) {
        entry_t *e = oc->entries;
        oc->entries = e->next;
        atomic_store(&e->stop, true);
        entry_unref_locked(oc, e);
    }
    while (oc->threads > 0)
        cond_wait_until(&oc->cond, &oc->mu, SYNC_FOREVER);
    pthread_mutex_unlock(&oc->mu);
    pthread_mutex_destroy(&oc->mu);
    pthread_cond_destroy(&oc->cond);
    free(oc);
}

void kube_objcache_stats(kube_objcache_t *oc, kube_objcache_stats_t *out)
{
    pthread_mutex_lock(&oc->mu);
    *out = oc->stats;
    pthread_mutex_unlock(&oc->mu);
}
