/* registry.h: the process-wide metrics registry: counters that the
 * subsystems feed and the kubelet HTTPS API reads for /metrics and
 * /stats/summary.
 *
 * The subsystems that know when something happened (a pod's first start, a
 * module loaded from the compile cache, a container run beginning and
 * ending, a certificate renewed) call one function here each; they need no
 * handle, because there is one registry per process, as there is one node.
 * Every function is thread-safe and cheap (one short mutex hold, no I/O),
 * so a call may sit on a container's start path. */
#ifndef WASMLET_METRICS_REGISTRY_H
#define WASMLET_METRICS_REGISTRY_H

#include "util/strbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- fed by other subsystems ------------------------------------------ */

/* A pod's first app container started, seconds after the node accepted the
 * pod. Counted once per pod uid (later calls for that uid are ignored). */
void metrics_pod_started(const char *pod_uid, double seconds);

/* The stages of a pod start that wasmlet stamps (pod/trace.h says where
 * each begins and ends). */
typedef enum metrics_start_stage {
    METRICS_STAGE_WATCH,       /* the pod's creation (or binding) to the watch delivering it */
    METRICS_STAGE_ADMISSION,   /* delivered to its worker started */
    METRICS_STAGE_SANDBOX,     /* the pod's network sandbox */
    METRICS_STAGE_VOLUMES,     /* the pod's volumes (tokens, ConfigMaps, Secrets) */
    METRICS_STAGE_PULL,        /* the first app container's image */
    METRICS_STAGE_LOAD,        /* its module loaded (compiled, from the cache or memory) */
    METRICS_STAGE_INSTANTIATE, /* its store, WASI and instance */
    METRICS_STAGE_STATUS,      /* its running state published to that status acknowledged */
    METRICS_STAGE_NODE,        /* delivered to the end of the last stage: the node's whole share */
    METRICS_STAGE_COUNT
} metrics_start_stage_t;

/* The label value of each stage ("watch", "admission", ...). */
extern const char *const metrics_start_stage_names[METRICS_STAGE_COUNT];

/* One pod's start, traced: seconds[s] for each stage s with have[s]; each
 * is observed in that stage's histogram. */
void metrics_pod_start_trace(const double seconds[METRICS_STAGE_COUNT],
                             const bool have[METRICS_STAGE_COUNT]);

/* A module was loaded for a container start; source is a
 * wasmrt_load_source_t (memory, disk cache, compiler). */
void metrics_module_loaded(int source);

/* A container run begins, called on the thread that will run the module:
 * its CPU is measured from that thread until metrics_container_end. */
void metrics_container_begin(const char *pod_uid, const char *container);
/* The run ended (same thread): its CPU time and final linear memory size. */
void metrics_container_end(const char *pod_uid, const char *container, uint64_t cpu_ns,
                           uint64_t memory_bytes);

typedef enum metrics_cert { METRICS_CERT_CLIENT, METRICS_CERT_SERVING } metrics_cert_t;
/* The certificate now in use expires at not_after_ns (Unix ns). */
void metrics_cert_expiry(metrics_cert_t which, int64_t not_after_ns);
/* A renewal of that certificate ended (ok: a new one is in use). */
void metrics_cert_renewal(metrics_cert_t which, bool ok);

/* One request served by the HTTPS API: the path's class ("containerLogs",
 * "pods", ...), the method, the HTTP status and how long it took to answer
 * (a streamed reply: until its headers went out). */
void metrics_http_request(const char *path_class, const char *method, int status, double seconds);

/* --- read by the server ------------------------------------------------ */
/* Every name is metrics_*; the families the registry alone knows are
 * rendered by metrics_render_* (render.c), the text format's pieces by
 * prom.h. */

#define METRICS_POD_START_BUCKETS 14
/* Upper bounds, in seconds, of the pod start latency histogram. */
extern const double metrics_pod_start_bounds[METRICS_POD_START_BUCKETS];

#define METRICS_STAGE_BUCKETS 16
/* Upper bounds, in seconds, of the stage histograms. */
extern const double metrics_stage_bounds[METRICS_STAGE_BUCKETS];

#define METRICS_LOAD_SOURCES 3 /* WASMRT_FROM_MEMORY, _DISK, _COMPILER */

typedef struct metrics_snapshot {
    uint64_t pod_start_bucket[METRICS_POD_START_BUCKETS]; /* cumulative */
    uint64_t pod_start_count;
    double pod_start_sum;
    uint64_t module_loads[METRICS_LOAD_SOURCES];
    int64_t cert_not_after[2];    /* 0: not known */
    uint64_t cert_renewals[2][2]; /* [which][ok] */
    uint64_t container_runs;      /* runs begun */
    /* per stage of a traced pod start (cumulative buckets) */
    uint64_t stage_bucket[METRICS_STAGE_COUNT][METRICS_STAGE_BUCKETS];
    uint64_t stage_count[METRICS_STAGE_COUNT];
    double stage_sum[METRICS_STAGE_COUNT];
} metrics_snapshot_t;

void metrics_snapshot(metrics_snapshot_t *out);

/* The HTTP request counters, one entry per (class, method, status). */
typedef struct metrics_http_entry {
    char path_class[32];
    char method[16];
    int status;
    uint64_t count;
    double seconds_sum;
} metrics_http_entry_t;
/* A copy of the entries (xmalloc'd; the caller frees); *n gets the count. */
metrics_http_entry_t *metrics_http_entries(size_t *n);

/* What is known of one container's resource use. */
typedef struct metrics_usage {
    bool running;          /* a run is in progress */
    int64_t started_ns;    /* when the current (or last) run began, Unix ns */
    uint64_t cpu_ns;       /* CPU of all its runs so far, the current one to this moment */
    bool memory_known;     /* a run has ended, so its linear memory size is known */
    uint64_t memory_bytes; /* linear memory at the end of the last run that ended */
} metrics_usage_t;

/* The linear memory a running container holds now, sampled on its own
 * thread (wasm/run.c): its memory usage until the run ends. */
void metrics_container_memory(const char *pod_uid, const char *container, uint64_t bytes);

/* Fills *out for the container and returns true, or false when no run of
 * it was ever seen. */
bool metrics_container_usage(const char *pod_uid, const char *container, metrics_usage_t *out);

/* Forgets everything of the pods not named in keep (their uids): called with
 * the pod list so ended pods do not accumulate. */
void metrics_forget_pods_except(const char *const *keep, size_t nkeep);

/* Clears everything (tests). */
void metrics_reset(void);

/* --- the registry's families, in the Prometheus text format (render.c) ---- */

/* kubelet_pod_start_duration_seconds (histogram). */
void metrics_render_pod_starts(strbuf_t *sb, const metrics_snapshot_t *m);
/* wasmlet_pod_start_stage_duration_seconds (a histogram per stage). */
void metrics_render_pod_start_stages(strbuf_t *sb, const metrics_snapshot_t *m);
/* wasmlet_container_runs_total. */
void metrics_render_container_runs(strbuf_t *sb, const metrics_snapshot_t *m);
/* wasmlet_module_loads_total, by source. */
void metrics_render_module_loads(strbuf_t *sb, const metrics_snapshot_t *m);
/* wasmlet_http_requests_total and wasmlet_http_request_duration_seconds. */
void metrics_render_http(strbuf_t *sb);
/* The certificate managers' TTLs (as of now_ns, Unix ns) and
 * wasmlet_certificate_renewals_total. */
void metrics_render_certs(strbuf_t *sb, const metrics_snapshot_t *m, int64_t now_ns);

#endif
