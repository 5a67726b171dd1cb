/* sync.h: the locking and waiting helpers every threaded subsystem shares.
 *
 * Condition variables in wasmlet wait on the monotonic clock (a wall-clock
 * step must not stretch or cut a back-off), and every timed wait is against
 * an absolute deadline in time_mono_ns() nanoseconds, so a loop that wakes
 * early (a signal, a spurious wake-up) waits only for what is left.
 *
 * lock_assert_held() states a function's precondition in code: in builds
 * with WASMLET_LOCK_ASSERT (the Debug and sanitizer builds) it aborts when
 * the calling thread does not hold the mutex; elsewhere it costs nothing.
 * It reads glibc's owner field of a pthread mutex, so it checks only on
 * glibc; on other C libraries it is a no-op. */
#ifndef WASMLET_UTIL_SYNC_H
#define WASMLET_UTIL_SYNC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* A deadline that never comes, for waits without a timeout. */
#define SYNC_FOREVER INT64_MAX

/* Initialises c to wait on CLOCK_MONOTONIC. */
void cond_init_monotonic(pthread_cond_t *c);

/* Waits on c (m held) until signalled or until deadline_ns (time_mono_ns()
 * scale; SYNC_FOREVER for none). Returns false once the deadline passed,
 * true otherwise; like pthread_cond_wait the wake-up may be spurious, so
 * callers loop on their predicate. */
bool cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline_ns);

/* The monotonic deadline ms milliseconds from now (ms < 0: SYNC_FOREVER). */
int64_t deadline_after_ms(int64_t ms);

/* Names the calling thread (its first 15 bytes), as top -H, perf and
 * /proc/<pid>/task/<tid>/comm show it: what it is for ("api-mux",
 * "status-writer", "ctr:app"), so a profile or a stuck thread says which
 * part of the node it belongs to. */
void thread_set_name(const char *name);

/* Aborts, in lock-asserting builds, unless this thread holds m. */
void lock_assert_held_(const pthread_mutex_t *m, const char *what, const char *file, int line);
#ifdef WASMLET_LOCK_ASSERT
#define lock_assert_held(m) lock_assert_held_((m), #m, __FILE__, __LINE__)
#else
#define lock_assert_held(m) ((void)(m))
#endif

#endif
