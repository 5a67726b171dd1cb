/* registry.c: the process-wide counters (see registry.h).
 *
 * One mutex guards everything. Writers hold it for a few stores; readers
 * for a copy. A lock-free design would save nanoseconds on paths that run
 * once per container start, so plain is better here.
 *
 * Container CPU. A running container's CPU time is the CPU clock of the
 * thread that runs its module (the runtime runs each container on a
 * thread of its own), read through pthread_getcpuclockid. The thread is
 * registered by metrics_container_begin and removed by
 * metrics_container_end, both called on that thread and under the lock,
 * so a reader holding the lock never reads the clock of a thread that has
 * exited. Finished runs add their CPU to the container's total.
 *
 * Memory. A running container's linear memory is sampled on its own
 * thread (the only one that may read its store) after instantiation and
 * then at most every 100 ms while it runs or before it sleeps
 * (metrics_container_memory), and its final size is reported when the run
 * ends (metrics_container_end).
 *
 * Containers of pods that are gone are dropped when the server's sampler
 * calls metrics_forget_pods_except with the current pod list. */
#include "metrics/registry.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double metrics_pod_start_bounds[METRICS_POD_START_BUCKETS] = {
    0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300};

const double metrics_stage_bounds[METRICS_STAGE_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

const char *const metrics_start_stage_names[METRICS_STAGE_COUNT] = {
    "watch", "admission", "sandbox", "volumes", "pull", "load", "instantiate", "status", "node"};

#define SEEN_PODS 1024 /* pod uids remembered for metrics_pod_started */
#define SEEN_UID 64    /* bytes kept of each (a uid is 36) */

typedef struct cusage {
    char *uid, *name;
    bool running;
    pthread_t thread;
    int64_t thread_cpu0; /* the thread's CPU clock when the run began */
    int64_t started_ns;
    uint64_t cpu_done_ns; /* runs that ended */
    bool memory_known;
    uint64_t memory_bytes;
    struct cusage *next;
} cusage_t;

typedef struct http_entry {
    metrics_http_entry_t e;
    struct http_entry *next;
} http_entry_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static metrics_snapshot_t snap;
/* In place, not one allocation per pod: a ring of small strings, each
 * made while its pod started, would pin heap pages long after the pods
 * went. */
static char seen[SEEN_PODS][SEEN_UID];
static size_t seen_next;
static cusage_t *containers;
static http_entry_t *http;

static int64_t thread_cpu_ns(pthread_t t)
{
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(t, &cid) != 0 || clock_gettime(cid, &ts) != 0) return 0;
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

void metrics_pod_started(const char *pod_uid, double seconds)
{
    pthread_mutex_lock(&mu);
    char uid[SEEN_UID];
    snprintf(uid, sizeof uid, "%s", pod_uid);
    for (size_t i = 0; i < SEEN_PODS; i++) {
        if (seen[i][0] && strcmp(seen[i], uid) == 0) {
            pthread_mutex_unlock(&mu);
            return;
        }
    }
    memcpy(seen[seen_next], uid, sizeof uid);
    seen_next = (seen_next + 1) % SEEN_PODS;
    if (seconds < 0) seconds = 0;
    for (size_t i = 0; i < METRICS_POD_START_BUCKETS; i++)
        if (seconds <= metrics_pod_start_bounds[i]) snap.pod_start_bucket[i]++;
    snap.pod_start_count++;
    snap.pod_start_sum += seconds;
    pthread_mutex_unlock(&mu);
}

void metrics_pod_start_trace(const double seconds[METRICS_STAGE_COUNT],
                             const bool have[METRICS_STAGE_COUNT])
{
    pthread_mutex_lock(&mu);
    for (int s = 0; s < METRICS_STAGE_COUNT; s++) {
        if (!have[s]) continue;
        double v = seconds[s] < 0 ? 0 : seconds[s];
        for (size_t i = 0; i < METRICS_STAGE_BUCKETS; i++)
            if (v <= metrics_stage_bounds[i]) snap.stage_bucket[s][i]++;
        snap.stage_count[s]++;
        snap.stage_sum[s] += v;
    }
    pthread_mutex_unlock(&mu);
}

void metrics_module_loaded(int source)
{
    if (source < 0 || source >= METRICS_LOAD_SOURCES) return;
    pthread_mutex_lock(&mu);
    snap.module_loads[source]++;
    pthread_mutex_unlock(&mu);
}

static cusage_t *find_locked(const char *uid, const char *name)
{
    lock_assert_held(&mu);
    for (cusage_t *c = containers; c; c = c->next)
        if (strcmp(c->uid, uid) == 0 && strcmp(c->name, name) == 0) return c;
    return NULL;
}

void metrics_container_begin(const char *pod_uid, const char *container)
{
    pthread_t self = pthread_self();
    int64_t cpu0 = thread_cpu_ns(self);
    pthread_mutex_lock(&mu);
    cusage_t *c = find_locked(pod_uid, container);
    if (!c) {
        c = xcalloc(1, sizeof *c);
        c->uid = xstrdup(pod_uid);
        c->name = xstrdup(container);
        c->next = containers;
        containers = c;
    }
    c->running = true;
    c->thread = self;
    c->thread_cpu0 = cpu0;
    c->started_ns = time_now_ns();
    snap.container_runs++;
    pthread_mutex_unlock(&mu);
}

void metrics_container_end(const char *pod_uid, const char *container, uint64_t cpu_ns,
                           uint64_t memory_bytes)
{
    pthread_mutex_lock(&mu);
    cusage_t *c = find_locked(pod_uid, container);
    if (c) {
        c->running = false;
        c->cpu_done_ns += cpu_ns;
        c->memory_known = true;
        c->memory_bytes = memory_bytes;
    }
    pthread_mutex_unlock(&mu);
}

void metrics_container_memory(const char *pod_uid, const char *container, uint64_t bytes)
{
    pthread_mutex_lock(&mu);
    cusage_t *c = find_locked(pod_uid, container);
    if (c && c->running) {
        c->memory_known = true;
        c->memory_bytes = bytes;
    }
    pthread_mutex_unlock(&mu);
}

void metrics_cert_expiry(metrics_cert_t which, int64_t not_after_ns)
{
    pthread_mutex_lock(&mu);
    snap.cert_not_after[which == METRICS_CERT_SERVING] = not_after_ns;
    pthread_mutex_unlock(&mu);
}

void metrics_cert_renewal(metrics_cert_t which, bool ok)
{
    pthread_mutex_lock(&mu);
    snap.cert_renewals[which == METRICS_CERT_SERVING][ok ? 1 : 0]++;
    pthread_mutex_unlock(&mu);
}

void metrics_http_request(const char *path_class, const char *method, int status, double seconds)
{
    pthread_mutex_lock(&mu);
    http_entry_t *h = http;
    while (h && !(h->e.status == status && strcmp(h->e.path_class, path_class) == 0 &&
                  strcmp(h->e.method, method) == 0))
        h = h->next;
    if (!h) {
        h = xcalloc(1, sizeof *h);
        snprintf(h->e.path_class, sizeof h->e.path_class, "%s", path_class);
        snprintf(h->e.method, sizeof h->e.method, "%s", method);
        h->e.status = status;
        h->next = http;
        http = h;
    }
    h->e.count++;
    h->e.seconds_sum += seconds;
    pthread_mutex_unlock(&mu);
}

void metrics_snapshot(metrics_snapshot_t *out)
{
    pthread_mutex_lock(&mu);
    *out = snap;
    pthread_mutex_unlock(&mu);
}

metrics_http_entry_t *metrics_http_entries(size_t *n)
{
    pthread_mutex_lock(&mu);
    size_t count = 0;
    for (http_entry_t *h = http; h; h = h->next)
        count++;
    metrics_http_entry_t *out = xcalloc(count ? count : 1, sizeof *out);
    size_t i = count;
    /* Oldest first: the list is newest first. */
    for (http_entry_t *h = http; h; h = h->next)
        out[--i] = h->e;
    pthread_mutex_unlock(&mu);
    *n = count;
    return out;
}

bool metrics_container_usage(const char *pod_uid, const char *container, metrics_usage_t *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&mu);
    cusage_t *c = find_locked(pod_uid, container);
    if (c) {
        out->running = c->running;
        out->started_ns = c->started_ns;
        out->cpu_ns = c->cpu_done_ns;
        if (c->running) {
            int64_t now = thread_cpu_ns(c->thread);
            if (now > c->thread_cpu0) out->cpu_ns += (uint64_t)(now - c->thread_cpu0);
        }
        out->memory_known = c->memory_known;
        out->memory_bytes = c->memory_bytes;
    }
    pthread_mutex_unlock(&mu);
    return c != NULL;
}

static void cusage_free(cusage_t *c)
{
    free(c->uid);
    free(c->name);
    free(c);
}

void metrics_forget_pods_except(const char *const *keep, size_t nkeep)
{
    pthread_mutex_lock(&mu);
    cusage_t **pp = &containers;
    while (*pp) {
        cusage_t *c = *pp;
        bool kept = c->running;
        for (size_t i = 0; i < nkeep && !kept; i++)
            kept = strcmp(keep[i], c->uid) == 0;
        if (kept) {
            pp = &c->next;
        } else {
            *pp = c->next;
            cusage_free(c);
        }
    }
    pthread_mutex_unlock(&mu);
}

void metrics_reset(void)
{
    pthread_mutex_lock(&mu);
    memset(&snap, 0, sizeof snap);
    memset(seen, 0, sizeof seen);
    seen_next = 0;
    while (containers) {
        cusage_t *c = containers;
        containers = c->next;
        cusage_free(c);
    }
    while (http) {
        http_entry_t *h = http;
        http = h->next;
        free(h);
    }
    pthread_mutex_unlock(&mu);
}
