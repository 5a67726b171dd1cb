/* httpc.c: checked libcurl options and the capped body sink (see httpc.h). */
#include "util/httpc.h"

#include <pthread.h>
#include <string.h>

#ifndef WASMLET_VERSION
#define WASMLET_VERSION "dev"
#endif

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int httpc_global_init(err_t *err)
{
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return err_set(err, "libcurl init: %s", curl_easy_strerror(global_rc));
    return 0;
}

void httpc_note_(httpc_setup_t *s, CURLcode rc, const char *what)
{
    if (rc != CURLE_OK && s->rc == CURLE_OK) {
        s->rc = rc;
        s->what = what;
    }
}

void httpc_setup_request(httpc_setup_t *s, const char *url, char *errbuf,
                         struct curl_slist *headers, const char *method, const void *body,
                         size_t body_len, bool empty_body)
{
    HTTPC_SET(s, CURLOPT_URL, url);
    HTTPC_SET(s, CURLOPT_NOSIGNAL, 1L);
    HTTPC_SET(s, CURLOPT_ERRORBUFFER, errbuf);
    HTTPC_SET(s, CURLOPT_PROTOCOLS_STR, "http,https");
    HTTPC_SET(s, CURLOPT_USERAGENT, "wasmlet/" WASMLET_VERSION);
    HTTPC_SET(s, CURLOPT_HTTPHEADER, headers);
    if (strcmp(method, "GET") == 0) {
        HTTPC_SET(s, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        HTTPC_SET(s, CURLOPT_NOBODY, 1L);
    } else {
        HTTPC_SET(s, CURLOPT_CUSTOMREQUEST, method);
        if (body || empty_body) {
            HTTPC_SET(s, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
            HTTPC_SET(s, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        }
    }
}

int httpc_setup_done(const httpc_setup_t *s, err_t *err)
{
    if (s->rc == CURLE_OK) return 0;
    return err_set(err, "libcurl refused %s: %s", s->what, curl_easy_strerror(s->rc));
}

bool httpc_sink_add(httpc_sink_t *s, const void *data, size_t len)
{
    if (!s->buf) return true;
    if (len > s->max || s->buf->len > s->max - len) {
        s->too_big = true;
        return false;
    }
    strbuf_append(s->buf, data, len);
    return true;
}

size_t httpc_sink_write(char *data, size_t size, size_t n, void *sink)
{
    size_t len = size * n;
    return httpc_sink_add(sink, data, len) ? len : 0;
}

int httpc_sink_error(const httpc_sink_t *s, const char *what, err_t *err)
{
    if (s->max >= (1u << 20) && s->max % (1u << 20) == 0)
        return err_set(err, "%s: response larger than %zu MiB", what, s->max >> 20);
    if (s->max >= (1u << 10) && s->max % (1u << 10) == 0)
        return err_set(err, "%s: response larger than %zu KiB", what, s->max >> 10);
    return err_set(err, "%s: response larger than %zu bytes", what, s->max);
}
