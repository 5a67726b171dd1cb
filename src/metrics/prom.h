/* prom.h: pieces of the Prometheus text exposition format (version 0.0.4)
 * that every renderer of metrics shares: a family's HELP and TYPE lines,
 * an escaped label value, a histogram's series. */
#ifndef WASMLET_METRICS_PROM_H
#define WASMLET_METRICS_PROM_H

#include "util/strbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The content type of the text format. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* "# HELP name help" and "# TYPE name type". */
void prom_family(strbuf_t *sb, const char *name, const char *type, const char *help);

/* Appends a label value with the format's escapes (backslash, double
 * quote, newline); NULL appends nothing. */
void prom_label_value(strbuf_t *sb, const char *v);

/* Appends `name="value"` (value escaped), after a comma unless first. */
void prom_label(strbuf_t *sb, bool first, const char *name, const char *value);

/* The series of one histogram: a bucket per bound (cumulative counts), the
 * +Inf bucket, _sum and _count. labels ("k=\"v\",...") may be NULL. */
void prom_histogram(strbuf_t *sb, const char *name, const char *labels, const double *bounds,
                    size_t nb, const uint64_t *cumulative, uint64_t count, double sum);

#endif
