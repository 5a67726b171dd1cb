/* json.c: path readers for Kubernetes objects (see json.h). */
#include "util/json.h"

#include <stdarg.h>

static json_t *walk(json_t *obj, va_list ap)
{
    for (const char *key = va_arg(ap, const char *); key; key = va_arg(ap, const char *)) {
        if (!json_is_object(obj)) return NULL;
        obj = json_object_get(obj, key);
    }
    return obj;
}

json_t *json_at_(json_t *obj, ...)
{
    va_list ap;
    va_start(ap, obj);
    json_t *v = walk(obj, ap);
    va_end(ap);
    return v;
}

const char *json_str_at_(json_t *obj, ...)
{
    va_list ap;
    va_start(ap, obj);
    json_t *v = walk(obj, ap);
    va_end(ap);
    return json_string_value(v);
}

int64_t json_int_at_(json_t *obj, int64_t dflt, ...)
{
    va_list ap;
    va_start(ap, dflt);
    json_t *v = walk(obj, ap);
    va_end(ap);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

bool json_bool_at_(json_t *obj, int dflt, ...)
{
    va_list ap;
    va_start(ap, dflt);
    json_t *v = walk(obj, ap);
    va_end(ap);
    return json_is_boolean(v) ? json_is_true(v) : dflt != 0;
}
