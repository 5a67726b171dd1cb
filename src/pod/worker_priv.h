/* worker_priv.h: the inside of a pod worker, shared by the files that
 * implement it (and by its unit tests); nothing else includes it.
 *
 *   worker.c       the pod thread and the public API (start, stop, update,
 *                  wait, free); a running pod's deadline and end, fired by
 *   runner.c       the pod runner: a heap of due workers on two threads
 *   lifecycle.c    the two state machines: every transition, logged once
 *   container.c    one container's thread: pull, env, load, run, restart
 *                  policy and back-off
 *   pod_status.c   Pod.status and the phase, read from this struct
 *   state.c        the resume format (pods/<uid>/state.json)
 *   termination.c  the termination message (file or log tail)
 *   probes.c       a run's probes and lifecycle hooks (on the probe queue)
 *   sandbox.c      the pod's network sandbox: created before the volumes,
 *                  checked on resume, destroyed after the last container
 *   resizing.c     in-place resize: allocated resources, applying them to
 *                  running containers (live or by a restart)
 *
 * Locking: w->lock guards every field marked "lock" below, of the worker
 * and of its containers; it is never held while a module runs, an image is
 * pulled, the volumes are set up or a host callback is called, so status
 * reads never wait on a container. w->cond (CLOCK_MONOTONIC) is broadcast
 * on every transition, on every stop and on every spec update. Fields
 * marked "own" belong to one thread (named) and are read by it without the
 * lock. */
#ifndef WASMLET_POD_WORKER_PRIV_H
#define WASMLET_POD_WORKER_PRIV_H

#include "pod/lifecycle.h"
#include "pod/resize.h"
#include "pod/termination.h"
#include "pod/trace.h"
#include "pod/worker.h"
#include "probe/probe.h"
#include "wasm/wasmrt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* What a container's status shows: the kubelet's waiting / running /
 * terminated, or none (lastState before any restart). */
typedef enum cstate_kind {
    CSTATE_NONE,
    CSTATE_WAITING,
    CSTATE_RUNNING,
    CSTATE_TERMINATED
} cstate_kind_t;

/* The runtime's message, ": " and a termination message of up to
 * POD_TERM_FILE_MAX bytes. */
#define CSTATE_MESSAGE_MAX (1024 + POD_TERM_FILE_MAX + 4)

typedef struct cstate {
    cstate_kind_t kind;
    char reason[64];
    /* owned, at most CSTATE_MESSAGE_MAX - 1 bytes; NULL: none. On the heap
     * because it is rarely set and can be 5 KiB (a termination message):
     * two fixed buffers per container were 10 KiB of every idle pod.
     * Set with cstate_set, copied with cstate_copy, freed by cstate_clear. */
    char *message;
    int exit_code;
    int64_t started_at; /* ns, realtime; 0 = unset */
    int64_t finished_at;
    char container_id[160];
    /* terminated by a stop (of the pod, or for a restart), not by itself:
     * a fact about the run, recorded for resume (such a run is run again). */
    bool killed;
} cstate_t;

/* One container of the pod.
 *
 * Legal combinations of lc and what the status shows (state):
 *   NEW        state waiting (PodInitializing / ContainerCreating); no thread
 *   PREPARING  waiting (ContainerCreating, or the back-off reason it came from)
 *   RUNNING    running
 *   EXITED     terminated (the run that just ended)
 *   BACKOFF    waiting (CrashLoopBackOff, ImagePullBackOff,
 *              CreateContainerConfigError), or terminated when the delay is 0
 *   DONE       terminated (or, for an init container the pod never reached,
 *              still waiting)
 * last.kind is NONE until the first restart, then terminated. */
typedef struct crun {
    pod_worker_t *w;
    const char *name; /* fixed: an update cannot rename a container */
    /* lock; written only by the container's own thread, between runs (and
     * read by that thread without the lock) */
    const podspec_container_t *spec;
    /* lock: a spec update's definition, taken at the next start; NULL: none */
    const podspec_container_t *next_spec;
    bool init;         /* an init container (a sidecar is one too) */
    int index;         /* within its list */
    container_lc_t lc; /* lock */
    cstate_t state;    /* lock */
    cstate_t last;     /* lock */
    int restart_count; /* lock */
    int runs;          /* lock: runs started, an earlier wasmlet's included */
    /* lock: a spec update asked the current run (or back-off) to end and
     * the container to start again from its new definition. Independent of
     * lc: the run goes on until the module notices the stop. */
    bool restart_requested;
    /* pod thread: a thread was created for the container and must be
     * joined. Independent of lc: a container ends (DONE) with or without
     * ever having had a thread. */
    bool joinable;
    pthread_t thread;
    /* Requested under the lock; swapped for a fresh one (restart) only by
     * the container's thread, under the lock. */
    wasmrt_stop_t *stop;
    char image_id[256]; /* lock */
    int64_t backoff_ms; /* own: the container thread */
    int64_t run_ns;     /* lock */
    char field_path[96];
    /* Probes and lifecycle hooks of the current run (probes.c). All lock.
     * run_live: a run is in progress and its probes and hooks may act on
     * it; cleared when its module ended, before they are stopped. */
    bool run_live;
    bool started;     /* the startup probe passed (or there is none) */
    bool probe_ready; /* the readiness probe passes (or there is none) */
    /* why this run is being ended by wasmlet itself ("liveness",
     * "startup", "FailedPostStartHook"), NULL: it is not */
    const char *kill_reason;
    probe_set_t *probes;
    probe_hook_t *post_start, *pre_stop;
    /* The sandbox decision's pull of this image failed (sandbox.c, the pod
     * thread, before the container thread exists): the container starts
     * from that failure (its waiting reason and back-off), as from its own
     * first pull. Empty reason: it did not fail. */
    char first_pull_reason[32];
    err_t first_pull_err;
    /* lock: when that pull announced itself with a "Pulling" Event (the
     * image was not on the node; monotonic ns), 0: it did not. The
     * container's own pull then says how it ended without a second
     * "Pulling". */
    int64_t peek_pulling_at;
    /* own: the container thread: the last attempt's pull and load
     * (monotonic begin, end), for the pod's start trace */
    int64_t t_pull[2], t_load[2];
    /* In-place resize (resizing.c). All lock. alloc: what the container is
     * allocated (the status's allocatedResources), from the spec at start
     * (or the resume state), then from each resize the node admitted.
     * actual: what its current run has in force (the status's resources);
     * equal to alloc whenever no run is in progress, and set to alloc at
     * every start. resizing: a live resize was asked of the run and not
     * yet taken; resize_error: why the last one was refused (then actual
     * stays as it was). */
    pod_resources_t alloc, actual;
    bool resizing;
    bool resize_asked; /* a live resize was ever asked of a run (its stop) */
    char resize_error[256];
} crun_t;

/* A worker's place in the pod runner (runner.c); all runner.c's lock. */
typedef struct pod_runner_slot {
    int64_t due;  /* when it fires (monotonic ns) */
    size_t index; /* in the heap, while in_heap */
    bool in_heap; /* armed, waiting to fire */
    bool firing;  /* a runner thread is in worker_runner_fire for it */
    bool rearm;   /* armed while firing: back into the heap afterwards */
} pod_runner_slot_t;

/* The pod.
 *
 * Legal combinations: t_ready_to_start is set from INITIALIZING on,
 * t_initialized from RUNNING on (either may stay 0 when a stop came
 * first); ready only while RUNNING or STOPPING; failed (with reason and
 * message) in any state, set at most once and never after FINISHED;
 * t_disruption only with failed (a node shutdown). */
struct pod_worker {
    pod_host_t host; /* a copy: the caller's may go */
    /* The newest spec; replaced (atomically, lock held) by
     * pod_worker_update; readers load it once and may use it without the
     * lock, because a replaced spec stays alive in retired until free. */
    _Atomic(podspec_t *) spec;
    /* A Warning Event was posted (a sandbox, mount or pull failure): the
     * status is news, not a step on the way to Running. */
    atomic_bool warned;
    podspec_t **retired; /* lock */
    size_t nretired;
    char *pod_dir;
    char *log_dir; /* <logs>/<ns>_<name>_<uid> */
    json_t *resume;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    /* lock: a pod thread exists and must be joined; independent of lc (a
     * pod whose thread could not be created is FINISHED without one). Set
     * before the pod thread runs; cleared by the pod thread itself when it
     * hands the pod over (it detaches then: an ended thread left unjoined
     * keeps its stack, about 20 KiB resident, for as long as the pod
     * runs). */
    bool joinable;
    /* lock: the pod thread started the app containers and returned; what
     * the pod waits for from then on (its deadline, its end) is the pod
     * runner's (runner.c). end_wanted: every app container is done (the
     * end is queued on the runner); end_started: a runner thread ends it. */
    bool handed_over, end_wanted, end_started;
    pod_runner_slot_t run_slot;

    /* Fixed at start: a spec update cannot add or remove containers. */
    crun_t *inits, *apps;
    size_t ninit, napps;

    pod_lc_t lc; /* lock */
    /* lock: the pod failed as a whole (init failure, deadline, mount,
     * eviction, shutdown): its phase is Failed whatever the containers
     * say. A verdict, independent of lc. */
    bool failed;
    char reason[64];
    char message[512];
    int64_t start_time; /* realtime ns */
    int64_t start_mono; /* the same instant on the monotonic clock */
    /* lock: condition transition times (realtime ns), set only at the
     * transitions; 0 = not reached */
    int64_t t_ready_to_start, t_initialized, t_ready, t_disruption;
    /* lock: the Ready / ContainersReady conditions, kept at every
     * transition (a cache of a derived value, so that its time is the
     * transition's and not a reader's) */
    bool ready;
    /* lock: metadata.deletionGracePeriodSeconds of a pod being deleted,
     * the preStop hooks' time; -1: the spec's terminationGracePeriodSeconds */
    int64_t deletion_grace;
    /* lock: activeDeadlineSeconds as a monotonic instant, 0 = none;
     * written by start and pod_worker_update, acted on only by the pod
     * thread (pod_wait_locked), which is the one place it fires. */
    int64_t deadline;

    /* sandbox.c: the pod's network. sandbox_wanted (lock) is fixed at
     * start, except while sandbox_undecided (lock): a pod skipped for
     * declaring no port still gets one when an image is a component, which
     * the pod thread learns from the images before the sandbox step
     * (sandbox_decide); until then the status shows no podIP.
     * netns is set by the pod thread before any container thread exists
     * and cleared after all were joined, so container threads read it
     * without the lock; other threads read it under the lock.
     * pod_ips (lock) stays after the sandbox is gone, as the kubelet keeps
     * a finished pod's podIP. sandbox_error (lock): why the last attempt
     * failed, while the pod waits for its sandbox. */
    bool sandbox_wanted;
    bool sandbox_undecided;
    bool sandbox_exists; /* own: the pod thread */
    char *netns;
    char *pod_ips; /* comma-separated, or NULL */
    char sandbox_error[512];

    /* lock: the pod's start trace (trace.h), begun by the manager
     * (pod_worker_trace_begin) for a new pod; trace_crun: the app
     * container whose first run it follows, NULL until one runs. */
    pod_trace_t trace;
    const crun_t *trace_crun;
    /* resizing.c, all lock: a resize the node cannot allocate now
     * (PodResizePending: reason Infeasible or Deferred, its message, since
     * when; reason empty: none), and since when containers have been
     * taking an admitted one (PodResizeInProgress). */
    char resize_pending_reason[16];
    char resize_pending_message[512];
    int64_t t_resize_pending, t_resize_started;
    /* the pod's metadata.generation when the pending resize was last
     * tried, and when the one in progress was allocated (the conditions'
     * observedGeneration; 0: unknown) */
    int64_t gen_resize_pending, gen_resize_started;
};

/* The thread creation the worker uses (pthread_create; tests make it
 * fail). */
extern int (*pod_worker_thread_create)(pthread_t *thread, const pthread_attr_t *attr,
                                       void *(*fn)(void *), void *arg);

static inline podspec_t *worker_spec_now(const pod_worker_t *w)
{
    return atomic_load_explicit(&((pod_worker_t *)w)->spec, memory_order_acquire);
}

/* lifecycle.c: the one place each machine changes state. Illegal moves
 * are refused (false, logged as an error); legal ones are logged at info,
 * refresh the Ready condition and wake the waiters. */
bool pod_transition_locked(pod_worker_t *w, pod_lc_t to);
bool crun_transition_locked(pod_worker_t *w, crun_t *c, container_lc_t to);
/* Sets what a container's status shows (no lifecycle change). */
void cstate_set(cstate_t *s, cstate_kind_t kind, const char *reason, const char *message);
/* *dst = *src, the message copied (dst's old one freed). */
void cstate_copy(cstate_t *dst, const cstate_t *src);
/* Frees the message; the state is then empty (CSTATE_NONE). */
void cstate_clear(cstate_t *s);

/* Whether a container counts as ready: running, started (its startup
 * probe passed) and passing its readiness probe. */
static inline bool crun_ready(const crun_t *c)
{
    return c->state.kind == CSTATE_RUNNING && c->started && c->probe_ready;
}
/* lifecycle.c: recomputes the Ready / ContainersReady conditions (after a
 * transition, or a probe result). */
void pod_ready_refresh_locked(pod_worker_t *w);

/* probes.c: a run's probes and hooks. begin: the run is about to start
 * (state RUNNING set); starts postStart, else the probes. end: the module
 * ended; stops them (without the lock) and returns whether wasmlet ended
 * the run itself (a failed liveness or startup probe, a failed postStart)
 * while the pod goes on; the container then has a fresh stop and restarts
 * as its policy says. stop: ends a running app container politely: its
 * preStop hook within grace_s seconds, then the stop; anything else at
 * once. */
/* A run begins; its postStart hook (then its probes) start now, or with
 * hooks_later once crun_hooks_start_locked is called: a served wasi:http
 * component's, once it listens, so that neither finds its port closed. */
void crun_run_begin_locked(pod_worker_t *w, crun_t *c, bool hooks_later);
void crun_hooks_start_locked(pod_worker_t *w, crun_t *c);
bool crun_run_end(pod_worker_t *w, crun_t *c);
void crun_stop_locked(pod_worker_t *w, crun_t *c, int64_t grace_s);

/* worker.c */
void worker_publish(pod_worker_t *w);
void worker_event(pod_worker_t *w, crun_t *c, const char *type, const char *reason, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));

/* runner.c: the node's pod runner. arm: w fires (worker_runner_fire, on
 * a runner thread, no lock held) at due (monotonic ns) or at the earlier
 * instant it was armed for already; called with or without w->lock.
 * forget: w never fires again; waits for a fire in progress (call
 * without w->lock). */
void pod_runner_arm(pod_worker_t *w, int64_t due);
void pod_runner_forget(pod_worker_t *w);

/* worker.c: a handed-over pod's runner fire: its active deadline, or its
 * end (sidecars stopped, threads joined, sandbox destroyed, FINISHED). */
void worker_runner_fire(pod_worker_t *w);
/* worker.c: queues the end of a handed-over pod whose app containers are
 * all done (called at every container's move to DONE). */
void worker_end_if_due_locked(pod_worker_t *w);

/* worker.c: emits the trace when it just became whole (call without the
 * lock, with what pod_trace_take copied). */
void worker_trace_emit(pod_worker_t *w, const pod_trace_t *t);

/* container.c: the container thread's body, and whether a container that
 * ended with exit_code runs again under the pod's restart policy. */
void *container_main(void *arg);
bool container_restarts(const pod_worker_t *w, const crun_t *c, int exit_code);

/* pod_status.c: the phase (a static string) and Pod.status; both read the
 * worker only. */
const char *pod_phase_locked(const pod_worker_t *w);
json_t *pod_status_json_locked(const pod_worker_t *w);

/* sandbox.c: whether the pod gets a sandbox (decided once, at start);
 * the pod thread's attach (0 when the pod has its sandbox or wants none;
 * the pod thread retries a failure with FailedCreatePodSandBox events) and
 * teardown (the CNI DEL; a failure is left to the garbage collector). */
typedef enum sandbox_need { SANDBOX_NO, SANDBOX_YES, SANDBOX_IF_COMPONENT } sandbox_need_t;
/* Whether the pod gets a sandbox, as far as its spec tells:
 * SANDBOX_IF_COMPONENT when the node skips portless pods and this one
 * declares no port, so only its images can tell (components have sockets). */
sandbox_need_t sandbox_wanted(const pod_host_t *host, const podspec_t *spec);
/* Settles SANDBOX_IF_COMPONENT on the pod thread, before the sandbox step:
 * pulls (IfNotPresent) and reads each image's header. */
void sandbox_decide(pod_worker_t *w);
int sandbox_attach(pod_worker_t *w, err_t *err);
void sandbox_teardown(pod_worker_t *w);

/* resizing.c: the memory limit a run gets from its allocation (without
 * limits.memory, the node's allocatable); whether the pod is taking a
 * resize (PodResizeInProgress); the run's resize callback
 * (wasmrt_resized_fn, ctx the crun). */
uint64_t crun_memory_limit(const pod_worker_t *w, const crun_t *c);
bool pod_resize_in_progress_locked(const pod_worker_t *w);
void crun_resized(void *ctx, bool ok, uint64_t memory_limit, uint32_t cpu_millicores,
                  uint64_t usage);

/* state.c: what pod_worker_resume_json returns, and applying it to a
 * container at start (before any thread exists). */
json_t *pod_state_json_locked(const pod_worker_t *w);
void pod_state_apply(pod_worker_t *w, crun_t *c, json_t *resume);

#endif
