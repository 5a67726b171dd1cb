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
    if (volume_check_limits(use, dir, &err) == -1) {
        cluster_host_event_for(m->ch, use->raw, NULL, "Warning", "Evicted", err.msg);
        pod_worker_stop(job->worker, "Evicted", err.msg);
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
    int rc = kube_get(m->cfg.client, path, &node, &res, &err);
    free(path);
    json_t *labels = rc == 0 ? json_at(node, "metadata", "labels") : NULL;
    pthread_mutex_lock(&m->lock);
    if (rc == 0) {
        json_decref(m->node_labels);
        m->node_labels = json_is_object(labels) ? json_incref(labels) : json_object();
        m->node_labels_at = time_mono_ns();
    }
    m->node_refresh_at = time_mono_ns() + NODE_REFRESH_INTERVAL_NS;
    pthread_mutex_unlock(&m->lock);
    if (rc == -1) diag_warn("node %s: cannot read its labels: %s", m->node_name, err.msg);
    json_decref(node);
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

void net_gc_run(pod_manager_t *m)
{
    err_t err;
    int n = pod_net_gc(m->net, net_live, m, &err);
    if (n == -1)
        diag_warn("pod network: orphaned sandboxes: %s (retried in %d s)", err.msg,
                  (int)(NET_GC_INTERVAL_NS / NS_PER_SEC));
    else if (n > 0)
        diag_info("pod network: destroyed %d orphaned sandbox(es)", n);
}
