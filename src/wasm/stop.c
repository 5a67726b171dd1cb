/* stop.c: stop requests for running containers (see wasmrt.h).
 *
 * A stop is a flag behind a mutex with a condition variable. The flag is
 * what the epoch callback of a running store checks on every tick; the
 * condition variable is what a container blocked in a WASI sleep (our
 * poll_oneoff) or held back by its CPU limit waits on, so a stop wakes it at
 * once instead of at the end of its sleep. A component's blocking waits
 * happen inside Wasmtime's WASI preview 2, so a stop also cancels the
 * stop's cancel token, which ends them (wasmlet_capi.h).
 *
 * The stop is also the channel of in-place resizes (wasmrt_resize): the
 * limits asked for sit beside the flag, a counter tells the run's epoch
 * callback there is something new, and the condition variable wakes a
 * sleeping container so it takes them at once. */
#include "wasm/internal.h"
#include "util/sync.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

wasmrt_stop_t *wasmrt_stop_new(void)
{
    wasmrt_stop_t *stop = xcalloc(1, sizeof *stop);
    pthread_mutex_init(&stop->lock, NULL);
    cond_init_monotonic(&stop->cond);
    stop->token = wasmlet_cancel_token_new();
    return stop;
}

void wasmrt_stop_request(wasmrt_stop_t *stop)
{
    pthread_mutex_lock(&stop->lock);
    atomic_store(&stop->requested, true);
    pthread_cond_broadcast(&stop->cond);
    pthread_mutex_unlock(&stop->lock);
    wasmlet_cancel_token_cancel(stop->token);
}

void wasmrt_stop_drain_by(wasmrt_stop_t *stop, int64_t deadline_mono_ns)
{
    atomic_store(&stop->drain_deadline, deadline_mono_ns);
}

bool wasmrt_stop_requested(wasmrt_stop_t *stop)
{
    return stop && atomic_load(&stop->requested);
}

void wasmrt_stop_free(wasmrt_stop_t *stop)
{
    if (!stop) return;
    wasmlet_cancel_token_delete(stop->token);
    pthread_cond_destroy(&stop->cond);
    pthread_mutex_destroy(&stop->lock);
    free(stop);
}

bool wasmrt_stop_wait_until(wasmrt_stop_t *stop, int64_t deadline_mono_ns)
{
    if (!stop) {
        int64_t left = deadline_mono_ns - time_mono_ns();
        if (left > 0) time_sleep_ms((left + NS_PER_MS - 1) / NS_PER_MS);
        return false;
    }
    pthread_mutex_lock(&stop->lock);
    while (!atomic_load(&stop->requested) &&
           cond_wait_until(&stop->cond, &stop->lock, deadline_mono_ns))
        ;
    bool stopped = atomic_load(&stop->requested);
    pthread_mutex_unlock(&stop->lock);
    return stopped;
}

void wasmrt_resize(wasmrt_stop_t *stop, uint64_t memory_limit, uint32_t cpu_millicores)
{
    if (!stop) return;
    pthread_mutex_lock(&stop->lock);
    stop->want_memory = memory_limit;
    stop->want_cpu = cpu_millicores;
    atomic_fetch_add(&stop->resize_gen, 1);
    pthread_cond_broadcast(&stop->cond);
    pthread_mutex_unlock(&stop->lock);
}

wasmrt_wake_t wasmrt_stop_wait_or_resize(wasmrt_stop_t *stop, int64_t deadline_mono_ns,
                                         uint64_t seen_gen)
{
    if (!stop)
        return wasmrt_stop_wait_until(NULL, deadline_mono_ns) ? WASMRT_WAKE_STOP
                                                              : WASMRT_WAKE_DEADLINE;
    wasmrt_wake_t why = WASMRT_WAKE_DEADLINE;
    pthread_mutex_lock(&stop->lock);
    for (;;) {
        if (atomic_load(&stop->requested)) {
            why = WASMRT_WAKE_STOP;
            break;
        }
        if (atomic_load(&stop->resize_gen) != seen_gen) {
            why = WASMRT_WAKE_RESIZE;
            break;
        }
        if (!cond_wait_until(&stop->cond, &stop->lock, deadline_mono_ns)) break;
    }
    pthread_mutex_unlock(&stop->lock);
    return why;
}

bool wasmrt_stop_wait(wasmrt_stop_t *stop, int64_t ms)
{
    return wasmrt_stop_wait_until(stop, time_mono_ns() + ms * NS_PER_MS);
}
