/* mirror.c: the mirror pods of static pods.
 *
 * A static pod (--pod-manifest-path) runs from its file; the API server
 * shows it through its mirror: the same pod, marked with the
 * kubernetes.io/config.mirror annotation (the static pod's uid) and owned
 * by the Node, as NodeRestriction requires. A mirror that is deleted (a
 * user's kubectl delete, the taint manager) is finished off and made
 * again; the mirror of a static pod that went is deleted.
 *
 * Threads: the manager's sync thread, as a take/run/done job (see
 * manager_priv.h); mirror_delete runs there too, with no lock held. */
#include "pod/manager_priv.h"
#include "util/diag.h"
#include "util/json.h"
#include "util/sync.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mirror_take_locked(pod_manager_t *m, entry_t *e, mirror_job_t *job)
{
    lock_assert_held(&m->lock);
    memset(job, 0, sizeof *job);
    memcpy(job->uid, e->uid, sizeof job->uid);
    memcpy(job->ns, e->ns, sizeof job->ns);
    memcpy(job->name, e->name, sizeof job->name);
    job->pod = json_deep_copy(e->pod);
}

/* Deletes a mirror that is being deleted (its uid as precondition), so
 * that the next pass makes it again. */
static bool finish_off_deleted(pod_manager_t *m, const char *path)
{
    json_t *old = NULL;
    kube_result_t res;
    bool replaced = false;
    if (kube_get(m->cfg.client, path, &old, &res, NULL) == 0 &&
        json_at(old, "metadata", "deletionTimestamp")) {
        json_t *opts = json_pack("{s:s, s:s, s:i, s:{s:O}}", "kind", "DeleteOptions", "apiVersion",
                                 "v1", "gracePeriodSeconds", 0, "preconditions", "uid",
                                 json_at(old, "metadata", "uid"));
        kube_delete(m->cfg.client, path, opts, NULL, &res, NULL);
        json_decref(opts);
        replaced = true;
    }
    json_decref(old);
    return replaced;
}

void mirror_run(pod_manager_t *m, mirror_job_t *job)
{
    json_t *meta = json_at(job->pod, "metadata");
    json_object_del(meta, "uid");
    json_t *ann = json_at(meta, "annotations");
    if (!json_is_object(ann)) {
        ann = json_object();
        json_object_set_new(meta, "annotations", ann);
    }
    json_object_set_new(ann, "kubernetes.io/config.mirror", json_string(job->uid));
    json_t *node = NULL;
    char *node_path = xasprintf("/api/v1/nodes/%s", m->node_name);
    kube_result_t res;
    if (kube_get(m->cfg.client, node_path, &node, &res, NULL) == 0) {
        json_object_set_new(meta, "ownerReferences",
                            json_pack("[{s:s, s:s, s:O, s:O, s:b}]", "apiVersion", "v1", "kind",
                                      "Node", "name", json_at(node, "metadata", "name"), "uid",
                                      json_at(node, "metadata", "uid"), "controller", true));
    }
    json_decref(node);
    free(node_path);
    char *path = xasprintf("/api/v1/namespaces/%s/pods", job->ns);
    int rc = kube_create(m->cfg.client, path, job->pod, NULL, &res, &job->err);
    free(path);
    job->http = res.status;
    if (rc == -1 && res.status == 409) {
        /* A mirror is there already: ours, or one being deleted. */
        char *mpath = xasprintf("/api/v1/namespaces/%s/pods/%s", job->ns, job->name);
        job->replaced = finish_off_deleted(m, mpath);
        free(mpath);
    }
    job->created = rc == 0 || (res.status == 409 && !job->replaced);
}

void mirror_done_locked(pod_manager_t *m, entry_t *e, mirror_job_t *job)
{
    lock_assert_held(&m->lock);
    if (job->replaced) {
        e->retry_at = time_mono_ns() + NS_PER_SEC / 2;
    } else if (job->created) {
        e->mirror_ok = true;
        e->dirty = true;
        free(e->last_status); /* the new mirror has no status yet */
        e->last_status = NULL;
    } else {
        diag_warn("static pod %s/%s: mirror pod: %s", e->ns, e->name, job->err.msg);
        e->retry_at = time_mono_ns() + 2 * NS_PER_SEC;
    }
    json_decref(job->pod);
    job->pod = NULL;
}

void mirror_delete(pod_manager_t *m, const char *ns, const char *name)
{
    char *path = xasprintf("/api/v1/namespaces/%s/pods/%s", ns, name);
    json_t *opts = json_pack("{s:s, s:s, s:i}", "kind", "DeleteOptions", "apiVersion", "v1",
                             "gracePeriodSeconds", 0);
    kube_result_t res;
    kube_delete(m->cfg.client, path, opts, NULL, &res, NULL);
    json_decref(opts);
    free(path);
}
