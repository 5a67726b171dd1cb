/* action.c: one attempt of a probe's or hook's action (see probe.h):
 * picks the address (the action's host, else the pod's IP) and the port,
 * and says plainly why the actions a WebAssembly container cannot answer
 * fail: exec (no process to exec in) and grpc (nothing wasmlet serves
 * speaks HTTP/2 yet). */
#include "probe/probe.h"

#include <stdio.h>

probe_result_t probe_attempt(const podspec_action_t *a, const probe_target_t *t, int64_t timeout_ms,
                             char *out, size_t cap)
{
    out[0] = '\0';
    const char *host = a->host ? a->host : t ? t->pod_ip : NULL;
    switch (a->kind) {
    case ACTION_EXEC:
        snprintf(out, cap,
                 "exec cannot run: a WebAssembly container has no process to exec in "
                 "(use an httpGet or tcpSocket probe)");
        return PROBE_FAILURE;
    case ACTION_GRPC:
        snprintf(out, cap,
                 "gRPC probe to port %d cannot pass: nothing wasmlet serves speaks HTTP/2 yet "
                 "(use an httpGet or tcpSocket probe)",
                 a->port);
        return PROBE_FAILURE;
    case ACTION_SLEEP:
        snprintf(out, cap, "sleep is not a probe action");
        return PROBE_FAILURE;
    case ACTION_HTTP_GET:
    case ACTION_TCP_SOCKET:
        break;
    }
    if (a->port < 0) {
        snprintf(out, cap, "couldn't find port: %s in the container's ports",
                 a->port_name ? a->port_name : "?");
        return PROBE_FAILURE;
    }
    if (!host || !*host) {
        snprintf(out, cap, "the pod has no IP to probe yet");
        return PROBE_FAILURE;
    }
    const char *netns = t ? t->netns : NULL;
    long status;
    if (a->kind == ACTION_HTTP_GET)
        return probe_http_get(a, host, netns, timeout_ms, PROBE_USER_AGENT, &status, out, cap);
    return probe_tcp_connect(host, a->port, netns, timeout_ms, out, cap);
}
