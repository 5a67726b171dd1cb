/* housekeeping.c: the pod manager's periodic chores.
 *
 * Owns: the refresh of a running pod's volumes every 10 s (configMap,
 * secret, downwardAPI and projected sources are rewritten from the pod as
 * the API server has it now) and the eviction of a pod whose emptyDir
 * passed its sizeLimit (Warning Evicted); image garbage collection every
 * 5 min (modules no pod on the node uses and none used for 10 min); the
 * Node's labels, read from the API server every 10 s for admission (a
 * label added with kubectl label counts, as for the kubelet's informer);
 * the collection of sandboxes on disk whose pod no longer runs (after the
 * first list of pods, then every minute).
 *
 * Threads: the manager's sync thread; the reflector thread too calls
 * node_labels_refresh before rejecting a pod on stale labels. Jobs are
 * taken under m->lock and run without it (manager_priv.h). */
#include "pod/manager_priv.h"
#include "kube/pod_spec.h"
#include "log/crilog.h"
#include "metrics/registry.h"
#include "pod/eviction.h"
#include "util/diag.h"
#include "util/json.h"
#include "util/sync.h"
#include "util/xalloc.h"
#include "volume/volume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- volumes ----------------------------------------------------------------- */

bool refresh_due_locked(pod_manager_t *m, entry_t *e, int64_t now)
{
    lock_assert_held(&m->lock);
    return e->state == ENTRY_RUNNING && e->worker && e->refresh_at <= now &&
           !pod_worker_finished(e->worker);
}

void refresh_take_locked(pod_manager_t *m, entry_t *e, refresh_job_t *job, int64_t now)
{
    lock_assert_held(&m->lock);
    memset(job, 0, sizeof *job);
    e->refresh_at = now + REFRESH_INTERVAL_NS;
    memcpy(job->uid, e->uid, sizeof job->uid);
    job->worker = e->worker;
    /* The labels and annotations of downwardAPI volumes may have changed. */
    job->pod = json_incref(e->pod);
}

/* The pod's log directory: <logs>/<ns>_<name>_<uid> (as pod/worker.c
 * names it), or NULL without logs. */
static char *pod_logs_dir(pod_manager_t *m, const podspec_t *spec)
{
    if (!m->logs_dir) return NULL;
    return xasprintf("%s/%s_%s_%s", m->logs_dir, spec->namespace, spec->name, spec->uid);
}

static uint64_t logs_usage(const char *dir)
{
    crilog_usage_t u = {0};
    if (!dir || crilog_usage(dir, &u, NULL) == -1) return 0;
    return u.used_bytes;
}

/* The kubelet's local storage limits after emptyDir sizeLimit: the pod's
 * emptyDirs and logs against the sum of its containers'
 * limits.ephemeral-storage, then each container's logs against its own.
 * (A WASI module has no writable layer: its files are its volumes.) True
 * with the kubelet's message when one is exceeded. */
static bool storage_over_limits(pod_manager_t *m, const podspec_t *spec, const char *pod_dir,
                                char *msg, size_t len)
{
    int64_t pod_limit = eviction_pod_storage_limit(spec->raw);
    if (pod_limit <= 0) return false;
    bool over = false;
    char *logs = pod_logs_dir(m, spec);
    uint64_t used = volume_emptydir_usage(spec, pod_dir) + logs_usage(logs);
    if (used > (uint64_t)pod_limit) {
        char q[32];
        snprintf(msg, len,
                 "Pod ephemeral local storage usage exceeds the total limit of containers %s. ",
                 eviction_format_bytes(pod_limit, q, sizeof q));
        over = true;
    }
    for (size_t i = 0; !over && logs && i < spec->ncontainers; i++) {
        const char *text = NULL;
        int64_t limit = eviction_container_storage_limit(spec->containers[i].raw, &text);
        if (limit <= 0) continue;
        char *cdir = xasprintf("%s/%s", logs, spec->containers[i].name);
        if (logs_usage(cdir) > (uint64_t)limit) {
            snprintf(msg, len, "Container %s exceeded its local ephemeral storage limit \"%s\". ",
                     spec->containers[i].name, text);
            over = true;
        }
        free(cdir);
    }
    free(logs);
    return over;
}

void refresh_run(pod_manager_t *m, refresh_job_t *job)
{
    char *dir = manager_pod_dir(m, job->uid);
    podspec_t *now_spec = NULL;
    if (podspec_parse(job->pod, &now_spec, NULL) == -1) now_spec = NULL;
    json_decref(job->pod);
    job->pod = NULL;
    /* The worker stays alive: only the sync thread (this one) frees it. */
    const podspec_t *use = now_spec ? now_spec : pod_worker_spec(job->worker);
    err_t err;
    int64_t expires = 0;
    volume_host_t vh = pod_host_volumes(&m->host);
    if (volume_refresh(&vh, use, dir, &expires, &err) == -1)
        diag_warn("pod %s: volume refresh: %s", dir, err.msg);
    char msg[ERR_MSG_MAX];
    bool evicted = true;
    if (volume_check_limits(use, dir, &err) == -1) {
        cluster_host_event_for(m->ch, use->raw, NULL, "Warning", "Evicted", err.msg);
        pod_worker_stop(job->worker, "Evicted", err.msg);
        if (m->cfg.eviction) pod_eviction_count(m->cfg.eviction, EVICT_SIGNALS);
    } else if (storage_over_limits(m, use, dir, msg, sizeof msg)) {
        diag_warn("pod %s/%s: evicted: %s", use->namespace, use->name, msg);
        cluster_host_event_for(m->ch, use->raw, NULL, "Warning", "Evicted", msg);
        pod_worker_stop(job->worker, "Evicted", msg);
        if (m->cfg.eviction) pod_eviction_count(m->cfg.eviction, EVICT_SIGNALS);
    } else {
        evicted = false;
    }
    if (evicted) {
        pthread_mutex_lock(&m->lock);
        eviction_mark_locked(m, job->uid);
        pthread_mutex_unlock(&m->lock);
    }
    podspec_free(now_spec);
    free(dir);
}

/* --- images -------------------------------------------------------------------- */

static bool keep_image_id(void *ctx, json_t *cs, bool init, bool running)
{
    (void)init;
    (void)running;
    json_t *id = json_object_get(cs, "imageID");
    if (json_string_length(id)) json_array_append(ctx, id);
    return true;
}

json_t *image_gc_keep_locked(pod_manager_t *m)
{
    lock_assert_held(&m->lock);
    json_t *keep = json_array();
    for (entry_t *e = m->entries; e; e = e->next) {
        if (!e->worker) continue;
        const podspec_t *spec = pod_worker_spec(e->worker);
        for (size_t i = 0; i < spec->ncontainers; i++)
            json_array_append_new(keep, json_string(spec->containers[i].image));
        for (size_t i = 0; i < spec->ninit; i++)
            json_array_append_new(keep, json_string(spec->init_containers[i].image));
        json_t *st = pod_worker_status_json(e->worker);
        manager_each_container(st, true, keep_image_id, keep);
        json_decref(st);
    }
    return keep;
}

void image_gc_run(pod_manager_t *m, json_t *keep)
{
    size_t n = json_array_size(keep);
    const char **in_use = xcalloc(n + 1, sizeof *in_use);
    for (size_t i = 0; i < n; i++)
        in_use[i] = json_string_value(json_array_get(keep, i));
    image_gc_result_t res;
    err_t err;
    if (image_store_gc(m->cfg.images, in_use, n, IMAGE_GC_GRACE_NS, &res, &err) == -1)
        diag_warn("image garbage collection: %s", err.msg);
    else if (res.modules_removed)
        diag_info("image garbage collection: removed %zu modules (%llu bytes)", res.modules_removed,
                  (unsigned long long)res.bytes_freed);
    free(in_use);
}

/* --- the Node's labels ------------------------------------------------------------ */

void node_labels_refresh(pod_manager_t *m)
{
    char *path = xasprintf("/api/v1/nodes/%s", m->node_name);
    json_t *node = NULL;
    kube_result_t res;
    err_t err;
    int64_t asked = time_now_ns();
    int rc = kube_get(m->cfg.client, path, &node, &res, &err);
    free(path);
    json_t *labels = rc == 0 ? json_at(node, "metadata", "labels") : NULL;
    pthread_mutex_lock(&m->lock);
    if (rc == 0) {
        json_decref(m->node_labels);
        m->node_labels = json_is_object(labels) ? json_incref(labels) : json_object();
        m->node_labels_at = time_mono_ns();
        m->node_labels_wall = asked;
    }
    m->node_refresh_at = time_mono_ns() + NODE_REFRESH_INTERVAL_NS;
    pthread_mutex_unlock(&m->lock);
    if (rc == -1) diag_warn("node %s: cannot read its labels: %s", m->node_name, err.msg);
    json_decref(node);
}

/* --- node pressure ------------------------------------------------------------------ */

typedef struct pick {
    eviction_candidate_t c;
    json_t *pod;
    pod_worker_t *worker; /* stays valid: only this (the sync) thread frees workers */
    char uid[64];
} pick_t;

/* One pod's usage of the reclaimed resource. Memory: each container's
 * linear memory, live while it runs (sampled on its thread at most every
 * 100 ms while wasm runs, and before it sleeps), else its last run's.
 * Disk: each container's logs, and the pod's emptyDirs on top. */
static void pick_usage(pod_manager_t *m, pick_t *p, bool memory)
{
    const podspec_t *spec = pod_worker_spec(p->worker);
    p->c.usage = 0;
    char *logs = memory ? NULL : pod_logs_dir(m, spec);
    for (size_t i = 0; i < p->c.ncontainers; i++) {
        int64_t used = 0;
        if (memory) {
            metrics_usage_t u;
            if (metrics_container_usage(spec->uid, p->c.containers[i].name, &u) && u.memory_known)
                used = (int64_t)u.memory_bytes;
        } else if (logs) {
            char *cdir = xasprintf("%s/%s", logs, p->c.containers[i].name);
            used = (int64_t)logs_usage(cdir);
            free(cdir);
        }
        p->c.containers[i].usage = used;
        p->c.usage += used;
    }
    if (!memory) {
        char *dir = manager_pod_dir(m, p->uid);
        p->c.usage += (int64_t)volume_emptydir_usage(spec, dir);
        free(dir);
    }
    free(logs);
}

void eviction_pass(pod_manager_t *m)
{
    lock_assert_held(&m->lock);
    pod_eviction_t *ev = m->cfg.eviction;
    int64_t now = time_mono_ns();
    if (!ev || now < m->next_eviction) return;
    m->next_eviction = now + EVICTION_INTERVAL_NS;
    pthread_mutex_unlock(&m->lock);
    eviction_verdict_t v;
    pod_eviction_update(ev, m->data_dir, now, &v);
    pthread_mutex_lock(&m->lock);
    if (!v.evict || m->shutting_down) return;
    bool memory = v.signal == EVICT_MEMORY_AVAILABLE;
    if (!memory && m->cfg.images) {
        /* The kubelet reclaims node-level resources first: unused images. */
        json_t *keep = image_gc_keep_locked(m);
        pthread_mutex_unlock(&m->lock);
        size_t n = json_array_size(keep);
        const char **in_use = xcalloc(n + 1, sizeof *in_use);
        for (size_t i = 0; i < n; i++)
            in_use[i] = json_string_value(json_array_get(keep, i));
        image_gc_result_t res;
        if (image_store_gc(m->cfg.images, in_use, n, 0, &res, NULL) == 0 && res.modules_removed)
            diag_info("disk pressure: removed %zu unused modules (%llu bytes)", res.modules_removed,
                      (unsigned long long)res.bytes_freed);
        free(in_use);
        json_decref(keep);
        pod_eviction_update(ev, m->data_dir, time_mono_ns(), &v);
        pthread_mutex_lock(&m->lock);
        if (!v.evict || m->shutting_down) return;
        memory = v.signal == EVICT_MEMORY_AVAILABLE;
    }
    size_t n = 0, cap = 0;
    pick_t *picks = NULL;
    for (entry_t *e = m->entries; e; e = e->next) {
        if (e->state != ENTRY_RUNNING || !e->worker || pod_worker_finished(e->worker)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            picks = xrealloc(picks, cap * sizeof *picks);
        }
        pick_t *p = &picks[n++];
        memset(p, 0, sizeof *p);
        p->pod = json_incref(e->pod);
        p->worker = e->worker;
        memcpy(p->uid, e->uid, sizeof p->uid);
    }
    pthread_mutex_unlock(&m->lock);
    const char *resource = eviction_signal_resource(v.signal);
    for (size_t i = 0; i < n; i++) {
        picks[i].c.priority = eviction_pod_priority(picks[i].pod, &picks[i].c.critical);
        eviction_pod_requests(picks[i].pod, resource, &picks[i].c);
        pick_usage(m, &picks[i], memory);
        picks[i].c.ref = &picks[i];
    }
    /* Rank the candidates, then act on the pick they point to. */
    eviction_candidate_t *ranked = xcalloc(n ? n : 1, sizeof *ranked);
    for (size_t i = 0; i < n; i++)
        ranked[i] = picks[i].c;
    eviction_rank(ranked, n);
    if (n > 0 && !ranked[0].critical) {
        pick_t *p = ranked[0].ref;
        char msg[2048];
        eviction_message(&v, &ranked[0], msg, sizeof msg);
        const podspec_t *spec = pod_worker_spec(p->worker);
        diag_warn("%s pressure (%s): evicting pod %s/%s: %s", resource,
                  eviction_signal_name(v.signal), spec->namespace, spec->name, msg);
        cluster_host_event_for(m->ch, p->pod, NULL, "Warning", "Evicted", msg);
        pod_worker_stop(p->worker, "Evicted", msg);
        pod_eviction_count(ev, v.signal);
    } else if (n > 0) {
        diag_warn("%s pressure (%s): only critical pods are left; none evicted", resource,
                  eviction_signal_name(v.signal));
    }
    pthread_mutex_lock(&m->lock);
    if (n > 0 && !ranked[0].critical) eviction_mark_locked(m, ((pick_t *)ranked[0].ref)->uid);
    for (size_t i = 0; i < n; i++)
        json_decref(picks[i].pod);
    free(picks);
    free(ranked);
}

void eviction_mark_locked(pod_manager_t *m, const char *uid)
{
    lock_assert_held(&m->lock);
    entry_t *e = entry_find_locked(m, uid);
    if (e) e->evicted = true;
    manager_wake(m);
}

void eviction_reclaim(pod_manager_t *m, const char *uid)
{
    char *dir = manager_pod_dir(m, uid);
    err_t err;
    if (volume_teardown(dir, &err) == -1)
        diag_warn("evicted pod %s: volumes not reclaimed: %s", uid, err.msg);
    else
        diag_info("evicted pod %s: volumes reclaimed", uid);
    free(dir);
}

/* --- orphaned sandboxes ------------------------------------------------------------ */

/* The live set: pods whose worker runs (a finished worker destroyed its
 * sandbox, or failed to and leaves it to this collector). Taken under
 * gc_lock, so a worker started after it cannot have made a sandbox yet. */
static char **net_live(void *ctx, size_t *n)
{
    pod_manager_t *m = ctx;
    pthread_mutex_lock(&m->lock);
    size_t cap = 0;
    for (entry_t *e = m->entries; e; e = e->next)
        cap++;
    char **ids = xcalloc(cap + 1, sizeof *ids);
    *n = 0;
    for (entry_t *e = m->entries; e; e = e->next)
        if (e->worker && !pod_worker_finished(e->worker)) ids[(*n)++] = xstrdup(e->uid);
    pthread_mutex_unlock(&m->lock);
    return ids;
}

bool net_gc_run(pod_manager_t *m)
{
    err_t err;
    int n = pod_net_gc(m->net, net_live, m, &err);
    if (n == POD_NET_GC_BUSY) return false;
    if (n == -1)
        diag_warn("pod network: orphaned sandboxes: %s (retried in %d s)", err.msg,
                  (int)(NET_GC_INTERVAL_NS / NS_PER_SEC));
    else if (n > 0)
        diag_info("pod network: destroyed %d orphaned sandbox(es)", n);
    return true;
}
