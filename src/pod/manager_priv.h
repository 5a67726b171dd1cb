/* manager_priv.h: the inside of the pod manager, shared by the files that
 * implement it; nothing else includes it.
 *
 *   manager.c        the pod table, the watch handlers, each entry's
 *                    lifecycle (entry_transition_locked), spec updates to
 *                    running workers, the public API
 *   pod_start.c      starting a pod: admission, RuntimeClass, the worker
 *   admission.c      the kubelet's admission verdict (pure; admission.h)
 *   sync_loop.c      the sync thread's loop, which runs the jobs below
 *   status_writer.c  the only writer of pod status, the resume state file
 *                    and the final DELETE of a pod that ended
 *   mirror.c         the mirror pods of static pods
 *   housekeeping.c   volume refresh and local storage eviction (emptyDir
 *                    sizeLimit, limits.ephemeral-storage), node-pressure
 *                    eviction (eviction.h), image GC, the Node's labels
 *                    (for admission), the GC of sandboxes
 *                    whose pod is gone (net_gc_run)
 *   dial.c           pod_manager_dial_tcp
 *   resizes.c        in-place resize: the node's verdict on what a pod now
 *                    asks for, handed to its worker; the allocated requests
 *                    admission counts
 *
 * Threads:
 *   reflector  lists and watches the pods of this node (on_list, on_event)
 *              and updates the table; starts admitted pods
 *   syncer     one loop (sync_main) that finishes deletions, creates
 *              mirrors, retries pods waiting for their sandbox, refreshes
 *              volumes, collects orphaned network sandboxes and images, runs
 *              node-pressure eviction and frees the entries that are
 *              gone. It is the only thread that frees an entry, so it may
 *              keep an entry pointer across an unlock.
 *   writers    STATUS_WRITERS threads (status_writer_main) that write pod
 *              statuses: several writes in flight at once, never two for
 *              one pod (entry.status_busy), each the pod's latest status
 *              when its write starts. An entry with a write in flight is
 *              not freed, so a writer too keeps its entry pointer across
 *              the unlock.
 *   others     static pods (pod_manager_static_sync), the HTTPS server
 *              (pod_list, container_logs, stats), workers (status changes,
 *              through cluster_host.c) take m->lock briefly.
 *
 * Locking: m->lock guards the table, every entry field and m->node_labels.
 * No network call and no file I/O is made with it held: each job of the
 * syncer is taken under the lock as a copy (*_take_locked), run without it
 * (*_run) and its result applied under the lock again (*_done_locked).
 * A *_locked function never drops m->lock. Lock order: m->lock, then a
 * worker's lock (pod_worker_status_json, pod_worker_stop), then the Events
 * queue's lock (pod_events_post never waits on the network). The pod
 * network's gc_lock comes before m->lock (net_gc_run reads the live pods
 * inside it); a worker holds it only around its CNI calls, never while it
 * publishes a status. */
#ifndef WASMLET_POD_MANAGER_PRIV_H
#define WASMLET_POD_MANAGER_PRIV_H

#include "pod/cluster_host.h"
#include "pod/events.h"
#include "pod/manager.h"
#include "pod/worker.h"
#include "util/err.h"
#include "util/time.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define SYNC_INTERVAL_MS 1000
/* Status writes in flight at once: a burst of pod starts is bounded by the
 * API server's latency per write, not by one write at a time. With 4, a
 * burst of 100 pod starts waited a median of 660 ms in the writers' queue;
 * with 16, 360 ms (bench/latency.py's burst, two nodes alternating on one
 * control plane). */
#define STATUS_WRITERS 16
#define REFRESH_INTERVAL_NS (10 * NS_PER_SEC)
#define NODE_REFRESH_INTERVAL_NS (10 * NS_PER_SEC)
#define IMAGE_GC_INTERVAL_NS (300 * NS_PER_SEC)
#define IMAGE_GC_GRACE_NS (600 * NS_PER_SEC)
#define EVICTION_INTERVAL_NS (10 * NS_PER_SEC) /* the kubelet's eviction monitoring period */
#define NET_GC_INTERVAL_NS (60 * NS_PER_SEC)
#define NET_GC_BUSY_RETRY_NS (2 * NS_PER_SEC) /* the collector found sandboxes being made */
/* A new pod's first status waits this long for its containers to start
 * (status_writer.c): a pod that starts in time is written once, Running,
 * instead of Pending and then Running, which halves the PATCHes a burst of
 * starts sends the API server while it is busiest. */
#define FIRST_STATUS_GRACE_NS (1 * NS_PER_SEC)
/* Memory back to the system after pods go (sync_loop.c, memory_trim): once
 * removals have been quiet this long, or at the latest this long after the
 * first removal not yet trimmed. */
#define TRIM_QUIET_NS (2 * NS_PER_SEC)
#define TRIM_LATEST_NS (30 * NS_PER_SEC)
/* ...then the trim itself waits this long for the long-lived threads to
 * empty their malloc caches: the status writers wake every
 * SYNC_INTERVAL_MS. */
#define TRIM_RELEASE_WAIT_NS (1500 * NS_PER_MS)

/* A pod's life in the table. Every change goes through
 * entry_transition_locked, which logs it once.
 *
 *   (new) ──▶ WAITING ──▶ RUNNING ──▶ TERMINATING ──▶ DELETED ──▶ GONE
 *     │          │  └──────────┼─────────▲ │                        ▲
 *     └──────────┴─────────────┴───────────┴────────────────────────┘
 *
 *   WAITING      admitted, no worker: its sandbox cannot be created yet
 *                (its RuntimeClass names a handler this node does not
 *                serve, or does not exist); retried at sandbox_retry_at,
 *                with a FailedCreatePodSandBox Event each time; status
 *                Pending (fixed_status)
 *   RUNNING      a worker runs the pod (it may have finished by itself),
 *                or no worker and a fixed status: rejected by admission,
 *                an invalid spec, or terminal when first seen
 *   TERMINATING  deletionTimestamp seen, the worker is asked to stop;
 *                once it finished and its final status is written
 *                (final_written), the pod is deleted from the API server
 *   DELETED      the final DELETE was accepted; the DELETED event comes
 *   GONE         no longer in the API server (a DELETED event, missing
 *                from a relist, a static pod's manifest removed); the
 *                entry is freed once its worker finished
 *
 * Legal combinations: worker is NULL in WAITING and may be NULL in every
 * other state; fixed_status is set only when worker is NULL; GONE and
 * DELETED entries write no status. */
typedef enum entry_state {
    ENTRY_WAITING,
    ENTRY_RUNNING,
    ENTRY_TERMINATING,
    ENTRY_DELETED,
    ENTRY_GONE,
    ENTRY_STATE_COUNT
} entry_state_t;

typedef struct entry {
    char uid[64];
    char ns[128];
    char name[256];
    json_t *pod; /* latest object from the API server (or the manifest) */
    entry_state_t state;
    bool is_static;       /* from --pod-manifest-path; the API server has its mirror */
    pod_worker_t *worker; /* see the legal combinations above */
    json_t *fixed_status; /* status to write for a pod without a worker */
    int64_t cpu, memory;  /* allocated requests, for admission (resizes.c) */
    /* resizes.c: the syncer decides this pod's resize on its next pass (a
     * pod just added, which may have resumed with an allocation of its
     * own; a Deferred resize) */
    bool resize_retry;
    /* status writer (status_writer.c) */
    bool dirty;             /* status to write */
    bool status_busy;       /* a writer is writing it (not freed, not deleted meanwhile) */
    bool final_written;     /* a status written after the worker finished */
    int64_t retry_at;       /* mono ns: next status write, DELETE or mirror attempt */
    int64_t first_write_at; /* mono ns: a new pod's Pending status waits until then */
    char *last_status;      /* last status written */
    /* mirror.c */
    bool mirror_ok; /* the mirror pod exists */
    /* housekeeping.c */
    int64_t refresh_at; /* mono ns: next volume refresh */
    bool evicted;       /* stopped by eviction: its volumes go once it ended ... */
    bool reclaimed;     /* ... and are gone */
    /* WAITING: the next sandbox attempt (mono ns) */
    int64_t sandbox_retry_at;
    struct entry *next;
} entry_t;

struct pod_manager {
    pod_manager_config_t cfg;
    char *node_name, *host_ip, *data_dir, *logs_dir, *runtime_handler;
    cluster_host_t *ch;
    pod_events_t *events;
    pod_host_t host;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* monotonic; the syncer waits on it */
    /* Monotonic; the status writers wait on it. Each wake-up is one
     * writer's (manager_wake signals it): every writer looks at the whole
     * table when it wakes, and waking all sixteen for each change in a
     * burst of starts cost more CPU in context switches and lock hand-offs
     * than the writes themselves. A writer that takes a write wakes one
     * more, and looks for the next write itself before it waits again. */
    pthread_cond_t writers_cond;
    entry_t *entries;
    bool shutting_down;
    atomic_bool stop;
    pthread_t reflector, syncer;
    pthread_t writers[STATUS_WRITERS];
    int writers_started;
    bool reflector_started, syncer_started;
    int64_t next_gc;
    json_t *node_labels;      /* the Node's labels as last read (lock) */
    int64_t node_labels_at;   /* mono ns of that read; 0: never read */
    int64_t node_labels_wall; /* wall-clock ns when that read was sent */
    int64_t node_refresh_at;
    int64_t next_eviction; /* mono ns of the next node-pressure pass */
    pod_manager_stats_t stats;
    /* pod networking (NULL: none); net_gc_at: the next collection of
     * orphaned sandboxes (mono ns), due at once after the first list */
    pod_net_t *net;
    bool listed; /* the first list of this node's pods was applied */
    int64_t net_gc_at;
    /* removed entries not yet followed by a trim (mono ns; 0: none) */
    int64_t trim_first, trim_last;
    int64_t trim_at; /* mono ns of the malloc_trim asked for (0: none) */
};

/* --- manager.c ------------------------------------------------------------------- */

entry_t *entry_find_locked(pod_manager_t *m, const char *uid);
/* A new entry for pod, at the head of the table (no state yet: the
 * caller gives it one with entry_born_locked). */
entry_t *entry_new_locked(pod_manager_t *m, json_t *pod, bool is_static);
/* A new entry's first state (logged as "new -> state"). */
void entry_born_locked(pod_manager_t *m, entry_t *e, entry_state_t state, const char *why);
/* Moves e to state to (logged once, with why); an illegal move is logged
 * and refused. Returns whether e is now in state to. */
bool entry_transition_locked(pod_manager_t *m, entry_t *e, entry_state_t to, const char *why);
/* Whether e holds node resources (admitted and not ended). Both read
 * e->worker: m->lock held (they take no manager, so they cannot assert it). */
bool entry_active(const entry_t *e);
/* Whether e's worker has finished (or there is none). */
bool entry_finished(const entry_t *e);
/* Something in the table changed: wakes the syncer and one status writer. */
void manager_wake(pod_manager_t *m);
/* <data-dir>/pods/<uid> (free it). */
char *manager_pod_dir(pod_manager_t *m, const char *uid);

/* Walks the container statuses of a Pod status (containerStatuses, then
 * initContainerStatuses when with_init) until fn returns false. running:
 * the container's state is running. */
typedef bool (*manager_container_fn)(void *ctx, json_t *cs, bool init, bool running);
void manager_each_container(json_t *status, bool with_init, manager_container_fn fn, void *ctx);

/* --- pod_start.c ------------------------------------------------------------------ */

/* What starting a pod needs from outside the table, gathered without the
 * lock. */
typedef struct start_facts {
    bool sandbox_ok;
    char sandbox_error[ERR_MSG_MAX]; /* the FailedCreatePodSandBox message */
    json_t *resume;                  /* pods/<uid>/state.json, or NULL */
    /* when the pod was delivered (the gathering began): the start trace's
     * watch stage ends and its admission begins here (realtime, monotonic) */
    int64_t seen_wall, seen_mono;
} start_facts_t;

/* The node as admission sees it: its labels and allocatable, and what the
 * active pods other than e (NULL: none) hold (pod_start.c). */
pod_admission_node_t manager_admission_node_locked(const pod_manager_t *m, const entry_t *e);

/* Gathers the facts for pod (no lock held: network and disk). */
void start_facts_gather(pod_manager_t *m, json_t *pod, start_facts_t *f);
void start_facts_free(start_facts_t *f);
/* Admission of a new entry, then its start: RUNNING (a worker, or a
 * rejection as its fixed status) or WAITING for its sandbox. f may be
 * NULL (no facts: the sandbox counts as ready, no resume state). */
void start_admit_locked(pod_manager_t *m, entry_t *e, start_facts_t *f);
/* A WAITING entry's next sandbox attempt, from the sync loop: called with
 * m->lock held, drops it to gather the facts and returns with it held. */
void start_sandbox_retry(pod_manager_t *m, entry_t *e);

/* --- sync_loop.c ------------------------------------------------------------------ */

/* The sync thread (arg: the manager). */
void *sync_main(void *arg);

/* resizes.c: decides a resize of e's pod (when its spec asks for other
 * resources than allocated) and hands the verdict to its worker; keeps
 * e->cpu and e->memory at the pod's allocated requests. */
void manager_resize_locked(pod_manager_t *m, entry_t *e);

/* --- status_writer.c ------------------------------------------------------------- */

/* A status writer thread (arg: the manager). */
void *status_writer_main(void *arg);

typedef struct status_job {
    char uid[64], ns[128], name[256];
    bool is_static;
    pod_worker_t *worker; /* for the resume state file; NULL: none */
    json_t *status;
    char *text;    /* status, compact and sorted */
    bool same;     /* as last written: no PATCH */
    bool finished; /* the worker had finished before status was read */
    /* the status carries the running state the start trace follows (read
     * before the status) */
    bool trace_running;
    int rc;
    err_t err;
} status_job_t;

void status_take_locked(pod_manager_t *m, entry_t *e, status_job_t *job);
void status_run(pod_manager_t *m, status_job_t *job);
void status_done_locked(pod_manager_t *m, entry_t *e, status_job_t *job);

typedef struct delete_job {
    char uid[64], ns[128], name[256];
    int rc;
    long http;
    err_t err;
} delete_job_t;

void delete_take_locked(pod_manager_t *m, entry_t *e, delete_job_t *job);
void delete_run(pod_manager_t *m, delete_job_t *job);
void delete_done_locked(pod_manager_t *m, entry_t *e, delete_job_t *job);

/* The status of a pod admitted but waiting for its sandbox: Pending, its
 * containers waiting (ContainerCreating / PodInitializing). */
json_t *status_pending_json(json_t *pod, const char *host_ip, int64_t now_ns);

/* --- mirror.c ---------------------------------------------------------------------- */

typedef struct mirror_job {
    char uid[64], ns[128], name[256];
    json_t *pod; /* a copy of the static pod */
    bool created, replaced;
    long http;
    err_t err;
} mirror_job_t;

void mirror_take_locked(pod_manager_t *m, entry_t *e, mirror_job_t *job);
void mirror_run(pod_manager_t *m, mirror_job_t *job);
void mirror_done_locked(pod_manager_t *m, entry_t *e, mirror_job_t *job);
/* Deletes the mirror of a static pod that went (no lock held). */
void mirror_delete(pod_manager_t *m, const char *ns, const char *name);

/* --- housekeeping.c ------------------------------------------------------------------ */

typedef struct refresh_job {
    char uid[64];
    pod_worker_t *worker;
    json_t *pod; /* the pod as the API server has it now */
} refresh_job_t;

/* Whether e's volumes are due for a refresh at now. */
bool refresh_due_locked(pod_manager_t *m, entry_t *e, int64_t now);
void refresh_take_locked(pod_manager_t *m, entry_t *e, refresh_job_t *job, int64_t now);
/* Rewrites the configMap/secret/downwardAPI/projected volumes and evicts
 * the pod when an emptyDir passed its sizeLimit. */
void refresh_run(pod_manager_t *m, refresh_job_t *job);

/* The images of every pod still on the node, as a JSON array of strings
 * (references and image IDs). */
json_t *image_gc_keep_locked(pod_manager_t *m);
void image_gc_run(pod_manager_t *m, json_t *keep);

/* Reads the Node's labels from the API server (no lock held); keeps the
 * previous ones when that fails. */
void node_labels_refresh(pod_manager_t *m);

/* Node pressure (pod/eviction.h), every EVICTION_INTERVAL_NS: observes
 * the signals, and when a threshold evicts, reclaims unused images (disk)
 * and evicts the first pod in the kubelet's ranking. Called with m->lock
 * held; drops it around the work and returns with it held. */
void eviction_pass(pod_manager_t *m);

/* Marks the pod of uid evicted (its volumes are reclaimed once it ends, as
 * the kubelet waits for an evicted pod's resources to be reclaimed). */
void eviction_mark_locked(pod_manager_t *m, const char *uid);
/* Removes the volumes of an evicted pod that ended (no lock held). */
void eviction_reclaim(pod_manager_t *m, const char *uid);
/* Destroys the sandboxes on disk of pods that no longer run (no lock
 * held: it takes the pod network's gc_lock, then m->lock for the live set
 * only). */
bool net_gc_run(pod_manager_t *m); /* false: not run, sandbox operations under way */

#endif
