/* resize.c: the decisions of an in-place pod resize (see resize.h).
 * Owns no state, takes no lock. */
#include "pod/resize.h"
#include "util/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *const res_section[POD_RES_COUNT] = {"requests", "limits", "requests", "limits"};
static const char *const res_name[POD_RES_COUNT] = {"cpu", "cpu", "memory", "memory"};

static bool is_cpu(int i)
{
    return i == POD_RES_CPU_REQUEST || i == POD_RES_CPU_LIMIT;
}

/* A quantity's text when the spec's is not at hand: cpu in millicores (or
 * whole cores), memory in the largest binary unit that divides it. */
static void format_quantity(int i, int64_t v, char *out, size_t size)
{
    if (is_cpu(i)) {
        if (v % 1000 == 0)
            snprintf(out, size, "%" PRId64, v / 1000);
        else
            snprintf(out, size, "%" PRId64 "m", v);
        return;
    }
    static const char *const units[] = {"", "Ki", "Mi", "Gi", "Ti"};
    int u = 0;
    while (u < 4 && v != 0 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    snprintf(out, size, "%" PRId64 "%s", v, units[u]);
}

static void quantity_text(json_t *q, int i, int64_t v, char *out, size_t size)
{
    if (json_is_string(q) && strlen(json_string_value(q)) < size)
        snprintf(out, size, "%s", json_string_value(q));
    else
        format_quantity(i, v, out, size);
}

void pod_resources_of(const podspec_container_t *c, pod_resources_t *out)
{
    memset(out, 0, sizeof *out);
    out->v[POD_RES_CPU_REQUEST] = c->cpu_request;
    out->v[POD_RES_CPU_LIMIT] = c->cpu_limit;
    out->v[POD_RES_MEMORY_REQUEST] = c->memory_request;
    out->v[POD_RES_MEMORY_LIMIT] = c->memory_limit;
    json_t *res = json_object_get(c->raw, "resources");
    for (int i = 0; i < POD_RES_COUNT; i++) {
        if (!out->v[i]) continue;
        json_t *q = json_at(res, res_section[i], res_name[i]);
        /* A request the API server defaulted from the limit. */
        if (!q && (i == POD_RES_CPU_REQUEST || i == POD_RES_MEMORY_REQUEST))
            q = json_at(res, "limits", res_name[i]);
        quantity_text(q, i, out->v[i], out->text[i], sizeof out->text[i]);
    }
}

bool pod_resources_equal(const pod_resources_t *a, const pod_resources_t *b)
{
    for (int i = 0; i < POD_RES_COUNT; i++)
        if (a->v[i] != b->v[i]) return false;
    return true;
}

bool pod_resources_limits_differ(const pod_resources_t *a, const pod_resources_t *b)
{
    return a->v[POD_RES_CPU_LIMIT] != b->v[POD_RES_CPU_LIMIT] ||
           a->v[POD_RES_MEMORY_LIMIT] != b->v[POD_RES_MEMORY_LIMIT];
}

/* The set values of one section ("requests" or "limits") as a
 * ResourceList, or NULL when none is set. */
static json_t *section_json(const pod_resources_t *r, const char *section)
{
    json_t *list = NULL;
    for (int i = 0; i < POD_RES_COUNT; i++) {
        if (!r->v[i] || strcmp(res_section[i], section) != 0) continue;
        if (!list) list = json_object();
        char text[32];
        if (r->text[i][0])
            snprintf(text, sizeof text, "%s", r->text[i]);
        else
            format_quantity(i, r->v[i], text, sizeof text);
        json_object_set_new(list, res_name[i], json_string(text));
    }
    return list;
}

json_t *pod_resources_json(const pod_resources_t *r)
{
    json_t *requests = section_json(r, "requests");
    json_t *limits = section_json(r, "limits");
    if (!requests && !limits) return NULL;
    json_t *out = json_object();
    if (requests) json_object_set_new(out, "requests", requests);
    if (limits) json_object_set_new(out, "limits", limits);
    return out;
}

json_t *pod_resources_requests_json(const pod_resources_t *r)
{
    return section_json(r, "requests");
}

json_t *pod_resources_save(const pod_resources_t *r)
{
    json_t *out = json_object();
    for (int i = 0; i < POD_RES_COUNT; i++) {
        if (!r->v[i]) continue;
        char key[32];
        snprintf(key, sizeof key, "%s.%s", res_section[i], res_name[i]);
        json_object_set_new(out, key, json_pack("[I, s]", (json_int_t)r->v[i], r->text[i]));
    }
    return out;
}

bool pod_resources_load(json_t *j, pod_resources_t *out)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(j)) return false;
    for (int i = 0; i < POD_RES_COUNT; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s.%s", res_section[i], res_name[i]);
        json_t *e = json_object_get(j, key);
        if (!e) continue;
        json_t *v = json_array_get(e, 0), *t = json_array_get(e, 1);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || !json_is_string(t)) return false;
        out->v[i] = json_integer_value(v);
        quantity_text(t, i, out->v[i], out->text[i], sizeof out->text[i]);
    }
    return true;
}

void pod_resize_admit(json_t *pod, const pod_admission_node_t *node, pod_resize_verdict_t *out)
{
    memset(out, 0, sizeof *out);
    out->fit = POD_RESIZE_FITS;
    int64_t cpu, memory;
    pod_admission_requests(pod, &cpu, &memory);
    /* As the kubelet's canResizePod: more than the whole node can give is
     * infeasible (memory named when both are short)... */
    if (memory > node->allocatable_memory || cpu > node->allocatable_cpu) {
        out->fit = POD_RESIZE_INFEASIBLE;
        snprintf(out->reason, sizeof out->reason, "Infeasible");
        if (memory > node->allocatable_memory)
            snprintf(out->message, sizeof out->message,
                     "Node didn't have enough capacity: memory, requested: %" PRId64
                     ", capacity: %" PRId64,
                     memory, node->allocatable_memory);
        else
            snprintf(out->message, sizeof out->message,
                     "Node didn't have enough capacity: cpu, requested: %" PRId64
                     ", capacity: %" PRId64,
                     cpu, node->allocatable_cpu);
        return;
    }
    /* ... and what the admission of the pod beside the others refuses is
     * deferred, with the admission's message. */
    pod_admission_t v;
    pod_admit(pod, node, &v);
    if (!v.admit) {
        out->fit = POD_RESIZE_DEFERRED;
        snprintf(out->reason, sizeof out->reason, "Deferred");
        snprintf(out->message, sizeof out->message, "%s", v.message);
    }
}

pod_resize_action_t pod_resize_action(const pod_resources_t *actual,
                                      const pod_resources_t *allocated, bool restarts_cpu,
                                      bool restarts_memory)
{
    bool cpu = actual->v[POD_RES_CPU_REQUEST] != allocated->v[POD_RES_CPU_REQUEST] ||
               actual->v[POD_RES_CPU_LIMIT] != allocated->v[POD_RES_CPU_LIMIT];
    bool memory = actual->v[POD_RES_MEMORY_REQUEST] != allocated->v[POD_RES_MEMORY_REQUEST] ||
                  actual->v[POD_RES_MEMORY_LIMIT] != allocated->v[POD_RES_MEMORY_LIMIT];
    if (!cpu && !memory) return POD_RESIZE_NOTHING;
    if ((cpu && restarts_cpu) || (memory && restarts_memory)) return POD_RESIZE_RESTART;
    return POD_RESIZE_LIVE;
}

void pod_resize_memory_error(const char *container, int64_t limit, uint64_t usage, char *out,
                             size_t size)
{
    snprintf(out, size,
             "cannot decrease memory limits: attempting to set container \"%s\" memory limit "
             "(%" PRId64 ") below current usage (%" PRIu64 ")",
             container, limit, usage);
}
