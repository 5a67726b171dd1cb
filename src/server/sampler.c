/* sampler.c: the CPU sampler thread and its rate snapshots (see
 * sampler.h).
 *
 * The sampler keeps the previous raw sample (key, time, CPU counter) to
 * itself; each new sample is compared with it key by key, and the rates of
 * the keys present in both become the new snapshot. A key seen only now
 * (a new pod) has no rate until the next sample, as before; a key no longer
 * seen (a pod gone) drops out. Snapshots are reference-counted: published
 * under mu, replaced by pointer, freed by the last reader to release one. */
#include "server/sampler.h"
#include "metrics/registry.h"
#include "metrics/served.h"
#include "util/heap.h"
#include "util/proc.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- raw samples and rate snapshots ------------------------------------------- */

typedef struct reading {
    char *key;
    int64_t t;  /* mono ns */
    uint64_t v; /* CPU ns */
} reading_t;

typedef struct readings {
    reading_t *items;
    size_t n, cap;
} readings_t;

typedef struct rate {
    char *key;
    uint64_t nanocores;
} rate_t;

struct server_rates {
    atomic_int refs;
    rate_t *items;
    size_t n;
};

struct server_sampler {
    const server_pods_t *pods;
    int64_t interval_ns;
    readings_t prev; /* sampler thread only */
    pthread_t thread;
    pthread_mutex_t mu; /* guards latest and quit */
    pthread_cond_t cond;
    server_rates_t *latest;
    bool quit;
};

static void readings_put(readings_t *r, const char *key, int64_t t, uint64_t v)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->items[i].key, key) == 0) {
            r->items[i].v += v; /* the same key twice sums (a pod's containers) */
            return;
        }
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->items = xrealloc(r->items, r->cap * sizeof *r->items);
    }
    r->items[r->n++] = (reading_t){xstrdup(key), t, v};
}

static void readings_free(readings_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->items[i].key);
    free(r->items);
    memset(r, 0, sizeof *r);
}

static const reading_t *readings_find(const readings_t *r, const char *key)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->items[i].key, key) == 0) return &r->items[i];
    return NULL;
}

static void rates_free(server_rates_t *rt)
{
    for (size_t i = 0; i < rt->n; i++)
        free(rt->items[i].key);
    free(rt->items);
    free(rt);
}

void server_rates_release(server_rates_t *rt)
{
    if (rt && atomic_fetch_sub(&rt->refs, 1) == 1) rates_free(rt);
}

bool server_rates_get(const server_rates_t *rt, const char *key, uint64_t *nanocores)
{
    for (size_t i = 0; i < rt->n; i++) {
        if (strcmp(rt->items[i].key, key) == 0) {
            *nanocores = rt->items[i].nanocores;
            return true;
        }
    }
    return false;
}

/* The rates between prev and cur, for the keys in both. */
static server_rates_t *rates_between(const readings_t *prev, const readings_t *cur)
{
    server_rates_t *rt = xcalloc(1, sizeof *rt);
    atomic_init(&rt->refs, 1);
    rt->items = xcalloc(cur->n + 1, sizeof *rt->items);
    for (size_t i = 0; i < cur->n; i++) {
        const reading_t *b = &cur->items[i], *a = readings_find(prev, b->key);
        if (!a || b->t <= a->t || b->v < a->v) continue;
        double cores = (double)(b->v - a->v) / (double)(b->t - a->t);
        rt->items[rt->n++] = (rate_t){xstrdup(b->key), (uint64_t)(cores * 1e9)};
    }
    return rt;
}

/* One sample: the readings of now, the snapshot they give with the last
 * ones, and the registry told which pods exist. No lock is held while
 * the provider is asked. */
static void sample(server_sampler_t *s)
{
    server_pod_samples_t pods = SERVER_POD_SAMPLES_INIT;
    bool have_pods = s->pods->pod_samples && s->pods->pod_samples(s->pods->ctx, &pods) == 0;
    int64_t t = time_mono_ns();
    readings_t cur = {0};
    readings_put(&cur, "node", t, proc_node_cpu_ns());
    readings_put(&cur, "kubelet", t, proc_self_cpu_ns());
    for (size_t i = 0; have_pods && i < pods.n; i++) {
        const server_pod_sample_t *p = &pods.items[i];
        for (size_t j = 0; j < p->containers.len; j++) {
            metrics_usage_t u;
            if (!metrics_container_usage(p->uid, p->containers.items[j], &u)) continue;
            char key[512];
            snprintf(key, sizeof key, "c/%s/%s", p->uid, p->containers.items[j]);
            readings_put(&cur, key, t, u.cpu_ns);
            snprintf(key, sizeof key, "p/%s", p->uid);
            readings_put(&cur, key, t, u.cpu_ns);
        }
    }
    server_rates_t *rt = rates_between(&s->prev, &cur);
    readings_free(&s->prev);
    s->prev = cur;
    pthread_mutex_lock(&s->mu);
    server_rates_t *old = s->latest;
    s->latest = rt;
    pthread_mutex_unlock(&s->mu);
    server_rates_release(old);
    if (have_pods) {
        const char **uids = xcalloc(pods.n + 1, sizeof *uids);
        for (size_t i = 0; i < pods.n; i++)
            uids[i] = pods.items[i].uid;
        metrics_forget_pods_except(uids, pods.n);
        metrics_served_forget_except(uids, pods.n);
        free(uids);
    }
    server_pod_samples_free(&pods);
}

static void *sampler_main(void *arg)
{
    thread_set_name("stats-sampler");
    server_sampler_t *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->quit) {
        pthread_mutex_unlock(&s->mu);
        /* A fixed rate, as a periodic timer: the next sample is due an
         * interval after this one began, however long this one takes. */
        int64_t next = time_mono_ns() + s->interval_ns;
        sample(s);
        heap_release_if_asked(); /* a trim waits for each thread's malloc cache */
        pthread_mutex_lock(&s->mu);
        while (!s->quit && cond_wait_until(&s->cond, &s->mu, next))
            ;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

server_sampler_t *server_sampler_start(const server_pods_t *pods, int64_t interval_ms)
{
    server_sampler_t *s = xcalloc(1, sizeof *s);
    s->pods = pods;
    s->interval_ns = interval_ms * NS_PER_MS;
    s->latest = xcalloc(1, sizeof *s->latest);
    atomic_init(&s->latest->refs, 1);
    pthread_mutex_init(&s->mu, NULL);
    cond_init_monotonic(&s->cond);
    if (pthread_create(&s->thread, NULL, sampler_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cond);
        server_rates_release(s->latest);
        free(s);
        return NULL;
    }
    return s;
}

void server_sampler_stop(server_sampler_t *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->quit = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    readings_free(&s->prev);
    server_rates_release(s->latest);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s);
}

server_rates_t *server_sampler_rates(server_sampler_t *s)
{
    pthread_mutex_lock(&s->mu);
    server_rates_t *rt = s->latest;
    atomic_fetch_add(&rt->refs, 1);
    pthread_mutex_unlock(&s->mu);
    return rt;
}
