/* env.c: building a container's environment and argv.
 *
 * The order and precedence are the kubelet's: envFrom sources first, in
 * order (a prefix is put in front of each key), then env entries, each
 * replacing an earlier variable of the same name; service link variables
 * come first of all and are overridden by anything the pod defines. An env
 * value may refer to variables defined before it with $(NAME); command and
 * args may refer to any variable of the final environment. Sources:
 * value, fieldRef (metadata.name, .namespace, .uid, .labels['k'],
 * .annotations['k'], spec.nodeName, spec.serviceAccountName, status.hostIP,
 * .hostIPs, .podIP, .podIPs), resourceFieldRef (limits/requests of cpu,
 * memory and ephemeral-storage, with a divisor, "0" meaning 1 as the API
 * server stores an unset one; an unset cpu or memory limit reads as the
 * node's allocatable, an unset ephemeral-storage limit as 0 since the
 * host table carries no allocatable storage), configMapKeyRef and
 * secretKeyRef (optional or not; errors in the kubelet's words),
 * and envFrom configMapRef/secretRef. A WASI module has no network of its
 * own, so its pod IP is the node's IP, as for a hostNetwork pod. */
#include "pod/env.h"
#include "kube/quantity.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *pod_env_expand(const char *text, env_lookup_fn lookup, void *ctx)
{
    strbuf_t out = STRBUF_INIT;
    const char *p = text;
    while (*p) {
        if (p[0] != '$') {
            strbuf_putc(&out, *p++);
            continue;
        }
        if (p[1] == '$') { /* $$ -> $ */
            strbuf_putc(&out, '$');
            p += 2;
            continue;
        }
        if (p[1] == '(') {
            const char *close = strchr(p + 2, ')');
            if (close) {
                const char *val = lookup(ctx, p + 2, (size_t)(close - (p + 2)));
                if (val)
                    strbuf_puts(&out, val);
                else
                    strbuf_append(&out, p, (size_t)(close - p + 1));
                p = close + 1;
                continue;
            }
        }
        strbuf_putc(&out, *p++);
    }
    return strbuf_take(&out);
}

/* The environment under construction: "NAME=value" strings. */
static const char *env_get(void *ctx, const char *name, size_t len)
{
    strvec_t *env = ctx;
    /* "NAME=value" entries: a name holding '=' would match inside a value. */
    if (memchr(name, '=', len)) return NULL;
    for (size_t i = 0; i < env->len; i++)
        if (strncmp(env->items[i], name, len) == 0 && env->items[i][len] == '=')
            return env->items[i] + len + 1;
    return NULL;
}

static void env_set(strvec_t *env, const char *name, const char *value)
{
    size_t len = strlen(name);
    char *entry = xasprintf("%s=%s", name, value);
    for (size_t i = 0; i < env->len; i++) {
        if (strncmp(env->items[i], name, len) == 0 && env->items[i][len] == '=') {
            free(env->items[i]);
            env->items[i] = entry;
            return;
        }
    }
    strvec_push_owned(env, entry);
}

static const char *str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* metadata.labels['key'] and metadata.annotations['key']. */
static char *map_path(json_t *meta, const char *path, const char *field)
{
    size_t n = strlen(field);
    if (strncmp(path, field, n) != 0 || path[n] != '[') return NULL;
    const char *q = path + n + 1;
    char quote = *q;
    if (quote != '\'' && quote != '"') return NULL;
    const char *end = strchr(q + 1, quote);
    if (!end || end[1] != ']' || end[2]) return NULL;
    char *key = xstrndup(q + 1, (size_t)(end - q - 1));
    const char *v = str(json_object_get(meta, field + strlen("metadata.")), key);
    free(key);
    return xstrdup(v ? v : "");
}

static char *field_ref(const pod_host_t *host, const podspec_t *pod, const char *path, err_t *err)
{
    json_t *meta = json_object_get(pod->raw, "metadata");
    const char *ip = host->host_ip ? host->host_ip : "";
    if (strcmp(path, "metadata.name") == 0) return xstrdup(pod->name);
    if (strcmp(path, "metadata.namespace") == 0) return xstrdup(pod->namespace);
    if (strcmp(path, "metadata.uid") == 0) return xstrdup(pod->uid);
    if (strcmp(path, "spec.nodeName") == 0)
        return xstrdup(pod->node_name ? pod->node_name : host->node_name ? host->node_name : "");
    if (strcmp(path, "spec.serviceAccountName") == 0) return xstrdup(pod->service_account);
    if (strcmp(path, "status.hostIP") == 0 || strcmp(path, "status.podIP") == 0 ||
        strcmp(path, "status.hostIPs") == 0 || strcmp(path, "status.podIPs") == 0)
        return xstrdup(ip);
    char *v = map_path(meta, path, "metadata.labels");
    if (!v) v = map_path(meta, path, "metadata.annotations");
    if (v) return v;
    err_set(err, "fieldRef: unsupported fieldPath \"%s\"", path);
    return NULL;
}

/* resources.limits or .requests of a container for res ("limits.x"), in
 * whole units; 0 when unset. */
static int64_t container_quantity(const podspec_container_t *c, const char *res)
{
    const char *dot = strchr(res, '.');
    char *kind = xstrndup(res, (size_t)(dot - res));
    json_t *q =
        json_object_get(json_object_get(json_object_get(c->raw, "resources"), kind), dot + 1);
    free(kind);
    int64_t v = 0;
    if (json_is_string(q) && quantity_parse(json_string_value(q), &v) == -1) v = 0;
    return v > INT64_MAX / 1000 ? INT64_MAX / 1000 : v; /* the caller multiplies by 1000 */
}

static char *resource_ref(const pod_host_t *host, const podspec_t *pod,
                          const podspec_container_t *self, json_t *ref, err_t *err)
{
    const char *res = str(ref, "resource");
    const char *cname = str(ref, "containerName");
    const podspec_container_t *c = self;
    if (cname && *cname) {
        c = NULL;
        for (size_t i = 0; i < pod->ncontainers; i++)
            if (strcmp(pod->containers[i].name, cname) == 0) c = &pod->containers[i];
        for (size_t i = 0; i < pod->ninit; i++)
            if (strcmp(pod->init_containers[i].name, cname) == 0) c = &pod->init_containers[i];
        if (!c) {
            err_set(err, "resourceFieldRef: no container named \"%s\"", cname);
            return NULL;
        }
    }
    if (!res) {
        err_set(err, "resourceFieldRef: resource is required");
        return NULL;
    }
    int64_t milli; /* thousandths of the unit: millicores, or bytes * 1000 */
    if (strcmp(res, "limits.cpu") == 0)
        milli = c->cpu_limit ? c->cpu_limit : host->node_allocatable_cpu;
    else if (strcmp(res, "requests.cpu") == 0)
        milli = c->cpu_request;
    else if (strcmp(res, "limits.memory") == 0)
        milli = (c->memory_limit ? c->memory_limit : host->node_allocatable_memory) * 1000;
    else if (strcmp(res, "requests.memory") == 0)
        milli = c->memory_request * 1000;
    else if (strcmp(res, "limits.ephemeral-storage") == 0 ||
             strcmp(res, "requests.ephemeral-storage") == 0)
        milli = container_quantity(c, res) * 1000;
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
    /* ceil(value / divisor), as the kubelet rounds up. */
    int64_t v = milli <= 0 ? 0 : (milli + divisor - 1) / divisor;
    return xasprintf("%lld", (long long)v);
}

/* Reads the ConfigMap or Secret an env source names. *data is NULL (and 0
 * returned) when it is absent and the source is optional. */
static int read_source(const pod_host_t *host, const podspec_t *pod, bool secret, const char *name,
                       bool optional, json_t **data, err_t *err)
{
    const char *kind = secret ? "secret" : "configmap";
    *data = NULL;
    if (!host->lookup) {
        if (optional) return 0;
        return err_set(err, "%s \"%s\" cannot be read: this mode has no cluster", kind, name);
    }
    if (host->lookup(host->ctx, pod->namespace, secret, name, data, err) == -1) return -1;
    if (!*data && !optional) return err_set(err, "%s \"%s\" not found", kind, name);
    return 0;
}

static int key_ref(const pod_host_t *host, const podspec_t *pod, json_t *ref, bool secret,
                   char **value, err_t *err)
{
    const char *kind = secret ? "secret" : "configmap";
    const char *name = str(ref, "name"), *key = str(ref, "key");
    bool optional = json_is_true(json_object_get(ref, "optional"));
    *value = NULL;
    if (!name || !key) return err_set(err, "%sKeyRef: name and key are required", kind);
    json_t *data = NULL;
    if (read_source(host, pod, secret, name, optional, &data, err) == -1) return -1;
    if (!data) return 0;
    const char *v = str(data, key);
    if (v) *value = xstrdup(v);
    json_decref(data);
    if (!v && !optional)
        return err_set(err, "couldn't find key %s in %s %s/%s", key,
                       secret ? "Secret" : "ConfigMap", pod->namespace, name);
    return 0;
}

static int env_from(const pod_host_t *host, const podspec_t *pod, json_t *src, strvec_t *env,
                    err_t *err)
{
    const char *prefix = str(src, "prefix");
    json_t *ref = json_object_get(src, "configMapRef");
    bool secret = false;
    if (!ref) {
        ref = json_object_get(src, "secretRef");
        secret = true;
    }
    if (!ref) return 0;
    const char *name = str(ref, "name");
    bool optional = json_is_true(json_object_get(ref, "optional"));
    if (!name)
        return err_set(err, "envFrom: %sRef.name is required", secret ? "secret" : "configMap");
    json_t *data = NULL;
    if (read_source(host, pod, secret, name, optional, &data, err) == -1) return -1;
    if (!data) return 0;
    const char *key;
    json_t *val;
    json_object_foreach(data, key, val)
    {
        if (!json_is_string(val)) continue;
        char *full = xasprintf("%s%s", prefix ? prefix : "", key);
        env_set(env, full, json_string_value(val));
        free(full);
    }
    json_decref(data);
    return 0;
}

/* The name a module sees as argv[0] when the pod gives no command: the
 * image's last path component without tag, digest or .wasm. */
static char *image_argv0(const char *image)
{
    const char *slash = strrchr(image, '/');
    const char *base = slash ? slash + 1 : image;
    size_t n = strcspn(base, ":@");
    if (n > 5 && strncmp(base + n - 5, ".wasm", 5) == 0) n -= 5;
    return xstrndup(base, n);
}

int pod_env_build(const pod_host_t *host, const podspec_t *pod, const podspec_container_t *c,
                  strvec_t *env, strvec_t *argv, err_t *err)
{
    if (host->service_env) {
        json_t *links = host->service_env(host->ctx, pod);
        const char *key;
        json_t *val;
        json_object_foreach(links, key, val)
        {
            if (json_is_string(val)) env_set(env, key, json_string_value(val));
        }
        json_decref(links);
    }
    for (size_t i = 0; json_is_array(c->env_from) && i < json_array_size(c->env_from); i++)
        if (env_from(host, pod, json_array_get(c->env_from, i), env, err) == -1) return -1;

    for (size_t i = 0; json_is_array(c->env) && i < json_array_size(c->env); i++) {
        json_t *e = json_array_get(c->env, i);
        const char *name = str(e, "name");
        json_t *from = json_object_get(e, "valueFrom");
        char *value = NULL;
        if (json_is_object(from)) {
            json_t *ref;
            if ((ref = json_object_get(from, "fieldRef"))) {
                const char *path = str(ref, "fieldPath");
                value = path ? field_ref(host, pod, path, err) : NULL;
                if (!path) err_set(err, "fieldRef.fieldPath is required");
            } else if ((ref = json_object_get(from, "resourceFieldRef"))) {
                value = resource_ref(host, pod, c, ref, err);
            } else if ((ref = json_object_get(from, "configMapKeyRef"))) {
                /* The kubelet's own words, without the variable's name. */
                if (key_ref(host, pod, ref, false, &value, err) == -1) return -1;
                if (!value) continue; /* optional and absent: not set at all */
            } else if ((ref = json_object_get(from, "secretKeyRef"))) {
                if (key_ref(host, pod, ref, true, &value, err) == -1) return -1;
                if (!value) continue;
            } else {
                err_set(err, "valueFrom: no supported source");
            }
            if (!value) goto fail;
        } else {
            const char *raw = str(e, "value");
            value = pod_env_expand(raw ? raw : "", env_get, env);
        }
        env_set(env, name, value);
        free(value);
        continue;
    fail:
        return err_prefix(err, "env %s", name);
    }

    if (c->ncommand) {
        for (size_t i = 0; i < c->ncommand; i++)
            strvec_push_owned(argv, pod_env_expand(c->command[i], env_get, env));
    } else {
        strvec_push_owned(argv, image_argv0(c->image));
    }
    for (size_t i = 0; i < c->nargs; i++)
        strvec_push_owned(argv, pod_env_expand(c->args[i], env_get, env));
    return 0;
}
