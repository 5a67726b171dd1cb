/* env.c: building a container's environment and argv.
 *
 * The order and precedence are the kubelet's: envFrom sources first, in
 * order (a prefix is put in front of each key), then env entries, each
 * replacing an earlier variable of the same name; service link variables
 * come first of all and are overridden by anything the pod defines. An env
 * value may refer to variables defined before it with $(NAME); command and
 * args may refer to any variable of the final environment. Sources:
 * value, fieldRef and resourceFieldRef (resolved by kube/fieldref.c, which
 * the downwardAPI volumes share: the pod's metadata, node name and IPs, a
 * container's requests and limits with a divisor), configMapKeyRef and
 * secretKeyRef (optional or not; errors in the kubelet's words), and
 * envFrom configMapRef/secretRef. */
#include "pod/env.h"
#include "kube/fieldref.h"
#include "util/json.h"
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

/* The node facts the downward API reads, from the host table. */
static kube_node_facts_t node_facts(const pod_host_t *host)
{
    return (kube_node_facts_t){.node_name = host->node_name,
                               .host_ip = host->host_ip,
                               .pod_ips = host->pod_ips,
                               .allocatable_cpu = host->node_allocatable_cpu,
                               .allocatable_memory = host->node_allocatable_memory};
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
    const char *name = json_str_at(ref, "name"), *key = json_str_at(ref, "key");
    bool optional = json_bool_at(ref, false, "optional");
    *value = NULL;
    if (!name || !key) return err_set(err, "%sKeyRef: name and key are required", kind);
    json_t *data = NULL;
    if (read_source(host, pod, secret, name, optional, &data, err) == -1) return -1;
    if (!data) return 0;
    const char *v = json_str_at(data, key);
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
    const char *prefix = json_str_at(src, "prefix");
    json_t *ref = json_object_get(src, "configMapRef");
    bool secret = false;
    if (!ref) {
        ref = json_object_get(src, "secretRef");
        secret = true;
    }
    if (!ref) return 0;
    const char *name = json_str_at(ref, "name");
    bool optional = json_bool_at(ref, false, "optional");
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
    kube_node_facts_t node = node_facts(host);
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
        const char *name = json_str_at(e, "name");
        json_t *from = json_object_get(e, "valueFrom");
        char *value = NULL;
        if (json_is_object(from)) {
            json_t *ref;
            if ((ref = json_object_get(from, "fieldRef"))) {
                const char *path = json_str_at(ref, "fieldPath");
                value = path ? kube_fieldref(&node, pod, path, 0, err) : NULL;
                if (!path) err_set(err, "fieldRef.fieldPath is required");
            } else if ((ref = json_object_get(from, "resourceFieldRef"))) {
                value = kube_resource_fieldref(&node, pod, c, ref, err);
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
            const char *raw = json_str_at(e, "value");
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

void pod_env_warm(const pod_host_t *host, const podspec_t *pod, const podspec_container_t *c)
{
    if (!host->warm) return;
    size_t i;
    json_t *e, *ref;
    json_array_foreach(json_at(c->raw, "env"), i, e)
    {
        json_t *from = json_object_get(e, "valueFrom");
        const char *name;
        if ((ref = json_object_get(from, "configMapKeyRef")) && (name = json_str_at(ref, "name")))
            host->warm(host->ctx, pod->namespace, false, name);
        if ((ref = json_object_get(from, "secretKeyRef")) && (name = json_str_at(ref, "name")))
            host->warm(host->ctx, pod->namespace, true, name);
    }
    json_array_foreach(json_at(c->raw, "envFrom"), i, e)
    {
        const char *name;
        if ((ref = json_object_get(e, "configMapRef")) && (name = json_str_at(ref, "name")))
            host->warm(host->ctx, pod->namespace, false, name);
        if ((ref = json_object_get(e, "secretRef")) && (name = json_str_at(ref, "name")))
            host->warm(host->ctx, pod->namespace, true, name);
    }
}
