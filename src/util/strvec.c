/* strvec.c: string vectors (see strvec.h). */
#include "util/strvec.h"
#include "util/xalloc.h"

#include <stdlib.h>

void strvec_push_owned(strvec_t *v, char *s)
{
    if (v->len + 2 > v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->items = xrealloc(v->items, v->cap * sizeof *v->items);
    }
    v->items[v->len++] = s;
    v->items[v->len] = NULL;
}

void strvec_push(strvec_t *v, const char *s)
{
    strvec_push_owned(v, xstrdup(s));
}

void strvec_free(strvec_t *v)
{
    for (size_t i = 0; i < v->len; i++)
        free(v->items[i]);
    free(v->items);
    v->items = NULL;
    v->len = v->cap = 0;
}
