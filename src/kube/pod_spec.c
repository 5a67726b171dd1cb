/* pod_spec.c: checking a Pod and copying out what the kubelet acts on (see
 * pod_spec.h). Strings point into the raw object, which the spec keeps
 * alive; only the arrays are allocated here. Every check names the field as
 * `kubectl explain` would (spec.containers[1].image), so a user of
 * `wasmlet run` can fix the manifest from the message alone. */
#include "kube/pod_spec.h"
#include "kube/quantity.h"
#include "util/json.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

/* The volume sources of core/v1 Volume, so that an unknown one can be told
 * from a typo and named in the FailedMount message. */
static const char *const volume_types[] = {"emptyDir",
                                           "hostPath",
                                           "configMap",
                                           "secret",
                                           "downwardAPI",
                                           "projected",
                                           "persistentVolumeClaim",
                                           "nfs",
                                           "iscsi",
                                           "glusterfs",
                                           "rbd",
                                           "cephfs",
                                           "cinder",
                                           "fc",
                                           "flocker",
                                           "flexVolume",
                                           "azureFile",
                                           "azureDisk",
                                           "vsphereVolume",
                                           "quobyte",
                                           "photonPersistentDisk",
                                           "portworxVolume",
                                           "scaleIO",
                                           "storageos",
                                           "csi",
                                           "ephemeral",
                                           "gcePersistentDisk",
                                           "awsElasticBlockStore",
                                           "gitRepo",
                                           "image",
                                           NULL};

static int string_array(json_t *arr, const char *field, const char *const **out, size_t *n,
                        err_t *err)
{
    *out = NULL;
    *n = 0;
    if (!arr || json_is_null(arr)) return 0;
    if (!json_is_array(arr)) return err_set(err, "%s: must be a list of strings", field);
    size_t len = json_array_size(arr);
    const char **items = xcalloc(len + 1, sizeof *items);
    for (size_t i = 0; i < len; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v)) {
            free(items);
            return err_set(err, "%s[%zu]: must be a string", field, i);
        }
        items[i] = json_string_value(v);
    }
    *out = items;
    *n = len;
    return 0;
}

static int resource(json_t *res, const char *which, const char *name, bool cpu, int64_t *out,
                    const char *field, err_t *err)
{
    *out = 0;
    json_t *q = json_at(res, which, name);
    if (!q) return 0;
    char buf[64];
    const char *text = json_string_value(q);
    if (json_is_integer(q)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(q));
        text = buf;
    } else if (json_is_real(q)) {
        snprintf(buf, sizeof buf, "%.17g", json_real_value(q));
        text = buf;
    }
    int64_t v;
    int rc = cpu ? quantity_parse_milli(text, &v) : quantity_parse(text, &v);
    if (rc == -1 || v < 0)
        return err_set(err, "%s.resources.%s.%s: \"%s\" is not a valid quantity", field, which,
                       name, text ? text : "?");
    *out = v;
    return 0;
}

/* --- probes and lifecycle hooks ------------------------------------------------ */

/* A port given as an IntOrString: a number, or the name of one of the
 * container's ports (a string of digits is taken as a number too). */
static int parse_port(json_t *c, json_t *port, const char *field, podspec_action_t *a, err_t *err)
{
    if (json_is_integer(port)) {
        json_int_t v = json_integer_value(port);
        if (v < 1 || v > 65535)
            return err_set(err, "%s.port: %lld is not between 1 and 65535", field, (long long)v);
        a->port = (int)v;
        return 0;
    }
    const char *name = json_string_value(port);
    if (!name || !*name) return err_set(err, "%s.port: required", field);
    char *end;
    long v = strtol(name, &end, 10);
    if (!*end && end != name) {
        if (v < 1 || v > 65535)
            return err_set(err, "%s.port: \"%s\" is not between 1 and 65535", field, name);
        a->port = (int)v;
        return 0;
    }
    a->port_name = name;
    a->port = -1;
    json_t *ports = json_object_get(c, "ports");
    for (size_t i = 0; json_is_array(ports) && i < json_array_size(ports); i++) {
        json_t *p = json_array_get(ports, i);
        const char *pn = json_str_at(p, "name");
        if (pn && strcmp(pn, name) == 0) a->port = (int)json_int_at(p, -1, "containerPort");
    }
    return 0;
}

const char *podspec_action_name(podspec_action_kind_t kind)
{
    switch (kind) {
    case ACTION_HTTP_GET:
        return "httpGet";
    case ACTION_TCP_SOCKET:
        return "tcpSocket";
    case ACTION_GRPC:
        return "grpc";
    case ACTION_EXEC:
        return "exec";
    case ACTION_SLEEP:
        return "sleep";
    }
    return "?";
}

/* One handler of a probe (hook = false) or a lifecycle hook: exactly one
 * action among those allowed there. */
static int parse_action(json_t *c, json_t *h, const char *field, bool hook, podspec_action_t *a,
                        err_t *err)
{
    memset(a, 0, sizeof *a);
    static const char *const keys[] = {"httpGet", "tcpSocket", "grpc", "exec", "sleep"};
    int found = -1;
    for (int k = 0; k < 5; k++) {
        json_t *v = json_object_get(h, keys[k]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_object(v)) return err_set(err, "%s.%s: must be an object", field, keys[k]);
        if ((k == 2 && hook) || (k == 4 && !hook))
            return err_set(err, "%s.%s: not allowed in a %s", field, keys[k],
                           hook ? "lifecycle hook" : "probe");
        if (found >= 0)
            return err_set(err, "%s: may not specify more than 1 handler type (%s and %s)", field,
                           keys[found], keys[k]);
        found = k;
    }
    if (found < 0) return err_set(err, "%s: must specify a handler type", field);
    a->kind = (podspec_action_kind_t)found;
    json_t *v = json_object_get(h, keys[found]);
    char sub[300];
    snprintf(sub, sizeof sub, "%s.%s", field, keys[found]);
    switch (a->kind) {
    case ACTION_HTTP_GET: {
        if (parse_port(c, json_object_get(v, "port"), sub, a, err) == -1) return -1;
        a->host = json_str_at(v, "host");
        if (a->host && !*a->host) a->host = NULL;
        a->path = json_str_at(v, "path");
        if (!a->path || !*a->path) a->path = "/";
        const char *scheme = json_str_at(v, "scheme");
        if (scheme && strcmp(scheme, "HTTP") && strcmp(scheme, "HTTPS"))
            return err_set(err, "%s.scheme: \"%s\" is not HTTP or HTTPS", sub, scheme);
        a->https = scheme && strcmp(scheme, "HTTPS") == 0;
        json_t *hs = json_object_get(v, "httpHeaders");
        if (hs && !json_is_null(hs) && !json_is_array(hs))
            return err_set(err, "%s.httpHeaders: must be a list", sub);
        size_t n = json_array_size(hs);
        if (n) a->headers = xcalloc(n, sizeof *a->headers);
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(hs, i);
            const char *name = json_str_at(e, "name"), *value = json_str_at(e, "value");
            if (!name || !*name || strpbrk(name, ": \r\n"))
                return err_set(err, "%s.httpHeaders[%zu].name: must be a header name", sub, i);
            if (value && strpbrk(value, "\r\n"))
                return err_set(err, "%s.httpHeaders[%zu].value: must be one line", sub, i);
            a->headers[a->nheaders++] = (podspec_http_header_t){name, value ? value : ""};
        }
        break;
    }
    case ACTION_TCP_SOCKET:
        if (parse_port(c, json_object_get(v, "port"), sub, a, err) == -1) return -1;
        a->host = json_str_at(v, "host");
        if (a->host && !*a->host) a->host = NULL;
        break;
    case ACTION_GRPC: {
        json_t *port = json_object_get(v, "port");
        if (!json_is_integer(port) || json_integer_value(port) < 1 ||
            json_integer_value(port) > 65535)
            return err_set(err, "%s.port: must be a number between 1 and 65535", sub);
        a->port = (int)json_integer_value(port);
        a->grpc_service = json_str_at(v, "service");
        break;
    }
    case ACTION_EXEC:
        break;
    case ACTION_SLEEP:
        a->sleep_seconds = json_int_at(v, -1, "seconds");
        if (a->sleep_seconds < 0)
            return err_set(err, "%s.seconds: must be a non-negative integer", sub);
        break;
    }
    return 0;
}

static void free_action(podspec_action_t *a)
{
    if (a) free(a->headers);
    free(a);
}

static void free_probe(podspec_probe_t *p)
{
    if (p) free(p->action.headers);
    free(p);
}

/* A probe field: an integer >= min, or dflt when absent or 0 (the API
 * server's defaulting turns 0 into the default). */
static int probe_int(json_t *p, const char *key, int64_t dflt, int64_t min, const char *field,
                     int64_t *out, err_t *err)
{
    json_t *v = json_object_get(p, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min)
        return err_set(err, "%s.%s: must be an integer of at least %lld", field, key,
                       (long long)min);
    *out = json_integer_value(v) == 0 ? dflt : json_integer_value(v);
    return 0;
}

static int parse_probe(json_t *c, const char *key, const char *field, podspec_probe_t **out,
                       err_t *err)
{
    *out = NULL;
    json_t *p = json_object_get(c, key);
    if (!p || json_is_null(p)) return 0;
    char sub[300];
    snprintf(sub, sizeof sub, "%s.%s", field, key);
    if (!json_is_object(p)) return err_set(err, "%s: must be an object", sub);
    podspec_probe_t *pr = xcalloc(1, sizeof *pr);
    *out = pr;
    if (parse_action(c, p, sub, false, &pr->action, err) == -1) return -1;
    if (probe_int(p, "initialDelaySeconds", 0, 0, sub, &pr->initial_delay_seconds, err) == -1 ||
        probe_int(p, "timeoutSeconds", 1, 0, sub, &pr->timeout_seconds, err) == -1 ||
        probe_int(p, "periodSeconds", 10, 0, sub, &pr->period_seconds, err) == -1 ||
        probe_int(p, "successThreshold", 1, 0, sub, &pr->success_threshold, err) == -1 ||
        probe_int(p, "failureThreshold", 3, 0, sub, &pr->failure_threshold, err) == -1)
        return -1;
    bool readiness = strcmp(key, "readinessProbe") == 0;
    if (!readiness && pr->success_threshold != 1)
        return err_set(err, "%s.successThreshold: must be 1", sub);
    json_t *tg = json_object_get(p, "terminationGracePeriodSeconds");
    pr->termination_grace = -1;
    if (tg && !json_is_null(tg)) {
        if (readiness)
            return err_set(
                err, "%s.terminationGracePeriodSeconds: not allowed on a readiness probe", sub);
        if (!json_is_integer(tg) || json_integer_value(tg) < 1)
            return err_set(err, "%s.terminationGracePeriodSeconds: must be a positive integer",
                           sub);
        pr->termination_grace = json_integer_value(tg);
    }
    return 0;
}

static int parse_hook(json_t *c, const char *key, const char *field, podspec_action_t **out,
                      err_t *err)
{
    *out = NULL;
    json_t *h = json_at(c, "lifecycle", key);
    if (!h || json_is_null(h)) return 0;
    char sub[300];
    snprintf(sub, sizeof sub, "%s.lifecycle.%s", field, key);
    if (!json_is_object(h)) return err_set(err, "%s: must be an object", sub);
    *out = xcalloc(1, sizeof **out);
    return parse_action(c, h, sub, true, *out, err);
}

static int parse_container(json_t *c, const char *field, bool init, podspec_container_t *out,
                           err_t *err)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(c)) return err_set(err, "%s: must be an object", field);
    out->raw = c;
    out->name = json_str_at(c, "name");
    if (!out->name || !*out->name) return err_set(err, "%s.name: required", field);
    out->image = json_str_at(c, "image");
    if (!out->image || !*out->image) return err_set(err, "%s.image: required", field);
    out->pull_policy = json_str_at(c, "imagePullPolicy");
    if (!out->pull_policy) {
        /* The API server's default: Always for :latest or no tag. */
        const char *slash = strrchr(out->image, '/');
        const char *tail = slash ? slash + 1 : out->image;
        const char *colon = strchr(tail, ':');
        bool latest = !strchr(tail, '@') && (!colon || strcmp(colon, ":latest") == 0);
        out->pull_policy = latest ? "Always" : "IfNotPresent";
    } else if (strcmp(out->pull_policy, "Always") && strcmp(out->pull_policy, "IfNotPresent") &&
               strcmp(out->pull_policy, "Never")) {
        return err_set(err, "%s.imagePullPolicy: \"%s\" is not Always, IfNotPresent or Never",
                       field, out->pull_policy);
    }
    char sub[256];
    snprintf(sub, sizeof sub, "%s.command", field);
    if (string_array(json_object_get(c, "command"), sub, &out->command, &out->ncommand, err) == -1)
        return -1;
    snprintf(sub, sizeof sub, "%s.args", field);
    if (string_array(json_object_get(c, "args"), sub, &out->args, &out->nargs, err) == -1)
        return -1;
    out->env = json_object_get(c, "env");
    if (out->env && !json_is_array(out->env) && !json_is_null(out->env))
        return err_set(err, "%s.env: must be a list", field);
    for (size_t i = 0; json_is_array(out->env) && i < json_array_size(out->env); i++) {
        json_t *e = json_array_get(out->env, i);
        const char *name = json_str_at(e, "name");
        if (!name || !*name) return err_set(err, "%s.env[%zu].name: required", field, i);
    }
    out->env_from = json_object_get(c, "envFrom");
    json_t *mounts = json_object_get(c, "volumeMounts");
    if (json_is_array(mounts) && json_array_size(mounts)) {
        out->nmounts = json_array_size(mounts);
        out->mounts = xcalloc(out->nmounts, sizeof *out->mounts);
        for (size_t i = 0; i < out->nmounts; i++) {
            json_t *m = json_array_get(mounts, i);
            podspec_mount_t *pm = &out->mounts[i];
            pm->name = json_str_at(m, "name");
            pm->mount_path = json_str_at(m, "mountPath");
            pm->sub_path = json_str_at(m, "subPath");
            if (pm->sub_path && !*pm->sub_path) pm->sub_path = NULL;
            pm->read_only = json_bool_at(m, false, "readOnly");
            if (!pm->name) return err_set(err, "%s.volumeMounts[%zu].name: required", field, i);
            if (!pm->mount_path || pm->mount_path[0] != '/')
                return err_set(err, "%s.volumeMounts[%zu].mountPath: must be an absolute path",
                               field, i);
            if (pm->sub_path && (pm->sub_path[0] == '/' || strstr(pm->sub_path, "..")))
                return err_set(err,
                               "%s.volumeMounts[%zu].subPath: must be a relative path without ..",
                               field, i);
        }
    }
    json_t *res = json_object_get(c, "resources");
    if (resource(res, "limits", "memory", false, &out->memory_limit, field, err) == -1 ||
        resource(res, "requests", "memory", false, &out->memory_request, field, err) == -1 ||
        resource(res, "limits", "cpu", true, &out->cpu_limit, field, err) == -1 ||
        resource(res, "requests", "cpu", true, &out->cpu_request, field, err) == -1)
        return -1;
    /* The API server defaults requests to limits. */
    if (!out->memory_request) out->memory_request = out->memory_limit;
    if (!out->cpu_request) out->cpu_request = out->cpu_limit;
    json_t *policies = json_object_get(c, "resizePolicy");
    for (size_t i = 0; json_is_array(policies) && i < json_array_size(policies); i++) {
        json_t *p = json_array_get(policies, i);
        const char *rn = json_str_at(p, "resourceName");
        const char *pol = json_str_at(p, "restartPolicy");
        if (!rn || !pol ||
            (strcmp(pol, "NotRequired") != 0 && strcmp(pol, "RestartContainer") != 0))
            return err_set(err,
                           "%s.resizePolicy[%zu]: needs a resourceName and a restartPolicy "
                           "of NotRequired or RestartContainer",
                           field, i);
        bool restarts = strcmp(pol, "RestartContainer") == 0;
        if (strcmp(rn, "cpu") == 0)
            out->resize_restarts_cpu = restarts;
        else if (strcmp(rn, "memory") == 0)
            out->resize_restarts_memory = restarts;
    }
    const char *rp = json_str_at(c, "restartPolicy");
    if (rp) {
        if (!init || strcmp(rp, "Always") != 0)
            return err_set(err, "%s.restartPolicy: only \"Always\" on an init container is allowed",
                           field);
        out->sidecar = true;
    }
    if (parse_probe(c, "livenessProbe", field, &out->liveness_probe, err) == -1 ||
        parse_probe(c, "readinessProbe", field, &out->readiness_probe, err) == -1 ||
        parse_probe(c, "startupProbe", field, &out->startup_probe, err) == -1 ||
        parse_hook(c, "postStart", field, &out->post_start, err) == -1 ||
        parse_hook(c, "preStop", field, &out->pre_stop, err) == -1)
        return -1;
    out->termination_message_path = json_str_at(c, "terminationMessagePath");
    if (!out->termination_message_path || !*out->termination_message_path)
        out->termination_message_path = "/dev/termination-log"; /* the API server's default */
    const char *tmp = json_str_at(c, "terminationMessagePolicy");
    if (!tmp || strcmp(tmp, "File") == 0) {
        out->termination_message_policy = TERM_MSG_FILE;
    } else if (strcmp(tmp, "FallbackToLogsOnError") == 0) {
        out->termination_message_policy = TERM_MSG_FALLBACK_TO_LOGS_ON_ERROR;
    } else {
        return err_set(err,
                       "%s.terminationMessagePolicy: \"%s\" is not File or FallbackToLogsOnError",
                       field, tmp);
    }
    return 0;
}

static void free_containers(podspec_container_t *cs, size_t n)
{
    for (size_t i = 0; cs && i < n; i++) {
        free((void *)cs[i].command);
        free((void *)cs[i].args);
        free(cs[i].mounts);
        free_probe(cs[i].liveness_probe);
        free_probe(cs[i].readiness_probe);
        free_probe(cs[i].startup_probe);
        free_action(cs[i].post_start);
        free_action(cs[i].pre_stop);
    }
    free(cs);
}

static int parse_containers(json_t *arr, const char *field, bool init, podspec_container_t **out,
                            size_t *n, err_t *err)
{
    *out = NULL;
    *n = 0;
    if (!arr || json_is_null(arr)) return 0;
    if (!json_is_array(arr)) return err_set(err, "spec.%s: must be a list", field);
    size_t len = json_array_size(arr);
    podspec_container_t *cs = xcalloc(len ? len : 1, sizeof *cs);
    for (size_t i = 0; i < len; i++) {
        char name[64];
        snprintf(name, sizeof name, "spec.%s[%zu]", field, i);
        if (parse_container(json_array_get(arr, i), name, init, &cs[i], err) == -1) {
            free_containers(cs, i + 1);
            return -1;
        }
    }
    *out = cs;
    *n = len;
    return 0;
}

static int parse_volumes(podspec_t *spec, json_t *arr, err_t *err)
{
    if (!arr || json_is_null(arr)) return 0;
    if (!json_is_array(arr)) return err_set(err, "spec.volumes: must be a list");
    spec->nvolumes = json_array_size(arr);
    spec->volumes = xcalloc(spec->nvolumes ? spec->nvolumes : 1, sizeof *spec->volumes);
    for (size_t i = 0; i < spec->nvolumes; i++) {
        json_t *v = json_array_get(arr, i);
        podspec_volume_t *pv = &spec->volumes[i];
        pv->name = json_str_at(v, "name");
        if (!pv->name || !*pv->name) return err_set(err, "spec.volumes[%zu].name: required", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->volumes[j].name, pv->name) == 0)
                return err_set(err, "spec.volumes[%zu].name: \"%s\" is used twice", i, pv->name);
        pv->type = "unknown";
        const char *key;
        json_t *val;
        json_object_foreach(v, key, val)
        {
            if (strcmp(key, "name") == 0) continue;
            pv->type = key;
            pv->source = val;
            for (const char *const *t = volume_types; *t; t++)
                if (strcmp(*t, key) == 0) goto known;
            return err_set(err, "spec.volumes[%zu] (%s): unknown volume type \"%s\"", i, pv->name,
                           key);
        }
        return err_set(err, "spec.volumes[%zu] (%s): no volume source given", i, pv->name);
    known:;
    }
    return 0;
}

static int check_mounts(const podspec_t *spec, const podspec_container_t *cs, size_t n,
                        const char *field, err_t *err)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < cs[i].nmounts; j++)
            if (!podspec_volume(spec, cs[i].mounts[j].name))
                return err_set(err, "spec.%s[%zu].volumeMounts[%zu].name: no volume named \"%s\"",
                               field, i, j, cs[i].mounts[j].name);
    return 0;
}

int podspec_parse(json_t *pod, podspec_t **out, err_t *err)
{
    if (!json_is_object(pod)) return err_set(err, "not an object");
    const char *kind = json_str_at(pod, "kind");
    const char *api = json_str_at(pod, "apiVersion");
    if (!kind || strcmp(kind, "Pod") != 0)
        return err_set(err, "kind: \"%s\" is not a Pod", kind ? kind : "(missing)");
    if (api && strcmp(api, "v1") != 0) return err_set(err, "apiVersion: \"%s\" is not v1", api);
    json_t *meta = json_object_get(pod, "metadata");
    json_t *s = json_object_get(pod, "spec");
    if (!json_is_object(meta)) return err_set(err, "metadata: required");
    if (!json_is_object(s)) return err_set(err, "spec: required");

    podspec_t *spec = xcalloc(1, sizeof *spec);
    spec->raw = json_incref(pod);
    spec->name = json_str_at(meta, "name");
    if (!spec->name || !*spec->name) {
        err_set(err, "metadata.name: required");
        goto fail;
    }
    spec->namespace = json_str_at(meta, "namespace");
    if (!spec->namespace) spec->namespace = "default";
    spec->uid = json_str_at(meta, "uid");
    if (!spec->uid) spec->uid = "";
    spec->node_name = json_str_at(s, "nodeName");
    spec->service_account = json_str_at(s, "serviceAccountName");
    if (!spec->service_account) spec->service_account = "default";

    const char *rp = json_str_at(s, "restartPolicy");
    if (!rp || strcmp(rp, "Always") == 0) {
        spec->restart_policy = RESTART_ALWAYS;
    } else if (strcmp(rp, "OnFailure") == 0) {
        spec->restart_policy = RESTART_ON_FAILURE;
    } else if (strcmp(rp, "Never") == 0) {
        spec->restart_policy = RESTART_NEVER;
    } else {
        err_set(err, "spec.restartPolicy: \"%s\" is not Always, OnFailure or Never", rp);
        goto fail;
    }
    json_t *ads = json_object_get(s, "activeDeadlineSeconds");
    spec->active_deadline_seconds = json_is_integer(ads) ? json_integer_value(ads) : -1;
    if (ads && (!json_is_integer(ads) || spec->active_deadline_seconds <= 0)) {
        err_set(err, "spec.activeDeadlineSeconds: must be a positive integer");
        goto fail;
    }
    spec->termination_grace_period = json_int_at(s, 30, "terminationGracePeriodSeconds");
    if (spec->termination_grace_period < 0) spec->termination_grace_period = 0;

    if (parse_containers(json_object_get(s, "initContainers"), "initContainers", true,
                         &spec->init_containers, &spec->ninit, err) == -1 ||
        parse_containers(json_object_get(s, "containers"), "containers", false, &spec->containers,
                         &spec->ncontainers, err) == -1)
        goto fail;
    if (spec->ncontainers == 0) {
        err_set(err, "spec.containers: at least one container is required");
        goto fail;
    }
    for (size_t i = 0; i < spec->ninit + spec->ncontainers; i++) {
        const podspec_container_t *a =
            i < spec->ninit ? &spec->init_containers[i] : &spec->containers[i - spec->ninit];
        for (size_t j = 0; j < i; j++) {
            const podspec_container_t *b =
                j < spec->ninit ? &spec->init_containers[j] : &spec->containers[j - spec->ninit];
            if (strcmp(a->name, b->name) == 0) {
                bool init = i < spec->ninit;
                err_set(err, "spec.%s[%zu].name: \"%s\" is used twice",
                        init ? "initContainers" : "containers", init ? i : i - spec->ninit,
                        a->name);
                goto fail;
            }
        }
    }
    if (parse_volumes(spec, json_object_get(s, "volumes"), err) == -1 ||
        check_mounts(spec, spec->init_containers, spec->ninit, "initContainers", err) == -1 ||
        check_mounts(spec, spec->containers, spec->ncontainers, "containers", err) == -1)
        goto fail;
    *out = spec;
    return 0;
fail:
    podspec_free(spec);
    return -1;
}

bool pod_object_share_unchanged(json_t *old, json_t *now)
{
    static const char *const keys[3] = {"spec", "labels", "annotations"};
    json_t *olds[2] = {old, json_object_get(old, "metadata")};
    json_t *nows[2] = {now, json_object_get(now, "metadata")};
    bool changed = false;
    for (int k = 0; k < 3; k++) {
        int level = k == 0 ? 0 : 1;
        json_t *a = json_object_get(olds[level], keys[k]);
        json_t *b = json_object_get(nows[level], keys[k]);
        if (!a && !b) continue; /* json_equal(NULL, NULL) is false */
        if (!json_equal(a, b)) {
            changed = true;
            continue;
        }
        if (a != b) json_object_set(nows[level], keys[k], a);
    }
    return changed;
}

void podspec_free(podspec_t *spec)
{
    if (!spec) return;
    free_containers(spec->init_containers, spec->ninit);
    free_containers(spec->containers, spec->ncontainers);
    free(spec->volumes);
    json_decref(spec->raw);
    free(spec);
}

const podspec_volume_t *podspec_volume(const podspec_t *spec, const char *name)
{
    for (size_t i = 0; i < spec->nvolumes; i++)
        if (strcmp(spec->volumes[i].name, name) == 0) return &spec->volumes[i];
    return NULL;
}

const char *podspec_restart_name(podspec_restart_t policy)
{
    switch (policy) {
    case RESTART_ALWAYS:
        return "Always";
    case RESTART_ON_FAILURE:
        return "OnFailure";
    case RESTART_NEVER:
        return "Never";
    }
    return "Always";
}
