/* http.c: the httpGet action, as the kubelet's HTTP prober does it.
 *
 *   - GET scheme://host:port/path, with the User-Agent
 *     "kube-probe/<major>.<minor>" and "Accept: *" "/" "*" unless the probe's
 *     httpHeaders set them (a Host header sets the request's host); no
 *     proxy, no keep-alive, and HTTPS without verifying the certificate;
 *   - success is a status from 200 to 399, failure anything else
 *     ("HTTP probe failed with statuscode: 500");
 *   - redirects are followed (at most 10) while they stay on the same host
 *     name; one to another host is not followed and the probe passes with
 *     a warning ("Probe terminated redirects"), as any 3xx that ends the
 *     chain does;
 *   - the whole attempt, redirects included, gets timeout_ms.
 *
 * The sockets are opened through CURLOPT_OPENSOCKETFUNCTION, inside the
 * pod's network namespace (net_ns_socket) when one is given. Errors read as
 * the kubelet's (Go's): Get "URL": dial tcp H:P: connect: connection
 * refused, or context deadline exceeded. Each attempt uses a fresh easy
 * handle: probes are seconds apart and a kept connection would hide a
 * server that stopped accepting. */
#include "net/net.h"
#include "probe/probe.h"
#include "util/httpc.h"
#include "util/strbuf.h"
#include "util/time.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define BODY_MAX (10 * 1024) /* the kubelet keeps 10 KiB of a probe's body */
#define MAX_REDIRECTS 10

static curl_socket_t open_in_netns(void *ctx, curlsocktype purpose, struct curl_sockaddr *addr)
{
    (void)purpose;
    err_t err;
    int fd = net_ns_socket(ctx, addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol, &err);
    return fd == -1 ? CURL_SOCKET_BAD : fd;
}

static bool has_header(const podspec_action_t *a, const char *name)
{
    for (size_t i = 0; i < a->nheaders; i++)
        if (strcasecmp(a->headers[i].name, name) == 0) return true;
    return false;
}

static struct curl_slist *headers_of(const podspec_action_t *a)
{
    struct curl_slist *h = NULL;
    if (!has_header(a, "Accept")) h = curl_slist_append(h, "Accept: */*");
    h = curl_slist_append(h, "Connection: close");
    for (size_t i = 0; i < a->nheaders; i++) {
        char line[2048];
        /* (The User-Agent is CURLOPT_USERAGENT; a header of the probe's replaces
         * it.) "Name;" is curl's way of sending a header with an empty value. */
        if (a->headers[i].value[0])
            snprintf(line, sizeof line, "%s: %s", a->headers[i].name, a->headers[i].value);
        else
            snprintf(line, sizeof line, "%s;", a->headers[i].name);
        h = curl_slist_append(h, line);
    }
    return h;
}

/* The host name part of a URL (without brackets or port), into out. */
static void url_host(const char *url, char *out, size_t cap)
{
    out[0] = '\0';
    CURLU *u = curl_url();
    char *host = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        const char *h = host;
        size_t len = strlen(h);
        if (len >= 2 && h[0] == '[') {
            h++;
            len -= 2;
        }
        snprintf(out, cap, "%.*s", (int)len, h);
    }
    curl_free(host);
    curl_url_cleanup(u);
}

/* One GET of url; *status gets the response's status (0: none). */
static CURLcode get_once(const char *url, struct curl_slist *headers, const char *netns,
                         int64_t timeout_ms, const char *user_agent, strbuf_t *body, long *status,
                         char **redirect, long *os_errno, char *errbuf)
{
    *status = 0;
    *redirect = NULL;
    *os_errno = 0;
    strbuf_reset(body);
    CURL *h = curl_easy_init();
    if (!h) return CURLE_OUT_OF_MEMORY;
    httpc_setup_t s = {.h = h};
    httpc_sink_t sink = {.buf = body, .max = BODY_MAX};
    httpc_setup_request(&s, url, errbuf, headers, "GET", NULL, 0, false);
    HTTPC_SET(&s, CURLOPT_USERAGENT, user_agent);
    HTTPC_SET(&s, CURLOPT_NOPROXY, "*");
    HTTPC_SET(&s, CURLOPT_FOLLOWLOCATION, 0L);
    HTTPC_SET(&s, CURLOPT_FORBID_REUSE, 1L);
    HTTPC_SET(&s, CURLOPT_FRESH_CONNECT, 1L);
    HTTPC_SET(&s, CURLOPT_SSL_VERIFYPEER, 0L);
    HTTPC_SET(&s, CURLOPT_SSL_VERIFYHOST, 0L);
    HTTPC_SET(&s, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 1));
    HTTPC_SET(&s, CURLOPT_WRITEFUNCTION, httpc_sink_write);
    HTTPC_SET(&s, CURLOPT_WRITEDATA, &sink);
    if (netns) {
        HTTPC_SET(&s, CURLOPT_OPENSOCKETFUNCTION, open_in_netns);
        HTTPC_SET(&s, CURLOPT_OPENSOCKETDATA, (void *)netns);
    }
    CURLcode rc = s.rc;
    if (rc == CURLE_OK) rc = curl_easy_perform(h);
    /* A body past the cap is cut, not an error: the status is what counts. */
    if (rc == CURLE_WRITE_ERROR && sink.too_big) rc = CURLE_OK;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, os_errno);
    char *loc = NULL;
    if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc)
        *redirect = strdup(loc);
    curl_easy_cleanup(h);
    return rc;
}

probe_result_t probe_http_get(const podspec_action_t *a, const char *host, const char *netns,
                              int64_t timeout_ms, const char *user_agent, long *status_out,
                              char *out, size_t cap)
{
    out[0] = '\0';
    *status_out = 0;
    err_t err;
    if (httpc_global_init(&err) == -1) {
        snprintf(out, cap, "%s", err.msg);
        return PROBE_FAILURE;
    }
    char url[2048];
    snprintf(url, sizeof url, "%s://%s%s%s:%d%s%s", a->https ? "https" : "http",
             strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", a->port,
             a->path[0] == '/' ? "" : "/", a->path);
    char first_host[256];
    url_host(url, first_host, sizeof first_host);
    struct curl_slist *headers = headers_of(a);
    strbuf_t body = {0};
    char *current = strdup(url);
    int64_t until = time_mono_ns() + timeout_ms * NS_PER_MS;
    probe_result_t r = PROBE_FAILURE;
    for (int hops = 0;; hops++) {
        char errbuf[CURL_ERROR_SIZE] = "";
        long status, os_errno;
        char *next = NULL;
        int64_t left = (until - time_mono_ns()) / NS_PER_MS;
        CURLcode rc = left > 0 ? get_once(current, headers, netns, left, user_agent, &body, &status,
                                          &next, &os_errno, errbuf)
                               : CURLE_OPERATION_TIMEDOUT;
        if (rc == CURLE_OK) *status_out = status;
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            snprintf(out, cap,
                     "Get \"%s\": context deadline exceeded (Client.Timeout exceeded while "
                     "awaiting headers)",
                     current);
        } else if (rc == CURLE_COULDNT_CONNECT && os_errno) {
            char h[256];
            url_host(current, h, sizeof h);
            CURLU *u = curl_url();
            char *port = NULL;
            curl_url_set(u, CURLUPART_URL, current, CURLU_DEFAULT_PORT);
            curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
            snprintf(out, cap, "Get \"%s\": dial tcp %s%s%s:%s: connect: %s", current,
                     strchr(h, ':') ? "[" : "", h, strchr(h, ':') ? "]" : "", port ? port : "?",
                     os_errno == ECONNREFUSED ? "connection refused" : strerror((int)os_errno));
            curl_free(port);
            curl_url_cleanup(u);
        } else if (rc != CURLE_OK) {
            snprintf(out, cap, "Get \"%s\": %s", current,
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
        } else if (status >= 300 && status < 400 && next) {
            char h[256];
            url_host(next, h, sizeof h);
            if (strcmp(h, first_host) != 0) {
                snprintf(out, cap, "Probe terminated redirects, Response body: %s",
                         strbuf_str(&body));
                r = PROBE_WARNING;
            } else if (hops + 1 >= MAX_REDIRECTS) {
                snprintf(out, cap, "Get \"%s\": stopped after %d redirects", next, MAX_REDIRECTS);
            } else {
                free(current);
                current = next;
                continue;
            }
        } else if (status >= 200 && status < 300) {
            snprintf(out, cap, "%s", strbuf_str(&body));
            r = PROBE_SUCCESS;
        } else if (status >= 300 && status < 400) {
            snprintf(out, cap, "Probe terminated redirects, Response body: %s", strbuf_str(&body));
            r = PROBE_WARNING;
        } else {
            snprintf(out, cap, "HTTP probe failed with statuscode: %ld", status);
        }
        free(next);
        break;
    }
    free(current);
    strbuf_free(&body);
    curl_slist_free_all(headers);
    return r;
}
