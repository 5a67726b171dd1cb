/* events.c: posting Events.
 *
 * Workers call pod_events_post from wherever a transition happens; the
 * Event is queued and a thread of its own posts it, so a slow or absent
 * API server never holds up a container. The queue is bounded (1000): past
 * that the oldest Events are dropped and counted, because Events are
 * advice for humans, not state. The same reason and message for the same
 * object within ten minutes is sent again as a count increase on the first
 * Event (a PATCH), as the kubelet's event correlator does, so a crash loop
 * shows one BackOff Event with a count rather than hundreds.
 *
 * Events yield to the node's other API requests: while EVENTS_YIELD_BUSY
 * or more are in flight (a burst of pod starts: TokenRequests and status
 * writes, which the pods wait for), an Event waits, at most until it is
 * EVENTS_YIELD_MAX_NS old, so a burst's Events follow it instead of
 * competing with it for the API server. */
#include "pod/events.h"
#include "util/diag.h"
#include "util/heap.h"
#include "util/strbuf.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUEUE_MAX 1000
#define SEEN_MAX 512
#define CORRELATE_NS (600 * NS_PER_SEC)
#define EVENTS_YIELD_BUSY 4
#define EVENTS_YIELD_MAX_NS (2 * NS_PER_SEC)
#define EVENTS_YIELD_POLL_MS 10
#define EVENTS_IDLE_MS 1000

typedef struct pending {
    json_t *event;
    int64_t queued_at; /* mono ns */
    char key[512];
    struct pending *next;
} pending_t;

typedef struct seen {
    char key[512];
    char ns[128], name[256];
    int count;
    int64_t at;
} seen_t;

struct pod_events {
    kube_client_t *client;
    char *node;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pending_t *head, *tail;
    size_t queued;
    size_t dropped;
    bool quit;
    seen_t seen[SEEN_MAX];
    size_t seen_next;
};

static void post_one(pod_events_t *ev, pending_t *p)
{
    const char *ns =
        json_string_value(json_object_get(json_object_get(p->event, "metadata"), "namespace"));
    int64_t now = time_mono_ns();
    seen_t *hit = NULL;
    for (size_t i = 0; i < SEEN_MAX; i++)
        if (ev->seen[i].count && strcmp(ev->seen[i].key, p->key) == 0 &&
            now - ev->seen[i].at < CORRELATE_NS)
            hit = &ev->seen[i];
    kube_result_t res;
    err_t err;
    char ts[40];
    time_format_rfc3339(ts, sizeof ts, time_now_ns());
    if (hit) {
        char *path = xasprintf("/api/v1/namespaces/%s/events/%s", hit->ns, hit->name);
        json_t *patch = json_pack("{s:i, s:s}", "count", hit->count + 1, "lastTimestamp", ts);
        if (kube_patch(ev->client, path, KUBE_PATCH_MERGE, patch, NULL, &res, &err) == 0) {
            hit->count++;
            hit->at = now;
        }
        json_decref(patch);
        free(path);
        return;
    }
    char *path = xasprintf("/api/v1/namespaces/%s/events", ns ? ns : "default");
    json_t *out = NULL;
    if (kube_create(ev->client, path, p->event, &out, &res, &err) == 0) {
        seen_t *s = &ev->seen[ev->seen_next++ % SEEN_MAX];
        snprintf(s->key, sizeof s->key, "%s", p->key);
        snprintf(s->ns, sizeof s->ns, "%s", ns ? ns : "default");
        const char *name =
            json_string_value(json_object_get(json_object_get(out, "metadata"), "name"));
        snprintf(s->name, sizeof s->name, "%s", name ? name : "");
        s->count = 1;
        s->at = now;
    } else {
        diag_debug("event not posted: %s", err.msg);
    }
    json_decref(out);
    free(path);
}

static void *events_main(void *arg)
{
    thread_set_name("events");
    pod_events_t *ev = arg;
    pthread_mutex_lock(&ev->lock);
    for (;;) {
        while (!ev->head && !ev->quit) {
            /* Idle: a trim may be waiting for this thread's malloc cache,
             * so the wait ends every EVENTS_IDLE_MS to look. Released
             * under the lock, as the status writers do: once a trim, a
             * fraction of a millisecond. */
            heap_release_if_asked();
            cond_wait_until(&ev->cond, &ev->lock, deadline_after_ms(EVENTS_IDLE_MS));
        }
        if (!ev->head) break;
        pending_t *p = ev->head;
        ev->head = p->next;
        if (!ev->head) ev->tail = NULL;
        ev->queued--;
        while (!ev->quit && kube_client_busy(ev->client) >= EVENTS_YIELD_BUSY &&
               time_mono_ns() - p->queued_at < EVENTS_YIELD_MAX_NS) {
            pthread_mutex_unlock(&ev->lock);
            time_sleep_ms(EVENTS_YIELD_POLL_MS);
            pthread_mutex_lock(&ev->lock);
        }
        pthread_mutex_unlock(&ev->lock);
        post_one(ev, p);
        json_decref(p->event);
        free(p);
        pthread_mutex_lock(&ev->lock);
    }
    pthread_mutex_unlock(&ev->lock);
    return NULL;
}

pod_events_t *pod_events_start(kube_client_t *c, const char *node_name)
{
    pod_events_t *ev = xcalloc(1, sizeof *ev);
    ev->client = c;
    ev->node = xstrdup(node_name);
    pthread_mutex_init(&ev->lock, NULL);
    cond_init_monotonic(&ev->cond);
    if (pthread_create(&ev->thread, NULL, events_main, ev) != 0) {
        free(ev->node);
        free(ev);
        return NULL;
    }
    return ev;
}

void pod_events_post(pod_events_t *ev, json_t *ref, const char *type, const char *reason,
                     const char *message)
{
    if (!ev) return;
    static atomic_uint seq;
    char ts[40], micro[40];
    int64_t now = time_now_ns();
    time_format_rfc3339(ts, sizeof ts, now);
    time_format_rfc3339nano(micro, sizeof micro, now);
    micro[26] = 'Z';
    micro[27] = '\0';
    const char *ns = json_string_value(json_object_get(ref, "namespace"));
    const char *name = json_string_value(json_object_get(ref, "name"));
    char *ev_name = xasprintf("%s.%llx%04x", name ? name : "node", (unsigned long long)now,
                              atomic_fetch_add(&seq, 1) & 0xffff);
    json_t *event = json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:O, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:i, s:s, s:s, "
        "s:s}",
        "apiVersion", "v1", "kind", "Event", "metadata", "name", ev_name, "namespace",
        ns ? ns : "default", "involvedObject", ref, "reason", reason, "message", message, "type",
        type, "source", "component", "kubelet", "host", ev->node, "firstTimestamp", ts,
        "lastTimestamp", ts, "count", 1, "reportingComponent", "kubelet", "reportingInstance",
        ev->node, "eventTime", micro);
    /* eventTime belongs to events.k8s.io; core/v1 takes firstTimestamp. */
    json_object_del(event, "eventTime");
    free(ev_name);
    pending_t *p = xcalloc(1, sizeof *p);
    p->event = event;
    p->queued_at = time_mono_ns();
    const char *fp = json_string_value(json_object_get(ref, "fieldPath"));
    snprintf(p->key, sizeof p->key, "%s/%s/%s/%s/%s", ns ? ns : "", name ? name : "", fp ? fp : "",
             reason, message);
    pthread_mutex_lock(&ev->lock);
    if (ev->queued >= QUEUE_MAX) {
        pending_t *old = ev->head;
        ev->head = old->next;
        if (!ev->head) ev->tail = NULL;
        json_decref(old->event);
        free(old);
        ev->queued--;
        ev->dropped++;
    }
    if (ev->tail)
        ev->tail->next = p;
    else
        ev->head = p;
    ev->tail = p;
    ev->queued++;
    pthread_cond_signal(&ev->cond);
    pthread_mutex_unlock(&ev->lock);
}

void pod_events_stop(pod_events_t *ev, long timeout_ms)
{
    if (!ev) return;
    int64_t until = time_mono_ns() + timeout_ms * NS_PER_MS;
    for (;;) {
        pthread_mutex_lock(&ev->lock);
        bool empty = ev->head == NULL;
        pthread_mutex_unlock(&ev->lock);
        if (empty || time_mono_ns() >= until) break;
        time_sleep_ms(20);
    }
    pthread_mutex_lock(&ev->lock);
    ev->quit = true;
    /* Whatever is still queued is dropped. */
    while (ev->head) {
        pending_t *p = ev->head;
        ev->head = p->next;
        json_decref(p->event);
        free(p);
    }
    ev->tail = NULL;
    pthread_cond_signal(&ev->cond);
    pthread_mutex_unlock(&ev->lock);
    pthread_join(ev->thread, NULL);
    pthread_cond_destroy(&ev->cond);
    pthread_mutex_destroy(&ev->lock);
    free(ev->node);
    free(ev);
}
