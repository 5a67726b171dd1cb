/* status_writer.c: the only writer of pod status, and the pod's end.
 *
 * Owns: the PATCH of a pod's status (a merge patch with a uid
 * precondition; static pods patch their mirror, which has another uid),
 * skipped when the status is the one last written; the resume state file
 * of a running pod (pod/state.h), saved on every status change; the final
 * DELETE (gracePeriodSeconds=0, preconditions.uid) of a pod whose
 * deletion was asked once its containers ended and the final status is
 * written; the Pending status of a pod waiting for its sandbox.
 *
 * Threads: statuses are written by STATUS_WRITERS writer threads
 * (status_writer_main), the final DELETE and the Pending status by the
 * manager's sync thread. Each job is taken under m->lock (*_take_locked
 * copies what it needs), run without it (*_run: the network and the
 * disk), and its result applied under the lock (*_done_locked); see
 * manager_priv.h. A status write marks its entry status_busy for its whole
 * length, so one pod never has two writes in flight and its status file
 * and PATCHes stay in order. */
#include "pod/manager_priv.h"
#include "pod/state.h"
#include "util/diag.h"
#include "util/heap.h"
#include "util/json.h"
#include "util/strbuf.h"
#include "util/sync.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- status -------------------------------------------------------------------- */

void status_take_locked(pod_manager_t *m, entry_t *e, status_job_t *job)
{
    lock_assert_held(&m->lock);
    memset(job, 0, sizeof *job);
    memcpy(job->uid, e->uid, sizeof job->uid);
    memcpy(job->ns, e->ns, sizeof job->ns);
    memcpy(job->name, e->name, sizeof job->name);
    job->is_static = e->is_static;
    /* Finished first: a status read after the worker finished is final;
     * read the other way round, a worker ending in between would make a
     * status of a running pod count as the final one. */
    job->finished = entry_finished(e);
    /* Before the status too: a running state published after this read
     * may be in the status, one published before it surely is. */
    job->trace_running = e->worker && pod_worker_trace_running(e->worker);
    job->worker = e->worker;
    job->status = e->worker ? pod_worker_status_json(e->worker) : json_incref(e->fixed_status);
    job->text = json_dumps(job->status, JSON_SORT_KEYS | JSON_COMPACT);
    job->same = e->last_status && job->text && strcmp(job->text, e->last_status) == 0;
    e->dirty = false;
}

void status_run(pod_manager_t *m, status_job_t *job)
{
    if (job->worker) {
        /* The entry is freed only by this thread: the worker is alive. */
        char *dir = manager_pod_dir(m, job->uid);
        err_t serr;
        if (pod_state_save(dir, job->worker, &serr) == -1)
            diag_warn("pod %s/%s: state: %s", job->ns, job->name, serr.msg);
        free(dir);
    }
    job->rc = 0;
    if (job->same || !job->status) return;
    char *path = xasprintf("/api/v1/namespaces/%s/pods/%s/status", job->ns, job->name);
    json_t *patch = job->is_static ? json_pack("{s:O}", "status", job->status)
                                   : json_pack("{s:{s:s}, s:O}", "metadata", "uid", job->uid,
                                               "status", job->status);
    kube_result_t res;
    job->rc = kube_patch(m->cfg.client, path, KUBE_PATCH_MERGE, patch, NULL, &res, &job->err);
    if (job->rc == -1 && res.status == 404) job->rc = 0; /* the pod is gone: nothing to report to */
    json_decref(patch);
    free(path);
}

void status_done_locked(pod_manager_t *m, entry_t *e, status_job_t *job)
{
    lock_assert_held(&m->lock);
    if (job->rc == 0) {
        if (!job->same) m->stats.status_patches++;
        free(e->last_status);
        e->last_status = job->text;
        job->text = NULL;
        if (job->finished) e->final_written = true;
        if (job->trace_running && e->worker) pod_worker_trace_acked(e->worker);
    } else {
        m->stats.status_errors++;
        diag_warn("pod %s/%s: status: %s", job->ns, job->name, job->err.msg);
        e->dirty = true;
        e->retry_at = time_mono_ns() + NS_PER_SEC;
    }
    json_decref(job->status);
    free(job->text);
    memset(job, 0, sizeof *job);
}

/* The next entry whose status is due and that no other writer holds. A
 * status that first says a new pod's containers run goes first: it is
 * what the pod's start (and whoever waits for it to run) waits for, while
 * a Pending one can wait; a new pod's Pending status is not written at all
 * before its first_write_at (by then it has usually started, and is
 * written once) unless something went wrong (a Warning Event), which the
 * status should show at once. Among equals the oldest pod goes first (the table is
 * newest first), so a burst is written in the order it came. *wake is
 * lowered to the earliest first_write_at put off. */
static entry_t *status_next_locked(pod_manager_t *m, int64_t now, int64_t *wake)
{
    lock_assert_held(&m->lock);
    entry_t *started = NULL, *other = NULL;
    for (entry_t *e = m->entries; e; e = e->next) {
        if (!e->dirty || e->status_busy || e->retry_at > now || e->state == ENTRY_GONE ||
            (e->is_static && !e->mirror_ok))
            continue;
        if (e->worker && pod_worker_trace_running(e->worker)) {
            started = e;
        } else if (!e->last_status && e->first_write_at > now && !entry_finished(e) &&
                   !(e->worker && pod_worker_warned(e->worker))) {
            if (e->first_write_at < *wake) *wake = e->first_write_at;
        } else {
            other = e;
        }
    }
    return started ? started : other;
}

void *status_writer_main(void *arg)
{
    thread_set_name("status-writer");
    pod_manager_t *m = arg;
    pthread_mutex_lock(&m->lock);
    while (!atomic_load(&m->stop)) {
        int64_t wake = deadline_after_ms(SYNC_INTERVAL_MS);
        entry_t *e = status_next_locked(m, time_mono_ns(), &wake);
        if (!e) {
            /* Idle: a trim may be waiting for this thread's malloc cache.
             * Released under the lock, so that no wake-up is lost between
             * the look at the table and the wait: it happens once a trim,
             * and takes a fraction of a millisecond. */
            heap_release_if_asked();
            cond_wait_until(&m->writers_cond, &m->lock, wake);
            continue;
        }
        status_job_t job;
        status_take_locked(m, e, &job);
        e->status_busy = true;
        /* One more writer looks for the next due status: statuses that
         * fall due together (a burst's first_write_at passing, retries)
         * spread over the writers instead of waiting for this one. */
        pthread_cond_signal(&m->writers_cond);
        pthread_mutex_unlock(&m->lock);
        status_run(m, &job);
        pthread_mutex_lock(&m->lock);
        status_done_locked(m, e, &job);
        e->status_busy = false;
        /* The syncer may be waiting to delete or free this entry; this
         * writer looks for the next write itself. */
        pthread_cond_broadcast(&m->cond);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* --- the final DELETE ---------------------------------------------------------- */

void delete_take_locked(pod_manager_t *m, entry_t *e, delete_job_t *job)
{
    lock_assert_held(&m->lock);
    memset(job, 0, sizeof *job);
    memcpy(job->uid, e->uid, sizeof job->uid);
    memcpy(job->ns, e->ns, sizeof job->ns);
    memcpy(job->name, e->name, sizeof job->name);
}

void delete_run(pod_manager_t *m, delete_job_t *job)
{
    char *path = xasprintf("/api/v1/namespaces/%s/pods/%s", job->ns, job->name);
    json_t *opts = json_pack("{s:s, s:s, s:i, s:{s:s}}", "kind", "DeleteOptions", "apiVersion",
                             "v1", "gracePeriodSeconds", 0, "preconditions", "uid", job->uid);
    kube_result_t res;
    job->rc = kube_delete(m->cfg.client, path, opts, NULL, &res, &job->err);
    job->http = res.status;
    json_decref(opts);
    free(path);
}

void delete_done_locked(pod_manager_t *m, entry_t *e, delete_job_t *job)
{
    lock_assert_held(&m->lock);
    if (job->rc == 0 || job->http == 404 || job->http == 409) {
        if (e->state == ENTRY_TERMINATING)
            entry_transition_locked(m, e, ENTRY_DELETED, "final status written, pod deleted");
    } else {
        diag_warn("pod %s/%s: delete: %s", job->ns, job->name, job->err.msg);
        e->retry_at = time_mono_ns() + NS_PER_SEC;
    }
}

/* --- the status of a pod waiting for its sandbox --------------------------------- */

static json_t *condition(const char *type, bool status, const char *at, const char *reason,
                         const char *message)
{
    json_t *c = json_pack("{s:s, s:s, s:n, s:s}", "type", type, "status", status ? "True" : "False",
                          "lastProbeTime", "lastTransitionTime", at);
    if (reason) json_object_set_new(c, "reason", json_string(reason));
    if (message) json_object_set_new(c, "message", json_string(message));
    return c;
}

static json_t *waiting_statuses(json_t *containers, const char *reason, strbuf_t *names)
{
    json_t *out = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(containers, i, c)
    {
        const char *name = json_str_at(c, "name");
        const char *image = json_str_at(c, "image");
        if (!name) continue;
        if (names) strbuf_printf(names, "%s%s", names->len ? " " : "", name);
        json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:b, s:i, s:b, s:{s:{s:s}}}", "name",
                                             name, "image", image ? image : "", "imageID", "",
                                             "ready", false, "restartCount", 0, "started", false,
                                             "state", "waiting", "reason", reason));
    }
    return out;
}

json_t *status_pending_json(json_t *pod, const char *host_ip, int64_t now_ns)
{
    char at[64];
    time_format_rfc3339(at, sizeof at, now_ns);
    json_t *inits = json_at(pod, "spec", "initContainers");
    bool has_init = json_array_size(inits) > 0;
    strbuf_t names = STRBUF_INIT;
    json_t *app = waiting_statuses(json_at(pod, "spec", "containers"), "ContainerCreating", &names);
    char *not_ready = xasprintf("containers with unready status: [%s]", strbuf_str(&names));
    strbuf_free(&names);
    json_t *conds = json_array();
    json_array_append_new(conds, condition("PodReadyToStartContainers", false, at, NULL, NULL));
    strbuf_t init_names = STRBUF_INIT;
    json_t *init_st = has_init ? waiting_statuses(inits, "PodInitializing", &init_names) : NULL;
    char *incomplete =
        xasprintf("containers with incomplete status: [%s]", strbuf_str(&init_names));
    strbuf_free(&init_names);
    json_array_append_new(conds, has_init ? condition("Initialized", false, at,
                                                      "ContainersNotInitialized", incomplete)
                                          : condition("Initialized", true, at, NULL, NULL));
    free(incomplete);
    json_array_append_new(conds, condition("Ready", false, at, "ContainersNotReady", not_ready));
    json_array_append_new(conds,
                          condition("ContainersReady", false, at, "ContainersNotReady", not_ready));
    json_array_append_new(conds, condition("PodScheduled", true, at, NULL, NULL));
    free(not_ready);
    json_t *status = json_pack("{s:s, s:o, s:s, s:[{s:s}], s:s, s:o}", "phase", "Pending",
                               "conditions", conds, "hostIP", host_ip, "hostIPs", "ip", host_ip,
                               "startTime", at, "containerStatuses", app);
    if (init_st) json_object_set_new(status, "initContainerStatuses", init_st);
    return status;
}
