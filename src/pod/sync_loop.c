/* sync_loop.c: the manager's sync thread.
 *
 * One loop, one pass a second or at once when woken: for each entry, its
 * mirror pod (mirror.c), its sandbox retry (pod_start.c), its volumes
 * (housekeeping.c), its final DELETE (status_writer.c); then the entries
 * that are gone are freed (this is the only thread that frees one, so it
 * keeps entry pointers across its own unlocks), the Node's labels are read
 * again, orphaned sandboxes and images are collected, and the heap is
 * trimmed once pods have gone. Statuses are written by the status
 * writers (status_writer.c) beside it; an entry with a write in flight is
 * neither deleted nor freed.
 *
 * Locking: sync_pass runs with m->lock held and drops it around every
 * job's network and disk work, as the take/run/done jobs are built for
 * (manager_priv.h). */
#include "pod/manager_priv.h"
#include "util/diag.h"
#include "util/fs.h"
#include "util/heap.h"
#include "util/sync.h"
#include "util/xalloc.h"
#include "volume/volume.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* Frees an entry already unlinked from the table (no lock held). */
static void entry_free(pod_manager_t *m, entry_t *e)
{
    pod_worker_free(e->worker);
    if (e->is_static) mirror_delete(m, e->ns, e->name);
    char *dir = manager_pod_dir(m, e->uid);
    volume_teardown(dir, NULL);
    fs_rm_rf(dir, NULL);
    free(dir);
    if (m->logs_dir) {
        char *logs = xasprintf("%s/%s_%s_%s", m->logs_dir, e->ns, e->name, e->uid);
        fs_rm_rf(logs, NULL);
        free(logs);
    }
    if (m->ch) cluster_host_forget_pod(m->ch, e->uid);
    json_decref(e->pod);
    json_decref(e->fixed_status);
    free(e->last_status);
    free(e);
}

/* Memory back to the system after pods went. Freed memory stays in
 * glibc's arenas (one per container thread that allocated, up to 8 per
 * core) until trimmed: without this, a node that held 1,000 pods keeps
 * most of their memory after they are deleted. malloc_trim walks every
 * arena and gives back their free pages (milliseconds for a large heap),
 * so it runs once removals have been quiet for TRIM_QUIET_NS, and at least
 * every TRIM_LATEST_NS while they go on. It runs in two steps: first the
 * idle API connections close and every long-lived thread is asked to
 * empty its malloc cache (util/heap.h), whose chunks would pin the pods'
 * old pages; TRIM_RELEASE_WAIT_NS later, when each has passed an idle
 * point, the arenas are trimmed. Called with the lock held. */
static void memory_trim(pod_manager_t *m, int64_t now)
{
    if (m->trim_at && now >= m->trim_at) {
        m->trim_at = 0;
        pthread_mutex_unlock(&m->lock);
        malloc_trim(0);
        pthread_mutex_lock(&m->lock);
        return;
    }
    if (!m->trim_first) return;
    if (now - m->trim_last < TRIM_QUIET_NS && now - m->trim_first < TRIM_LATEST_NS) return;
    m->trim_first = m->trim_last = 0;
    m->trim_at = now + TRIM_RELEASE_WAIT_NS;
    pthread_mutex_unlock(&m->lock);
    /* The idle API handles a burst left (up to one per status writer)
     * go first, so that their memory is free when the arenas are
     * trimmed. */
    if (m->cfg.client) kube_client_close_idle(m->cfg.client);
    heap_release_ask();
    heap_release_if_asked();
    pthread_mutex_lock(&m->lock);
}

/* One pass over the table. Called with the lock held; drops it around
 * every job's I/O (entries stay: only this thread frees them). Returns
 * whether work was done (another pass follows at once). */
static bool sync_pass(pod_manager_t *m)
{
    int64_t now = time_mono_ns();
    bool again = false;
    for (entry_t *e = m->entries; e; e = e->next) {
        if (e->is_static && !e->mirror_ok && e->state != ENTRY_GONE && e->retry_at <= now) {
            mirror_job_t job;
            mirror_take_locked(m, e, &job);
            pthread_mutex_unlock(&m->lock);
            mirror_run(m, &job);
            pthread_mutex_lock(&m->lock);
            mirror_done_locked(m, e, &job);
            again = true;
        }
        if (e->state == ENTRY_WAITING && e->sandbox_retry_at <= now && !m->shutting_down)
            start_sandbox_retry(m, e);
        if (e->resize_retry && e->state == ENTRY_RUNNING && e->worker && !m->shutting_down)
            manager_resize_locked(m, e);
        if (refresh_due_locked(m, e, now)) {
            refresh_job_t job;
            refresh_take_locked(m, e, &job, now);
            pthread_mutex_unlock(&m->lock);
            refresh_run(m, &job);
            pthread_mutex_lock(&m->lock);
        }
        if (e->evicted && !e->reclaimed && e->worker && entry_finished(e)) {
            e->reclaimed = true;
            char uid[sizeof e->uid];
            memcpy(uid, e->uid, sizeof uid);
            pthread_mutex_unlock(&m->lock);
            eviction_reclaim(m, uid);
            pthread_mutex_lock(&m->lock);
        }
        if (e->state == ENTRY_TERMINATING && entry_finished(e) && e->final_written && !e->dirty &&
            !e->status_busy && e->retry_at <= now && !m->shutting_down) {
            delete_job_t job;
            delete_take_locked(m, e, &job);
            pthread_mutex_unlock(&m->lock);
            delete_run(m, &job);
            pthread_mutex_lock(&m->lock);
            delete_done_locked(m, e, &job);
        }
    }
    /* Free the entries that are gone and whose worker ended. */
    entry_t **pp = &m->entries;
    while (*pp) {
        entry_t *e = *pp;
        if (e->state == ENTRY_GONE && entry_finished(e) && !e->status_busy) {
            *pp = e->next;
            pthread_mutex_unlock(&m->lock);
            diag_info("pod %s/%s (%s): removed", e->ns, e->name, e->uid);
            entry_free(m, e);
            pthread_mutex_lock(&m->lock);
            m->trim_last = time_mono_ns();
            if (!m->trim_first) m->trim_first = m->trim_last;
            pp = &m->entries; /* the list may have changed */
            continue;
        }
        pp = &e->next;
    }
    if (time_mono_ns() >= m->node_refresh_at) {
        pthread_mutex_unlock(&m->lock);
        node_labels_refresh(m);
        pthread_mutex_lock(&m->lock);
    }
    eviction_pass(m);
    memory_trim(m, time_mono_ns());
    if (m->net && m->listed && time_mono_ns() >= m->net_gc_at) {
        pthread_mutex_unlock(&m->lock);
        bool ran = net_gc_run(m);
        pthread_mutex_lock(&m->lock);
        m->net_gc_at = time_mono_ns() + (ran ? NET_GC_INTERVAL_NS : NET_GC_BUSY_RETRY_NS);
    }
    if (m->cfg.images && time_mono_ns() >= m->next_gc) {
        m->next_gc = time_mono_ns() + IMAGE_GC_INTERVAL_NS;
        json_t *keep = image_gc_keep_locked(m);
        pthread_mutex_unlock(&m->lock);
        image_gc_run(m, keep);
        json_decref(keep);
        pthread_mutex_lock(&m->lock);
    }
    return again;
}

void *sync_main(void *arg)
{
    thread_set_name("pod-sync");
    pod_manager_t *m = arg;
    pthread_mutex_lock(&m->lock);
    m->next_gc = time_mono_ns() + IMAGE_GC_INTERVAL_NS;
    while (!atomic_load(&m->stop)) {
        if (sync_pass(m)) continue;
        cond_wait_until(&m->cond, &m->lock, deadline_after_ms(SYNC_INTERVAL_MS));
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* Called by cluster_host when a worker's status changed. */
