/* registry.c: HTTP to OCI registries (Distribution API v2) with libcurl.
 *
 * Every request goes through one function, image_registry_request(), which owns
 * the authentication dance: send what we have (nothing, a cached Bearer
 * token or a Basic header); on 401 read WWW-Authenticate, fetch a token from
 * the Bearer realm (with the credential's user and password, or its OAuth2
 * identity token) or build a Basic header, and try once more. A second 401
 * is final and its message reaches the user.
 *
 * Response bodies of 2xx go to the caller (a memory buffer for manifests,
 * a sink that hashes and writes for blobs); any other body is kept, capped,
 * to turn the registry's JSON errors ({"errors":[{"code","message"}]}) into
 * the error text. Redirects are followed (blob storage often lives
 * elsewhere); curl drops our Authorization header when a redirect changes
 * host, which is what signed storage URLs need.
 *
 * Connection failures read like "dial 127.0.0.1:5999: connection refused"
 * so that a pod's ErrImagePull message says what happened without curl's
 * vocabulary.
 *
 * Why one file of this length: it is one protocol client (challenge,
 * token, retries and Retry-After, capped blob streaming, manifests), whose
 * steps share the connection and auth state of one registry.
 */
#include "image/registry.h"
#include "image/digest.h"
#include "util/base64.h"
#include "util/httpc.h"
#include "util/json.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MANIFEST_MAX (4u << 20) /* registries cap manifests at 4 MiB too */
#define ERROR_BODY_MAX (64u << 10)
#define TOKEN_BODY_MAX (1u << 20)
#define BUSY_RETRIES 3
#define BUSY_WAIT_MAX_MS 20000

#define ACCEPT_MANIFESTS                                                                           \
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "        \
    "application/vnd.docker.distribution.manifest.v2+json, "                                       \
    "application/vnd.docker.distribution.manifest.list.v2+json"

struct image_registry {
    CURL *curl;
    char *base; /* "https://host:port" */
    char *endpoint;
    char *repository;
    const image_cred_t *cred;
    char *ca_file;
    bool push;
    image_store_stats_t *stats;
    char *auth_header; /* "Authorization: ..." currently in use, or NULL */
    long last_status;
};

/* --- WWW-Authenticate --------------------------------------------------- */

void image_registry_challenge_free(image_registry_challenge_t *c)
{
    if (!c) return;
    free(c->scheme);
    free(c->realm);
    free(c->service);
    free(c->scope);
    memset(c, 0, sizeof *c);
}

static bool is_tchar(char c)
{
    return isalnum((unsigned char)c) || (c && strchr("!#$%&'*+-.^_`|~/", c));
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Reads a token or quoted-string value; returns the position after it. */
static const char *read_value(const char *p, strbuf_t *out)
{
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++) {
            if (*p == '\\' && p[1]) p++;
            strbuf_putc(out, *p);
        }
        return *p == '"' ? p + 1 : p;
    }
    while (*p && *p != ',' && *p != ' ' && *p != '\t')
        strbuf_putc(out, *p++);
    return p;
}

int image_registry_challenge_parse(const char *header, image_registry_challenge_t *out, err_t *err)
{
    memset(out, 0, sizeof *out);
    image_registry_challenge_t cur = {0};
    image_registry_challenge_t basic = {0};
    bool have_bearer = false, have_basic = false;
    const char *p = header ? header : "";
    char *first_scheme = NULL;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p) break;
        const char *s = p;
        while (is_tchar(*p))
            p++;
        if (p == s) break; /* garbage: stop reading */
        memset(&cur, 0, sizeof cur);
        cur.scheme = xstrndup(s, (size_t)(p - s));
        for (char *c = cur.scheme; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (!first_scheme) first_scheme = xstrdup(cur.scheme);
        /* auth-params until the next challenge (a token not followed by '=') */
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            const char *name = p;
            while (is_tchar(*p) && *p != '/')
                p++;
            size_t nlen = (size_t)(p - name);
            const char *eq = skip_ws(p);
            if (nlen == 0 || *eq != '=') {
                p = name;
                break;
            }
            p = skip_ws(eq + 1);
            strbuf_t v = STRBUF_INIT;
            p = read_value(p, &v);
            char **slot = NULL;
            if (nlen == 5 && strncasecmp(name, "realm", 5) == 0) slot = &cur.realm;
            if (nlen == 7 && strncasecmp(name, "service", 7) == 0) slot = &cur.service;
            if (nlen == 5 && strncasecmp(name, "scope", 5) == 0) slot = &cur.scope;
            if (slot) {
                free(*slot);
                *slot = strbuf_take(&v);
            } else {
                strbuf_free(&v);
            }
        }
        if (!have_bearer && strcmp(cur.scheme, "bearer") == 0) {
            *out = cur;
            have_bearer = true;
        } else if (!have_basic && strcmp(cur.scheme, "basic") == 0) {
            basic = cur;
            have_basic = true;
        } else {
            image_registry_challenge_free(&cur);
        }
    }
    if (have_bearer) {
        image_registry_challenge_free(&basic);
        free(first_scheme);
        if (!out->realm) {
            image_registry_challenge_free(out);
            return err_set(err, "Bearer challenge without a realm: %s", header);
        }
        return 0;
    }
    if (have_basic) {
        *out = basic;
        free(first_scheme);
        return 0;
    }
    int rc = first_scheme
                 ? err_set(err,
                           "unsupported authentication scheme \"%s\" (wasmlet answers Bearer "
                           "and Basic)",
                           first_scheme)
                 : err_set(err, "no authentication challenge in WWW-Authenticate \"%s\"",
                           header ? header : "");
    free(first_scheme);
    return rc;
}

/* --- scheme choice -------------------------------------------------------- */

static char *endpoint_host(const char *endpoint)
{
    if (endpoint[0] == '[') {
        const char *close = strchr(endpoint, ']');
        return close ? xstrndup(endpoint + 1, (size_t)(close - endpoint - 1)) : xstrdup(endpoint);
    }
    const char *colon = strchr(endpoint, ':');
    return colon ? xstrndup(endpoint, (size_t)(colon - endpoint)) : xstrdup(endpoint);
}

bool image_registry_is_insecure(const char *endpoint, const char *const *insecure)
{
    char *host = endpoint_host(endpoint);
    bool yes =
        strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
    for (size_t i = 0; !yes && insecure && insecure[i]; i++) {
        const char *e = insecure[i];
        const char *scheme = strstr(e, "://");
        if (scheme) e = scheme + 3;
        if (strcasecmp(e, endpoint) == 0 || strcasecmp(e, host) == 0) yes = true;
    }
    free(host);
    return yes;
}

/* --- session ---------------------------------------------------------------- */

image_registry_t *image_registry_open(const image_registry_options_t *opts)
{
    if (httpc_global_init(NULL) == -1) return NULL;
    image_registry_t *r = xcalloc(1, sizeof *r);
    r->curl = curl_easy_init();
    if (!r->curl) {
        free(r);
        return NULL;
    }
    r->endpoint = xstrdup(opts->endpoint);
    r->base = xasprintf(
        "%s://%s", image_registry_is_insecure(opts->endpoint, opts->insecure) ? "http" : "https",
        opts->endpoint);
    r->repository = xstrdup(opts->repository);
    r->cred = opts->cred;
    r->ca_file = opts->ca_file ? xstrdup(opts->ca_file) : NULL;
    r->push = opts->push;
    r->stats = opts->stats;
    if (r->cred && r->cred->registry_token)
        r->auth_header = xasprintf("Authorization: Bearer %s", r->cred->registry_token);
    return r;
}

void image_registry_close(image_registry_t *r)
{
    if (!r) return;
    curl_easy_cleanup(r->curl);
    free(r->base);
    free(r->endpoint);
    free(r->repository);
    free(r->ca_file);
    free(r->auth_header);
    free(r);
}

long image_registry_last_status(const image_registry_t *r)
{
    return r->last_status;
}

void image_registry_manifest_free(image_registry_manifest_t *m)
{
    if (!m) return;
    free(m->data);
    free(m->content_type);
    memset(m, 0, sizeof *m);
}

/* --- one HTTP exchange ---------------------------------------------------- */

typedef struct http_req {
    const char *method; /* GET HEAD POST PUT */
    const char *url;
    const char *accept;
    const char *content_type;
    const void *body;
    size_t body_len;
    image_registry_sink_fn sink; /* 2xx bodies; NULL: keep in resp.body up to max_body */
    void *sink_arg;
    size_t max_body;
    const char *auth_header; /* used instead of the session's (token requests) */
    bool no_auth;            /* never answer challenges (token requests) */
} http_req_t;

typedef struct http_resp {
    long status;
    strbuf_t body;  /* the 2xx body (no sink) */
    strbuf_t ebody; /* a non-2xx body, capped */
    char *content_type;
    char *digest;
    char *location;
    strbuf_t challenges;    /* WWW-Authenticate values joined by ", " */
    int64_t retry_after_ms; /* Retry-After, -1 when absent */
    httpc_sink_t capped;    /* resp.body up to req->max_body */
    bool sink_failed;
    err_t sink_err;
    const http_req_t *req;
} http_resp_t;

static void resp_reset(http_resp_t *resp)
{
    strbuf_reset(&resp->body);
    strbuf_reset(&resp->ebody);
    strbuf_reset(&resp->challenges);
    free(resp->content_type);
    free(resp->digest);
    free(resp->location);
    resp->content_type = resp->digest = resp->location = NULL;
    resp->status = 0;
    resp->retry_after_ms = -1;
}

static void resp_free(http_resp_t *resp)
{
    resp_reset(resp);
    strbuf_free(&resp->body);
    strbuf_free(&resp->ebody);
    strbuf_free(&resp->challenges);
}

static char *header_value(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':') return NULL;
    const char *v = line + n + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    return xstrndup(v, (size_t)(end - v));
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    http_resp_t *resp = arg;
    size_t len = size * nmemb;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or a 100 Continue) starts over. */
        resp_reset(resp);
        const char *sp = memchr(data, ' ', len);
        if (sp) resp->status = strtol(sp + 1, NULL, 10);
        return len;
    }
    char *v;
    if ((v = header_value(data, len, "Content-Type"))) {
        v[strcspn(v, "; ")] = '\0';
        free(resp->content_type);
        resp->content_type = v;
    } else if ((v = header_value(data, len, "Docker-Content-Digest"))) {
        free(resp->digest);
        resp->digest = v;
    } else if ((v = header_value(data, len, "Location"))) {
        free(resp->location);
        resp->location = v;
    } else if ((v = header_value(data, len, "Retry-After"))) {
        /* delay-seconds; an HTTP-date counts as a second (the clocks of
         * the registry and the node need not agree) */
        char *end;
        long long secs = strtoll(v, &end, 10);
        resp->retry_after_ms = (end != v && !*end && secs >= 0) ? secs * 1000 : 1000;
        free(v);
    } else if ((v = header_value(data, len, "WWW-Authenticate"))) {
        if (resp->challenges.len) strbuf_puts(&resp->challenges, ", ");
        strbuf_puts(&resp->challenges, v);
        free(v);
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    http_resp_t *resp = arg;
    size_t len = size * nmemb;
    if (resp->status < 200 || resp->status >= 300) {
        if (resp->ebody.len < ERROR_BODY_MAX) strbuf_append(&resp->ebody, data, len);
        return len;
    }
    if (resp->req->sink) {
        if (resp->req->sink(resp->req->sink_arg, data, len, &resp->sink_err) == -1) {
            resp->sink_failed = true;
            return 0;
        }
        return len;
    }
    return httpc_sink_add(&resp->capped, data, len) ? len : 0;
}

/* "http://host:port/..." -> "host:port" (with the scheme's default port). */
static char *url_hostport(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *out;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        out = xasprintf("%s:%s", host, port);
    else
        out = xstrdup(url);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return out;
}

static int transport_error(image_registry_t *r, const http_req_t *req, http_resp_t *resp,
                           CURLcode rc, const char *errbuf, err_t *err)
{
    if (resp->sink_failed) {
        if (err) *err = resp->sink_err;
        return -1;
    }
    if (resp->capped.too_big) {
        char *what = xasprintf("%s %s", req->method, req->url);
        httpc_sink_error(&resp->capped, what, err);
        free(what);
        return -1;
    }
    char *hp = url_hostport(req->url);
    int ret;
    if (rc == CURLE_COULDNT_CONNECT) {
        long os = 0;
        curl_easy_getinfo(r->curl, CURLINFO_OS_ERRNO, &os);
        char msg[128];
        snprintf(msg, sizeof msg, "%s", os ? strerror((int)os) : "connection failed");
        msg[0] = (char)tolower((unsigned char)msg[0]);
        ret = err_set(err, "dial %s: %s", hp, msg);
    } else if (rc == CURLE_COULDNT_RESOLVE_HOST) {
        char *h = endpoint_host(hp);
        ret = err_set(err, "lookup %s: no such host", h);
        free(h);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        ret = err_set(err, "%s %s: timed out (%s)", req->method, req->url, errbuf[0] ? errbuf : "");
    } else {
        ret = err_set(err, "%s %s: %s%s%s", req->method, req->url, curl_easy_strerror(rc),
                      errbuf[0] ? ": " : "", errbuf);
    }
    free(hp);
    return ret;
}

static int perform(image_registry_t *r, const http_req_t *req, http_resp_t *resp, err_t *err)
{
    CURL *c = r->curl;
    curl_easy_reset(c);
    char errbuf[CURL_ERROR_SIZE] = "";
    resp_reset(resp);
    resp->req = req;
    resp->capped = (httpc_sink_t){.buf = &resp->body, .max = req->max_body};
    resp->sink_failed = false;
    err_clear(&resp->sink_err);

    struct curl_slist *h = NULL;
    char *accept = req->accept ? xasprintf("Accept: %s", req->accept) : NULL;
    char *ctype = req->content_type ? xasprintf("Content-Type: %s", req->content_type) : NULL;
    if (accept) h = curl_slist_append(h, accept);
    if (ctype) h = curl_slist_append(h, ctype);
    const char *auth = req->auth_header ? req->auth_header : req->no_auth ? NULL : r->auth_header;
    if (auth) h = curl_slist_append(h, auth);
    h = curl_slist_append(h, "Expect:");

    httpc_setup_t s = {.h = c};
    /* Every method but GET and HEAD sends a body, if only an empty one. */
    httpc_setup_request(&s, req->url, errbuf, h, req->method, req->body, req->body_len, true);
    HTTPC_SET(&s, CURLOPT_FOLLOWLOCATION, 1L);
    HTTPC_SET(&s, CURLOPT_MAXREDIRS, 10L);
    HTTPC_SET(&s, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    HTTPC_SET(&s, CURLOPT_CONNECTTIMEOUT, 30L);
    /* No total timeout (modules can be large); a stalled transfer is one
     * that moved less than a byte a second for a minute. */
    HTTPC_SET(&s, CURLOPT_LOW_SPEED_LIMIT, 1L);
    HTTPC_SET(&s, CURLOPT_LOW_SPEED_TIME, 60L);
    if (r->ca_file) HTTPC_SET(&s, CURLOPT_CAINFO, r->ca_file);
    HTTPC_SET(&s, CURLOPT_HEADERFUNCTION, on_header);
    HTTPC_SET(&s, CURLOPT_HEADERDATA, resp);
    HTTPC_SET(&s, CURLOPT_WRITEFUNCTION, on_body);
    HTTPC_SET(&s, CURLOPT_WRITEDATA, resp);
    if (httpc_setup_done(&s, err) == -1) {
        curl_slist_free_all(h);
        free(accept);
        free(ctype);
        r->last_status = 0;
        return err_prefix(err, "%s %s", req->method, req->url);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    free(accept);
    free(ctype);
    if (rc != CURLE_OK) {
        r->last_status = 0;
        return transport_error(r, req, resp, rc, errbuf, err);
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    resp->status = status;
    return 0;
}

/* The registry's own words for a failed request: the messages of a JSON
 * errors body, or a token endpoint's "details", or the body's first line. */
static int status_error(const http_resp_t *resp, err_t *err)
{
    strbuf_t msg = STRBUF_INIT;
    json_t *root = resp->ebody.len ? json_loadb(resp->ebody.data, resp->ebody.len, 0, NULL) : NULL;
    json_t *errors = json_object_get(root, "errors");
    size_t i;
    json_t *e;
    const char *code = NULL;
    json_array_foreach(errors, i, e)
    {
        const char *m = json_string_value(json_object_get(e, "message"));
        const char *cd = json_string_value(json_object_get(e, "code"));
        if (!code && cd) code = cd;
        if (msg.len) strbuf_puts(&msg, "; ");
        strbuf_puts(&msg, m ? m : cd ? cd : "error");
    }
    if (!msg.len && root) {
        const char *d = json_string_value(json_object_get(root, "details"));
        if (!d) d = json_string_value(json_object_get(root, "error_description"));
        if (!d) d = json_string_value(json_object_get(root, "error"));
        if (!d) d = json_string_value(json_object_get(root, "message"));
        if (d) strbuf_puts(&msg, d);
    }
    if (!msg.len && resp->ebody.len && !root) {
        size_t n = strcspn(resp->ebody.data, "\r\n");
        if (n > 200) n = 200;
        strbuf_append(&msg, resp->ebody.data, n);
    }
    if (!msg.len) {
        const char *reason = resp->status == 401   ? "unauthorized"
                             : resp->status == 403 ? "forbidden"
                             : resp->status == 404 ? "not found"
                                                   : "request failed";
        strbuf_puts(&msg, reason);
    }
    int rc = code ? err_set(err, "%s (%s, HTTP %ld)", strbuf_str(&msg), code, resp->status)
                  : err_set(err, "%s (HTTP %ld)", strbuf_str(&msg), resp->status);
    strbuf_free(&msg);
    json_decref(root);
    return rc;
}

static char *escape(CURL *c, const char *s)
{
    char *e = curl_easy_escape(c, s, 0);
    char *out = xstrdup(e ? e : "");
    curl_free(e);
    return out;
}

static char *basic_header(const image_cred_t *cred)
{
    char *plain = xasprintf("%s:%s", cred->username ? cred->username : "",
                            cred->password ? cred->password : "");
    char *b64 = base64_encode(plain, strlen(plain));
    char *h = xasprintf("Authorization: Basic %s", b64);
    free(plain);
    free(b64);
    return h;
}

int image_registry_token_parse(const char *body, size_t len, char **token, err_t *err)
{
    *token = NULL;
    json_t *root = json_loadb(body, len, 0, NULL); /* no JSON_ALLOW_NUL: "\u0000" fails */
    if (!json_is_object(root)) {
        json_decref(root);
        return err_set(err, "the response is not a JSON object");
    }
    const char *tok = json_string_value(json_object_get(root, "token"));
    if (!tok || !*tok) tok = json_string_value(json_object_get(root, "access_token"));
    int rc = 0;
    if (!tok || !*tok)
        rc = err_set(err, "the response has no token");
    else if (strpbrk(tok, "\r\n"))
        rc = err_set(err, "the response's token holds a line break");
    else
        *token = xstrdup(tok);
    json_decref(root);
    return rc;
}

/* Fetches a Bearer token for the challenge: GET realm?service&scope with
 * Basic credentials (or none), or, with an identity token, the OAuth2
 * refresh-token POST. */
static int fetch_token(image_registry_t *r, const image_registry_challenge_t *ch, err_t *err)
{
    const char *default_scope_fmt = r->push ? "repository:%s:pull,push" : "repository:%s:pull";
    char *scope = ch->scope ? xstrdup(ch->scope) : xasprintf(default_scope_fmt, r->repository);
    char *e_scope = escape(r->curl, scope);
    char *e_service = ch->service ? escape(r->curl, ch->service) : NULL;
    http_req_t req = {.method = "GET", .no_auth = true, .max_body = TOKEN_BODY_MAX};
    http_resp_t resp = {0};
    char *url = NULL, *form = NULL, *basic = NULL;
    int rc = -1;
    if (r->cred && r->cred->identity_token) {
        char *e_tok = escape(r->curl, r->cred->identity_token);
        form = xasprintf("grant_type=refresh_token&client_id=wasmlet&refresh_token=%s&scope=%s%s%s",
                         e_tok, e_scope, e_service ? "&service=" : "", e_service ? e_service : "");
        free(e_tok);
        url = xstrdup(ch->realm);
        req.method = "POST";
        req.content_type = "application/x-www-form-urlencoded";
        req.body = form;
        req.body_len = strlen(form);
    } else {
        url = xasprintf("%s%sscope=%s%s%s", ch->realm, strchr(ch->realm, '?') ? "&" : "?", e_scope,
                        e_service ? "&service=" : "", e_service ? e_service : "");
        if (r->cred && r->cred->username) {
            basic = basic_header(r->cred);
            req.auth_header = basic;
        }
    }
    req.url = url;
    if (perform(r, &req, &resp, err) == -1) {
        err_prefix(err, "token from %s", ch->realm);
        goto out;
    }
    if (resp.status < 200 || resp.status >= 300) {
        r->last_status = resp.status == 400 ? 401 : resp.status;
        status_error(&resp, err);
        err_prefix(err, "token from %s", ch->realm);
        goto out;
    }
    char *tok = NULL;
    if (image_registry_token_parse(strbuf_str(&resp.body), resp.body.len, &tok, err) == -1) {
        err_prefix(err, "token from %s", ch->realm);
        goto out;
    }
    free(r->auth_header);
    r->auth_header = xasprintf("Authorization: Bearer %s", tok);
    free(tok);
    rc = 0;
out:
    resp_free(&resp);
    free(url);
    free(form);
    free(basic);
    free(scope);
    free(e_scope);
    free(e_service);
    return rc;
}

/* Sends req, answering one authentication challenge if the registry asks.
 * On return with 0, resp holds a response of any status; the caller decides
 * what a non-2xx means. */
static int image_registry_request(image_registry_t *r, const http_req_t *req, http_resp_t *resp,
                                  err_t *err)
{
    bool answered = false;
    int busy = 0;
    int64_t waited_ms = 0;
    for (;;) {
        resp->retry_after_ms = -1;
        if (perform(r, req, resp, err) == -1) return -1;
        r->last_status = resp->status;
        /* 429 and 503 say "later": wait as Retry-After asks (or 1, 2, 4 s),
         * up to BUSY_RETRIES times and BUSY_WAIT_MAX_MS in all; after that
         * the status is the pull's error and the pod's back-off takes
         * over. A 2xx body reached the sink only for a 2xx, so nothing was
         * written for these. */
        if ((resp->status == 429 || resp->status == 503) && busy < BUSY_RETRIES) {
            int64_t ms = resp->retry_after_ms >= 0 ? resp->retry_after_ms : 1000LL << busy;
            if (waited_ms + ms > BUSY_WAIT_MAX_MS) return 0;
            busy++;
            waited_ms += ms;
            time_sleep_ms(ms);
            continue;
        }
        if (resp->status != 401 || answered || req->no_auth) return 0;
        image_registry_challenge_t ch;
        err_t cerr;
        if (image_registry_challenge_parse(strbuf_str(&resp->challenges), &ch, &cerr) == -1)
            return 0; /* the 401 itself is the error to report */
        answered = true;
        if (strcmp(ch.scheme, "bearer") == 0) {
            int rc = fetch_token(r, &ch, err);
            image_registry_challenge_free(&ch);
            if (rc == -1) return -1;
        } else {
            image_registry_challenge_free(&ch);
            if (!r->cred || !r->cred->username) return 0;
            free(r->auth_header);
            r->auth_header = basic_header(r->cred);
        }
    }
}

static void stat_add(image_registry_t *r, uint64_t *field, uint64_t n)
{
    if (r->stats) __atomic_add_fetch(field, n, __ATOMIC_RELAXED);
}

/* --- API calls ------------------------------------------------------------ */

int image_registry_get_manifest(image_registry_t *r, const char *reference, bool head,
                                image_registry_manifest_t *out, err_t *err)
{
    memset(out, 0, sizeof *out);
    char *url = xasprintf("%s/v2/%s/manifests/%s", r->base, r->repository, reference);
    http_req_t req = {.method = head ? "HEAD" : "GET",
                      .url = url,
                      .accept = ACCEPT_MANIFESTS,
                      .max_body = MANIFEST_MAX};
    http_resp_t resp = {0};
    if (r->stats) stat_add(r, &r->stats->manifest_requests, 1);
    int rc = image_registry_request(r, &req, &resp, err);
    if (rc == 0 && (resp.status < 200 || resp.status >= 300)) rc = status_error(&resp, err);
    if (rc == 0) {
        if (!head) {
            out->len = resp.body.len;
            out->data = strbuf_take(&resp.body);
        }
        out->content_type = resp.content_type ? xstrdup(resp.content_type) : NULL;
        if (resp.digest && image_digest_valid(resp.digest))
            snprintf(out->header_digest, sizeof out->header_digest, "%s", resp.digest);
    }
    resp_free(&resp);
    free(url);
    return rc;
}

typedef struct count_sink {
    image_registry_sink_fn sink;
    void *arg;
    image_registry_t *r;
} count_sink_t;

static int counting_sink(void *arg, const void *data, size_t len, err_t *err)
{
    count_sink_t *cs = arg;
    if (cs->r->stats) stat_add(cs->r, &cs->r->stats->bytes_downloaded, len);
    return cs->sink(cs->arg, data, len, err);
}

int image_registry_get_blob(image_registry_t *r, const char *digest, image_registry_sink_fn sink,
                            void *arg, err_t *err)
{
    char *url = xasprintf("%s/v2/%s/blobs/%s", r->base, r->repository, digest);
    count_sink_t cs = {sink, arg, r};
    http_req_t req = {.method = "GET", .url = url, .sink = counting_sink, .sink_arg = &cs};
    http_resp_t resp = {0};
    if (r->stats) stat_add(r, &r->stats->blob_downloads, 1);
    int rc = image_registry_request(r, &req, &resp, err);
    if (rc == 0 && (resp.status < 200 || resp.status >= 300)) rc = status_error(&resp, err);
    resp_free(&resp);
    free(url);
    return rc;
}

int image_registry_blob_exists(image_registry_t *r, const char *digest, bool *exists, err_t *err)
{
    char *url = xasprintf("%s/v2/%s/blobs/%s", r->base, r->repository, digest);
    http_req_t req = {.method = "HEAD", .url = url};
    http_resp_t resp = {0};
    int rc = image_registry_request(r, &req, &resp, err);
    if (rc == 0) {
        /* A HEAD has no body to explain a failure; answer "absent" and let
         * the upload that follows fail with the registry's words. */
        *exists = resp.status >= 200 && resp.status < 300;
    }
    resp_free(&resp);
    free(url);
    return rc;
}

/* A Location header may be absolute or relative to the registry. */
static char *resolve_location(image_registry_t *r, const char *loc)
{
    if (strncmp(loc, "http://", 7) == 0 || strncmp(loc, "https://", 8) == 0) return xstrdup(loc);
    return xasprintf("%s%s%s", r->base, loc[0] == '/' ? "" : "/", loc);
}

int image_registry_upload_blob(image_registry_t *r, const char *digest, const void *data,
                               size_t len, err_t *err)
{
    char *url = xasprintf("%s/v2/%s/blobs/uploads/", r->base, r->repository);
    http_req_t req = {.method = "POST", .url = url, .max_body = ERROR_BODY_MAX};
    http_resp_t resp = {0};
    char *put_url = NULL;
    int rc = image_registry_request(r, &req, &resp, err);
    if (rc == 0 && resp.status != 202) rc = status_error(&resp, err);
    if (rc == 0 && !resp.location)
        rc = err_set(err, "POST %s: the registry gave no upload location", url);
    if (rc == -1) {
        err_prefix(err, "start upload of %s", digest);
        goto out;
    }
    char *loc = resolve_location(r, resp.location);
    put_url = xasprintf("%s%sdigest=%s", loc, strchr(loc, '?') ? "&" : "?", digest);
    free(loc);
    http_req_t put = {.method = "PUT",
                      .url = put_url,
                      .content_type = "application/octet-stream",
                      .body = data,
                      .body_len = len,
                      .max_body = ERROR_BODY_MAX};
    rc = image_registry_request(r, &put, &resp, err);
    if (rc == 0 && resp.status != 201 && resp.status != 204) rc = status_error(&resp, err);
    if (rc == -1) err_prefix(err, "upload %s", digest);
out:
    resp_free(&resp);
    free(url);
    free(put_url);
    return rc;
}

int image_registry_put_manifest(image_registry_t *r, const char *reference, const char *media_type,
                                const void *data, size_t len, err_t *err)
{
    char *url = xasprintf("%s/v2/%s/manifests/%s", r->base, r->repository, reference);
    http_req_t req = {.method = "PUT",
                      .url = url,
                      .content_type = media_type,
                      .body = data,
                      .body_len = len,
                      .max_body = ERROR_BODY_MAX};
    http_resp_t resp = {0};
    int rc = image_registry_request(r, &req, &resp, err);
    if (rc == 0 && resp.status != 201 && resp.status != 200) rc = status_error(&resp, err);
    if (rc == -1) err_prefix(err, "put manifest %s", reference);
    resp_free(&resp);
    free(url);
    return rc;
}
