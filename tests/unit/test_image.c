/* test_image.c: unit tests for image/ that need no registry: references,
 * docker config credentials, WWW-Authenticate, manifests, tar layers (built
 * with the tar CLI and with wasmlet's own writer), digest verification of
 * blobs, the store's index, pull policies offline, and GC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "image/digest.h"
#include "image/image.h"
#include "image/manifest.h"
#include "image/registry.h"
#include "image/store.h"
#include "image/tar.h"
#include "image/wasm_info.h"
#include "util/base64.h"
#include "util/fs.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char *make_tmpdir(void)
{
    char tmpl[] = "/tmp/wasmlet-image-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

static void rmtree(char *dir)
{
    err_t err;
    assert_int_equal(fs_rm_rf(dir, &err), 0);
    free(dir);
}

static void put_file(const char *dir, const char *name, const char *content)
{
    char *path = fs_join(dir, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    err_t err;
    assert_int_equal(fs_mkdir_p(path, 0755, &err), 0);
    *slash = '/';
    assert_int_equal(fs_write_atomic(path, content, strlen(content), 0644, &err), 0);
    free(path);
}

static void run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void run(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    assert_true(vasprintf(&cmd, fmt, ap) >= 0);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    assert_int_equal(rc, 0);
    free(cmd);
}

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* --- references ---------------------------------------------------------------- */

static void check_ref(const char *text, const char *registry, const char *repo, const char *tag,
                      const char *digest, const char *normalized)
{
    image_ref_t r;
    err_t err = {{0}};
    if (image_ref_parse(text, &r, &err) != 0) fail_msg("parse %s: %s", text, err.msg);
    assert_string_equal(r.registry, registry);
    assert_string_equal(r.repository, repo);
    if (tag)
        assert_string_equal(r.tag, tag);
    else
        assert_null(r.tag);
    if (digest)
        assert_string_equal(r.digest, digest);
    else
        assert_null(r.digest);
    char *s = image_ref_string(&r);
    assert_string_equal(s, normalized);
    free(s);
    image_ref_free(&r);
}

static void ref_parsing(void **state)
{
    (void)state;
    check_ref("hello", "docker.io", "library/hello", "latest", NULL,
              "docker.io/library/hello:latest");
    check_ref("org/app:v1", "docker.io", "org/app", "v1", NULL, "docker.io/org/app:v1");
    check_ref("my-registry/app", "docker.io", "my-registry/app", "latest", NULL,
              "docker.io/my-registry/app:latest");
    check_ref("index.docker.io/busybox", "docker.io", "library/busybox", "latest", NULL,
              "docker.io/library/busybox:latest");
    check_ref("docker.io/library/busybox:1.36", "docker.io", "library/busybox", "1.36", NULL,
              "docker.io/library/busybox:1.36");
    check_ref("localhost:5000/app", "localhost:5000", "app", "latest", NULL,
              "localhost:5000/app:latest");
    check_ref("localhost/app:1.0", "localhost", "app", "1.0", NULL, "localhost/app:1.0");
    check_ref("127.0.0.1:5000/ns/deep/app:v2@sha256:" HEX64, "127.0.0.1:5000", "ns/deep/app", "v2",
              "sha256:" HEX64, "127.0.0.1:5000/ns/deep/app@sha256:" HEX64);
    check_ref("ghcr.io/org/app@sha256:" HEX64, "ghcr.io", "org/app", NULL, "sha256:" HEX64,
              "ghcr.io/org/app@sha256:" HEX64);
    check_ref("Registry.Example.COM/app", "registry.example.com", "app", "latest", NULL,
              "registry.example.com/app:latest");
    check_ref("[::1]:5000/app:t", "[::1]:5000", "app", "t", NULL, "[::1]:5000/app:t");
    check_ref("a__b/c.d-e--f:T_1.x-y", "docker.io", "a__b/c.d-e--f", "T_1.x-y", NULL,
              "docker.io/a__b/c.d-e--f:T_1.x-y");

    const char *bad[] = {"",
                         "App",
                         "org/App",
                         "app:",
                         "app@sha256:abc",
                         "app@md5:" HEX64,
                         "app@sha256:" HEX64 "00",
                         "-app",
                         "app/",
                         "a//b",
                         "a..b",
                         "host:port/app",
                         "app:-tag",
                         "app:" HEX64 HEX64 "x",
                         ":tag",
                         "bad_host.com:/x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        image_ref_t r;
        err_t err = {{0}};
        if (image_ref_parse(bad[i], &r, &err) == 0)
            fail_msg("accepted bad reference \"%s\"", bad[i]);
        assert_non_null(strstr(err.msg, "invalid image reference"));
    }
    image_ref_t r;
    err_t err;
    assert_int_equal(image_ref_parse("app@sha512:" HEX64 HEX64, &r, &err), -1);
    assert_non_null(strstr(err.msg, "only sha256"));
    assert_int_equal(image_ref_parse("App/x", &r, &err), 0); /* upper case makes it a host */
    assert_string_equal(r.registry, "app");
    image_ref_free(&r);
}

static void ref_endpoint_and_policy(void **state)
{
    (void)state;
    image_ref_t r;
    err_t err;
    assert_int_equal(image_ref_parse("hello", &r, &err), 0);
    assert_string_equal(image_ref_endpoint(&r), "registry-1.docker.io");
    assert_int_equal(image_default_pull_policy(&r), IMAGE_PULL_ALWAYS);
    image_ref_free(&r);
    assert_int_equal(image_ref_parse("127.0.0.1:5000/app:v1", &r, &err), 0);
    assert_string_equal(image_ref_endpoint(&r), "127.0.0.1:5000");
    assert_int_equal(image_default_pull_policy(&r), IMAGE_PULL_IF_NOT_PRESENT);
    image_ref_free(&r);
    assert_int_equal(image_ref_parse("app:latest@sha256:" HEX64, &r, &err), 0);
    assert_int_equal(image_default_pull_policy(&r), IMAGE_PULL_IF_NOT_PRESENT);
    image_ref_free(&r);

    image_pull_policy_t p;
    assert_int_equal(image_pull_policy_parse("Always", &p), 0);
    assert_int_equal(p, IMAGE_PULL_ALWAYS);
    assert_int_equal(image_pull_policy_parse("IfNotPresent", &p), 0);
    assert_int_equal(p, IMAGE_PULL_IF_NOT_PRESENT);
    assert_int_equal(image_pull_policy_parse("Never", &p), 0);
    assert_int_equal(p, IMAGE_PULL_NEVER);
    assert_int_equal(image_pull_policy_parse("always", &p), -1);
    image_format_t f;
    assert_int_equal(image_format_parse("wasm-to-oci", &f), 0);
    assert_int_equal(f, IMAGE_FORMAT_WASM_TO_OCI);
    assert_int_equal(image_format_parse("oci-image", &f), 0);
    assert_string_equal(image_format_name(f), "oci-image");
    assert_int_equal(image_format_parse("tarball", &f), -1);

    /* plain HTTP: loopback always, others when listed */
    const char *insecure[] = {"registry.lan:5000", "plain.example", NULL};
    assert_true(image_registry_is_insecure("127.0.0.1:5000", NULL));
    assert_true(image_registry_is_insecure("localhost:5000", NULL));
    assert_true(image_registry_is_insecure("[::1]:5000", NULL));
    assert_false(image_registry_is_insecure("ghcr.io", NULL));
    assert_true(image_registry_is_insecure("registry.lan:5000", insecure));
    assert_false(image_registry_is_insecure("registry.lan:5001", insecure));
    assert_true(image_registry_is_insecure("plain.example:8080", insecure));
}

/* --- credentials ----------------------------------------------------------------- */

static char *b64(const char *s)
{
    return base64_encode(s, strlen(s));
}

static void dockerconfigjson(void **state)
{
    (void)state;
    char *alice = b64("alice:pw:with:colons");
    char *carol = b64("carol:team-secret");
    char *json = xasprintf("{\"auths\": {"
                           "\"https://index.docker.io/v1/\": {\"auth\": \"%s\"},"
                           "\"registry.example.com:5000\": {\"username\": \"bob\", "
                           "\"password\": \"x\", \"email\": \"b@example.com\"},"
                           "\"*.corp.example\": {\"identitytoken\": \"refresh-me\"},"
                           "\"quay.io/team\": {\"auth\": \"%s\"},"
                           "\"quay.io\": {\"username\": \"dave\", \"password\": \"q\"},"
                           "\"http://plain.lan/v2/\": {\"registrytoken\": \"raw\"}},"
                           "\"credsStore\": \"desktop\"}",
                           alice, carol);
    image_auth_t auth = IMAGE_AUTH_INIT;
    err_t err = {{0}};
    if (image_auth_from_dockerconfigjson(&auth, json, strlen(json), &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(auth.n, 6);

    const image_cred_t *m[8];
    size_t n = image_auth_match(&auth, "docker.io", "library/nginx", m, 8);
    assert_int_equal(n, 1);
    assert_string_equal(m[0]->registry, "docker.io");
    assert_string_equal(m[0]->username, "alice");
    assert_string_equal(m[0]->password, "pw:with:colons");

    n = image_auth_match(&auth, "registry.example.com:5000", "app", m, 8);
    assert_int_equal(n, 1);
    assert_string_equal(m[0]->username, "bob");
    assert_string_equal(m[0]->password, "x");
    assert_int_equal(image_auth_match(&auth, "registry.example.com", "app", m, 8), 0);

    n = image_auth_match(&auth, "a.corp.example", "x/y", m, 8);
    assert_int_equal(n, 1);
    assert_string_equal(m[0]->identity_token, "refresh-me");
    assert_null(m[0]->username);
    assert_int_equal(image_auth_match(&auth, "corp.example", "x", m, 8), 0);
    assert_int_equal(image_auth_match(&auth, "a.b.corp.example", "x", m, 8), 0);

    n = image_auth_match(&auth, "quay.io", "team/app", m, 8);
    assert_int_equal(n, 2);
    assert_string_equal(m[0]->username, "carol"); /* the more specific key first */
    assert_string_equal(m[1]->username, "dave");
    n = image_auth_match(&auth, "quay.io", "teamster/app", m, 8);
    assert_int_equal(n, 1);
    assert_string_equal(m[0]->username, "dave");

    n = image_auth_match(&auth, "plain.lan", "x", m, 8);
    assert_int_equal(n, 1);
    assert_string_equal(m[0]->registry_token, "raw");

    /* the older .dockercfg format, appended after the first */
    char *old = xasprintf("{\"127.0.0.1:5000\": {\"auth\": \"%s\", \"email\": \"x@y\"}}", carol);
    assert_int_equal(image_auth_from_dockerconfigjson(&auth, old, strlen(old), &err), 0);
    assert_int_equal(auth.n, 7);
    n = image_auth_match(&auth, "127.0.0.1:5000", "ns/app", m, 8);
    assert_int_equal(n, 1);
    assert_string_equal(m[0]->password, "team-secret");

    /* copies keep order: pod secrets before node credentials */
    image_auth_t all = IMAGE_AUTH_INIT;
    image_auth_append(&all, &auth);
    image_auth_append(&all, &auth);
    n = image_auth_match(&all, "docker.io", "library/x", m, 8);
    assert_int_equal(n, 2);
    assert_ptr_equal(m[0], &all.creds[0]);
    image_auth_free(&all);

    /* errors leave what was there */
    const char *bad[] = {"{not json", "[1,2]", "{\"auths\": 3}",
                         "{\"auths\": {\"h\": {\"auth\": \"!!!\"}}}",
                         "{\"auths\": {\"h\": {\"auth\": \"bm9jb2xvbg==\"}}}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err_clear(&err);
        assert_int_equal(image_auth_from_dockerconfigjson(&auth, bad[i], strlen(bad[i]), &err), -1);
        assert_non_null(strstr(err.msg, "docker config"));
        assert_int_equal(auth.n, 7);
    }
    assert_non_null(strstr(err.msg, "\"h\""));

    /* node-level file */
    char *dir = make_tmpdir();
    put_file(dir, "config.json", old);
    char *path = fs_join(dir, "config.json");
    image_auth_t node = IMAGE_AUTH_INIT;
    assert_int_equal(image_auth_load_file(&node, path, &err), 0);
    assert_int_equal(node.n, 1);
    assert_string_equal(node.creds[0].username, "carol");
    free(path);
    path = fs_join(dir, "missing.json");
    assert_int_equal(image_auth_load_file(&node, path, &err), -1);
    assert_non_null(strstr(err.msg, "missing.json"));
    free(path);
    rmtree(dir);
    image_auth_free(&node);

    image_auth_free(&auth);
    free(old);
    free(json);
    free(alice);
    free(carol);
}

static void www_authenticate(void **state)
{
    (void)state;
    image_registry_challenge_t c;
    err_t err = {{0}};
    assert_int_equal(
        image_registry_challenge_parse(
            "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
            "scope=\"repository:library/nginx:pull,push\"",
            &c, &err),
        0);
    assert_string_equal(c.scheme, "bearer");
    assert_string_equal(c.realm, "https://auth.docker.io/token");
    assert_string_equal(c.service, "registry.docker.io");
    assert_string_equal(c.scope, "repository:library/nginx:pull,push");
    image_registry_challenge_free(&c);

    assert_int_equal(image_registry_challenge_parse("Basic realm=\"Registry Realm\"", &c, &err), 0);
    assert_string_equal(c.scheme, "basic");
    assert_string_equal(c.realm, "Registry Realm");
    assert_null(c.service);
    image_registry_challenge_free(&c);

    /* several challenges: Bearer wins; unquoted values; escapes; odd spacing */
    assert_int_equal(
        image_registry_challenge_parse("Basic realm=\"b\", bearer  realm = http://127.0.0.1:1/t ,"
                                       " service=\"a \\\"quoted\\\" svc\", error=\"invalid_token\"",
                                       &c, &err),
        0);
    assert_string_equal(c.scheme, "bearer");
    assert_string_equal(c.realm, "http://127.0.0.1:1/t");
    assert_string_equal(c.service, "a \"quoted\" svc");
    assert_null(c.scope);
    image_registry_challenge_free(&c);

    assert_int_equal(image_registry_challenge_parse("Negotiate abc==", &c, &err), -1);
    assert_non_null(strstr(err.msg, "unsupported authentication scheme \"negotiate\""));
    assert_int_equal(image_registry_challenge_parse("Bearer service=\"x\"", &c, &err), -1);
    assert_non_null(strstr(err.msg, "without a realm"));
    assert_int_equal(image_registry_challenge_parse("", &c, &err), -1);
    assert_int_equal(image_registry_challenge_parse("Bearer realm=\"unterminated", &c, &err), 0);
    assert_string_equal(c.realm, "unterminated");
    image_registry_challenge_free(&c);
}

/* --- digests --------------------------------------------------------------------- */

static void digests(void **state)
{
    (void)state;
    char d[IMAGE_DIGEST_MAX];
    image_sha256_buf("abc", 3, d);
    assert_string_equal(d,
                        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true(image_digest_valid(d));
    assert_false(image_digest_valid(
        "sha256:BA7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    assert_false(image_digest_valid("sha256:ba78"));
    assert_false(image_digest_valid("sha512:" HEX64));
    /* streaming in pieces gives the same digest */
    image_sha256_t h;
    image_sha256_init(&h);
    image_sha256_update(&h, "a", 1);
    image_sha256_update(&h, "bc", 2);
    char d2[IMAGE_DIGEST_MAX];
    image_sha256_final(&h, d2);
    assert_string_equal(d, d2);
}

static void blob_verification(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    image_store_options_t o = {.dir = dir};
    image_store_t *s;
    err_t err = {{0}};
    assert_int_equal(image_store_open(&s, &o, &err), 0);
    char good[IMAGE_DIGEST_MAX], bad[IMAGE_DIGEST_MAX];
    image_sha256_buf("hello module", 12, good);
    image_sha256_buf("hellO module", 12, bad);

    /* right bytes, in pieces: stored under their digest */
    image_blob_writer_t w;
    assert_int_equal(image_blob_begin(s, good, 12, &w, &err), 0);
    assert_int_equal(image_blob_write(&w, "hello ", 6, &err), 0);
    assert_int_equal(image_blob_write(&w, "module", 6, &err), 0);
    assert_int_equal(image_blob_finish(&w, &err), 0);
    assert_int_equal(image_blob_install(&w, &err), 0);
    image_blob_abort(&w);
    char *path = image_store_blob_path(s, good);
    char *data;
    size_t len;
    assert_int_equal(fs_read_all(path, &data, &len, &err), 0);
    assert_string_equal(data, "hello module");
    free(data);
    free(path);
    assert_true(image_store_has_blob(s, good));

    /* wrong bytes: an error naming both digests, nothing stored */
    assert_int_equal(image_blob_begin(s, bad, 12, &w, &err), 0);
    assert_int_equal(image_blob_write(&w, "hello module", 12, &err), 0);
    assert_int_equal(image_blob_finish(&w, &err), -1);
    char *want = xasprintf("digest mismatch: expected %s, got %s", bad, good);
    assert_string_equal(err.msg, want);
    free(want);
    image_blob_abort(&w);
    assert_false(image_store_has_blob(s, bad));
    char *tmp = fs_join(dir, "tmp");
    assert_int_equal(count_files(tmp), 0);
    char *blobs = fs_join(dir, "blobs/sha256");
    assert_int_equal(count_files(blobs), 1);

    /* more bytes than the descriptor says: stopped at once */
    assert_int_equal(image_blob_begin(s, good, 5, &w, &err), 0);
    assert_int_equal(image_blob_write(&w, "hello module", 12, &err), -1);
    assert_non_null(strstr(err.msg, "more than the 5 bytes"));
    image_blob_abort(&w);

    /* right digest, wrong declared size */
    assert_int_equal(image_blob_begin(s, good, 13, &w, &err), 0);
    assert_int_equal(image_blob_write(&w, "hello module", 12, &err), 0);
    assert_int_equal(image_blob_finish(&w, &err), -1);
    assert_non_null(strstr(err.msg, "size mismatch"));
    image_blob_abort(&w);
    assert_int_equal(count_files(tmp), 0);
    assert_int_equal(count_files(blobs), 1);

    /* temp files left by a crash are cleared at open */
    put_file(tmp, "blob-crashed", "partial");
    image_store_close(s);
    assert_int_equal(image_store_open(&s, &o, &err), 0);
    assert_int_equal(count_files(tmp), 0);
    image_store_close(s);
    free(tmp);
    free(blobs);
    rmtree(dir);
}

/* --- manifests ------------------------------------------------------------------- */

/* A component's top-level imports and exports, read from its bytes (for
 * the CNCF config of `wasmlet push`); a core module is only named so. */
static void wasm_info(void **state)
{
    (void)state;
    static const uint8_t comp[] = {
        0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, /* component preamble */
        /* a core module section, skipped by its size */
        0x01, 0x08, 0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
        /* imports: "a:b/c@1.0.0" (instance type 0), "f" with a version suffix (func 1) */
        0x0a, 0x18, 0x02, 0x00, 0x0b, 'a', ':', 'b', '/', 'c', '@', '1', '.', '0', '.', '0', 0x05,
        0x00, 0x01, 0x01, 'f', 0x02, '@', '1', 0x01, 0x01,
        /* exports: "x:y/run@0.2.0" (instance 0, no type), "g" (core module 2) */
        0x0b, 0x1a, 0x02, 0x00, 0x0d, 'x', ':', 'y', '/', 'r', 'u', 'n', '@', '0', '.', '2', '.',
        '0', 0x05, 0x00, 0x00, 0x00, 0x01, 'g', 0x00, 0x11, 0x02, 0x00};
    image_wasm_info_t info;
    err_t err = {{0}};
    if (image_wasm_describe(comp, sizeof comp, &info, &err) == -1) fail_msg("%s", err.msg);
    assert_true(info.component);
    assert_int_equal(info.imports.len, 2);
    assert_string_equal(info.imports.items[0], "a:b/c@1.0.0");
    assert_string_equal(info.imports.items[1], "f");
    assert_int_equal(info.exports.len, 2);
    assert_string_equal(info.exports.items[0], "x:y/run@0.2.0");
    assert_string_equal(info.exports.items[1], "g");
    assert_null(image_wasm_target(&info)); /* x:y/run is no standard world's */
    image_wasm_info_free(&info);

    /* component.target, from the exports. */
    image_wasm_info_t t = {.component = true};
    strvec_push(&t.exports, "wasi:cli/run@0.2.12");
    char *target = image_wasm_target(&t);
    assert_string_equal(target, "wasi:cli/command@0.2.12");
    free(target);
    strvec_push(&t.exports, "wasi:http/incoming-handler@0.2.3");
    target = image_wasm_target(&t);
    assert_string_equal(target, "wasi:http/proxy@0.2.3");
    free(target);
    image_wasm_info_free(&t);
    t = (image_wasm_info_t){.component = false};
    assert_null(image_wasm_target(&t));

    /* Cut anywhere inside a section (not at the end of the imports, byte
     * 44: a whole component): an error naming the offset, nothing kept. */
    for (size_t cut = 19; cut < sizeof comp; cut++) {
        if (cut == 44) continue;
        assert_int_equal(image_wasm_describe(comp, cut, &info, &err), -1);
        assert_non_null(strstr(err.msg, "at byte"));
        assert_int_equal(info.imports.len + info.exports.len, 0);
    }
    static const uint8_t core[] = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00};
    assert_int_equal(image_wasm_describe(core, sizeof core, &info, &err), 0);
    assert_false(info.component);
    assert_int_equal(image_wasm_describe((const uint8_t *)"hello", 5, &info, &err), -1);

    /* A real one: the component twin of hello.c, a wasi:cli/command. */
    const char *dir = getenv("WASMLET_EXAMPLES");
    char *path = xasprintf("%s/hello.component.wasm", dir && *dir ? dir : "build/examples");
    char *data;
    size_t len;
    if (fs_read_all(path, &data, &len, &err) == 0) {
        if (image_wasm_describe((const uint8_t *)data, len, &info, &err) == -1)
            fail_msg("%s", err.msg);
        assert_true(info.component);
        assert_int_equal(info.exports.len, 1);
        assert_int_equal(strncmp(info.exports.items[0], "wasi:cli/run@0.2.", 17), 0);
        bool exit_seen = false;
        for (size_t i = 0; i < info.imports.len; i++)
            exit_seen |= strncmp(info.imports.items[i], "wasi:cli/exit@0.2.", 18) == 0;
        assert_true(exit_seen);
        image_wasm_info_free(&info);
        free(data);
    }
    free(path);
}

static void manifests(void **state)
{
    (void)state;
    image_manifest_t m;
    err_t err = {{0}};
    const char *index =
        "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":["
        "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"sha256:" HEX64 "\",\"size\":10,"
        "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
        "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"sha256:"
        "1111111111111111111111111111111111111111111111111111111111111111\",\"size\":11,"
        "\"platform\":{\"os\":\"wasip1\",\"architecture\":\"wasm\"}}]}";
    assert_int_equal(image_manifest_parse(index, strlen(index), MT_OCI_INDEX, &m, &err), 0);
    assert_true(m.is_index);
    assert_int_equal(m.n_manifests, 2);
    const image_desc_t *d;
    assert_int_equal(image_manifest_select(&m, &d, &err), 0);
    assert_int_equal(d->size, 11);
    image_manifest_free(&m);

    /* a docker list with one real entry and an attestation: the only entry */
    const char *list =
        "{\"schemaVersion\":2,\"manifests\":["
        "{\"mediaType\":\"" MT_DOCKER_MANIFEST "\",\"digest\":\"sha256:" HEX64 "\",\"size\":10,"
        "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
        "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"sha256:" HEX64 "\",\"size\":12,"
        "\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}}]}";
    assert_int_equal(image_manifest_parse(list, strlen(list), MT_DOCKER_LIST, &m, &err), 0);
    assert_int_equal(image_manifest_select(&m, &d, &err), 0);
    assert_int_equal(d->size, 10);
    image_manifest_free(&m);

    /* two non-wasm platforms: no choice */
    const char *two = "{\"schemaVersion\":2,\"manifests\":["
                      "{\"digest\":\"sha256:" HEX64 "\",\"size\":1,"
                      "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
                      "{\"digest\":\"sha256:" HEX64 "\",\"size\":2,"
                      "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}}]}";
    assert_int_equal(image_manifest_parse(two, strlen(two), "application/json", &m, &err), 0);
    assert_true(m.is_index); /* from its shape */
    assert_int_equal(image_manifest_select(&m, &d, &err), -1);
    assert_non_null(strstr(err.msg, "no wasm entry"));
    assert_non_null(strstr(err.msg, "linux/amd64, linux/arm64"));
    image_manifest_free(&m);

    /* an image manifest served as application/json, without mediaType */
    const char *img =
        "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" MT_WASM_CONFIG_V0
        "\",\"digest\":\"sha256:" HEX64 "\",\"size\":3},\"layers\":["
        "{\"mediaType\":\"application/wasm\",\"digest\":\"sha256:" HEX64 "\",\"size\":8}]}";
    assert_int_equal(image_manifest_parse(img, strlen(img), "application/json", &m, &err), 0);
    assert_false(m.is_index);
    assert_string_equal(m.media_type, MT_OCI_MANIFEST);
    assert_string_equal(m.config.media_type, MT_WASM_CONFIG_V0);
    assert_int_equal(m.n_layers, 1);
    assert_int_equal(m.layers[0].size, 8);
    image_manifest_free(&m);

    /* other document types are refused with their media type named */
    const char *v1 = "{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}";
    assert_int_equal(
        image_manifest_parse(v1, strlen(v1),
                             "application/vnd.docker.distribution.manifest.v1+prettyjws", &m, &err),
        -1);
    assert_string_equal(err.msg,
                        "manifest media type "
                        "application/vnd.docker.distribution.manifest.v1+prettyjws is not a "
                        "wasm module: wasmlet reads OCI and Docker v2 image manifests and "
                        "indexes");
    const char *weak = "{\"schemaVersion\":2,\"config\":{\"digest\":\"sha512:" HEX64 HEX64
                       "\",\"size\":3},\"layers\":[]}";
    assert_int_equal(image_manifest_parse(weak, strlen(weak), MT_OCI_MANIFEST, &m, &err), -1);
    assert_non_null(strstr(err.msg, "sha256 digests only"));
    assert_int_equal(image_manifest_parse("garbage", 7, MT_OCI_MANIFEST, &m, &err), -1);
    assert_non_null(strstr(err.msg, "invalid JSON"));
}

/* --- tar ------------------------------------------------------------------------- */

static char *extract(const char *const *layers, size_t n, const char *path, err_t *err)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    int fd = fileno(f);
    char *out = NULL;
    if (image_tar_extract(layers, n, path, fd, err) == 0) {
        off_t size = lseek(fd, 0, SEEK_END);
        out = xcalloc(1, (size_t)size + 1);
        assert_int_equal(pread(fd, out, (size_t)size, 0), size);
    }
    fclose(f);
    return out;
}

static void tar_layers(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    err_t err = {{0}};
    /* layer 1, ustar: the module, a library, a directory with a file */
    put_file(dir, "l1/app.wasm", "module v1");
    put_file(dir, "l1/lib/x.wasm", "lib x");
    put_file(dir, "l1/opq/hidden.wasm", "hidden");
    run("cd %s/l1 && tar --format=ustar -cf ../l1.tar app.wasm lib opq", dir);
    /* layer 2, GNU + gzip: replaces the module, adds a link, a hard link */
    put_file(dir, "l2/app.wasm", "module v2");
    run("cd %s/l2 && mkdir bin && ln -s ../app.wasm bin/run.wasm && ln -s /lib bin/lib && "
        "ln app.wasm hard.wasm && tar --format=gnu -czf ../l2.tar.gz ./app.wasm ./bin ./hard.wasm",
        dir);
    /* layer 3, pax: deletes lib/x.wasm, makes opq/ opaque, adds opq/new.wasm */
    put_file(dir, "l3/lib/.wh.x.wasm", "");
    put_file(dir, "l3/opq/.wh..wh..opq", "");
    put_file(dir, "l3/opq/new.wasm", "new");
    run("cd %s/l3 && tar --format=pax -cf ../l3.tar lib opq", dir);
    /* long names: GNU 'L', pax path, ustar prefix */
    const char *deep = "d0123456789/d0123456789/d0123456789/d0123456789/d0123456789/"
                       "d0123456789/d0123456789/d0123456789/d0123456789/d0123456789/"
                       "d0123456789/module-with-a-long-name.wasm";
    assert_true(strlen(deep) > 100 && strlen(deep) < 200);
    char *deep_file = xasprintf("long/%s", deep);
    put_file(dir, deep_file, "deep module");
    free(deep_file);
    run("cd %s/long && tar --format=gnu -cf ../gnu.tar d0123456789 && "
        "tar --format=pax -cf ../pax.tar d0123456789 && "
        "tar --format=ustar -cf ../ustar.tar d0123456789",
        dir);

    char *l1 = fs_join(dir, "l1.tar"), *l2 = fs_join(dir, "l2.tar.gz"),
         *l3 = fs_join(dir, "l3.tar");
    const char *stack[] = {l1, l2, l3};
    char *got;

    got = extract(stack, 1, "/app.wasm", &err);
    assert_string_equal(got, "module v1");
    free(got);
    got = extract(stack, 3, "/app.wasm", &err); /* later layers override */
    assert_string_equal(got, "module v2");
    free(got);
    got = extract(stack, 3, "app.wasm", &err);
    assert_string_equal(got, "module v2");
    free(got);
    got = extract(stack, 3, "/bin/run.wasm", &err); /* relative symlink */
    assert_string_equal(got, "module v2");
    free(got);
    got = extract(stack, 2, "/bin/lib/x.wasm", &err); /* symlinked parent directory */
    assert_string_equal(got, "lib x");
    free(got);
    got = extract(stack, 3, "/hard.wasm", &err); /* hard link */
    assert_string_equal(got, "module v2");
    free(got);
    got = extract(stack, 2, "/lib/x.wasm", &err);
    assert_string_equal(got, "lib x");
    free(got);
    got = extract(stack, 3, "/lib/x.wasm", &err); /* whiteout */
    assert_null(got);
    assert_string_equal(err.msg, "/lib/x.wasm was deleted by a whiteout in layer 3");
    got = extract(stack, 3, "/opq/hidden.wasm", &err); /* opaque directory */
    assert_null(got);
    assert_non_null(strstr(err.msg, "whiteout"));
    got = extract(stack, 2, "/opq/hidden.wasm", &err);
    assert_string_equal(got, "hidden");
    free(got);
    got = extract(stack, 3, "/opq/new.wasm", &err);
    assert_string_equal(got, "new");
    free(got);
    got = extract(stack, 3, "/nope.wasm", &err);
    assert_null(got);
    assert_string_equal(err.msg, "/nope.wasm is not in the image (3 layers)");
    got = extract(stack, 3, "/lib", &err);
    assert_null(got);
    assert_non_null(strstr(err.msg, "not a regular file"));

    const char *formats[] = {"gnu.tar", "pax.tar", "ustar.tar"};
    for (size_t i = 0; i < 3; i++) {
        char *p = fs_join(dir, formats[i]);
        const char *one[] = {p};
        got = extract(one, 1, deep, &err);
        if (!got) fail_msg("%s: %s", formats[i], err.msg);
        assert_string_equal(got, "deep module");
        free(got);
        free(p);
    }

    /* not a tar at all */
    put_file(dir, "junk.tar",
             "this is not a tar archive, not even close; just some text that is "
             "long enough to fill a header block? no, a short file ends early");
    char *junk = fs_join(dir, "junk.tar");
    const char *bad[] = {junk};
    got = extract(bad, 1, "/app.wasm", &err);
    assert_null(got);
    assert_non_null(strstr(err.msg, "layer 1: tar:"));
    free(junk);

    /* wasmlet's writer: readable by tar(1) and by the reader, long names too */
    strbuf_t out = STRBUF_INIT;
    image_tar_write_file(&out, "app.wasm", "\0asm\1\0\0\0", 8, 0755, 1700000000);
    image_tar_write_file(&out, deep, "deep", 4, 0644, 0);
    image_tar_write_end(&out);
    char *mine = fs_join(dir, "mine.tar");
    assert_int_equal(fs_write_atomic(mine, out.data, out.len, 0644, &err), 0);
    strbuf_free(&out);
    run("tar -tvf %s | grep -q 'app.wasm' && tar -tf %s | grep -q 'module-with-a-long-name.wasm' "
        "&& test \"$(tar -xOf %s app.wasm | wc -c)\" = 8",
        mine, mine, mine);
    const char *mine_stack[] = {mine};
    got = extract(mine_stack, 1, deep, &err);
    assert_string_equal(got, "deep");
    free(got);
    got = extract(mine_stack, 1, "/app.wasm", &err);
    assert_memory_equal(got, "\0asm\1\0\0\0", 8);
    free(got);
    free(mine);

    char *c = image_tar_clean_path("./a//b/./c/../d/");
    assert_string_equal(c, "a/b/d");
    free(c);
    c = image_tar_clean_path("/../../etc/passwd");
    assert_string_equal(c, "etc/passwd");
    free(c);
    free(l1);
    free(l2);
    free(l3);
    rmtree(dir);
}

/* --- store: index, policies without a registry, GC ------------------------------- */

static void put_blob(image_store_t *s, const char *content, char digest[IMAGE_DIGEST_MAX])
{
    err_t err;
    image_blob_writer_t w;
    assert_int_equal(image_blob_begin(s, NULL, -1, &w, &err), 0);
    assert_int_equal(image_blob_write(&w, content, strlen(content), &err), 0);
    assert_int_equal(image_blob_finish(&w, &err), 0);
    assert_int_equal(image_blob_install(&w, &err), 0);
    image_blob_abort(&w);
    snprintf(digest, IMAGE_DIGEST_MAX, "%s", w.digest);
}

static void age(image_store_t *s, const char *digest, int seconds)
{
    char *path = image_store_blob_path(s, digest);
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= seconds;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    free(path);
}

static void store_policies_and_gc(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    image_store_options_t o = {.dir = dir};
    image_store_t *s;
    err_t err = {{0}};
    assert_int_equal(image_store_open(&s, &o, &err), 0);

    char a[IMAGE_DIGEST_MAX], b[IMAGE_DIGEST_MAX], c[IMAGE_DIGEST_MAX];
    put_blob(s, "module a", a);
    put_blob(s, "module b", b);
    put_blob(s, "module c", c);
    image_index_entry_t e = {.format = IMAGE_FORMAT_OCI_IMAGE};
    snprintf(e.manifest, sizeof e.manifest, "sha256:%s", HEX64);
    snprintf(e.module, sizeof e.module, "%s", a);
    const char *refs[] = {"127.0.0.1:1/app:v1"};
    const char *mans[] = {e.manifest};
    assert_int_equal(image_index_put(s, refs, 1, mans, 1, &e, &err), 0);
    snprintf(e.manifest, sizeof e.manifest, "sha256:%064d", 2);
    snprintf(e.module, sizeof e.module, "%s", b);
    refs[0] = "127.0.0.1:1/app:v2";
    mans[0] = e.manifest;
    assert_int_equal(image_index_put(s, refs, 1, mans, 1, &e, &err), 0);
    image_store_close(s);

    /* The index survives a restart; IfNotPresent and Never use it without
     * the network (port 1 has no registry). */
    assert_int_equal(image_store_open(&s, &o, &err), 0);
    image_pulled_t p;
    assert_int_equal(image_pull(s, "127.0.0.1:1/app:v1", IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err),
                     0);
    assert_true(p.from_store);
    assert_string_equal(p.module_digest, a);
    assert_string_equal(p.image_id, "sha256:" HEX64);
    assert_string_equal(p.repo_digest, "127.0.0.1:1/app@sha256:" HEX64);
    assert_string_equal(p.ref, "127.0.0.1:1/app:v1");
    assert_int_equal(p.format, IMAGE_FORMAT_OCI_IMAGE);
    assert_int_equal(p.module_size, 8);
    char *data;
    assert_int_equal(fs_read_all(p.module_path, &data, NULL, &err), 0);
    assert_string_equal(data, "module a");
    free(data);
    image_pulled_free(&p);
    /* by digest, as the manifests map knows it */
    assert_int_equal(
        image_pull(s, "127.0.0.1:1/app@sha256:" HEX64, IMAGE_PULL_NEVER, NULL, &p, &err), 0);
    assert_string_equal(p.module_digest, a);
    image_pulled_free(&p);
    assert_int_equal(image_pull(s, "127.0.0.1:1/app:v3", IMAGE_PULL_NEVER, NULL, &p, &err), -1);
    assert_string_equal(err.msg, "image \"127.0.0.1:1/app:v3\" is not present in the store and the "
                                 "pull policy is Never");
    assert_int_equal(image_pull(s, "127.0.0.1:1/app:v3", IMAGE_PULL_IF_NOT_PRESENT, NULL, &p, &err),
                     -1);
    assert_non_null(strstr(err.msg, "dial 127.0.0.1:1: connection refused"));
    assert_int_equal(image_pull(s, "127.0.0.1:1/app:v1", IMAGE_PULL_ALWAYS, NULL, &p, &err), -1);
    assert_non_null(strstr(err.msg, "dial 127.0.0.1:1: connection refused"));
    image_store_stats_t st;
    image_store_stats(s, &st);
    assert_true(st.manifest_requests >= 2);
    assert_int_equal(st.blob_downloads, 0);

    /* compiled forms beside the modules, and an orphan */
    char *ca = image_store_compiled_path(s, a), *cb = image_store_compiled_path(s, b),
         *cc = image_store_compiled_path(s, c);
    char *expect = xasprintf("%s/compiled/%s.cwasm", dir, image_digest_hex(a));
    assert_string_equal(ca, expect);
    free(expect);
    err_t e2;
    assert_int_equal(fs_write_atomic(ca, "ca", 2, 0644, &e2), 0);
    assert_int_equal(fs_write_atomic(cb, "cb", 2, 0644, &e2), 0);
    assert_int_equal(fs_write_atomic(cc, "cc", 2, 0644, &e2), 0);
    char *orphan = xasprintf("%s/compiled/sha256:%s.cwasm", dir, HEX64);
    assert_int_equal(fs_write_atomic(orphan, "o", 1, 0644, &e2), 0);

    /* a: in use (by reference); b: unused but recent; c: unused and old */
    age(s, a, 3600);
    age(s, c, 3600);
    const char *in_use[] = {"127.0.0.1:1/app:v1"};
    image_gc_result_t g;
    assert_int_equal(image_store_gc(s, in_use, 1, 600 * NS_PER_SEC, &g, &err), 0);
    assert_int_equal(g.modules_removed, 1);
    assert_int_equal(g.bytes_freed, 8);
    assert_int_equal(g.modules_kept, 2);
    assert_false(image_store_has_blob(s, c));
    assert_int_equal(access(cc, F_OK), -1);
    assert_int_equal(access(orphan, F_OK), -1);
    assert_int_equal(access(ca, F_OK), 0);
    assert_int_equal(access(cb, F_OK), 0);

    /* b grows old; in use by module digest keeps a, b goes with its
     * reference and compiled form */
    age(s, b, 3600);
    age(s, a, 3600);
    in_use[0] = a;
    assert_int_equal(image_store_gc(s, in_use, 1, 600 * NS_PER_SEC, &g, &err), 0);
    assert_int_equal(g.modules_removed, 1);
    assert_int_equal(access(cb, F_OK), -1);
    assert_int_equal(image_pull(s, "127.0.0.1:1/app:v2", IMAGE_PULL_NEVER, NULL, &p, &err), -1);
    assert_int_equal(image_pull(s, "127.0.0.1:1/app:v1", IMAGE_PULL_NEVER, NULL, &p, &err), 0);
    image_pulled_free(&p);

    /* nothing in use, grace 0: everything goes, the index forgets it */
    assert_int_equal(image_store_gc(s, NULL, 0, 0, &g, &err), 0);
    assert_int_equal(g.modules_removed, 1);
    assert_int_equal(access(ca, F_OK), -1);
    assert_int_equal(image_pull(s, "127.0.0.1:1/app:v1", IMAGE_PULL_NEVER, NULL, &p, &err), -1);
    image_store_close(s);
    assert_int_equal(image_store_open(&s, &o, &err), 0);
    assert_int_equal(image_pull(s, "127.0.0.1:1/app:v1", IMAGE_PULL_NEVER, NULL, &p, &err), -1);
    image_store_close(s);
    char *index;
    char *ipath = fs_join(dir, "index.json");
    assert_int_equal(fs_read_all(ipath, &index, NULL, &err), 0);
    assert_null(strstr(index, "app:v1"));
    free(index);
    free(ipath);

    free(ca);
    free(cb);
    free(cc);
    free(orphan);
    rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ref_parsing),      cmocka_unit_test(ref_endpoint_and_policy),
        cmocka_unit_test(dockerconfigjson), cmocka_unit_test(www_authenticate),
        cmocka_unit_test(digests),          cmocka_unit_test(blob_verification),
        cmocka_unit_test(manifests),        cmocka_unit_test(wasm_info),
        cmocka_unit_test(tar_layers),       cmocka_unit_test(store_policies_and_gc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
