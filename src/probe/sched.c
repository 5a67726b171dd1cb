/* sched.c: the node's probe timer queue (see probe.h).
 *
 * One binary heap of timers ordered by due time, and a small fixed set of
 * threads that all wait on the earliest one: the first thread to see it
 * due takes it out, fires it without the lock (one attempt of a probe, or
 * a hook), and queues it again at the instant fire returns. A timer is
 * never in the heap while it fires, so one timer never runs on two threads
 * at once, and cancelling waits only for a fire in progress.
 *
 * Threads: nthreads, started by probe_sched_new, ended by
 * probe_sched_free. Lock: s->mu guards the heap, every timer's queue
 * fields and the quit flag; it is never held while a timer fires. s->wake
 * (CLOCK_MONOTONIC) tells the threads the earliest timer changed;
 * s->idle tells cancellers that a fire returned. */
#include "probe/internal.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

struct probe_sched {
    pthread_mutex_t mu;
    pthread_cond_t wake, idle;
    probe_timer_t **heap; /* mu */
    size_t n, cap;        /* mu */
    bool quit;            /* mu */
    pthread_t *threads;
    int nthreads;
};

/* --- the heap (mu held) -------------------------------------------------------------- */

static void heap_set(probe_sched_t *s, size_t i, probe_timer_t *t)
{
    s->heap[i] = t;
    t->index = i;
}

static void sift_up(probe_sched_t *s, size_t i)
{
    probe_timer_t *t = s->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent]->due <= t->due) break;
        heap_set(s, i, s->heap[parent]);
        i = parent;
    }
    heap_set(s, i, t);
}

static void sift_down(probe_sched_t *s, size_t i)
{
    probe_timer_t *t = s->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t best = t->due;
        if (l < s->n && s->heap[l]->due < best) {
            m = l;
            best = s->heap[l]->due;
        }
        if (r < s->n && s->heap[r]->due < best) m = r;
        if (m == i) break;
        heap_set(s, i, s->heap[m]);
        i = m;
    }
    heap_set(s, i, t);
}

static void heap_push_locked(probe_sched_t *s, probe_timer_t *t)
{
    lock_assert_held(&s->mu);
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->heap = xrealloc(s->heap, s->cap * sizeof *s->heap);
    }
    heap_set(s, s->n++, t);
    sift_up(s, t->index);
    if (t->index == 0) pthread_cond_broadcast(&s->wake);
}

static void heap_remove_locked(probe_sched_t *s, probe_timer_t *t)
{
    lock_assert_held(&s->mu);
    size_t i = t->index;
    t->index = SIZE_MAX;
    if (i == SIZE_MAX) return;
    s->n--;
    if (i == s->n) return;
    probe_timer_t *moved = s->heap[s->n];
    heap_set(s, i, moved);
    sift_down(s, i);
    sift_up(s, moved->index);
}

/* --- the threads --------------------------------------------------------------------- */

static void *sched_main(void *arg)
{
    thread_set_name("prober");
    probe_sched_t *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->quit) {
        if (s->n == 0) {
            cond_wait_until(&s->wake, &s->mu, SYNC_FOREVER);
            continue;
        }
        probe_timer_t *t = s->heap[0];
        if (t->due > time_mono_ns()) {
            cond_wait_until(&s->wake, &s->mu, t->due);
            continue;
        }
        heap_remove_locked(s, t);
        t->running = true;
        pthread_mutex_unlock(&s->mu);
        int64_t next = t->fire(t);
        pthread_mutex_lock(&s->mu);
        t->running = false;
        if (!t->cancelled && next >= 0) {
            t->due = next;
            heap_push_locked(s, t);
        }
        pthread_cond_broadcast(&s->idle);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

probe_sched_t *probe_sched_new(int nthreads)
{
    probe_sched_t *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    cond_init_monotonic(&s->wake);
    cond_init_monotonic(&s->idle);
    s->threads = xcalloc((size_t)(nthreads > 0 ? nthreads : 1), sizeof *s->threads);
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&s->threads[s->nthreads], NULL, sched_main, s) == 0) s->nthreads++;
    return s;
}

void probe_sched_free(probe_sched_t *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->quit = true;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->nthreads; i++)
        pthread_join(s->threads[i], NULL);
    free(s->threads);
    free(s->heap);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static pthread_once_t shared_once = PTHREAD_ONCE_INIT;
static probe_sched_t *shared;

static void shared_init(void)
{
    shared = probe_sched_new(PROBE_SCHED_THREADS);
}

probe_sched_t *probe_sched_shared(void)
{
    pthread_once(&shared_once, shared_init);
    return shared;
}

/* --- timers -------------------------------------------------------------------------- */

void sched_add(probe_sched_t *s, probe_timer_t *t, int64_t due)
{
    pthread_mutex_lock(&s->mu);
    t->sched = s;
    t->due = due;
    t->index = SIZE_MAX;
    t->running = false;
    t->cancelled = false;
    heap_push_locked(s, t);
    pthread_mutex_unlock(&s->mu);
}

void sched_cancel(probe_timer_t *t)
{
    probe_sched_t *s = t->sched;
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    t->cancelled = true;
    heap_remove_locked(s, t);
    while (t->running)
        cond_wait_until(&s->idle, &s->mu, SYNC_FOREVER);
    pthread_mutex_unlock(&s->mu);
}
