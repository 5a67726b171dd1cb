/* hook.c: one run of a lifecycle hook (postStart, preStop) on the timer
 * queue (see probe.h). A sleep is a timer due at its end, so a pod
 * sleeping out its preStop holds no thread; an httpGet is one attempt on a
 * scheduler thread. The hook fires once and calls done once; cancelling
 * waits for a fire in progress, so done never runs after
 * probe_hook_cancel returns. */
#include "probe/internal.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct probe_hook {
    probe_timer_t timer;
    const podspec_action_t *action; /* borrowed: outlives the hook */
    char *pod_ip, *netns;
    int64_t deadline; /* monotonic ns */
    probe_hook_done_fn done;
    void *ctx;
};

static int64_t hook_fire(probe_timer_t *t)
{
    probe_hook_t *h = (probe_hook_t *)((char *)t - offsetof(probe_hook_t, timer));
    char out[PROBE_OUTPUT_MAX] = "";
    bool ok = false;
    switch (h->action->kind) {
    case ACTION_SLEEP:
        ok = true;
        break;
    case ACTION_HTTP_GET: {
        const podspec_action_t *a = h->action;
        const char *host = a->host ? a->host : h->pod_ip;
        int64_t left = (h->deadline - time_mono_ns()) / NS_PER_MS;
        long status = 0;
        if (a->port < 0)
            snprintf(out, sizeof out, "couldn't find port: %s in the container's ports",
                     a->port_name ? a->port_name : "?");
        else if (!host || !*host)
            snprintf(out, sizeof out, "the pod has no IP yet");
        else
            probe_http_get(a, host, h->netns, left > 0 ? left : 1, PROBE_HOOK_USER_AGENT, &status,
                           out, sizeof out);
        ok = status != 0;
        break;
    }
    case ACTION_TCP_SOCKET:
        snprintf(out, sizeof out, "tcpSocket is not supported as a lifecycle hook");
        break;
    case ACTION_GRPC:
        snprintf(out, sizeof out, "grpc is not supported as a lifecycle hook");
        break;
    case ACTION_EXEC:
        snprintf(out, sizeof out,
                 "exec hooks cannot run: a WebAssembly container has no process to exec in "
                 "(use httpGet or sleep)");
        break;
    }
    h->done(h->ctx, ok, ok ? NULL : out);
    return -1;
}

probe_hook_t *probe_hook_start(probe_sched_t *s, const podspec_action_t *a, const probe_target_t *t,
                               int64_t timeout_ms, probe_hook_done_fn done, void *ctx)
{
    probe_hook_t *h = xcalloc(1, sizeof *h);
    h->timer.fire = hook_fire;
    h->action = a;
    h->pod_ip = t && t->pod_ip ? xstrdup(t->pod_ip) : NULL;
    h->netns = t && t->netns ? xstrdup(t->netns) : NULL;
    h->done = done;
    h->ctx = ctx;
    int64_t now = time_mono_ns();
    h->deadline = now + (timeout_ms > 0 ? timeout_ms : 0) * NS_PER_MS;
    int64_t due = now;
    if (a->kind == ACTION_SLEEP) {
        int64_t end = now + a->sleep_seconds * NS_PER_SEC;
        due = end < h->deadline ? end : h->deadline;
    }
    sched_add(s, &h->timer, due);
    return h;
}

void probe_hook_cancel(probe_hook_t *h)
{
    if (!h) return;
    sched_cancel(&h->timer);
    free(h->pod_ip);
    free(h->netns);
    free(h);
}
