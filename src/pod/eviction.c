/* eviction.c: thresholds, their evaluation, the kubelet's ranking and
 * messages, and the shared pressure state (eviction.h). The pod manager's
 * sync thread acts on the verdicts (housekeeping.c). */
#include "pod/eviction.h"
#include "kube/quantity.h"
#include "util/json.h"
#include "util/proc.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#define CRITICAL_PRIORITY INT64_C(2000000000)

static const char *const signal_names[EVICT_SIGNALS] = {"memory.available", "nodefs.available",
                                                        "nodefs.inodesFree"};

const char *eviction_signal_name(eviction_signal_t s)
{
    return s < EVICT_SIGNALS ? signal_names[s] : "?";
}

const char *eviction_signal_resource(eviction_signal_t s)
{
    return s == EVICT_MEMORY_AVAILABLE ? "memory" : "ephemeral-storage";
}

static int signal_of(const char *name, size_t len)
{
    for (int i = 0; i < EVICT_SIGNALS; i++)
        if (strlen(signal_names[i]) == len && strncmp(signal_names[i], name, len) == 0) return i;
    return -1;
}

/* --- configuration ---------------------------------------------------------- */

static int threshold_value(const char *v, eviction_threshold_t *t, err_t *err, const char *part)
{
    size_t n = strlen(v);
    if (n == 0 || n >= sizeof t->text)
        return err_set(err, "eviction threshold %s: no value or too long", part);
    snprintf(t->text, sizeof t->text, "%s", v);
    if (v[n - 1] == '%') {
        char *end;
        double pct = strtod(v, &end);
        if (end != v + n - 1 || !(pct > 0) || pct > 100)
            return err_set(err, "eviction threshold %s: %s is not a percentage in (0%%, 100%%]",
                           part, v);
        t->percent = true;
        t->share = pct / 100;
    } else {
        int64_t q;
        if (quantity_parse(v, &q) == -1 || q < 0)
            return err_set(err, "eviction threshold %s: %s is not a quantity", part, v);
        t->percent = false;
        t->quantity = q;
    }
    t->set = true;
    return 0;
}

int eviction_parse_thresholds(const char *text, eviction_threshold_t out[EVICT_SIGNALS], err_t *err)
{
    eviction_threshold_t parsed[EVICT_SIGNALS];
    memset(parsed, 0, sizeof parsed);
    char *copy = xstrdup(text ? text : "");
    int rc = 0;
    char *save = NULL;
    for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
        while (*part == ' ')
            part++;
        if (!*part) continue;
        char *op = strchr(part, '<');
        if (!op) {
            rc = err_set(err, "eviction threshold %s: expected SIGNAL<VALUE (only < is allowed)",
                         part);
            break;
        }
        int s = signal_of(part, (size_t)(op - part));
        if (s < 0) {
            rc = err_set(err,
                         "eviction threshold %s: unknown signal (memory.available, "
                         "nodefs.available, nodefs.inodesFree)",
                         part);
            break;
        }
        if (parsed[s].set) {
            rc = err_set(err, "eviction threshold %s: %s given twice", part, signal_names[s]);
            break;
        }
        if (threshold_value(op + 1, &parsed[s], err, part) == -1) {
            rc = -1;
            break;
        }
        if (s == EVICT_NODEFS_INODES_FREE && !parsed[s].percent && parsed[s].quantity == 0) {
            rc = err_set(err, "eviction threshold %s: must be above 0", part);
            break;
        }
    }
    free(copy);
    if (rc == 0)
        for (int s = 0; s < EVICT_SIGNALS; s++) {
            /* the grace of soft thresholds is set apart: keep it */
            parsed[s].grace_ns = out[s].grace_ns;
            parsed[s].grace_set = out[s].grace_set;
            out[s] = parsed[s];
        }
    return rc;
}

int eviction_parse_grace(const char *text, eviction_threshold_t soft[EVICT_SIGNALS], err_t *err)
{
    char *copy = xstrdup(text ? text : "");
    int rc = 0;
    char *save = NULL;
    for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
        while (*part == ' ')
            part++;
        if (!*part) continue;
        char *eq = strchr(part, '=');
        int s = eq ? signal_of(part, (size_t)(eq - part)) : -1;
        int64_t ns;
        if (s < 0) {
            rc = err_set(err, "eviction grace period %s: expected SIGNAL=DURATION", part);
            break;
        }
        if (time_parse_duration(eq + 1, &ns) == -1) {
            rc = err_set(err, "eviction grace period %s: %s is not a duration (1m30s)", part,
                         eq + 1);
            break;
        }
        soft[s].grace_ns = ns;
        soft[s].grace_set = true;
    }
    free(copy);
    return rc;
}

int eviction_config_check(const eviction_config_t *c, err_t *err)
{
    for (int s = 0; s < EVICT_SIGNALS; s++)
        if (c->soft[s].set && !c->soft[s].grace_set)
            return err_set(err, "--eviction-soft %s has no --eviction-soft-grace-period",
                           signal_names[s]);
    return 0;
}

void eviction_config_default(eviction_config_t *c)
{
    memset(c, 0, sizeof *c);
    eviction_parse_thresholds("memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%",
                              c->hard, NULL);
    c->transition_ns = 300 * NS_PER_SEC;
}

/* --- observation and evaluation --------------------------------------------- */

void eviction_observe(const char *data_dir, eviction_observation_t *o)
{
    memset(o, 0, sizeof *o);
    proc_meminfo_t m;
    if (proc_meminfo(&m) == 0 && m.total > 0) {
        o->available[EVICT_MEMORY_AVAILABLE] = (int64_t)m.available;
        o->capacity[EVICT_MEMORY_AVAILABLE] = (int64_t)m.total;
        o->known[EVICT_MEMORY_AVAILABLE] = true;
    }
    struct statvfs st;
    if (data_dir && statvfs(data_dir, &st) == 0) {
        uint64_t bs = st.f_frsize ? st.f_frsize : st.f_bsize;
        o->available[EVICT_NODEFS_AVAILABLE] = (int64_t)(st.f_bavail * bs);
        o->capacity[EVICT_NODEFS_AVAILABLE] = (int64_t)(st.f_blocks * bs);
        o->known[EVICT_NODEFS_AVAILABLE] = st.f_blocks > 0;
        o->available[EVICT_NODEFS_INODES_FREE] = (int64_t)st.f_favail;
        o->capacity[EVICT_NODEFS_INODES_FREE] = (int64_t)st.f_files;
        /* Some file systems (tmpfs with nr_inodes=0, btrfs) report none. */
        o->known[EVICT_NODEFS_INODES_FREE] = st.f_files > 0;
    }
}

int64_t eviction_threshold_amount(const eviction_threshold_t *t, int64_t capacity)
{
    if (!t->set) return 0;
    if (t->percent) return (int64_t)((double)capacity * t->share);
    return t->quantity;
}

static bool below(const eviction_threshold_t *t, const eviction_observation_t *o, int s)
{
    return t->set && o->known[s] && o->available[s] < eviction_threshold_amount(t, o->capacity[s]);
}

static void threshold_text(const eviction_threshold_t *t, int64_t capacity, char *buf, size_t len)
{
    /* As the kubelet: a quantity as written, a percentage as the amount
     * it comes to ("Threshold quantity: 4902142351"). */
    if (t->percent)
        snprintf(buf, len, "%lld", (long long)eviction_threshold_amount(t, capacity));
    else
        snprintf(buf, len, "%s", t->text);
}

void eviction_evaluate(const eviction_config_t *c, eviction_state_t *st,
                       const eviction_observation_t *o, int64_t now, eviction_verdict_t *v)
{
    memset(v, 0, sizeof *v);
    bool pressed[2] = {false, false};
    for (int s = 0; s < EVICT_SIGNALS; s++) {
        const eviction_threshold_t *hard = &c->hard[s], *soft = &c->soft[s];
        bool hard_met = below(hard, o, s);
        bool soft_met = below(soft, o, s);
        if (soft_met) {
            if (!st->soft_since[s]) st->soft_since[s] = now;
        } else {
            st->soft_since[s] = 0;
        }
        bool soft_due = soft_met && now - st->soft_since[s] >= soft->grace_ns;
        /* The condition is set as soon as any threshold is met (a soft
         * one before its grace period ends, as the kubelet does). */
        if (hard_met || soft_met) pressed[s == EVICT_MEMORY_AVAILABLE ? 0 : 1] = true;
        if (hard_met || soft_due) {
            v->met[s] = true;
            if (!v->evict) {
                v->evict = true;
                v->signal = (eviction_signal_t)s;
                v->available = o->available[s];
                threshold_text(hard_met ? hard : soft, o->capacity[s], v->threshold_text,
                               sizeof v->threshold_text);
            }
        }
    }
    for (int r = 0; r < 2; r++) {
        if (pressed[r]) {
            st->pressure[r] = true;
            st->pressure_until[r] = now + c->transition_ns;
        } else if (st->pressure[r] && now >= st->pressure_until[r]) {
            st->pressure[r] = false;
        }
    }
    v->memory_pressure = st->pressure[0];
    v->disk_pressure = st->pressure[1];
}

/* --- ranking ----------------------------------------------------------------- */

static int compare(const void *a, const void *b)
{
    const eviction_candidate_t *x = a, *y = b;
    if (x->critical != y->critical) return x->critical ? 1 : -1;
    bool xe = x->usage > x->request, ye = y->usage > y->request;
    if (xe != ye) return xe ? -1 : 1;
    if (x->priority != y->priority) return x->priority < y->priority ? -1 : 1;
    /* usage minus requests, larger first (no overflow: both in int64
     * range, differences of non-negative figures) */
    int64_t dx = x->usage - x->request, dy = y->usage - y->request;
    if (dx != dy) return dx > dy ? -1 : 1;
    return 0;
}

void eviction_rank(eviction_candidate_t *c, size_t n)
{
    if (n > 1) qsort(c, n, sizeof *c, compare);
}

char *eviction_format_bytes(int64_t bytes, char *buf, size_t len)
{
    static const char *const suffix[] = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    int unit = -1;
    int64_t v = bytes;
    while (v != 0 && v % 1024 == 0 && unit < 5) {
        v /= 1024;
        unit++;
    }
    if (unit < 0)
        snprintf(buf, len, "%lld", (long long)bytes);
    else
        snprintf(buf, len, "%lld%s", (long long)v, suffix[unit]);
    return buf;
}

void eviction_message(const eviction_verdict_t *v, const eviction_candidate_t *c, char *buf,
                      size_t len)
{
    const char *resource = eviction_signal_resource(v->signal);
    char avail[32];
    strbuf_t sb = STRBUF_INIT;
    strbuf_printf(&sb, "The node was low on resource: %s. ", resource);
    if (v->signal == EVICT_NODEFS_INODES_FREE)
        snprintf(avail, sizeof avail, "%lld", (long long)v->available);
    else
        eviction_format_bytes(v->available, avail, sizeof avail);
    strbuf_printf(&sb, "Threshold quantity: %s, available: %s. ", v->threshold_text, avail);
    for (size_t i = 0; c && i < c->ncontainers; i++) {
        if (c->containers[i].usage <= c->containers[i].request) continue;
        char used[32], req[32];
        strbuf_printf(
            &sb, "Container %s was using %s, request is %s, has larger consumption of %s. ",
            c->containers[i].name, eviction_format_bytes(c->containers[i].usage, used, sizeof used),
            eviction_format_bytes(c->containers[i].request, req, sizeof req), resource);
    }
    snprintf(buf, len, "%s", strbuf_str(&sb));
    strbuf_free(&sb);
}

/* --- a pod's figures ----------------------------------------------------------- */

int64_t eviction_pod_priority(json_t *pod, bool *critical)
{
    json_t *p = json_at(pod, "spec", "priority");
    int64_t prio = json_is_integer(p) ? (int64_t)json_integer_value(p) : 0;
    if (critical) *critical = prio >= CRITICAL_PRIORITY;
    return prio;
}

static int64_t container_resource(json_t *ct, const char *kind, const char *resource,
                                  const char **text)
{
    const char *v = json_str_at(ct, "resources", kind, resource);
    int64_t q = 0;
    if (text) *text = v;
    if (!v || quantity_parse(v, &q) == -1 || q < 0) return 0;
    return q;
}

static int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

void eviction_pod_requests(json_t *pod, const char *resource, eviction_candidate_t *c)
{
    c->ncontainers = 0;
    c->request = 0;
    json_t *cts = json_at(pod, "spec", "containers");
    size_t i;
    json_t *ct;
    json_array_foreach(cts, i, ct)
    {
        if (c->ncontainers == EVICTION_MAX_CONTAINERS) break;
        int64_t req = container_resource(ct, "requests", resource, NULL);
        /* A limit without a request requests the limit (API defaulting;
         * static pods are not defaulted). */
        if (!json_str_at(ct, "resources", "requests", resource))
            req = container_resource(ct, "limits", resource, NULL);
        const char *name = json_str_at(ct, "name");
        snprintf(c->containers[c->ncontainers].name, sizeof c->containers[0].name, "%s",
                 name ? name : "");
        c->containers[c->ncontainers].request = req;
        c->containers[c->ncontainers].usage = 0;
        c->ncontainers++;
        c->request = add_sat(c->request, req);
    }
}

int64_t eviction_container_storage_limit(json_t *container, const char **text)
{
    return container_resource(container, "limits", "ephemeral-storage", text);
}

int64_t eviction_pod_storage_limit(json_t *pod)
{
    int64_t sum = 0, init_max = 0;
    size_t i;
    json_t *ct;
    json_array_foreach(json_at(pod, "spec", "containers"), i, ct) sum =
        add_sat(sum, eviction_container_storage_limit(ct, NULL));
    json_array_foreach(json_at(pod, "spec", "initContainers"), i, ct)
    {
        int64_t l = eviction_container_storage_limit(ct, NULL);
        if (l > init_max) init_max = l;
    }
    return sum > init_max ? sum : init_max;
}

/* --- shared state ---------------------------------------------------------------- */

struct pod_eviction {
    pthread_mutex_t mu; /* guards everything below; a leaf lock */
    eviction_config_t cfg;
    eviction_state_t st;
    bool updated;
    bool memory_pressure, disk_pressure;
    uint64_t evictions[EVICT_SIGNALS + 1];
};

pod_eviction_t *pod_eviction_new(const eviction_config_t *cfg)
{
    pod_eviction_t *ev = xcalloc(1, sizeof *ev);
    pthread_mutex_init(&ev->mu, NULL);
    if (cfg)
        ev->cfg = *cfg;
    else
        eviction_config_default(&ev->cfg);
    return ev;
}

void pod_eviction_free(pod_eviction_t *ev)
{
    if (!ev) return;
    pthread_mutex_destroy(&ev->mu);
    free(ev);
}

const eviction_config_t *pod_eviction_config(const pod_eviction_t *ev)
{
    return &ev->cfg; /* never changed after pod_eviction_new */
}

void pod_eviction_update(pod_eviction_t *ev, const char *data_dir, int64_t now,
                         eviction_verdict_t *v)
{
    eviction_observation_t o;
    eviction_observe(data_dir, &o);
    pthread_mutex_lock(&ev->mu);
    eviction_evaluate(&ev->cfg, &ev->st, &o, now, v);
    ev->updated = true;
    ev->memory_pressure = v->memory_pressure;
    ev->disk_pressure = v->disk_pressure;
    pthread_mutex_unlock(&ev->mu);
}

void pod_eviction_pressure(pod_eviction_t *ev, bool *memory, bool *disk)
{
    pthread_mutex_lock(&ev->mu);
    *memory = ev->updated && ev->memory_pressure;
    *disk = ev->updated && ev->disk_pressure;
    pthread_mutex_unlock(&ev->mu);
}

void pod_eviction_count(pod_eviction_t *ev, eviction_signal_t s)
{
    pthread_mutex_lock(&ev->mu);
    ev->evictions[s < EVICT_SIGNALS ? s : EVICT_SIGNALS]++;
    pthread_mutex_unlock(&ev->mu);
}

uint64_t pod_eviction_total(pod_eviction_t *ev)
{
    pthread_mutex_lock(&ev->mu);
    uint64_t n = 0;
    for (int i = 0; i <= EVICT_SIGNALS; i++)
        n += ev->evictions[i];
    pthread_mutex_unlock(&ev->mu);
    return n;
}
