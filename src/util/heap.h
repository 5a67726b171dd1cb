/* heap.h: giving the memory of pods that went back to the system.
 *
 * glibc keeps, in each thread, a small cache of the chunks that thread
 * freed (its tcache: up to seven chunks of each size up to 1 KiB). To the
 * arena those chunks are still in use, so they neither merge with their
 * free neighbours nor get returned by malloc_trim, and each one pins the
 * page it lies on. A long-lived thread that freed the last objects of a
 * thousand pods (a status writer, the API multiplexer, the sync thread)
 * keeps a hundred or more such chunks scattered over the pods' old pages:
 * measured after 2,000 idle pods were deleted, the caches of 35 threads
 * held 4,250 chunks pinning 6.3 MiB, more than the heap's live data.
 *
 * No glibc call empties another thread's cache, so the threads do it
 * themselves: whoever trims asks (heap_release_ask), each long-lived
 * thread calls heap_release_if_asked where it idles, and the trim follows
 * once they had time to. With another allocator (ASan's, musl's) the
 * release is a harmless round of mallocs and frees.
 *
 * The second half is the free top of each thread arena, which malloc_trim
 * leaves alone: glibc shrinks it only when it exceeds the trim threshold,
 * and that threshold rises (to twice the largest mmapped chunk freed, up
 * to 64 MiB) unless it is fixed. Measured after 2,000 pods went, the
 * arenas' tops held 9.4 MiB with the rising threshold. */
#ifndef WASMLET_UTIL_HEAP_H
#define WASMLET_UTIL_HEAP_H

#include <stdbool.h>

/* Fixes glibc's trim threshold at 128 KiB (its starting value), so a
 * thread arena's free top beyond that goes back as it forms. The mmap
 * threshold then stays at 128 KiB too: larger blocks are mapped and
 * unmapped whole (the mappings per idle pod did not change: 7.5). Called
 * once, before the threads start. */
void heap_fix_trim_threshold(void);

/* Returns the calling thread's cached free chunks to their arenas: it
 * takes every cached chunk back with malloc and has a short-lived thread
 * free them all, whose own cache glibc empties as it exits. About 900
 * mallocs and a thread start: a fraction of a millisecond. */
void heap_release_thread_cache(void);

/* Asks every thread that calls heap_release_if_asked to release its
 * cache at its next idle point. */
void heap_release_ask(void);

/* Releases the calling thread's cache when heap_release_ask was called
 * since this thread last did; returns whether it did. Cheap otherwise
 * (one atomic load), so idle loops call it on every turn. */
bool heap_release_if_asked(void);

#endif
