/* heartbeat.c: the Lease and the node status, kept fresh.
 *
 * The kubelet's two signals of life: the Lease in kube-node-lease, renewed
 * every 10 s (leaseDurationSeconds 40, so the node lifecycle controller
 * marks the node NotReady after 40 s without a renewal), and the node
 * status, recomputed every 10 s and posted when it changed or a minute has
 * passed since the last post. One thread does both; a failed request is
 * retried at the next tick, and an API server outage only delays them. */
#include "node/node.h"
#include "util/diag.h"
#include "util/heap.h"
#include "util/json.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 10000
#define STATUS_REPORT_NS (60 * NS_PER_SEC)

struct node_heartbeat {
    kube_client_t *client;
    const node_config_t *cfg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool quit, paused;
};

static void micro_time(char *buf, size_t len)
{
    char full[40];
    time_format_rfc3339nano(full, sizeof full, time_now_ns());
    /* MicroTime: six fractional digits. */
    snprintf(buf, len, "%.26sZ", full);
}

static int renew_lease(node_heartbeat_t *hb, err_t *err)
{
    const node_config_t *cfg = hb->cfg;
    char now[40];
    micro_time(now, sizeof now);
    char *path =
        xasprintf("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/%s", cfg->name);
    kube_result_t res;
    json_t *patch = json_pack("{s:{s:s, s:i, s:s}}", "spec", "holderIdentity", cfg->name,
                              "leaseDurationSeconds", 40, "renewTime", now);
    int rc = kube_patch(hb->client, path, KUBE_PATCH_MERGE, patch, NULL, &res, err);
    json_decref(patch);
    if (rc == -1 && res.status == 404) {
        /* First heartbeat: create the Lease, owned by the Node so that it
         * goes with it. */
        char *node_path = xasprintf("/api/v1/nodes/%s", cfg->name);
        json_t *node = NULL;
        json_t *owner = json_array();
        if (kube_get(hb->client, node_path, &node, &res, NULL) == 0) {
            const char *name = json_str_at(node, "metadata", "name");
            const char *uid = json_str_at(node, "metadata", "uid");
            if (name && uid)
                json_array_append_new(owner, json_pack("{s:s, s:s, s:s, s:s}", "apiVersion", "v1",
                                                       "kind", "Node", "name", name, "uid", uid));
        }
        json_decref(node);
        free(node_path);
        json_t *lease =
            json_pack("{s:s, s:s, s:{s:s, s:s, s:o}, s:{s:s, s:i, s:s}}", "apiVersion",
                      "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", cfg->name,
                      "namespace", "kube-node-lease", "ownerReferences", owner, "spec",
                      "holderIdentity", cfg->name, "leaseDurationSeconds", 40, "renewTime", now);
        rc = kube_create(hb->client,
                         "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease,
                         NULL, &res, err);
        json_decref(lease);
    }
    free(path);
    return rc;
}

/* The status without heartbeat times, to tell a change from a tick. */
static char *status_key(json_t *status)
{
    json_t *copy = json_deep_copy(status);
    json_t *conds = json_at(copy, "conditions");
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c) json_object_del(c, "lastHeartbeatTime");
    char *key = json_dumps(copy, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(copy);
    return key;
}

/* Whether the API server's copy of the Node is Ready. The node lifecycle
 * controller turns Ready Unknown when the Lease went stale (a pause, an
 * outage) and never back: only our next status post does, so a node that
 * finds itself not Ready posts at once instead of at the next periodic
 * report. Read from the API server's cache (resourceVersion=0), as the
 * kubelet reads its Node before each status update. */
static bool server_says_ready(node_heartbeat_t *hb)
{
    char *path = xasprintf("/api/v1/nodes/%s?resourceVersion=0", hb->cfg->name);
    json_t *node = NULL;
    kube_result_t res;
    bool ready = true; /* unknown: do not force a post */
    if (kube_get(hb->client, path, &node, &res, NULL) == 0) {
        size_t i;
        json_t *c;
        json_array_foreach(json_at(node, "status", "conditions"), i, c)
        {
            const char *type = json_str_at(c, "type");
            const char *st = json_str_at(c, "status");
            if (type && strcmp(type, "Ready") == 0) ready = st && strcmp(st, "True") == 0;
        }
    }
    json_decref(node);
    free(path);
    return ready;
}

static void *heartbeat_main(void *arg)
{
    thread_set_name("heartbeat");
    node_heartbeat_t *hb = arg;
    char *last_key = NULL;
    int64_t last_post = 0;
    char *status_path = xasprintf("/api/v1/nodes/%s/status", hb->cfg->name);
    pthread_mutex_lock(&hb->lock);
    while (!hb->quit) {
        bool paused = hb->paused;
        pthread_mutex_unlock(&hb->lock);
        if (!paused) {
            err_t err;
            if (renew_lease(hb, &err) == -1) diag_warn("lease: %s", err.msg);
            bool force = last_key && !server_says_ready(hb);
            if (force) node_info_ready_lost();
            json_t *status = node_status(hb->cfg);
            char *key = status_key(status);
            int64_t now = time_mono_ns();
            if (!last_key || force || strcmp(key, last_key) != 0 ||
                now - last_post >= STATUS_REPORT_NS) {
                json_t *patch = json_pack("{s:O}", "status", status);
                kube_result_t res;
                if (kube_patch(hb->client, status_path, KUBE_PATCH_MERGE, patch, NULL, &res,
                               &err) == 0) {
                    free(last_key);
                    last_key = key;
                    key = NULL;
                    last_post = now;
                } else {
                    diag_warn("node status: %s", err.msg);
                }
                json_decref(patch);
            }
            free(key);
            json_decref(status);
        }
        heap_release_if_asked(); /* a trim waits for each thread's malloc cache */
        pthread_mutex_lock(&hb->lock);
        int64_t until = deadline_after_ms(TICK_MS);
        /* A pause or a resume ends the wait: a resumed node renews at once. */
        while (!hb->quit && hb->paused == paused && cond_wait_until(&hb->cond, &hb->lock, until))
            ;
    }
    pthread_mutex_unlock(&hb->lock);
    free(last_key);
    free(status_path);
    return NULL;
}

node_heartbeat_t *node_heartbeat_start(kube_client_t *c, const node_config_t *cfg)
{
    node_heartbeat_t *hb = xcalloc(1, sizeof *hb);
    hb->client = c;
    hb->cfg = cfg;
    pthread_mutex_init(&hb->lock, NULL);
    cond_init_monotonic(&hb->cond);
    if (pthread_create(&hb->thread, NULL, heartbeat_main, hb) != 0) {
        diag_error("cannot start the heartbeat thread");
        pthread_cond_destroy(&hb->cond);
        pthread_mutex_destroy(&hb->lock);
        free(hb);
        return NULL;
    }
    return hb;
}

void node_heartbeat_pause(node_heartbeat_t *hb, bool paused)
{
    if (!hb) return;
    pthread_mutex_lock(&hb->lock);
    hb->paused = paused;
    pthread_cond_signal(&hb->cond);
    pthread_mutex_unlock(&hb->lock);
}

void node_heartbeat_stop(node_heartbeat_t *hb)
{
    if (!hb) return;
    pthread_mutex_lock(&hb->lock);
    hb->quit = true;
    pthread_cond_signal(&hb->cond);
    pthread_mutex_unlock(&hb->lock);
    pthread_join(hb->thread, NULL);
    pthread_cond_destroy(&hb->cond);
    pthread_mutex_destroy(&hb->lock);
    free(hb);
}
