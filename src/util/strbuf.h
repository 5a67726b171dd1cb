/* strbuf.h: a growable, always NUL-terminated byte string. Allocation
 * failure aborts (see xalloc.h): wasmlet treats running out of its own heap
 * as fatal, while a container's memory is bounded by its own limit. */
#ifndef WASMLET_UTIL_STRBUF_H
#define WASMLET_UTIL_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct strbuf {
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len;
    size_t cap;
} strbuf_t;

#define STRBUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void strbuf_append(strbuf_t *sb, const char *data, size_t len);
void strbuf_puts(strbuf_t *sb, const char *s);
void strbuf_putc(strbuf_t *sb, char c);
void strbuf_printf(strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_vprintf(strbuf_t *sb, const char *fmt, va_list ap);
void strbuf_reset(strbuf_t *sb);
/* Returns the string (never NULL) and leaves sb empty; the caller frees. */
char *strbuf_take(strbuf_t *sb);
void strbuf_free(strbuf_t *sb);
static inline const char *strbuf_str(const strbuf_t *sb)
{
    return sb->data ? sb->data : "";
}

#endif
