/* manager.c: the pods of this node (see manager.h).
 *
 * Threads: the reflector thread lists and watches pods with
 * fieldSelector=spec.nodeName=<node> and turns every change into an
 * update of the table below; the sync thread writes statuses, finishes
 * deletions, refreshes volumes and frees pods that are gone. Workers only
 * mark their entry dirty (through the host callbacks in cluster_host.c).
 *
 * Locking: m->lock guards the table and every entry field. Network calls
 * are made with the lock released, on copies.
 *
 * A pod's life in the table:
 *   new (ADDED) -> admitted: worker started      | rejected: Failed status
 *   deletionTimestamp -> worker stopped -> final status written
 *                     -> DELETE gracePeriodSeconds=0, preconditions.uid
 *   DELETED (or missing from a relist) -> worker stopped -> entry freed,
 *                     pod directory and logs removed.
 * A pod that is already Succeeded or Failed when first seen is not run. */
#include "pod/manager.h"
#include "pod/cluster_host.h"
#include "pod/events.h"
#include "pod/worker.h"
#include "kube/pod_spec.h"
#include "kube/watch.h"
#include "util/diag.h"
#include "util/fs.h"
#include "util/time.h"
#include "util/xalloc.h"
#include "volume/volume.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SYNC_INTERVAL_MS 1000
#define REFRESH_INTERVAL_NS (10 * NS_PER_SEC)
#define IMAGE_GC_INTERVAL_NS (300 * NS_PER_SEC)
#define IMAGE_GC_GRACE_NS (600 * NS_PER_SEC)

typedef struct entry {
    char uid[64];
    char ns[128];
    char name[256];
    json_t *pod;          /* latest object from the API server */
    pod_worker_t *worker; /* NULL: rejected, or terminal when first seen */
    json_t *fixed_status; /* status to write for a pod without a worker */
    int64_t cpu, memory;  /* requests, for admission */
    bool terminating;     /* deletionTimestamp seen */
    bool gone;            /* deleted from the API server */
    bool dirty;           /* status to write */
    bool final_written;   /* status written after the worker finished */
    bool deleted;         /* final DELETE accepted */
    bool is_static;       /* from --pod-manifest-path; the API server has its mirror */
    bool mirror_ok;       /* the mirror pod exists */
    int64_t retry_at;     /* mono ns: next status write attempt */
    int64_t refresh_at;   /* mono ns: next volume refresh */
    char *last_status;    /* last status written */
    struct entry *next;
} entry_t;

struct pod_manager {
    pod_manager_config_t cfg;
    char *node_name, *host_ip, *data_dir, *logs_dir;
    cluster_host_t *ch;
    pod_events_t *events;
    pod_host_t host;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    entry_t *entries;
    bool shutting_down;
    atomic_bool stop;
    pthread_t reflector, syncer;
    int64_t next_gc;
    pod_manager_stats_t stats;
};

/* --- table ------------------------------------------------------------------- */

static entry_t *find_locked(pod_manager_t *m, const char *uid)
{
    for (entry_t *e = m->entries; e; e = e->next)
        if (strcmp(e->uid, uid) == 0) return e;
    return NULL;
}

static const char *jstr(json_t *o, const char *path1, const char *path2)
{
    json_t *v = json_object_get(o, path1);
    if (path2) v = json_object_get(v, path2);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void requests_of(json_t *pod, int64_t *cpu, int64_t *memory)
{
    podspec_t *spec = NULL;
    *cpu = *memory = 0;
    if (podspec_parse(pod, &spec, NULL) == -1) return;
    for (size_t i = 0; i < spec->ncontainers; i++) {
        *cpu += spec->containers[i].cpu_request;
        *memory += spec->containers[i].memory_request;
    }
    /* Init containers run before the app: the pod needs the larger. */
    for (size_t i = 0; i < spec->ninit; i++) {
        if (spec->init_containers[i].cpu_request > *cpu)
            *cpu = spec->init_containers[i].cpu_request;
        if (spec->init_containers[i].memory_request > *memory)
            *memory = spec->init_containers[i].memory_request;
    }
    podspec_free(spec);
}

static bool active(const entry_t *e)
{
    return e->worker && !pod_worker_finished(e->worker);
}

static void wake(pod_manager_t *m)
{
    pthread_cond_signal(&m->cond);
}

/* Admission as the kubelet does it: the pod's requests must fit what the
 * admitted pods leave of allocatable. Returns NULL, or the rejection
 * status. */
static json_t *admit_locked(pod_manager_t *m, entry_t *e)
{
    int64_t used_cpu = 0, used_mem = 0, pods = 0;
    for (entry_t *o = m->entries; o; o = o->next) {
        if (o == e || !active(o)) continue;
        used_cpu += o->cpu;
        used_mem += o->memory;
        pods++;
    }
    const char *res = NULL;
    long long req = 0, used = 0, cap = 0;
    if (pods + 1 > m->cfg.max_pods) {
        res = "pods";
        req = 1;
        used = pods;
        cap = m->cfg.max_pods;
    } else if (e->cpu && used_cpu + e->cpu > m->cfg.allocatable_cpu) {
        res = "cpu";
        req = e->cpu;
        used = used_cpu;
        cap = m->cfg.allocatable_cpu;
    } else if (e->memory && used_mem + e->memory > m->cfg.allocatable_memory) {
        res = "memory";
        req = e->memory;
        used = used_mem;
        cap = m->cfg.allocatable_memory;
    }
    if (!res) return NULL;
    char reason[32], msg[512];
    snprintf(reason, sizeof reason, "OutOf%s", res);
    snprintf(msg, sizeof msg,
             "Pod was rejected: Node didn't have enough resource: %s, requested: %lld, used: "
             "%lld, capacity: %lld",
             res, req, used, cap);
    m->stats.admission_rejected++;
    return json_pack("{s:s, s:s, s:s}", "phase", "Failed", "reason", reason, "message", msg);
}

static json_t *load_resume(pod_manager_t *m, const char *uid)
{
    char *path = xasprintf("%s/pods/%s/state.json", m->data_dir, uid);
    char *text;
    json_t *state = NULL;
    if (fs_read_all(path, &text, NULL, NULL) == 0) {
        state = json_loads(text, 0, NULL);
        free(text);
    }
    free(path);
    return state;
}

static void start_locked(pod_manager_t *m, entry_t *e)
{
    json_t *rejection = admit_locked(m, e);
    if (rejection) {
        e->fixed_status = rejection;
        e->dirty = true;
        char *msg = xstrdup(jstr(rejection, "message", NULL));
        pthread_mutex_unlock(&m->lock);
        cluster_host_event_for(m->ch, e->pod, NULL, "Warning", jstr(rejection, "reason", NULL),
                               msg);
        pthread_mutex_lock(&m->lock);
        free(msg);
        return;
    }
    podspec_t *spec = NULL;
    err_t err;
    if (podspec_parse(e->pod, &spec, &err) == -1) {
        e->fixed_status = json_pack("{s:s, s:s, s:s}", "phase", "Failed", "reason",
                                    "InvalidPodSpec", "message", err.msg);
        e->dirty = true;
        return;
    }
    json_t *resume = load_resume(m, e->uid);
    e->worker = pod_worker_start(&m->host, spec, resume);
    json_decref(resume);
    m->stats.pods_started++;
    e->refresh_at = time_mono_ns() + REFRESH_INTERVAL_NS;
    diag_info("pod %s/%s (%s): started", e->ns, e->name, e->uid);
}

/* An ADDED or MODIFIED pod, or one in a fresh list. */
static void upsert_locked(pod_manager_t *m, json_t *pod)
{
    const char *uid = jstr(pod, "metadata", "uid");
    const char *ns = jstr(pod, "metadata", "namespace");
    const char *name = jstr(pod, "metadata", "name");
    if (!uid || !ns || !name) return;
    json_t *annotations = json_object_get(json_object_get(pod, "metadata"), "annotations");
    const char *mirror = jstr(annotations, "kubernetes.io/config.mirror", NULL);
    if (mirror) {
        /* The mirror of one of our static pods: it is run from its file. A
         * deleted mirror is created again by the sync loop. */
        entry_t *st = find_locked(m, mirror);
        if (st && st->is_static &&
            json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp")) {
            st->mirror_ok = false;
            wake(m);
        }
        return;
    }
    bool deleting = json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp") != NULL;
    entry_t *e = find_locked(m, uid);
    if (!e) {
        e = xcalloc(1, sizeof *e);
        snprintf(e->uid, sizeof e->uid, "%s", uid);
        snprintf(e->ns, sizeof e->ns, "%s", ns);
        snprintf(e->name, sizeof e->name, "%s", name);
        e->pod = json_incref(pod);
        e->next = m->entries;
        m->entries = e;
        requests_of(pod, &e->cpu, &e->memory);
        const char *phase = jstr(pod, "status", "phase");
        bool terminal = phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0);
        if (terminal) {
            e->final_written = true; /* nothing to run, nothing to write */
        } else if (!deleting && !m->shutting_down) {
            start_locked(m, e);
        } else {
            e->final_written = true;
        }
    } else {
        json_decref(e->pod);
        e->pod = json_incref(pod);
        /* Spec updates (deadline, image) reach the running worker; an echo
         * of our own status write changes nothing there. */
        podspec_t *spec = NULL;
        err_t perr;
        if (e->worker && !deleting && podspec_parse(pod, &spec, &perr) == 0)
            pod_worker_update(e->worker, spec);
    }
    if (deleting && !e->terminating) {
        e->terminating = true;
        if (e->worker) {
            diag_info("pod %s/%s: deleted, stopping its containers", e->ns, e->name);
            pod_worker_stop(e->worker, NULL, NULL);
        }
    }
    wake(m);
}

static void remove_locked(pod_manager_t *m, json_t *pod)
{
    const char *uid = jstr(pod, "metadata", "uid");
    json_t *annotations = json_object_get(json_object_get(pod, "metadata"), "annotations");
    const char *mirror = jstr(annotations, "kubernetes.io/config.mirror", NULL);
    if (mirror) { /* a mirror pod went: make it again */
        entry_t *st = find_locked(m, mirror);
        if (st && st->is_static) st->mirror_ok = false;
        wake(m);
        return;
    }
    entry_t *e = uid ? find_locked(m, uid) : NULL;
    if (!e || e->is_static) return;
    e->gone = true;
    if (e->worker) pod_worker_stop(e->worker, NULL, NULL);
    wake(m);
}

/* --- reflector handlers ------------------------------------------------------ */

static int on_list(void *ctx, json_t *items, const char *rv)
{
    (void)rv;
    pod_manager_t *m = ctx;
    pthread_mutex_lock(&m->lock);
    /* Pods we track that the list lacks were deleted while we did not watch. */
    for (entry_t *e = m->entries; e; e = e->next) {
        bool present = false;
        size_t i;
        json_t *p;
        json_array_foreach(items, i, p)
        {
            const char *uid = jstr(p, "metadata", "uid");
            if (uid && strcmp(uid, e->uid) == 0) present = true;
        }
        if (!present && !e->gone && !e->is_static) {
            e->gone = true;
            if (e->worker) pod_worker_stop(e->worker, NULL, NULL);
        }
    }
    size_t i;
    json_t *p;
    json_array_foreach(items, i, p)
    {
        /* The items of a PodList carry no kind or apiVersion (watch events
         * do); podspec_parse wants a whole Pod. */
        if (!json_object_get(p, "kind")) json_object_set_new(p, "kind", json_string("Pod"));
        if (!json_object_get(p, "apiVersion"))
            json_object_set_new(p, "apiVersion", json_string("v1"));
        upsert_locked(m, p);
    }
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int on_event(void *ctx, kube_event_type_t type, json_t *obj)
{
    pod_manager_t *m = ctx;
    pthread_mutex_lock(&m->lock);
    if (type == KUBE_EVENT_DELETED) {
        remove_locked(m, obj);
    } else {
        upsert_locked(m, obj);
    }
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static void *reflector_main(void *arg)
{
    pod_manager_t *m = arg;
    char *selector = xasprintf("spec.nodeName=%s", m->node_name);
    kube_reflector_opts_t opts = {.list_path = "/api/v1/pods", .field_selector = selector};
    kube_reflector_handlers_t h = {.on_list = on_list, .on_event = on_event};
    err_t err;
    if (kube_reflector_run(m->cfg.client, &opts, &h, m, &m->stop, &err) == -1)
        diag_error("pod watch ended: %s", err.msg);
    free(selector);
    return NULL;
}

/* --- status writer and sync loop ----------------------------------------------- */

/* Writes one entry's status; called with the lock held, drops it for the
 * request. Returns with the lock held. */
static void write_status_locked(pod_manager_t *m, entry_t *e)
{
    json_t *status = e->worker ? pod_worker_status_json(e->worker) : json_incref(e->fixed_status);
    bool finished = !e->worker || pod_worker_finished(e->worker);
    json_t *resume = e->worker ? pod_worker_resume_json(e->worker) : NULL;
    e->dirty = false;
    char *text = json_dumps(status, JSON_SORT_KEYS | JSON_COMPACT);
    bool same = e->last_status && strcmp(text, e->last_status) == 0;
    char uid[64], ns[128], name[256];
    memcpy(uid, e->uid, sizeof uid);
    memcpy(ns, e->ns, sizeof ns);
    memcpy(name, e->name, sizeof name);
    bool is_static = e->is_static;
    pthread_mutex_unlock(&m->lock);

    if (resume) {
        char *dir = xasprintf("%s/pods/%s", m->data_dir, uid);
        char *path = xasprintf("%s/state.json", dir);
        char *rtext = json_dumps(resume, JSON_COMPACT);
        if (fs_mkdir_p(dir, 0750, NULL) == 0)
            fs_write_replace(path, rtext, strlen(rtext), 0600, NULL);
        free(rtext);
        free(path);
        free(dir);
        json_decref(resume);
    }
    int rc = 0;
    err_t err;
    if (!same) {
        char *path = xasprintf("/api/v1/namespaces/%s/pods/%s/status", ns, name);
        json_t *patch = is_static
                            ? json_pack("{s:O}", "status", status)
                            : json_pack("{s:{s:s}, s:O}", "metadata", "uid", uid, "status", status);
        kube_result_t res;
        rc = kube_patch(m->cfg.client, path, KUBE_PATCH_MERGE, patch, NULL, &res, &err);
        if (rc == -1 && res.status == 404) rc = 0; /* the pod is gone: nothing to report to */
        json_decref(patch);
        free(path);
    }
    json_decref(status);

    pthread_mutex_lock(&m->lock);
    if (rc == 0) {
        if (!same) m->stats.status_patches++;
        free(e->last_status);
        e->last_status = text;
        text = NULL;
        if (finished) e->final_written = true;
    } else {
        m->stats.status_errors++;
        diag_warn("pod %s/%s: status: %s", ns, name, err.msg);
        e->dirty = true;
        e->retry_at = time_mono_ns() + NS_PER_SEC;
    }
    free(text);
}

static void final_delete_locked(pod_manager_t *m, entry_t *e)
{
    char uid[64], ns[128], name[256];
    memcpy(uid, e->uid, sizeof uid);
    memcpy(ns, e->ns, sizeof ns);
    memcpy(name, e->name, sizeof name);
    pthread_mutex_unlock(&m->lock);
    char *path = xasprintf("/api/v1/namespaces/%s/pods/%s", ns, name);
    json_t *opts = json_pack("{s:s, s:s, s:i, s:{s:s}}", "kind", "DeleteOptions", "apiVersion",
                             "v1", "gracePeriodSeconds", 0, "preconditions", "uid", uid);
    kube_result_t res;
    err_t err;
    int rc = kube_delete(m->cfg.client, path, opts, NULL, &res, &err);
    json_decref(opts);
    free(path);
    pthread_mutex_lock(&m->lock);
    if (rc == 0 || res.status == 404 || res.status == 409) {
        e->deleted = true;
    } else {
        diag_warn("pod %s/%s: delete: %s", ns, name, err.msg);
        e->retry_at = time_mono_ns() + NS_PER_SEC;
    }
}

/* A static pod's mirror: the same pod in the API server, marked with the
 * kubernetes.io/config.mirror annotation and owned by the Node, as
 * NodeRestriction requires, so that kubectl shows it. */
static void create_mirror_locked(pod_manager_t *m, entry_t *e)
{
    json_t *mirror = json_deep_copy(e->pod);
    char ns[128], name[256];
    memcpy(ns, e->ns, sizeof ns);
    memcpy(name, e->name, sizeof name);
    pthread_mutex_unlock(&m->lock);
    json_t *meta = json_object_get(mirror, "metadata");
    json_object_del(meta, "uid");
    json_t *ann = json_object_get(meta, "annotations");
    json_object_set_new(ann, "kubernetes.io/config.mirror", json_string(e->uid));
    json_t *node = NULL;
    char *node_path = xasprintf("/api/v1/nodes/%s", m->node_name);
    kube_result_t res;
    if (kube_get(m->cfg.client, node_path, &node, &res, NULL) == 0) {
        json_t *nm = json_object_get(node, "metadata");
        json_object_set_new(meta, "ownerReferences",
                            json_pack("[{s:s, s:s, s:O, s:O, s:b}]", "apiVersion", "v1", "kind",
                                      "Node", "name", json_object_get(nm, "name"), "uid",
                                      json_object_get(nm, "uid"), "controller", true));
    }
    json_decref(node);
    free(node_path);
    char *path = xasprintf("/api/v1/namespaces/%s/pods", ns);
    err_t err;
    int rc = kube_create(m->cfg.client, path, mirror, NULL, &res, &err);
    free(path);
    json_decref(mirror);
    bool replaced = false;
    if (rc == -1 && res.status == 409) {
        /* A mirror is there already. One that is being deleted (a user's
         * kubectl delete, the taint manager) is finished off here, as the
         * kubelet does, and made again at the next pass. */
        char *mpath = xasprintf("/api/v1/namespaces/%s/pods/%s", ns, name);
        json_t *old = NULL;
        if (kube_get(m->cfg.client, mpath, &old, &res, NULL) == 0 &&
            json_object_get(json_object_get(old, "metadata"), "deletionTimestamp")) {
            json_t *opts =
                json_pack("{s:s, s:s, s:i, s:{s:O}}", "kind", "DeleteOptions", "apiVersion", "v1",
                          "gracePeriodSeconds", 0, "preconditions", "uid",
                          json_object_get(json_object_get(old, "metadata"), "uid"));
            kube_delete(m->cfg.client, mpath, opts, NULL, &res, NULL);
            json_decref(opts);
            replaced = true;
        }
        json_decref(old);
        free(mpath);
    }
    pthread_mutex_lock(&m->lock);
    if (replaced) {
        e->retry_at = time_mono_ns() + NS_PER_SEC / 2;
    } else if (rc == 0 || res.status == 409) {
        e->mirror_ok = true;
        e->dirty = true;
        free(e->last_status); /* the new mirror has no status yet */
        e->last_status = NULL;
    } else {
        diag_warn("static pod %s/%s: mirror pod: %s", e->ns, e->name, err.msg);
        e->retry_at = time_mono_ns() + 2 * NS_PER_SEC;
    }
}

static void delete_mirror(pod_manager_t *m, entry_t *e)
{
    char *path = xasprintf("/api/v1/namespaces/%s/pods/%s", e->ns, e->name);
    json_t *opts = json_pack("{s:s, s:s, s:i}", "kind", "DeleteOptions", "apiVersion", "v1",
                             "gracePeriodSeconds", 0);
    kube_result_t res;
    kube_delete(m->cfg.client, path, opts, NULL, &res, NULL);
    json_decref(opts);
    free(path);
}

static void free_entry(pod_manager_t *m, entry_t *e)
{
    pod_worker_free(e->worker);
    if (e->is_static) delete_mirror(m, e);
    char *dir = xasprintf("%s/pods/%s", m->data_dir, e->uid);
    volume_teardown(dir, NULL);
    fs_rm_rf(dir, NULL);
    free(dir);
    if (m->logs_dir) {
        char *logs = xasprintf("%s/%s_%s_%s", m->logs_dir, e->ns, e->name, e->uid);
        fs_rm_rf(logs, NULL);
        free(logs);
    }
    json_decref(e->pod);
    json_decref(e->fixed_status);
    free(e->last_status);
    free(e);
}

/* Removes modules no pod on this node uses and none has used for the grace
 * period; the images of every pod still on the node are kept, so a
 * restart of any of them needs no pull. Called with the lock held. */
static void image_gc_locked(pod_manager_t *m)
{
    json_t *keep = json_array();
    for (entry_t *e = m->entries; e; e = e->next) {
        if (!e->worker) continue;
        const podspec_t *spec = pod_worker_spec(e->worker);
        for (size_t i = 0; i < spec->ncontainers; i++)
            json_array_append_new(keep, json_string(spec->containers[i].image));
        for (size_t i = 0; i < spec->ninit; i++)
            json_array_append_new(keep, json_string(spec->init_containers[i].image));
        json_t *st = pod_worker_status_json(e->worker);
        json_t *lists[2] = {json_object_get(st, "containerStatuses"),
                            json_object_get(st, "initContainerStatuses")};
        for (int l = 0; l < 2; l++) {
            size_t i;
            json_t *cs;
            json_array_foreach(lists[l], i, cs)
            {
                json_t *id = json_object_get(cs, "imageID");
                if (json_string_length(id)) json_array_append(keep, id);
            }
        }
        json_decref(st);
    }
    pthread_mutex_unlock(&m->lock);
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
    json_decref(keep);
    pthread_mutex_lock(&m->lock);
}

static void *sync_main(void *arg)
{
    pod_manager_t *m = arg;
    pthread_mutex_lock(&m->lock);
    m->next_gc = time_mono_ns() + IMAGE_GC_INTERVAL_NS;
    while (!atomic_load(&m->stop)) {
        int64_t now = time_mono_ns();
        bool again = false;
        for (entry_t *e = m->entries; e; e = e->next) {
            if (e->is_static && !e->mirror_ok && !e->gone && e->retry_at <= now) {
                create_mirror_locked(m, e);
                again = true;
            }
            if (e->dirty && e->retry_at <= now && !e->gone && (!e->is_static || e->mirror_ok)) {
                write_status_locked(m, e);
                again = true;
            }
            if (e->worker && !e->gone && !e->terminating && e->refresh_at <= now &&
                !pod_worker_finished(e->worker)) {
                e->refresh_at = now + REFRESH_INTERVAL_NS;
                const podspec_t *spec = pod_worker_spec(e->worker);
                char *dir = xasprintf("%s/pods/%s", m->data_dir, e->uid);
                /* The pod as the API server has it now (labels and
                 * annotations of downwardAPI volumes may have changed). */
                json_t *raw = json_incref(e->pod);
                pthread_mutex_unlock(&m->lock);
                err_t err;
                int64_t expires = 0;
                podspec_t *now_spec = NULL;
                if (podspec_parse(raw, &now_spec, NULL) == -1) now_spec = NULL;
                json_decref(raw);
                const podspec_t *use = now_spec ? now_spec : spec;
                if (volume_refresh(&m->host, use, dir, &expires, &err) == -1)
                    diag_warn("pod %s: volume refresh: %s", dir, err.msg);
                if (volume_check_limits(use, dir, &err) == -1) {
                    cluster_host_event_for(m->ch, use->raw, NULL, "Warning", "Evicted", err.msg);
                    pod_worker_stop(e->worker, "Evicted", err.msg);
                }
                podspec_free(now_spec);
                free(dir);
                pthread_mutex_lock(&m->lock);
            }
            bool finished = !e->worker || pod_worker_finished(e->worker);
            if (e->terminating && !e->gone && finished && e->final_written && !e->deleted &&
                !e->dirty && e->retry_at <= now && !m->shutting_down) {
                final_delete_locked(m, e);
            }
        }
        /* Free the entries that are gone and whose worker ended. */
        entry_t **pp = &m->entries;
        while (*pp) {
            entry_t *e = *pp;
            if (e->gone && (!e->worker || pod_worker_finished(e->worker))) {
                *pp = e->next;
                pthread_mutex_unlock(&m->lock);
                diag_info("pod %s/%s (%s): removed", e->ns, e->name, e->uid);
                free_entry(m, e);
                pthread_mutex_lock(&m->lock);
                pp = &m->entries; /* the list may have changed */
                continue;
            }
            pp = &e->next;
        }
        if (m->cfg.images && time_mono_ns() >= m->next_gc) {
            m->next_gc = time_mono_ns() + IMAGE_GC_INTERVAL_NS;
            image_gc_locked(m);
        }
        if (again) continue;
        int64_t until = time_mono_ns() + SYNC_INTERVAL_MS * NS_PER_MS;
        struct timespec ts = {.tv_sec = until / NS_PER_SEC, .tv_nsec = until % NS_PER_SEC};
        pthread_cond_timedwait(&m->cond, &m->lock, &ts);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* Called by cluster_host when a worker's status changed. */
static void on_status_changed(void *ctx, pod_worker_t *w)
{
    pod_manager_t *m = ctx;
    const podspec_t *spec = pod_worker_spec(w);
    pthread_mutex_lock(&m->lock);
    entry_t *e = find_locked(m, spec->uid);
    if (e) {
        e->dirty = true;
        wake(m);
    }
    pthread_mutex_unlock(&m->lock);
}

/* --- public ------------------------------------------------------------------- */

int pod_manager_start(const pod_manager_config_t *cfg, pod_manager_t **out, err_t *err)
{
    pod_manager_t *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    m->node_name = xstrdup(cfg->node_name);
    m->host_ip = xstrdup(cfg->host_ip);
    m->data_dir = xstrdup(cfg->data_dir);
    m->logs_dir = cfg->logs_dir ? xstrdup(cfg->logs_dir) : NULL;
    pthread_mutex_init(&m->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cond, &attr);
    pthread_condattr_destroy(&attr);
    m->events = pod_events_start(cfg->client, cfg->node_name);
    m->ch = cluster_host_new(cfg->client, cfg->images, m->events, m->node_name);
    cluster_host_fill(m->ch, &m->host, on_status_changed, m);
    m->host.rt = cfg->rt;
    m->host.data_dir = m->data_dir;
    m->host.logs_dir = m->logs_dir;
    m->host.node_name = m->node_name;
    m->host.host_ip = m->host_ip;
    m->host.log_max_bytes = cfg->log_max_bytes;
    m->host.log_max_files = cfg->log_max_files;
    m->host.backoff_initial_ms = cfg->backoff_initial_ms > 0 ? cfg->backoff_initial_ms : 10000;
    m->host.backoff_max_ms = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 300000;
    m->host.backoff_reset_ms = 600000;
    m->host.node_allocatable_cpu = cfg->allocatable_cpu;
    m->host.node_allocatable_memory = cfg->allocatable_memory;
    if (pthread_create(&m->syncer, NULL, sync_main, m) != 0) {
        err_set(err, "cannot start the pod sync thread");
        goto fail;
    }
    if (pthread_create(&m->reflector, NULL, reflector_main, m) != 0) {
        atomic_store(&m->stop, true);
        wake(m);
        pthread_join(m->syncer, NULL);
        err_set(err, "cannot start the pod watch thread");
        goto fail;
    }
    *out = m;
    return 0;
fail:
    cluster_host_free(m->ch);
    pod_events_stop(m->events, 0);
    free(m->node_name);
    free(m->host_ip);
    free(m->data_dir);
    free(m->logs_dir);
    free(m);
    return -1;
}

void pod_manager_shutdown(pod_manager_t *m, int64_t grace_ms)
{
    pthread_mutex_lock(&m->lock);
    m->shutting_down = true;
    /* As the kubelet's graceful node shutdown reports it. */
    for (entry_t *e = m->entries; e; e = e->next)
        if (e->worker) pod_worker_stop_for_node_shutdown(e->worker);
    wake(m);
    pthread_mutex_unlock(&m->lock);
    /* Wait for the workers and their final statuses. */
    int64_t until = time_mono_ns() + grace_ms * NS_PER_MS;
    for (;;) {
        bool done = true;
        pthread_mutex_lock(&m->lock);
        for (entry_t *e = m->entries; e; e = e->next)
            if ((e->worker && !pod_worker_finished(e->worker)) || e->dirty) done = false;
        wake(m);
        pthread_mutex_unlock(&m->lock);
        if (done || time_mono_ns() >= until) break;
        time_sleep_ms(50);
    }
}

void pod_manager_free(pod_manager_t *m)
{
    if (!m) return;
    atomic_store(&m->stop, true);
    pthread_mutex_lock(&m->lock);
    wake(m);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->reflector, NULL);
    pthread_join(m->syncer, NULL);
    while (m->entries) {
        entry_t *e = m->entries;
        m->entries = e->next;
        if (e->worker) pod_worker_stop(e->worker, NULL, NULL);
        pod_worker_free(e->worker);
        json_decref(e->pod);
        json_decref(e->fixed_status);
        free(e->last_status);
        free(e);
    }
    pod_events_stop(m->events, 2000);
    cluster_host_free(m->ch);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    free(m->node_name);
    free(m->host_ip);
    free(m->data_dir);
    free(m->logs_dir);
    free(m);
}

void pod_manager_static_sync(pod_manager_t *m, json_t *pods)
{
    pthread_mutex_lock(&m->lock);
    for (entry_t *e = m->entries; e; e = e->next) {
        if (!e->is_static || e->gone) continue;
        bool present = false;
        size_t i;
        json_t *p;
        json_array_foreach(pods, i, p)
        {
            const char *uid = jstr(p, "metadata", "uid");
            if (uid && strcmp(uid, e->uid) == 0) present = true;
        }
        if (!present) {
            diag_info("static pod %s/%s: manifest removed", e->ns, e->name);
            e->gone = true;
            if (e->worker) pod_worker_stop(e->worker, NULL, NULL);
        }
    }
    size_t i;
    json_t *p;
    json_array_foreach(pods, i, p)
    {
        const char *uid = jstr(p, "metadata", "uid");
        if (!uid || find_locked(m, uid)) continue;
        entry_t *e = xcalloc(1, sizeof *e);
        snprintf(e->uid, sizeof e->uid, "%s", uid);
        snprintf(e->ns, sizeof e->ns, "%s", jstr(p, "metadata", "namespace"));
        snprintf(e->name, sizeof e->name, "%s", jstr(p, "metadata", "name"));
        e->pod = json_incref(p);
        e->is_static = true;
        e->next = m->entries;
        m->entries = e;
        requests_of(p, &e->cpu, &e->memory);
        if (!m->shutting_down) start_locked(m, e);
    }
    wake(m);
    pthread_mutex_unlock(&m->lock);
}

json_t *pod_manager_pod_list(pod_manager_t *m)
{
    json_t *items = json_array();
    pthread_mutex_lock(&m->lock);
    for (entry_t *e = m->entries; e; e = e->next) {
        if (e->gone) continue;
        json_t *pod = json_deep_copy(e->pod);
        json_t *status = e->worker
                             ? pod_worker_status_json(e->worker)
                             : json_incref(e->fixed_status ? e->fixed_status
                                                           : json_object_get(e->pod, "status"));
        if (status) json_object_set_new(pod, "status", status);
        json_array_append_new(items, pod);
    }
    pthread_mutex_unlock(&m->lock);
    return json_pack("{s:s, s:s, s:{}, s:o}", "kind", "PodList", "apiVersion", "v1", "metadata",
                     "items", items);
}

int pod_manager_container_logs(pod_manager_t *m, const char *ns, const char *pod,
                               const char *container, char **dir, bool *running, err_t *err)
{
    pthread_mutex_lock(&m->lock);
    entry_t *found = NULL;
    for (entry_t *e = m->entries; e && !found; e = e->next)
        if (!e->gone && strcmp(e->ns, ns) == 0 && strcmp(e->name, pod) == 0) found = e;
    int rc = -1;
    if (!found) {
        err_set(err, "pod %s/%s is not on this node", ns, pod);
    } else if (!found->worker) {
        err_set(err, "pod %s/%s has no containers running on this node", ns, pod);
    } else {
        const podspec_t *spec = pod_worker_spec(found->worker);
        bool known = false;
        for (size_t i = 0; i < spec->ncontainers; i++)
            known |= strcmp(spec->containers[i].name, container) == 0;
        for (size_t i = 0; i < spec->ninit; i++)
            known |= strcmp(spec->init_containers[i].name, container) == 0;
        if (!known) {
            err_set(err, "container %s is not valid for pod %s", container, pod);
        } else if (!m->logs_dir) {
            err_set(err, "this node keeps no container logs");
        } else {
            *dir = xasprintf("%s/%s_%s_%s/%s", m->logs_dir, ns, pod, found->uid, container);
            json_t *st = pod_worker_status_json(found->worker);
            *running = false;
            json_t *lists[2] = {json_object_get(st, "containerStatuses"),
                                json_object_get(st, "initContainerStatuses")};
            for (int l = 0; l < 2; l++) {
                size_t i;
                json_t *cs;
                json_array_foreach(lists[l], i, cs)
                {
                    if (strcmp(json_string_value(json_object_get(cs, "name")), container) == 0 &&
                        json_object_get(json_object_get(cs, "state"), "running"))
                        *running = true;
                }
            }
            json_decref(st);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

void pod_manager_stats(pod_manager_t *m, pod_manager_stats_t *out)
{
    pthread_mutex_lock(&m->lock);
    *out = m->stats;
    out->pods_running = 0;
    out->containers_running = 0;
    for (entry_t *e = m->entries; e; e = e->next) {
        if (!active(e)) continue;
        out->pods_running++;
        json_t *st = pod_worker_status_json(e->worker);
        size_t i;
        json_t *cs;
        json_array_foreach(json_object_get(st, "containerStatuses"), i, cs)
        {
            if (json_object_get(json_object_get(cs, "state"), "running")) out->containers_running++;
        }
        json_decref(st);
    }
    pthread_mutex_unlock(&m->lock);
}
