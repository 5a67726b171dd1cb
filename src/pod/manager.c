/* manager.c: the pods of this node (see manager.h).
 *
 * Owns: the pod table (one entry per pod, manager_priv.h) and each
 * entry's lifecycle (entry_transition_locked is the only place that moves
 * it); the watch handlers, which turn the API server's pods into table
 * updates (new pods are started by pod_start.c); handing spec updates to a
 * running worker (pod_worker_update); the public API (start, shutdown,
 * static pods, the pod list, logs and stats for the HTTPS server).
 *
 * Threads and locks: manager_priv.h. What needs I/O to start a pod (its
 * RuntimeClass, its resume state, fresh Node labels) is gathered before
 * m->lock is taken (start_facts_t), so the admission and the start itself
 * happen under the lock without ever dropping it. */
#include "pod/admission.h"
#include "pod/manager_priv.h"
#include "kube/pod_spec.h"
#include "kube/watch.h"
#include "util/diag.h"
#include "util/json.h"
#include "util/sync.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- the table and the lifecycle ---------------------------------------------- */

static const char *const state_names[ENTRY_STATE_COUNT] = {"waiting", "running", "terminating",
                                                           "deleted", "gone"};

static bool transition_legal(entry_state_t from, entry_state_t to)
{
    switch (from) {
    case ENTRY_WAITING:
        return to == ENTRY_RUNNING || to == ENTRY_TERMINATING || to == ENTRY_GONE;
    case ENTRY_RUNNING:
        return to == ENTRY_TERMINATING || to == ENTRY_GONE;
    case ENTRY_TERMINATING:
        return to == ENTRY_DELETED || to == ENTRY_GONE;
    case ENTRY_DELETED:
        return to == ENTRY_GONE;
    case ENTRY_GONE:
    case ENTRY_STATE_COUNT:
        break;
    }
    return false;
}

bool entry_transition_locked(pod_manager_t *m, entry_t *e, entry_state_t to, const char *why)
{
    lock_assert_held(&m->lock);
    if (e->state == to) return true;
    if (!transition_legal(e->state, to)) {
        diag_warn("pod %s/%s (%s): refused move %s -> %s (%s)", e->ns, e->name, e->uid,
                  state_names[e->state], state_names[to], why);
        return false;
    }
    diag_info("pod %s/%s (%s): %s -> %s: %s", e->ns, e->name, e->uid, state_names[e->state],
              state_names[to], why);
    e->state = to;
    manager_wake(m);
    return true;
}

/* A new entry's first state (the one move that has no "from"). */
void entry_born_locked(pod_manager_t *m, entry_t *e, entry_state_t state, const char *why)
{
    lock_assert_held(&m->lock);
    e->state = state;
    diag_info("pod %s/%s (%s): new -> %s: %s", e->ns, e->name, e->uid, state_names[state], why);
    manager_wake(m);
}

entry_t *entry_find_locked(pod_manager_t *m, const char *uid)
{
    lock_assert_held(&m->lock);
    for (entry_t *e = m->entries; e; e = e->next)
        if (strcmp(e->uid, uid) == 0) return e;
    return NULL;
}

bool entry_finished(const entry_t *e)
{
    return !e->worker || pod_worker_finished(e->worker);
}

bool entry_active(const entry_t *e)
{
    return e->state == ENTRY_WAITING || (e->worker && !pod_worker_finished(e->worker));
}

void manager_wake(pod_manager_t *m)
{
    pthread_cond_broadcast(&m->cond);
    pthread_cond_signal(&m->writers_cond);
}

char *manager_pod_dir(pod_manager_t *m, const char *uid)
{
    return xasprintf("%s/pods/%s", m->data_dir, uid);
}

void manager_each_container(json_t *status, bool with_init, manager_container_fn fn, void *ctx)
{
    static const char *const lists[2] = {"containerStatuses", "initContainerStatuses"};
    for (int l = 0; l < (with_init ? 2 : 1); l++) {
        size_t i;
        json_t *cs;
        json_array_foreach(json_at(status, lists[l]), i, cs)
        {
            if (!fn(ctx, cs, l == 1, json_at(cs, "state", "running") != NULL)) return;
        }
    }
}

entry_t *entry_new_locked(pod_manager_t *m, json_t *pod, bool is_static)
{
    lock_assert_held(&m->lock);
    entry_t *e = xcalloc(1, sizeof *e);
    const char *ns = json_str_at(pod, "metadata", "namespace");
    const char *name = json_str_at(pod, "metadata", "name");
    snprintf(e->uid, sizeof e->uid, "%s", json_str_at(pod, "metadata", "uid"));
    snprintf(e->ns, sizeof e->ns, "%s", ns ? ns : "");
    snprintf(e->name, sizeof e->name, "%s", name ? name : "");
    e->pod = json_incref(pod);
    e->is_static = is_static;
    e->next = m->entries;
    m->entries = e;
    pod_admission_requests(pod, &e->cpu, &e->memory);
    e->resize_retry = true;
    return e;
}

/* --- watch handlers ---------------------------------------------------------------- */

static void update_locked(pod_manager_t *m, entry_t *e, json_t *pod)
{
    lock_assert_held(&m->lock);
    json_t *old = e->pod;
    /* Whether it carries something the worker wants, not merely a status
     * write's echo; the parts that did not change are the old version's
     * from now on: the worker's spec holds the version the pod started
     * from, and each echo would otherwise keep a second copy of the spec,
     * the bulk of a pod's object, for every pod. */
    bool relevant = pod_object_share_unchanged(old, pod);
    bool deliver =
        e->state == ENTRY_RUNNING && e->worker && !pod_worker_finished(e->worker) && relevant;
    e->pod = json_incref(pod);
    json_decref(old);
    /* A pod this node runs has its status from its worker: the API
     * server's copy is our own write coming back, a few KiB per pod not
     * worth keeping. */
    if (e->worker) json_object_del(pod, "status");
    if (!deliver) return;
    podspec_t *spec = NULL;
    err_t err;
    if (podspec_parse(pod, &spec, &err) == -1) {
        diag_warn("pod %s/%s: update ignored: %s", e->ns, e->name, err.msg);
        return;
    }
    pod_worker_update(e->worker, spec);
    manager_resize_locked(m, e);
}

/* A mirror pod (ours) changed or went: the static pod's entry makes it
 * again when it is being deleted or gone. */
static void mirror_event_locked(pod_manager_t *m, const char *static_uid, bool gone)
{
    lock_assert_held(&m->lock);
    entry_t *st = entry_find_locked(m, static_uid);
    if (st && st->is_static && gone) {
        st->mirror_ok = false;
        manager_wake(m);
    }
}

/* An ADDED or MODIFIED pod, or one in a fresh list. f: the start facts
 * for a pod not in the table yet (NULL: none gathered). */
static void upsert_locked(pod_manager_t *m, json_t *pod, start_facts_t *f)
{
    lock_assert_held(&m->lock);
    const char *uid = json_str_at(pod, "metadata", "uid");
    if (!uid || !json_str_at(pod, "metadata", "namespace") || !json_str_at(pod, "metadata", "name"))
        return;
    bool deleting = json_at(pod, "metadata", "deletionTimestamp") != NULL;
    const char *mirror = json_str_at(pod, "metadata", "annotations", "kubernetes.io/config.mirror");
    if (mirror) {
        /* The mirror of one of our static pods: it runs from its file. */
        mirror_event_locked(m, mirror, deleting);
        return;
    }
    entry_t *e = entry_find_locked(m, uid);
    if (!e) {
        e = entry_new_locked(m, pod, false);
        const char *phase = json_str_at(pod, "status", "phase");
        bool terminal = phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0);
        if (terminal || deleting || m->shutting_down) {
            e->final_written = true; /* nothing to run, nothing to write */
            entry_born_locked(m, e, ENTRY_RUNNING,
                              terminal ? "ended before this node saw it" : "not started");
        } else {
            start_admit_locked(m, e, f);
        }
    } else {
        update_locked(m, e, pod);
    }
    if (deleting && (e->state == ENTRY_WAITING || e->state == ENTRY_RUNNING)) {
        entry_transition_locked(m, e, ENTRY_TERMINATING, "deleted in the API server");
        if (e->worker) pod_worker_stop(e->worker, NULL, NULL);
    }
    manager_wake(m);
}

static void gone_locked(pod_manager_t *m, entry_t *e, const char *why)
{
    lock_assert_held(&m->lock);
    if (e->state == ENTRY_GONE) return;
    entry_transition_locked(m, e, ENTRY_GONE, why);
    if (e->worker) pod_worker_stop(e->worker, NULL, NULL);
}

static void remove_locked(pod_manager_t *m, json_t *pod)
{
    lock_assert_held(&m->lock);
    const char *mirror = json_str_at(pod, "metadata", "annotations", "kubernetes.io/config.mirror");
    if (mirror) { /* a mirror pod went: make it again */
        mirror_event_locked(m, mirror, true);
        return;
    }
    const char *uid = json_str_at(pod, "metadata", "uid");
    entry_t *e = uid ? entry_find_locked(m, uid) : NULL;
    if (!e || e->is_static) return;
    gone_locked(m, e, "removed from the API server");
    manager_wake(m);
}

/* One pod from the watch or a list: the facts a new pod needs are
 * gathered first, without the lock. Only the reflector thread adds API
 * pods, so a pod unknown before the gathering is still unknown after. */
static void on_pod(pod_manager_t *m, json_t *pod)
{
    /* The server-side-apply bookkeeping is for the API server's writers;
     * nothing on the node reads it, and it is a large part of a pod's
     * object, which the table keeps for every pod of the node. */
    json_object_del(json_object_get(pod, "metadata"), "managedFields");
    const char *uid = json_str_at(pod, "metadata", "uid");
    pthread_mutex_lock(&m->lock);
    bool known = !uid || entry_find_locked(m, uid) ||
                 json_str_at(pod, "metadata", "annotations", "kubernetes.io/config.mirror");
    pthread_mutex_unlock(&m->lock);
    start_facts_t f;
    bool have = !known && !json_at(pod, "metadata", "deletionTimestamp");
    if (have) start_facts_gather(m, pod, &f);
    pthread_mutex_lock(&m->lock);
    upsert_locked(m, pod, have ? &f : NULL);
    pthread_mutex_unlock(&m->lock);
    if (have) start_facts_free(&f);
}

static int on_list(void *ctx, json_t *items, const char *rv)
{
    (void)rv;
    pod_manager_t *m = ctx;
    pthread_mutex_lock(&m->lock);
    /* Pods we track that the list lacks were deleted while we did not watch. */
    for (entry_t *e = m->entries; e; e = e->next) {
        if (e->is_static || e->state == ENTRY_GONE) continue;
        bool present = false;
        size_t i;
        json_t *p;
        json_array_foreach(items, i, p)
        {
            const char *uid = json_str_at(p, "metadata", "uid");
            if (uid && strcmp(uid, e->uid) == 0) present = true;
        }
        if (!present) gone_locked(m, e, "missing from a relist");
    }
    pthread_mutex_unlock(&m->lock);
    size_t i;
    json_t *p;
    json_array_foreach(items, i, p)
    {
        /* The items of a PodList carry no kind or apiVersion (watch events
         * do); podspec_parse wants a whole Pod. */
        if (!json_object_get(p, "kind")) json_object_set_new(p, "kind", json_string("Pod"));
        if (!json_object_get(p, "apiVersion"))
            json_object_set_new(p, "apiVersion", json_string("v1"));
        on_pod(m, p);
    }
    /* Every pod of the node is in the table now: sandboxes of any other
     * pod are orphans (the first collection runs at once). */
    pthread_mutex_lock(&m->lock);
    if (!m->listed) {
        m->listed = true;
        manager_wake(m);
    }
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int on_event(void *ctx, kube_event_type_t type, json_t *obj)
{
    pod_manager_t *m = ctx;
    if (type == KUBE_EVENT_DELETED) {
        pthread_mutex_lock(&m->lock);
        remove_locked(m, obj);
        pthread_mutex_unlock(&m->lock);
    } else {
        on_pod(m, obj);
    }
    return 0;
}

static void *reflector_main(void *arg)
{
    thread_set_name("pod-watch");
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

static void on_status_changed(void *ctx, pod_worker_t *w)
{
    pod_manager_t *m = ctx;
    const podspec_t *spec = pod_worker_spec(w);
    pthread_mutex_lock(&m->lock);
    entry_t *e = entry_find_locked(m, spec->uid);
    if (e) {
        e->dirty = true;
        manager_wake(m);
    }
    pthread_mutex_unlock(&m->lock);
}

/* --- public ------------------------------------------------------------------- */

static void manager_release(pod_manager_t *m)
{
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
    json_decref(m->node_labels);
    pod_net_destroy(m->net);
    free(m->net);
    pthread_cond_destroy(&m->cond);
    pthread_cond_destroy(&m->writers_cond);
    pthread_mutex_destroy(&m->lock);
    free(m->node_name);
    free(m->host_ip);
    free(m->data_dir);
    free(m->logs_dir);
    free(m->runtime_handler);
    free(m);
}

/* Stops and joins the sync thread, the status writers and (when started)
 * the reflector. */
static void stop_threads(pod_manager_t *m, bool reflector)
{
    atomic_store(&m->stop, true);
    pthread_mutex_lock(&m->lock);
    manager_wake(m);
    pthread_cond_broadcast(&m->writers_cond);
    pthread_mutex_unlock(&m->lock);
    if (reflector) pthread_join(m->reflector, NULL);
    pthread_join(m->syncer, NULL);
    for (int i = 0; i < m->writers_started; i++)
        pthread_join(m->writers[i], NULL);
    m->writers_started = 0;
}

int pod_manager_start(const pod_manager_config_t *cfg, pod_manager_t **out, err_t *err)
{
    pod_manager_t *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    m->cfg.node_labels = NULL; /* borrowed: copied below */
    m->node_name = xstrdup(cfg->node_name);
    m->host_ip = xstrdup(cfg->host_ip);
    m->data_dir = xstrdup(cfg->data_dir);
    m->logs_dir = cfg->logs_dir ? xstrdup(cfg->logs_dir) : NULL;
    m->runtime_handler =
        xstrdup(cfg->runtime_handler ? cfg->runtime_handler : POD_MANAGER_RUNTIME_HANDLER);
    m->node_labels = json_is_object(cfg->node_labels) ? json_deep_copy(cfg->node_labels) : NULL;
    pthread_mutex_init(&m->lock, NULL);
    cond_init_monotonic(&m->cond);
    cond_init_monotonic(&m->writers_cond);
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
    m->host.max_open_files = cfg->max_open_files;
    m->host.backoff_initial_ms = cfg->backoff_initial_ms > 0 ? cfg->backoff_initial_ms : 10000;
    m->host.backoff_max_ms = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 300000;
    m->host.backoff_reset_ms = 600000;
    m->host.node_allocatable_cpu = cfg->allocatable_cpu;
    m->host.node_allocatable_memory = cfg->allocatable_memory;
    if (cfg->net) {
        m->net = xcalloc(1, sizeof *m->net);
        pod_net_init(m->net, cfg->net, cfg->net_skip_portless);
        m->host.net = m->net;
    }
    /* The Node's labels before the first pod is admitted. */
    node_labels_refresh(m);
    if (pthread_create(&m->syncer, NULL, sync_main, m) != 0) {
        err_set(err, "cannot start the pod sync thread");
        goto fail;
    }
    for (int i = 0; i < STATUS_WRITERS; i++) {
        if (pthread_create(&m->writers[i], NULL, status_writer_main, m) != 0) break;
        m->writers_started++;
    }
    if (m->writers_started == 0 || pthread_create(&m->reflector, NULL, reflector_main, m) != 0) {
        stop_threads(m, false);
        err_set(err, "cannot start the pod %s thread",
                m->writers_started == 0 ? "status writer" : "watch");
        goto fail;
    }
    *out = m;
    return 0;
fail:
    manager_release(m);
    return -1;
}

void pod_manager_shutdown(pod_manager_t *m, int64_t grace_ms)
{
    pthread_mutex_lock(&m->lock);
    m->shutting_down = true;
    /* The kubelet's graceful node shutdown: reason Terminated and the
     * DisruptionTarget condition (pod_worker_stop_for_node_shutdown). */
    for (entry_t *e = m->entries; e; e = e->next)
        if (e->worker) pod_worker_stop_for_node_shutdown(e->worker);
    manager_wake(m);
    pthread_mutex_unlock(&m->lock);
    /* Wait for the workers and their final statuses. */
    int64_t until = deadline_after_ms(grace_ms);
    for (;;) {
        bool done = true;
        pthread_mutex_lock(&m->lock);
        for (entry_t *e = m->entries; e; e = e->next)
            if (!entry_finished(e) || e->dirty || e->status_busy) done = false;
        manager_wake(m);
        pthread_mutex_unlock(&m->lock);
        if (done || time_mono_ns() >= until) break;
        time_sleep_ms(50);
    }
}

void pod_manager_free(pod_manager_t *m)
{
    if (!m) return;
    stop_threads(m, true);
    manager_release(m);
}

void pod_manager_static_sync(pod_manager_t *m, json_t *pods)
{
    json_t *fresh = json_array();
    pthread_mutex_lock(&m->lock);
    for (entry_t *e = m->entries; e; e = e->next) {
        if (!e->is_static || e->state == ENTRY_GONE) continue;
        bool present = false;
        size_t i;
        json_t *p;
        json_array_foreach(pods, i, p)
        {
            const char *uid = json_str_at(p, "metadata", "uid");
            if (uid && strcmp(uid, e->uid) == 0) present = true;
        }
        if (!present) gone_locked(m, e, "static pod manifest removed");
    }
    size_t i;
    json_t *p;
    json_array_foreach(pods, i, p)
    {
        const char *uid = json_str_at(p, "metadata", "uid");
        if (uid && !entry_find_locked(m, uid)) json_array_append(fresh, p);
    }
    manager_wake(m);
    pthread_mutex_unlock(&m->lock);
    /* Only this thread adds static pods: one unknown now is unknown after. */
    json_array_foreach(fresh, i, p)
    {
        start_facts_t f;
        start_facts_gather(m, p, &f);
        pthread_mutex_lock(&m->lock);
        if (!entry_find_locked(m, json_str_at(p, "metadata", "uid"))) {
            entry_t *e = entry_new_locked(m, p, true);
            if (m->shutting_down) {
                e->final_written = true;
                entry_born_locked(m, e, ENTRY_RUNNING, "not started");
            } else {
                start_admit_locked(m, e, &f);
            }
        }
        pthread_mutex_unlock(&m->lock);
        start_facts_free(&f);
    }
    json_decref(fresh);
}

json_t *pod_manager_pod_list(pod_manager_t *m)
{
    json_t *items = json_array();
    pthread_mutex_lock(&m->lock);
    for (entry_t *e = m->entries; e; e = e->next) {
        if (e->state == ENTRY_GONE) continue;
        json_t *pod = json_deep_copy(e->pod);
        json_t *status =
            e->worker ? pod_worker_status_json(e->worker)
                      : json_incref(e->fixed_status ? e->fixed_status : json_at(e->pod, "status"));
        if (status) json_object_set_new(pod, "status", status);
        json_array_append_new(items, pod);
    }
    pthread_mutex_unlock(&m->lock);
    return json_pack("{s:s, s:s, s:{}, s:o}", "kind", "PodList", "apiVersion", "v1", "metadata",
                     "items", items);
}

typedef struct running_probe {
    const char *name;
    bool running;
} running_probe_t;

static bool find_running(void *ctx, json_t *cs, bool init, bool running)
{
    (void)init;
    running_probe_t *rp = ctx;
    const char *name = json_str_at(cs, "name");
    if (name && strcmp(name, rp->name) == 0 && running) rp->running = true;
    return !rp->running;
}

int pod_manager_container_logs(pod_manager_t *m, const char *ns, const char *pod,
                               const char *container, char **dir, bool *running, err_t *err)
{
    pthread_mutex_lock(&m->lock);
    entry_t *found = NULL;
    for (entry_t *e = m->entries; e && !found; e = e->next)
        if (e->state != ENTRY_GONE && strcmp(e->ns, ns) == 0 && strcmp(e->name, pod) == 0)
            found = e;
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
            running_probe_t rp = {.name = container};
            manager_each_container(st, true, find_running, &rp);
            *running = rp.running;
            json_decref(st);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static bool count_running(void *ctx, json_t *cs, bool init, bool running)
{
    (void)cs;
    (void)init;
    if (running) (*(uint64_t *)ctx)++;
    return true;
}

void pod_manager_stats(pod_manager_t *m, pod_manager_stats_t *out)
{
    pthread_mutex_lock(&m->lock);
    *out = m->stats;
    out->pods_running = 0;
    out->containers_running = 0;
    for (entry_t *e = m->entries; e; e = e->next) {
        if (!e->worker || pod_worker_finished(e->worker)) continue;
        out->pods_running++;
        json_t *st = pod_worker_status_json(e->worker);
        manager_each_container(st, false, count_running, &out->containers_running);
        json_decref(st);
    }
    pthread_mutex_unlock(&m->lock);
}
