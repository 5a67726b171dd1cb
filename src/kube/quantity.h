/* quantity.h: Kubernetes resource quantities ("128Mi", "500m", "1.5G",
 * "2e3"), as resources.limits and resourceFieldRef divisors write them. */
#ifndef WASMLET_KUBE_QUANTITY_H
#define WASMLET_KUBE_QUANTITY_H

#include <stdint.h>

/* Parses a quantity into thousandths of its unit (so "500m" is 500 and
 * "2" is 2000, "1Ki" is 1024000), rounding up as Kubernetes does when it
 * turns a quantity into an integer. Returns 0, or -1 when the text is not a
 * quantity or overflows. */
int quantity_parse_milli(const char *text, int64_t *milli);
/* The quantity rounded up to a whole number of units (bytes for memory). */
int quantity_parse(const char *text, int64_t *value);

#endif
