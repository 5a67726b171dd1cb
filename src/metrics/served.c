/* served.c: figures of served wasi:http components (see served.h). A short
 * list per node: one entry per serving container. */
#include "metrics/served.h"
#include "metrics/prom.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

const double metrics_served_bounds[METRICS_SERVED_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30};

enum { CLASS_NONE, CLASS_2XX, CLASS_3XX, CLASS_4XX, CLASS_5XX, CLASSES };
static const char *const class_names[CLASSES] = {"none", "2xx", "3xx", "4xx", "5xx"};

typedef struct served {
    char *uid, *namespace, *pod, *container;
    uint64_t by_class[CLASSES];
    uint64_t errors;
    uint64_t bucket[METRICS_SERVED_BUCKETS]; /* not cumulative */
    uint64_t count;
    double sum;
    uint64_t instances;
    double instantiate_sum;
    struct served *next;
} served_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static served_t *entries;

static served_t *find_locked(const char *uid, const char *container)
{
    for (served_t *e = entries; e; e = e->next)
        if (strcmp(e->uid, uid) == 0 && strcmp(e->container, container) == 0) return e;
    return NULL;
}

void metrics_served_request(const char *pod_uid, const char *namespace, const char *pod,
                            const char *container, int status, bool failed, double seconds,
                            double instantiate_seconds)
{
    int cls = status >= 200 && status < 600 ? status / 100 - 1 : CLASS_NONE;
    if (status >= 100 && status < 200) cls = CLASS_2XX; /* informational: not an error */
    pthread_mutex_lock(&mu);
    served_t *e = find_locked(pod_uid, container);
    if (!e) {
        e = xcalloc(1, sizeof *e);
        e->uid = xstrdup(pod_uid);
        e->namespace = xstrdup(namespace);
        e->pod = xstrdup(pod);
        e->container = xstrdup(container);
        e->next = entries;
        entries = e;
    }
    e->by_class[cls]++;
    if (failed || cls == CLASS_5XX) e->errors++;
    size_t b = 0;
    while (b < METRICS_SERVED_BUCKETS && seconds > metrics_served_bounds[b])
        b++;
    if (b < METRICS_SERVED_BUCKETS) e->bucket[b]++;
    e->count++;
    e->sum += seconds;
    if (instantiate_seconds > 0) {
        e->instances++;
        e->instantiate_sum += instantiate_seconds;
    }
    pthread_mutex_unlock(&mu);
}

bool metrics_served_get(const char *pod_uid, const char *container, metrics_served_t *out)
{
    pthread_mutex_lock(&mu);
    served_t *e = find_locked(pod_uid, container);
    if (e) *out = (metrics_served_t){e->count, e->errors, e->sum};
    pthread_mutex_unlock(&mu);
    return e != NULL;
}

static void labels(strbuf_t *sb, const served_t *e)
{
    prom_label(sb, true, "namespace", e->namespace);
    prom_label(sb, false, "pod", e->pod);
    prom_label(sb, false, "container", e->container);
}

void metrics_render_served(strbuf_t *sb)
{
    pthread_mutex_lock(&mu);
    prom_family(sb, "wasmlet_served_requests_total", "counter",
                "Requests answered by served wasi:http components, by status class.");
    for (served_t *e = entries; e; e = e->next)
        for (int c = 0; c < CLASSES; c++) {
            if (!e->by_class[c]) continue;
            strbuf_puts(sb, "wasmlet_served_requests_total{");
            labels(sb, e);
            strbuf_printf(sb, ",code=\"%s\"} %llu\n", class_names[c],
                          (unsigned long long)e->by_class[c]);
        }
    prom_family(sb, "wasmlet_served_request_errors_total", "counter",
                "Requests a served wasi:http component failed: a trap, a timeout, a refusal "
                "past the in-flight limit, no answer, or a 5xx answer.");
    for (served_t *e = entries; e; e = e->next) {
        strbuf_puts(sb, "wasmlet_served_request_errors_total{");
        labels(sb, e);
        strbuf_printf(sb, "} %llu\n", (unsigned long long)e->errors);
    }
    prom_family(sb, "wasmlet_served_request_duration_seconds", "histogram",
                "Seconds from a request's arrival to the end of its instance.");
    for (served_t *e = entries; e; e = e->next) {
        strbuf_t l = STRBUF_INIT;
        labels(&l, e);
        uint64_t cumulative[METRICS_SERVED_BUCKETS], run = 0;
        for (size_t b = 0; b < METRICS_SERVED_BUCKETS; b++)
            cumulative[b] = run += e->bucket[b];
        prom_histogram(sb, "wasmlet_served_request_duration_seconds", strbuf_str(&l),
                       metrics_served_bounds, METRICS_SERVED_BUCKETS, cumulative, e->count, e->sum);
        strbuf_free(&l);
    }
    prom_family(sb, "wasmlet_served_instantiate_seconds", "summary",
                "Seconds to make the fresh instance of a served request.");
    for (served_t *e = entries; e; e = e->next) {
        strbuf_puts(sb, "wasmlet_served_instantiate_seconds_sum{");
        labels(sb, e);
        strbuf_printf(sb, "} %.9g\nwasmlet_served_instantiate_seconds_count{", e->instantiate_sum);
        labels(sb, e);
        strbuf_printf(sb, "} %llu\n", (unsigned long long)e->instances);
    }
    pthread_mutex_unlock(&mu);
}

void metrics_served_forget_except(const char *const *keep, size_t nkeep)
{
    pthread_mutex_lock(&mu);
    served_t **pp = &entries;
    while (*pp) {
        served_t *e = *pp;
        bool kept = false;
        for (size_t i = 0; i < nkeep && !kept; i++)
            kept = strcmp(keep[i], e->uid) == 0;
        if (kept) {
            pp = &e->next;
            continue;
        }
        *pp = e->next;
        free(e->uid);
        free(e->namespace);
        free(e->pod);
        free(e->container);
        free(e);
    }
    pthread_mutex_unlock(&mu);
}
