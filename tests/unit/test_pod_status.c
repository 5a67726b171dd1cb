/* test_pod_status.c: unit tests for pod/pod_status.c, Pod.status and the
 * phase rendered from a worker built by hand (no threads, no modules): the
 * kubelet's conditions, DisruptionTarget after a node shutdown, the
 * termination message in state and lastState, and the phase table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/manifest.h"
#include "pod/worker_priv.h"
#include "util/diag.h"
#include "util/time.h"

#include <string.h>

typedef struct fake {
    pod_worker_t w;
    crun_t apps[2];
    podspec_t *spec;
} fake_t;

static void fake_init(fake_t *f)
{
    memset(f, 0, sizeof *f);
    static const char *yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: n}\n"
                              "spec:\n  containers:\n"
                              "    - {name: a, image: a.wasm}\n"
                              "    - {name: b, image: b.wasm}\n";
    json_t *docs;
    err_t err;
    assert_int_equal(manifest_parse(yaml, strlen(yaml), &docs, &err), 0);
    assert_int_equal(podspec_parse(json_array_get(docs, 0), &f->spec, &err), 0);
    json_decref(docs);
    atomic_init(&f->w.spec, f->spec);
    pthread_mutex_init(&f->w.lock, NULL);
    f->w.apps = f->apps;
    f->w.napps = 2;
    f->w.start_time = time_now_ns();
    for (size_t i = 0; i < 2; i++) {
        f->apps[i].w = &f->w;
        f->apps[i].spec = &f->spec->containers[i];
        f->apps[i].name = f->apps[i].spec->name;
        cstate_set(&f->apps[i].state, CSTATE_WAITING, "ContainerCreating", NULL);
    }
    pthread_mutex_lock(&f->w.lock);
}

static void fake_free(fake_t *f)
{
    for (size_t i = 0; i < sizeof f->apps / sizeof f->apps[0]; i++) {
        cstate_clear(&f->apps[i].state);
        cstate_clear(&f->apps[i].last);
    }
    pthread_mutex_unlock(&f->w.lock);
    pthread_mutex_destroy(&f->w.lock);
    podspec_free(f->spec);
}

static void terminate(crun_t *c, int code, const char *reason, const char *msg)
{
    cstate_set(&c->state, CSTATE_TERMINATED, reason, msg);
    c->state.exit_code = code;
    c->state.started_at = 1;
    c->state.finished_at = 2;
    c->lc = CLC_DONE;
    c->runs = 1;
}

static json_t *cond_of(json_t *st, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(st, "conditions"), i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "type")), type) == 0) return c;
    }
    return NULL;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void phases(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    assert_string_equal(pod_phase_locked(&f.w), "Pending"); /* not initialized */
    f.w.t_initialized = time_now_ns();
    assert_string_equal(pod_phase_locked(&f.w), "Pending"); /* both waiting */
    cstate_set(&f.apps[0].state, CSTATE_RUNNING, NULL, NULL);
    f.apps[0].lc = CLC_RUNNING;
    /* One running, one never started: Pending, as the kubelet says (so the
     * phase cannot go back from Running if the running one ends first). */
    assert_string_equal(pod_phase_locked(&f.w), "Pending");
    f.apps[1].runs = 1;
    f.apps[1].lc = CLC_RUNNING;
    cstate_set(&f.apps[1].state, CSTATE_RUNNING, NULL, NULL);
    assert_string_equal(pod_phase_locked(&f.w), "Running");
    f.apps[1].runs = 0;
    f.apps[1].lc = CLC_PREPARING;
    cstate_set(&f.apps[1].state, CSTATE_WAITING, "CreateContainerConfigError", NULL);
    terminate(&f.apps[0], 0, "Completed", NULL);
    assert_string_equal(pod_phase_locked(&f.w), "Pending"); /* done + never started */
    /* One done, one that ran before and waits to restart: Running. */
    f.apps[1].runs = 1;
    f.apps[1].lc = CLC_BACKOFF;
    assert_string_equal(pod_phase_locked(&f.w), "Running");
    terminate(&f.apps[1], 0, "Completed", NULL);
    assert_string_equal(pod_phase_locked(&f.w), "Succeeded");
    terminate(&f.apps[1], 3, "Error", NULL);
    assert_string_equal(pod_phase_locked(&f.w), "Failed");
    terminate(&f.apps[1], 0, "Completed", NULL);
    /* The pod's own verdict comes first. */
    f.w.failed = true;
    assert_string_equal(pod_phase_locked(&f.w), "Failed");
    fake_free(&f);
}

static void shutdown_condition_and_messages(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    f.w.t_ready_to_start = f.w.t_initialized = time_now_ns();
    f.w.lc = PLC_FINISHED;
    json_t *st = pod_status_json_locked(&f.w);
    assert_null(cond_of(st, "DisruptionTarget"));
    assert_int_equal(json_array_size(json_object_get(st, "conditions")), 5);
    json_decref(st);

    f.w.failed = true;
    snprintf(f.w.reason, sizeof f.w.reason, "%s", POD_NODE_SHUTDOWN_REASON);
    snprintf(f.w.message, sizeof f.w.message, "%s", POD_NODE_SHUTDOWN_MESSAGE);
    f.w.t_disruption = time_now_ns();
    /* a: a run that left a termination message, restarted, then killed */
    terminate(&f.apps[0], 1, "Error", "last words\n");
    cstate_copy(&f.apps[0].last, &f.apps[0].state);
    terminate(&f.apps[0], 137, "Error", "");
    terminate(&f.apps[1], 0, "Completed", "done: all good");
    st = pod_status_json_locked(&f.w);
    assert_string_equal(str(st, "phase"), "Failed");
    assert_string_equal(str(st, "reason"), "Terminated");
    assert_string_equal(str(st, "message"),
                        "Pod was terminated in response to imminent node shutdown.");
    json_t *dt = cond_of(st, "DisruptionTarget");
    assert_non_null(dt);
    assert_string_equal(str(dt, "status"), "True");
    assert_string_equal(str(dt, "reason"), "TerminationByKubelet");
    assert_string_equal(str(dt, "message"),
                        "Pod was terminated in response to imminent node shutdown.");
    int64_t ns;
    assert_int_equal(time_parse_rfc3339(str(dt, "lastTransitionTime"), &ns), 0);
    assert_string_equal(str(cond_of(st, "Ready"), "status"), "False");
    json_t *cs = json_object_get(st, "containerStatuses");
    json_t *a_last =
        json_object_get(json_object_get(json_array_get(cs, 0), "lastState"), "terminated");
    assert_string_equal(str(a_last, "message"), "last words\n");
    json_t *a_now = json_object_get(json_object_get(json_array_get(cs, 0), "state"), "terminated");
    assert_null(json_object_get(a_now, "message")); /* empty: absent */
    json_t *b_now = json_object_get(json_object_get(json_array_get(cs, 1), "state"), "terminated");
    assert_string_equal(str(b_now, "message"), "done: all good");
    /* No restart yet: lastState is an empty object. */
    assert_int_equal(json_object_size(json_object_get(json_array_get(cs, 1), "lastState")), 0);
    json_decref(st);
    fake_free(&f);
}

int main(void)
{
    diag_set_level(DIAG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(phases),
        cmocka_unit_test(shutdown_condition_and_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
