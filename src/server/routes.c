/* routes.c: one request from its arrival on its thread to its answer:
 * authenticate, authorize, then the handler its path names.
 *
 * Authentication, in the kubelet's order: a client certificate that
 * verified against the client CA; else a bearer token (TokenReview); else
 * anonymous when enabled; else 401. Authorization: a SubjectAccessReview
 * for the method's verb on nodes/<node> with the path's subresource (see
 * server_path_subresources); 403 names the user, verb and subresources, as
 * the kubelet's message does, so an operator knows which role is missing.
 *
 * exec, attach and run are answered, after authorization, with a 400 that
 * says why: a WebAssembly module has no second process to start and no
 * terminal to attach to. A 404 would read as a wrong URL, and an upgrade
 * that hangs as a broken node. portForward is served (portforward.c):
 * authorized like the kubelet, as nodes/proxy. */
#include "server/routes.h"
#include "server/auth.h"
#include "server/endpoints.h"
#include "server/portforward.h"
#include "server/state.h"
#include "util/diag.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static bool is_read(http_req_t *r)
{
    return strcmp(http_req_method(r), "GET") == 0 || strcmp(http_req_method(r), "HEAD") == 0;
}

int server_path_segments(const char *path, const char *prefix, char **out, int max)
{
    size_t plen = strlen(prefix);
    if (strncmp(path, prefix, plen) != 0) return -1;
    const char *p = path + plen;
    if (*p == '/') p++;
    int n = 0;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || n == max) {
            for (int i = 0; i < n; i++)
                free(out[i]);
            return -1;
        }
        out[n++] = xstrndup(p, len);
        p += len;
        if (*p == '/') p++;
    }
    return n;
}

static void handle_logs(server_t *s, http_req_t *r)
{
    char *seg[3] = {NULL};
    int n = server_path_segments(http_req_path(r), "/containerLogs", seg, 3);
    if (n != 3) {
        if (n > 0)
            for (int i = 0; i < n; i++)
                free(seg[i]);
        http_req_error(r, 400, "expected /containerLogs/{namespace}/{pod}/{container}");
        return;
    }
    server_handle_logs(s, r, seg[0], seg[1], seg[2]);
    for (int i = 0; i < 3; i++)
        free(seg[i]);
}

static void handle_port_forward(server_t *s, http_req_t *r)
{
    char *seg[3] = {NULL};
    int n = server_path_segments(http_req_path(r), "/portForward", seg, 3);
    if (n == 2 || n == 3) {
        server_handle_port_forward(s, r, seg[0], seg[1], n == 3 ? seg[2] : NULL);
    } else {
        http_req_error(r, 400, "expected /portForward/{namespace}/{pod}[/{uid}]");
    }
    for (int i = 0; i < n; i++)
        free(seg[i]);
}

static void refuse_interactive(server_t *s, http_req_t *r, const char *what)
{
    const char *path = http_req_path(r);
    char *seg[4] = {NULL};
    int n = server_path_segments(path, what, seg, 4);
    const char *pod = n >= 2 ? seg[1] : "?";
    const char *ns = n >= 1 ? seg[0] : "?";
    if (strcmp(what, "/exec") == 0 || strcmp(what, "/run") == 0) {
        http_req_error(r, 400,
                       "exec is not supported for pod %s/%s on node %s: its containers are "
                       "WebAssembly modules (WASI preview 1), which cannot start another process "
                       "and have no shell; use kubectl logs to see what a module writes",
                       ns, pod, s->node_name);
    } else if (strcmp(what, "/attach") == 0) {
        http_req_error(r, 400,
                       "attach is not supported for pod %s/%s on node %s: a WebAssembly module "
                       "(WASI preview 1) runs without a terminal or standard input to attach to; "
                       "its output is in kubectl logs -f",
                       ns, pod, s->node_name);
    }
    for (int i = 0; i < n; i++)
        free(seg[i]);
}

static void route(server_t *s, http_req_t *r)
{
    const char *path = http_req_path(r);
    if (under(path, "/containerLogs")) {
        if (!is_read(r)) goto not_allowed;
        handle_logs(s, r);
    } else if (strcmp(path, "/healthz") == 0) {
        if (!is_read(r)) goto not_allowed;
        http_req_reply(r, 200, "text/plain; charset=utf-8", "ok", 2);
    } else if (strcmp(path, "/pods") == 0 || strcmp(path, "/pods/") == 0) {
        if (!is_read(r)) goto not_allowed;
        json_t *list = s->pods.pod_list ? s->pods.pod_list(s->pods.ctx) : NULL;
        if (!list)
            list = json_pack("{s:s, s:s, s:{}, s:[]}", "kind", "PodList", "apiVersion", "v1",
                             "metadata", "items");
        char *body = json_dumps(list, JSON_COMPACT);
        http_req_reply(r, 200, "application/json", body, strlen(body));
        free(body);
        json_decref(list);
    } else if (strcmp(path, "/stats/summary") == 0 || strcmp(path, "/stats/summary/") == 0) {
        if (!is_read(r)) goto not_allowed;
        server_handle_stats_summary(s, r);
    } else if (strcmp(path, "/metrics") == 0) {
        if (!is_read(r)) goto not_allowed;
        server_handle_metrics(s, r);
    } else if (strcmp(path, "/metrics/resource") == 0) {
        if (!is_read(r)) goto not_allowed;
        server_handle_metrics_resource(s, r);
    } else if (under(path, "/exec") || under(path, "/run")) {
        refuse_interactive(s, r, under(path, "/exec") ? "/exec" : "/run");
    } else if (under(path, "/attach")) {
        refuse_interactive(s, r, "/attach");
    } else if (under(path, "/portForward")) {
        handle_port_forward(s, r);
    } else if (under(path, "/logs")) {
        http_req_error(r, 404,
                       "wasmlet keeps no node log files to serve under /logs; container logs are "
                       "at /containerLogs/{namespace}/{pod}/{container}");
    } else {
        http_req_error(r, 404, "404 page not found");
    }
    return;
not_allowed:
    http_req_error(r, 405, "method %s is not allowed on %s", http_req_method(r), path);
}

const char *server_path_class(const char *path)
{
    static const char *const classes[] = {"/containerLogs", "/healthz", "/pods",   "/stats",
                                          "/metrics",       "/exec",    "/attach", "/portForward",
                                          "/run",           "/logs"};
    if (strcmp(path, "/metrics/resource") == 0) return "metrics/resource";
    for (size_t i = 0; i < sizeof classes / sizeof *classes; i++)
        if (under(path, classes[i])) return classes[i] + 1;
    return "other";
}

/* Fills user from the request's credentials; 0, or the HTTP status to
 * answer with (401, 500) after answering. */
static int authenticate(server_t *s, http_req_t *r, server_user_t *user)
{
    const strvec_t *groups;
    const char *peer = http_req_peer(r, &groups);
    if (peer) {
        user->name = xstrdup(peer);
        user->uid = xstrdup("");
        for (size_t i = 0; i < groups->len; i++)
            strvec_push(&user->groups, groups->items[i]);
        strvec_push(&user->groups, "system:authenticated");
        return 0;
    }
    const char *authz = http_req_header(r, "Authorization");
    if (authz && strncasecmp(authz, "Bearer ", 7) == 0) {
        const char *token = authz + 7;
        while (*token == ' ')
            token++;
        err_t err = {""};
        server_verdict_t v = *token ? server_authn_token(s->auth, token, user, &err) : SERVER_NO;
        if (v == SERVER_YES) {
            bool has = false;
            for (size_t i = 0; i < user->groups.len; i++)
                has |= strcmp(user->groups.items[i], "system:authenticated") == 0;
            if (!has) strvec_push(&user->groups, "system:authenticated");
            return 0;
        }
        if (v == SERVER_UNKNOWN)
            diag_warn("https %s %s: %s", http_req_method(r), http_req_path(r), err.msg);
        else
            diag_debug("https %s %s: %s", http_req_method(r), http_req_path(r), err.msg);
        http_req_error(r, 401, "Unauthorized");
        return 401;
    }
    if (s->anonymous) {
        user->name = xstrdup("system:anonymous");
        user->uid = xstrdup("");
        strvec_push(&user->groups, "system:unauthenticated");
        return 0;
    }
    http_req_error(r, 401, "Unauthorized");
    return 401;
}

static int authorize(server_t *s, http_req_t *r, const server_user_t *user)
{
    const char *subs[2];
    size_t n = server_path_subresources(http_req_path(r), subs);
    const char *verb = server_method_verb(http_req_method(r));
    char reason[256] = "";
    bool unknown = false;
    err_t err = {""};
    for (size_t i = 0; i < n; i++) {
        server_verdict_t v =
            server_authz(s->auth, user, verb, subs[i], reason, sizeof reason, &err);
        if (v == SERVER_YES) return 0;
        if (v == SERVER_UNKNOWN) unknown = true;
    }
    char list[64];
    snprintf(list, sizeof list, "%s%s%s", subs[0], n > 1 ? " " : "", n > 1 ? subs[1] : "");
    if (unknown) {
        diag_warn("https %s %s: %s", http_req_method(r), http_req_path(r), err.msg);
        http_req_error(
            r, 500, "Authorization error (user=%s, verb=%s, resource=nodes, subresource(s)=[%s])",
            user->name, verb, list);
        return 500;
    }
    http_req_error(r, 403, "Forbidden (user=%s, verb=%s, resource=nodes, subresource(s)=[%s])%s%s",
                   user->name, verb, list, reason[0] ? ": " : "", reason);
    return 403;
}

void server_route(void *ctx, http_req_t *r)
{
    server_t *s = ctx;
    http_req_set_class(r, server_path_class(http_req_path(r)));
    server_user_t user = {0};
    if (authenticate(s, r, &user) == 0 && authorize(s, r, &user) == 0) route(s, r);
    server_user_free(&user);
}
