/* pod_spec.h: the parts of a v1 Pod that a kubelet acts on, as C structs.
 *
 * podspec_parse() checks a Pod object the way the kubelet relies on it
 * (the API server validates far more; `wasmlet run` has no API server, so
 * the checks here name the field at fault) and copies out what the workers
 * need. The whole object stays available as `raw` (one reference held) for
 * what is read rarely and generically: env valueFrom and envFrom sources,
 * volume sources, fieldRef paths of the downward API. */
#ifndef WASMLET_KUBE_POD_SPEC_H
#define WASMLET_KUBE_POD_SPEC_H

#include "util/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct podspec_mount {
    const char *name;
    const char *mount_path;
    const char *sub_path; /* NULL when absent */
    bool read_only;
} podspec_mount_t;

typedef enum podspec_restart {
    RESTART_ALWAYS,
    RESTART_ON_FAILURE,
    RESTART_NEVER
} podspec_restart_t;

/* terminationMessagePolicy: what a container's terminated state says. */
typedef enum podspec_term_policy {
    TERM_MSG_FILE,                     /* File: what it wrote to terminationMessagePath */
    TERM_MSG_FALLBACK_TO_LOGS_ON_ERROR /* ... or, if nothing and it failed, its log's tail */
} podspec_term_policy_t;

/* What a probe or a lifecycle hook does (core/v1 ProbeHandler and
 * LifecycleHandler): exactly one action. */
typedef enum podspec_action_kind {
    ACTION_HTTP_GET,
    ACTION_TCP_SOCKET,
    ACTION_GRPC,
    ACTION_EXEC,
    ACTION_SLEEP /* lifecycle hooks only */
} podspec_action_kind_t;

typedef struct podspec_http_header {
    const char *name;
    const char *value;
} podspec_http_header_t;

typedef struct podspec_action {
    podspec_action_kind_t kind;
    /* httpGet, tcpSocket, grpc: the port, resolved from the container's
     * ports when given by name; -1 when that name is not among them (the
     * attempt fails saying so, as the kubelet's does). */
    int port;
    const char *port_name;          /* the name it was given by, or NULL */
    const char *host;               /* httpGet, tcpSocket; NULL: the pod's IP */
    const char *path;               /* httpGet; defaulted to "/" */
    bool https;                     /* httpGet scheme HTTPS (default HTTP) */
    podspec_http_header_t *headers; /* httpGet httpHeaders */
    size_t nheaders;
    const char *grpc_service; /* NULL: "" */
    int64_t sleep_seconds;    /* sleep */
} podspec_action_t;

/* A probe, with the API server's defaults applied. */
typedef struct podspec_probe {
    podspec_action_t action;
    int64_t initial_delay_seconds; /* 0 */
    int64_t timeout_seconds;       /* 1 */
    int64_t period_seconds;        /* 10 */
    int64_t success_threshold;     /* 1 (must be 1 for liveness and startup) */
    int64_t failure_threshold;     /* 3 */
    int64_t termination_grace;     /* probe-level terminationGracePeriodSeconds; -1: the pod's */
} podspec_probe_t;

typedef struct podspec_container {
    const char *name;
    const char *image;
    const char *pull_policy; /* Always / IfNotPresent / Never (defaulted) */
    const char *const *command;
    size_t ncommand;
    const char *const *args;
    size_t nargs;
    json_t *env;      /* array of EnvVar (borrowed from raw), may be NULL */
    json_t *env_from; /* array of EnvFromSource, may be NULL */
    podspec_mount_t *mounts;
    size_t nmounts;
    int64_t memory_limit;   /* bytes, 0 = none */
    int64_t memory_request; /* bytes, 0 = none */
    int64_t cpu_limit;      /* millicores, 0 = none */
    int64_t cpu_request;    /* millicores, 0 = none */
    bool sidecar;           /* an init container with restartPolicy: Always */
    /* resizePolicy: an in-place resize of cpu / memory restarts the
     * container (RestartContainer) instead of being applied live
     * (NotRequired, the default). */
    bool resize_restarts_cpu, resize_restarts_memory;
    /* Probes and lifecycle hooks; NULL when absent. */
    podspec_probe_t *liveness_probe, *readiness_probe, *startup_probe;
    podspec_action_t *post_start, *pre_stop;
    const char *termination_message_path; /* defaulted to /dev/termination-log */
    podspec_term_policy_t termination_message_policy;
    json_t *raw; /* the Container object (borrowed from raw) */
} podspec_container_t;

typedef struct podspec_volume {
    const char *name;
    const char *type; /* "emptyDir", "hostPath", "configMap", ... or "unknown" */
    json_t *source;   /* the source object (borrowed from raw) */
} podspec_volume_t;

typedef struct podspec {
    json_t *raw; /* the Pod (one reference held) */
    const char *name;
    const char *namespace;
    const char *uid; /* "" for a pod not (yet) from an API server */
    const char *node_name;
    const char *service_account;
    podspec_restart_t restart_policy;
    int64_t active_deadline_seconds;  /* -1 = none */
    int64_t termination_grace_period; /* seconds, default 30 */
    podspec_container_t *init_containers;
    size_t ninit;
    podspec_container_t *containers;
    size_t ncontainers;
    podspec_volume_t *volumes;
    size_t nvolumes;
} podspec_t;

/* Parses and checks a Pod; the spec holds its own reference to pod. */
int podspec_parse(json_t *pod, podspec_t **out, err_t *err);
void podspec_free(podspec_t *spec);

/* A newer version `now` of the Pod `old`: whether its spec, labels or
 * annotations differ. Each of the three that is equal is replaced in `now`
 * by `old`'s (one more reference), so that the two versions share it
 * instead of holding two copies. Objects kept after this must be treated
 * as read-only, as shared trees are. */
bool pod_object_share_unchanged(json_t *old, json_t *now);

const podspec_volume_t *podspec_volume(const podspec_t *spec, const char *name);
const char *podspec_restart_name(podspec_restart_t policy);
/* "httpGet", "tcpSocket", "grpc", "exec", "sleep". */
const char *podspec_action_name(podspec_action_kind_t kind);

#endif
