/* resizes.c: the pod manager's side of in-place resize, as the kubelet's
 * allocation manager does it: whether the node can allocate what a
 * running pod now asks for (pod_resize_admit, against allocatable and the
 * allocations of the other pods), the verdict handed to the pod's worker
 * (pod_worker_resize, which applies it), and the pod's allocated requests
 * kept in its entry, so that admission and later resizes count what each
 * pod was allocated, not what its spec asks.
 *
 * Runs on the reflector (an update of the pod) and on the syncer (the
 * first pass after a pod joined the table, so that a pod resumed with
 * allocated resources other than its spec's is decided again, and every
 * pass while its resize is Deferred, so that it is allocated as soon as
 * the others leave room; an Infeasible one waits for the next update), with
 * m->lock held; the worker's lock is taken inside it (the manager's lock
 * order). */
#include "pod/manager_priv.h"
#include "pod/resize.h"
#include "util/sync.h"

void manager_resize_locked(pod_manager_t *m, entry_t *e)
{
    lock_assert_held(&m->lock);
    if (!e->worker || e->state != ENTRY_RUNNING) return;
    e->resize_retry = false;
    pod_resize_verdict_t v = {.fit = POD_RESIZE_FITS};
    if (pod_worker_resize_wanted(e->worker)) {
        pod_admission_node_t node = manager_admission_node_locked(m, e);
        pod_resize_admit(e->pod, &node, &v);
        e->resize_retry = v.fit == POD_RESIZE_DEFERRED;
    }
    if (pod_worker_resize(e->worker, &v)) {
        e->dirty = true;
        manager_wake(m);
    }
    pod_worker_allocated_requests(e->worker, &e->cpu, &e->memory);
}
