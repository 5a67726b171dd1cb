/* test_pod_lifecycle.c: unit tests for pod/lifecycle.h, the tables of
 * the pod's and the containers' state machines, and for the one function
 * per machine that moves it (refusing what the tables refuse, keeping the
 * Ready condition at the transition and not elsewhere). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/manifest.h"
#include "pod/lifecycle.h"
#include "pod/worker_priv.h"
#include "util/diag.h"
#include "util/sync.h"
#include "util/time.h"

#include <string.h>

static void pod_moves(void **state)
{
    (void)state;
    /* The forward path. */
    assert_true(pod_lifecycle_pod_legal(PLC_STARTING, PLC_INITIALIZING));
    assert_true(pod_lifecycle_pod_legal(PLC_INITIALIZING, PLC_RUNNING));
    assert_true(pod_lifecycle_pod_legal(PLC_RUNNING, PLC_STOPPING));
    assert_true(pod_lifecycle_pod_legal(PLC_STOPPING, PLC_FINISHED));
    /* A stop from every live state; FINISHED directly only without a
     * thread (from STARTING). */
    assert_true(pod_lifecycle_pod_legal(PLC_STARTING, PLC_STOPPING));
    assert_true(pod_lifecycle_pod_legal(PLC_INITIALIZING, PLC_STOPPING));
    assert_true(pod_lifecycle_pod_legal(PLC_STARTING, PLC_FINISHED));
    assert_false(pod_lifecycle_pod_legal(PLC_RUNNING, PLC_FINISHED));
    assert_false(pod_lifecycle_pod_legal(PLC_INITIALIZING, PLC_FINISHED));
    /* Never backwards, never out of FINISHED, never to itself. */
    for (int to = 0; to < PLC_COUNT; to++)
        assert_false(pod_lifecycle_pod_legal(PLC_FINISHED, (pod_lc_t)to));
    for (int s = 0; s < PLC_COUNT; s++) {
        assert_false(pod_lifecycle_pod_legal((pod_lc_t)s, (pod_lc_t)s));
        for (int to = 0; to < s; to++)
            assert_false(pod_lifecycle_pod_legal((pod_lc_t)s, (pod_lc_t)to));
    }
    assert_false(pod_lifecycle_pod_legal(PLC_COUNT, PLC_RUNNING));
    assert_false(pod_lifecycle_pod_legal((pod_lc_t)-1, PLC_RUNNING));
    assert_string_equal(pod_lifecycle_pod_name(PLC_STOPPING), "Stopping");
    assert_string_equal(pod_lifecycle_pod_name(PLC_COUNT), "?");
}

static void container_moves(void **state)
{
    (void)state;
    assert_true(pod_lifecycle_container_legal(CLC_NEW, CLC_PREPARING));
    assert_true(pod_lifecycle_container_legal(CLC_PREPARING, CLC_RUNNING));
    assert_true(pod_lifecycle_container_legal(CLC_RUNNING, CLC_EXITED));
    assert_true(pod_lifecycle_container_legal(CLC_EXITED, CLC_BACKOFF));
    assert_true(pod_lifecycle_container_legal(CLC_BACKOFF, CLC_PREPARING));
    assert_true(pod_lifecycle_container_legal(CLC_EXITED, CLC_PREPARING)); /* redefined */
    assert_true(pod_lifecycle_container_legal(CLC_PREPARING, CLC_PREPARING));
    assert_true(pod_lifecycle_container_legal(CLC_PREPARING, CLC_EXITED)); /* StartError */
    /* A running module only ever exits: it is never DONE or back in
     * preparation without its end recorded. */
    for (int to = 0; to < CLC_COUNT; to++)
        assert_int_equal(pod_lifecycle_container_legal(CLC_RUNNING, (container_lc_t)to),
                         to == CLC_EXITED);
    for (int to = 0; to < CLC_COUNT; to++)
        assert_false(pod_lifecycle_container_legal(CLC_DONE, (container_lc_t)to));
    /* Every other state may end. */
    for (int s = 0; s < CLC_COUNT; s++)
        if (s != CLC_RUNNING && s != CLC_DONE)
            assert_true(pod_lifecycle_container_legal((container_lc_t)s, CLC_DONE));
    assert_false(pod_lifecycle_container_legal(CLC_NEW, CLC_RUNNING));
    assert_false(pod_lifecycle_container_legal(CLC_BACKOFF, CLC_RUNNING));
    assert_string_equal(pod_lifecycle_container_name(CLC_BACKOFF), "BackOff");
    assert_string_equal(pod_lifecycle_container_name((container_lc_t)99), "?");
}

/* A worker built by hand, no threads: what the transition functions see. */
typedef struct fake {
    pod_worker_t w;
    crun_t app;
    podspec_t *spec;
} fake_t;

static void fake_init(fake_t *f)
{
    memset(f, 0, sizeof *f);
    static const char *yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: n}\n"
                              "spec:\n  containers: [{name: app, image: a.wasm}]\n";
    json_t *docs;
    err_t err;
    assert_int_equal(manifest_parse(yaml, strlen(yaml), &docs, &err), 0);
    assert_int_equal(podspec_parse(json_array_get(docs, 0), &f->spec, &err), 0);
    json_decref(docs);
    atomic_init(&f->w.spec, f->spec);
    pthread_mutex_init(&f->w.lock, NULL);
    cond_init_monotonic(&f->w.cond);
    f->w.apps = &f->app;
    f->w.napps = 1;
    f->w.start_time = time_now_ns();
    f->app.w = &f->w;
    f->app.name = "app";
    f->app.spec = &f->spec->containers[0];
    /* No probes: started and ready once running (probes.c sets these). */
    f->app.started = f->app.probe_ready = true;
    cstate_set(&f->app.state, CSTATE_WAITING, "ContainerCreating", NULL);
}

static void fake_free(fake_t *f)
{
    pthread_cond_destroy(&f->w.cond);
    pthread_mutex_destroy(&f->w.lock);
    podspec_free(f->spec);
}

static void transitions_refuse_and_keep_ready(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    pthread_mutex_lock(&f.w.lock);
    /* Refused: no change. */
    assert_false(pod_transition_locked(&f.w, PLC_RUNNING));
    assert_int_equal(f.w.lc, PLC_STARTING);
    assert_false(crun_transition_locked(&f.w, &f.app, CLC_RUNNING));
    assert_int_equal(f.app.lc, CLC_NEW);
    /* The pod's condition times are set by its transitions. */
    assert_true(pod_transition_locked(&f.w, PLC_INITIALIZING));
    assert_true(f.w.t_ready_to_start > 0);
    assert_int_equal(f.w.t_initialized, 0);
    assert_true(pod_transition_locked(&f.w, PLC_RUNNING));
    assert_true(f.w.t_initialized > 0);
    assert_false(f.w.ready);
    /* Ready comes with the container's move to RUNNING, and its time is
     * that move's. */
    assert_true(crun_transition_locked(&f.w, &f.app, CLC_PREPARING));
    assert_false(f.w.ready);
    cstate_set(&f.app.state, CSTATE_RUNNING, NULL, NULL);
    int64_t before = time_now_ns();
    assert_true(crun_transition_locked(&f.w, &f.app, CLC_RUNNING));
    assert_true(f.w.ready);
    int64_t t_ready = f.w.t_ready;
    assert_true(t_ready >= before);
    /* Rendering the status (twice) changes nothing. */
    json_t *a = pod_status_json_locked(&f.w);
    time_sleep_ms(2);
    json_t *b = pod_status_json_locked(&f.w);
    assert_true(json_equal(a, b));
    assert_int_equal(f.w.t_ready, t_ready);
    json_decref(a);
    json_decref(b);
    cstate_set(&f.app.state, CSTATE_TERMINATED, "Completed", NULL);
    assert_true(crun_transition_locked(&f.w, &f.app, CLC_EXITED));
    assert_false(f.w.ready);
    assert_true(f.w.t_ready > t_ready);
    assert_true(crun_transition_locked(&f.w, &f.app, CLC_DONE));
    assert_false(crun_transition_locked(&f.w, &f.app, CLC_PREPARING));
    assert_true(pod_transition_locked(&f.w, PLC_STOPPING));
    assert_true(pod_transition_locked(&f.w, PLC_FINISHED));
    assert_false(pod_transition_locked(&f.w, PLC_STOPPING));
    assert_int_equal(f.w.lc, PLC_FINISHED);
    pthread_mutex_unlock(&f.w.lock);
    fake_free(&f);
}

int main(void)
{
    diag_set_level(DIAG_ERROR); /* the refused moves above log an error each, on purpose */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pod_moves),
        cmocka_unit_test(container_moves),
        cmocka_unit_test(transitions_refuse_and_keep_ready),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
