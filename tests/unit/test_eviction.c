/* test_eviction.c: the eviction manager's pure parts (pod/eviction.h):
 * threshold flags as the kubelet writes them, their evaluation (hard,
 * soft with grace, the transition period), the kubelet's ranking, its
 * messages, a pod's figures from its JSON; and the descriptor limits of
 * util/proc.h and Go durations of util/time.h that the node's flags use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pod/eviction.h"
#include "util/proc.h"
#include "util/time.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define MI (INT64_C(1024) * 1024)
#define GI (MI * 1024)

static void defaults_and_flags(void **state)
{
    (void)state;
    eviction_config_t c;
    eviction_config_default(&c);
    assert_true(c.hard[EVICT_MEMORY_AVAILABLE].set);
    assert_false(c.hard[EVICT_MEMORY_AVAILABLE].percent);
    assert_true(c.hard[EVICT_MEMORY_AVAILABLE].quantity == 100 * MI);
    assert_string_equal(c.hard[EVICT_MEMORY_AVAILABLE].text, "100Mi");
    assert_true(c.hard[EVICT_NODEFS_AVAILABLE].percent);
    assert_true(eviction_threshold_amount(&c.hard[EVICT_NODEFS_AVAILABLE], 1000) == 100);
    assert_true(eviction_threshold_amount(&c.hard[EVICT_NODEFS_INODES_FREE], 1000) == 50);
    assert_true(c.transition_ns == 300 * NS_PER_SEC);
    for (int s = 0; s < EVICT_SIGNALS; s++)
        assert_false(c.soft[s].set);

    err_t err;
    /* Giving the flag replaces the defaults: nodefs is no longer watched. */
    assert_int_equal(eviction_parse_thresholds("memory.available<1.5Gi", c.hard, &err), 0);
    assert_true(c.hard[EVICT_MEMORY_AVAILABLE].quantity == GI + GI / 2);
    assert_false(c.hard[EVICT_NODEFS_AVAILABLE].set);
    assert_int_equal(
        eviction_parse_thresholds("nodefs.available<25%, nodefs.inodesFree<1000", c.hard, &err), 0);
    assert_false(c.hard[EVICT_MEMORY_AVAILABLE].set);
    assert_true(eviction_threshold_amount(&c.hard[EVICT_NODEFS_AVAILABLE], 400) == 100);
    assert_true(c.hard[EVICT_NODEFS_INODES_FREE].quantity == 1000);
    assert_int_equal(eviction_parse_thresholds("", c.hard, &err), 0);
    for (int s = 0; s < EVICT_SIGNALS; s++)
        assert_false(c.hard[s].set);

    const char *bad[] = {"memory.available>1Gi",
                         "memory.free<1Gi",
                         "memory.available<",
                         "memory.available<1x",
                         "nodefs.available<0%",
                         "nodefs.available<101%",
                         "memory.available<1Gi,memory.available<2Gi",
                         "memory.available<-1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        eviction_threshold_t t[EVICT_SIGNALS] = {{0}};
        err.msg[0] = '\0';
        assert_int_equal(eviction_parse_thresholds(bad[i], t, &err), -1);
        assert_true(err.msg[0] != '\0');
    }

    /* Soft thresholds need their grace periods. */
    assert_int_equal(eviction_parse_thresholds("memory.available<2Gi", c.soft, &err), 0);
    assert_int_equal(eviction_config_check(&c, &err), -1);
    assert_non_null(strstr(err.msg, "memory.available"));
    assert_int_equal(eviction_parse_grace("memory.available=1m30s", c.soft, &err), 0);
    assert_true(c.soft[EVICT_MEMORY_AVAILABLE].grace_ns == 90 * NS_PER_SEC);
    assert_int_equal(eviction_config_check(&c, &err), 0);
    assert_int_equal(eviction_parse_grace("memory.available=soon", c.soft, &err), -1);
    assert_int_equal(eviction_parse_grace("pids.available=1s", c.soft, &err), -1);
}

static void durations(void **state)
{
    (void)state;
    int64_t ns;
    assert_int_equal(time_parse_duration("1m30s", &ns), 0);
    assert_true(ns == 90 * NS_PER_SEC);
    assert_int_equal(time_parse_duration("1.5h", &ns), 0);
    assert_true(ns == 5400 * NS_PER_SEC);
    assert_int_equal(time_parse_duration("250ms", &ns), 0);
    assert_true(ns == 250 * NS_PER_MS);
    assert_int_equal(time_parse_duration("2us3ns", &ns), 0);
    assert_true(ns == 2003);
    assert_int_equal(time_parse_duration("0", &ns), 0);
    assert_true(ns == 0);
    assert_int_equal(time_parse_duration(".5s", &ns), 0);
    assert_true(ns == NS_PER_SEC / 2);
    const char *bad[] = {"", "5", "s", "-1s", "1d", "1.s5", "9999999999999h", "1m 2s"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(time_parse_duration(bad[i], &ns), -1);
}

static eviction_observation_t obs(int64_t mem_avail, int64_t disk_avail)
{
    eviction_observation_t o = {0};
    o.available[EVICT_MEMORY_AVAILABLE] = mem_avail;
    o.capacity[EVICT_MEMORY_AVAILABLE] = 8 * GI;
    o.known[EVICT_MEMORY_AVAILABLE] = true;
    o.available[EVICT_NODEFS_AVAILABLE] = disk_avail;
    o.capacity[EVICT_NODEFS_AVAILABLE] = 1000 * MI;
    o.known[EVICT_NODEFS_AVAILABLE] = true;
    o.available[EVICT_NODEFS_INODES_FREE] = 100000;
    o.capacity[EVICT_NODEFS_INODES_FREE] = 100000;
    o.known[EVICT_NODEFS_INODES_FREE] = true;
    return o;
}

static void evaluate_hard_soft_transition(void **state)
{
    (void)state;
    eviction_config_t c;
    eviction_config_default(&c);
    err_t err;
    assert_int_equal(eviction_parse_thresholds("memory.available<1Gi", c.soft, &err), 0);
    assert_int_equal(eviction_parse_grace("memory.available=30s", c.soft, &err), 0);
    c.transition_ns = 60 * NS_PER_SEC;
    eviction_state_t st = {0};
    eviction_verdict_t v;
    int64_t t = 1000 * NS_PER_SEC;

    eviction_observation_t o = obs(4 * GI, 500 * MI);
    eviction_evaluate(&c, &st, &o, t, &v);
    assert_false(v.evict);
    assert_false(v.memory_pressure);
    assert_false(v.disk_pressure);

    /* Soft met: the condition at once, eviction only after the grace. */
    o = obs(512 * MI, 500 * MI);
    eviction_evaluate(&c, &st, &o, t + NS_PER_SEC, &v);
    assert_true(v.memory_pressure);
    assert_false(v.evict);
    eviction_evaluate(&c, &st, &o, t + 30 * NS_PER_SEC, &v);
    assert_false(v.evict);
    eviction_evaluate(&c, &st, &o, t + 31 * NS_PER_SEC, &v);
    assert_true(v.evict);
    assert_int_equal(v.signal, EVICT_MEMORY_AVAILABLE);
    assert_string_equal(v.threshold_text, "1Gi");
    assert_true(v.available == 512 * MI);

    /* Recovered: no eviction; the condition holds for the transition
     * period, then clears. A soft threshold met again starts its grace
     * anew. */
    o = obs(4 * GI, 500 * MI);
    eviction_evaluate(&c, &st, &o, t + 40 * NS_PER_SEC, &v);
    assert_false(v.evict);
    assert_true(v.memory_pressure);
    eviction_evaluate(&c, &st, &o, t + 92 * NS_PER_SEC, &v);
    assert_false(v.memory_pressure);
    o = obs(512 * MI, 500 * MI);
    eviction_evaluate(&c, &st, &o, t + 100 * NS_PER_SEC, &v);
    assert_false(v.evict);

    /* Hard: at once, and memory before disk. */
    o = obs(50 * MI, 50 * MI);
    eviction_evaluate(&c, &st, &o, t + 101 * NS_PER_SEC, &v);
    assert_true(v.evict);
    assert_int_equal(v.signal, EVICT_MEMORY_AVAILABLE);
    assert_string_equal(v.threshold_text, "100Mi");
    assert_true(v.met[EVICT_NODEFS_AVAILABLE]);
    assert_true(v.disk_pressure);
    /* A percentage reads as the amount it comes to, as the kubelet's
     * message shows it. */
    o = obs(4 * GI, 50 * MI);
    eviction_evaluate(&c, &st, &o, t + 102 * NS_PER_SEC, &v);
    assert_int_equal(v.signal, EVICT_NODEFS_AVAILABLE);
    assert_string_equal(v.threshold_text, "104857600");
    /* An unknown signal never evicts. */
    o = obs(0, 0);
    o.known[EVICT_MEMORY_AVAILABLE] = o.known[EVICT_NODEFS_AVAILABLE] = false;
    eviction_evaluate(&c, &st, &o, t + 103 * NS_PER_SEC, &v);
    assert_false(v.evict);
}

static eviction_candidate_t cand(const char *name, int64_t prio, int64_t usage, int64_t request)
{
    eviction_candidate_t c = {0};
    c.priority = prio;
    c.usage = usage;
    c.request = request;
    c.ncontainers = 1;
    snprintf(c.containers[0].name, sizeof c.containers[0].name, "%s", name);
    c.containers[0].usage = usage;
    c.containers[0].request = request;
    c.ref = (void *)name;
    return c;
}

static void ranking(void **state)
{
    (void)state;
    eviction_candidate_t c[] = {
        cand("guaranteed-big", 0, 900 * MI, 1 * GI),   /* within requests */
        cand("high-over", 1000, 200 * MI, 100 * MI),   /* over, high priority */
        cand("low-over-small", 0, 150 * MI, 100 * MI), /* over by 50Mi */
        cand("low-over-large", 0, 600 * MI, 100 * MI), /* over by 500Mi */
        cand("critical", 2000001000, 4 * GI, 0),
        cand("besteffort-idle", 0, 0, 0), /* not over: 0 > 0 is false */
        cand("low-prio-within", -10, 10 * MI, 64 * MI),
    };
    c[4].critical = true;
    size_t n = sizeof c / sizeof *c;
    eviction_rank(c, n);
    const char *want[] = {"low-over-large",  "low-over-small", "high-over", "low-prio-within",
                          "besteffort-idle", "guaranteed-big", "critical"};
    for (size_t i = 0; i < n; i++)
        assert_string_equal((const char *)c[i].ref, want[i]);
}

static void messages(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(eviction_format_bytes(100 * MI, buf, sizeof buf), "100Mi");
    assert_string_equal(eviction_format_bytes(91264 * 1024, buf, sizeof buf), "91264Ki");
    assert_string_equal(eviction_format_bytes(1023, buf, sizeof buf), "1023");
    assert_string_equal(eviction_format_bytes(0, buf, sizeof buf), "0");
    assert_string_equal(eviction_format_bytes(3 * GI, buf, sizeof buf), "3Gi");

    eviction_verdict_t v = {
        .evict = true, .signal = EVICT_MEMORY_AVAILABLE, .available = 91264 * 1024};
    snprintf(v.threshold_text, sizeof v.threshold_text, "100Mi");
    eviction_candidate_t c = cand("app", 0, 512 * MI, 0);
    c.ncontainers = 2;
    snprintf(c.containers[1].name, sizeof c.containers[1].name, "side");
    c.containers[1].usage = 10 * MI;
    c.containers[1].request = 64 * MI;
    char msg[1024];
    eviction_message(&v, &c, msg, sizeof msg);
    assert_string_equal(msg, "The node was low on resource: memory. Threshold quantity: 100Mi, "
                             "available: 91264Ki. Container app was using 512Mi, request is 0, "
                             "has larger consumption of memory. ");
    v.signal = EVICT_NODEFS_AVAILABLE;
    snprintf(v.threshold_text, sizeof v.threshold_text, "4902142351");
    eviction_message(&v, NULL, msg, sizeof msg);
    assert_string_equal(msg, "The node was low on resource: ephemeral-storage. Threshold "
                             "quantity: 4902142351, available: 91264Ki. ");
}

static void pod_figures(void **state)
{
    (void)state;
    json_t *pod = json_loads("{\"spec\":{\"priority\":1000,"
                             "\"containers\":["
                             " {\"name\":\"a\",\"resources\":{\"requests\":{\"memory\":\"64Mi\"},"
                             "   \"limits\":{\"ephemeral-storage\":\"10Mi\"}}},"
                             " {\"name\":\"b\",\"resources\":{\"limits\":{\"memory\":\"128Mi\","
                             "   \"ephemeral-storage\":\"5Mi\"}}},"
                             " {\"name\":\"c\"}],"
                             "\"initContainers\":[{\"name\":\"i\",\"resources\":{\"limits\":"
                             "   {\"ephemeral-storage\":\"1Gi\"}}}]}}",
                             0, NULL);
    assert_non_null(pod);
    bool critical = true;
    assert_true(eviction_pod_priority(pod, &critical) == 1000);
    assert_false(critical);
    eviction_candidate_t c;
    eviction_pod_requests(pod, "memory", &c);
    assert_int_equal(c.ncontainers, 3);
    assert_string_equal(c.containers[0].name, "a");
    assert_true(c.containers[0].request == 64 * MI);
    assert_true(c.containers[1].request == 128 * MI); /* the limit, as defaulting does */
    assert_true(c.containers[2].request == 0);
    assert_true(c.request == 192 * MI);
    /* The init container's larger limit wins over the app containers' sum. */
    assert_true(eviction_pod_storage_limit(pod) == GI);
    json_array_clear(json_object_get(json_object_get(pod, "spec"), "initContainers"));
    assert_true(eviction_pod_storage_limit(pod) == 15 * MI);
    const char *text = NULL;
    json_t *a = json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
    assert_true(eviction_container_storage_limit(a, &text) == 10 * MI);
    assert_string_equal(text, "10Mi");
    json_decref(pod);

    pod = json_loads("{\"spec\":{\"priority\":2000001000,\"containers\":[{\"name\":\"x\"}]}}", 0,
                     NULL);
    eviction_pod_priority(pod, &critical);
    assert_true(critical);
    assert_true(eviction_pod_storage_limit(pod) == 0);
    json_decref(pod);
    pod = json_loads("{\"spec\":{}}", 0, NULL);
    assert_true(eviction_pod_priority(pod, NULL) == 0);
    eviction_pod_requests(pod, "memory", &c);
    assert_int_equal(c.ncontainers, 0);
    json_decref(pod);
}

static void shared_state(void **state)
{
    (void)state;
    eviction_config_t c;
    eviction_config_default(&c);
    err_t err;
    /* A threshold no machine meets and one every machine meets. */
    assert_int_equal(eviction_parse_thresholds("memory.available<1Ki", c.hard, &err), 0);
    pod_eviction_t *ev = pod_eviction_new(&c);
    bool mem = true, disk = true;
    pod_eviction_pressure(ev, &mem, &disk);
    assert_false(mem);
    assert_false(disk);
    eviction_verdict_t v;
    pod_eviction_update(ev, "/", time_mono_ns(), &v);
    assert_false(v.evict);
    pod_eviction_free(ev);

    assert_int_equal(
        eviction_parse_thresholds("memory.available<1000Ti,nodefs.available<100%", c.hard, &err),
        0);
    ev = pod_eviction_new(&c);
    pod_eviction_update(ev, "/", time_mono_ns(), &v);
    assert_true(v.evict);
    assert_int_equal(v.signal, EVICT_MEMORY_AVAILABLE);
    assert_true(v.available > 0);
    pod_eviction_pressure(ev, &mem, &disk);
    assert_true(mem);
    assert_true(disk);
    pod_eviction_count(ev, EVICT_MEMORY_AVAILABLE);
    pod_eviction_count(ev, EVICT_SIGNALS);
    assert_true(pod_eviction_total(ev) == 2);
    pod_eviction_free(ev);
}

static void nofile(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    /* Lower the soft limit, then raise it back: to the hard limit. */
    struct rlimit low = {.rlim_cur = rl.rlim_max > 512 ? 512 : rl.rlim_max,
                         .rlim_max = rl.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    uint64_t soft, hard;
    proc_nofile_limits(&soft, &hard);
    assert_true(soft == low.rlim_cur);
    /* Soft up to hard, and hard up to fs.nr_open (at most PROC_NOFILE_MAX)
     * when the process may raise it (root with CAP_SYS_RESOURCE). */
    unsigned long long nr_open = 0;
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    if (f) {
        if (fscanf(f, "%llu", &nr_open) != 1) nr_open = 0;
        fclose(f);
    }
    uint64_t ceiling = nr_open > PROC_NOFILE_MAX ? PROC_NOFILE_MAX : nr_open;
    uint64_t got = proc_raise_nofile();
    proc_nofile_limits(&soft, &hard);
    assert_true(soft == got);
    assert_true(soft == hard);
    assert_true(hard == (uint64_t)rl.rlim_max || (hard == ceiling && ceiling > rl.rlim_max));
    /* A process that may raise its hard limit (root with CAP_SYS_RESOURCE)
     * gets the ceiling: if this one could raise it, proc_raise_nofile must
     * have. */
    struct rlimit up = {.rlim_cur = rl.rlim_max + 1, .rlim_max = rl.rlim_max + 1};
    bool may = ceiling > rl.rlim_max && hard == ceiling;
    if (!may && ceiling > rl.rlim_max && setrlimit(RLIMIT_NOFILE, &up) == 0)
        fail_msg("the hard limit could be raised, but proc_raise_nofile did not");
    /* Back to what the test began with, for the tests that follow. */
    if (hard > rl.rlim_max && setrlimit(RLIMIT_NOFILE, &rl) != 0) fail_msg("cannot restore");
    assert_true(proc_nofile_headroom(1024) == 256);
    assert_true(proc_nofile_headroom(300) == 150);
    assert_true(proc_nofile_headroom(1048576) == 131072);
    assert_true(proc_self_open_fds() >= 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_and_flags),
        cmocka_unit_test(durations),
        cmocka_unit_test(evaluate_hard_soft_transition),
        cmocka_unit_test(ranking),
        cmocka_unit_test(messages),
        cmocka_unit_test(pod_figures),
        cmocka_unit_test(shared_state),
        cmocka_unit_test(nofile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
