/* set.c: a container's probes (see probe.h), and prober_probe_total.
 *
 * A set is one timer of the queue. Each time it fires it runs the probes
 * that are due, one attempt each, in the kubelet's order of concern:
 * startup until it has succeeded, then readiness and liveness. It feeds
 * each attempt to the probe's threshold state, tells the owner about every
 * attempt that did not plainly pass (its events) and every change of a
 * reported result, and is queued again at the earliest next period. A
 * liveness or startup probe that failed stays on hold: the owner restarts
 * the container, which gets a new set.
 *
 * Threads and locks: the probe state and due times are touched only by
 * the scheduler thread firing the set (a set is never queued while it
 * fires) and, before it is queued, by probe_set_start. The metrics table
 * has its own leaf lock (metrics_mu), taken last and never held across a
 * call out. */
#include "probe/internal.h"
#include "metrics/prom.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct probe_set {
    probe_timer_t timer;
    probe_set_ops_t ops;
    const podspec_probe_t *probes[PROBE_KINDS];
    char *pod_ip, *netns;
    char *ns, *pod, *uid, *container;
    int64_t started_mono, unit_ns;
    probe_state_t st[PROBE_KINDS];
    int64_t next[PROBE_KINDS]; /* due instants (monotonic ns) */
    bool started;              /* the startup probe passed, or there is none */
};

const char *probe_kind_name(probe_kind_t kind)
{
    static const char *const names[PROBE_KINDS] = {"Liveness", "Readiness", "Startup"};
    return kind >= 0 && kind < PROBE_KINDS ? names[kind] : "?";
}

/* --- thresholds ------------------------------------------------------------------------ */

void probe_state_init(probe_state_t *st, probe_kind_t kind)
{
    memset(st, 0, sizeof *st);
    st->current = kind == PROBE_LIVENESS    ? PROBE_SUCCESS
                  : kind == PROBE_READINESS ? PROBE_FAILURE
                                            : PROBE_UNKNOWN;
    st->last = PROBE_UNKNOWN;
}

bool probe_state_feed(probe_state_t *st, probe_kind_t kind, const podspec_probe_t *p,
                      probe_result_t attempt)
{
    if (st->on_hold) return false;
    probe_result_t r =
        attempt == PROBE_SUCCESS || attempt == PROBE_WARNING ? PROBE_SUCCESS : PROBE_FAILURE;
    if (st->last == r) {
        st->run++;
    } else {
        st->last = r;
        st->run = 1;
    }
    if ((r == PROBE_FAILURE && st->run < p->failure_threshold) ||
        (r == PROBE_SUCCESS && st->run < p->success_threshold))
        return false;
    bool changed = st->current != r;
    st->current = r;
    if (r == PROBE_FAILURE && (kind == PROBE_LIVENESS || kind == PROBE_STARTUP)) {
        st->on_hold = true;
        st->run = 0;
    }
    return changed;
}

/* --- the set ------------------------------------------------------------------------------ */

static bool active(const probe_set_t *set, probe_kind_t k)
{
    if (!set->probes[k] || set->st[k].on_hold) return false;
    return k == PROBE_STARTUP ? !set->started : set->started;
}

/* Liveness and readiness begin once the container has started: at their
 * initial delay from its start, or now if that has passed. */
static void begin_after_startup(probe_set_t *set, int64_t now)
{
    for (int k = PROBE_LIVENESS; k <= PROBE_READINESS; k++) {
        if (!set->probes[k]) continue;
        int64_t at = set->started_mono + set->probes[k]->initial_delay_seconds * set->unit_ns;
        set->next[k] = at > now ? at : now;
    }
}

static int64_t set_fire(probe_timer_t *t)
{
    probe_set_t *set = (probe_set_t *)((char *)t - offsetof(probe_set_t, timer));
    probe_target_t target = {.pod_ip = set->pod_ip, .netns = set->netns};
    static const probe_kind_t order[] = {PROBE_STARTUP, PROBE_READINESS, PROBE_LIVENESS};
    char out[PROBE_OUTPUT_MAX];
    for (size_t i = 0; i < 3; i++) {
        probe_kind_t k = order[i];
        int64_t now = time_mono_ns();
        if (!active(set, k) || set->next[k] > now) continue;
        const podspec_probe_t *p = set->probes[k];
        probe_result_t r = probe_attempt(
            &p->action, &target, p->timeout_seconds * set->unit_ns / NS_PER_MS, out, sizeof out);
        if (set->uid)
            probe_metrics_count(probe_kind_name(k), r, set->ns, set->pod, set->uid, set->container);
        if (r != PROBE_SUCCESS && set->ops.attempt) set->ops.attempt(set->ops.ctx, k, r, out);
        bool changed = probe_state_feed(&set->st[k], k, p, r);
        set->next[k] = now + p->period_seconds * set->unit_ns;
        if (k == PROBE_STARTUP && set->st[k].current == PROBE_SUCCESS) {
            set->started = true;
            begin_after_startup(set, time_mono_ns());
        }
        if (changed && set->ops.changed) set->ops.changed(set->ops.ctx, k, set->st[k].current);
    }
    int64_t due = -1;
    for (int k = 0; k < PROBE_KINDS; k++)
        if (active(set, k) && (due < 0 || set->next[k] < due)) due = set->next[k];
    return due;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

probe_set_t *probe_set_start(probe_sched_t *s, const probe_set_spec_t *spec,
                             const probe_set_ops_t *ops)
{
    probe_set_t *set = xcalloc(1, sizeof *set);
    set->timer.fire = set_fire;
    set->ops = *ops;
    memcpy(set->probes, spec->probes, sizeof set->probes);
    set->pod_ip = dup_or_null(spec->target.pod_ip);
    set->netns = dup_or_null(spec->target.netns);
    set->ns = dup_or_null(spec->ns);
    set->pod = dup_or_null(spec->pod);
    set->uid = dup_or_null(spec->uid);
    set->container = dup_or_null(spec->container);
    set->started_mono = spec->started_mono;
    set->unit_ns = (spec->unit_ms > 0 ? spec->unit_ms : 1000) * NS_PER_MS;
    for (int k = 0; k < PROBE_KINDS; k++)
        probe_state_init(&set->st[k], k);
    set->started = !set->probes[PROBE_STARTUP];
    int64_t now = time_mono_ns();
    if (set->started) {
        begin_after_startup(set, now);
    } else {
        int64_t at =
            set->started_mono + set->probes[PROBE_STARTUP]->initial_delay_seconds * set->unit_ns;
        set->next[PROBE_STARTUP] = at > now ? at : now;
    }
    int64_t due = -1;
    for (int k = 0; k < PROBE_KINDS; k++)
        if (active(set, k) && (due < 0 || set->next[k] < due)) due = set->next[k];
    if (due >= 0) sched_add(s, &set->timer, due);
    return set;
}

void probe_set_stop(probe_set_t *set)
{
    if (!set) return;
    sched_cancel(&set->timer);
    free(set->pod_ip);
    free(set->netns);
    free(set->ns);
    free(set->pod);
    free(set->uid);
    free(set->container);
    free(set);
}

/* --- prober_probe_total ------------------------------------------------------------------- */

typedef struct series {
    struct series *next;
    const char *kind; /* static */
    int result;       /* 0 successful, 1 failed, 2 unknown */
    char *ns, *pod, *uid, *container;
    uint64_t count;
} series_t;

static pthread_mutex_t metrics_mu = PTHREAD_MUTEX_INITIALIZER;
static series_t *metrics_head; /* metrics_mu */

static const char *const result_names[] = {"successful", "failed", "unknown"};

void probe_metrics_count(const char *kind, probe_result_t r, const char *ns, const char *pod,
                         const char *uid, const char *container)
{
    int result = r == PROBE_SUCCESS || r == PROBE_WARNING ? 0 : r == PROBE_FAILURE ? 1 : 2;
    pthread_mutex_lock(&metrics_mu);
    series_t *s = metrics_head;
    for (; s; s = s->next)
        if (s->kind == kind && s->result == result && strcmp(s->uid, uid) == 0 &&
            strcmp(s->container, container ? container : "") == 0)
            break;
    if (!s) {
        s = xcalloc(1, sizeof *s);
        s->kind = kind;
        s->result = result;
        s->ns = xstrdup(ns ? ns : "");
        s->pod = xstrdup(pod ? pod : "");
        s->uid = xstrdup(uid);
        s->container = xstrdup(container ? container : "");
        s->next = metrics_head;
        metrics_head = s;
    }
    s->count++;
    pthread_mutex_unlock(&metrics_mu);
}

void probe_metrics_forget(const char *uid)
{
    pthread_mutex_lock(&metrics_mu);
    for (series_t **pp = &metrics_head; *pp;) {
        series_t *s = *pp;
        if (uid && strcmp(s->uid, uid) == 0) {
            *pp = s->next;
            free(s->ns);
            free(s->pod);
            free(s->uid);
            free(s->container);
            free(s);
        } else {
            pp = &s->next;
        }
    }
    pthread_mutex_unlock(&metrics_mu);
}

void probe_metrics_render(strbuf_t *sb)
{
    prom_family(sb, "prober_probe_total", "counter",
                "Cumulative number of a liveness, readiness or startup probe for a container "
                "by result.");
    pthread_mutex_lock(&metrics_mu);
    for (const series_t *s = metrics_head; s; s = s->next) {
        strbuf_puts(sb, "prober_probe_total{");
        prom_label(sb, true, "container", s->container);
        prom_label(sb, false, "namespace", s->ns);
        prom_label(sb, false, "pod", s->pod);
        prom_label(sb, false, "pod_uid", s->uid);
        strbuf_printf(sb, ",probe_type=\"%s\",result=\"%s\"} %llu\n", s->kind,
                      result_names[s->result], (unsigned long long)s->count);
    }
    pthread_mutex_unlock(&metrics_mu);
}
