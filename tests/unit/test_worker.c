/* test_worker.c: unit tests for pod/worker.h, driving real pods of the
 * example modules through a fake host: images "pulled" from
 * $WASMLET_EXAMPLES, every status change recorded as a JSON snapshot, every
 * Event and output line recorded, so that a test can check not only how a
 * pod ended but what it went through (restarts, CrashLoopBackOff, the order
 * of init and app containers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/manifest.h"
#include "metrics/registry.h"
#include "kube/pod_spec.h"
#include "log/crilog.h"
#include "pod/state.h"
#include "pod/worker.h"
#include "pod/worker_priv.h"
#include "util/diag.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"
#include "wasm/wasmrt.h"
#include "wasm_signals.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

static int64_t slow_factor(void)
{
    const char *s = getenv("WASMLET_TEST_SLOW");
    if (s && atoi(s) > 0) return atoi(s);
    return RUNNING_ON_VALGRIND ? 20 : 1;
}

/* --- the fake host ---------------------------------------------------------- */

typedef struct rec {
    pthread_mutex_t lock;
    json_t *snapshots; /* every status the worker published, in order */
    json_t *events;    /* [{type, reason, fieldPath, message}] */
    json_t *lines;     /* ["container|stream|line"] */
    int pulls;
    bool pull_sets_image_id;
    bool images_present; /* for host.image_present, when the test sets it */
    json_t *configmaps;  /* for host.lookup; NULL: no lookup callback */
} rec_t;

typedef struct fixture {
    pod_worker_t *w; /* the test's current pod, stopped and freed by teardown */
    json_t *garbage; /* statuses the test looked at, freed by teardown (so that
                        a failing assertion leaks nothing) */
    wasmrt_t *rt;
    char *tmp;
    rec_t rec;
    pod_host_t host;
} fixture_t;

static const char *examples_dir(void)
{
    const char *dir = getenv("WASMLET_EXAMPLES");
    return dir && *dir ? dir : "build/examples";
}

static int fake_pull(void *ctx, const podspec_t *pod, const podspec_container_t *c,
                     pod_pulled_t *out, err_t *err)
{
    (void)pod;
    rec_t *r = ctx;
    pthread_mutex_lock(&r->lock);
    r->pulls++;
    bool set_id = r->pull_sets_image_id;
    pthread_mutex_unlock(&r->lock);
    char *path = xasprintf("%s/%s", examples_dir(), c->image);
    if (access(path, R_OK) != 0) {
        err_errno(err, "image %s not found", c->image);
        free(path);
        return -1;
    }
    out->module_path = path;
    out->image_id = set_id ? xasprintf("registry.example/%s@sha256:feed", c->image) : NULL;
    return 0;
}

static bool fake_image_present(void *ctx, const podspec_container_t *c)
{
    (void)c;
    rec_t *r = ctx;
    pthread_mutex_lock(&r->lock);
    bool present = r->images_present;
    pthread_mutex_unlock(&r->lock);
    return present;
}

static int fake_lookup(void *ctx, const char *ns, bool secret, const char *name, json_t **data,
                       err_t *err)
{
    (void)ns;
    (void)err;
    rec_t *r = ctx;
    json_t *v = secret ? NULL : json_object_get(r->configmaps, name);
    *data = v ? json_deep_copy(v) : NULL;
    return 0;
}

static void on_status(void *ctx, pod_worker_t *w)
{
    rec_t *r = ctx;
    json_t *st = pod_worker_status_json(w);
    pthread_mutex_lock(&r->lock);
    json_object_set_new(st, "_at_ms", json_integer(time_mono_ns() / NS_PER_MS));
    json_array_append_new(r->snapshots, st);
    pthread_mutex_unlock(&r->lock);
}

static void on_event(void *ctx, pod_worker_t *w, const char *type, const char *reason,
                     const char *field_path, const char *message)
{
    (void)w;
    rec_t *r = ctx;
    pthread_mutex_lock(&r->lock);
    json_array_append_new(r->events,
                          json_pack("{s:s, s:s, s:s?, s:s}", "type", type, "reason", reason,
                                    "fieldPath", field_path, "message", message));
    pthread_mutex_unlock(&r->lock);
}

static void on_output(void *ctx, pod_worker_t *w, const char *container, int stream,
                      const char *line, size_t len)
{
    (void)w;
    rec_t *r = ctx;
    char *s = xasprintf("%s|%d|%.*s", container, stream, (int)len, line);
    pthread_mutex_lock(&r->lock);
    json_array_append_new(r->lines, json_string(s));
    pthread_mutex_unlock(&r->lock);
    free(s);
}

static int setup(void **state)
{
    fixture_t *f = xcalloc(1, sizeof *f);
    err_t err;
    if (wasmrt_open(NULL, &f->rt, &err) == -1) {
        fprintf(stderr, "wasmrt_open: %s\n", err.msg);
        free(f);
        return -1;
    }
    char tmpl[] = "/tmp/wasmlet-test-worker-XXXXXX";
    f->tmp = xstrdup(mkdtemp(tmpl));
    pthread_mutex_init(&f->rec.lock, NULL);
    f->rec.snapshots = json_array();
    f->rec.events = json_array();
    f->rec.lines = json_array();
    f->garbage = json_array();
    f->host = (pod_host_t){
        .ctx = &f->rec,
        .rt = f->rt,
        .data_dir = f->tmp,
        .node_name = "test-node",
        .host_ip = "192.0.2.1",
        .backoff_initial_ms = 50,
        .backoff_max_ms = 200,
        .node_allocatable_cpu = 2000,
        .node_allocatable_memory = INT64_C(1) << 30,
        .pull = fake_pull,
        .status_changed = on_status,
        .event = on_event,
        .output = on_output,
    };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->w) { /* a test failed with its pod running */
        pod_worker_stop(f->w, NULL, NULL);
        pod_worker_free(f->w);
    }
    json_decref(f->garbage);
    json_decref(f->rec.snapshots);
    json_decref(f->rec.events);
    json_decref(f->rec.lines);
    json_decref(f->rec.configmaps);
    pthread_mutex_destroy(&f->rec.lock);
    wasmrt_close(f->rt);
    fs_rm_rf(f->tmp, NULL);
    free(f->tmp);
    free(f);
    return 0;
}

/* Every test starts from an empty record (the fixture is per test). */
static podspec_t *spec_of(const char *yaml)
{
    json_t *docs;
    err_t err;
    if (manifest_parse(yaml, strlen(yaml), &docs, &err) == -1) fail_msg("%s", err.msg);
    podspec_t *spec;
    if (podspec_parse(json_array_get(docs, 0), &spec, &err) == -1) fail_msg("%s", err.msg);
    json_decref(docs);
    return spec;
}

static pod_worker_t *start(fixture_t *f, const char *yaml, json_t *resume)
{
    wasm_signals_restore();
    assert_null(f->w);
    f->w = pod_worker_start(&f->host, spec_of(yaml), resume);
    return f->w;
}

static void done_with(fixture_t *f, pod_worker_t *w)
{
    assert_ptr_equal(f->w, w);
    pod_worker_free(w);
    f->w = NULL;
}

/* Waits for the worker to finish; fails the test after timeout_ms. */
static void wait_done(pod_worker_t *w, int64_t timeout_ms)
{
    if (!pod_worker_wait(w, timeout_ms * slow_factor()))
        fail_msg("the pod did not finish within %lld ms", (long long)timeout_ms);
}

/* A copy of the snapshots recorded so far (freed by teardown). */
static json_t *snapshots(fixture_t *f)
{
    pthread_mutex_lock(&f->rec.lock);
    json_t *s = json_deep_copy(f->rec.snapshots);
    pthread_mutex_unlock(&f->rec.lock);
    json_array_append_new(f->garbage, s);
    return s;
}

/* The pod's status now (freed by teardown). */
static json_t *status_of(fixture_t *f, pod_worker_t *w)
{
    json_t *st = pod_worker_status_json(w);
    json_array_append_new(f->garbage, st);
    return st;
}

static bool has_line(fixture_t *f, const char *line)
{
    pthread_mutex_lock(&f->rec.lock);
    bool found = false;
    size_t i;
    json_t *v;
    json_array_foreach(f->rec.lines, i, v) found |= strcmp(json_string_value(v), line) == 0;
    pthread_mutex_unlock(&f->rec.lock);
    return found;
}

static size_t count_lines_of(fixture_t *f, const char *container)
{
    size_t n = 0, i, len = strlen(container);
    json_t *v;
    pthread_mutex_lock(&f->rec.lock);
    json_array_foreach(f->rec.lines, i, v)
    {
        const char *s = json_string_value(v);
        n += strncmp(s, container, len) == 0 && s[len] == '|';
    }
    pthread_mutex_unlock(&f->rec.lock);
    return n;
}

static bool has_event(fixture_t *f, const char *reason, const char *field_path)
{
    pthread_mutex_lock(&f->rec.lock);
    bool found = false;
    size_t i;
    json_t *v;
    json_array_foreach(f->rec.events, i, v)
    {
        const char *fp = json_string_value(json_object_get(v, "fieldPath"));
        if (strcmp(json_string_value(json_object_get(v, "reason")), reason) == 0 &&
            (!field_path || (fp && strcmp(fp, field_path) == 0)))
            found = true;
    }
    pthread_mutex_unlock(&f->rec.lock);
    return found;
}

/* status.containerStatuses[i] (or initContainerStatuses). */
static json_t *cstatus(json_t *status, bool init, size_t i)
{
    return json_array_get(
        json_object_get(status, init ? "initContainerStatuses" : "containerStatuses"), i);
}

/* The key of the state object: "waiting", "running" or "terminated". */
static const char *state_kind(json_t *cs)
{
    json_t *st = json_object_get(cs, "state");
    if (json_object_get(st, "running")) return "running";
    if (json_object_get(st, "terminated")) return "terminated";
    if (json_object_get(st, "waiting")) return "waiting";
    return "?";
}

static json_t *terminated(json_t *cs)
{
    return json_object_get(json_object_get(cs, "state"), "terminated");
}

static const char *sget(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static void dump_and_fail(json_t *status, const char *what)
{
    char *s = json_dumps(status, JSON_INDENT(1));
    fail_msg("%s:\n%s", what, s);
}

/* Waits until the first app container is running. */
static void wait_running(fixture_t *f, pod_worker_t *w, int64_t timeout_ms)
{
    int64_t until = time_mono_ns() + timeout_ms * slow_factor() * NS_PER_MS;
    while (time_mono_ns() < until) {
        json_t *st = pod_worker_status_json(w);
        bool running = strcmp(state_kind(cstatus(st, false, 0)), "running") == 0;
        json_decref(st);
        if (running) return;
        time_sleep_ms(5);
    }
    (void)f;
    fail_msg("the container did not start running within %lld ms", (long long)timeout_ms);
}

/* Waits until container i (init containers first) has restarted at least
 * min times; returns its count. A start under load may take a while (the
 * first run compiles the module), so tests wait for events, not for time. */
static int wait_restarts(pod_worker_t *w, size_t i, int min, int64_t timeout_ms)
{
    pod_container_summary_t sums[8];
    int64_t until = time_mono_ns() + timeout_ms * slow_factor() * NS_PER_MS;
    for (;;) {
        size_t n = pod_worker_summaries(w, sums, 8);
        assert_true(i < n);
        if (sums[i].restart_count >= min) return sums[i].restart_count;
        if (time_mono_ns() >= until)
            fail_msg("%s: %d restarts after %lld ms, want %d", sums[i].name, sums[i].restart_count,
                     (long long)timeout_ms, min);
        time_sleep_ms(10);
    }
}

#define HEAD "apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: ns1, uid: %s}\nspec:\n"

/* --- lifecycle ----------------------------------------------------------------- */

static void never_succeeds(void **state)
{
    fixture_t *f = *state;
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\nmetadata: {name: hello}\n"
                            "spec:\n  restartPolicy: Never\n"
                            "  containers: [{name: hello, image: hello.wasm}]\n",
                            NULL);
    wait_done(w, 5000);
    assert_true(pod_worker_finished(w));
    assert_string_equal(pod_worker_phase(w), "Succeeded");
    assert_string_equal(pod_worker_spec(w)->name, "hello");
    json_t *st = status_of(f, w);
    assert_string_equal(sget(st, "phase"), "Succeeded");
    json_t *cs = cstatus(st, false, 0);
    json_t *t = terminated(cs);
    if (!t) dump_and_fail(st, "not terminated");
    assert_int_equal(json_integer_value(json_object_get(t, "exitCode")), 0);
    assert_string_equal(sget(t, "reason"), "Completed");
    assert_int_equal(json_integer_value(json_object_get(cs, "restartCount")), 0);
    assert_true(has_line(f, "hello|1|Hello from wasmlet!"));
    assert_true(has_event(f, "Pulled", "spec.containers{hello}"));
    assert_true(has_event(f, "Started", "spec.containers{hello}"));

    /* The published history ends with the final status, and the phase only
     * moves forward: Pending, Running, Succeeded. */
    json_t *snaps = snapshots(f);
    assert_true(json_array_size(snaps) >= 2);
    json_t *last = json_array_get(snaps, json_array_size(snaps) - 1);
    assert_string_equal(sget(last, "phase"), "Succeeded");
    int rank = 0;
    size_t i;
    json_t *s;
    json_array_foreach(snaps, i, s)
    {
        const char *p = sget(s, "phase");
        int r = strcmp(p, "Pending") == 0     ? 0
                : strcmp(p, "Running") == 0   ? 1
                : strcmp(p, "Succeeded") == 0 ? 2
                                              : -1;
        if (r < rank) dump_and_fail(s, "phase went backwards");
        rank = r;
    }
    done_with(f, w);
}

/* The message of the first Event of this reason, "" when there is none. */
static const char *event_message(fixture_t *f, const char *reason)
{
    const char *msg = "";
    size_t i;
    json_t *v;
    pthread_mutex_lock(&f->rec.lock);
    json_array_foreach(f->rec.events, i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "reason")), reason) == 0) {
            msg = json_string_value(json_object_get(v, "message"));
            break;
        }
    }
    pthread_mutex_unlock(&f->rec.lock);
    return msg;
}

/* The kubelet's pull Events: "Pulling" then "Successfully pulled" when the
 * image is not on the node, one "already present on machine" when it is. */
static void pull_events_say_whether_the_registry_was_asked(void **state)
{
    fixture_t *f = *state;
    f->host.image_present = fake_image_present;
    const char *yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: pulls}\n"
                       "spec:\n  restartPolicy: Never\n"
                       "  containers: [{name: hello, image: hello.wasm}]\n";
    pod_worker_t *w = start(f, yaml, NULL);
    wait_done(w, 5000);
    assert_true(has_event(f, "Pulling", "spec.containers{hello}"));
    assert_non_null(strstr(event_message(f, "Pulled"), "Successfully pulled image \"hello.wasm\""));
    done_with(f, w);

    pthread_mutex_lock(&f->rec.lock);
    json_array_clear(f->rec.events);
    f->rec.images_present = true;
    pthread_mutex_unlock(&f->rec.lock);
    w = start(f, yaml, NULL);
    wait_done(w, 5000);
    assert_false(has_event(f, "Pulling", NULL));
    assert_string_equal(event_message(f, "Pulled"),
                        "Container image \"hello.wasm\" already present on machine");
    assert_true(has_event(f, "Started", "spec.containers{hello}"));
    done_with(f, w);
}

/* A stop that comes after the end (a deadline or deletion racing with
 * completion) does not rewrite how the pod ended. */
static void late_stop_keeps_outcome(void **state)
{
    fixture_t *f = *state;
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\nmetadata: {name: late}\n"
                            "spec:\n  restartPolicy: Never\n"
                            "  containers: [{name: hello, image: hello.wasm}]\n",
                            NULL);
    wait_done(w, 5000);
    assert_string_equal(pod_worker_phase(w), "Succeeded");
    pod_worker_stop(w, "DeadlineExceeded", "too late");
    assert_string_equal(pod_worker_phase(w), "Succeeded");
    json_t *st = status_of(f, w);
    assert_string_equal(sget(st, "phase"), "Succeeded");
    assert_null(json_object_get(st, "reason"));
    done_with(f, w);
}

static void summaries_and_failures(void **state)
{
    fixture_t *f = *state;
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\nmetadata: {name: mixed}\n"
                            "spec:\n  restartPolicy: Never\n"
                            "  containers:\n"
                            "    - {name: ok, image: hello.wasm}\n"
                            "    - {name: three, image: exitcode.wasm, args: ['3', boom]}\n"
                            "    - {name: trap, image: trap.wasm}\n"
                            "    - name: oom\n"
                            "      image: memhog.wasm\n"
                            "      resources: {limits: {memory: 16Mi}}\n"
                            "    - {name: bad, image: bad/notwasm.wasm}\n",
                            NULL);
    wait_done(w, 10000);
    /* Any failed container fails a Never pod. */
    assert_string_equal(pod_worker_phase(w), "Failed");
    pod_container_summary_t sums[8];
    size_t n = pod_worker_summaries(w, sums, 8);
    assert_int_equal(n, 5);
    static const struct {
        const char *name;
        int code;
        const char *reason;
        const char *msg;
    } want[] = {
        {"ok", 0, "Completed", ""},
        {"three", 3, "Error", ""},
        {"trap", 134, "Error", "unreachable"},
        {"oom", 137, "OOMKilled", "limit"},
        {"bad", 128, "StartError", "not a WebAssembly module"},
    };
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(sums[i].name, want[i].name);
        assert_false(sums[i].init);
        assert_int_equal(sums[i].restart_count, 0);
        if (sums[i].exit_code != want[i].code || strcmp(sums[i].reason, want[i].reason) != 0)
            fail_msg("%s: exit %d %s, want %d %s", sums[i].name, sums[i].exit_code, sums[i].reason,
                     want[i].code, want[i].reason);
        if (want[i].msg[0] && !strstr(sums[i].message, want[i].msg))
            fail_msg("%s: message \"%s\" lacks \"%s\"", sums[i].name, sums[i].message, want[i].msg);
    }
    assert_true(has_line(f, "three|2|boom"));
    assert_true(has_line(f, "trap|1|about to trap"));
    assert_true(has_event(f, "OOMKilled", "spec.containers{oom}"));
    /* The status carries the same. */
    json_t *st = status_of(f, w);
    json_t *t = terminated(cstatus(st, false, 2));
    assert_int_equal(json_integer_value(json_object_get(t, "exitCode")), 134);
    assert_non_null(strstr(sget(t, "message"), "unreachable"));
    done_with(f, w);
}

/* Counts, over the snapshots, the largest restartCount and whether some
 * snapshot showed the given waiting reason and a lastState terminated with
 * exit code last_code. */
static void restart_history(json_t *snaps, const char *waiting_reason, int last_code,
                            int *max_restarts, bool *saw_waiting, bool *saw_last)
{
    *max_restarts = 0;
    *saw_waiting = *saw_last = false;
    size_t i;
    json_t *s;
    json_array_foreach(snaps, i, s)
    {
        json_t *cs = cstatus(s, false, 0);
        int rc = (int)json_integer_value(json_object_get(cs, "restartCount"));
        if (rc > *max_restarts) *max_restarts = rc;
        json_t *wt = json_object_get(json_object_get(cs, "state"), "waiting");
        if (wt && strcmp(sget(wt, "reason"), waiting_reason) == 0) {
            *saw_waiting = true;
            /* The kubelet's message names the delay and the container. */
            if (!strstr(sget(wt, "message"), "back-off")) dump_and_fail(s, "odd back-off message");
        }
        json_t *lt = json_object_get(json_object_get(cs, "lastState"), "terminated");
        if (lt && json_integer_value(json_object_get(lt, "exitCode")) == last_code)
            *saw_last = true;
    }
}

static void on_failure_crash_loop(void **state)
{
    fixture_t *f = *state;
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\nmetadata: {name: crashloop}\n"
                            "spec:\n  restartPolicy: OnFailure\n"
                            "  containers:\n"
                            "    - {name: c, image: exitcode.wasm, args: ['1', failing]}\n",
                            NULL);
    /* From its first restart on, count the restarts in one second. */
    int first = wait_restarts(w, 0, 1, 5000);
    int64_t t0 = time_mono_ns();
    time_sleep_ms(slow_factor() * 1000);
    assert_false(pod_worker_finished(w));
    /* A restarting container keeps the pod Running. */
    assert_string_equal(pod_worker_phase(w), "Running");
    int64_t elapsed_ms = (time_mono_ns() - t0) / NS_PER_MS;
    json_t *snaps = snapshots(f);
    int max_restarts;
    bool saw_waiting, saw_last;
    restart_history(snaps, "CrashLoopBackOff", 1, &max_restarts, &saw_waiting, &saw_last);
    /* Back-off after the first (immediate) restart: 50, 100, 200, 200 ...
     * ms. In 1 s that is about 6 restarts; without back-off it would be
     * hundreds, without the 200 ms cap 4. */
    int in_window = max_restarts - first;
    printf("crash loop: %d restarts in %lld ms\n", in_window, (long long)elapsed_ms);
    assert_true(in_window >= 3);
    if (slow_factor() == 1) assert_true(in_window <= 12);
    assert_true(saw_waiting);
    assert_true(saw_last);
    assert_true(has_event(f, "BackOff", "spec.containers{c}"));
    assert_true(count_lines_of(f, "c") >= 4); /* each run said "failing" */

    int64_t s0 = time_mono_ns();
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 1000);
    assert_true(time_mono_ns() - s0 < 200 * NS_PER_MS * slow_factor());
    /* Stopped while it waited out its back-off (the usual case): the last
     * run's exit code stays; stopped while running: 137. */
    json_t *st = status_of(f, w);
    json_t *t = terminated(cstatus(st, false, 0));
    if (!t) dump_and_fail(st, "not terminated after the stop");
    int code = (int)json_integer_value(json_object_get(t, "exitCode"));
    if (code != 1 && code != 137) dump_and_fail(st, "odd exit code after the stop");
    done_with(f, w);
}

static void always_restarts_success(void **state)
{
    fixture_t *f = *state;
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\nmetadata: {name: always}\n"
                            "spec:\n  restartPolicy: Always\n"
                            "  containers: [{name: c, image: exitcode.wasm, args: ['0']}]\n",
                            NULL);
    wait_restarts(w, 0, 3, 5000);
    assert_false(pod_worker_finished(w));
    json_t *snaps = snapshots(f);
    int max_restarts;
    bool saw_waiting, saw_last;
    restart_history(snaps, "CrashLoopBackOff", 0, &max_restarts, &saw_waiting, &saw_last);
    assert_true(max_restarts >= 2);
    assert_true(saw_waiting); /* the kubelet backs off even after exit 0 */
    assert_true(saw_last);
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 1000);
    done_with(f, w);

    /* OnFailure with success: no restart. */
    json_array_clear(f->rec.snapshots);
    w = start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: onfail-ok}\n"
              "spec:\n  restartPolicy: OnFailure\n"
              "  containers: [{name: c, image: exitcode.wasm, args: ['0']}]\n",
              NULL);
    wait_done(w, 5000);
    assert_string_equal(pod_worker_phase(w), "Succeeded");
    pod_container_summary_t sum;
    assert_int_equal(pod_worker_summaries(w, &sum, 1), 1);
    assert_int_equal(sum.restart_count, 0);
    done_with(f, w);
}

static void init_containers_in_order(void **state)
{
    fixture_t *f = *state;
    pod_worker_t *w =
        start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: inits}\n"
              "spec:\n  restartPolicy: Never\n"
              "  volumes: [{name: data, emptyDir: {}}]\n"
              "  initContainers:\n"
              "    - name: first\n"
              "      image: files.wasm\n"
              "      args: [write, /data/log, one]\n"
              "      volumeMounts: [{name: data, mountPath: /data}]\n"
              "    - name: second\n"
              "      image: files.wasm\n"
              "      args: [append, /data/log, '-two']\n"
              "      volumeMounts: [{name: data, mountPath: /data}]\n"
              "    - name: third\n"
              "      image: sleeper.wasm\n"
              "      args: ['0.1']\n"
              "  containers:\n"
              "    - name: reader\n"
              "      image: files.wasm\n"
              "      args: [cat, /data/log]\n"
              "      volumeMounts: [{name: data, mountPath: /data, readOnly: true}]\n",
              NULL);
    wait_done(w, 5000);
    assert_string_equal(pod_worker_phase(w), "Succeeded");
    /* The file shows the order; cat prints it without a newline, which the
     * worker hands on as the container's last line. */
    assert_true(has_line(f, "reader|1|one-two"));
    json_t *st = status_of(f, w);
    for (size_t i = 0; i < 3; i++) {
        json_t *t = terminated(cstatus(st, true, i));
        if (!t) dump_and_fail(st, "init container not terminated");
        assert_int_equal(json_integer_value(json_object_get(t, "exitCode")), 0);
        assert_string_equal(sget(t, "reason"), "Completed");
    }

    /* In no published status did a container run before the init containers
     * before it had completed. */
    json_t *snaps = snapshots(f);
    size_t i;
    json_t *s;
    json_array_foreach(snaps, i, s)
    {
        for (size_t k = 0; k < 4; k++) {
            json_t *cs = k < 3 ? cstatus(s, true, k) : cstatus(s, false, 0);
            if (strcmp(state_kind(cs), "waiting") == 0) continue;
            for (size_t j = 0; j < k && j < 3; j++)
                if (strcmp(state_kind(cstatus(s, true, j)), "terminated") != 0)
                    dump_and_fail(s, "a container started before an earlier init completed");
        }
        /* Initialized is True only once all init containers completed. */
        json_t *c;
        size_t ci;
        json_array_foreach(json_object_get(s, "conditions"), ci, c)
        {
            if (strcmp(sget(c, "type"), "Initialized") == 0 &&
                strcmp(sget(c, "status"), "True") == 0 &&
                strcmp(state_kind(cstatus(s, true, 2)), "terminated") != 0)
                dump_and_fail(s, "Initialized before the last init container ended");
        }
    }
    done_with(f, w);
}

static void failing_init_fails_pod(void **state)
{
    fixture_t *f = *state;
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\nmetadata: {name: badinit}\n"
                            "spec:\n  restartPolicy: Never\n"
                            "  initContainers:\n"
                            "    - {name: setup, image: exitcode.wasm, args: ['4', nope]}\n"
                            "    - {name: never, image: hello.wasm}\n"
                            "  containers: [{name: app, image: hello.wasm}]\n",
                            NULL);
    wait_done(w, 5000);
    assert_string_equal(pod_worker_phase(w), "Failed");
    assert_true(has_line(f, "setup|2|nope"));
    /* Neither the next init container nor the app ever ran. */
    assert_int_equal(count_lines_of(f, "never"), 0);
    assert_int_equal(count_lines_of(f, "app"), 0);
    assert_false(has_event(f, "Started", "spec.containers{app}"));
    assert_false(has_event(f, "Started", "spec.initContainers{never}"));
    json_t *st = status_of(f, w);
    json_t *t = terminated(cstatus(st, true, 0));
    if (!t) dump_and_fail(st, "failed init not terminated");
    assert_int_equal(json_integer_value(json_object_get(t, "exitCode")), 4);
    assert_int_equal(json_integer_value(json_object_get(cstatus(st, true, 0), "restartCount")), 0);
    /* The app container never started. */
    json_t *app = cstatus(st, false, 0);
    assert_false(json_is_true(json_object_get(app, "started")));
    assert_null(json_object_get(json_object_get(app, "state"), "running"));
    done_with(f, w);

    /* With OnFailure the init container is retried instead. */
    w = start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: retryinit}\n"
              "spec:\n  restartPolicy: OnFailure\n"
              "  initContainers: [{name: setup, image: exitcode.wasm, args: ['4']}]\n"
              "  containers: [{name: app2, image: hello.wasm}]\n",
              NULL);
    wait_restarts(w, 0, 2, 5000);
    assert_false(pod_worker_finished(w));
    assert_string_equal(pod_worker_phase(w), "Pending");
    pod_container_summary_t sums[2];
    assert_int_equal(pod_worker_summaries(w, sums, 2), 2);
    assert_true(sums[0].init);
    assert_true(sums[0].restart_count >= 2);
    assert_int_equal(count_lines_of(f, "app2"), 0);
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 1000);
    done_with(f, w);
}

static void sidecar_runs_alongside(void **state)
{
    fixture_t *f = *state;
    /* Compiled beforehand, so that the time measured is the pod's own. */
    wasmrt_module_t *mods[2];
    err_t err;
    for (int i = 0; i < 2; i++) {
        char *path = xasprintf("%s/%s", examples_dir(), i ? "sleeper.wasm" : "ticker.wasm");
        if (wasmrt_load_file(f->rt, path, &mods[i], NULL, &err) == -1) fail_msg("%s", err.msg);
        free(path);
    }
    int64_t t0 = time_mono_ns();
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\nmetadata: {name: sidecar}\n"
                            "spec:\n  restartPolicy: Never\n"
                            "  initContainers:\n"
                            "    - name: side\n"
                            "      image: ticker.wasm\n"
                            "      args: ['50']\n"
                            "      restartPolicy: Always\n"
                            "  containers: [{name: app, image: sleeper.wasm, args: ['0.4']}]\n",
                            NULL);
    wait_done(w, 5000);
    int64_t took = (time_mono_ns() - t0) / NS_PER_MS;
    assert_string_equal(pod_worker_phase(w), "Succeeded");
    /* The app starts as soon as the sidecar runs: the pod takes the app's
     * 0.4 s and little more. */
    if (took >= 1000 * slow_factor())
        fail_msg("the sidecar pod took %lld ms for an app of 400 ms", (long long)took);
    /* The sidecar ticked while the app slept (~8 ticks in 0.4 s). */
    size_t ticks = count_lines_of(f, "side");
    printf("sidecar: %zu lines while the app ran; pod took %lld ms\n", ticks, (long long)took);
    assert_true(ticks >= 4);
    assert_true(has_line(f, "side|2|ticker started"));
    assert_true(has_line(f, "app|1|woke"));
    json_t *st = status_of(f, w);
    json_t *side = cstatus(st, true, 0);
    if (!terminated(side)) dump_and_fail(st, "sidecar not terminated");
    assert_int_equal(json_integer_value(json_object_get(terminated(side), "exitCode")), 137);
    json_t *app = terminated(cstatus(st, false, 0));
    assert_int_equal(json_integer_value(json_object_get(app, "exitCode")), 0);

    /* Some published status showed both running at once. */
    json_t *snaps = snapshots(f);
    bool both = false;
    size_t i;
    json_t *s;
    json_array_foreach(snaps, i, s) both |=
        strcmp(state_kind(cstatus(s, true, 0)), "running") == 0 &&
        strcmp(state_kind(cstatus(s, false, 0)), "running") == 0;
    assert_true(both);
    done_with(f, w);
    wasmrt_module_release(mods[0]);
    wasmrt_module_release(mods[1]);
}

static void deadline_exceeded(void **state)
{
    fixture_t *f = *state;
    int64_t t0 = time_mono_ns();
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\nmetadata: {name: spin}\n"
                            "spec:\n  restartPolicy: Always\n  activeDeadlineSeconds: 1\n"
                            "  containers: [{name: spin, image: spin.wasm}]\n",
                            NULL);
    wait_done(w, 3000);
    int64_t took = (time_mono_ns() - t0) / NS_PER_MS;
    printf("deadline 1 s: pod ended after %lld ms\n", (long long)took);
    assert_true(took >= 950);
    assert_true(took < 1500 * slow_factor());
    assert_string_equal(pod_worker_phase(w), "Failed");
    json_t *st = status_of(f, w);
    assert_string_equal(sget(st, "reason"), "DeadlineExceeded");
    json_t *t = terminated(cstatus(st, false, 0));
    if (!t) dump_and_fail(st, "not terminated");
    assert_int_equal(json_integer_value(json_object_get(t, "exitCode")), 137);
    /* A deadline is not a restart, even under Always. */
    assert_int_equal(json_integer_value(json_object_get(cstatus(st, false, 0), "restartCount")), 0);
    assert_true(has_event(f, "DeadlineExceeded", NULL));
    done_with(f, w);
}

static int task_count(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) fail_msg("cannot read /proc/self/task");
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A running pod holds no thread of its own, only its running containers'
 * (the pod thread hands it to the pod runner once its app containers
 * started); its end, by a stop or by its last app container, still comes
 * and publishes FINISHED. */
static void running_pod_holds_only_container_threads(void **state)
{
    fixture_t *f = *state;
    /* The runner's threads start with its first use: use it once first,
     * so they are in the base count. */
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\nmetadata: {name: warm}\n"
                            "spec:\n  restartPolicy: Never\n"
                            "  containers: [{name: a, image: sleeper.wasm, args: ['3600']}]\n",
                            NULL);
    wait_running(f, w, 5000);
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 2000);
    done_with(f, w);
    time_sleep_ms(50);
    int base = task_count();
    w = start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: two}\n"
              "spec:\n  restartPolicy: Never\n"
              "  containers:\n"
              "    - {name: a, image: sleeper.wasm, args: ['3600']}\n"
              "    - {name: b, image: sleeper.wasm, args: ['1']}\n",
              NULL);
    wait_running(f, w, 5000);
    int64_t until = time_mono_ns() + 3000 * slow_factor() * NS_PER_MS;
    int now = task_count();
    while (now != base + 2 && time_mono_ns() < until) {
        time_sleep_ms(5);
        now = task_count();
    }
    printf("threads: %d idle, %d with a pod of two running containers\n", base, now);
    assert_int_equal(now, base + 2);
    /* b ends by itself after a second: its thread goes, the pod goes on. */
    until = time_mono_ns() + 5000 * slow_factor() * NS_PER_MS;
    while (task_count() != base + 1 && time_mono_ns() < until)
        time_sleep_ms(10);
    assert_int_equal(task_count(), base + 1);
    assert_false(pod_worker_finished(w));
    int64_t t0 = time_mono_ns();
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 1000);
    printf("stop of a handed-over pod: %.1f ms\n", (double)(time_mono_ns() - t0) / 1e6);
    assert_true(time_mono_ns() - t0 < 200 * NS_PER_MS * slow_factor());
    assert_string_equal(pod_worker_phase(w), "Failed"); /* a killed run under Never */
    done_with(f, w);

    /* Its last app container ending ends it, without a stop. */
    w = start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: short}\n"
              "spec:\n  restartPolicy: Never\n"
              "  containers: [{name: a, image: sleeper.wasm, args: ['1']}]\n",
              NULL);
    wait_running(f, w, 5000);
    wait_done(w, 5000);
    assert_string_equal(pod_worker_phase(w), "Succeeded");
    done_with(f, w);
    until = time_mono_ns() + 2000 * slow_factor() * NS_PER_MS;
    while (task_count() != base && time_mono_ns() < until)
        time_sleep_ms(10);
    assert_int_equal(task_count(), base);
}

/* Mappings of exactly `size` bytes, readable and writable, not backed by
 * a file: with size the default thread stack size, the stacks of pod
 * threads (container threads' stacks are sized for wasm, larger). */
static int anon_mappings_of(size_t size)
{
    FILE *fp = fopen("/proc/self/maps", "r");
    if (!fp) fail_msg("cannot read /proc/self/maps");
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, fp)) {
        unsigned long lo, hi;
        char perms[8];
        int used = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s%n", &lo, &hi, perms, &used) < 3) continue;
        const char *rest = line + used;
        while (*rest == ' ')
            rest++;
        if (hi - lo == size && strncmp(perms, "rw", 2) == 0 && (*rest == '\n' || !*rest)) n++;
    }
    fclose(fp);
    return n;
}

/* A pod thread that handed its pod over leaves nothing behind: not its
 * stack either (an ended thread nobody has joined yet keeps its stack
 * mapped, some 20 KiB resident, for as long as the pod runs). Six pods
 * running: their pod threads' stacks are at most the ones glibc keeps
 * for reuse, not one per pod. */
static void handed_over_pod_keeps_no_thread_stack(void **state)
{
    fixture_t *f = *state;
    pthread_attr_t attr;
    size_t stack = 0;
    pthread_getattr_default_np(&attr);
    pthread_attr_getstacksize(&attr, &stack);
    pthread_attr_destroy(&attr);
    int base = anon_mappings_of(stack);
    enum { PODS = 6 };
    pod_worker_t *ws[PODS];
    for (int i = 0; i < PODS; i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml,
                 "apiVersion: v1\nkind: Pod\nmetadata: {name: idle%d}\n"
                 "spec:\n  restartPolicy: Never\n"
                 "  containers: [{name: a, image: sleeper.wasm, args: ['3600']}]\n",
                 i);
        wasm_signals_restore();
        ws[i] = pod_worker_start(&f->host, spec_of(yaml), NULL); /* the fixture holds one */
        wait_running(f, ws[i], 5000);
    }
    /* Each pod thread returns right after its containers started. */
    int64_t until = time_mono_ns() + 3000 * slow_factor() * NS_PER_MS;
    int now = anon_mappings_of(stack);
    while (now > base + 2 && time_mono_ns() < until) {
        time_sleep_ms(10);
        now = anon_mappings_of(stack);
    }
    printf("default-size stacks: %d before, %d with %d pods running\n", base, now, PODS);
    assert_true(now <= base + 2);
    for (int i = 0; i < PODS; i++) {
        pod_worker_stop(ws[i], NULL, NULL);
        wait_done(ws[i], 2000);
        pod_worker_free(ws[i]);
    }
}

/* activeDeadlineSeconds counts from the pod's start, init containers
 * included: an init container that never ends must not outlive it. */
static void deadline_covers_init_containers(void **state)
{
    fixture_t *f = *state;
    int64_t t0 = time_mono_ns();
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\nmetadata: {name: spininit}\n"
                            "spec:\n  restartPolicy: Never\n  activeDeadlineSeconds: 1\n"
                            "  initContainers: [{name: spin, image: spin.wasm}]\n"
                            "  containers: [{name: app, image: hello.wasm}]\n",
                            NULL);
    bool done = pod_worker_wait(w, 3000 * slow_factor());
    int64_t took = (time_mono_ns() - t0) / NS_PER_MS;
    if (!done) {
        fail_msg("an init container outlived activeDeadlineSeconds: 1 (still running after "
                 "%lld ms)",
                 (long long)took);
    }
    assert_true(took < 1500 * slow_factor());
    json_t *st = status_of(f, w);
    assert_string_equal(sget(st, "phase"), "Failed");
    assert_string_equal(sget(st, "reason"), "DeadlineExceeded");
    done_with(f, w);
}

static void stop_running_pod(void **state)
{
    fixture_t *f = *state;
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\nmetadata: {name: sleepy}\n"
                            "spec:\n  restartPolicy: Always\n"
                            "  containers:\n"
                            "    - {name: a, image: sleeper.wasm, args: ['3600']}\n"
                            "    - {name: b, image: spin.wasm}\n",
                            NULL);
    wait_running(f, w, 2000);
    /* Running once both have started (Pending while b has not, as the
     * kubelet says). */
    int64_t until = time_mono_ns() + 2000 * slow_factor() * NS_PER_MS;
    while (strcmp(pod_worker_phase(w), "Running") != 0 && time_mono_ns() < until)
        time_sleep_ms(5);
    assert_string_equal(pod_worker_phase(w), "Running");
    int64_t t0 = time_mono_ns();
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 1000);
    int64_t took = time_mono_ns() - t0;
    printf("pod stop: %.1f ms\n", (double)took / 1e6);
    assert_true(took < 200 * NS_PER_MS * slow_factor());
    pod_container_summary_t sums[2];
    assert_int_equal(pod_worker_summaries(w, sums, 2), 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sums[i].exit_code, 137);
        assert_int_equal(sums[i].restart_count, 0); /* a stop is not a restart */
    }
    /* A stop without a reason is not a pod failure reason. */
    json_t *st = status_of(f, w);
    assert_null(json_object_get(st, "reason"));
    /* Stopping again, or a finished pod, is harmless. */
    pod_worker_stop(w, "Again", "again");
    assert_true(pod_worker_wait(w, 0));
    done_with(f, w);
}

/* --- the start trace ------------------------------------------------------------------- */

/* A traced pod: sandbox, volumes, pull, load and instantiate are stamped
 * by the worker, status by the acknowledgement; the trace is emitted once,
 * into the registry's histograms, whichever of the instance and the
 * acknowledgement comes last. An untraced pod adds nothing. */
static void start_trace_recorded(void **state)
{
    fixture_t *f = *state;
    metrics_reset();
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\nmetadata: {name: traced, uid: t-1}\n"
                            "spec:\n  containers:\n"
                            "    - {name: a, image: sleeper.wasm, args: ['3600']}\n",
                            NULL);
    int64_t now = time_now_ns();
    pod_worker_trace_begin(w, now - 250 * NS_PER_MS, now, time_mono_ns());
    wait_running(f, w, 5000);
    assert_true(pod_worker_trace_running(w));
    pod_worker_trace_acked(w);
    assert_false(pod_worker_trace_running(w)); /* the status stage ended */
    int64_t until = time_mono_ns() + 5000 * slow_factor() * NS_PER_MS;
    metrics_snapshot_t m;
    do {
        metrics_snapshot(&m);
        if (m.stage_count[METRICS_STAGE_NODE]) break;
        time_sleep_ms(5);
    } while (time_mono_ns() < until);
    for (int s = 0; s < METRICS_STAGE_COUNT; s++) {
        if (m.stage_count[s] != 1)
            fail_msg("stage %s: %llu observations", metrics_start_stage_names[s],
                     (unsigned long long)m.stage_count[s]);
    }
    assert_true(m.stage_sum[METRICS_STAGE_WATCH] >= 0.25);
    assert_true(m.stage_sum[METRICS_STAGE_NODE] >= m.stage_sum[METRICS_STAGE_INSTANTIATE]);
    pod_worker_trace_acked(w); /* again: nothing more */
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 2000);
    done_with(f, w);

    /* Not begun (a resumed pod, `wasmlet run`): nothing observed. */
    w = start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: untraced, uid: t-2}\n"
              "spec:\n  restartPolicy: Never\n  containers:\n    - {name: a, image: hello.wasm}\n",
              NULL);
    wait_done(w, 5000);
    assert_false(pod_worker_trace_running(w));
    pod_worker_trace_acked(w);
    done_with(f, w);
    metrics_snapshot_t m2;
    metrics_snapshot(&m2);
    for (int s = 0; s < METRICS_STAGE_COUNT; s++)
        assert_int_equal(m2.stage_count[s], 1);
    metrics_reset();
}

/* --- status shape -------------------------------------------------------------------- */

static void check_condition_types(json_t *st)
{
    static const char *const types[] = {"PodReadyToStartContainers", "Initialized", "Ready",
                                        "ContainersReady", "PodScheduled"};
    json_t *conds = json_object_get(st, "conditions");
    assert_int_equal(json_array_size(conds), 5);
    for (size_t i = 0; i < 5; i++) {
        bool found = false;
        size_t k;
        json_t *c;
        json_array_foreach(conds, k, c)
        {
            if (strcmp(sget(c, "type"), types[i]) != 0) continue;
            found = true;
            const char *s = sget(c, "status");
            assert_true(strcmp(s, "True") == 0 || strcmp(s, "False") == 0);
            int64_t ns;
            assert_int_equal(time_parse_rfc3339(sget(c, "lastTransitionTime"), &ns), 0);
        }
        if (!found) dump_and_fail(st, types[i]);
    }
}

static const char *condition_status(json_t *st, const char *type)
{
    size_t k;
    json_t *c;
    json_array_foreach(json_object_get(st, "conditions"), k,
                       c) if (strcmp(sget(c, "type"), type) == 0) return sget(c, "status");
    return "";
}

static void check_container_status(json_t *st, json_t *cs, const char *name, const char *image)
{
    if (!json_is_object(cs)) dump_and_fail(st, name);
    assert_string_equal(sget(cs, "name"), name);
    assert_true(json_is_object(json_object_get(cs, "state")));
    assert_true(json_is_object(json_object_get(cs, "lastState")));
    assert_true(json_is_boolean(json_object_get(cs, "ready")));
    assert_true(json_is_integer(json_object_get(cs, "restartCount")));
    assert_string_equal(sget(cs, "image"), image);
    const char *id = sget(cs, "imageID");
    if (strncmp(id, "sha256:", 7) != 0 || strlen(id) != 7 + 64)
        fail_msg("%s: imageID \"%s\" is not sha256:<hex>", name, id);
    assert_true(strncmp(sget(cs, "containerID"), "wasmlet://", 10) == 0);
    assert_true(json_is_boolean(json_object_get(cs, "started")));
}

/* "sha256:<hex>" of an example module's bytes. */
static char *file_digest(const char *name)
{
    char *path = xasprintf("%s/%s", examples_dir(), name);
    char *data;
    size_t len;
    assert_int_equal(fs_read_all(path, &data, &len, NULL), 0);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    strbuf_t sb = STRBUF_INIT;
    strbuf_puts(&sb, "sha256:");
    for (unsigned i = 0; i < n; i++)
        strbuf_printf(&sb, "%02x", md[i]);
    free(data);
    free(path);
    return strbuf_take(&sb);
}

static void status_json_shape(void **state)
{
    fixture_t *f = *state;
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\n"
                            "metadata: {name: shape, namespace: ns1, uid: 11111111-2222}\n"
                            "spec:\n  restartPolicy: Never\n"
                            "  initContainers: [{name: init, image: hello.wasm}]\n"
                            "  containers: [{name: app, image: sleeper.wasm, args: ['0.5']}]\n",
                            NULL);
    wait_running(f, w, 3000);
    json_t *st = status_of(f, w);
    assert_string_equal(sget(st, "phase"), "Running");
    check_condition_types(st);
    assert_string_equal(condition_status(st, "Ready"), "True");
    assert_string_equal(condition_status(st, "ContainersReady"), "True");
    assert_string_equal(condition_status(st, "Initialized"), "True");
    assert_string_equal(condition_status(st, "PodScheduled"), "True");
    assert_string_equal(condition_status(st, "PodReadyToStartContainers"), "True");
    json_t *app = cstatus(st, false, 0);
    check_container_status(st, app, "app", "sleeper.wasm");
    assert_true(json_is_true(json_object_get(app, "ready")));
    assert_true(json_is_true(json_object_get(app, "started")));
    int64_t ns;
    assert_int_equal(
        time_parse_rfc3339(
            sget(json_object_get(json_object_get(app, "state"), "running"), "startedAt"), &ns),
        0);
    assert_string_equal(sget(cstatus(st, false, 0), "containerID"),
                        "wasmlet://11111111-2222-app-0");
    check_container_status(st, cstatus(st, true, 0), "init", "hello.wasm");
    assert_string_equal(sget(st, "hostIP"), "192.0.2.1");
    assert_string_equal(sget(st, "podIP"), "192.0.2.1");
    assert_string_equal(sget(json_array_get(json_object_get(st, "podIPs"), 0), "ip"), "192.0.2.1");
    assert_int_equal(time_parse_rfc3339(sget(st, "startTime"), &ns), 0);

    wait_done(w, 3000);
    st = status_of(f, w);
    assert_string_equal(sget(st, "phase"), "Succeeded");
    check_condition_types(st);
    assert_string_equal(condition_status(st, "Ready"), "False");
    assert_string_equal(condition_status(st, "ContainersReady"), "False");
    app = cstatus(st, false, 0);
    check_container_status(st, app, "app", "sleeper.wasm");
    assert_false(json_is_true(json_object_get(app, "ready")));
    json_t *t = terminated(app);
    assert_int_equal(json_integer_value(json_object_get(t, "exitCode")), 0);
    int64_t started, finished;
    assert_int_equal(time_parse_rfc3339(sget(t, "startedAt"), &started), 0);
    assert_int_equal(time_parse_rfc3339(sget(t, "finishedAt"), &finished), 0);
    assert_true(finished >= started);
    assert_string_equal(sget(t, "containerID"), "wasmlet://11111111-2222-app-0");
    /* Each carries its module's digest as imageID (the pull gave none). */
    char *want = file_digest("sleeper.wasm");
    assert_string_equal(sget(app, "imageID"), want);
    free(want);
    want = file_digest("hello.wasm");
    assert_string_equal(sget(cstatus(st, true, 0), "imageID"), want);
    free(want);
    done_with(f, w);

    /* When the pull names an image ID, that is what the status shows. */
    f->rec.pull_sets_image_id = true;
    w = start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: withid}\n"
              "spec:\n  restartPolicy: Never\n"
              "  containers: [{name: app, image: hello.wasm}]\n",
              NULL);
    wait_done(w, 3000);
    st = status_of(f, w);
    assert_string_equal(sget(cstatus(st, false, 0), "imageID"),
                        "registry.example/hello.wasm@sha256:feed");
    assert_null(json_object_get(st, "initContainerStatuses")); /* none in the spec */
    done_with(f, w);
}

static void env_reaches_module(void **state)
{
    fixture_t *f = *state;
    f->rec.configmaps = json_pack("{s:{s:s, s:s}}", "cm", "k", "from-configmap", "extra", "e");
    f->host.lookup = fake_lookup;
    pod_worker_t *w =
        start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: envpod, namespace: ns1}\n"
              "spec:\n  restartPolicy: Never\n"
              "  containers:\n"
              "    - name: p\n"
              "      image: printenv.wasm\n"
              "      args: ['$(K)', '$(POD)']\n"
              "      envFrom: [{prefix: CM_, configMapRef: {name: cm}}]\n"
              "      env:\n"
              "        - {name: K, valueFrom: {configMapKeyRef: {name: cm, key: k}}}\n"
              "        - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n"
              "        - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}\n",
              NULL);
    wait_done(w, 3000);
    assert_string_equal(pod_worker_phase(w), "Succeeded");
    assert_true(has_line(f, "p|1|arg[0]=printenv"));
    assert_true(has_line(f, "p|1|arg[1]=from-configmap"));
    assert_true(has_line(f, "p|1|arg[2]=envpod"));
    assert_true(has_line(f, "p|1|env CM_extra=e"));
    assert_true(has_line(f, "p|1|env CM_k=from-configmap"));
    assert_true(has_line(f, "p|1|env K=from-configmap"));
    assert_true(has_line(f, "p|1|env NODE=test-node"));
    assert_true(has_line(f, "p|1|env POD=envpod"));
    /* Exactly these: argv (3) and env (5). */
    assert_int_equal(count_lines_of(f, "p"), 8);
    done_with(f, w);
}

/* --- set-up failures ------------------------------------------------------------------ */

static void setup_errors(void **state)
{
    fixture_t *f = *state;
    /* As a kubelet: a missing image is retried with back-off
     * (ImagePullBackOff) until the pod is stopped. */
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\nmetadata: {name: nopull}\n"
                            "spec:\n  restartPolicy: Never\n"
                            "  containers: [{name: c, image: missing.wasm}]\n",
                            NULL);
    time_sleep_ms(slow_factor() * 400);
    assert_false(pod_worker_finished(w));
    assert_string_equal(pod_worker_phase(w), "Pending");
    json_t *st = status_of(f, w);
    json_t *wt = json_object_get(json_object_get(cstatus(st, false, 0), "state"), "waiting");
    const char *reason = sget(wt, "reason");
    if (strcmp(reason, "ImagePullBackOff") != 0 && strcmp(reason, "ErrImagePull") != 0)
        dump_and_fail(st, "not waiting on the image");
    assert_non_null(strstr(sget(wt, "message"), "missing.wasm"));
    assert_true(f->rec.pulls >= 3);
    assert_true(has_event(f, "Failed", "spec.containers{c}"));
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 1000);
    done_with(f, w);

    /* As `wasmlet run`: the container ends with the reason. */
    f->host.give_up_on_setup_error = true;
    w = start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: nopull2}\n"
              "spec:\n  restartPolicy: Always\n"
              "  containers:\n"
              "    - {name: c, image: missing.wasm}\n"
              "    - name: d\n"
              "      image: hello.wasm\n"
              "      env: [{name: X, valueFrom: {configMapKeyRef: {name: cm, key: k}}}]\n",
              NULL);
    wait_done(w, 3000);
    assert_string_equal(pod_worker_phase(w), "Failed");
    pod_container_summary_t sums[2];
    assert_int_equal(pod_worker_summaries(w, sums, 2), 2);
    assert_string_equal(sums[0].reason, "ErrImagePull");
    assert_non_null(strstr(sums[0].message, "missing.wasm"));
    assert_string_equal(sums[1].reason, "CreateContainerConfigError");
    assert_non_null(strstr(sums[1].message, "cm"));
    assert_int_equal(count_lines_of(f, "d"), 0);
    done_with(f, w);

    /* An unsupported volume type fails the pod before any container. */
    w = start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: nfs}\n"
              "spec:\n  restartPolicy: Never\n"
              "  volumes: [{name: v, nfs: {server: s, path: /}}]\n"
              "  containers: [{name: e, image: hello.wasm}]\n",
              NULL);
    wait_done(w, 3000);
    assert_string_equal(pod_worker_phase(w), "Failed");
    st = status_of(f, w);
    assert_string_equal(sget(st, "reason"), "FailedMount");
    assert_non_null(strstr(sget(st, "message"), "nfs"));
    assert_int_equal(count_lines_of(f, "e"), 0);
    done_with(f, w);
}

/* --- resume --------------------------------------------------------------------------- */

static void resume_skips_done(void **state)
{
    fixture_t *f = *state;
    static const char *pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: resumed, uid: r-1}\n"
                             "spec:\n  restartPolicy: Never\n"
                             "  volumes: [{name: data, emptyDir: {}}]\n"
                             "  initContainers:\n"
                             "    - name: writer\n"
                             "      image: files.wasm\n"
                             "      args: [write, /data/mark, wrote]\n"
                             "      volumeMounts: [{name: data, mountPath: /data}]\n"
                             "  containers:\n"
                             "    - name: app\n"
                             "      image: files.wasm\n"
                             "      args: [ls, /data]\n"
                             "      volumeMounts: [{name: data, mountPath: /data}]\n";
    json_t *resume =
        json_pack("{s:{s:i, s:b, s:i, s:s, s:s, s:I, s:I, s:s}}", "writer", "restartCount", 2,
                  "done", 1, "exitCode", 0, "reason", "Completed", "message", "", "startedAt",
                  (json_int_t)1, "finishedAt", (json_int_t)2, "imageID", "sha256:earlier");
    pod_worker_t *w = start(f, pod, resume);
    json_decref(resume);
    wait_done(w, 3000);
    assert_string_equal(pod_worker_phase(w), "Succeeded");
    /* The writer did not run again: the emptyDir is empty. */
    assert_int_equal(count_lines_of(f, "writer"), 0);
    assert_false(has_event(f, "Started", "spec.initContainers{writer}"));
    assert_false(has_line(f, "app|1|mark"));
    assert_true(has_event(f, "Started", "spec.containers{app}"));
    pod_container_summary_t sums[2];
    assert_int_equal(pod_worker_summaries(w, sums, 2), 2);
    assert_int_equal(sums[0].restart_count, 2); /* counts go on */
    assert_int_equal(sums[0].exit_code, 0);
    json_t *st = status_of(f, w);
    assert_string_equal(sget(cstatus(st, true, 0), "imageID"), "sha256:earlier");

    /* What this worker records resumes a finished pod without running
     * anything again. */
    json_t *again = pod_worker_resume_json(w);
    json_array_append_new(f->garbage, again);
    assert_true(json_is_integer(json_object_get(again, "startTime")));
    assert_true(json_is_true(json_object_get(json_object_get(again, "app"), "done")));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(again, "writer"), "restartCount")), 2);
    done_with(f, w);
    json_array_clear(f->rec.lines);
    json_array_clear(f->rec.events);
    w = start(f, pod, again);
    wait_done(w, 3000);
    assert_string_equal(pod_worker_phase(w), "Succeeded");
    assert_int_equal(json_array_size(f->rec.lines), 0);
    assert_false(has_event(f, "Started", NULL));
    done_with(f, w);

    /* A container that was running when wasmlet went away: its run is lost.
     * Under Never it is not run again and ends unknown ... */
    resume = json_pack("{s:{s:i, s:b, s:I}}", "app", "restartCount", 0, "done", 0, "startedAt",
                       (json_int_t)5);
    json_array_clear(f->rec.lines);
    w = start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: lost, uid: r-2}\n"
              "spec:\n  restartPolicy: Never\n"
              "  containers: [{name: app, image: hello.wasm}]\n",
              resume);
    wait_done(w, 3000);
    assert_int_equal(count_lines_of(f, "app"), 0);
    assert_int_equal(pod_worker_summaries(w, sums, 1), 1);
    assert_string_equal(sums[0].reason, "ContainerStatusUnknown");
    assert_int_equal(sums[0].exit_code, 137);
    assert_string_equal(pod_worker_phase(w), "Failed");
    done_with(f, w);
    /* ... and otherwise it runs again, and that run is a restart. */
    w = start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: lost2, uid: r-3}\n"
              "spec:\n  restartPolicy: OnFailure\n"
              "  containers: [{name: app, image: hello.wasm}]\n",
              resume);
    json_decref(resume);
    wait_done(w, 3000);
    assert_true(has_line(f, "app|1|Hello from wasmlet!"));
    assert_int_equal(pod_worker_summaries(w, sums, 1), 1);
    assert_int_equal(sums[0].restart_count, 1);
    assert_string_equal(pod_worker_phase(w), "Succeeded");
    done_with(f, w);

    /* A pod stopped mid-run (node shutdown) records the interrupted
     * container as not done, so the next wasmlet runs it again. */
    w = start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: cut, uid: r-4}\n"
              "spec:\n  restartPolicy: OnFailure\n"
              "  containers: [{name: app, image: sleeper.wasm, args: ['3600']}]\n",
              NULL);
    wait_running(f, w, 2000);
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 1000);
    json_t *cut = pod_worker_resume_json(w);
    json_array_append_new(f->garbage, cut);
    assert_false(json_is_true(json_object_get(json_object_get(cut, "app"), "done")));
    assert_true(json_integer_value(json_object_get(json_object_get(cut, "app"), "startedAt")) > 0);
    done_with(f, w);
}

/* --- logs ------------------------------------------------------------------------------- */

static int sink(void *ctx, const char *data, size_t len)
{
    strbuf_append(ctx, data, len);
    return 0;
}

static char *read_log(const char *path, unsigned streams)
{
    crilog_read_opts_t o = CRILOG_READ_OPTS_INIT;
    o.streams = streams;
    strbuf_t sb = STRBUF_INIT;
    err_t err;
    if (crilog_read(path, &o, sink, &sb, &err) == -1) fail_msg("%s", err.msg);
    return strbuf_take(&sb);
}

static void cri_logs_written(void **state)
{
    fixture_t *f = *state;
    char *logs = xasprintf("%s/logs", f->tmp);
    f->host.logs_dir = logs;
    pod_worker_t *w = start(f,
                            "apiVersion: v1\nkind: Pod\n"
                            "metadata: {name: logged, namespace: ns1, uid: u-77}\n"
                            "spec:\n  restartPolicy: OnFailure\n"
                            "  containers:\n"
                            "    - {name: hello, image: hello.wasm}\n"
                            "    - {name: fail, image: exitcode.wasm, args: ['1', 'to stderr']}\n",
                            NULL);
    /* hello ends; fail restarts a few times. */
    pod_container_summary_t now[2];
    int64_t until = time_mono_ns() + 5000 * slow_factor() * NS_PER_MS;
    do {
        time_sleep_ms(20);
        assert_int_equal(pod_worker_summaries(w, now, 2), 2);
    } while (now[1].restart_count < 2 && time_mono_ns() < until);
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 1000);
    pod_container_summary_t sums[2];
    assert_int_equal(pod_worker_summaries(w, sums, 2), 2);
    int restarts = sums[1].restart_count;
    assert_true(restarts >= 1);
    done_with(f, w);
    f->host.logs_dir = NULL;

    char *dir = xasprintf("%s/ns1_logged_u-77", logs);
    char *path = xasprintf("%s/hello/0.log", dir);
    char *text = read_log(path, 0);
    assert_string_equal(text, "Hello from wasmlet!\n");
    free(text);
    /* The raw file is CRI format: time, stream, tag, content. */
    char *raw;
    size_t len;
    assert_int_equal(fs_read_all(path, &raw, &len, NULL), 0);
    assert_non_null(strstr(raw, "Z stdout F Hello from wasmlet!\n"));
    free(raw);
    free(path);
    /* One file per run of the restarting container, stderr in each. */
    for (int i = 0; i <= restarts; i++) {
        path = xasprintf("%s/fail/%d.log", dir, i);
        text = read_log(path, 1u << CRILOG_STDERR);
        /* (The last run may have been stopped before it wrote.) */
        if (i < restarts || text[0]) assert_string_equal(text, "to stderr\n");
        free(text);
        text = read_log(path, 1u << CRILOG_STDOUT);
        assert_string_equal(text, "");
        free(text);
        free(path);
    }
    int *runs;
    size_t nruns;
    path = xasprintf("%s/fail", dir);
    assert_int_equal(crilog_list_runs(path, &runs, &nruns, NULL), 0);
    assert_int_equal(nruns, (size_t)restarts + 1);
    free(runs);
    free(path);
    free(dir);
    free(logs);
}

/* --- bugs fixed in the split ----------------------------------------------------------- */

static int fail_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    (void)t;
    (void)a;
    (void)fn;
    (void)arg;
    return EAGAIN;
}

typedef struct creator {
    fixture_t *f;
    pod_worker_t *w;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool started, release;
} creator_t;

static void *creator_main(void *arg)
{
    creator_t *c = arg;
    pod_worker_t *w =
        pod_worker_start(&c->f->host,
                         spec_of("apiVersion: v1\nkind: Pod\nmetadata: {name: nt}\n"
                                 "spec:\n  containers: [{name: a, image: hello.wasm}]\n"),
                         NULL);
    pthread_mutex_lock(&c->lock);
    c->w = w;
    c->started = true;
    pthread_cond_broadcast(&c->cond);
    while (!c->release)
        pthread_cond_wait(&c->cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static atomic_bool freed;
static void *freer_main(void *arg)
{
    pod_worker_free(arg);
    atomic_store(&freed, true);
    return NULL;
}

/* Without a pod thread, pod_worker_free must not join anything: it once
 * joined the thread that had started the worker. */
static void free_without_pod_thread(void **state)
{
    fixture_t *f = *state;
    creator_t c = {.f = f};
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    pod_worker_thread_create = fail_create;
    pthread_t ct, ft;
    assert_int_equal(pthread_create(&ct, NULL, creator_main, &c), 0);
    pthread_mutex_lock(&c.lock);
    while (!c.started)
        pthread_cond_wait(&c.cond, &c.lock);
    pthread_mutex_unlock(&c.lock);
    pod_worker_thread_create = pthread_create;
    assert_true(pod_worker_finished(c.w));
    assert_string_equal(pod_worker_phase(c.w), "Failed");
    json_t *st = status_of(f, c.w);
    assert_non_null(strstr(sget(st, "message"), "thread"));
    atomic_store(&freed, false);
    assert_int_equal(pthread_create(&ft, NULL, freer_main, c.w), 0);
    int64_t until = time_mono_ns() + 2 * NS_PER_SEC;
    while (!atomic_load(&freed) && time_mono_ns() < until)
        time_sleep_ms(5);
    bool in_time = atomic_load(&freed);
    pthread_mutex_lock(&c.lock); /* the creator may go now (a wrong join ends too) */
    c.release = true;
    pthread_cond_broadcast(&c.cond);
    pthread_mutex_unlock(&c.lock);
    pthread_join(ct, NULL);
    pthread_join(ft, NULL);
    pthread_cond_destroy(&c.cond);
    pthread_mutex_destroy(&c.lock);
    if (!in_time) fail_msg("pod_worker_free joined a thread that was not the pod's");
}

static size_t count_events(fixture_t *f, const char *reason)
{
    size_t n = 0, i;
    json_t *v;
    pthread_mutex_lock(&f->rec.lock);
    json_array_foreach(f->rec.events, i, v) n +=
        strcmp(json_string_value(json_object_get(v, "reason")), reason) == 0;
    pthread_mutex_unlock(&f->rec.lock);
    return n;
}

/* One watcher of the deadline: DeadlineExceeded once per pod. */
static void deadline_fires_once(void **state)
{
    fixture_t *f = *state;
    enum { N = 6 };
    pod_worker_t *ws[N];
    wasm_signals_restore();
    for (int i = 0; i < N; i++)
        ws[i] =
            pod_worker_start(&f->host,
                             spec_of("apiVersion: v1\nkind: Pod\nmetadata: {name: d1}\n"
                                     "spec:\n  restartPolicy: Never\n  activeDeadlineSeconds: 1\n"
                                     "  initContainers: [{name: i, image: hello.wasm}]\n"
                                     "  containers: [{name: s, image: spin.wasm}]\n"),
                             NULL);
    for (int i = 0; i < N; i++) {
        bool done = pod_worker_wait(ws[i], 4000 * slow_factor());
        json_t *st = pod_worker_status_json(ws[i]);
        bool ok = strcmp(sget(st, "reason"), "DeadlineExceeded") == 0;
        json_decref(st);
        pod_worker_stop(ws[i], NULL, NULL);
        pod_worker_free(ws[i]);
        assert_true(done);
        assert_true(ok);
    }
    assert_int_equal(count_events(f, "DeadlineExceeded"), N);
}

/* Reading the status does not move the Ready transition time. */
static void status_read_keeps_ready_time(void **state)
{
    fixture_t *f = *state;
    f->host.status_changed = NULL; /* nobody reads the status but the test */
    pod_worker_t *w =
        start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: rt}\n"
              "spec:\n  containers: [{name: a, image: sleeper.wasm, args: ['3600']}]\n",
              NULL);
    int64_t until = time_mono_ns() + 3000 * slow_factor() * NS_PER_MS;
    while (strcmp(pod_worker_phase(w), "Running") != 0 && time_mono_ns() < until)
        time_sleep_ms(5);
    assert_string_equal(pod_worker_phase(w), "Running");
    time_sleep_ms(2100);
    json_t *st = status_of(f, w);
    json_t *ready = NULL, *c;
    size_t k;
    json_array_foreach(json_object_get(st, "conditions"), k,
                       c) if (strcmp(sget(c, "type"), "Ready") == 0) ready = c;
    assert_string_equal(sget(ready, "status"), "True");
    int64_t t_ready, t_started;
    assert_int_equal(time_parse_rfc3339(sget(ready, "lastTransitionTime"), &t_ready), 0);
    assert_int_equal(
        time_parse_rfc3339(
            sget(json_object_get(json_object_get(cstatus(st, false, 0), "state"), "running"),
                 "startedAt"),
            &t_started),
        0);
    if (t_ready - t_started > NS_PER_SEC)
        dump_and_fail(st, "Ready's transition time is the first read's, not the container's start");
    json_t *again = status_of(f, w);
    assert_true(
        json_equal(json_object_get(st, "conditions"), json_object_get(again, "conditions")));
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 1000);
    done_with(f, w);
}

/* --- spec updates ----------------------------------------------------------------------- */

static void update_lowers_deadline(void **state)
{
    fixture_t *f = *state;
    static const char *fmt = "apiVersion: v1\nkind: Pod\nmetadata: {name: sd, labels: {v: '%d'}}\n"
                             "spec:\n  activeDeadlineSeconds: %d\n"
                             "  containers: [{name: s, image: spin.wasm}]\n";
    char yaml[512];
    snprintf(yaml, sizeof yaml, fmt, 1, 600);
    pod_worker_t *w = start(f, yaml, NULL);
    wait_running(f, w, 3000);
    /* The same version again (a status write's echo) changes nothing. */
    const podspec_t *before = pod_worker_spec(w);
    pod_worker_update(w, spec_of(yaml));
    assert_ptr_equal(pod_worker_spec(w), before);
    /* New labels are kept. */
    snprintf(yaml, sizeof yaml, fmt, 2, 600);
    pod_worker_update(w, spec_of(yaml));
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(pod_worker_spec(w)->raw, "metadata"), "labels"), "v")),
        "2");
    time_sleep_ms(1100);
    assert_false(pod_worker_finished(w));
    /* Lowered below the time it has run: it ends at once. */
    snprintf(yaml, sizeof yaml, fmt, 2, 1);
    int64_t t0 = time_mono_ns();
    pod_worker_update(w, spec_of(yaml));
    wait_done(w, 1000);
    assert_true(time_mono_ns() - t0 < 500 * NS_PER_MS * slow_factor());
    json_t *st = status_of(f, w);
    assert_string_equal(sget(st, "phase"), "Failed");
    assert_string_equal(sget(st, "reason"), "DeadlineExceeded");
    assert_int_equal(count_events(f, "DeadlineExceeded"), 1);
    done_with(f, w);
}

static void update_image_restarts_container(void **state)
{
    fixture_t *f = *state;
    static const char *fmt = "apiVersion: v1\nkind: Pod\nmetadata: {name: swap, uid: sw-1}\n"
                             "spec:\n  restartPolicy: Always\n"
                             "  containers:\n    - {name: app, image: %s, args: ['50']}\n"
                             "    - {name: other, image: sleeper.wasm, args: ['3600']}\n";
    char yaml[512];
    snprintf(yaml, sizeof yaml, fmt, "ticker.wasm");
    pod_worker_t *w = start(f, yaml, NULL);
    wait_running(f, w, 3000);
    snprintf(yaml, sizeof yaml, fmt, "spin.wasm");
    pod_worker_update(w, spec_of(yaml));
    char *digest = file_digest("spin.wasm");
    int64_t until = time_mono_ns() + 3000 * slow_factor() * NS_PER_MS;
    json_t *st = NULL;
    for (;;) {
        st = status_of(f, w);
        json_t *cs = cstatus(st, false, 0);
        if (strcmp(sget(cs, "image"), "spin.wasm") == 0 &&
            strcmp(sget(cs, "imageID"), digest) == 0 && strcmp(state_kind(cs), "running") == 0)
            break;
        if (time_mono_ns() > until) dump_and_fail(st, "not running the new image");
        time_sleep_ms(10);
    }
    free(digest);
    json_t *cs = cstatus(st, false, 0);
    assert_int_equal(json_integer_value(json_object_get(cs, "restartCount")), 1);
    json_t *last = json_object_get(json_object_get(cs, "lastState"), "terminated");
    assert_int_equal(json_integer_value(json_object_get(last, "exitCode")), 137);
    /* The other container went on. */
    assert_int_equal(json_integer_value(json_object_get(cstatus(st, false, 1), "restartCount")), 0);
    bool killing = false;
    size_t i;
    json_t *v;
    pthread_mutex_lock(&f->rec.lock);
    json_array_foreach(f->rec.events, i, v) killing |=
        strcmp(sget(v, "reason"), "Killing") == 0 &&
        strcmp(sget(v, "message"), "Container app definition changed, will be restarted") == 0 &&
        strcmp(sget(v, "fieldPath"), "spec.containers{app}") == 0;
    pthread_mutex_unlock(&f->rec.lock);
    assert_true(killing);
    assert_int_equal(count_events(f, "Killing"), 1);
    assert_int_equal(count_events(f, "BackOff"), 0); /* a new definition starts at once */
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 1000);
    done_with(f, w);
}

/* --- in-place resize ---------------------------------------------------------------------- */

/* The first container's field (a JSON object) as compact text. */
static char *cfield(json_t *st, const char *key)
{
    json_t *v = json_object_get(cstatus(st, false, 0), key);
    return v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : xstrdup("null");
}

static json_t *condition_of(json_t *st, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(st, "conditions"), i, c)
    {
        if (strcmp(sget(c, "type"), type) == 0) return c;
    }
    return NULL;
}

/* Waits until the first container's `key` reads want (compact, sorted). */
static json_t *wait_cfield(fixture_t *f, pod_worker_t *w, const char *key, const char *want,
                           bool in_progress)
{
    int64_t until = time_mono_ns() + 3000 * slow_factor() * NS_PER_MS;
    for (;;) {
        json_t *st = status_of(f, w);
        char *got = cfield(st, key);
        bool ok = strcmp(got, want) == 0 &&
                  (condition_of(st, "PodResizeInProgress") != NULL) == in_progress;
        free(got);
        if (ok) return st;
        if (time_mono_ns() > until) dump_and_fail(st, want);
        time_sleep_ms(10);
    }
}

static void resize_live_refused_and_pending(void **state)
{
    fixture_t *f = *state;
    static const char *fmt =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: rs, uid: rs-1}\n"
        "spec:\n  restartPolicy: Always\n"
        "  containers:\n    - name: app\n      image: memhog.wasm\n      args: ['1024', '8192']\n"
        "      resources: {requests: {cpu: %s, memory: 16Mi}, limits: {cpu: %s, memory: %s}}\n";
    char yaml[1024];
    snprintf(yaml, sizeof yaml, fmt, "50m", "100m", "32Mi");
    pod_worker_t *w = start(f, yaml, NULL);
    wait_running(f, w, 3000);
    int64_t until = time_mono_ns() + 3000 * slow_factor() * NS_PER_MS;
    while (!has_line(f, "app|1|holding 8192 KiB")) {
        if (time_mono_ns() > until) fail_msg("memhog is not holding 8 MiB");
        time_sleep_ms(10);
    }
    json_t *st = status_of(f, w);
    char *s = cfield(st, "resources");
    assert_string_equal(
        s, "{\"limits\":{\"cpu\":\"100m\",\"memory\":\"32Mi\"},\"requests\":{\"cpu\":\"50m\","
           "\"memory\":\"16Mi\"}}");
    free(s);
    s = cfield(st, "allocatedResources");
    assert_string_equal(s, "{\"cpu\":\"50m\",\"memory\":\"16Mi\"}");
    free(s);
    assert_false(pod_worker_resize_wanted(w));

    /* Raised live: no restart. */
    snprintf(yaml, sizeof yaml, fmt, "50m", "500m", "64Mi");
    pod_worker_update(w, spec_of(yaml));
    assert_true(pod_worker_resize_wanted(w));
    assert_true(pod_worker_resize(w, NULL));
    assert_false(pod_worker_resize_wanted(w));
    st = wait_cfield(f, w, "resources",
                     "{\"limits\":{\"cpu\":\"500m\",\"memory\":\"64Mi\"},\"requests\":{\"cpu\":"
                     "\"50m\",\"memory\":\"16Mi\"}}",
                     false);
    assert_int_equal(json_integer_value(json_object_get(cstatus(st, false, 0), "restartCount")), 0);

    /* Below the 8 MiB it holds: allocated, but refused by the run. */
    snprintf(yaml, sizeof yaml, fmt, "50m", "500m", "4Mi");
    pod_worker_update(w, spec_of(yaml));
    assert_true(pod_worker_resize(w, NULL));
    until = time_mono_ns() + 3000 * slow_factor() * NS_PER_MS;
    json_t *cond;
    for (;;) {
        st = status_of(f, w);
        cond = condition_of(st, "PodResizeInProgress");
        if (cond && strcmp(sget(cond, "reason"), "Error") == 0) break;
        if (time_mono_ns() > until) dump_and_fail(st, "no PodResizeInProgress Error");
        time_sleep_ms(10);
    }
    assert_string_equal(sget(cond, "status"), "True");
    static const char want[] = "cannot decrease memory limits: attempting to set container "
                               "\"app\" memory limit (4194304) below current usage (";
    if (strncmp(sget(cond, "message"), want, sizeof want - 1) != 0)
        dump_and_fail(st, "the kubelet's message");
    s = cfield(st, "resources");
    assert_non_null(strstr(s, "\"memory\":\"64Mi\""));
    free(s);
    assert_int_equal(json_integer_value(json_object_get(cstatus(st, false, 0), "restartCount")), 0);

    /* More than the node: pending with the verdict, nothing allocated. */
    snprintf(yaml, sizeof yaml, fmt, "3", "3", "4Mi");
    pod_worker_update(w, spec_of(yaml));
    pod_resize_verdict_t v = {.fit = POD_RESIZE_INFEASIBLE,
                              .reason = "Infeasible",
                              .message = "Node didn't have enough capacity: cpu, requested: 3000, "
                                         "capacity: 2000"};
    assert_true(pod_worker_resize(w, &v));
    assert_false(pod_worker_resize(w, &v)); /* the same verdict again changes nothing */
    st = status_of(f, w);
    cond = condition_of(st, "PodResizePending");
    if (!cond) dump_and_fail(st, "no PodResizePending");
    assert_string_equal(sget(cond, "reason"), "Infeasible");
    assert_string_equal(sget(cond, "message"), v.message);
    s = cfield(st, "allocatedResources");
    assert_string_equal(s, "{\"cpu\":\"50m\",\"memory\":\"16Mi\"}");
    free(s);
    int64_t cpu, memory;
    pod_worker_allocated_requests(w, &cpu, &memory);
    assert_int_equal(cpu, 50);
    assert_int_equal(memory, 16 << 20);
    assert_true(pod_worker_resize_wanted(w));
    /* Asking for what is allocated again clears it. */
    snprintf(yaml, sizeof yaml, fmt, "50m", "500m", "4Mi");
    pod_worker_update(w, spec_of(yaml));
    assert_true(pod_worker_resize(w, &v));
    assert_null(condition_of(status_of(f, w), "PodResizePending"));

    /* The allocation is in the resume state. */
    json_t *r = pod_worker_resume_json(w);
    json_array_append_new(f->garbage, r);
    json_t *alloc = json_object_get(json_object_get(r, "app"), "allocated");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(alloc, "limits.memory"), 0)),
                     4 << 20);
    assert_string_equal(json_string_value(json_array_get(json_object_get(alloc, "limits.cpu"), 1)),
                        "500m");
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 1000);
    done_with(f, w);
}

static void resize_restart_policy_restarts(void **state)
{
    fixture_t *f = *state;
    static const char *fmt =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: rp, uid: rp-1}\n"
        "spec:\n  restartPolicy: Always\n"
        "  containers:\n    - name: app\n      image: ticker.wasm\n      args: ['50']\n"
        "      resources: {limits: {cpu: %s, memory: %s}}\n"
        "      resizePolicy: [{resourceName: memory, restartPolicy: RestartContainer}]\n";
    char yaml[1024];
    snprintf(yaml, sizeof yaml, fmt, "100m", "32Mi");
    pod_worker_t *w = start(f, yaml, NULL);
    wait_running(f, w, 3000);
    /* cpu: NotRequired (the default), applied live. */
    snprintf(yaml, sizeof yaml, fmt, "200m", "32Mi");
    pod_worker_update(w, spec_of(yaml));
    assert_true(pod_worker_resize(w, NULL));
    json_t *st = wait_cfield(f, w, "resources",
                             "{\"limits\":{\"cpu\":\"200m\",\"memory\":\"32Mi\"},\"requests\":{"
                             "\"cpu\":\"200m\",\"memory\":\"32Mi\"}}",
                             false);
    assert_int_equal(json_integer_value(json_object_get(cstatus(st, false, 0), "restartCount")), 0);
    assert_int_equal(count_events(f, "Killing"), 0);
    /* memory: RestartContainer. */
    snprintf(yaml, sizeof yaml, fmt, "200m", "64Mi");
    pod_worker_update(w, spec_of(yaml));
    assert_true(pod_worker_resize(w, NULL));
    int64_t until = time_mono_ns() + 3000 * slow_factor() * NS_PER_MS;
    for (;;) {
        st = status_of(f, w);
        json_t *cs = cstatus(st, false, 0);
        char *s = cfield(st, "resources");
        bool done = json_integer_value(json_object_get(cs, "restartCount")) == 1 &&
                    strcmp(state_kind(cs), "running") == 0 && strstr(s, "\"memory\":\"64Mi\"") &&
                    !condition_of(st, "PodResizeInProgress");
        free(s);
        if (done) break;
        if (time_mono_ns() > until) dump_and_fail(st, "not restarted with 64Mi");
        time_sleep_ms(10);
    }
    bool killing = false;
    size_t i;
    json_t *v;
    pthread_mutex_lock(&f->rec.lock);
    json_array_foreach(f->rec.events, i, v) killing |=
        strcmp(sget(v, "reason"), "Killing") == 0 &&
        strcmp(sget(v, "message"), "Container app resize requires restart") == 0;
    pthread_mutex_unlock(&f->rec.lock);
    assert_true(killing);
    assert_int_equal(count_events(f, "BackOff"), 0); /* it starts again at once */
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 1000);
    done_with(f, w);
}

static void resize_allocation_survives_resume(void **state)
{
    fixture_t *f = *state;
    static const char *fmt = "apiVersion: v1\nkind: Pod\nmetadata: {name: ra, uid: ra-1}\n"
                             "spec:\n  restartPolicy: Always\n"
                             "  containers:\n    - name: app\n      image: sleeper.wasm\n"
                             "      args: ['3600']\n"
                             "      resources: {limits: {memory: %s}}\n";
    char yaml[1024];
    snprintf(yaml, sizeof yaml, fmt, "32Mi");
    pod_worker_t *w = start(f, yaml, NULL);
    wait_running(f, w, 3000);
    snprintf(yaml, sizeof yaml, fmt, "64Mi");
    pod_worker_update(w, spec_of(yaml));
    assert_true(pod_worker_resize(w, NULL));
    wait_cfield(f, w, "allocatedResources", "{\"memory\":\"64Mi\"}", false);
    json_t *resume = pod_worker_resume_json(w);
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 1000);
    done_with(f, w);
    /* The next wasmlet sees a spec asking for 48Mi (a later resize it has
     * not decided yet): it admits the pod with what was allocated ... */
    snprintf(yaml, sizeof yaml, fmt, "48Mi");
    podspec_t *desired = spec_of(yaml);
    json_t *admitted = pod_state_allocated_pod(desired->raw, resume);
    json_t *want = json_pack("{s:s}", "memory", "64Mi");
    assert_true(json_equal(
        json_object_get(
            json_object_get(
                json_array_get(json_object_get(json_object_get(admitted, "spec"), "containers"), 0),
                "resources"),
            "limits"),
        want));
    json_decref(want);
    json_decref(admitted);
    /* ... and the spec itself is left alone. */
    assert_int_equal(desired->containers[0].memory_limit, 48 << 20);
    podspec_free(desired);
    /* ... and the container starts with what was allocated. */
    w = start(f, yaml, resume);
    json_decref(resume);
    wait_running(f, w, 3000);
    json_t *st = status_of(f, w);
    char *s = cfield(st, "resources");
    assert_string_equal(s, "{\"limits\":{\"memory\":\"64Mi\"},\"requests\":{\"memory\":\"64Mi\"}}");
    free(s);
    assert_true(pod_worker_resize_wanted(w));
    pod_worker_stop(w, NULL, NULL);
    wait_done(w, 1000);
    done_with(f, w);
}

/* --- node shutdown, termination messages, the state file ----------------------------------- */

static void node_shutdown_disruption_target(void **state)
{
    fixture_t *f = *state;
    pod_worker_t *w =
        start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: sd}\n"
              "spec:\n  containers: [{name: a, image: sleeper.wasm, args: ['3600']}]\n",
              NULL);
    wait_running(f, w, 3000);
    pod_worker_stop_for_node_shutdown(w);
    wait_done(w, 1000);
    json_t *st = status_of(f, w);
    assert_string_equal(sget(st, "phase"), "Failed");
    assert_string_equal(sget(st, "reason"), "Terminated");
    assert_string_equal(sget(st, "message"), POD_NODE_SHUTDOWN_MESSAGE);
    json_t *dt = NULL, *c;
    size_t k;
    json_array_foreach(json_object_get(st, "conditions"), k,
                       c) if (strcmp(sget(c, "type"), "DisruptionTarget") == 0) dt = c;
    if (!dt) dump_and_fail(st, "no DisruptionTarget");
    assert_string_equal(sget(dt, "status"), "True");
    assert_string_equal(sget(dt, "reason"), "TerminationByKubelet");
    assert_string_equal(sget(dt, "message"), POD_NODE_SHUTDOWN_MESSAGE);
    done_with(f, w);

    /* A pod that had ended keeps how it ended. */
    w = start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: sd2}\n"
              "spec:\n  restartPolicy: Never\n  containers: [{name: a, image: hello.wasm}]\n",
              NULL);
    wait_done(w, 3000);
    pod_worker_stop_for_node_shutdown(w);
    st = status_of(f, w);
    assert_string_equal(sget(st, "phase"), "Succeeded");
    assert_int_equal(json_array_size(json_object_get(st, "conditions")), 5);
    done_with(f, w);
}

static void termination_messages(void **state)
{
    fixture_t *f = *state;
    pod_worker_t *w =
        start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: tm, uid: tm-1}\n"
              "spec:\n  restartPolicy: Never\n"
              "  volumes: [{name: data, emptyDir: {}}]\n"
              "  initContainers:\n"
              "    - {name: old, image: files.wasm, args: [write, /data/old, stale],\n"
              "       volumeMounts: [{name: data, mountPath: /data}]}\n"
              "  containers:\n"
              "    - {name: file, image: files.wasm, args: [write, /data/why, 'all done'],\n"
              "       terminationMessagePath: /data/why,\n"
              "       volumeMounts: [{name: data, mountPath: /data}]}\n"
              "    - {name: stale, image: hello.wasm, terminationMessagePath: /data/old,\n"
              "       volumeMounts: [{name: data, mountPath: /data}]}\n"
              "    - {name: logs, image: exitcode.wasm, args: ['5', 'it broke'],\n"
              "       terminationMessagePolicy: FallbackToLogsOnError}\n"
              "    - {name: nologs, image: exitcode.wasm, args: ['5', 'it broke']}\n"
              "    - {name: okfallback, image: hello.wasm,\n"
              "       terminationMessagePolicy: FallbackToLogsOnError}\n",
              NULL);
    wait_done(w, 5000);
    json_t *st = status_of(f, w);
    assert_string_equal(sget(terminated(cstatus(st, false, 0)), "message"), "all done");
    /* A file an earlier run (here another container) left is not this run's. */
    assert_null(json_object_get(terminated(cstatus(st, false, 1)), "message"));
    assert_string_equal(sget(terminated(cstatus(st, false, 2)), "message"), "it broke\n");
    assert_null(json_object_get(terminated(cstatus(st, false, 3)), "message"));
    /* Logs only on error. */
    assert_null(json_object_get(terminated(cstatus(st, false, 4)), "message"));
    done_with(f, w);
}

static void state_file_round_trip(void **state)
{
    fixture_t *f = *state;
    pod_worker_t *w =
        start(f,
              "apiVersion: v1\nkind: Pod\nmetadata: {name: sf, uid: sf-1}\n"
              "spec:\n  restartPolicy: Never\n  containers: [{name: a, image: hello.wasm}]\n",
              NULL);
    wait_done(w, 3000);
    char *dir = xasprintf("%s/pods/sf-1", f->tmp);
    json_t *none = pod_state_load(dir); /* nothing saved yet */
    assert_null(none);
    err_t err;
    assert_int_equal(pod_state_save(dir, w, &err), 0);
    json_t *loaded = pod_state_load(dir);
    json_t *now = pod_worker_resume_json(w);
    assert_true(json_equal(loaded, now));
    json_decref(loaded);
    json_decref(now);
    char *path = pod_state_path(dir);
    assert_int_equal(fs_write_replace(path, "[1,2", 4, 0600, NULL), 0);
    assert_null(pod_state_load(dir));
    free(path);
    free(dir);
    done_with(f, w);
}

int main(void)
{
    diag_set_level(DIAG_WARN); /* the workers' events are recorded, not printed */
    wasm_signals_save();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(never_succeeds, setup, teardown),
        cmocka_unit_test_setup_teardown(late_stop_keeps_outcome, setup, teardown),
        cmocka_unit_test_setup_teardown(pull_events_say_whether_the_registry_was_asked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(summaries_and_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(on_failure_crash_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(always_restarts_success, setup, teardown),
        cmocka_unit_test_setup_teardown(init_containers_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(failing_init_fails_pod, setup, teardown),
        cmocka_unit_test_setup_teardown(sidecar_runs_alongside, setup, teardown),
        cmocka_unit_test_setup_teardown(deadline_exceeded, setup, teardown),
        cmocka_unit_test_setup_teardown(deadline_covers_init_containers, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_running_pod, setup, teardown),
        cmocka_unit_test_setup_teardown(status_json_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(env_reaches_module, setup, teardown),
        cmocka_unit_test_setup_teardown(setup_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(resume_skips_done, setup, teardown),
        cmocka_unit_test_setup_teardown(cri_logs_written, setup, teardown),
        cmocka_unit_test_setup_teardown(free_without_pod_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(deadline_fires_once, setup, teardown),
        cmocka_unit_test_setup_teardown(status_read_keeps_ready_time, setup, teardown),
        cmocka_unit_test_setup_teardown(update_lowers_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(update_image_restarts_container, setup, teardown),
        cmocka_unit_test_setup_teardown(resize_live_refused_and_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(resize_restart_policy_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(resize_allocation_survives_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(node_shutdown_disruption_target, setup, teardown),
        cmocka_unit_test_setup_teardown(termination_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(state_file_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(start_trace_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(running_pod_holds_only_container_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(handed_over_pod_keeps_no_thread_stack, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
