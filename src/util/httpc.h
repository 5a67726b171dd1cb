/* httpc.h: the libcurl set-up that both HTTP clients share (kube/client.c
 * for the API server, image/registry.c for OCI registries).
 *
 * libcurl reports a refused option only through curl_easy_setopt's return
 * value, which is easy to drop; a refused option means a request that
 * silently differs from the one meant (no timeout, no TLS material). Here
 * every option goes through HTTPC_SET, which keeps the first failure in the
 * httpc_setup_t, and httpc_setup_done() turns it into an error naming the
 * option, so a request is never sent half configured.
 *
 * httpc_sink_t is the in-memory body sink both clients use: it keeps a body
 * up to a cap and, past it, stops the transfer and remembers why, so that
 * the caller reports "response larger than 4 MiB" instead of libcurl's
 * "failed writing received data". */
#ifndef WASMLET_UTIL_HTTPC_H
#define WASMLET_UTIL_HTTPC_H

#include "util/err.h"
#include "util/strbuf.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

/* curl_global_init, once per process; -1 with err set when it failed. */
int httpc_global_init(err_t *err);

/* The options set on one easy handle, and the first that libcurl refused. */
typedef struct httpc_setup {
    CURL *h;
    CURLcode rc;      /* CURLE_OK, or the first failure */
    const char *what; /* the option that failed ("CURLOPT_URL") */
} httpc_setup_t;

/* Sets one option, keeping the first failure in s. */
#define HTTPC_SET(s, opt, val) httpc_note_((s), curl_easy_setopt((s)->h, opt, val), #opt)
void httpc_note_(httpc_setup_t *s, CURLcode rc, const char *what);

/* The options every wasmlet request has: the URL, no signals, errbuf
 * (CURL_ERROR_SIZE bytes) for libcurl's message, http and https only, the
 * User-Agent, the header list, and the method: GET, HEAD (no body), or any
 * other sent as a custom request with body when body is not NULL, or with
 * an empty body when empty_body says so (POST, registry uploads). */
void httpc_setup_request(httpc_setup_t *s, const char *url, char *errbuf,
                         struct curl_slist *headers, const char *method, const void *body,
                         size_t body_len, bool empty_body);

/* 0, or -1 with err naming the option libcurl refused. */
int httpc_setup_done(const httpc_setup_t *s, err_t *err);

/* A capped in-memory body. buf NULL: the body is read and dropped. */
typedef struct httpc_sink {
    strbuf_t *buf;
    size_t max;   /* the most bytes kept; past it the transfer stops */
    bool too_big; /* the cap was hit */
} httpc_sink_t;

/* A CURLOPT_WRITEFUNCTION for an httpc_sink_t (CURLOPT_WRITEDATA). */
size_t httpc_sink_write(char *data, size_t size, size_t n, void *sink);
/* Adds data to the sink: true, or false (and too_big set) past the cap. */
bool httpc_sink_add(httpc_sink_t *s, const void *data, size_t len);
/* "response larger than 4 MiB" (or KiB, or bytes) into err, prefixed with
 * what ("GET /api/v1/pods"); returns -1. */
int httpc_sink_error(const httpc_sink_t *s, const char *what, err_t *err);

#endif
