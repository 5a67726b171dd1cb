/* prom.c: the Prometheus text format's shared pieces (see prom.h). */
#include "metrics/prom.h"

void prom_family(strbuf_t *sb, const char *name, const char *type, const char *help)
{
    strbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void prom_label_value(strbuf_t *sb, const char *v)
{
    for (; v && *v; v++) {
        if (*v == '\\')
            strbuf_puts(sb, "\\\\");
        else if (*v == '"')
            strbuf_puts(sb, "\\\"");
        else if (*v == '\n')
            strbuf_puts(sb, "\\n");
        else
            strbuf_putc(sb, *v);
    }
}

void prom_histogram(strbuf_t *sb, const char *name, const char *labels, const double *bounds,
                    size_t nb, const uint64_t *cumulative, uint64_t count, double sum)
{
    const char *sep = labels && *labels ? "," : "";
    for (size_t i = 0; i < nb; i++)
        strbuf_printf(sb, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels ? labels : "", sep,
                      bounds[i], (unsigned long long)cumulative[i]);
    strbuf_printf(sb, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels ? labels : "", sep,
                  (unsigned long long)count);
    if (labels && *labels) {
        strbuf_printf(sb, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name, labels, sum, name, labels,
                      (unsigned long long)count);
    } else {
        strbuf_printf(sb, "%s_sum %.9g\n%s_count %llu\n", name, sum, name,
                      (unsigned long long)count);
    }
}

void prom_label(strbuf_t *sb, bool first, const char *name, const char *value)
{
    strbuf_printf(sb, "%s%s=\"", first ? "" : ",", name);
    prom_label_value(sb, value);
    strbuf_putc(sb, '"');
}
