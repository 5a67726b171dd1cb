/* lifecycle.h: the two state machines of a pod worker, as data.
 *
 * A pod and each of its containers move through a few states, and every
 * move goes through one function (pod_transition_locked and
 * crun_transition_locked in worker_priv.h), which checks it against the
 * tables here, logs it once and wakes whoever waits on the worker. This
 * header holds only the pure part (the states, their names, which moves
 * are legal), so that the tables can be tested without a pod.
 *
 * The pod:
 *
 *   STARTING ──▶ INITIALIZING ──▶ RUNNING ──▶ STOPPING ──▶ FINISHED
 *       │              │                         ▲
 *       ├──────────────┴──── (stop, deadline, failure) ──┘
 *       └──▶ FINISHED (no pod thread could be created)
 *
 *   STARTING      the pod thread sets up the volumes
 *   INITIALIZING  volumes are ready (PodReadyToStartContainers); the init
 *                 containers run one after the other, sidecars stay on
 *   RUNNING       init containers done (Initialized); the app containers run
 *   STOPPING      no container starts again: a stop, the deadline, a
 *                 failure, or the app containers all ended (sidecars end)
 *   FINISHED      every container thread joined, final status published
 *
 * A container:
 *
 *   NEW ──▶ PREPARING ──▶ RUNNING ──▶ EXITED ──▶ DONE
 *              │  ▲  ▲                   │  ▲
 *              │  │  └──── (redefined) ──┘  │
 *              ▼  │                         │
 *            BACKOFF ◀──────────────────────┘
 *
 *   NEW        not started yet (its turn has not come)
 *   PREPARING  pull, env, mounts, load; PREPARING → PREPARING when a spec
 *              update changed its definition while it was preparing
 *   RUNNING    the module runs
 *   EXITED     a run ended; the restart policy decides what is next
 *   BACKOFF    waiting out CrashLoopBackOff / ImagePullBackOff / a
 *              configuration error's retry
 *   DONE       will not run again in this wasmlet (every state may end
 *              here: a stop, the pod's end, a resumed container that ended
 *              before)
 */
#ifndef WASMLET_POD_LIFECYCLE_H
#define WASMLET_POD_LIFECYCLE_H

#include <stdbool.h>

typedef enum pod_lc {
    PLC_STARTING,
    PLC_INITIALIZING,
    PLC_RUNNING,
    PLC_STOPPING,
    PLC_FINISHED,
    PLC_COUNT
} pod_lc_t;

typedef enum container_lc {
    CLC_NEW,
    CLC_PREPARING,
    CLC_RUNNING,
    CLC_EXITED,
    CLC_BACKOFF,
    CLC_DONE,
    CLC_COUNT
} container_lc_t;

/* Whether the machine may move from one state to the other. */
bool pod_lifecycle_pod_legal(pod_lc_t from, pod_lc_t to);
bool pod_lifecycle_container_legal(container_lc_t from, container_lc_t to);

/* "Starting", "Running", ... for logs; "?" for a value out of range. */
const char *pod_lifecycle_pod_name(pod_lc_t s);
const char *pod_lifecycle_container_name(container_lc_t s);

#endif
