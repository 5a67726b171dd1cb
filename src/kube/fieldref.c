/* fieldref.c: fieldRef and resourceFieldRef values (see fieldref.h).
 *
 * Labels and annotations are read from the Pod object (podspec_t.raw) at
 * the moment of the call, so a downwardAPI volume refreshed after a label
 * change writes the new value. Resource values are computed in thousandths
 * of the unit (millicores, or bytes * 1000) so that one divisor rule serves
 * cpu, memory and storage; the arithmetic saturates instead of overflowing,
 * since a limit and a divisor may each be near the int64 range. */
#include "kube/fieldref.h"
#include "kube/quantity.h"
#include "util/json.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends v quoted as Go's %q does (strconv.Quote), which is how the
 * kubelet writes label and annotation values: quotes and backslashes
 * escaped, control bytes as \n, \t ... or \xNN, valid UTF-8 kept. */
static void go_quote(strbuf_t *sb, const char *v)
{
    strbuf_putc(sb, '"');
    for (const unsigned char *p = (const unsigned char *)v; *p;) {
        unsigned char c = *p;
        if (c >= 0x80) {
            /* A valid UTF-8 sequence is kept whole; a stray byte is escaped. */
            size_t n = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
            size_t k = 1;
            while (n && k < n && (p[k] & 0xC0) == 0x80)
                k++;
            if (n && k == n) {
                strbuf_append(sb, (const char *)p, n);
                p += n;
            } else {
                strbuf_printf(sb, "\\x%02x", c);
                p++;
            }
            continue;
        }
        const char *esc = NULL;
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\a':
            esc = "\\a";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\v':
            esc = "\\v";
            break;
        }
        if (esc)
            strbuf_puts(sb, esc);
        else if (c < 0x20 || c == 0x7F)
            strbuf_printf(sb, "\\x%02x", c);
        else
            strbuf_putc(sb, (char)c);
        p++;
    }
    strbuf_putc(sb, '"');
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A whole label or annotation map as the kubelet's FormatMap writes it. */
static char *format_map(json_t *map)
{
    size_t n = 0;
    const char **keys = xcalloc(json_object_size(map) + 1, sizeof *keys);
    const char *k;
    json_t *v;
    json_object_foreach(map, k, v) keys[n++] = k;
    qsort(keys, n, sizeof *keys, cmp_key);
    strbuf_t out = STRBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        const char *val = json_str_at(map, keys[i]);
        strbuf_printf(&out, "%s%s=", i ? "\n" : "", keys[i]);
        go_quote(&out, val ? val : "");
    }
    free(keys);
    return strbuf_take(&out);
}

/* metadata.labels['key'] and metadata.annotations['key'] (either quote). */
static char *map_entry(json_t *pod, const char *path, const char *field)
{
    size_t n = strlen(field);
    if (strncmp(path, field, n) != 0 || path[n] != '[') return NULL;
    const char *q = path + n + 1;
    char quote = *q;
    if (quote != '\'' && quote != '"') return NULL;
    const char *end = strchr(q + 1, quote);
    if (!end || end[1] != ']' || end[2]) return NULL;
    char *key = xstrndup(q + 1, (size_t)(end - q - 1));
    const char *v = json_str_at(pod, "metadata", field + strlen("metadata."), key);
    free(key);
    return xstrdup(v ? v : "");
}

char *kube_fieldref(const kube_node_facts_t *node, const podspec_t *pod, const char *path,
                    unsigned flags, err_t *err)
{
    const char *ip = node->host_ip ? node->host_ip : "";
    if (strcmp(path, "metadata.name") == 0) return xstrdup(pod->name);
    if (strcmp(path, "metadata.namespace") == 0) return xstrdup(pod->namespace);
    if (strcmp(path, "metadata.uid") == 0) return xstrdup(pod->uid);
    if (strcmp(path, "spec.nodeName") == 0)
        return xstrdup(pod->node_name ? pod->node_name : node->node_name ? node->node_name : "");
    if (strcmp(path, "spec.serviceAccountName") == 0) return xstrdup(pod->service_account);
    if (strcmp(path, "status.hostIP") == 0 || strcmp(path, "status.hostIPs") == 0)
        return xstrdup(ip);
    if (strcmp(path, "status.podIPs") == 0)
        return xstrdup(node->pod_ips && node->pod_ips[0] ? node->pod_ips : ip);
    if (strcmp(path, "status.podIP") == 0) {
        if (!node->pod_ips || !node->pod_ips[0]) return xstrdup(ip);
        const char *comma = strchr(node->pod_ips, ',');
        return comma ? xstrndup(node->pod_ips, (size_t)(comma - node->pod_ips))
                     : xstrdup(node->pod_ips);
    }
    if ((flags & KUBE_FIELDREF_WHOLE_MAPS) &&
        (strcmp(path, "metadata.labels") == 0 || strcmp(path, "metadata.annotations") == 0))
        return format_map(json_at(pod->raw, "metadata", path + strlen("metadata.")));
    char *v = map_entry(pod->raw, path, "metadata.labels");
    if (!v) v = map_entry(pod->raw, path, "metadata.annotations");
    if (v) return v;
    err_set(err, "fieldRef: unsupported fieldPath \"%s\"", path);
    return NULL;
}

/* a * b for non-negative values, saturating at INT64_MAX. */
static int64_t mul_sat(int64_t a, int64_t b)
{
    if (a <= 0 || b <= 0) return 0;
    return a > INT64_MAX / b ? INT64_MAX : a * b;
}

/* resources.limits or .requests of a container for res ("limits.x"), in
 * thousandths of the unit; 0 when unset or not a quantity. */
static int64_t container_milli(const podspec_container_t *c, const char *res)
{
    const char *dot = strchr(res, '.');
    char *kind = xstrndup(res, (size_t)(dot - res));
    const char *q = json_str_at(c->raw, "resources", kind, dot + 1);
    free(kind);
    int64_t v = 0;
    if (!q || quantity_parse(q, &v) == -1) v = 0;
    return mul_sat(v, 1000);
}

static const podspec_container_t *container_named(const podspec_t *pod, const char *name)
{
    const podspec_container_t *c = NULL;
    for (size_t i = 0; i < pod->ncontainers; i++)
        if (strcmp(pod->containers[i].name, name) == 0) c = &pod->containers[i];
    for (size_t i = 0; i < pod->ninit; i++)
        if (strcmp(pod->init_containers[i].name, name) == 0) c = &pod->init_containers[i];
    return c;
}

char *kube_resource_fieldref(const kube_node_facts_t *node, const podspec_t *pod,
                             const podspec_container_t *self, json_t *ref, err_t *err)
{
    const char *res = json_str_at(ref, "resource");
    const char *cname = json_str_at(ref, "containerName");
    const podspec_container_t *c = self;
    if (cname && *cname && !(c = container_named(pod, cname))) {
        err_set(err, "resourceFieldRef: no container named \"%s\"", cname);
        return NULL;
    }
    if (!res) {
        err_set(err, "resourceFieldRef: resource is required");
        return NULL;
    }
    if (!c) {
        err_set(err, "resourceFieldRef: containerName is required");
        return NULL;
    }
    int64_t milli; /* thousandths of the unit: millicores, or bytes * 1000 */
    if (strcmp(res, "limits.cpu") == 0)
        milli = c->cpu_limit ? c->cpu_limit : node->allocatable_cpu;
    else if (strcmp(res, "requests.cpu") == 0)
        milli = c->cpu_request;
    else if (strcmp(res, "limits.memory") == 0)
        milli = mul_sat(c->memory_limit ? c->memory_limit : node->allocatable_memory, 1000);
    else if (strcmp(res, "requests.memory") == 0)
        milli = mul_sat(c->memory_request, 1000);
    else if (strcmp(res, "limits.ephemeral-storage") == 0 ||
             strcmp(res, "requests.ephemeral-storage") == 0)
        milli = container_milli(c, res);
    else {
        err_set(err, "resourceFieldRef: unsupported resource \"%s\"", res);
        return NULL;
    }
    /* The API server stores an unset divisor as "0"; both mean "1". */
    json_t *div = json_object_get(ref, "divisor");
    int64_t divisor = 0;
    if (div) {
        char buf[64];
        const char *text = json_string_value(div);
        if (json_is_integer(div)) {
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(div));
            text = buf;
        }
        if (!text || quantity_parse_milli(text, &divisor) == -1 || divisor < 0) {
            err_set(err, "resourceFieldRef: invalid divisor");
            return NULL;
        }
    }
    if (divisor == 0) divisor = 1000;
    /* ceil(value / divisor), as the kubelet rounds up (written so that a
     * value and a divisor both near INT64_MAX cannot overflow). */
    int64_t v = milli <= 0 ? 0 : milli / divisor + (milli % divisor != 0);
    return xasprintf("%lld", (long long)v);
}
