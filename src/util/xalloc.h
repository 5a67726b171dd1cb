/* xalloc.h: allocation that never returns NULL. wasmlet's own heap running
 * out is not something it can report through a pod status, so it aborts
 * with a message instead of limping on; containers' memory is separate and
 * bounded by their limits (wasm/). */
#ifndef WASMLET_UTIL_XALLOC_H
#define WASMLET_UTIL_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
