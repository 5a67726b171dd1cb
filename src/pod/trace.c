/* trace.c: a pod start's trace (see trace.h): the bookkeeping, the log
 * line and the histograms. */
#include "pod/trace.h"
#include "util/diag.h"
#include "util/time.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pod_trace_begin(pod_trace_t *t, int64_t created_wall, int64_t seen_wall, int64_t seen_mono,
                     int64_t admitted_mono)
{
    t->on = true;
    t->reported = false;
    t->seen_wall = seen_wall;
    t->seen = seen_mono;
    if (created_wall > 0) {
        t->begin[METRICS_STAGE_WATCH] = created_wall;
        t->end[METRICS_STAGE_WATCH] = seen_wall;
    }
    pod_trace_mark(t, METRICS_STAGE_ADMISSION, seen_mono, admitted_mono);
}

void pod_trace_mark(pod_trace_t *t, metrics_start_stage_t stage, int64_t begin, int64_t end)
{
    if (stage < 0 || stage >= METRICS_STAGE_COUNT) return;
    t->begin[stage] = begin;
    t->end[stage] = end > begin ? end : begin;
    /* An end of 0 would read as "not ended": a stage ended at the clock's
     * zero cannot happen on the monotonic clock after boot. */
}

bool pod_trace_whole(const pod_trace_t *t)
{
    return t->on && !t->reported && t->end[METRICS_STAGE_INSTANTIATE] &&
           t->end[METRICS_STAGE_STATUS];
}

bool pod_trace_take(pod_trace_t *t, pod_trace_t *out)
{
    if (!pod_trace_whole(t)) return false;
    t->reported = true;
    int64_t last = 0;
    for (int s = METRICS_STAGE_ADMISSION; s < METRICS_STAGE_NODE; s++)
        if (t->end[s] > last) last = t->end[s];
    t->begin[METRICS_STAGE_NODE] = t->seen;
    t->end[METRICS_STAGE_NODE] = last > t->seen ? last : t->seen;
    *out = *t;
    return true;
}

void pod_trace_seconds(const pod_trace_t *t, double seconds[METRICS_STAGE_COUNT],
                       bool have[METRICS_STAGE_COUNT])
{
    for (int s = 0; s < METRICS_STAGE_COUNT; s++) {
        have[s] = t->end[s] != 0;
        int64_t d = have[s] ? t->end[s] - t->begin[s] : 0;
        seconds[s] = d > 0 ? (double)d / (double)NS_PER_SEC : 0;
    }
}

void pod_trace_format(const pod_trace_t *t, const char *ns, const char *name, const char *uid,
                      strbuf_t *sb)
{
    double sec[METRICS_STAGE_COUNT];
    bool have[METRICS_STAGE_COUNT];
    pod_trace_seconds(t, sec, have);
    json_t *o = json_object();
    char pod[512];
    snprintf(pod, sizeof pod, "%s/%s", ns ? ns : "", name ? name : "");
    json_object_set_new(o, "pod", json_string(pod));
    json_object_set_new(o, "uid", json_string(uid ? uid : ""));
    json_object_set_new(o, "seen_wall_ns", json_integer(t->seen_wall));
    for (int s = 0; s < METRICS_STAGE_COUNT; s++) {
        if (!have[s]) continue;
        char key[48];
        snprintf(key, sizeof key, "%s_ms", metrics_start_stage_names[s]);
        /* microsecond precision is what the clocks give that matters */
        json_object_set_new(o, key, json_real((double)(int64_t)(sec[s] * 1e6) / 1e3));
    }
    /* Where the status stage lies, as offsets from the delivery: its begin
     * (the running state published) and its end (acknowledged). */
    static const char *const at[2] = {"running_at_ms", "acked_at_ms"};
    int64_t ends[2] = {t->begin[METRICS_STAGE_STATUS], t->end[METRICS_STAGE_STATUS]};
    for (int i = 0; i < 2; i++)
        if (ends[i] && t->seen)
            json_object_set_new(o, at[i], json_real((double)((ends[i] - t->seen) / 1000) / 1e3));
    char *text = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(12));
    strbuf_puts(sb, "pod start trace ");
    strbuf_puts(sb, text ? text : "{}");
    free(text);
    json_decref(o);
}

void pod_trace_emit(const pod_trace_t *t, const char *ns, const char *name, const char *uid)
{
    strbuf_t sb = STRBUF_INIT;
    pod_trace_format(t, ns, name, uid, &sb);
    diag_info("%s", strbuf_str(&sb));
    strbuf_free(&sb);
    double sec[METRICS_STAGE_COUNT];
    bool have[METRICS_STAGE_COUNT];
    pod_trace_seconds(t, sec, have);
    metrics_pod_start_trace(sec, have);
}
