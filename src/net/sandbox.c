/* sandbox.c: a pod's network sandbox (see net.h): its namespace, the CNI
 * calls on it, and the state on disk that lets a DEL run without the pod.
 *
 * <state_dir>/<id>/sandbox.json holds, written atomically:
 *   {"id", "netns", "network", "ifname", "cniArgs",
 *    "pod": {"namespace", "name", "uid"}, "portMappings": [...],
 *    "config": <the exact config list used>, "phase": "creating"|"ready",
 *    "result": <the ADD result, once phase is ready>}
 * The file is written ("creating") before the namespace exists and before
 * any plugin runs, so whatever a crash leaves behind (a namespace, a veth,
 * a lease, an iptables chain) is named by a state a later destroy or GC
 * can act on; it is rewritten ("ready", with the result) after ADD. A DEL
 * always uses the config saved here, never the conf dir's current one: the
 * node's config may change while pods run.
 *
 * The phase is the sandbox's one state variable:
 *   (none) -> creating -> ready -> (none)     and creating -> (none)
 * destroy works from either phase; check and load want ready. */
#include "net/cni.h"
#include "net/net.h"
#include "util/diag.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#define STATE_FILE "sandbox.json"
#define IFNAME "eth0"

static int check_id(const char *id, err_t *err)
{
    size_t n = strlen(id);
    if (n == 0 || n > NET_SANDBOX_ID_MAX) return err_set(err, "sandbox id \"%s\": bad length", id);
    /* CNI wants a container id that starts with a letter or digit and
     * holds only those and "_.-"; it also makes a safe file name. */
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return err_set(err, "sandbox id \"%s\": not a CNI container id", id);
    }
    return 0;
}

void net_sandbox_new_id(char id[NET_SANDBOX_ID_MAX + 1])
{
    unsigned char raw[NET_SANDBOX_ID_MAX / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t r = getrandom(raw + got, sizeof raw - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (errno != EINTR)
            abort(); /* no entropy source at all: nothing sane to do */
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(id + 2 * i, 3, "%02x", raw[i]);
}

static char *state_dir_of(const net_config_t *cfg, const char *id)
{
    return fs_join(cfg->state_dir, id);
}

static char *state_path_of(const net_config_t *cfg, const char *id)
{
    char *d = state_dir_of(cfg, id), *p = fs_join(d, STATE_FILE);
    free(d);
    return p;
}

static int state_write(const net_config_t *cfg, const char *id, json_t *state, err_t *err)
{
    char *p = state_path_of(cfg, id);
    char *text = json_dumps(state, JSON_INDENT(1) | JSON_SORT_KEYS);
    int rc = fs_write_atomic(p, text, strlen(text), 0600, err);
    free(text);
    free(p);
    return rc;
}

/* *state gets NULL (and 0 is returned) when the sandbox has no state file. */
static int state_read(const net_config_t *cfg, const char *id, json_t **state, err_t *err)
{
    *state = NULL;
    char *p = state_path_of(cfg, id);
    json_error_t je;
    json_t *s = json_load_file(p, 0, &je);
    int rc = 0;
    if (!s) {
        struct stat st;
        if (stat(p, &st) == -1 && errno == ENOENT) goto out;
        rc = err_set(err, "sandbox state %s: %s", p, je.text);
        goto out;
    }
    err_t why;
    if (!json_str_at(s, "netns") || cni_conf_validate(json_at(s, "config"), &why) == -1) {
        rc =
            err_set(err, "sandbox state %s: %s", p, json_str_at(s, "netns") ? why.msg : "no netns");
        json_decref(s);
        goto out;
    }
    *state = s;
out:
    free(p);
    return rc;
}

static json_t *port_mappings_json(const net_pod_t *pod)
{
    json_t *a = json_array();
    for (size_t i = 0; i < pod->n_ports; i++) {
        const net_port_mapping_t *m = &pod->ports[i];
        json_t *o = json_pack("{s:i,s:i,s:s}", "hostPort", m->host_port, "containerPort",
                              m->container_port, "protocol", m->protocol ? m->protocol : "tcp");
        if (m->host_ip && m->host_ip[0]) json_object_set_new(o, "hostIP", json_string(m->host_ip));
        json_array_append_new(a, o);
    }
    return a;
}

/* Drops list's plugins of the given type. */
static void drop_plugins(json_t *list, const char *type)
{
    json_t *plugins = json_object_get(list, "plugins");
    for (size_t i = json_array_size(plugins); i-- > 0;) {
        const char *t = json_str_at(json_array_get(plugins, i), "type");
        if (t && strcmp(t, type) == 0) json_array_remove(plugins, i);
    }
}

/* The attachment a state describes; netns "" when the namespace is gone
 * (plugins then release what they hold outside it, as the spec asks). */
static void attachment_of(json_t *state, const char *id, bool need_netns, cni_attachment_t *att)
{
    const char *ns = json_str_at(state, "netns");
    att->container_id = id;
    att->netns = (!need_netns && !net_ns_exists(ns)) ? "" : ns;
    att->ifname = json_str_at(state, "ifname") ? json_str_at(state, "ifname") : IFNAME;
    att->cni_args = json_str_at(state, "cniArgs");
    att->port_mappings = json_at(state, "portMappings");
}

static bool is_loopback(const char *ip)
{
    return !strncmp(ip, "127.", 4) || !strcmp(ip, "::1");
}

/* The pod's addresses out of a CNI result: every ips[] entry on an
 * interface inside the sandbox (or on none named), without its prefix. */
static void sandbox_ips(net_sandbox_t *sb, json_t *result)
{
    json_t *ifs = json_object_get(result, "interfaces"), *ip;
    size_t i;
    json_array_foreach(json_object_get(result, "ips"), i, ip)
    {
        const char *addr = json_str_at(ip, "address");
        if (!addr || sb->n_ips == NET_MAX_IPS) continue;
        json_t *idx = json_object_get(ip, "interface");
        if (json_is_integer(idx)) {
            const char *in =
                json_str_at(json_array_get(ifs, (size_t)json_integer_value(idx)), "sandbox");
            if (!in || !in[0]) continue; /* a host-side address */
        }
        const char *slash = strchr(addr, '/');
        char *a = slash ? xstrndup(addr, (size_t)(slash - addr)) : xstrdup(addr);
        if (is_loopback(a)) {
            free(a);
            continue;
        }
        sb->ips[sb->n_ips++] = a;
    }
}

static net_sandbox_t *sandbox_from_state(const char *id, json_t *state)
{
    net_sandbox_t *sb = xcalloc(1, sizeof *sb);
    snprintf(sb->id, sizeof sb->id, "%s", id);
    sb->netns = xstrdup(json_str_at(state, "netns"));
    sb->network = xstrdup(json_str_at(state, "config", "name"));
    sb->result = json_incref(json_object_get(state, "result"));
    sandbox_ips(sb, sb->result);
    return sb;
}

void net_sandbox_free(net_sandbox_t *sb)
{
    if (!sb) return;
    free(sb->netns);
    free(sb->network);
    for (size_t i = 0; i < sb->n_ips; i++)
        free(sb->ips[i]);
    json_decref(sb->result);
    free(sb);
}

void net_sandbox_pod_ips(const net_sandbox_t *sb, const char **first, const char **second)
{
    *first = *second = NULL;
    if (!sb || sb->n_ips == 0) return;
    *first = sb->ips[0];
    bool v6 = strchr(sb->ips[0], ':') != NULL;
    for (size_t i = 1; i < sb->n_ips; i++)
        if ((strchr(sb->ips[i], ':') != NULL) != v6) {
            *second = sb->ips[i];
            return;
        }
}

/* The config list to DEL a sandbox whose ADD never completed with: its
 * plugins minus those that cannot be found (a plugin that does not exist
 * never ran, so it holds nothing to release; without this, a config naming
 * a missing plugin could never be undone, even once the node's config is
 * fixed). A new reference. */
static json_t *del_list_of(const net_config_t *cfg, json_t *state)
{
    json_t *list = json_object_get(state, "config");
    const char *phase = json_str_at(state, "phase");
    if (phase && !strcmp(phase, "ready")) return json_incref(list);
    json_t *copy = json_deep_copy(list), *kept = json_array(), *p;
    size_t i;
    json_array_foreach(json_object_get(copy, "plugins"), i, p)
    {
        char *path = NULL;
        const char *type = json_str_at(p, "type");
        if (type && cni_find_plugin(cfg->bin_dirs, type, &path, NULL) == 0)
            json_array_append(kept, p);
        free(path);
    }
    json_object_set_new(copy, "plugins", kept);
    return copy;
}

/* The "ipam" objects of list's plugins that wasmlet fills in: "static" ones
 * (the default config's), into out[0..n); how many. */
static size_t own_ipams(const net_config_t *cfg, json_t *list, json_t **out, size_t max)
{
    size_t n = 0, i;
    json_t *p;
    if (!cfg->ipam) return 0;
    json_array_foreach(json_object_get(list, "plugins"), i, p)
    {
        json_t *ipam = json_object_get(p, "ipam");
        const char *type = json_str_at(ipam, "type");
        if (type && !strcmp(type, "static") && n < max) out[n++] = ipam;
    }
    return n;
}

/* Fills the addresses of the ADD to come into list's own "static" IPAM
 * sections (those without addresses of their own). */
static int assign_addresses(const net_config_t *cfg, json_t *list, err_t *err)
{
    json_t *ipams[4];
    size_t n = own_ipams(cfg, list, ipams, 4);
    for (size_t i = 0; i < n; i++) {
        if (json_object_get(ipams[i], "addresses")) continue;
        if (net_ipam_assign(cfg->ipam, ipams[i], err) == -1) {
            for (size_t k = 0; k < i; k++)
                net_ipam_mark(cfg->ipam, ipams[k], false);
            return -1;
        }
    }
    return 0;
}

/* Marks the addresses a config list names held or free. */
static void mark_addresses(const net_config_t *cfg, json_t *list, bool held)
{
    json_t *ipams[4];
    size_t n = own_ipams(cfg, list, ipams, 4);
    for (size_t i = 0; i < n; i++)
        net_ipam_mark(cfg->ipam, ipams[i], held);
}

/* Marks a state's addresses held or free: those of its config, and those
 * of its ADD result (the same, or a lease of the IPAM plugin an earlier
 * wasmlet's default config named: still the pod's, and in the range). */
static void mark_state(const net_config_t *cfg, json_t *state, bool held)
{
    if (!cfg->ipam) return;
    mark_addresses(cfg, json_object_get(state, "config"), held);
    json_t *ips = json_at(state, "result", "ips");
    if (json_array_size(ips) == 0) return;
    json_t *as = json_pack("{s:O}", "addresses", ips);
    net_ipam_mark(cfg->ipam, as, held);
    json_decref(as);
}

int net_sandbox_ipam_load(const net_config_t *cfg, err_t *err)
{
    if (!cfg->ipam) return 0;
    char **ids;
    size_t n;
    if (net_sandbox_list(cfg, &ids, &n, err) == -1) return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *state = NULL;
        err_t e;
        if (state_read(cfg, ids[i], &state, &e) == 0 && state) mark_state(cfg, state, true);
        json_decref(state);
        free(ids[i]);
    }
    free(ids);
    return 0;
}

/* DEL, namespace, state: the one teardown, from a state read from disk or
 * just built. Keeps the state when a DEL fails; once the state is gone,
 * its addresses are free. */
static int teardown(const net_config_t *cfg, const char *id, json_t *state, err_t *err)
{
    cni_attachment_t att;
    attachment_of(state, id, false, &att);
    json_t *result = json_object_get(state, "result");
    json_t *list = del_list_of(cfg, state);
    int del = json_array_size(json_object_get(list, "plugins")) == 0
                  ? 0
                  : cni_list_del(cfg->bin_dirs, list, &att, json_is_object(result) ? result : NULL,
                                 cfg->plugin_timeout_ms, err);
    json_decref(list);
    if (del == -1) return -1;
    if (net_ns_delete(json_str_at(state, "netns"), err) == -1) return -1;
    char *d = state_dir_of(cfg, id);
    int rc = fs_rm_rf(d, err);
    free(d);
    if (rc == 0) mark_state(cfg, state, false);
    return rc;
}

/* How many sandboxes are made, checked or destroyed at once. Each runs
 * the plugin chain as processes (by default ptp, static, and portmap for
 * a hostPort; IPAM plugins such as host-local serialise on a file lock),
 * so more at once buys no speed: a burst of 5,000 pod starts would
 * otherwise fork thousands of plugins together (seen: load average above
 * 300 on 2 cores). The others wait here, before their plugin timeouts
 * start. */
#define SANDBOX_OPS_AT_ONCE 8
static pthread_mutex_t ops_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ops_free = PTHREAD_COND_INITIALIZER;
static int ops_running; /* ops_lock */

static void op_begin(void)
{
    pthread_mutex_lock(&ops_lock);
    while (ops_running >= SANDBOX_OPS_AT_ONCE)
        pthread_cond_wait(&ops_free, &ops_lock);
    ops_running++;
    pthread_mutex_unlock(&ops_lock);
}

static void op_end(void)
{
    pthread_mutex_lock(&ops_lock);
    ops_running--;
    pthread_cond_signal(&ops_free);
    pthread_mutex_unlock(&ops_lock);
}

static int create(const net_config_t *cfg, const char *id, const net_pod_t *pod,
                  net_sandbox_t **out, err_t *err);
static int check(const net_config_t *cfg, const char *id, err_t *err);
static int destroy(const net_config_t *cfg, const char *id, err_t *err);

int net_sandbox_create(const net_config_t *cfg, const char *id, const net_pod_t *pod,
                       net_sandbox_t **out, err_t *err)
{
    op_begin();
    int rc = create(cfg, id, pod, out, err);
    op_end();
    return rc;
}

int net_sandbox_check(const net_config_t *cfg, const char *id, err_t *err)
{
    op_begin();
    int rc = check(cfg, id, err);
    op_end();
    return rc;
}

int net_sandbox_destroy(const net_config_t *cfg, const char *id, err_t *err)
{
    op_begin();
    int rc = destroy(cfg, id, err);
    op_end();
    return rc;
}

static int create(const net_config_t *cfg, const char *id, const net_pod_t *pod,
                  net_sandbox_t **out, err_t *err)
{
    *out = NULL;
    if (check_id(id, err) == -1) return -1;
    json_t *list = NULL, *state = NULL, *result = NULL;
    char *conf_path = NULL, *dir = NULL, *ns = NULL;
    int rc = -1;
    if (cni_conf_load(cfg->conf_dir, &list, &conf_path, err) == -1) goto out;
    if (cfg->default_list && pod->n_ports == 0) drop_plugins(list, "portmap");
    if (fs_mkdir_p(cfg->state_dir, 0700, err) == -1) goto out;
    dir = state_dir_of(cfg, id);
    if (mkdir(dir, 0700) == -1) {
        err_errno(err, "sandbox %s: state dir %s", id, dir);
        goto out;
    }
    /* The addresses go into the config before the state is written: the
     * state names them from the start, and a DEL uses that same config. */
    if (assign_addresses(cfg, list, err) == -1) {
        err_prefix(err, "sandbox %s", id);
        fs_rm_rf(dir, NULL);
        goto out;
    }
    char *ns_path = fs_join(cfg->run_dir, id);
    char *args = xasprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;"
                           "K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s",
                           pod->ns, pod->name, id, pod->uid);
    state = json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s},s:o,s:O,s:s,s:s}", "id", id, "netns",
                      ns_path, "network", json_str_at(list, "name"), "ifname", IFNAME, "cniArgs",
                      args, "pod", "namespace", pod->ns, "name", pod->name, "uid", pod->uid,
                      "portMappings", port_mappings_json(pod), "config", list, "phase", "creating",
                      "configFile", conf_path);
    free(ns_path);
    free(args);
    if (state_write(cfg, id, state, err) == -1) {
        fs_rm_rf(dir, NULL);
        mark_addresses(cfg, list, false);
        goto out;
    }
    if (net_ns_create(cfg->run_dir, id, &ns, err) == -1) {
        fs_rm_rf(dir, NULL);
        mark_addresses(cfg, list, false);
        goto out;
    }
    cni_attachment_t att;
    attachment_of(state, id, true, &att);
    if (cni_list_add(cfg->bin_dirs, list, &att, cfg->plugin_timeout_ms, &result, err) == -1)
        goto undo;
    json_object_set(state, "result", result);
    json_object_set_new(state, "phase", json_string("ready"));
    if (state_write(cfg, id, state, err) == -1) goto undo;
    *out = sandbox_from_state(id, state);
    rc = 0;
    goto out;
undo:
    /* DEL without a result: the ADD that failed gave none to pass. */
    json_object_del(state, "result");
    err_t undo_err;
    if (teardown(cfg, id, state, &undo_err) == -1) {
        diag_warn("net: sandbox %s: clean-up after a failed ADD: %s (kept for a retry)", id,
                  undo_err.msg);
        err_prefix(err, "sandbox %s (clean-up failed too, state kept: %s)", id, undo_err.msg);
    } else {
        err_prefix(err, "sandbox %s", id);
    }
out:
    json_decref(list);
    json_decref(state);
    json_decref(result);
    free(conf_path);
    free(dir);
    free(ns);
    return rc;
}

int net_sandbox_load(const net_config_t *cfg, const char *id, net_sandbox_t **out, err_t *err)
{
    *out = NULL;
    if (check_id(id, err) == -1) return -1;
    json_t *state;
    if (state_read(cfg, id, &state, err) == -1) return -1;
    if (!state) return err_set(err, "sandbox %s: no state on disk", id);
    int rc = 0;
    const char *phase = json_str_at(state, "phase");
    if (!phase || strcmp(phase, "ready") || !json_is_object(json_object_get(state, "result")))
        rc = err_set(err, "sandbox %s: not ready (%s)", id, phase ? phase : "no phase");
    else
        *out = sandbox_from_state(id, state);
    json_decref(state);
    return rc;
}

static int check(const net_config_t *cfg, const char *id, err_t *err)
{
    if (check_id(id, err) == -1) return -1;
    json_t *state;
    if (state_read(cfg, id, &state, err) == -1) return -1;
    if (!state) return err_set(err, "sandbox %s: no state on disk", id);
    int rc = -1;
    const char *phase = json_str_at(state, "phase");
    json_t *result = json_object_get(state, "result");
    if (!phase || strcmp(phase, "ready") || !json_is_object(result)) {
        err_set(err, "sandbox %s: not ready (%s)", id, phase ? phase : "no phase");
        goto out;
    }
    if (!net_ns_exists(json_str_at(state, "netns"))) {
        err_set(err, "sandbox %s: network namespace %s is gone", id, json_str_at(state, "netns"));
        goto out;
    }
    cni_attachment_t att;
    attachment_of(state, id, true, &att);
    if (cni_list_check(cfg->bin_dirs, json_object_get(state, "config"), &att, result,
                       cfg->plugin_timeout_ms, err) == -1) {
        err_prefix(err, "sandbox %s", id);
        goto out;
    }
    rc = 0;
out:
    json_decref(state);
    return rc;
}

static int destroy(const net_config_t *cfg, const char *id, err_t *err)
{
    if (check_id(id, err) == -1) return -1;
    json_t *state;
    int rc = -1;
    if (state_read(cfg, id, &state, err) == -1) return err_prefix(err, "sandbox %s", id);
    if (!state) {
        /* Nothing ran a plugin without a state first: only a namespace
         * file (or an empty state dir) can be left. */
        char *ns = fs_join(cfg->run_dir, id), *dir = state_dir_of(cfg, id);
        rc = net_ns_delete(ns, err) == 0 && fs_rm_rf(dir, err) == 0 ? 0 : -1;
        free(ns);
        free(dir);
        return rc == -1 ? err_prefix(err, "sandbox %s", id) : 0;
    }
    rc = teardown(cfg, id, state, err);
    if (rc == -1) err_prefix(err, "sandbox %s", id);
    json_decref(state);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the valid sandbox ids among the entries of dir (if it exists). */
static int list_dir(const char *dir, char ***ids, size_t *n, size_t *cap, err_t *err)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : err_errno(err, "list %s", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (check_id(e->d_name, NULL) == -1) continue; /* ".", "..", temp files */
        bool dup = false;
        for (size_t i = 0; i < *n && !dup; i++)
            dup = !strcmp((*ids)[i], e->d_name);
        if (dup) continue;
        if (*n + 2 > *cap) *ids = xrealloc(*ids, (*cap = *cap * 2 + 8) * sizeof **ids);
        (*ids)[(*n)++] = xstrdup(e->d_name);
    }
    closedir(d);
    return 0;
}

int net_sandbox_list(const net_config_t *cfg, char ***ids, size_t *n, err_t *err)
{
    char **v = NULL;
    size_t len = 0, cap = 0;
    if (list_dir(cfg->state_dir, &v, &len, &cap, err) == -1 ||
        list_dir(cfg->run_dir, &v, &len, &cap, err) == -1) {
        for (size_t i = 0; i < len; i++)
            free(v[i]);
        free(v);
        return -1;
    }
    if (!v) v = xcalloc(1, sizeof *v);
    qsort(v, len, sizeof *v, cmp_str);
    v[len] = NULL;
    *ids = v;
    *n = len;
    return 0;
}

int net_sandbox_gc(const net_config_t *cfg, const char *const *live, size_t n_live, err_t *err)
{
    char **ids;
    size_t n;
    if (net_sandbox_list(cfg, &ids, &n, err) == -1) return -1;
    int destroyed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        bool is_live = false;
        for (size_t j = 0; j < n_live && !is_live; j++)
            is_live = !strcmp(ids[i], live[j]);
        if (is_live) continue;
        err_t e;
        if (net_sandbox_destroy(cfg, ids[i], &e) == -1) {
            diag_warn("net: orphan sandbox %s: %s (will retry)", ids[i], e.msg);
            if (!failed++) err_set(err, "%s", e.msg);
        } else {
            diag_info("net: destroyed orphan sandbox %s", ids[i]);
            destroyed++;
        }
        free(ids[i]);
        ids[i] = NULL;
    }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    return failed ? -1 : destroyed;
}
