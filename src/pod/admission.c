/* admission.c: the kubelet's admission of a pod (see admission.h).
 *
 * Node affinity follows the API's NodeSelector semantics: nodeSelector is
 * a conjunction of key=value; the required affinity's nodeSelectorTerms
 * are ORed, each term ANDs its matchExpressions (on labels) and its
 * matchFields (only metadata.name exists); a term that is empty or does
 * not parse (an unknown operator, In without values, Gt with a value that
 * is not an integer) selects no node, as in the API server's own matcher.
 * Owns no state, takes no lock. */
#include "pod/admission.h"
#include "kube/pod_spec.h"
#include "util/json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pod_admission_requests(json_t *pod, int64_t *cpu, int64_t *memory)
{
    podspec_t *spec = NULL;
    *cpu = *memory = 0;
    if (podspec_parse(pod, &spec, NULL) == -1) return;
    for (size_t i = 0; i < spec->ncontainers; i++) {
        *cpu += spec->containers[i].cpu_request;
        *memory += spec->containers[i].memory_request;
    }
    for (size_t i = 0; i < spec->ninit; i++) {
        if (spec->init_containers[i].cpu_request > *cpu)
            *cpu = spec->init_containers[i].cpu_request;
        if (spec->init_containers[i].memory_request > *memory)
            *memory = spec->init_containers[i].memory_request;
    }
    podspec_free(spec);
}

/* --- node affinity ------------------------------------------------------------ */

static bool parse_int64(const char *s, long long *out)
{
    if (!s || !*s) return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

static bool values_contain(json_t *values, const char *v)
{
    size_t i;
    json_t *x;
    json_array_foreach(values, i, x)
    {
        if (json_is_string(x) && v && strcmp(json_string_value(x), v) == 0) return true;
    }
    return false;
}

/* One requirement ({key, operator, values}) against a value of the node
 * (NULL: the node has no such label). *valid is cleared when the
 * requirement is malformed. */
static bool requirement_matches(json_t *req, const char *value, bool *valid)
{
    const char *op = json_str_at(req, "operator");
    json_t *values = json_at(req, "values");
    size_t n = json_is_array(values) ? json_array_size(values) : 0;
    if (!op || !json_str_at(req, "key")) goto invalid;
    if (strcmp(op, "In") == 0 || strcmp(op, "NotIn") == 0) {
        if (n == 0) goto invalid;
        bool in = value && values_contain(values, value);
        return strcmp(op, "In") == 0 ? in : !in;
    }
    if (strcmp(op, "Exists") == 0 || strcmp(op, "DoesNotExist") == 0) {
        if (n != 0) goto invalid;
        return strcmp(op, "Exists") == 0 ? value != NULL : value == NULL;
    }
    if (strcmp(op, "Gt") == 0 || strcmp(op, "Lt") == 0) {
        long long want, have;
        if (n != 1 || !parse_int64(json_string_value(json_array_get(values, 0)), &want))
            goto invalid;
        if (!parse_int64(value, &have)) return false;
        return strcmp(op, "Gt") == 0 ? have > want : have < want;
    }
invalid:
    *valid = false;
    return false;
}

static bool term_matches(json_t *term, json_t *labels, const char *node_name)
{
    json_t *exprs = json_at(term, "matchExpressions");
    json_t *fields = json_at(term, "matchFields");
    if (json_array_size(exprs) == 0 && json_array_size(fields) == 0) return false;
    bool valid = true, match = true;
    size_t i;
    json_t *req;
    json_array_foreach(exprs, i, req)
    {
        const char *key = json_str_at(req, "key");
        const char *value = key ? json_str_at(labels, key) : NULL;
        if (!requirement_matches(req, value, &valid)) match = false;
    }
    json_array_foreach(fields, i, req)
    {
        /* Only metadata.name is a node field, and only with In/NotIn of
         * exactly one value. */
        const char *key = json_str_at(req, "key");
        const char *op = json_str_at(req, "operator");
        if (!key || strcmp(key, "metadata.name") != 0 || !op ||
            (strcmp(op, "In") != 0 && strcmp(op, "NotIn") != 0) ||
            json_array_size(json_at(req, "values")) != 1) {
            valid = false;
            continue;
        }
        if (!requirement_matches(req, node_name, &valid)) match = false;
    }
    return valid && match;
}

bool pod_admission_node_matches(json_t *pod, json_t *labels, const char *node_name)
{
    const char *k;
    json_t *v;
    json_object_foreach(json_at(pod, "spec", "nodeSelector"), k, v)
    {
        const char *have = json_str_at(labels, k);
        if (!have || !json_is_string(v) || strcmp(have, json_string_value(v)) != 0) return false;
    }
    json_t *required = json_at(pod, "spec", "affinity", "nodeAffinity",
                               "requiredDuringSchedulingIgnoredDuringExecution");
    if (!required || json_is_null(required)) return true;
    size_t i;
    json_t *term;
    json_array_foreach(json_at(required, "nodeSelectorTerms"), i, term)
    {
        if (term_matches(term, labels, node_name)) return true;
    }
    return false;
}

/* --- the verdict ---------------------------------------------------------------- */

/* The kubelet's InsufficientResourceError, as its reason and message. */
static void reject_insufficient(pod_admission_t *out, const char *resource, long long requested,
                                long long used, long long capacity)
{
    out->admit = false;
    snprintf(out->reason, sizeof out->reason, "OutOf%s", resource);
    snprintf(out->message, sizeof out->message,
             "Node didn't have enough resource: %s, requested: %lld, used: %lld, capacity: %lld",
             resource, requested, used, capacity);
}

/* The kubelet's PredicateFailureError. */
static void reject_predicate(pod_admission_t *out, const char *predicate, const char *desc)
{
    out->admit = false;
    snprintf(out->reason, sizeof out->reason, "%s", predicate);
    snprintf(out->message, sizeof out->message, "Predicate %s failed: %s", predicate, desc);
}

void pod_admit(json_t *pod, const pod_admission_node_t *node, pod_admission_t *out)
{
    memset(out, 0, sizeof *out);
    out->admit = true;
    int64_t cpu, memory;
    pod_admission_requests(pod, &cpu, &memory);
    if (node->used_pods + 1 > node->max_pods)
        reject_insufficient(out, "pods", 1, node->used_pods, node->max_pods);
    else if (cpu && node->used_cpu + cpu > node->allocatable_cpu)
        reject_insufficient(out, "cpu", cpu, node->used_cpu, node->allocatable_cpu);
    else if (memory && node->used_memory + memory > node->allocatable_memory)
        reject_insufficient(out, "memory", memory, node->used_memory, node->allocatable_memory);
    else if (!node->labels_unknown && !pod_admission_node_matches(pod, node->labels, node->name))
        reject_predicate(out, "NodeAffinity", "node(s) didn't match Pod's node affinity/selector");
}
