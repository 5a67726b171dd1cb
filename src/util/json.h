/* json.h: reading fields out of Kubernetes objects (jansson).
 *
 * Kubernetes objects are deep and most fields are optional, so code reads
 * them by path: json_at(pod, "metadata", "labels") walks object keys and
 * answers NULL as soon as a step is missing or is not an object. The typed
 * readers answer NULL (or the caller's default) when the value at the end is
 * not of the wanted type, so no reader ever needs to check each step. A key
 * may hold any character (labels and annotations hold '.' and '/'), which
 * is why the path is a list of keys and not a dotted string. */
#ifndef WASMLET_UTIL_JSON_H
#define WASMLET_UTIL_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

json_t *json_at_(json_t *obj, ...);
const char *json_str_at_(json_t *obj, ...);
int64_t json_int_at_(json_t *obj, int64_t dflt, ...);
bool json_bool_at_(json_t *obj, int dflt, ...);

/* The value at obj.k1.k2..., or NULL. */
#define json_at(obj, ...) json_at_((obj), __VA_ARGS__, (const char *)NULL)
/* The string at the path, or NULL when missing or not a string. */
#define json_str_at(obj, ...) json_str_at_((obj), __VA_ARGS__, (const char *)NULL)
/* The integer at the path, or dflt when missing or not an integer. */
#define json_int_at(obj, dflt, ...) json_int_at_((obj), (dflt), __VA_ARGS__, (const char *)NULL)
/* The boolean at the path, or dflt when missing or not a boolean. */
#define json_bool_at(obj, dflt, ...) json_bool_at_((obj), (dflt), __VA_ARGS__, (const char *)NULL)

#endif
