/* heap.c: emptying a thread's malloc cache on request (see heap.h). */
#include "util/heap.h"
#include "util/sync.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

/* glibc's tcache: 64 size classes of chunks 32, 48, ... 1040 bytes, at
 * most 7 chunks each by default. A request of 24 + 16 * i bytes is served
 * from class i. Taking more than a class holds is harmless: the extra
 * chunks come from the arena and go back to it. */
#define CACHE_CLASSES 64
#define CACHE_PER_CLASS 7
#define CACHE_CHUNKS (CACHE_CLASSES * CACHE_PER_CLASS)
#define FREER_STACK (64 * 1024)
#define TRIM_THRESHOLD (128 * 1024)

static atomic_uint release_epoch;
static _Thread_local unsigned released_epoch;

void heap_fix_trim_threshold(void)
{
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
}

static void *free_all(void *arg)
{
    thread_set_name("heap-release");
    void **chunks = arg;
    for (size_t i = 0; i < CACHE_CHUNKS; i++)
        free(chunks[i]);
    return NULL; /* glibc empties this thread's own cache as it exits */
}

void heap_release_thread_cache(void)
{
    void **chunks = malloc(CACHE_CHUNKS * sizeof *chunks);
    if (!chunks) return;
    for (size_t c = 0; c < CACHE_CLASSES; c++)
        for (size_t k = 0; k < CACHE_PER_CLASS; k++)
            chunks[c * CACHE_PER_CLASS + k] = malloc(24 + 16 * c);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, FREER_STACK);
    pthread_t t;
    if (pthread_create(&t, &attr, free_all, chunks) == 0)
        pthread_join(t, NULL);
    else
        free_all(chunks); /* back into this thread's cache: no worse than before */
    pthread_attr_destroy(&attr);
    free(chunks);
}

void heap_release_ask(void)
{
    atomic_fetch_add(&release_epoch, 1);
}

bool heap_release_if_asked(void)
{
    unsigned e = atomic_load_explicit(&release_epoch, memory_order_relaxed);
    if (e == released_epoch) return false;
    released_epoch = e;
    heap_release_thread_cache();
    return true;
}
