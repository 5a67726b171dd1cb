/* sync.c: monotonic condition waits and the lock-held assertion (see
 * sync.h). */
#include "util/sync.h"
#include "util/time.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

void cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
}

bool cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline_ns)
{
    if (deadline_ns == SYNC_FOREVER) {
        pthread_cond_wait(c, m);
        return true;
    }
    if (time_mono_ns() >= deadline_ns) return false;
    struct timespec ts = {.tv_sec = deadline_ns / NS_PER_SEC, .tv_nsec = deadline_ns % NS_PER_SEC};
    pthread_cond_timedwait(c, m, &ts);
    return time_mono_ns() < deadline_ns;
}

int64_t deadline_after_ms(int64_t ms)
{
    if (ms < 0) return SYNC_FOREVER;
    int64_t now = time_mono_ns();
    if (ms > (SYNC_FOREVER - now) / NS_PER_MS) return SYNC_FOREVER;
    return now + ms * NS_PER_MS;
}

void lock_assert_held_(const pthread_mutex_t *m, const char *what, const char *file, int line)
{
#ifdef __GLIBC__
    if (m->__data.__owner == gettid()) return;
    fprintf(stderr, "%s:%d: lock %s is not held by this thread\n", file, line, what);
    abort();
#else
    (void)m, (void)what, (void)file, (void)line;
#endif
}

void thread_set_name(const char *name)
{
    char buf[16]; /* the kernel's TASK_COMM_LEN */
    snprintf(buf, sizeof buf, "%s", name);
    pthread_setname_np(pthread_self(), buf);
}
