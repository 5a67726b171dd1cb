/* test_cli.c: unit tests for the command line: strict numeric options
 * (util/cli.c) and the commands that use them (node, run), which must stop
 * with status 2 and a message naming the option instead of reading
 * "--port x" as port 0; and the table of commands (cli/commands.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/commands.h"
#include "node/cmd.h"
#include "run/run.h"
#include "util/cli.h"
#include "util/fs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void strict_integers(void **state)
{
    (void)state;
    int64_t v = -7;
    assert_int_equal(cli_int("10250", 0, 65535, &v), 0);
    assert_int_equal(v, 10250);
    assert_int_equal(cli_int("0", 0, 65535, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cli_int("-3", -5, 5, &v), 0);
    assert_int_equal(v, -3);
    v = 42;
    const char *bad[] = {"x",   "",     " 5",    "5 ", "10k",
                         "1.5", "0x10", "65536", "-1", "99999999999999999999999",
                         "--1", "1e3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (cli_int(bad[i], 0, 65535, &v) != -1) fail_msg("\"%s\" was accepted", bad[i]);
        assert_int_equal(v, 42); /* untouched */
    }
    assert_int_equal(cli_int(NULL, 0, 1, &v), -1);
    int n = 0;
    assert_int_equal(cli_parse_int32("t", "n", "17", 1, 20, &n), 0);
    assert_int_equal(n, 17);
}

/* Runs fn(argc, argv) with stderr captured; returns its status and the
 * text (the caller frees). */
static int captured(int (*fn)(int, char **), int argc, char **argv, char **text)
{
    char path[] = "/tmp/wasmlet-test-cli-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    int rc = fn(argc, argv);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    assert_int_equal(fs_read_all(path, text, NULL, NULL), 0);
    unlink(path);
    return rc;
}

static void parse_message(void **state)
{
    (void)state;
    int64_t v;
    char path[] = "/tmp/wasmlet-test-cli-XXXXXX";
    int fd = mkstemp(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    int rc = cli_parse_int("node", "port", "x", 0, 65535, &v);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    char *text = NULL;
    assert_int_equal(fs_read_all(path, &text, NULL, NULL), 0);
    unlink(path);
    assert_int_equal(rc, -1);
    assert_string_equal(text, "wasmlet node: --port: \"x\" is not an integer from 0 to 65535\n");
    free(text);
}

typedef struct bad_opt {
    const char *opt, *value, *expect;
} bad_opt_t;

/* Every numeric option of `wasmlet node` refuses a value that is not a
 * number, before anything else happens (no kubeconfig is read: none is
 * even given to the first ones). */
static void node_options(void **state)
{
    (void)state;
    const bad_opt_t cases[] = {
        {"--port", "x", "--port: \"x\""},
        {"--port", "70000", "--port: \"70000\""},
        {"--max-pods", "10k", "--max-pods: \"10k\""},
        {"--reserved-cpu", "half", "--reserved-cpu: \"half\""},
        {"--reserved-memory", "lots", "--reserved-memory: \"lots\""},
        {"--container-log-max-size", "10Q", "--container-log-max-size: \"10Q\""},
        {"--container-log-max-files", "", "--container-log-max-files: \"\""},
        {"--backoff-initial", "1s", "--backoff-initial: \"1s\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *argv[] = {
            "node", "--kubeconfig", "/nonexistent", (char *)cases[i].opt, (char *)cases[i].value,
            NULL};
        char *text = NULL;
        int rc = captured(node_main, 5, argv, &text);
        if (rc != 2 || !strstr(text, cases[i].expect))
            fail_msg("%s %s: status %d, stderr: %s", cases[i].opt, cases[i].value, rc, text);
        assert_non_null(strstr(text, "wasmlet node: "));
        free(text);
    }
}

static void run_options(void **state)
{
    (void)state;
    const bad_opt_t cases[] = {
        {"--backoff-initial", "x", "wasmlet run: --backoff-initial: \"x\""},
        {"--backoff-max", "-5", "wasmlet run: --backoff-max: \"-5\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *argv[] = {
            "run", "-f", "/nonexistent.yaml", (char *)cases[i].opt, (char *)cases[i].value, NULL};
        char *text = NULL;
        int rc = captured(run_main, 5, argv, &text);
        if (rc != 2 || !strstr(text, cases[i].expect))
            fail_msg("%s %s: status %d, stderr: %s", cases[i].opt, cases[i].value, rc, text);
        free(text);
    }
}

static void command_table(void **state)
{
    (void)state;
    const char *names[] = {"node", "run", "push", "version"};
    for (size_t i = 0; i < 4; i++) {
        const cli_command_t *c = cli_command_find(names[i]);
        assert_non_null(c);
        assert_string_equal(c->name, names[i]);
        assert_non_null(c->main);
    }
    assert_ptr_equal(cli_command_find("--version"), cli_command_find("version"));
    assert_null(cli_command_find("nodes"));
    assert_ptr_equal(cli_command_find("node")->main, node_main);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cli_usage(f);
    fclose(f);
    assert_non_null(strstr(buf, "  run -f POD.yaml   run a Pod manifest"));
    assert_non_null(strstr(buf, "  push M.wasm REF   publish a module"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strict_integers), cmocka_unit_test(parse_message),
        cmocka_unit_test(node_options),    cmocka_unit_test(run_options),
        cmocka_unit_test(command_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
