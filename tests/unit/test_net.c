/* test_net.c: unit tests for net/: the default network config, config
 * discovery, the CNI plugin call (environment, stdin, order, errors,
 * timeouts) against scripted plugins, network namespaces and sockets in
 * them, wasmlet's own pod addresses (ipam.c), and whole pod sandboxes
 * with Debian's real plugins (ptp, static with those addresses, portmap):
 * an address from the pod CIDR, read back after a restart, a TCP exchange
 * from the host to a listener in the pod, hostPort through portmap, CHECK,
 * DEL leaving no veth, namespace or address held, and the GC of
 * orphans; and pod workers with a sandbox (pod/sandbox.c): the pod IP in
 * the status, the namespace its sockets use, DEL when the pod stops, a
 * sandbox resumed after a restart (CHECK) or made anew when damaged, a pod
 * kept Pending with FailedCreatePodSandBox until the config works, pods on
 * the node's network, and the collector keeping live sandboxes.
 *
 * The namespace and sandbox tests need root and the plugins; they are
 * skipped (and say so) without them. Their traffic goes only to loopback
 * or to pod addresses inside namespaces these tests create, taken from
 * 198.18.16.0/24 (in the benchmarking block, the part the local cluster
 * leaves to tests); a machine-wide lock keeps two
 * runs of this program (other build dirs) from sharing that range. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kube/pod_spec.h"
#include "net/cni.h"
#include "net/net.h"
#include "pod/annotations.h"
#include "pod/worker.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"
#include "wasm/wasmrt.h"
#include "wasm_signals.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define POD_CIDR "198.18.16.0/24"
#define POD_PREFIX "198.18.16."

static const char *const plugin_dirs[] = {"/usr/lib/cni", "/opt/cni/bin", NULL};
static const char *real_bin = NULL; /* the dir holding Debian's plugins, or NULL */

/* --- fixture -------------------------------------------------------------------------- */

typedef struct fx {
    char *dir, *conf_dir, *run_dir, *state_dir, *bin_dir;
    const char *bins[3];
    net_config_t cfg; /* with the default config's addresses (cfg.ipam) */
} fx_t;

static fx_t *fx_new(void)
{
    fx_t *f = xcalloc(1, sizeof *f);
    char tmpl[] = "/tmp/wasmlet-test-net-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    f->dir = xstrdup(tmpl);
    f->conf_dir = fs_join(f->dir, "net.d");
    f->run_dir = fs_join(f->dir, "netns");
    f->state_dir = fs_join(f->dir, "sandboxes");
    f->bin_dir = fs_join(f->dir, "bin");
    assert_int_equal(mkdir(f->conf_dir, 0755), 0);
    assert_int_equal(mkdir(f->bin_dir, 0755), 0);
    /* Scripted plugins first, then the real ones. */
    f->bins[0] = f->bin_dir;
    f->bins[1] = real_bin;
    f->bins[2] = NULL;
    f->cfg = (net_config_t){f->conf_dir, f->bins, f->run_dir, f->state_dir, 0, NULL, false};
    err_t err;
    if (net_ipam_new(POD_CIDR, &f->cfg.ipam, &err) == -1) fail_msg("%s", err.msg);
    return f;
}

/* Destroys whatever sandboxes the test left (a failed assertion included),
 * then the run dir's mount and the tree. */
static void fx_free(fx_t *f)
{
    if (!f) return;
    err_t err;
    if (getuid() == 0) {
        if (net_sandbox_gc(&f->cfg, NULL, 0, &err) == -1) print_error("teardown gc: %s\n", err.msg);
        net_ns_run_dir_release(f->run_dir, NULL);
    }
    fs_rm_rf(f->dir, NULL);
    free(f->dir);
    free(f->conf_dir);
    free(f->run_dir);
    free(f->state_dir);
    net_ipam_free(f->cfg.ipam);
    free(f->bin_dir);
    free(f);
}

static int fx_setup(void **state)
{
    *state = fx_new();
    return 0;
}

static int fx_teardown(void **state)
{
    fx_free(*state);
    return 0;
}

static void put_file(const char *dir, const char *name, const char *text, mode_t mode)
{
    char *p = fs_join(dir, name);
    err_t err;
    if (fs_write_atomic(p, text, strlen(text), mode, &err) == -1) fail_msg("%s", err.msg);
    free(p);
}

static char *read_text(const char *dir, const char *name)
{
    char *p = fs_join(dir, name), *data = NULL;
    err_t err;
    if (fs_read_all(p, &data, NULL, &err) == -1) data = NULL;
    free(p);
    return data;
}

static bool exists(const char *dir, const char *name)
{
    char *p = name ? fs_join(dir, name) : xstrdup(dir);
    struct stat st;
    bool ok = lstat(p, &st) == 0;
    free(p);
    return ok;
}

static void write_default_conf(fx_t *f, bool ip_masq)
{
    net_default_opts_t o = {POD_CIDR, "wasmlet-test", ip_masq};
    char *p = fs_join(f->conf_dir, "10-wasmlet.conflist");
    err_t err;
    if (net_default_conf_write(p, &o, &err) == -1) fail_msg("%s", err.msg);
    free(p);
    f->cfg.default_list = true; /* as podnet.c says when it wrote it */
}

/* The types of the plugins a sandbox's state says its ADD ran, joined by
 * commas. */
static char *state_plugins(fx_t *f, const char *id)
{
    char *sdir = fs_join(f->state_dir, id);
    char *st = read_text(sdir, "sandbox.json");
    json_t *sj = st ? json_loads(st, 0, NULL) : NULL;
    strbuf_t sb = STRBUF_INIT;
    size_t i;
    json_t *pl;
    json_array_foreach(json_at(sj, "config", "plugins"), i, pl)
    {
        if (sb.len) strbuf_putc(&sb, ',');
        strbuf_puts(&sb, json_str_at(pl, "type"));
    }
    json_decref(sj);
    free(st);
    free(sdir);
    return strbuf_take(&sb);
}

static bool need_root_plugins(void)
{
    if (getuid() != 0) {
        print_message("SKIPPED: not root (network namespaces need CAP_SYS_ADMIN)\n");
        return false;
    }
    if (!real_bin) {
        print_message("SKIPPED: no CNI plugins (ptp, static, portmap) in "
                      "/usr/lib/cni or /opt/cni/bin\n");
        return false;
    }
    return true;
}

static const net_pod_t test_pod = {"shop", "web-1", "0f1e2d3c-aaaa-bbbb-cccc-000000000001", NULL,
                                   0};

/* --- the default config -------------------------------------------------------------- */

static void test_default_conf_json(void **state)
{
    (void)state;
    net_default_opts_t o = {"10.244.3.0/24", NULL, true};
    json_t *l;
    err_t err;
    if (net_default_conf(&o, &l, &err) == -1) fail_msg("%s", err.msg);
    assert_string_equal(json_str_at(l, "cniVersion"), "1.0.0");
    assert_string_equal(json_str_at(l, "name"), "wasmlet");
    json_t *plugins = json_at(l, "plugins");
    assert_int_equal(json_array_size(plugins), 2); /* ptp (static), portmap */
    json_t *ptp = json_array_get(plugins, 0);
    assert_string_equal(json_str_at(ptp, "type"), "ptp");
    assert_true(json_bool_at(ptp, 0, "ipMasq"));
    /* "static", its addresses wasmlet's to fill in at each ADD (ipam.c). */
    assert_string_equal(json_str_at(ptp, "ipam", "type"), "static");
    assert_null(json_at(ptp, "ipam", "addresses"));
    json_t *routes = json_at(ptp, "ipam", "routes");
    assert_int_equal(json_array_size(routes), 1);
    assert_string_equal(json_str_at(json_array_get(routes, 0), "dst"), "0.0.0.0/0");
    /* No loopback plugin: lo comes up with the namespace. */
    json_t *pm = json_array_get(plugins, 1);
    assert_string_equal(json_str_at(pm, "type"), "portmap");
    assert_true(json_bool_at(pm, 0, "capabilities", "portMappings"));
    assert_int_equal(cni_conf_validate(l, &err), 0);
    json_decref(l);

    /* Dual stack: a range set and a default route per family. */
    o = (net_default_opts_t){"10.244.3.0/24, fd00:10:244:3::/64", "n", false};
    if (net_default_conf(&o, &l, &err) == -1) fail_msg("%s", err.msg);
    ptp = json_array_get(json_at(l, "plugins"), 0);
    assert_false(json_bool_at(ptp, 1, "ipMasq"));
    routes = json_at(ptp, "ipam", "routes");
    assert_int_equal(json_array_size(routes), 2);
    assert_string_equal(json_str_at(json_array_get(routes, 1), "dst"), "::/0");
    assert_string_equal(json_str_at(l, "name"), "n");
    json_decref(l);

    /* What is not a pod range is refused, naming it. */
    const char *bad[] = {"",
                         "10.244.3.0",
                         "10.244.3.0/33",
                         "10.244.3.0/31",
                         "10.244.3.0/2x",
                         "banana/24",
                         "10.0.0.0/24,10.1.0.0/24",
                         "::/127"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = (net_default_opts_t){bad[i], NULL, false};
        l = NULL;
        assert_int_equal(net_default_conf(&o, &l, &err), -1);
        assert_null(l);
        assert_non_null(strstr(err.msg, "podCIDR"));
    }
}

/* Takes the next address of a and checks it is want (with its gateway). */
static void assign_expect(net_ipam_t *a, const char *want, const char *want_gw)
{
    json_t *conf = json_object();
    err_t err;
    if (net_ipam_assign(a, conf, &err) == -1) fail_msg("%s", err.msg);
    json_t *first = json_array_get(json_object_get(conf, "addresses"), 0);
    assert_string_equal(json_str_at(first, "address"), want);
    assert_string_equal(json_str_at(first, "gateway"), want_gw);
    json_decref(conf);
}

static void mark(net_ipam_t *a, const char *cidr, bool held)
{
    json_t *conf = json_pack("{s:[{s:s}]}", "addresses", "address", cidr);
    net_ipam_mark(a, conf, held);
    json_decref(conf);
}

static void test_ipam_ranges(void **state)
{
    (void)state;
    err_t err;
    net_ipam_t *a = NULL;
    /* A /29: .0 the network, .1 the gateway, .7 the broadcast; .2-.6 pods. */
    assert_int_equal(net_ipam_new("192.0.2.8/29", &a, &err), 0);
    const char *want[] = {"192.0.2.10/29", "192.0.2.11/29", "192.0.2.12/29", "192.0.2.13/29",
                          "192.0.2.14/29"};
    for (int i = 0; i < 5; i++)
        assign_expect(a, want[i], "192.0.2.9");
    assert_int_equal(net_ipam_used(a), 5);
    json_t *conf = json_object();
    assert_int_equal(net_ipam_assign(a, conf, &err), -1);
    assert_non_null(strstr(err.msg, "no IP addresses available in range 192.0.2.8/29"));
    assert_null(json_object_get(conf, "addresses"));
    json_decref(conf);
    /* Round robin: the freed address after the last one given comes
     * first, not the lowest freed. */
    mark(a, "192.0.2.10/29", false);
    mark(a, "192.0.2.12/29", false);
    assert_false(net_ipam_held(a, "192.0.2.10"));
    assign_expect(a, "192.0.2.10/29", "192.0.2.9"); /* after .14, round to .10 */
    assign_expect(a, "192.0.2.12/29", "192.0.2.9");
    mark(a, "192.0.2.11/29", false);
    mark(a, "192.0.2.13/29", false);
    assign_expect(a, "192.0.2.13/29", "192.0.2.9"); /* after .12: .13, not .11 */
    assign_expect(a, "192.0.2.11/29", "192.0.2.9");
    /* Addresses outside the pods' part are ignored. */
    mark(a, "192.0.2.9/29", false);
    mark(a, "192.0.2.15/29", true);
    mark(a, "198.51.100.2/24", true);
    assert_int_equal(net_ipam_used(a), 5);
    net_ipam_free(a);

    /* Dual stack: one of each, each with its own gateway. */
    assert_int_equal(net_ipam_new("10.1.0.0/16, fd00:1:2:3::/64", &a, &err), 0);
    conf = json_object();
    assert_int_equal(net_ipam_assign(a, conf, &err), 0);
    json_t *as = json_object_get(conf, "addresses");
    assert_int_equal(json_array_size(as), 2);
    assert_string_equal(json_str_at(json_array_get(as, 0), "address"), "10.1.0.2/16");
    assert_string_equal(json_str_at(json_array_get(as, 1), "address"), "fd00:1:2:3::2/64");
    assert_string_equal(json_str_at(json_array_get(as, 1), "gateway"), "fd00:1:2:3::1");
    assert_true(net_ipam_held(a, "fd00:1:2:3::2"));
    net_ipam_mark(a, conf, false);
    assert_int_equal(net_ipam_used(a), 0);
    json_decref(conf);
    /* Past the first 256 of a range, the carry into the next byte. */
    for (int i = 0; i < 300; i++) {
        conf = json_object();
        assert_int_equal(net_ipam_assign(a, conf, &err), 0);
        json_decref(conf);
    }
    assign_expect(a, "10.1.1.47/16", "10.1.0.1");
    net_ipam_free(a);

    /* A range that is not one. */
    const char *bad[] = {"",          "10.0.0.0/31", "10.0.0.0", "x/24", "10.0.0.0/24,10.1.0.0/24",
                         "fd00::/127"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        a = (net_ipam_t *)1;
        assert_int_equal(net_ipam_new(bad[i], &a, &err), -1);
    }
}

static void test_default_conf_write_and_load(void **state)
{
    fx_t *f = *state;
    write_default_conf(f, true);
    json_t *l;
    char *path;
    err_t err;
    if (cni_conf_load(f->conf_dir, &l, &path, &err) == -1) fail_msg("%s", err.msg);
    assert_non_null(strstr(path, "10-wasmlet.conflist"));
    assert_string_equal(json_str_at(l, "name"), "wasmlet-test");
    assert_string_equal(json_str_at(json_array_get(json_at(l, "plugins"), 0), "ipam", "type"),
                        "static");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    json_decref(l);
    free(path);
}

/* --- config discovery ------------------------------------------------------------------- */

static void test_conf_load_order_and_conversion(void **state)
{
    fx_t *f = *state;
    json_t *l = NULL;
    err_t err;
    assert_int_equal(cni_conf_load(f->conf_dir, &l, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no valid CNI network config"));

    /* Name order; broken files are skipped; a .conf becomes a list of one;
     * other extensions and dot files are not configs. */
    put_file(f->conf_dir, "05-notes.txt", "{}", 0644);
    put_file(f->conf_dir, ".00-hidden.conflist",
             "{\"cniVersion\":\"1.0.0\",\"name\":\"hidden\",\"plugins\":[{\"type\":\"ptp\"}]}",
             0644);
    put_file(f->conf_dir, "10-broken.conflist", "{\"cniVersion\": ", 0644);
    put_file(f->conf_dir, "15-empty.conflist",
             "{\"cniVersion\":\"1.0.0\",\"name\":\"e\",\"plugins\":[]}", 0644);
    put_file(
        f->conf_dir, "20-single.conf",
        "{\"cniVersion\":\"0.4.0\",\"name\":\"single\",\"type\":\"bridge\",\"bridge\":\"cni9\"}",
        0644);
    put_file(f->conf_dir, "30-later.conflist",
             "{\"cniVersion\":\"1.0.0\",\"name\":\"later\",\"plugins\":[{\"type\":\"ptp\"}]}",
             0644);
    char *path;
    if (cni_conf_load(f->conf_dir, &l, &path, &err) == -1) fail_msg("%s", err.msg);
    assert_non_null(strstr(path, "20-single.conf"));
    assert_string_equal(json_str_at(l, "name"), "single");
    assert_string_equal(json_str_at(l, "cniVersion"), "0.4.0");
    json_t *p0 = json_array_get(json_at(l, "plugins"), 0);
    assert_string_equal(json_str_at(p0, "type"), "bridge");
    assert_string_equal(json_str_at(p0, "bridge"), "cni9");
    json_decref(l);
    free(path);

    /* With only broken files, the error names each. */
    char *p = fs_join(f->conf_dir, "20-single.conf");
    unlink(p);
    free(p);
    p = fs_join(f->conf_dir, "30-later.conflist");
    unlink(p);
    free(p);
    put_file(f->conf_dir, "40-slash.conflist",
             "{\"cniVersion\":\"1.0.0\",\"name\":\"s\",\"plugins\":[{\"type\":\"../../bin/sh\"}]}",
             0644);
    assert_int_equal(cni_conf_load(f->conf_dir, &l, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "10-broken.conflist"));
    assert_non_null(strstr(err.msg, "15-empty.conflist: network e: no plugins"));
    assert_non_null(strstr(err.msg, "not a file name"));

    assert_int_equal(cni_conf_load("/nonexistent/net.d", &l, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/net.d"));
}

/* --- the plugin call, against scripted plugins ------------------------------------------- */

/* A plugin that records its command, environment and stdin under the
 * fixture dir and answers a result naming itself (ADD) or nothing. */
static void put_recorder(fx_t *f, const char *type)
{
    char *script = xasprintf(
        "#!/bin/sh\n"
        "d='%s'\n"
        "cat > \"$d/stdin.$CNI_COMMAND.%s\"\n"
        "env | grep '^CNI_' | sort > \"$d/env.$CNI_COMMAND.%s\"\n"
        "echo \"%s $CNI_COMMAND\" >> \"$d/calls\"\n"
        "[ \"$CNI_COMMAND\" = ADD ] && printf '{\"cniVersion\":\"1.0.0\",\"interfaces\":"
        "[{\"name\":\"eth0\",\"sandbox\":\"%%s\"}],\"ips\":[{\"address\":\"198.18.16.%s/24\","
        "\"interface\":0}],\"dns\":{\"search\":[\"%s\"]}}' \"$CNI_NETNS\"\n"
        "exit 0\n",
        f->dir, type, type, type, strcmp(type, "rec-a") ? "22" : "11", type);
    put_file(f->bin_dir, type, script, 0755);
    free(script);
}

static void test_cni_exec_protocol(void **state)
{
    fx_t *f = *state;
    put_recorder(f, "rec-a");
    put_recorder(f, "rec-b");
    json_t *list = json_loads("{\"cniVersion\":\"1.0.0\",\"name\":\"recnet\",\"plugins\":["
                              "{\"type\":\"rec-a\",\"keep\":1,\"runtimeConfig\":{\"forged\":1}},"
                              "{\"type\":\"rec-b\",\"capabilities\":{\"portMappings\":true}}]}",
                              0, NULL);
    assert_non_null(list);
    json_t *pm =
        json_loads("[{\"hostPort\":8080,\"containerPort\":80,\"protocol\":\"tcp\"}]", 0, NULL);
    cni_attachment_t att = {"abc123", "/run/netns/x", "eth0",
                            "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1", pm};
    setenv("CNI_COMMAND", "FORGED", 1); /* ours must never leak through */
    json_t *result = NULL;
    err_t err;
    if (cni_list_add(f->bins, list, &att, 5000, &result, &err) == -1) fail_msg("%s", err.msg);
    unsetenv("CNI_COMMAND");
    /* The last plugin's result is the list's. */
    assert_string_equal(json_string_value(json_array_get(json_at(result, "dns", "search"), 0)),
                        "rec-b");

    char *env = read_text(f->dir, "env.ADD.rec-a");
    assert_non_null(env);
    assert_non_null(strstr(env, "CNI_COMMAND=ADD\n"));
    assert_non_null(strstr(env, "CNI_CONTAINERID=abc123\n"));
    assert_non_null(strstr(env, "CNI_NETNS=/run/netns/x\n"));
    assert_non_null(strstr(env, "CNI_IFNAME=eth0\n"));
    assert_non_null(
        strstr(env, "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1\n"));
    char *want_path = xasprintf("CNI_PATH=%s:%s\n", f->bin_dir, real_bin ? real_bin : "");
    if (real_bin) assert_non_null(strstr(env, want_path));
    free(want_path);
    assert_null(strstr(env, "FORGED"));
    free(env);

    /* stdin: the plugin's object, the list's name and version, no
     * runtimeConfig without the capability, no prevResult for the first. */
    char *in = read_text(f->dir, "stdin.ADD.rec-a");
    json_t *a = json_loads(in, 0, NULL);
    assert_non_null(a);
    assert_string_equal(json_str_at(a, "name"), "recnet");
    assert_string_equal(json_str_at(a, "cniVersion"), "1.0.0");
    assert_int_equal(json_int_at(a, 0, "keep"), 1);
    assert_null(json_at(a, "runtimeConfig"));
    assert_null(json_at(a, "prevResult"));
    json_decref(a);
    free(in);
    /* The second gets runtimeConfig.portMappings and the first's result. */
    in = read_text(f->dir, "stdin.ADD.rec-b");
    json_t *b = json_loads(in, 0, NULL);
    assert_non_null(b);
    assert_int_equal(
        json_int_at(json_array_get(json_at(b, "runtimeConfig", "portMappings"), 0), 0, "hostPort"),
        8080);
    assert_string_equal(
        json_string_value(json_array_get(json_at(b, "prevResult", "dns", "search"), 0)), "rec-a");
    json_decref(b);
    free(in);

    /* CHECK in order and DEL in reverse, both with the ADD result. */
    if (cni_list_check(f->bins, list, &att, result, 5000, &err) == -1) fail_msg("%s", err.msg);
    if (cni_list_del(f->bins, list, &att, result, 5000, &err) == -1) fail_msg("%s", err.msg);
    char *calls = read_text(f->dir, "calls");
    assert_string_equal(calls, "rec-a ADD\nrec-b ADD\nrec-a CHECK\nrec-b CHECK\n"
                               "rec-b DEL\nrec-a DEL\n");
    free(calls);
    in = read_text(f->dir, "stdin.DEL.rec-a");
    a = json_loads(in, 0, NULL);
    assert_string_equal(
        json_string_value(json_array_get(json_at(a, "prevResult", "dns", "search"), 0)), "rec-b");
    json_decref(a);
    free(in);

    /* CHECK is skipped for disableCheck and before 0.4.0; DEL drops
     * prevResult before 0.4.0. */
    json_object_set_new(list, "disableCheck", json_true());
    assert_int_equal(cni_list_check(f->bins, list, &att, result, 5000, &err), 0);
    json_object_del(list, "disableCheck");
    json_object_set_new(list, "cniVersion", json_string("0.3.1"));
    assert_int_equal(cni_list_check(f->bins, list, &att, result, 5000, &err), 0);
    assert_int_equal(cni_list_del(f->bins, list, &att, result, 5000, &err), 0);
    in = read_text(f->dir, "stdin.DEL.rec-a");
    a = json_loads(in, 0, NULL);
    assert_null(json_at(a, "prevResult"));
    assert_string_equal(json_str_at(a, "cniVersion"), "0.3.1");
    json_decref(a);
    free(in);
    calls = read_text(f->dir, "calls");
    assert_non_null(strstr(calls, "rec-b DEL\nrec-a DEL\nrec-b DEL\nrec-a DEL\n"));
    assert_null(strstr(calls, "CHECK\nrec-b CHECK\nrec-a CHECK")); /* no third CHECK round */
    free(calls);

    json_decref(result);
    json_decref(list);
    json_decref(pm);
}

static void test_cni_exec_errors(void **state)
{
    fx_t *f = *state;
    put_file(f->bin_dir, "broken",
             "#!/bin/sh\ncat >/dev/null\n"
             "echo '{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"invalid bridge name\","
             "\"details\":\"field bridge: too long\"}'\nexit 1\n",
             0755);
    put_file(f->bin_dir, "crashy", "#!/bin/sh\necho 'panic: nil map' >&2\nexit 2\n", 0755);
    put_file(f->bin_dir, "garbage", "#!/bin/sh\necho 'not json {'\nexit 0\n", 0755);
    put_file(f->bin_dir, "silent", "#!/bin/sh\nexit 0\n", 0755);
    put_file(f->bin_dir, "noexec", "#!/bin/sh\nexit 0\n", 0644);
    cni_attachment_t att = {"abc", "/x", "eth0", "", NULL};
    json_t *conf = json_pack("{s:s,s:s}", "cniVersion", "1.0.0", "name", "n");
    json_t *r = NULL;
    err_t err;

    assert_int_equal(cni_exec(f->bins, "broken", "ADD", &att, conf, 5000, &r, &err), -1);
    assert_null(r);
    assert_string_equal(err.msg, "CNI plugin broken (ADD): invalid bridge name: field bridge: "
                                 "too long (code 7)");

    assert_int_equal(cni_exec(f->bins, "crashy", "DEL", &att, conf, 5000, &r, &err), -1);
    assert_string_equal(err.msg, "CNI plugin crashy (DEL): exit status 2: panic: nil map");

    assert_int_equal(cni_exec(f->bins, "garbage", "ADD", &att, conf, 5000, &r, &err), -1);
    assert_non_null(strstr(err.msg, "garbage (ADD): printed a result that is not JSON"));

    /* DEL may print nothing; ADD of a list must have a result. */
    assert_int_equal(cni_exec(f->bins, "silent", "DEL", &att, conf, 5000, &r, &err), 0);
    assert_null(r);
    json_t *list = json_loads("{\"cniVersion\":\"1.0.0\",\"name\":\"q\",\"plugins\":"
                              "[{\"type\":\"silent\"}]}",
                              0, NULL);
    assert_int_equal(cni_list_add(f->bins, list, &att, 5000, &r, &err), -1);
    assert_string_equal(err.msg, "network q: CNI plugin silent (ADD): printed no result");
    json_decref(list);

    /* A missing binary, a file that cannot run: clear errors naming them. */
    assert_int_equal(cni_exec(f->bins, "nosuch", "ADD", &att, conf, 5000, &r, &err), -1);
    char *want = xasprintf("CNI plugin nosuch not found in %s", f->bin_dir);
    assert_non_null(strstr(err.msg, want));
    free(want);
    assert_int_equal(cni_exec(f->bins, "noexec", "ADD", &att, conf, 5000, &r, &err), -1);
    assert_non_null(strstr(err.msg, "CNI plugin noexec not found"));
    assert_int_equal(cni_exec(f->bins, "../bin/sh", "ADD", &att, conf, 5000, &r, &err), -1);
    assert_non_null(strstr(err.msg, "not a file name"));
    json_decref(conf);
}

static void test_cni_exec_timeout_kills_group(void **state)
{
    fx_t *f = *state;
    /* The plugin starts a helper (as ptp starts host-local) and hangs. */
    char *script = xasprintf("#!/bin/sh\nsleep 60 &\necho $! > '%s/helper.pid'\nwait\n", f->dir);
    put_file(f->bin_dir, "hang", script, 0755);
    free(script);
    cni_attachment_t att = {"abc", "/x", "eth0", "", NULL};
    json_t *conf = json_pack("{s:s,s:s}", "cniVersion", "1.0.0", "name", "n");
    err_t err;
    int64_t t0 = time_mono_ns();
    assert_int_equal(cni_exec(f->bins, "hang", "ADD", &att, conf, 300, NULL, &err), -1);
    int64_t took_ms = (time_mono_ns() - t0) / NS_PER_MS;
    assert_string_equal(err.msg, "CNI plugin hang (ADD): no answer within 300 ms; killed");
    assert_true(took_ms >= 300);
    assert_true(took_ms < 3000);
    char *pid_text = read_text(f->dir, "helper.pid");
    assert_non_null(pid_text);
    pid_t helper = (pid_t)atoi(pid_text);
    free(pid_text);
    assert_true(helper > 1);
    /* Killed with the plugin's process group (it may linger as a zombie of
     * init for a moment; give it a bounded while to be reaped). */
    bool gone = false;
    for (int i = 0; i < 200 && !gone; i++) {
        char st[64], *text = NULL;
        snprintf(st, sizeof st, "/proc/%d/stat", (int)helper);
        gone = fs_read_all(st, &text, NULL, NULL) == -1 || strstr(text, ") Z ") != NULL;
        free(text);
        if (!gone) time_sleep_ms(10);
    }
    assert_true(gone);
    json_decref(conf);
}

/* --- namespaces ---------------------------------------------------------------------------- */

struct ns_client {
    const char *ns;
    int port;
    char got[16];
    int rc;
};

/* A thread that enters the namespace, connects to 127.0.0.1:port there,
 * and reads the greeting; its socket stays in the namespace. */
static void *ns_client_thread(void *arg)
{
    struct ns_client *c = arg;
    err_t err;
    c->rc = -1;
    int fd = net_ns_socket(c->ns, AF_INET, SOCK_STREAM, 0, &err);
    if (fd == -1) return NULL;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        recv(fd, c->got, 5, MSG_WAITALL) == 5)
        c->rc = 0;
    close(fd);
    return NULL;
}

static int ns_of_thread(void *arg, err_t *err)
{
    char *buf = arg;
    ssize_t n = readlink("/proc/thread-self/ns/net", buf, 63);
    if (n < 0) return err_errno(err, "readlink");
    buf[n] = '\0';
    return 0;
}

static void test_netns_sockets(void **state)
{
    if (getuid() != 0) {
        print_message("SKIPPED: not root (network namespaces need CAP_SYS_ADMIN)\n");
        skip();
    }
    fx_t *f = *state;
    char *ns;
    err_t err;
    if (net_ns_create(f->run_dir, "probe", &ns, &err) == -1) fail_msg("%s", err.msg);
    assert_true(net_ns_exists(ns));
    assert_false(net_ns_exists(f->dir));
    /* The name is taken now. */
    char *again = NULL;
    assert_int_equal(net_ns_create(f->run_dir, "probe", &again, &err), -1);
    assert_null(again);
    assert_int_equal(net_ns_create(f->run_dir, "../x", &again, &err), -1);

    /* net_ns_run switches this thread only, and back. */
    char host_ns[64], inside[64], after[64];
    assert_int_equal(ns_of_thread(host_ns, &err), 0);
    assert_int_equal(net_ns_run(ns, ns_of_thread, inside, &err), 0);
    assert_int_equal(ns_of_thread(after, &err), 0);
    assert_string_not_equal(host_ns, inside);
    assert_string_equal(host_ns, after);

    /* A listener inside (lo is up without any plugin), a client thread
     * inside: they talk; the host's loopback does not reach it. */
    int port = 0;
    int lfd = net_ns_listen_tcp(ns, "127.0.0.1", 0, 8, &port, &err);
    if (lfd == -1) fail_msg("%s", err.msg);
    assert_true(port > 0);
    struct ns_client c = {ns, port, {0}, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, ns_client_thread, &c), 0);
    int cfd = accept(lfd, NULL, NULL);
    assert_true(cfd >= 0);
    assert_int_equal(send(cfd, "hello", 5, MSG_NOSIGNAL), 5);
    pthread_join(t, NULL);
    close(cfd);
    assert_int_equal(c.rc, 0);
    assert_string_equal(c.got, "hello");

    int hfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* (The port is almost surely free on the host; the point is that the
     * namespace's listener is not what answers here.) */
    int rc = connect(hfd, (struct sockaddr *)&sa, sizeof sa);
    if (rc == 0) {
        int afd = -1;
        /* Something of the host's listens there: our listener must not see it. */
        struct timeval tv = {0, 100000};
        setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        afd = accept(lfd, NULL, NULL);
        assert_int_equal(afd, -1);
    } else {
        assert_int_equal(errno, ECONNREFUSED);
    }
    close(hfd);
    close(lfd);

    assert_int_equal(net_ns_delete(ns, &err), 0);
    assert_false(net_ns_exists(ns));
    assert_false(exists(ns, NULL));
    assert_int_equal(net_ns_delete(ns, &err), 0); /* gone is fine */
    int saved = -1;
    assert_int_equal(net_enter(ns, &saved, &err), -1);
    assert_int_equal(saved, -1);
    free(ns);
}

/* --- sandboxes with the real plugins ---------------------------------------------------------- */

static bool link_exists(const char *name)
{
    return if_nametoindex(name) != 0;
}

/* The host end of a ptp sandbox: the result's interface outside it. */
static const char *host_veth(const net_sandbox_t *sb)
{
    json_t *i;
    size_t k;
    json_array_foreach(json_object_get(sb->result, "interfaces"), k, i)
    {
        const char *in = json_str_at(i, "sandbox");
        if (!in || !in[0]) return json_str_at(i, "name");
    }
    return NULL;
}

/* Whether the node's IPAM holds ip for a sandbox. */
static bool lease_exists(fx_t *f, const char *ip)
{
    return net_ipam_held(f->cfg.ipam, ip);
}

/* Connects from the host to ip:port, sends a ping, expects a pong. */
struct exchange {
    int lfd;
    int rc;
};

static void *pong_thread(void *arg)
{
    struct exchange *x = arg;
    x->rc = -1;
    int cfd = accept(x->lfd, NULL, NULL);
    if (cfd < 0) return NULL;
    char buf[5] = {0};
    if (recv(cfd, buf, 4, MSG_WAITALL) == 4 && !strcmp(buf, "ping") &&
        send(cfd, "pong", 4, MSG_NOSIGNAL) == 4)
        x->rc = 0;
    close(cfd);
    return NULL;
}

static void host_ping(int lfd, const char *ip, int port)
{
    struct exchange x = {lfd, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, pong_thread, &x), 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc == -1) {
        /* Unblock the accept before failing. */
        shutdown(lfd, SHUT_RDWR);
        pthread_join(t, NULL);
        fail_msg("connect %s:%d: %s", ip, port, strerror(errno));
    }
    char buf[5] = {0};
    assert_int_equal(send(fd, "ping", 4, MSG_NOSIGNAL), 4);
    assert_int_equal(recv(fd, buf, 4, MSG_WAITALL), 4);
    close(fd);
    pthread_join(t, NULL);
    assert_string_equal(buf, "pong");
    assert_int_equal(x.rc, 0);
}

static void test_sandbox_lifecycle(void **state)
{
    if (!need_root_plugins()) skip();
    fx_t *f = *state;
    write_default_conf(f, true);
    char id[NET_SANDBOX_ID_MAX + 1];
    net_sandbox_new_id(id);
    assert_int_equal(strlen(id), 64);
    net_sandbox_t *sb = NULL;
    err_t err;
    if (net_sandbox_create(&f->cfg, id, &test_pod, &sb, &err) == -1) fail_msg("%s", err.msg);
    assert_int_equal(sb->n_ips, 1);
    assert_int_equal(strncmp(sb->ips[0], POD_PREFIX, strlen(POD_PREFIX)), 0);
    assert_null(strchr(sb->ips[0], '/'));
    assert_string_equal(sb->network, "wasmlet-test");
    const char *first, *second;
    net_sandbox_pod_ips(sb, &first, &second);
    assert_string_equal(first, sb->ips[0]);
    assert_null(second);
    assert_true(net_ns_exists(sb->netns));
    const char *veth = host_veth(sb);
    assert_non_null(veth);
    assert_true(link_exists(veth));
    assert_true(lease_exists(f, sb->ips[0]));
    char *veth_name = xstrdup(veth);

    /* The state on disk names the pod and keeps the list and result. */
    char *sdir = fs_join(f->state_dir, id);
    char *st = read_text(sdir, "sandbox.json");
    json_t *sj = json_loads(st, 0, NULL);
    assert_string_equal(json_str_at(sj, "phase"), "ready");
    assert_string_equal(json_str_at(sj, "pod", "name"), "web-1");
    assert_string_equal(json_str_at(sj, "config", "name"), "wasmlet-test");
    assert_non_null(strstr(json_str_at(sj, "cniArgs"), "K8S_POD_UID=0f1e2d3c-aaaa"));
    assert_non_null(json_at(sj, "result", "ips"));
    /* No hostPort: the default list's portmap did not run. */
    char *ran = state_plugins(f, id);
    assert_string_equal(ran, "ptp");
    free(ran);
    /* The address is wasmlet's: written into the config static ran with. */
    json_t *addr0 = json_array_get(
        json_at(json_array_get(json_at(sj, "config", "plugins"), 0), "ipam", "addresses"), 0);
    assert_non_null(strstr(json_str_at(addr0, "address"), sb->ips[0]));
    assert_string_equal(json_str_at(addr0, "gateway"), POD_PREFIX "1");
    /* A node that starts again reads it back from the state. */
    net_ipam_t *again = NULL;
    net_config_t cfg2 = f->cfg;
    assert_int_equal(net_ipam_new(POD_CIDR, &again, &err), 0);
    cfg2.ipam = again;
    assert_false(net_ipam_held(again, sb->ips[0]));
    assert_int_equal(net_sandbox_ipam_load(&cfg2, &err), 0);
    assert_true(net_ipam_held(again, sb->ips[0]));
    assert_int_equal(net_ipam_used(again), 1);
    net_ipam_free(again);
    json_decref(sj);
    free(st);

    /* A listener inside, reached from the host at the pod's IP. */
    int port = 0;
    int lfd = net_ns_listen_tcp(sb->netns, "0.0.0.0", 0, 8, &port, &err);
    if (lfd == -1) fail_msg("%s", err.msg);
    host_ping(lfd, sb->ips[0], port);
    host_ping(lfd, sb->ips[0], port);
    close(lfd);

    /* CHECK passes; a resume reads the same sandbox back. */
    if (net_sandbox_check(&f->cfg, id, &err) == -1) fail_msg("%s", err.msg);
    net_sandbox_t *back = NULL;
    if (net_sandbox_load(&f->cfg, id, &back, &err) == -1) fail_msg("%s", err.msg);
    assert_string_equal(back->ips[0], sb->ips[0]);
    assert_string_equal(back->netns, sb->netns);
    net_sandbox_free(back);

    /* The id is taken. */
    net_sandbox_t *dup = NULL;
    assert_int_equal(net_sandbox_create(&f->cfg, id, &test_pod, &dup, &err), -1);
    assert_null(dup);
    assert_true(link_exists(veth_name)); /* and the failure undid nothing of the first */

    /* DEL: no veth, namespace, lease or state left. */
    if (net_sandbox_destroy(&f->cfg, id, &err) == -1) fail_msg("%s", err.msg);
    assert_false(link_exists(veth_name));
    assert_false(exists(sb->netns, NULL));
    assert_false(lease_exists(f, sb->ips[0]));
    assert_false(exists(sdir, NULL));
    /* A second destroy finds nothing to do; check and load say it is gone. */
    assert_int_equal(net_sandbox_destroy(&f->cfg, id, &err), 0);
    assert_int_equal(net_sandbox_check(&f->cfg, id, &err), -1);
    assert_non_null(strstr(err.msg, "no state"));
    assert_int_equal(net_sandbox_load(&f->cfg, id, &back, &err), -1);
    assert_int_equal(net_sandbox_create(&f->cfg, "../etc", &test_pod, &dup, &err), -1);
    assert_non_null(strstr(err.msg, "not a CNI container id"));
    free(sdir);
    free(veth_name);
    net_sandbox_free(sb);
}

static void test_sandbox_check_detects_damage(void **state)
{
    if (!need_root_plugins()) skip();
    fx_t *f = *state;
    write_default_conf(f, false);
    /* A list that is not wasmlet's default runs whole, portmap too. */
    f->cfg.default_list = false;
    net_sandbox_t *sb = NULL;
    err_t err;
    if (net_sandbox_create(&f->cfg, "chk-1", &test_pod, &sb, &err) == -1) fail_msg("%s", err.msg);
    char *ran = state_plugins(f, "chk-1");
    assert_string_equal(ran, "ptp,portmap");
    free(ran);
    if (net_sandbox_check(&f->cfg, "chk-1", &err) == -1) fail_msg("%s", err.msg);
    /* Someone removes the pod's veth: CHECK (ptp) must notice. */
    char *cmd = xasprintf("ip link del %s", host_veth(sb));
    assert_int_equal(system(cmd), 0);
    free(cmd);
    assert_int_equal(net_sandbox_check(&f->cfg, "chk-1", &err), -1);
    assert_non_null(strstr(err.msg, "sandbox chk-1: network wasmlet-test: CNI plugin ptp (CHECK)"));
    /* DEL tolerates what is already gone. */
    if (net_sandbox_destroy(&f->cfg, "chk-1", &err) == -1) fail_msg("%s", err.msg);
    assert_false(lease_exists(f, sb->ips[0]));
    net_sandbox_free(sb);
}

static void test_sandbox_hostport(void **state)
{
    if (!need_root_plugins()) skip();
    fx_t *f = *state;
    write_default_conf(f, true);
    /* A free host port: bind one, note it, let it go. */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(probe, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(probe, (struct sockaddr *)&sa, &sl), 0);
    int host_port = ntohs(sa.sin_port);
    close(probe);

    /* No hostIP: portmap 1.1.1's CHECK looks for an IPv6 chain that an IPv4
     * hostIP never gets (and fails). */
    net_port_mapping_t pm = {host_port, 8080, "tcp", NULL};
    net_pod_t pod = test_pod;
    pod.ports = &pm;
    pod.n_ports = 1;
    net_sandbox_t *sb = NULL;
    err_t err;
    if (net_sandbox_create(&f->cfg, "hp-1", &pod, &sb, &err) == -1) fail_msg("%s", err.msg);
    char *ran = state_plugins(f, "hp-1");
    assert_string_equal(ran, "ptp,portmap"); /* the default list's portmap, for the hostPort */
    free(ran);
    int lfd = net_ns_listen_tcp(sb->netns, "0.0.0.0", 8080, 8, NULL, &err);
    if (lfd == -1) fail_msg("%s", err.msg);
    host_ping(lfd, "127.0.0.1", host_port);
    /* No CHECK here: portmap 1.1.1's CHECK of an IPv4-only pod with a
     * mapping fails looking for an IPv6 DNAT chain it never made. */
    close(lfd);
    if (net_sandbox_destroy(&f->cfg, "hp-1", &err) == -1) fail_msg("%s", err.msg);
    /* The DNAT went with the DEL: nothing answers on the host port now. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_port = htons((uint16_t)host_port);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), -1);
    assert_int_equal(errno, ECONNREFUSED);
    close(fd);
    net_sandbox_free(sb);
}

static void test_sandbox_gc(void **state)
{
    if (!need_root_plugins()) skip();
    fx_t *f = *state;
    write_default_conf(f, true);
    net_sandbox_t *live = NULL, *orphan = NULL;
    err_t err;
    if (net_sandbox_create(&f->cfg, "live-1", &test_pod, &live, &err) == -1)
        fail_msg("%s", err.msg);
    net_pod_t gone = {"shop", "web-2", "uid-2", NULL, 0};
    if (net_sandbox_create(&f->cfg, "orphan-1", &gone, &orphan, &err) == -1)
        fail_msg("%s", err.msg);
    assert_string_not_equal(live->ips[0], orphan->ips[0]);
    char *orphan_veth = xstrdup(host_veth(orphan));
    /* What a crash leaves: a namespace file without state, and a state
     * dir written before the namespace was made. */
    char *stray_ns;
    if (net_ns_create(f->run_dir, "stray-ns", &stray_ns, &err) == -1) fail_msg("%s", err.msg);
    char *stray_state = fs_join(f->state_dir, "stray-state");
    assert_int_equal(mkdir(stray_state, 0700), 0);

    char **ids;
    size_t n;
    if (net_sandbox_list(&f->cfg, &ids, &n, &err) == -1) fail_msg("%s", err.msg);
    assert_int_equal(n, 4);
    assert_string_equal(ids[0], "live-1");
    assert_string_equal(ids[1], "orphan-1");
    assert_string_equal(ids[2], "stray-ns");
    assert_string_equal(ids[3], "stray-state");
    assert_null(ids[4]);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);

    const char *keep[] = {"live-1", "not-on-disk"};
    assert_int_equal(net_sandbox_gc(&f->cfg, keep, 2, &err), 3);
    assert_false(link_exists(orphan_veth));
    assert_false(lease_exists(f, orphan->ips[0]));
    assert_false(exists(orphan->netns, NULL));
    assert_false(exists(stray_ns, NULL));
    assert_false(exists(stray_state, NULL));
    /* The live one is untouched. */
    assert_true(net_ns_exists(live->netns));
    assert_true(lease_exists(f, live->ips[0]));
    if (net_sandbox_check(&f->cfg, "live-1", &err) == -1) fail_msg("%s", err.msg);
    assert_int_equal(net_sandbox_gc(&f->cfg, keep, 2, &err), 0);
    assert_int_equal(net_sandbox_gc(&f->cfg, NULL, 0, &err), 1);
    assert_false(lease_exists(f, live->ips[0]));
    free(orphan_veth);
    free(stray_ns);
    free(stray_state);
    net_sandbox_free(live);
    net_sandbox_free(orphan);
}

/* A plugin chained after ptp that fails ADD (and, while a flag file
 * exists, DEL too). */
static void put_failing(fx_t *f)
{
    char *script = xasprintf(
        "#!/bin/sh\ncat >/dev/null\n"
        "if [ \"$CNI_COMMAND\" = ADD ] || { [ \"$CNI_COMMAND\" = DEL ] && [ -e '%s/del-fails' ]; "
        "}; "
        "then\n"
        "  echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"'$CNI_COMMAND' refused\","
        "\"details\":\"try later\"}'\n  exit 1\nfi\nexit 0\n",
        f->dir);
    put_file(f->bin_dir, "failing", script, 0755);
    free(script);
    net_default_opts_t o = {POD_CIDR, "wasmlet-test", false};
    json_t *l;
    err_t err;
    if (net_default_conf(&o, &l, &err) == -1) fail_msg("%s", err.msg);
    json_array_append_new(json_object_get(l, "plugins"), json_pack("{s:s}", "type", "failing"));
    char *p = fs_join(f->conf_dir, "10-wasmlet.conflist");
    assert_int_equal(json_dump_file(l, p, 0), 0);
    free(p);
    json_decref(l);
}

static void test_sandbox_failed_add_cleans_up(void **state)
{
    if (!need_root_plugins()) skip();
    fx_t *f = *state;
    put_failing(f);
    net_sandbox_t *sb = NULL;
    err_t err;
    assert_int_equal(net_sandbox_create(&f->cfg, "fail-1", &test_pod, &sb, &err), -1);
    assert_null(sb);
    assert_string_equal(err.msg, "sandbox fail-1: network wasmlet-test: CNI plugin failing (ADD): "
                                 "ADD refused: try later (code 11)");
    /* ptp's ADD ran (with an address); the DEL of every plugin undid it,
     * and the address is free again. */
    assert_int_equal(net_ipam_used(f->cfg.ipam), 0);
    assert_false(exists(f->state_dir, "fail-1"));
    assert_false(exists(f->run_dir, "fail-1"));

    /* When the clean-up DEL fails too, the state stays for a retry. */
    put_file(f->dir, "del-fails", "", 0644);
    assert_int_equal(net_sandbox_create(&f->cfg, "fail-2", &test_pod, &sb, &err), -1);
    assert_non_null(strstr(err.msg, "clean-up failed too, state kept"));
    assert_non_null(strstr(err.msg, "ADD refused"));
    assert_non_null(strstr(err.msg, "DEL refused"));
    assert_true(exists(f->state_dir, "fail-2"));
    assert_true(exists(f->run_dir, "fail-2"));
    assert_int_equal(net_sandbox_destroy(&f->cfg, "fail-2", &err), -1);
    assert_non_null(
        strstr(err.msg, "sandbox fail-2: network wasmlet-test: CNI plugin failing (DEL)"));
    assert_true(exists(f->state_dir, "fail-2"));
    assert_int_equal(net_ipam_used(f->cfg.ipam), 1); /* its address stays its own */
    /* The cause clears; the retry (here through the GC) finishes it. */
    char *flag = fs_join(f->dir, "del-fails");
    unlink(flag);
    free(flag);
    assert_int_equal(net_sandbox_gc(&f->cfg, NULL, 0, &err), 1);
    assert_false(exists(f->state_dir, "fail-2"));
    assert_false(exists(f->run_dir, "fail-2"));
    char **ids;
    size_t n;
    assert_int_equal(net_sandbox_list(&f->cfg, &ids, &n, &err), 0);
    assert_int_equal(n, 0);
    free(ids);
    /* No address held any more. */
    assert_int_equal(net_ipam_used(f->cfg.ipam), 0);
}

static void test_sandbox_missing_plugin(void **state)
{
    if (!need_root_plugins()) skip();
    fx_t *f = *state;
    put_file(f->conf_dir, "10-x.conflist",
             "{\"cniVersion\":\"1.0.0\",\"name\":\"x\",\"plugins\":[{\"type\":\"flannel-nope\"}]}",
             0644);
    net_sandbox_t *sb = NULL;
    err_t err;
    assert_int_equal(net_sandbox_create(&f->cfg, "miss-1", &test_pod, &sb, &err), -1);
    assert_non_null(strstr(err.msg, "sandbox miss-1"));
    assert_non_null(strstr(err.msg, "CNI plugin flannel-nope not found in"));
    /* A plugin that does not exist never ran and holds nothing: the
     * clean-up leaves neither state nor namespace behind. */
    assert_null(strstr(err.msg, "state kept"));
    assert_false(exists(f->state_dir, "miss-1"));
    assert_false(exists(f->run_dir, "miss-1"));
    /* With no conf dir at all, nothing is made. */
    net_config_t cfg = f->cfg;
    cfg.conf_dir = "/nonexistent/net.d";
    assert_int_equal(net_sandbox_create(&cfg, "miss-2", &test_pod, &sb, &err), -1);
    assert_false(exists(f->state_dir, "miss-2"));
}

static void test_sandbox_hanging_plugin(void **state)
{
    if (!need_root_plugins()) skip();
    fx_t *f = *state;
    put_file(f->bin_dir, "slowpoke",
             "#!/bin/sh\ncat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] && exec sleep 60\nexit 0\n",
             0755);
    put_file(f->conf_dir, "10-x.conflist",
             "{\"cniVersion\":\"1.0.0\",\"name\":\"x\",\"plugins\":[{\"type\":\"slowpoke\"}]}",
             0644);
    net_config_t cfg = f->cfg;
    cfg.plugin_timeout_ms = 250;
    net_sandbox_t *sb = NULL;
    err_t err;
    int64_t t0 = time_mono_ns();
    assert_int_equal(net_sandbox_create(&cfg, "slow-1", &test_pod, &sb, &err), -1);
    assert_true((time_mono_ns() - t0) / NS_PER_MS < 5000);
    assert_string_equal(err.msg,
                        "sandbox slow-1: network x: CNI plugin slowpoke (ADD): no answer within "
                        "250 ms; killed");
    assert_false(exists(f->state_dir, "slow-1"));
    assert_false(exists(f->run_dir, "slow-1"));
}

/* --- main ----------------------------------------------------------------------------------------
 */

/* --- pods: the worker's sandbox (pod/sandbox.c) -------------------------------------------- */

/* A minimal host for pod workers: modules "pulled" from $WASMLET_EXAMPLES,
 * Events recorded. */
typedef struct pod_rec {
    pthread_mutex_t lock;
    json_t *events; /* ["reason: message"] */
    json_t *pulled; /* images pulled so far, when the test makes it (a store) */
} pod_rec_t;

static int pod_pull(void *ctx, const podspec_t *pod, const podspec_container_t *c,
                    pod_pulled_t *out, err_t *err)
{
    (void)pod;
    pod_rec_t *r = ctx;
    const char *dir = getenv("WASMLET_EXAMPLES");
    char *path = xasprintf("%s/%s", dir && *dir ? dir : "build/examples", c->image);
    if (access(path, R_OK) != 0) {
        err_errno(err, "image %s", path);
        free(path);
        return -1;
    }
    out->module_path = path;
    pthread_mutex_lock(&r->lock);
    if (r->pulled) json_object_set_new(r->pulled, c->image, json_true());
    pthread_mutex_unlock(&r->lock);
    return 0;
}

/* host.image_present over the images pod_pull pulled. */
static bool pod_image_present(void *ctx, const podspec_container_t *c)
{
    pod_rec_t *r = ctx;
    pthread_mutex_lock(&r->lock);
    bool present = json_object_get(r->pulled, c->image) != NULL;
    pthread_mutex_unlock(&r->lock);
    return present;
}

static void pod_on_event(void *ctx, pod_worker_t *w, const char *type, const char *reason,
                         const char *field_path, const char *message)
{
    (void)w;
    (void)type;
    (void)field_path;
    pod_rec_t *r = ctx;
    pthread_mutex_lock(&r->lock);
    json_array_append_new(r->events, json_sprintf("%s: %s", reason, message));
    pthread_mutex_unlock(&r->lock);
}

static bool pod_has_event(pod_rec_t *r, const char *reason, const char *needle)
{
    pthread_mutex_lock(&r->lock);
    bool found = false;
    size_t i;
    json_t *v;
    json_array_foreach(r->events, i, v)
    {
        const char *s = json_string_value(v);
        found |= !strncmp(s, reason, strlen(reason)) && (!needle || strstr(s, needle));
    }
    pthread_mutex_unlock(&r->lock);
    return found;
}

static size_t pod_count_events(pod_rec_t *r, const char *prefix)
{
    pthread_mutex_lock(&r->lock);
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(r->events, i, v) n += !strncmp(json_string_value(v), prefix, strlen(prefix));
    pthread_mutex_unlock(&r->lock);
    return n;
}

typedef struct pod_fx {
    fx_t *f;
    wasmrt_t *rt;
    pod_net_t net;
    pod_rec_t rec;
    pod_host_t host;
} pod_fx_t;

static void pod_fx_init(pod_fx_t *p, fx_t *f, bool skip_portless)
{
    memset(p, 0, sizeof *p);
    p->f = f;
    wasm_signals_restore();
    err_t err;
    if (wasmrt_open(NULL, &p->rt, &err) == -1) fail_msg("%s", err.msg);
    pod_net_init(&p->net, &f->cfg, skip_portless);
    pthread_mutex_init(&p->rec.lock, NULL);
    p->rec.events = json_array();
    p->host = (pod_host_t){.ctx = &p->rec,
                           .rt = p->rt,
                           .data_dir = f->dir,
                           .node_name = "test-node",
                           .host_ip = "192.0.2.1",
                           .backoff_initial_ms = 50,
                           .backoff_max_ms = 200,
                           .net = &p->net,
                           .pull = pod_pull,
                           .event = pod_on_event};
}

static void pod_fx_free(pod_fx_t *p)
{
    pod_net_destroy(&p->net);
    wasmrt_close(p->rt);
    json_decref(p->rec.events);
    pthread_mutex_destroy(&p->rec.lock);
}

/* A pod of one ticker container; ports: a "ports" JSON array or NULL;
 * extra: more spec fields ("hostNetwork": true) or "". */
static pod_worker_t *pod_start_image(pod_fx_t *p, const char *uid, const char *image,
                                     const char *ports, const char *extra)
{
    char *text = xasprintf(
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p-%.8s\","
        "\"namespace\":\"shop\",\"uid\":\"%s\"},\"spec\":{%s\"restartPolicy\":\"Always\","
        "\"containers\":[{\"name\":\"app\",\"image\":\"%s\",\"args\":[\"100000\"]%s%s}]}}",
        uid, uid, extra, image, ports ? ",\"ports\":" : "", ports ? ports : "");
    json_t *pod = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(pod);
    podspec_t *spec;
    err_t err;
    if (podspec_parse(pod, &spec, &err) == -1) fail_msg("%s", err.msg);
    json_decref(pod);
    return pod_worker_start(&p->host, spec, NULL);
}

static pod_worker_t *pod_start(pod_fx_t *p, const char *uid, const char *ports, const char *extra)
{
    return pod_start_image(p, uid, "ticker.wasm", ports, extra);
}

/* The first element of the array at st.key. */
static json_t *first_of(json_t *st, const char *key)
{
    return json_array_get(json_object_get(st, key), 0);
}

/* Waits until the pod runs (its container running); its status then. */
static json_t *pod_wait_running(pod_worker_t *w, int64_t timeout_ms)
{
    int64_t until = time_mono_ns() + timeout_ms * NS_PER_MS;
    for (;;) {
        json_t *st = pod_worker_status_json(w);
        if (json_str_at(first_of(st, "containerStatuses"), "state", "running", "startedAt"))
            return st;
        json_decref(st);
        if (time_mono_ns() > until)
            fail_msg("the pod did not run within %lld ms", (long long)timeout_ms);
        time_sleep_ms(20);
    }
}

static void pod_stop(pod_worker_t *w)
{
    pod_worker_stop(w, NULL, NULL);
    assert_true(pod_worker_wait(w, 30000));
}

static void test_pod_sandbox_lifecycle(void **state)
{
    if (!need_root_plugins()) skip();
    fx_t *f = *state;
    write_default_conf(f, false);
    pod_fx_t p;
    pod_fx_init(&p, f, true);
    const char *uid = "0f1e2d3c-aaaa-bbbb-cccc-000000000101";
    pod_worker_t *w = pod_start(&p, uid, "[{\"containerPort\":8080,\"name\":\"http\"}]", "");
    json_t *st = pod_wait_running(w, 20000);
    const char *ip = json_str_at(st, "podIP");
    assert_non_null(ip);
    assert_int_equal(strncmp(ip, POD_PREFIX, strlen(POD_PREFIX)), 0);
    assert_int_equal(json_array_size(json_object_get(st, "podIPs")), 1);
    assert_string_equal(json_str_at(first_of(st, "podIPs"), "ip"), ip);
    assert_string_equal(json_str_at(st, "hostIP"), "192.0.2.1");
    char *addr = xstrdup(ip);
    json_decref(st);

    /* The sandbox is the pod's: named by its UID, its namespace holds the
     * pod's address, and a listener there is reached at the pod IP. */
    assert_true(exists(f->state_dir, uid));
    char *netns = NULL;
    err_t err;
    assert_int_equal(pod_worker_netns(w, &netns, &err), 0);
    assert_non_null(netns);
    assert_true(net_ns_exists(netns));
    int port = 0;
    int lfd = net_ns_listen_tcp(netns, "0.0.0.0", 0, 8, &port, &err);
    if (lfd == -1) fail_msg("%s", err.msg);
    host_ping(lfd, addr, port);
    close(lfd);
    assert_true(lease_exists(f, addr));

    /* Stopped: DEL ran, nothing is left, and the status keeps the IP. */
    pod_stop(w);
    assert_false(exists(netns, NULL));
    assert_false(exists(f->state_dir, uid));
    assert_false(lease_exists(f, addr));
    char *none = (char *)"x";
    assert_int_equal(pod_worker_netns(w, &none, &err), -1);
    assert_null(none);
    st = pod_worker_status_json(w);
    assert_string_equal(json_str_at(st, "podIP"), addr);
    json_decref(st);
    pod_worker_free(w);
    free(netns);
    free(addr);
    pod_fx_free(&p);
}

static void test_pod_without_sandbox_reports_node_ip(void **state)
{
    if (!need_root_plugins()) skip();
    fx_t *f = *state;
    write_default_conf(f, false);
    pod_fx_t p;
    pod_fx_init(&p, f, true);
    /* No ports (skipped), and hostNetwork (never one). */
    pod_worker_t *a = pod_start(&p, "0f1e2d3c-aaaa-bbbb-cccc-000000000102", NULL, "");
    pod_worker_t *b = pod_start(&p, "0f1e2d3c-aaaa-bbbb-cccc-000000000103",
                                "[{\"containerPort\":8080}]", "\"hostNetwork\":true,");
    pod_worker_t *ws[] = {a, b};
    for (int i = 0; i < 2; i++) {
        json_t *st = pod_wait_running(ws[i], 20000);
        assert_string_equal(json_str_at(st, "podIP"), "192.0.2.1");
        assert_string_equal(json_str_at(first_of(st, "podIPs"), "ip"), "192.0.2.1");
        json_decref(st);
        char *netns = (char *)"x";
        err_t err;
        assert_int_equal(pod_worker_netns(ws[i], &netns, &err), 0);
        assert_null(netns); /* the node's network */
    }
    char **ids;
    size_t n;
    err_t err;
    assert_int_equal(net_sandbox_list(&f->cfg, &ids, &n, &err), 0);
    assert_int_equal(n, 0);
    free(ids);
    for (int i = 0; i < 2; i++) {
        pod_stop(ws[i]);
        pod_worker_free(ws[i]);
    }
    /* Without the skip, a pod with no ports gets one. */
    pod_fx_free(&p);
    pod_fx_init(&p, f, false);
    pod_worker_t *c = pod_start(&p, "0f1e2d3c-aaaa-bbbb-cccc-000000000104", NULL, "");
    json_t *st = pod_wait_running(c, 20000);
    assert_int_equal(strncmp(json_str_at(st, "podIP"), POD_PREFIX, strlen(POD_PREFIX)), 0);
    json_decref(st);
    pod_stop(c);
    pod_worker_free(c);
    pod_fx_free(&p);
}

/* A pod without ports has its image pulled to tell whether it is a
 * component: that pull is the one that says "Pulling", and the container's
 * own pull right after tells how it ended ("Successfully pulled"), not
 * "already present". The next pod of that image is told it is present. */
static void test_portless_pod_pull_events(void **state)
{
    if (!need_root_plugins()) skip();
    fx_t *f = *state;
    write_default_conf(f, false);
    pod_fx_t p;
    pod_fx_init(&p, f, true);
    p.rec.pulled = json_object();
    p.host.image_present = pod_image_present;
    pod_worker_t *a = pod_start(&p, "0f1e2d3c-aaaa-bbbb-cccc-000000000105", NULL, "");
    json_decref(pod_wait_running(a, 20000));
    assert_int_equal(pod_count_events(&p.rec, "Pulling: Pulling image \"ticker.wasm\""), 1);
    assert_int_equal(pod_count_events(&p.rec, "Pulled: Successfully pulled image"), 1);
    assert_int_equal(pod_count_events(&p.rec, "Pulled: Container image"), 0);
    pod_worker_t *b = pod_start(&p, "0f1e2d3c-aaaa-bbbb-cccc-000000000106", NULL, "");
    json_decref(pod_wait_running(b, 20000));
    assert_int_equal(pod_count_events(&p.rec, "Pulling: "), 1);
    assert_int_equal(
        pod_count_events(&p.rec,
                         "Pulled: Container image \"ticker.wasm\" already present on machine"),
        1);
    pod_stop(a);
    pod_stop(b);
    pod_worker_free(a);
    pod_worker_free(b);
    json_decref(p.rec.pulled);
    pod_fx_free(&p);
}

/* A component has sockets: even a pod that declares no port gets a
 * sandbox when its image is one (the header tells, after a pull), and so
 * does one whose image cannot be pulled to be told apart; a core module
 * beside it changes nothing. */
static void test_portless_component_pod_gets_a_sandbox(void **state)
{
    if (!need_root_plugins()) skip();
    fx_t *f = *state;
    const char *dir = getenv("WASMLET_EXAMPLES");
    char *comp = xasprintf("%s/ticker.component.wasm", dir && *dir ? dir : "build/examples");
    bool built = access(comp, R_OK) == 0;
    free(comp);
    if (!built) skip();
    write_default_conf(f, false);
    pod_fx_t p;
    pod_fx_init(&p, f, true);
    pod_worker_t *w = pod_start_image(&p, "0f1e2d3c-aaaa-bbbb-cccc-000000000111",
                                      "ticker.component.wasm", NULL, "");
    json_t *st = pod_wait_running(w, 20000);
    assert_int_equal(strncmp(json_str_at(st, "podIP"), POD_PREFIX, strlen(POD_PREFIX)), 0);
    json_decref(st);
    char *netns = NULL;
    err_t err;
    assert_int_equal(pod_worker_netns(w, &netns, &err), 0);
    assert_non_null(netns);
    free(netns);
    pod_stop(w);
    pod_worker_free(w);

    /* Not pullable: that pull was the container's first (its Failed event)
     * and the pod gets no sandbox for it: it reports the node's address
     * (the container itself waits in ErrImagePull). */
    w = pod_start_image(&p, "0f1e2d3c-aaaa-bbbb-cccc-000000000112", "no-such.wasm", NULL, "");
    int64_t until = time_mono_ns() + 20000 * NS_PER_MS;
    bool got = false;
    while (!got && time_mono_ns() < until) {
        st = pod_worker_status_json(w);
        const char *ip = json_str_at(st, "podIP");
        if (ip) assert_string_equal(ip, "192.0.2.1");
        got = ip != NULL;
        json_decref(st);
        if (!got) time_sleep_ms(20);
    }
    netns = NULL;
    assert_int_equal(pod_worker_netns(w, &netns, &err), 0);
    assert_null(netns);
    assert_true(got);
    pod_stop(w);
    pod_worker_free(w);
    pod_fx_free(&p);
}

static void test_pod_sandbox_resumed_after_restart(void **state)
{
    if (!need_root_plugins()) skip();
    fx_t *f = *state;
    write_default_conf(f, false);
    /* What a wasmlet killed with its pod running leaves: the pod's sandbox. */
    const char *uid = "0f1e2d3c-aaaa-bbbb-cccc-000000000105";
    net_pod_t np = {"shop", "p-0f1e2d3c", uid, NULL, 0};
    net_sandbox_t *sb = NULL;
    err_t err;
    if (net_sandbox_create(&f->cfg, uid, &np, &sb, &err) == -1) fail_msg("%s", err.msg);
    pod_fx_t p;
    pod_fx_init(&p, f, true);
    pod_worker_t *w = pod_start(&p, uid, "[{\"containerPort\":8080}]", "");
    json_t *st = pod_wait_running(w, 20000);
    /* CHECK passed: the same sandbox, the same address. */
    assert_string_equal(json_str_at(st, "podIP"), sb->ips[0]);
    json_decref(st);
    /* A damaged one (its namespace gone) fails CHECK and is made anew. */
    pod_stop(w);
    pod_worker_free(w);
    assert_false(exists(sb->netns, NULL));
    net_sandbox_free(sb);
    if (net_sandbox_create(&f->cfg, uid, &np, &sb, &err) == -1) fail_msg("%s", err.msg);
    assert_int_equal(net_ns_delete(sb->netns, &err), 0);
    w = pod_start(&p, uid, "[{\"containerPort\":8080}]", "");
    st = pod_wait_running(w, 20000);
    const char *ip = json_str_at(st, "podIP");
    assert_non_null(ip);
    assert_int_equal(strncmp(ip, POD_PREFIX, strlen(POD_PREFIX)), 0);
    json_decref(st);
    char *netns = NULL;
    assert_int_equal(pod_worker_netns(w, &netns, &err), 0);
    assert_true(net_ns_exists(netns));
    free(netns);
    pod_stop(w);
    pod_worker_free(w);
    net_sandbox_free(sb);
    char **ids;
    size_t n;
    assert_int_equal(net_sandbox_list(&f->cfg, &ids, &n, &err), 0);
    assert_int_equal(n, 0);
    free(ids);
    pod_fx_free(&p);
}

static void test_pod_sandbox_failure_keeps_pod_pending(void **state)
{
    if (!need_root_plugins()) skip();
    fx_t *f = *state;
    put_file(f->conf_dir, "10-broken.conflist",
             "{\"cniVersion\":\"1.0.0\",\"name\":\"broken\",\"plugins\":[{\"type\":"
             "\"no-such-plugin\"}]}",
             0644);
    pod_fx_t p;
    pod_fx_init(&p, f, true);
    pod_worker_t *w =
        pod_start(&p, "0f1e2d3c-aaaa-bbbb-cccc-000000000106", "[{\"containerPort\":80}]", "");
    int64_t until = time_mono_ns() + 10 * NS_PER_SEC;
    while (!pod_has_event(&p.rec, "FailedCreatePodSandBox", "no-such-plugin") &&
           time_mono_ns() < until)
        time_sleep_ms(20);
    assert_true(pod_has_event(&p.rec, "FailedCreatePodSandBox", "Failed to create pod sandbox"));
    json_t *st = pod_worker_status_json(w);
    assert_string_equal(json_str_at(st, "phase"), "Pending");
    assert_null(json_object_get(st, "podIP"));
    assert_string_equal(json_str_at(first_of(st, "conditions"), "type"),
                        "PodReadyToStartContainers");
    assert_string_equal(json_str_at(first_of(st, "conditions"), "reason"),
                        "FailedCreatePodSandBox");
    assert_non_null(strstr(json_str_at(first_of(st, "conditions"), "message"), "no-such-plugin"));
    assert_string_equal(
        json_str_at(first_of(st, "containerStatuses"), "state", "waiting", "reason"),
        "ContainerCreating");
    json_decref(st);
    /* The config is fixed: a retry makes the sandbox and the pod runs. */
    char *broken = fs_join(f->conf_dir, "10-broken.conflist");
    assert_int_equal(unlink(broken), 0);
    free(broken);
    write_default_conf(f, false);
    st = pod_wait_running(w, 30000);
    assert_int_equal(strncmp(json_str_at(st, "podIP"), POD_PREFIX, strlen(POD_PREFIX)), 0);
    json_decref(st);
    pod_stop(w);
    pod_worker_free(w);
    pod_fx_free(&p);
}

static char **live_first(void *ctx, size_t *n)
{
    char **ids = xcalloc(2, sizeof *ids);
    ids[0] = xstrdup(ctx);
    *n = 1;
    return ids;
}

static void test_pod_net_gc_keeps_live(void **state)
{
    if (!need_root_plugins()) skip();
    fx_t *f = *state;
    write_default_conf(f, false);
    pod_net_t net;
    pod_net_init(&net, &f->cfg, true);
    net_sandbox_t *a = NULL, *b = NULL;
    err_t err;
    if (net_sandbox_create(&f->cfg, "live-1", &test_pod, &a, &err) == -1 ||
        net_sandbox_create(&f->cfg, "orphan-1", &test_pod, &b, &err) == -1)
        fail_msg("%s", err.msg);
    /* A sandbox operation under way (a pod thread holds gc_lock shared):
     * the collector does not wait for it, and leaves everything be. */
    pthread_rwlock_rdlock(&net.gc_lock);
    assert_int_equal(pod_net_gc(&net, live_first, (void *)"live-1", &err), POD_NET_GC_BUSY);
    pthread_rwlock_unlock(&net.gc_lock);
    assert_true(net_ns_exists(b->netns));
    assert_int_equal(pod_net_gc(&net, live_first, (void *)"live-1", &err), 1);
    assert_true(net_ns_exists(a->netns));
    assert_false(exists(b->netns, NULL));
    assert_false(lease_exists(f, b->ips[0]));
    assert_true(lease_exists(f, a->ips[0]));
    assert_int_equal(net_sandbox_destroy(&f->cfg, "live-1", &err), 0);
    net_sandbox_free(a);
    net_sandbox_free(b);
    /* No namespace left: the run dir's own mount goes too. */
    pod_net_destroy(&net);
    char *mounts = read_text("/proc/self", "mountinfo");
    bool mounted = mounts && strstr(mounts, f->run_dir) != NULL;
    free(mounts);
    assert_false(mounted);
}

/* The node's own addresses, which a container may not connect to, come
 * from its interfaces without their link-local ones (denied anyway, and one
 * per pod's veth: kept, they made each container's copy grow with the
 * node's pods); the host IP joins them. */
static void test_node_addrs_leave_out_link_local(void **state)
{
    (void)state;
    json_t *pod =
        json_loads("{\"kind\": \"Pod\", \"metadata\": {\"name\": \"p\", \"namespace\": \"n\"},"
                   " \"spec\": {\"containers\": [{\"name\": \"c\", \"image\": \"i\"}]}}",
                   0, NULL);
    assert_non_null(pod);
    podspec_t *spec = NULL;
    err_t err;
    if (podspec_parse(pod, &spec, &err) == -1) fail_msg("%s", err.msg);
    json_decref(pod);
    pod_net_policy_t pol;
    if (pod_net_policy_from_annotations(spec, NULL, 0, "192.0.2.77", &pol, &err) == -1)
        fail_msg("%s", err.msg);
    bool host = false, lo = false;
    for (size_t i = 0; i < pol.node_addrs.len; i++) {
        const char *a = pol.node_addrs.items[i];
        struct in6_addr v6;
        if (inet_pton(AF_INET6, a, &v6) == 1 && IN6_IS_ADDR_LINKLOCAL(&v6))
            fail_msg("link-local address %s in the node's addresses", a);
        assert_true(strncmp(a, "169.254.", 8) != 0);
        host |= strcmp(a, "192.0.2.77") == 0;
        lo |= strcmp(a, "127.0.0.1") == 0; /* read from the interfaces */
    }
    assert_true(host);
    assert_true(lo);
    pod_net_policy_free(&pol);
    podspec_free(spec);
}

static void find_plugins(void)
{
    for (size_t i = 0; plugin_dirs[i]; i++) {
        const char *need[] = {"ptp", "static", "portmap"};
        bool all = true;
        for (size_t k = 0; k < 3 && all; k++) {
            char *p = fs_join(plugin_dirs[i], need[k]);
            all = access(p, X_OK) == 0;
            free(p);
        }
        if (all) {
            real_bin = plugin_dirs[i];
            return;
        }
    }
}

int main(void)
{
    find_plugins();
    wasm_signals_save();
    /* One run at a time on this machine owns the test pod range. */
    int lock = open("/tmp/wasmlet-test-net.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (lock >= 0) flock(lock, LOCK_EX);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_conf_json),
        cmocka_unit_test(test_ipam_ranges),
        cmocka_unit_test_setup_teardown(test_default_conf_write_and_load, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_conf_load_order_and_conversion, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cni_exec_protocol, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cni_exec_errors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cni_exec_timeout_kills_group, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_netns_sockets, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_lifecycle, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_check_detects_damage, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_hostport, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_gc, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_failed_add_cleans_up, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_missing_plugin, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_hanging_plugin, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pod_sandbox_lifecycle, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_portless_component_pod_gets_a_sandbox, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_portless_pod_pull_events, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pod_without_sandbox_reports_node_ip, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_pod_sandbox_resumed_after_restart, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_pod_sandbox_failure_keeps_pod_pending, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_pod_net_gc_keeps_live, fx_setup, fx_teardown),
        cmocka_unit_test(test_node_addrs_leave_out_link_local),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (lock >= 0) close(lock);
    return rc;
}
