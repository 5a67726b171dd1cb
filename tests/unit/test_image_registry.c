/* test_image_registry.c: image/ against a real registry.
 *
 * Starts Debian's docker-registry (the CNCF Distribution registry) on free
 * loopback ports with storage in temp dirs, one open and one with htpasswd
 * Basic auth, and drives it with image_push() and image_pull(): every push
 * format pulled back byte for byte, pull policies with the registry gone,
 * Always reusing what the store has, shared concurrent pulls, an index
 * with a wasm entry, and the failures a pod must report clearly (unknown
 * tag, a non-wasm artifact, a corrupted blob, a registry down, bad
 * credentials). Raw HTTP (libcurl) pushes what image_push() never would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "image/digest.h"
#include "image/image.h"
#include "util/base64.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define REGISTRY_BIN "/usr/bin/docker-registry"
#define USER "tester"
#define PASSWORD "s3cret-pw"
/* bcrypt of PASSWORD (cost 5), made once with crypt(3)'s $2b$ method, so
 * the test needs no bcrypt tool. */
#define HTPASSWD USER ":$2b$05$OQuzR3GAX.8GhXzutcqHruHzBKM2WlMMl8ukin9MHP3Z/bqaFaNHm\n"

typedef struct registry_proc {
    pid_t pid;
    int port;
    char *dir;  /* config, htpasswd, log */
    char *data; /* storage root */
    char host[32];
} registry_proc_t;

typedef struct fixture {
    registry_proc_t open;
    registry_proc_t auth;
    char *work; /* modules, stores */
} fixture_t;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void write_text(const char *path, const char *text)
{
    err_t err;
    if (fs_write_atomic(path, text, strlen(text), 0644, &err) != 0) fail_msg("%s", err.msg);
}

static int registry_start(registry_proc_t *r, bool auth)
{
    memset(r, 0, sizeof *r);
    char tmpl[] = "/tmp/wasmlet-registry-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    r->dir = xstrdup(tmpl);
    r->data = fs_join(r->dir, "data");
    r->port = free_port();
    snprintf(r->host, sizeof r->host, "127.0.0.1:%d", r->port);
    char *htpasswd = fs_join(r->dir, "htpasswd");
    write_text(htpasswd, HTPASSWD);
    char *auth_cfg =
        auth ? xasprintf("auth:\n  htpasswd:\n    realm: wasmlet-test\n    path: %s\n", htpasswd)
             : xstrdup("");
    char *config = xasprintf("version: 0.1\n"
                             "log:\n  level: error\n  accesslog:\n    disabled: true\n"
                             "storage:\n  filesystem:\n    rootdirectory: %s\n"
                             "  maintenance:\n    uploadpurging:\n      enabled: false\n"
                             "http:\n  addr: %s\n%s",
                             r->data, r->host, auth_cfg);
    char *config_path = fs_join(r->dir, "config.yml");
    write_text(config_path, config);
    char *log_path = fs_join(r->dir, "registry.log");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(REGISTRY_BIN, REGISTRY_BIN, "serve", config_path, (char *)NULL);
        _exit(127);
    }
    r->pid = pid;
    int64_t deadline = time_mono_ns() + 20 * NS_PER_SEC;
    bool up = false;
    while (!up && time_mono_ns() < deadline) {
        up = port_open(r->port);
        if (!up) time_sleep_ms(20);
        int status;
        if (!up && waitpid(pid, &status, WNOHANG) == pid) {
            r->pid = 0;
            break;
        }
    }
    free(htpasswd);
    free(auth_cfg);
    free(config);
    free(config_path);
    free(log_path);
    return up ? 0 : -1;
}

static void registry_stop(registry_proc_t *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        int64_t deadline = time_mono_ns() + 10 * NS_PER_SEC;
        int status;
        while (waitpid(r->pid, &status, WNOHANG) == 0) {
            if (time_mono_ns() > deadline) {
                kill(r->pid, SIGKILL);
                waitpid(r->pid, &status, 0);
                break;
            }
            time_sleep_ms(10);
        }
        r->pid = 0;
    }
}

static void registry_remove(registry_proc_t *r)
{
    registry_stop(r);
    if (r->dir) {
        err_t err;
        fs_rm_rf(r->dir, &err);
    }
    free(r->dir);
    free(r->data);
    r->dir = r->data = NULL;
}

static int setup(void **state)
{
    if (access(REGISTRY_BIN, X_OK) != 0) {
        fprintf(stderr, "test_image_registry: %s missing (apt-get install docker-registry)\n",
                REGISTRY_BIN);
        return -1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    fixture_t *f = xcalloc(1, sizeof *f);
    char tmpl[] = "/tmp/wasmlet-imgtest-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    f->work = xstrdup(tmpl);
    if (registry_start(&f->open, false) != 0 || registry_start(&f->auth, true) != 0) {
        registry_remove(&f->open);
        registry_remove(&f->auth);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    registry_remove(&f->open);
    registry_remove(&f->auth);
    err_t err;
    fs_rm_rf(f->work, &err);
    free(f->work);
    free(f);
    curl_global_cleanup();
    return 0;
}

/* --- helpers ------------------------------------------------------------------------ */

/* A module-like payload: the wasm header and some bytes unique to this run. */
static char *make_module(fixture_t *f, const char *name, size_t *len, char digest[IMAGE_DIGEST_MAX])
{
    strbuf_t sb = STRBUF_INIT;
    strbuf_append(&sb, "\0asm\1\0\0\0", 8);
    strbuf_printf(&sb, "module %s %lld", name, (long long)time_now_ns());
    for (int i = 0; i < 3000; i++)
        strbuf_putc(&sb, (char)(i * 7 + name[0]));
    char *path = xasprintf("%s/%s.wasm", f->work, name);
    err_t err;
    assert_int_equal(fs_write_atomic(path, sb.data, sb.len, 0644, &err), 0);
    image_sha256_buf(sb.data, sb.len, digest);
    *len = sb.len;
    strbuf_free(&sb);
    return path;
}

static image_store_t *open_store(fixture_t *f, const char *name, const image_auth_t *node_auth)
{
    char *dir = xasprintf("%s/store-%s", f->work, name);
    image_store_options_t o = {.dir = dir, .node_auth = node_auth};
    image_store_t *s;
    err_t err;
    if (image_store_open(&s, &o, &err) != 0) fail_msg("%s", err.msg);
    free(dir);
    return s;
}

static void check_module(const image_pulled_t *p, const char *wasm_path, const char *digest)
{
    char *want, *got;
    size_t wlen, glen;
    err_t err;
    assert_int_equal(fs_read_all(wasm_path, &want, &wlen, &err), 0);
    assert_int_equal(fs_read_all(p->module_path, &got, &glen, &err), 0);
    assert_int_equal(wlen, glen);
    assert_memory_equal(want, got, wlen);
    assert_string_equal(p->module_digest, digest);
    assert_int_equal(p->module_size, wlen);
    char d[IMAGE_DIGEST_MAX];
    image_sha256_buf(got, glen, d);
    assert_string_equal(d, digest);
    free(want);
    free(got);
}

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    strbuf_append(arg, data, size * n);
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    char **location = arg;
    size_t len = size * n;
    if (location && len > 10 && strncasecmp(data, "Location:", 9) == 0) {
        const char *v = data + 9;
        while (*v == ' ')
            v++;
        size_t vl = len - (size_t)(v - data);
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
            vl--;
        free(*location);
        *location = xstrndup(v, vl);
    }
    return len;
}

/* One raw request; returns the HTTP status. */
static long http(const char *method, const char *url, const char *ctype, const void *body,
                 size_t len, strbuf_t *out, char **location)
{
    CURL *c = curl_easy_init();
    assert_non_null(c);
    struct curl_slist *h = NULL;
    char *ct = ctype ? xasprintf("Content-Type: %s", ctype) : NULL;
    if (ct) h = curl_slist_append(h, ct);
    h = curl_slist_append(h, "Accept: application/vnd.oci.image.manifest.v1+json, "
                             "application/vnd.oci.image.index.v1+json");
    strbuf_t sink = STRBUF_INIT;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out ? out : &sink);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, location);
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(ct);
    strbuf_free(&sink);
    return status;
}

static void raw_blob(const registry_proc_t *r, const char *repo, const char *data, size_t len,
                     char digest[IMAGE_DIGEST_MAX])
{
    image_sha256_buf(data, len, digest);
    char *url = xasprintf("http://%s/v2/%s/blobs/uploads/", r->host, repo);
    char *location = NULL;
    assert_int_equal(http("POST", url, NULL, NULL, 0, NULL, &location), 202);
    assert_non_null(location);
    char *put =
        location[0] == '/' ? xasprintf("http://%s%s", r->host, location) : xstrdup(location);
    char *put_url = xasprintf("%s%sdigest=%s", put, strchr(put, '?') ? "&" : "?", digest);
    assert_int_equal(http("PUT", put_url, "application/octet-stream", data, len, NULL, NULL), 201);
    free(url);
    free(location);
    free(put);
    free(put_url);
}

static void raw_manifest(const registry_proc_t *r, const char *repo, const char *tag,
                         const char *media_type, const char *body, char digest[IMAGE_DIGEST_MAX])
{
    char *url = xasprintf("http://%s/v2/%s/manifests/%s", r->host, repo, tag);
    strbuf_t out = STRBUF_INIT;
    long status = http("PUT", url, media_type, body, strlen(body), &out, NULL);
    if (status != 201) fail_msg("PUT %s: %ld %s", url, status, strbuf_str(&out));
    image_sha256_buf(body, strlen(body), digest);
    strbuf_free(&out);
    free(url);
}

/* Pushes a non-wasm OCI artifact (shaped like a Helm chart); returns its
 * manifest's digest and size. */
static size_t push_chart(const registry_proc_t *r, const char *repo, const char *tag,
                         char digest[IMAGE_DIGEST_MAX])
{
    char cfg[IMAGE_DIGEST_MAX], layer[IMAGE_DIGEST_MAX];
    raw_blob(r, repo, "{\"name\":\"chart\"}", 16, cfg);
    raw_blob(r, repo, "not really a chart", 18, layer);
    char *manifest = xasprintf(
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"config\":{\"mediaType\":\"application/vnd.cncf.helm.config.v1+json\",\"digest\":\"%s\","
        "\"size\":16},\"layers\":[{\"mediaType\":"
        "\"application/vnd.cncf.helm.chart.content.v1.tar+gzip\",\"digest\":\"%s\",\"size\":18}]}",
        cfg, layer);
    raw_manifest(r, repo, tag, "application/vnd.oci.image.manifest.v1+json", manifest, digest);
    size_t n = strlen(manifest);
    free(manifest);
    return n;
}

static json_t *get_json(const registry_proc_t *r, const char *repo, const char *kind,
                        const char *reference)
{
    char *url = xasprintf("http://%s/v2/%s/%s/%s", r->host, repo, kind, reference);
    strbuf_t out = STRBUF_INIT;
    assert_int_equal(http("GET", url, NULL, NULL, 0, &out, NULL), 200);
    json_t *j = json_loadb(strbuf_str(&out), out.len, 0, NULL);
    assert_non_null(j);
    strbuf_free(&out);
    free(url);
    return j;
}

/* --- tests ---------------------------------------------------------------------------- */

/* A component is published as the CNCF artifact with os wasip2 and the
 * spec's component field (its imports and exports), and pulls back whole. */
static void push_a_component(void **state)
{
    fixture_t *f = *state;
    const char *dir = getenv("WASMLET_EXAMPLES");
    char *wasm = xasprintf("%s/hello.component.wasm", dir && *dir ? dir : "build/examples");
    if (access(wasm, R_OK) != 0) {
        free(wasm);
        skip();
    }
    char *ref = xasprintf("%s/comp/hello:v1", f->open.host);
    char pushed[IMAGE_DIGEST_MAX];
    err_t err = {{0}};
    if (image_push(wasm, ref, NULL, NULL, pushed, &err) != 0) fail_msg("push: %s", err.msg);
    json_t *m = get_json(&f->open, "comp/hello", "manifests", "v1");
    json_t *config = json_object_get(m, "config");
    assert_string_equal(json_str_at(config, "mediaType"), "application/vnd.wasm.config.v0+json");
    assert_string_equal(json_str_at(json_array_get(json_object_get(m, "layers"), 0), "mediaType"),
                        "application/wasm");
    json_t *cfg = get_json(&f->open, "comp/hello", "blobs", json_str_at(config, "digest"));
    assert_string_equal(json_str_at(cfg, "os"), "wasip2");
    assert_string_equal(json_str_at(cfg, "architecture"), "wasm");
    json_t *exports = json_at(cfg, "component", "exports");
    assert_int_equal(json_array_size(exports), 1);
    assert_int_equal(
        strncmp(json_string_value(json_array_get(exports, 0)), "wasi:cli/run@0.2.", 17), 0);
    assert_true(json_array_size(json_at(cfg, "component", "imports")) > 3);
    json_decref(cfg);
    json_decref(m);

    image_store_t *s = open_store(f, "component", NULL);
    image_pulled_t p;
    if (image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err) != 0)
        fail_msg("pull: %s", err.msg);
    char *data, *back;
    size_t len, blen;
    assert_int_equal(fs_read_all(wasm, &data, &len, &err), 0);
    assert_int_equal(fs_read_all(p.module_path, &back, &blen, &err), 0);
    assert_int_equal(len, blen);
    assert_memory_equal(data, back, len);
    free(data);
    free(back);
    image_pulled_free(&p);
    image_store_close(s);
    free(ref);
    free(wasm);
}

static void push_and_pull_each_format(void **state)
{
    fixture_t *f = *state;
    const struct {
        image_format_t format;
        const char *config_type, *layer_type;
    } cases[] = {
        {IMAGE_FORMAT_WASM_ARTIFACT, "application/vnd.wasm.config.v0+json", "application/wasm"},
        {IMAGE_FORMAT_WASM_TO_OCI, "application/vnd.wasm.config.v1+json",
         "application/vnd.wasm.content.layer.v1+wasm"},
        {IMAGE_FORMAT_OCI_IMAGE, "application/vnd.oci.image.config.v1+json",
         "application/vnd.oci.image.layer.v1.tar+gzip"},
    };
    image_store_t *s = open_store(f, "formats", NULL);
    for (size_t i = 0; i < 3; i++) {
        const char *name = image_format_name(cases[i].format);
        size_t len;
        char digest[IMAGE_DIGEST_MAX], pushed[IMAGE_DIGEST_MAX];
        char *wasm = make_module(f, name, &len, digest);
        char *ref = xasprintf("%s/formats/%s:v1", f->open.host, name);
        image_push_options_t po = {.format = cases[i].format};
        err_t err = {{0}};
        if (image_push(wasm, ref, &po, NULL, pushed, &err) != 0) fail_msg("push: %s", err.msg);

        /* the layout on the registry is the one the format promises */
        char *repo = xasprintf("formats/%s", name);
        json_t *m = get_json(&f->open, repo, "manifests", "v1");
        assert_string_equal(json_string_value(json_object_get(m, "mediaType")),
                            "application/vnd.oci.image.manifest.v1+json");
        json_t *config = json_object_get(m, "config");
        json_t *layer = json_array_get(json_object_get(m, "layers"), 0);
        assert_int_equal(json_array_size(json_object_get(m, "layers")), 1);
        assert_string_equal(json_string_value(json_object_get(config, "mediaType")),
                            cases[i].config_type);
        assert_string_equal(json_string_value(json_object_get(layer, "mediaType")),
                            cases[i].layer_type);
        json_t *cfg =
            get_json(&f->open, repo, "blobs", json_string_value(json_object_get(config, "digest")));
        if (cases[i].format == IMAGE_FORMAT_WASM_ARTIFACT) {
            assert_string_equal(json_string_value(json_object_get(cfg, "architecture")), "wasm");
            assert_string_equal(json_string_value(json_object_get(cfg, "os")), "wasip1");
            assert_string_equal(
                json_string_value(json_array_get(json_object_get(cfg, "layerDigests"), 0)), digest);
            int64_t created;
            assert_int_equal(
                time_parse_rfc3339(json_string_value(json_object_get(cfg, "created")), &created),
                0);
        } else if (cases[i].format == IMAGE_FORMAT_OCI_IMAGE) {
            json_t *ep = json_object_get(json_object_get(cfg, "config"), "Entrypoint");
            assert_string_equal(json_string_value(json_array_get(ep, 0)), "/app.wasm");
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(cfg, "rootfs"), "type")),
                "layers");
        }
        json_decref(cfg);
        json_decref(m);
        free(repo);

        image_store_stats_t before, after;
        image_store_stats(s, &before);
        image_pulled_t p;
        if (image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err) != 0)
            fail_msg("pull %s: %s", ref, err.msg);
        check_module(&p, wasm, digest);
        assert_string_equal(p.image_id, pushed);
        assert_int_equal(p.format, cases[i].format);
        assert_false(p.from_store);
        char *repo_digest = xasprintf("%s/formats/%s@%s", f->open.host, name, pushed);
        assert_string_equal(p.repo_digest, repo_digest);
        image_pulled_free(&p);
        image_store_stats(s, &after);
        assert_int_equal(after.manifest_requests - before.manifest_requests, 1);
        /* the module blob; an ordinary image also needs its config */
        assert_int_equal(after.blob_downloads - before.blob_downloads,
                         cases[i].format == IMAGE_FORMAT_OCI_IMAGE ? 2 : 1);

        /* again: from the store, no request at all; also by repo digest */
        assert_int_equal(image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err), 0);
        assert_true(p.from_store);
        check_module(&p, wasm, digest);
        image_pulled_free(&p);
        assert_int_equal(image_pull(s, repo_digest, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err), 0);
        assert_true(p.from_store);
        assert_string_equal(p.module_digest, digest);
        image_pulled_free(&p);
        image_store_stats(s, &before);
        assert_int_equal(before.manifest_requests, after.manifest_requests);
        free(repo_digest);
        free(ref);
        free(wasm);
    }
    /* pushing by a digest that is not the manifest's is refused */
    size_t len;
    char digest[IMAGE_DIGEST_MAX];
    char *wasm = make_module(f, "bydigest", &len, digest);
    char *ref = xasprintf("%s/formats/bydigest@%s", f->open.host, digest);
    err_t err;
    assert_int_equal(image_push(wasm, ref, NULL, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "the manifest's digest is sha256:"));
    free(ref);
    free(wasm);
    image_store_close(s);
}

static void policies_with_registry_gone(void **state)
{
    fixture_t *f = *state;
    registry_proc_t r;
    assert_int_equal(registry_start(&r, false), 0);
    size_t len;
    char digest[IMAGE_DIGEST_MAX];
    char *wasm = make_module(f, "offline", &len, digest);
    char *ref = xasprintf("%s/offline/app:v1", r.host);
    err_t err = {{0}};
    assert_int_equal(image_push(wasm, ref, NULL, NULL, NULL, &err), 0);
    image_store_t *s = open_store(f, "offline", NULL);
    image_pulled_t p;
    /* Never does not even try */
    assert_false(image_present(s, ref, IMAGE_PULL_NEVER));
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_NEVER, NULL, &p, &err), -1);
    assert_non_null(strstr(err.msg, "pull policy is Never"));
    assert_false(image_present(s, ref, IMAGE_PULL_IF_NOT_PRESENT));
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err), 0);
    assert_false(p.from_store);
    image_pulled_free(&p);
    /* Present now, for the policies that take it from the store; never
     * for Always, which asks the registry. */
    assert_true(image_present(s, ref, IMAGE_PULL_IF_NOT_PRESENT));
    assert_true(image_present(s, ref, IMAGE_PULL_NEVER));
    assert_false(image_present(s, ref, IMAGE_PULL_ALWAYS));
    assert_false(image_present(s, "not a reference!", IMAGE_PULL_IF_NOT_PRESENT));
    registry_remove(&r);

    image_store_stats_t before, after;
    image_store_stats(s, &before);
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err), 0);
    assert_true(p.from_store);
    check_module(&p, wasm, digest);
    image_pulled_free(&p);
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_NEVER, NULL, &p, &err), 0);
    check_module(&p, wasm, digest);
    image_pulled_free(&p);
    image_store_stats(s, &after);
    assert_int_equal(after.manifest_requests, before.manifest_requests);
    assert_int_equal(after.blob_downloads, before.blob_downloads);

    /* Always must ask, and the registry is down */
    char *dial = xasprintf("dial %s: connection refused", r.host);
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_ALWAYS, NULL, &p, &err), -1);
    if (!strstr(err.msg, dial)) fail_msg("unexpected error: %s", err.msg);
    char *other = xasprintf("%s/offline/app:v2", r.host);
    assert_int_equal(image_pull(s, other, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err), -1);
    assert_non_null(strstr(err.msg, dial));
    assert_int_equal(image_push(wasm, other, NULL, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, dial));
    free(dial);
    free(other);
    free(ref);
    free(wasm);
    image_store_close(s);
}

static void always_reuses_the_store(void **state)
{
    fixture_t *f = *state;
    image_store_t *s = open_store(f, "always", NULL);
    for (int k = 0; k < 2; k++) {
        image_format_t fmt = k == 0 ? IMAGE_FORMAT_WASM_ARTIFACT : IMAGE_FORMAT_OCI_IMAGE;
        image_push_options_t po = {.format = fmt};
        size_t len;
        char d1[IMAGE_DIGEST_MAX], d2[IMAGE_DIGEST_MAX];
        char *w1 = make_module(f, "always1", &len, d1);
        char *ref = xasprintf("%s/always/%s:latest", f->open.host, image_format_name(fmt));
        err_t err = {{0}};
        assert_int_equal(image_push(w1, ref, &po, NULL, NULL, &err), 0);
        image_pulled_t p;
        assert_int_equal(image_pull(s, ref, IMAGE_PULL_ALWAYS, NULL, &p, &err), 0);
        check_module(&p, w1, d1);
        image_pulled_free(&p);

        /* unchanged tag: one HEAD, no blob */
        image_store_stats_t a, b;
        image_store_stats(s, &a);
        assert_int_equal(image_pull(s, ref, IMAGE_PULL_ALWAYS, NULL, &p, &err), 0);
        check_module(&p, w1, d1);
        assert_false(p.from_store);
        image_pulled_free(&p);
        image_store_stats(s, &b);
        assert_int_equal(b.manifest_requests - a.manifest_requests, 1);
        assert_int_equal(b.blob_downloads, a.blob_downloads);

        /* the tag moves: Always follows it, IfNotPresent would not have */
        char *w2 = make_module(f, "always2", &len, d2);
        char pushed[IMAGE_DIGEST_MAX];
        assert_int_equal(image_push(w2, ref, &po, NULL, pushed, &err), 0);
        assert_int_equal(image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err), 0);
        assert_string_equal(p.module_digest, d1);
        image_pulled_free(&p);
        assert_int_equal(image_pull(s, ref, IMAGE_PULL_ALWAYS, NULL, &p, &err), 0);
        check_module(&p, w2, d2);
        assert_string_equal(p.image_id, pushed);
        image_pulled_free(&p);
        assert_int_equal(image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err), 0);
        assert_string_equal(p.module_digest, d2);
        image_pulled_free(&p);

        /* the same module under a new manifest: the blob is not fetched again */
        if (fmt == IMAGE_FORMAT_WASM_ARTIFACT) {
            char *ref2 = xasprintf("%s/always/%s:copy", f->open.host, image_format_name(fmt));
            assert_int_equal(image_push(w2, ref2, &po, NULL, NULL, &err), 0);
            image_store_stats(s, &a);
            assert_int_equal(image_pull(s, ref2, IMAGE_PULL_ALWAYS, NULL, &p, &err), 0);
            check_module(&p, w2, d2);
            image_pulled_free(&p);
            image_store_stats(s, &b);
            assert_int_equal(b.blob_downloads, a.blob_downloads);
            free(ref2);
        }
        free(w1);
        free(w2);
        free(ref);
    }
    image_store_close(s);
}

typedef struct puller {
    image_store_t *store;
    const char *ref;
    image_pull_policy_t policy;
    const image_auth_t *auth;
    int rc;
    image_pulled_t pulled;
    err_t err;
} puller_t;

static void *pull_thread(void *arg)
{
    puller_t *p = arg;
    p->rc = image_pull(p->store, p->ref, p->policy, p->auth, &p->pulled, &p->err);
    return NULL;
}

static void concurrent_pulls_download_once(void **state)
{
    fixture_t *f = *state;
    for (int k = 0; k < 2; k++) {
        image_format_t fmt = k == 0 ? IMAGE_FORMAT_WASM_TO_OCI : IMAGE_FORMAT_OCI_IMAGE;
        size_t len;
        char digest[IMAGE_DIGEST_MAX];
        char *wasm = make_module(f, "concurrent", &len, digest);
        char *ref = xasprintf("%s/concurrent/%s:v1", f->open.host, image_format_name(fmt));
        image_push_options_t po = {.format = fmt};
        err_t err;
        assert_int_equal(image_push(wasm, ref, &po, NULL, NULL, &err), 0);
        image_store_t *s = open_store(f, k == 0 ? "concurrent0" : "concurrent1", NULL);
        enum { N = 8 };
        puller_t pl[N];
        pthread_t th[N];
        for (int i = 0; i < N; i++) {
            memset(&pl[i], 0, sizeof pl[i]);
            pl[i].store = s;
            pl[i].ref = ref;
            pl[i].policy = IMAGE_PULL_IF_NOT_PRESENT;
            assert_int_equal(pthread_create(&th[i], NULL, pull_thread, &pl[i]), 0);
        }
        for (int i = 0; i < N; i++) {
            pthread_join(th[i], NULL);
            if (pl[i].rc != 0) fail_msg("thread %d: %s", i, pl[i].err.msg);
            check_module(&pl[i].pulled, wasm, digest);
            image_pulled_free(&pl[i].pulled);
        }
        image_store_stats_t st;
        image_store_stats(s, &st);
        assert_int_equal(st.manifest_requests, 1);
        assert_int_equal(st.blob_downloads, fmt == IMAGE_FORMAT_OCI_IMAGE ? 2 : 1);
        image_store_close(s);
        free(ref);
        free(wasm);
    }
}

static void index_with_wasm_entry(void **state)
{
    fixture_t *f = *state;
    size_t len;
    char digest[IMAGE_DIGEST_MAX], wasm_manifest[IMAGE_DIGEST_MAX], chart[IMAGE_DIGEST_MAX];
    char *wasm = make_module(f, "multi", &len, digest);
    char *ref = xasprintf("%s/multi/app:wasm-only", f->open.host);
    err_t err = {{0}};
    assert_int_equal(image_push(wasm, ref, NULL, NULL, wasm_manifest, &err), 0);
    /* the index needs the manifest's exact size: fetch its bytes */
    char *url = xasprintf("http://%s/v2/multi/app/manifests/wasm-only", f->open.host);
    strbuf_t raw = STRBUF_INIT;
    assert_int_equal(http("GET", url, NULL, NULL, 0, &raw, NULL), 200);
    free(url);
    char check[IMAGE_DIGEST_MAX];
    image_sha256_buf(raw.data, raw.len, check);
    assert_string_equal(check, wasm_manifest);
    char *text = strbuf_take(&raw);
    size_t chart_size = push_chart(&f->open, "multi/app", "linux", chart);
    char *index =
        xasprintf("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
                  "\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                  "\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"os\":\"linux\",\"architecture\":"
                  "\"amd64\"}},"
                  "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\","
                  "\"size\":%zu,\"platform\":{\"os\":\"wasip1\",\"architecture\":\"wasm\"}}]}",
                  chart, chart_size, wasm_manifest, strlen(text));
    free(text);
    char index_digest[IMAGE_DIGEST_MAX];
    raw_manifest(&f->open, "multi/app", "multi", "application/vnd.oci.image.index.v1+json", index,
                 index_digest);
    free(index);

    image_store_t *s = open_store(f, "index", NULL);
    char *multi = xasprintf("%s/multi/app:multi", f->open.host);
    image_pulled_t p;
    if (image_pull(s, multi, IMAGE_PULL_ALWAYS, NULL, &p, &err) != 0) fail_msg("%s", err.msg);
    check_module(&p, wasm, digest);
    assert_string_equal(p.image_id, index_digest);
    image_pulled_free(&p);
    /* Always again: a HEAD finds the index digest known */
    image_store_stats_t a, b;
    image_store_stats(s, &a);
    assert_int_equal(image_pull(s, multi, IMAGE_PULL_ALWAYS, NULL, &p, &err), 0);
    image_store_stats(s, &b);
    assert_int_equal(b.manifest_requests - a.manifest_requests, 1);
    assert_int_equal(b.blob_downloads, a.blob_downloads);
    image_pulled_free(&p);
    /* the platform manifest by digest is known too */
    char *by_digest = xasprintf("%s/multi/app@%s", f->open.host, wasm_manifest);
    assert_int_equal(image_pull(s, by_digest, IMAGE_PULL_NEVER, NULL, &p, &err), 0);
    assert_string_equal(p.module_digest, digest);
    image_pulled_free(&p);
    image_store_close(s);
    free(by_digest);
    free(multi);
    free(ref);
    free(wasm);
}

static void unknown_tag_and_wrong_media_type(void **state)
{
    fixture_t *f = *state;
    image_store_t *s = open_store(f, "errors", NULL);
    char digest[IMAGE_DIGEST_MAX];
    push_chart(&f->open, "errors/chart", "v1", digest);
    image_pulled_t p;
    err_t err;

    char *ref = xasprintf("%s/errors/chart:nope", f->open.host);
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err), -1);
    char *want = xasprintf("resolve %s: manifest unknown (MANIFEST_UNKNOWN, HTTP 404)", ref);
    assert_string_equal(err.msg, want);
    free(want);
    free(ref);

    ref = xasprintf("%s/errors/chart:v1", f->open.host);
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err), -1);
    assert_non_null(strstr(err.msg,
                           "manifest media type application/vnd.oci.image.manifest.v1+json "
                           "is not a wasm module: config media type "
                           "application/vnd.cncf.helm.config.v1+json, layer media types "
                           "[application/vnd.cncf.helm.chart.content.v1.tar+gzip]"));
    free(ref);

    /* an ordinary Linux image: its entrypoint is no .wasm */
    char cfg[IMAGE_DIGEST_MAX], layer[IMAGE_DIGEST_MAX];
    const char *config = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":"
                         "{\"Entrypoint\":[\"/bin/sh\",\"-c\"]},\"rootfs\":{\"type\":\"layers\","
                         "\"diff_ids\":[]}}";
    raw_blob(&f->open, "errors/linux", config, strlen(config), cfg);
    char tar[1024] = {0};
    raw_blob(&f->open, "errors/linux", tar, sizeof tar, layer);
    char *manifest = xasprintf(
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\","
        "\"size\":%zu},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
        "\"digest\":\"%s\",\"size\":1024}]}",
        cfg, strlen(config), layer);
    raw_manifest(&f->open, "errors/linux", "v1", "application/vnd.oci.image.manifest.v1+json",
                 manifest, digest);
    free(manifest);
    ref = xasprintf("%s/errors/linux:v1", f->open.host);
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err), -1);
    assert_non_null(strstr(err.msg, "is not a wasm module"));
    assert_non_null(strstr(err.msg, "its entrypoint \"/bin/sh\" (platform linux/amd64) is not a "
                                    ".wasm file"));
    free(ref);

    char *blobs = xasprintf("%s/store-errors/blobs/sha256", f->work);
    assert_int_equal(count_files(blobs), 0);
    free(blobs);
    image_store_close(s);
}

static void corrupted_blob_is_refused(void **state)
{
    fixture_t *f = *state;
    for (int k = 0; k < 2; k++) {
        image_format_t fmt = k == 0 ? IMAGE_FORMAT_WASM_ARTIFACT : IMAGE_FORMAT_OCI_IMAGE;
        size_t len;
        char digest[IMAGE_DIGEST_MAX];
        char *wasm = make_module(f, "corrupt", &len, digest);
        char *ref = xasprintf("%s/corrupt/%s:v1", f->open.host, image_format_name(fmt));
        err_t err = {{0}};
        image_push_options_t po = {.format = fmt};
        assert_int_equal(image_push(wasm, ref, &po, NULL, NULL, &err), 0);
        char *repo = xasprintf("corrupt/%s", image_format_name(fmt));
        json_t *m = get_json(&f->open, repo, "manifests", "v1");
        const char *layer = json_string_value(
            json_object_get(json_array_get(json_object_get(m, "layers"), 0), "digest"));
        assert_non_null(layer);
        /* flip one byte of the blob in the registry's storage, size unchanged */
        char *data = xasprintf("%s/docker/registry/v2/blobs/sha256/%.2s/%s/data", f->open.data,
                               image_digest_hex(layer), image_digest_hex(layer));
        int fd = open(data, O_RDWR);
        assert_true(fd >= 0);
        unsigned char c;
        off_t at = (off_t)len / 2 > 40 ? 40 : 1;
        assert_int_equal(pread(fd, &c, 1, at), 1);
        c ^= 0x5a;
        assert_int_equal(pwrite(fd, &c, 1, at), 1);
        close(fd);

        image_store_t *s = open_store(f, k == 0 ? "corrupt0" : "corrupt1", NULL);
        image_pulled_t p;
        assert_int_equal(image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err), -1);
        char *want = xasprintf("digest mismatch: expected %s, got sha256:", layer);
        if (!strstr(err.msg, want)) fail_msg("unexpected error: %s", err.msg);
        free(want);
        /* nothing stored, nothing left behind, and no reference recorded */
        char *blobs = xasprintf("%s/store-corrupt%d/blobs/sha256", f->work, k);
        char *tmp = xasprintf("%s/store-corrupt%d/tmp", f->work, k);
        assert_int_equal(count_files(blobs), 0);
        assert_int_equal(count_files(tmp), 0);
        assert_int_equal(image_pull(s, ref, IMAGE_PULL_NEVER, NULL, &p, &err), -1);
        free(blobs);
        free(tmp);
        image_store_close(s);
        json_decref(m);
        free(data);
        free(repo);
        free(ref);
        free(wasm);
    }
}

static void basic_auth(void **state)
{
    fixture_t *f = *state;
    size_t len;
    char digest[IMAGE_DIGEST_MAX];
    char *wasm = make_module(f, "auth", &len, digest);
    char *ref = xasprintf("%s/private/app:v1", f->auth.host);
    err_t err = {{0}};

    /* no credentials: the registry's 401 message */
    assert_int_equal(image_push(wasm, ref, NULL, NULL, NULL, &err), -1);
    if (!strstr(err.msg, "authentication required (UNAUTHORIZED, HTTP 401)"))
        fail_msg("%s", err.msg);

    char *good_b64 = base64_encode(USER ":" PASSWORD, strlen(USER ":" PASSWORD));
    char *good = xasprintf("{\"auths\":{\"%s\":{\"auth\":\"%s\"}}}", f->auth.host, good_b64);
    char *bad =
        xasprintf("{\"auths\":{\"http://%s/v2/\":{\"username\":\"%s\",\"password\":\"nope\"}}}",
                  f->auth.host, USER);
    char *elsewhere = xasprintf("{\"auths\":{\"127.0.0.1:1\":{\"auth\":\"%s\"}}}", good_b64);
    image_auth_t good_auth = IMAGE_AUTH_INIT, bad_auth = IMAGE_AUTH_INIT, both = IMAGE_AUTH_INIT,
                 other = IMAGE_AUTH_INIT;
    assert_int_equal(image_auth_from_dockerconfigjson(&good_auth, good, strlen(good), &err), 0);
    assert_int_equal(image_auth_from_dockerconfigjson(&bad_auth, bad, strlen(bad), &err), 0);
    assert_int_equal(image_auth_from_dockerconfigjson(&both, bad, strlen(bad), &err), 0);
    assert_int_equal(image_auth_from_dockerconfigjson(&both, good, strlen(good), &err), 0);
    assert_int_equal(image_auth_from_dockerconfigjson(&other, elsewhere, strlen(elsewhere), &err),
                     0);

    char pushed[IMAGE_DIGEST_MAX];
    if (image_push(wasm, ref, NULL, &good_auth, pushed, &err) != 0) fail_msg("%s", err.msg);

    image_store_t *s = open_store(f, "auth", NULL);
    image_pulled_t p;
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err), -1);
    char *want = xasprintf("resolve %s: authentication required (UNAUTHORIZED, HTTP 401)", ref);
    assert_string_equal(err.msg, want);
    free(want);
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, &bad_auth, &p, &err), -1);
    assert_non_null(strstr(err.msg, "authentication required (UNAUTHORIZED, HTTP 401)"));
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, &other, &p, &err), -1);
    assert_non_null(strstr(err.msg, "HTTP 401"));

    /* a bad secret and a good one: the kubelet tries each */
    if (image_pull(s, ref, IMAGE_PULL_ALWAYS, &both, &p, &err) != 0) fail_msg("%s", err.msg);
    check_module(&p, wasm, digest);
    assert_string_equal(p.image_id, pushed);
    image_pulled_free(&p);
    image_store_close(s);

    /* Concurrent pulls share work only with the same credentials: those
     * without any fail on their own 401, those with them succeed. */
    s = open_store(f, "auth-concurrent", NULL);
    enum { N = 6 };
    puller_t pl[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        memset(&pl[i], 0, sizeof pl[i]);
        pl[i] = (puller_t){
            .store = s, .ref = ref, .policy = IMAGE_PULL_ALWAYS, .auth = i % 2 ? NULL : &good_auth};
        assert_int_equal(pthread_create(&th[i], NULL, pull_thread, &pl[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (i % 2) {
            assert_int_equal(pl[i].rc, -1);
            assert_non_null(strstr(pl[i].err.msg, "HTTP 401"));
        } else {
            if (pl[i].rc != 0) fail_msg("thread %d: %s", i, pl[i].err.msg);
            check_module(&pl[i].pulled, wasm, digest);
            image_pulled_free(&pl[i].pulled);
        }
    }
    image_store_close(s);

    /* node-level credentials */
    s = open_store(f, "auth-node", &good_auth);
    assert_int_equal(image_pull(s, ref, IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err), 0);
    check_module(&p, wasm, digest);
    image_pulled_free(&p);
    image_store_close(s);

    image_auth_free(&good_auth);
    image_auth_free(&bad_auth);
    image_auth_free(&both);
    image_auth_free(&other);
    free(good_b64);
    free(good);
    free(bad);
    free(elsewhere);
    free(ref);
    free(wasm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(push_and_pull_each_format),
        cmocka_unit_test(push_a_component),
        cmocka_unit_test(policies_with_registry_gone),
        cmocka_unit_test(always_reuses_the_store),
        cmocka_unit_test(concurrent_pulls_download_once),
        cmocka_unit_test(index_with_wasm_entry),
        cmocka_unit_test(unknown_tag_and_wrong_media_type),
        cmocka_unit_test(corrupted_blob_is_refused),
        cmocka_unit_test(basic_auth),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
