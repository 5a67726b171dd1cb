/* logs.c: GET /containerLogs/{namespace}/{pod}/{container}, the kubelet end
 * of `kubectl logs`.
 *
 * Every parameter the API server forwards is honoured: follow, tailLines,
 * limitBytes, timestamps, sinceSeconds, sinceTime, previous, and stream
 * (Stdout, Stderr, All). The reading itself is log/'s crilog_read, run on
 * the request's thread; its sink is the request's stream, so a slow client
 * holds the reader back instead of filling memory.
 *
 * Follow. crilog_read waits on inotify for the container's log directory,
 * so a line reaches the client within milliseconds of the write. It asks
 * should_stop at least every 100 ms; the answer is STOP when the client is
 * gone or the node shuts down, and DRAIN (send what the files hold, then
 * end) once the run being read has ended: the container is no longer
 * running, or a newer run has begun (a restart). That is how `kubectl logs
 * -f` ends with the container, as it does with the kubelet. */
#include "log/crilog.h"
#include "server/endpoints.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_INTERVAL_NS (50 * NS_PER_MS)

typedef struct follow_ctx {
    http_req_t *r;
    const server_pods_t *pods;
    const char *ns, *pod, *container;
    const char *path; /* the run being read */
    bool streaming;
    int64_t next_check;
    enum crilog_follow last;
} follow_ctx_t;

static int parse_bool(const char *v, bool *out)
{
    if (!v || strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "") == 0) {
        *out = true;
    } else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
        *out = false;
    } else {
        return -1;
    }
    return 0;
}

static int parse_int(const char *v, int64_t *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end) return -1;
    *out = n;
    return 0;
}

static int sink(void *ctx, const char *data, size_t len)
{
    follow_ctx_t *fc = ctx;
    if (!fc->streaming) {
        http_req_stream_start(fc->r, 200, "text/plain; charset=utf-8");
        fc->streaming = true;
    }
    return http_req_stream_write(fc->r, data, len) == 0 ? 0 : 1;
}

static enum crilog_follow should_stop(void *ctx)
{
    follow_ctx_t *fc = ctx;
    if (http_req_gone(fc->r)) return CRILOG_FOLLOW_STOP;
    int64_t now = time_mono_ns();
    if (now < fc->next_check || fc->last != CRILOG_FOLLOW_ON) return fc->last;
    fc->next_check = now + CHECK_INTERVAL_NS;
    char *dir = NULL, *latest = NULL;
    bool running = false;
    if (fc->pods->container_logs(fc->pods->ctx, fc->ns, fc->pod, fc->container, &dir, &running,
                                 NULL) == -1 ||
        !running || crilog_find_run(dir, false, &latest, NULL) == -1 ||
        strcmp(latest, fc->path) != 0)
        fc->last = CRILOG_FOLLOW_DRAIN;
    free(dir);
    free(latest);
    return fc->last;
}

int server_logs_query(server_query_fn get, void *ctx, int64_t now_ns, crilog_read_opts_t *opts,
                      bool *follow, bool *previous, char *why, size_t why_len)
{
#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(why, why_len, __VA_ARGS__);                                                       \
        return -1;                                                                                 \
    } while (0)
    const char *v;
    if ((v = get(ctx, "follow")) && parse_bool(v, follow) == -1)
        BAD("follow: %s is not a boolean", v);
    if ((v = get(ctx, "previous")) && parse_bool(v, previous) == -1)
        BAD("previous: %s is not a boolean", v);
    if ((v = get(ctx, "timestamps")) && parse_bool(v, &opts->timestamps) == -1)
        BAD("timestamps: %s is not a boolean", v);
    if ((v = get(ctx, "tailLines")) &&
        (parse_int(v, &opts->tail_lines) == -1 || opts->tail_lines < 0))
        BAD("tailLines: %s is not a count of lines", v);
    if ((v = get(ctx, "limitBytes")) &&
        (parse_int(v, &opts->limit_bytes) == -1 || opts->limit_bytes < 1))
        BAD("limitBytes: %s is not a positive number of bytes", v);
    const char *since_s = get(ctx, "sinceSeconds"), *since_t = get(ctx, "sinceTime");
    if (since_s && since_t) BAD("at most one of sinceSeconds or sinceTime may be given");
    if (since_s) {
        int64_t secs;
        if (parse_int(since_s, &secs) == -1 || secs < 1)
            BAD("sinceSeconds: %s is not a positive number", since_s);
        /* Further back than the clock goes is everything (no overflow). */
        opts->since_ns = secs >= now_ns / NS_PER_SEC ? 0 : now_ns - secs * NS_PER_SEC;
    }
    if (since_t && time_parse_rfc3339(since_t, &opts->since_ns) == -1)
        BAD("sinceTime: %s is not an RFC 3339 time", since_t);
    if (opts->since_ns < 0) opts->since_ns = 0; /* before the epoch: everything */
    if ((v = get(ctx, "stream"))) {
        if (strcmp(v, "Stdout") == 0)
            opts->streams = 1u << CRILOG_STDOUT;
        else if (strcmp(v, "Stderr") == 0)
            opts->streams = 1u << CRILOG_STDERR;
        else if (strcmp(v, "All") != 0)
            BAD("stream: %s is not one of Stdout, Stderr, All", v);
    }
    return 0;
#undef BAD
}

static const char *req_query(void *ctx, const char *key)
{
    return http_req_query(ctx, key);
}

void server_handle_logs(server_t *s, http_req_t *r, const char *ns, const char *pod,
                        const char *container)
{
    const server_pods_t *pods = &s->pods;
    crilog_read_opts_t opts = CRILOG_READ_OPTS_INIT;
    bool follow = false, previous = false;
    char why[512];
    if (server_logs_query(req_query, r, time_now_ns(), &opts, &follow, &previous, why,
                          sizeof why) == -1) {
        http_req_error(r, 400, "%s", why);
        return;
    }
    if (!pods->container_logs) {
        http_req_error(r, 404, "pod %s/%s is not on this node", ns, pod);
        return;
    }
    err_t err = {""};
    char *dir = NULL, *path = NULL;
    bool running = false;
    if (pods->container_logs(pods->ctx, ns, pod, container, &dir, &running, &err) == -1) {
        http_req_error(r, 404, "%s", err.msg);
        return;
    }
    if (crilog_find_run(dir, previous, &path, &err) == -1) {
        free(dir);
        if (previous)
            http_req_error(r, 400, "previous terminated container \"%s\" in pod \"%s\" not found",
                           container, pod);
        else
            http_req_error(r, 400, "container \"%s\" in pod \"%s\" is waiting to start", container,
                           pod);
        return;
    }
    follow_ctx_t fc = {
        .r = r, .pods = pods, .ns = ns, .pod = pod, .container = container, .path = path};
    /* Follow only a run that is still going: the latest, while it runs. */
    opts.follow = follow && !previous && running;
    if (opts.follow) {
        opts.should_stop = should_stop;
        http_req_stream_start(r, 200, "text/plain; charset=utf-8");
        fc.streaming = true;
    }
    int rc = crilog_read(path, &opts, sink, &fc, &err);
    if (!fc.streaming) {
        if (rc == -1)
            http_req_error(r, 500, "%s", err.msg);
        else
            http_req_reply(r, 200, "text/plain; charset=utf-8", "", 0);
    } else {
        http_req_stream_end(r);
    }
    free(dir);
    free(path);
}
