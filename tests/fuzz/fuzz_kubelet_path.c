/* fuzz_kubelet_path.c: a request to the kubelet API as its path and query
 * arrive (server/): the request target parsed and decoded the way
 * server/http.c does it (libevent), then the path's metrics class, its
 * authorization subresources and verb (server/auth.h), the
 * /containerLogs/{ns}/{pod}/{container} split (server/routes.h), and the
 * logs query (server/endpoints.h). The first byte picks the method; the
 * rest is the request target ("/containerLogs/a/b/c?follow=true"). */
#include "harness.h"
#include "server/auth.h"
#include "server/endpoints.h"
#include "server/routes.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <stdlib.h>
#include <string.h>

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

static const char *query_get(void *ctx, const char *key)
{
    return evhttp_find_header(ctx, key);
}

static void check_segments(const char *path, const char *prefix, int max)
{
    char *seg[4] = {NULL};
    int n = server_path_segments(path, prefix, seg, max);
    if (n < -1 || n > max) abort();
    for (int i = 0; i < n; i++) {
        if (!seg[i][0] || strchr(seg[i], '/')) abort();
        free(seg[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    const char *method = methods[fuzz_byte(&in) % (sizeof methods / sizeof *methods)];
    char *target = fuzz_rest(&in, NULL);
    struct evhttp_uri *uri = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
    if (!uri) goto out;
    const char *raw_path = evhttp_uri_get_path(uri);
    char *path = evhttp_uridecode(raw_path && *raw_path ? raw_path : "/", 0, NULL);
    if (!path) goto out_uri;

    const char *cls = server_path_class(path);
    if (!cls || !cls[0]) abort();
    const char *subs[2] = {NULL, NULL};
    size_t nsubs = server_path_subresources(path, subs);
    if (nsubs < 1 || nsubs > 2) abort();
    for (size_t i = 0; i < nsubs; i++)
        if (!subs[i] || !subs[i][0]) abort();
    if (!server_method_verb(method)) abort();
    check_segments(path, "/containerLogs", 3);
    check_segments(path, "/exec", 4);
    check_segments(path, "/portForward", 4);

    struct evkeyvalq query;
    TAILQ_INIT(&query);
    const char *q = evhttp_uri_get_query(uri);
    if (q && evhttp_parse_query_str(q, &query) == -1) {
        evhttp_clear_headers(&query);
        TAILQ_INIT(&query);
    }
    crilog_read_opts_t opts = CRILOG_READ_OPTS_INIT;
    bool follow = false, previous = false;
    char why[512] = "";
    /* A fixed clock: the same input must give the same answer. */
    if (server_logs_query(query_get, &query, 1800000000LL * 1000000000LL, &opts, &follow, &previous,
                          why, sizeof why) == 0) {
        if (opts.tail_lines < -1 || opts.limit_bytes == 0 || opts.limit_bytes < -1 ||
            opts.since_ns < 0)
            abort();
    } else if (!why[0]) {
        abort(); /* a 400 always says why */
    }
    evhttp_clear_headers(&query);
    free(path);
out_uri:
    evhttp_uri_free(uri);
out:
    free(target);
    return 0;
}
