/* test_manifest.c: unit tests for kube/manifest.h (YAML and JSON manifests
 * into jansson values, typed as Kubernetes' YAML decoder types them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/manifest.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

/* Parses text, which must succeed, and returns the documents. */
static json_t *parse_ok(const char *text)
{
    json_t *docs = NULL;
    err_t err;
    if (manifest_parse(text, strlen(text), &docs, &err) == -1)
        fail_msg("parse failed: %s\n---\n%s", err.msg, text);
    assert_true(json_is_array(docs));
    return docs;
}

/* Parses text, which must fail; returns the message. */
static void parse_fails(const char *text, err_t *err)
{
    json_t *docs = NULL;
    err->msg[0] = '\0';
    int rc = manifest_parse(text, strlen(text), &docs, err);
    if (rc != -1) {
        char *dump = json_dumps(docs, JSON_ENCODE_ANY);
        json_decref(docs);
        fail_msg("parse succeeded: %s", dump);
    }
    assert_true(err->msg[0] != '\0');
}

/* The value of key in the single document of text. */
static json_t *first(json_t *docs)
{
    assert_int_equal(json_array_size(docs), 1);
    return json_array_get(docs, 0);
}

static void scalar_typing(void **state)
{
    (void)state;
    json_t *docs = parse_ok("int: 42\n"
                            "neg: -7\n"
                            "plus: +5\n"
                            "zero: 0\n"
                            "hex: 0x1F\n"
                            "oct: 0o17\n"
                            "mode: 0644\n"
                            "negmode: -010\n"
                            "big: 9007199254740993\n"
                            "float: 1.5\n"
                            "negfloat: -0.25\n"
                            "exp: 1e3\n"
                            "dotfloat: .5\n"
                            "t1: true\n"
                            "t2: True\n"
                            "t3: yes\n"
                            "t4: on\n"
                            "f1: false\n"
                            "f2: no\n"
                            "f3: Off\n"
                            "n1: null\n"
                            "n2: ~\n"
                            "n3:\n"
                            "q1: \"42\"\n"
                            "q2: 'true'\n"
                            "q3: \"null\"\n"
                            "q4: '1.5'\n"
                            "q5: \"\"\n"
                            "s1: hello world\n"
                            "s2: 128Mi\n"
                            "s3: 500m\n"
                            "s4: 1.2.3\n"
                            "s5: 12abc\n"
                            "s6: 0x\n"
                            "s7: yes please\n");
    json_t *d = first(docs);
    assert_true(json_is_object(d));
#define INT(k, v)                                                                                  \
    do {                                                                                           \
        json_t *x = json_object_get(d, k);                                                         \
        if (!json_is_integer(x)) fail_msg("%s is not an integer", k);                              \
        assert_true(json_integer_value(x) == (v));                                                 \
    } while (0)
#define REAL(k, v)                                                                                 \
    do {                                                                                           \
        json_t *x = json_object_get(d, k);                                                         \
        if (!json_is_real(x)) fail_msg("%s is not a real", k);                                     \
        assert_true(json_real_value(x) == (v));                                                    \
    } while (0)
#define BOOL(k, v)                                                                                 \
    do {                                                                                           \
        json_t *x = json_object_get(d, k);                                                         \
        if (!json_is_boolean(x)) fail_msg("%s is not a boolean", k);                               \
        assert_int_equal(json_is_true(x), (v));                                                    \
    } while (0)
#define NUL(k)                                                                                     \
    do {                                                                                           \
        json_t *x = json_object_get(d, k);                                                         \
        if (!x || !json_is_null(x)) fail_msg("%s is not null", k);                                 \
    } while (0)
#define STR(k, v)                                                                                  \
    do {                                                                                           \
        json_t *x = json_object_get(d, k);                                                         \
        if (!json_is_string(x)) fail_msg("%s is not a string", k);                                 \
        assert_string_equal(json_string_value(x), v);                                              \
    } while (0)
    INT("int", 42);
    INT("neg", -7);
    INT("plus", 5);
    INT("zero", 0);
    INT("hex", 31);
    INT("oct", 15);
    INT("mode", 420); /* YAML 1.1 octal, as defaultMode is written */
    INT("negmode", -8);
    INT("big", INT64_C(9007199254740993)); /* exact, not through a double */
    REAL("float", 1.5);
    REAL("negfloat", -0.25);
    REAL("exp", 1000.0);
    REAL("dotfloat", 0.5);
    BOOL("t1", 1);
    BOOL("t2", 1);
    BOOL("t3", 1);
    BOOL("t4", 1);
    BOOL("f1", 0);
    BOOL("f2", 0);
    BOOL("f3", 0);
    NUL("n1");
    NUL("n2");
    NUL("n3");
    STR("q1", "42");
    STR("q2", "true");
    STR("q3", "null");
    STR("q4", "1.5");
    STR("q5", "");
    STR("s1", "hello world");
    STR("s2", "128Mi");
    STR("s3", "500m");
    STR("s4", "1.2.3");
    STR("s5", "12abc");
    STR("s6", "0x");
    STR("s7", "yes please");
    json_decref(docs);
}

static void block_scalars_and_structure(void **state)
{
    (void)state;
    json_t *docs = parse_ok("apiVersion: v1\n"
                            "kind: Pod\n"
                            "metadata:\n"
                            "  name: demo\n"
                            "  labels: {app: web, tier: \"1\"}\n"
                            "spec:\n"
                            "  containers:\n"
                            "    - name: a\n"
                            "      args: [\"x\", 2, true]\n"
                            "      script: |\n"
                            "        line one\n"
                            "        line two\n"
                            "      folded: >\n"
                            "        folded\n"
                            "        text\n"
                            "    - name: b\n"
                            "anchors:\n"
                            "  base: &b {k: v}\n"
                            "  copy: *b\n");
    json_t *d = first(docs);
    assert_string_equal(json_string_value(json_object_get(d, "kind")), "Pod");
    json_t *labels = json_object_get(json_object_get(d, "metadata"), "labels");
    assert_string_equal(json_string_value(json_object_get(labels, "app")), "web");
    assert_string_equal(json_string_value(json_object_get(labels, "tier")), "1");
    json_t *cs = json_object_get(json_object_get(d, "spec"), "containers");
    assert_int_equal(json_array_size(cs), 2);
    json_t *a = json_array_get(cs, 0);
    json_t *args = json_object_get(a, "args");
    assert_string_equal(json_string_value(json_array_get(args, 0)), "x");
    assert_int_equal(json_integer_value(json_array_get(args, 1)), 2);
    assert_true(json_is_true(json_array_get(args, 2)));
    /* Block scalars are strings, never typed. */
    assert_string_equal(json_string_value(json_object_get(a, "script")), "line one\nline two\n");
    assert_string_equal(json_string_value(json_object_get(a, "folded")), "folded text\n");
    json_t *anch = json_object_get(d, "anchors");
    assert_true(json_equal(json_object_get(anch, "base"), json_object_get(anch, "copy")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(anch, "copy"), "k")),
                        "v");
    json_decref(docs);
}

static void multi_document(void **state)
{
    (void)state;
    json_t *docs = parse_ok("# leading comment\n"
                            "---\n"
                            "kind: Pod\n"
                            "metadata: {name: one}\n"
                            "---\n"
                            "# an empty document is dropped\n"
                            "---\n"
                            "kind: ConfigMap\n"
                            "data: {a: \"1\"}\n"
                            "---\n"
                            "kind: Pod\n"
                            "metadata: {name: three}\n"
                            "...\n");
    assert_int_equal(json_array_size(docs), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(docs, 0), "kind")), "Pod");
    assert_string_equal(json_string_value(json_object_get(json_array_get(docs, 1), "kind")),
                        "ConfigMap");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(docs, 2), "metadata"), "name")),
                        "three");
    json_decref(docs);

    /* Nothing at all is no documents, not an error. */
    docs = parse_ok("");
    assert_int_equal(json_array_size(docs), 0);
    json_decref(docs);
    docs = parse_ok("# only a comment\n");
    assert_int_equal(json_array_size(docs), 0);
    json_decref(docs);
}

static void json_input(void **state)
{
    (void)state;
    json_t *docs = parse_ok("  \n{\"kind\": \"Pod\", \"n\": 1, \"r\": 1.5, \"s\": \"1\", \"b\": "
                            "true, \"z\": null, \"a\": [1, \"2\"]}\n");
    json_t *d = first(docs);
    assert_string_equal(json_string_value(json_object_get(d, "kind")), "Pod");
    assert_true(json_is_integer(json_object_get(d, "n")));
    assert_true(json_is_real(json_object_get(d, "r")));
    assert_true(json_is_string(json_object_get(d, "s")));
    assert_true(json_is_true(json_object_get(d, "b")));
    assert_true(json_is_null(json_object_get(d, "z")));
    json_decref(docs);

    /* A top-level JSON array is the list of documents. */
    docs = parse_ok("[{\"kind\": \"Pod\"}, {\"kind\": \"Service\"}]");
    assert_int_equal(json_array_size(docs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(docs, 1), "kind")),
                        "Service");
    json_decref(docs);

    /* JSON errors say where. */
    err_t err;
    parse_fails("{\n  \"kind\": \"Pod\",\n  \"spec\": }\n", &err);
    assert_non_null(strstr(err.msg, "JSON"));
    assert_non_null(strstr(err.msg, "line 3"));
    parse_fails("{\"a\": 1} trailing", &err);
    assert_non_null(strstr(err.msg, "JSON"));
}

static void yaml_errors_located(void **state)
{
    (void)state;
    err_t err;
    parse_fails("kind: Pod\n"
                "metadata:\n"
                "  name: x\n"
                " bad: indentation\n",
                &err);
    assert_non_null(strstr(err.msg, "YAML line 4"));
    assert_non_null(strstr(err.msg, "column"));

    parse_fails("a: [1, 2\nb: 3\n", &err);
    assert_non_null(strstr(err.msg, "YAML line"));

    parse_fails("a: \"unterminated\n", &err);
    assert_non_null(strstr(err.msg, "YAML line"));

    parse_fails("key: value\n\tkey2: tab\n", &err);
    assert_non_null(strstr(err.msg, "line 2"));

    /* An alias to an anchor that does not exist. */
    parse_fails("a: *nowhere\n", &err);
    assert_non_null(strstr(err.msg, "YAML line 1"));

    /* A mapping as a key. */
    parse_fails("? {a: 1}\n: v\n", &err);
    assert_non_null(strstr(err.msg, "key"));

    /* An error in the second document fails the whole file. */
    parse_fails("kind: Pod\n---\nkind: [\n", &err);
    assert_non_null(strstr(err.msg, "YAML line"));
}

static void deep_nesting_refused(void **state)
{
    (void)state;
    err_t err;
    /* 100 levels are fine: the mapping, 99 lists, the scalar. (The text
     * starts with a key so that it is read as YAML.) */
    strbuf_t sb = STRBUF_INIT;
    for (int i = 0; i < 99; i++)
        strbuf_putc(&sb, '[');
    strbuf_puts(&sb, "1");
    for (int i = 0; i < 99; i++)
        strbuf_putc(&sb, ']');
    char *yaml = xasprintf("a: %s\n", strbuf_str(&sb));
    json_t *docs = parse_ok(yaml);
    json_decref(docs);
    free(yaml);
    strbuf_free(&sb);

    /* Deeper is refused with a message. */
    int depths[] = {100, 150, 2000};
    for (size_t d = 0; d < 3; d++) {
        strbuf_t deep = STRBUF_INIT;
        strbuf_puts(&deep, "a: ");
        for (int i = 0; i < depths[d]; i++)
            strbuf_putc(&deep, '[');
        strbuf_putc(&deep, '1');
        for (int i = 0; i < depths[d]; i++)
            strbuf_putc(&deep, ']');
        strbuf_putc(&deep, '\n');
        parse_fails(strbuf_str(&deep), &err);
        strbuf_free(&deep);
        if (d < 2) assert_non_null(strstr(err.msg, "nesting deeper than 100 levels"));
    }
    /* Block-style nesting too. */
    strbuf_t blk = STRBUF_INIT;
    for (int i = 0; i < 150; i++) {
        for (int j = 0; j < i; j++)
            strbuf_puts(&blk, " ");
        strbuf_printf(&blk, "k%d:\n", i);
    }
    parse_fails(strbuf_str(&blk), &err);
    assert_non_null(strstr(err.msg, "nesting"));
    strbuf_free(&blk);
}

/* Refusing a deep document must not cost more than reading a normal one:
 * a 40 KB manifest of 20000 nested lists is refused in well under a second,
 * not after libyaml has built the whole tree (which takes time quadratic in
 * the depth: seconds here, minutes at 100000 levels). */
static void deep_nesting_refused_quickly(void **state)
{
    (void)state;
    strbuf_t deep = STRBUF_INIT;
    strbuf_puts(&deep, "a: ");
    for (int i = 0; i < 20000; i++)
        strbuf_putc(&deep, '[');
    strbuf_putc(&deep, '1');
    for (int i = 0; i < 20000; i++)
        strbuf_putc(&deep, ']');
    strbuf_putc(&deep, '\n');
    err_t err;
    int64_t t0 = time_mono_ns();
    parse_fails(strbuf_str(&deep), &err);
    int64_t took_ms = (time_mono_ns() - t0) / NS_PER_MS;
    strbuf_free(&deep);
    assert_non_null(strstr(err.msg, "nesting"));
    int64_t limit = 500 * (RUNNING_ON_VALGRIND ? 20 : 1);
    if (took_ms > limit) fail_msg("refusing 20000 levels took %lld ms", (long long)took_ms);
}

static void load_file_names_the_file(void **state)
{
    (void)state;
    char path[] = "/tmp/wasmlet-test-manifest-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *bad = "kind: Pod\nspec: [\n";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    json_t *docs = NULL;
    err_t err;
    assert_int_equal(manifest_load_file(path, &docs, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "YAML line"));

    assert_int_equal(fs_write_atomic(path, "kind: Pod\n", 10, 0644, NULL), 0);
    assert_int_equal(manifest_load_file(path, &docs, &err), 0);
    assert_int_equal(json_array_size(docs), 1);
    json_decref(docs);
    unlink(path);

    assert_int_equal(manifest_load_file("/nonexistent/pod.yaml", &docs, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/pod.yaml"));
}

static void examples_parse(void **state)
{
    (void)state;
    /* Every shipped example manifest is one Pod. */
    const char *src = getenv("WASMLET_SOURCE");
    if (!src) src = ".";
    static const char *const names[] = {"hello",     "printenv", "files",         "exitcode",
                                        "trap",      "memhog",   "spin-deadline", "ticker",
                                        "crashloop", "badmodule"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *path = xasprintf("%s/examples/pods/%s.yaml", src, names[i]);
        json_t *docs = NULL;
        err_t err;
        if (manifest_load_file(path, &docs, &err) == -1) fail_msg("%s", err.msg);
        assert_int_equal(json_array_size(docs), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(docs, 0), "kind")),
                            "Pod");
        json_decref(docs);
        free(path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scalar_typing),
        cmocka_unit_test(block_scalars_and_structure),
        cmocka_unit_test(multi_document),
        cmocka_unit_test(json_input),
        cmocka_unit_test(yaml_errors_located),
        cmocka_unit_test(deep_nesting_refused),
        cmocka_unit_test(deep_nesting_refused_quickly),
        cmocka_unit_test(load_file_names_the_file),
        cmocka_unit_test(examples_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
