/* strvec.h: a growable, NULL-terminated array of owned strings (argv and
 * environment lists). */
#ifndef WASMLET_UTIL_STRVEC_H
#define WASMLET_UTIL_STRVEC_H

#include <stddef.h>

typedef struct strvec {
    char **items; /* NULL-terminated once anything was pushed */
    size_t len;
    size_t cap;
} strvec_t;

#define STRVEC_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Takes ownership of s. */
void strvec_push_owned(strvec_t *v, char *s);
void strvec_push(strvec_t *v, const char *s);
void strvec_free(strvec_t *v);

#endif
