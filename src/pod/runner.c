/* runner.c: the node's pod runner (see worker_priv.h): what a running
 * pod waits for once its containers are started, without a thread of its
 * own: its active deadline, and its end (the last app container done).
 *
 * One binary heap of workers ordered by when they are due, served by
 * RUNNER_THREADS threads that wait on the earliest: the first thread to
 * see it due takes it out and fires it (worker_runner_fire, worker.c)
 * without the lock. A worker is never in the heap while it fires, so one
 * worker never fires on two threads at once: arming it meanwhile is kept
 * (rearm) and it goes back into the heap when the fire returns.
 *
 * Threads: RUNNER_THREADS, started at the first arm, for the life of the
 * process. Lock: mu guards the heap and every worker's slot; it is never
 * held while a worker fires, and it is taken after a worker's lock (a
 * worker arms itself under its own lock), never before one. */
#include "pod/worker_priv.h"
#include "util/diag.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdlib.h>

/* Ends are short (joins of threads that returned, a CNI DEL) and
 * deadlines fire rarely: two threads keep one slow DEL from holding the
 * rest back. */
#define RUNNER_THREADS 2

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;                            /* monotonic: the earliest changed */
static pthread_cond_t idle = PTHREAD_COND_INITIALIZER; /* a fire returned */
static pod_worker_t **heap;                            /* mu */
static size_t n, cap;                                  /* mu */
static int started;                                    /* mu: threads running */

static int64_t due_of(const pod_worker_t *w)
{
    return w->run_slot.due;
}

static void heap_set(size_t i, pod_worker_t *w)
{
    heap[i] = w;
    w->run_slot.index = i;
}

static void sift_up(size_t i)
{
    pod_worker_t *w = heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (due_of(heap[parent]) <= due_of(w)) break;
        heap_set(i, heap[parent]);
        i = parent;
    }
    heap_set(i, w);
}

static void sift_down(size_t i)
{
    pod_worker_t *w = heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t best = due_of(w);
        if (l < n && due_of(heap[l]) < best) {
            m = l;
            best = due_of(heap[l]);
        }
        if (r < n && due_of(heap[r]) < best) m = r;
        if (m == i) break;
        heap_set(i, heap[m]);
        i = m;
    }
    heap_set(i, w);
}

static void heap_push_locked(pod_worker_t *w)
{
    lock_assert_held(&mu);
    if (n == cap) {
        cap = cap ? cap * 2 : 64;
        heap = xrealloc(heap, cap * sizeof *heap);
    }
    w->run_slot.in_heap = true;
    heap_set(n++, w);
    sift_up(n - 1);
}

static void heap_remove_locked(pod_worker_t *w)
{
    lock_assert_held(&mu);
    size_t i = w->run_slot.index;
    w->run_slot.in_heap = false;
    n--;
    if (i == n) return;
    pod_worker_t *moved = heap[n];
    heap_set(i, moved);
    sift_up(i);
    sift_down(moved->run_slot.index);
}

static void *runner_main(void *arg)
{
    thread_set_name("pod-runner");
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        if (n == 0) {
            pthread_cond_wait(&wake, &mu);
            continue;
        }
        pod_worker_t *w = heap[0];
        if (time_mono_ns() < due_of(w)) {
            cond_wait_until(&wake, &mu, due_of(w));
            continue;
        }
        heap_remove_locked(w);
        w->run_slot.firing = true;
        pthread_mutex_unlock(&mu);
        worker_runner_fire(w);
        pthread_mutex_lock(&mu);
        w->run_slot.firing = false;
        if (w->run_slot.rearm) {
            w->run_slot.rearm = false;
            heap_push_locked(w);
            pthread_cond_signal(&wake);
        }
        pthread_cond_broadcast(&idle);
    }
    return NULL;
}

static void start_locked(void)
{
    lock_assert_held(&mu);
    if (started) return;
    cond_init_monotonic(&wake);
    for (int i = 0; i < RUNNER_THREADS; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, runner_main, NULL) != 0) continue;
        pthread_detach(t);
        started++;
    }
    /* Without a thread nothing would ever end a handed-over pod. */
    if (!started) {
        diag_error("cannot start the pod runner's threads");
        abort();
    }
}

void pod_runner_arm(pod_worker_t *w, int64_t due)
{
    pthread_mutex_lock(&mu);
    start_locked();
    pod_runner_slot_t *s = &w->run_slot;
    if (s->firing) {
        /* Back into the heap when the fire returns. */
        s->due = s->rearm && s->due < due ? s->due : due;
        s->rearm = true;
    } else if (s->in_heap) {
        if (due < s->due) {
            s->due = due;
            sift_up(s->index);
            pthread_cond_broadcast(&wake);
        }
    } else {
        s->due = due;
        heap_push_locked(w);
        pthread_cond_broadcast(&wake);
    }
    pthread_mutex_unlock(&mu);
}

void pod_runner_forget(pod_worker_t *w)
{
    pthread_mutex_lock(&mu);
    pod_runner_slot_t *s = &w->run_slot;
    while (s->firing)
        pthread_cond_wait(&idle, &mu);
    if (s->in_heap) heap_remove_locked(w);
    s->rearm = false;
    pthread_mutex_unlock(&mu);
}
