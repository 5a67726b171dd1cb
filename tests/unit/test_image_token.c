/* test_image_token.c: the Bearer token flow and redirects of image/, which
 * the local registry does not exercise (it speaks Basic and serves blobs
 * itself). A small in-process HTTP responder on 127.0.0.1 plays a registry
 * with a token service, the way public registries work: 401 with a Bearer
 * challenge, a token endpoint taking Basic credentials or an OAuth2 refresh
 * token, and blobs redirected to "storage" on another host name, where no
 * Authorization header may arrive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "image/digest.h"
#include "image/image.h"
#include "util/base64.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define TOKEN "good-token"
#define MODULE "\0asm\1\0\0\0token flow module"
#define MODULE_LEN (sizeof MODULE - 1)

typedef struct server {
    int fd;
    int port;
    pthread_t thread;
    volatile int stop;
    pthread_mutex_t lock;
    /* behaviour */
    bool anonymous_tokens; /* hand tokens out without credentials */
    bool fail_manifest;    /* answer manifests with a plain-text 500 */
    /* what was seen */
    int token_gets, token_posts, manifest_gets, storage_gets;
    bool storage_saw_auth;
    char last_scope[256], last_service[64];
    /* content */
    char manifest[1024];
    char manifest_digest[IMAGE_DIGEST_MAX];
    char module_digest[IMAGE_DIGEST_MAX];
} server_t;

static server_t srv;

static char *header(const char *req, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(req, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            return xstrndup(v, strcspn(v, "\r\n"));
        }
    }
    return NULL;
}

/* The value of one query or form parameter (not decoded beyond %3A, %2C). */
static void param(const char *q, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t n = strlen(name);
    for (const char *p = q; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == '=') {
            size_t o = 0;
            for (const char *v = p + n + 1; *v && *v != '&' && *v != ' ' && o + 1 < cap; v++) {
                if (*v == '%' && v[1] && v[2]) {
                    char hex[3] = {v[1], v[2], 0};
                    out[o++] = (char)strtol(hex, NULL, 16);
                    v += 2;
                } else {
                    out[o++] = *v;
                }
            }
            out[o] = '\0';
            return;
        }
    }
}

static void respond(int c, int status, const char *extra, const char *ctype, const void *body,
                    size_t len)
{
    strbuf_t sb = STRBUF_INIT;
    strbuf_printf(&sb, "HTTP/1.1 %d X\r\nConnection: close\r\nContent-Length: %zu\r\n", status,
                  len);
    if (ctype) strbuf_printf(&sb, "Content-Type: %s\r\n", ctype);
    if (extra) strbuf_puts(&sb, extra);
    strbuf_puts(&sb, "\r\n");
    strbuf_append(&sb, body, len);
    for (size_t off = 0; off < sb.len;) {
        ssize_t w = write(c, sb.data + off, sb.len - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    strbuf_free(&sb);
}

static void challenge(int c)
{
    char *extra = xasprintf("WWW-Authenticate: Bearer realm=\"http://127.0.0.1:%d/token\","
                            "service=\"fake-registry\",scope=\"repository:team/app:pull\"\r\n",
                            srv.port);
    const char *body = "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"token required\"}]}";
    respond(c, 401, extra, "application/json", body, strlen(body));
    free(extra);
}

static void handle(int c)
{
    char req[16384];
    size_t n = 0;
    char *end = NULL;
    while (n < sizeof req - 1 && !end) {
        ssize_t r = read(c, req + n, sizeof req - 1 - n);
        if (r <= 0) return;
        n += (size_t)r;
        req[n] = '\0';
        end = strstr(req, "\r\n\r\n");
    }
    if (!end) return;
    char *cl = header(req, "Content-Length");
    size_t body_len = cl ? (size_t)atol(cl) : 0;
    free(cl);
    while (n < (size_t)(end + 4 - req) + body_len && n < sizeof req - 1) {
        ssize_t r = read(c, req + n, sizeof req - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
        req[n] = '\0';
    }
    const char *body = end + 4;
    char method[8] = "", path[2048] = "";
    sscanf(req, "%7s %2047s", method, path);
    char *auth = header(req, "Authorization");
    bool bearer = auth && strcmp(auth, "Bearer " TOKEN) == 0;
    char *expect_basic = NULL;
    {
        char *b = base64_encode("robot:hunter2", 13);
        expect_basic = xasprintf("Basic %s", b);
        free(b);
    }
    pthread_mutex_lock(&srv.lock);
    if (strncmp(path, "/token", 6) == 0) {
        const char *q = strcmp(method, "POST") == 0 ? body : strchr(path, '?');
        if (q && *q == '?') q++;
        param(q ? q : "", "scope", srv.last_scope, sizeof srv.last_scope);
        param(q ? q : "", "service", srv.last_service, sizeof srv.last_service);
        bool ok;
        if (strcmp(method, "POST") == 0) {
            srv.token_posts++;
            char grant[64], refresh[64];
            param(body, "grant_type", grant, sizeof grant);
            param(body, "refresh_token", refresh, sizeof refresh);
            ok = strcmp(grant, "refresh_token") == 0 && strcmp(refresh, "refresh-123") == 0;
        } else {
            srv.token_gets++;
            ok = (auth && strcmp(auth, expect_basic) == 0) || (!auth && srv.anonymous_tokens);
        }
        if (ok) {
            const char *t = strcmp(method, "POST") == 0 ? "{\"access_token\":\"" TOKEN "\"}"
                                                        : "{\"token\":\"" TOKEN "\"}";
            respond(c, 200, NULL, "application/json", t, strlen(t));
        } else {
            const char *t = "{\"details\":\"incorrect username or password\"}";
            respond(c, 401, NULL, "application/json", t, strlen(t));
        }
    } else if (strncmp(path, "/v2/team/app/manifests/", 23) == 0) {
        srv.manifest_gets++;
        if (srv.fail_manifest) {
            respond(c, 500, NULL, "text/plain", "storage backend on fire\n", 24);
        } else if (!bearer) {
            challenge(c);
        } else if (strcmp(path + 23, "v1") == 0 || strcmp(path + 23, srv.manifest_digest) == 0) {
            char *extra = xasprintf("Docker-Content-Digest: %s\r\n", srv.manifest_digest);
            respond(c, 200, extra, "application/vnd.oci.image.manifest.v1+json", srv.manifest,
                    strcmp(method, "HEAD") == 0 ? 0 : strlen(srv.manifest));
            free(extra);
        } else {
            const char *t =
                "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}";
            respond(c, 404, NULL, "application/json", t, strlen(t));
        }
    } else if (strncmp(path, "/v2/team/app/blobs/", 19) == 0) {
        if (!bearer) {
            challenge(c);
        } else {
            /* another host name for the same server: curl must drop our token */
            char *extra =
                xasprintf("Location: http://localhost:%d/storage/module?sig=abc\r\n", srv.port);
            respond(c, 307, extra, NULL, "", 0);
            free(extra);
        }
    } else if (strncmp(path, "/storage/module", 15) == 0) {
        srv.storage_gets++;
        if (auth) srv.storage_saw_auth = true;
        respond(c, 200, NULL, "application/octet-stream", MODULE, MODULE_LEN);
    } else {
        respond(c, 404, NULL, "text/plain", "no\n", 3);
    }
    pthread_mutex_unlock(&srv.lock);
    free(expect_basic);
    free(auth);
}

static void *serve(void *arg)
{
    (void)arg;
    while (!srv.stop) {
        struct pollfd p = {.fd = srv.fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept(srv.fd, NULL, NULL);
        if (c < 0) continue;
        handle(c);
        close(c);
    }
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    memset(&srv, 0, sizeof srv);
    pthread_mutex_init(&srv.lock, NULL);
    srv.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(srv.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(srv.fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(srv.fd, 16) != 0) return -1;
    socklen_t len = sizeof a;
    getsockname(srv.fd, (struct sockaddr *)&a, &len);
    srv.port = ntohs(a.sin_port);

    image_sha256_buf(MODULE, MODULE_LEN, srv.module_digest);
    const char *cfg = "{}";
    char cfg_digest[IMAGE_DIGEST_MAX];
    image_sha256_buf(cfg, 2, cfg_digest);
    snprintf(srv.manifest, sizeof srv.manifest,
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
             "\"config\":{\"mediaType\":\"application/vnd.wasm.config.v0+json\",\"digest\":\"%s\","
             "\"size\":2},\"layers\":[{\"mediaType\":\"application/wasm\",\"digest\":\"%s\","
             "\"size\":%zu}]}",
             cfg_digest, srv.module_digest, MODULE_LEN);
    image_sha256_buf(srv.manifest, strlen(srv.manifest), srv.manifest_digest);
    return pthread_create(&srv.thread, NULL, serve, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    srv.stop = 1;
    pthread_join(srv.thread, NULL);
    close(srv.fd);
    pthread_mutex_destroy(&srv.lock);
    return 0;
}

static void reset_counts(void)
{
    pthread_mutex_lock(&srv.lock);
    srv.token_gets = srv.token_posts = srv.manifest_gets = srv.storage_gets = 0;
    srv.storage_saw_auth = false;
    srv.anonymous_tokens = srv.fail_manifest = false;
    srv.last_scope[0] = srv.last_service[0] = '\0';
    pthread_mutex_unlock(&srv.lock);
}

static image_store_t *fresh_store(char **dir)
{
    char tmpl[] = "/tmp/wasmlet-token-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    *dir = xstrdup(tmpl);
    image_store_options_t o = {.dir = *dir};
    image_store_t *s;
    err_t err;
    assert_int_equal(image_store_open(&s, &o, &err), 0);
    return s;
}

static void drop_store(image_store_t *s, char *dir)
{
    image_store_close(s);
    err_t err;
    fs_rm_rf(dir, &err);
    free(dir);
}

static image_auth_t auth_from(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static image_auth_t auth_from(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *json = NULL;
    assert_true(vasprintf(&json, fmt, ap) >= 0);
    va_end(ap);
    image_auth_t a = IMAGE_AUTH_INIT;
    err_t err;
    if (image_auth_from_dockerconfigjson(&a, json, strlen(json), &err) != 0)
        fail_msg("%s", err.msg);
    free(json);
    return a;
}

static void check_pulled(const image_pulled_t *p)
{
    char *data;
    size_t len;
    err_t err;
    assert_int_equal(fs_read_all(p->module_path, &data, &len, &err), 0);
    assert_int_equal(len, MODULE_LEN);
    assert_memory_equal(data, MODULE, MODULE_LEN);
    free(data);
    assert_string_equal(p->module_digest, srv.module_digest);
    assert_string_equal(p->image_id, srv.manifest_digest);
}

static void bearer_with_password(void **state)
{
    (void)state;
    reset_counts();
    char *dir;
    image_store_t *s = fresh_store(&dir);
    image_auth_t a = auth_from("{\"auths\":{\"127.0.0.1:%d\":{\"username\":\"robot\","
                               "\"password\":\"hunter2\"}}}",
                               srv.port);
    char *ref = xasprintf("127.0.0.1:%d/team/app:v1", srv.port);
    image_pulled_t p;
    err_t err = {{0}};
    if (image_pull(s, ref, IMAGE_PULL_ALWAYS, &a, &p, &err) != 0) fail_msg("%s", err.msg);
    check_pulled(&p);
    image_pulled_free(&p);
    pthread_mutex_lock(&srv.lock);
    assert_int_equal(srv.token_gets, 1); /* one token serves the whole pull */
    assert_string_equal(srv.last_scope, "repository:team/app:pull");
    assert_string_equal(srv.last_service, "fake-registry");
    assert_int_equal(srv.storage_gets, 1);
    assert_false(srv.storage_saw_auth);
    pthread_mutex_unlock(&srv.lock);

    /* wrong password: the token service's words */
    image_auth_t bad = auth_from("{\"auths\":{\"127.0.0.1:%d\":{\"username\":\"robot\","
                                 "\"password\":\"hunter3\"}}}",
                                 srv.port);
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_ALWAYS, &bad, &p, &err), -1);
    char *want = xasprintf("resolve %s: token from http://127.0.0.1:%d/token: incorrect username "
                           "or password (HTTP 401)",
                           ref, srv.port);
    assert_string_equal(err.msg, want);
    free(want);
    /* no credentials and no anonymous tokens */
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_ALWAYS, NULL, &p, &err), -1);
    assert_non_null(strstr(err.msg, "incorrect username or password (HTTP 401)"));
    image_auth_free(&bad);
    image_auth_free(&a);
    free(ref);
    drop_store(s, dir);
}

static void anonymous_identity_and_registry_tokens(void **state)
{
    (void)state;
    char *ref = xasprintf("127.0.0.1:%d/team/app:v1", srv.port);
    image_pulled_t p;
    err_t err = {{0}};

    /* anonymous, as for public images */
    reset_counts();
    srv.anonymous_tokens = true;
    char *dir;
    image_store_t *s = fresh_store(&dir);
    if (image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err) != 0) fail_msg("%s", err.msg);
    check_pulled(&p);
    image_pulled_free(&p);
    assert_int_equal(srv.token_gets, 1);
    drop_store(s, dir);

    /* an identity token: the OAuth2 refresh-token POST */
    reset_counts();
    s = fresh_store(&dir);
    image_auth_t a =
        auth_from("{\"auths\":{\"127.0.0.1:%d\":{\"identitytoken\":\"refresh-123\"}}}", srv.port);
    if (image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, &a, &p, &err) != 0) fail_msg("%s", err.msg);
    check_pulled(&p);
    image_pulled_free(&p);
    assert_int_equal(srv.token_posts, 1);
    assert_int_equal(srv.token_gets, 0);
    assert_string_equal(srv.last_scope, "repository:team/app:pull");
    image_auth_free(&a);
    drop_store(s, dir);

    /* a registry token is sent as it is: no token service at all */
    reset_counts();
    s = fresh_store(&dir);
    a = auth_from("{\"auths\":{\"127.0.0.1:%d\":{\"registrytoken\":\"" TOKEN "\"}}}", srv.port);
    char *by_digest = xasprintf("127.0.0.1:%d/team/app@%s", srv.port, srv.manifest_digest);
    if (image_pull(s, by_digest, IMAGE_PULL_ALWAYS, &a, &p, &err) != 0) fail_msg("%s", err.msg);
    check_pulled(&p);
    image_pulled_free(&p);
    assert_int_equal(srv.token_gets + srv.token_posts, 0);
    image_auth_free(&a);
    free(by_digest);
    drop_store(s, dir);

    /* a plain-text server error keeps its text */
    reset_counts();
    srv.fail_manifest = true;
    s = fresh_store(&dir);
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err), -1);
    char *want = xasprintf("resolve %s: storage backend on fire (HTTP 500)", ref);
    assert_string_equal(err.msg, want);
    free(want);
    drop_store(s, dir);
    free(ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bearer_with_password),
        cmocka_unit_test(anonymous_identity_and_registry_tokens),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
