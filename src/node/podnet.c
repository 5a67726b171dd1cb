/* podnet.c: the node's pod network settings (node.h, node_podnet_*).
 *
 * Owns: where this node keeps its sandboxes (everything under its own data
 * dir, so several nodes on one machine never share a namespace dir or a
 * sandbox state dir), which CNI config it uses, and the
 * default config it writes when --cni-conf-dir has none: ptp with addresses
 * from the Node's spec.podCIDRs (read after registration, waiting for the
 * controller-manager to allocate them; wasmlet hands them out, net/ipam.c,
 * through the "static" IPAM plugin) and portmap, which runs only for pods
 * with a hostPort (net_config_t.default_list; lo comes up with the
 * namespace, netns.c), into
 * <data-dir>/net/cni (never /etc/cni/net.d, which other nodes on the
 * machine would read too). Each node's podCIDR is its own, so its pod
 * addresses, its ptp gateway address and its host routes are too; ptp
 * names each host-side veth at random ("veth" + 8 hex digits), so two
 * nodes' interfaces never clash either.
 *
 * <data-dir>/net/
 *   cni/10-wasmlet.conflist   the default config (rewritten at each start)
 *   ipam/                     host-local's leases (from before wasmlet gave out
 *                             the default config's addresses itself)
 *   netns/                    namespace files, one per sandbox (a shared mount)
 *   sandboxes/<pod uid>/      each sandbox's state (net/sandbox.c)
 *
 * Threads: node_main's, before the pod manager starts. */
#include "kube/client.h"
#include "net/cni.h"
#include "net/net.h"
#include "node/node.h"
#include "util/diag.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_CONF_NAME "10-wasmlet.conflist"

/* The Node's spec.podCIDRs (or spec.podCIDR), comma-separated; NULL when
 * none is allocated yet. */
static char *node_pod_cidrs(json_t *node)
{
    strbuf_t sb = STRBUF_INIT;
    size_t i;
    json_t *c;
    json_array_foreach(json_at(node, "spec", "podCIDRs"), i, c)
    {
        if (!json_string_length(c)) continue;
        if (sb.len) strbuf_putc(&sb, ',');
        strbuf_puts(&sb, json_string_value(c));
    }
    if (!sb.len && json_str_at(node, "spec", "podCIDR") && json_str_at(node, "spec", "podCIDR")[0])
        strbuf_puts(&sb, json_str_at(node, "spec", "podCIDR"));
    if (!sb.len) {
        strbuf_free(&sb);
        return NULL;
    }
    return strbuf_take(&sb);
}

/* Waits (up to timeout_ms) for the controller-manager to give the Node its
 * podCIDRs. */
static int wait_pod_cidrs(kube_client_t *c, const char *node_name, int64_t timeout_ms, char **cidrs,
                          err_t *err)
{
    char *path = xasprintf("/api/v1/nodes/%s", node_name);
    int64_t start = time_mono_ns(), next_note = start + 10 * NS_PER_SEC;
    int rc = -1;
    err_t last;
    err_clear(&last);
    for (;;) {
        json_t *node = NULL;
        kube_result_t res;
        if (kube_get(c, path, &node, &res, &last) == 0) {
            *cidrs = node_pod_cidrs(node);
            json_decref(node);
            if (*cidrs) {
                rc = 0;
                break;
            }
        }
        int64_t now = time_mono_ns();
        if (now - start >= timeout_ms * NS_PER_MS) {
            err_set(err,
                    "node %s has no spec.podCIDR after %lld s, and --cni-conf-dir has no network "
                    "config: run the controller-manager with --allocate-node-cidrs, give a CNI "
                    "config, or run pods on the host's network (--pod-network=host)%s%s",
                    node_name, (long long)(timeout_ms / 1000), last.msg[0] ? "; last error: " : "",
                    last.msg);
            break;
        }
        if (now >= next_note) {
            diag_info("node %s: waiting for its spec.podCIDR (the controller-manager's "
                      "--allocate-node-cidrs)",
                      node_name);
            next_note = now + 10 * NS_PER_SEC;
        }
        time_sleep_ms(250);
    }
    free(path);
    return rc;
}

int node_podnet_setup(kube_client_t *c, const node_podnet_options_t *o, node_podnet_t *out,
                      err_t *err)
{
    memset(out, 0, sizeof *out);
    char *base = fs_join(o->data_dir, "net");
    out->run_dir = fs_join(base, "netns");
    out->state_dir = fs_join(base, "sandboxes");
    char *own_conf = fs_join(base, "cni");
    /* The bin dirs: a comma-separated list, as the kubelet's flag was. */
    char *bins = xstrdup(o->bin_dirs), *save = NULL;
    size_t n = 0;
    out->bin_dirs = xcalloc(strlen(bins) / 2 + 2, sizeof *out->bin_dirs);
    for (char *d = strtok_r(bins, ",", &save); d; d = strtok_r(NULL, ",", &save))
        if (d[0]) out->bin_dirs[n++] = xstrdup(d);
    free(bins);
    int rc = -1;
    json_t *list = NULL;
    char *conf_path = NULL, *cidrs = NULL;
    err_t why;
    bool wrote_default = false;
    if (fs_mkdir_p(base, 0700, err) == -1) goto out;
    if (cni_conf_load(o->conf_dir, &list, &conf_path, &why) == 0) {
        out->conf_dir = xstrdup(o->conf_dir);
        diag_info("pod network: CNI config %s (network %s)", conf_path, json_str_at(list, "name"));
    } else {
        if (wait_pod_cidrs(c, o->node_name, o->pod_cidr_wait_ms, &cidrs, err) == -1) goto out;
        net_default_opts_t d = {.pod_cidrs = cidrs, .name = "wasmlet"};
        char *file = fs_join(own_conf, DEFAULT_CONF_NAME);
        rc = fs_mkdir_p(own_conf, 0755, err) == 0 ? net_default_conf_write(file, &d, err) : -1;
        if (rc == 0) rc = net_ipam_new(cidrs, &out->ipam, err);
        if (rc == 0)
            diag_info("pod network: no network config in %s (%s); wrote the default one to %s: "
                      "ptp with addresses from the node's podCIDR %s, portmap for hostPorts",
                      o->conf_dir, why.msg, file, cidrs);
        free(file);
        if (rc == -1) goto out;
        rc = -1;
        out->conf_dir = xstrdup(own_conf);
        wrote_default = true;
    }
    out->cfg = (net_config_t){.conf_dir = out->conf_dir,
                              .bin_dirs = (const char *const *)out->bin_dirs,
                              .run_dir = out->run_dir,
                              .state_dir = out->state_dir,
                              .ipam = out->ipam,
                              .default_list = wrote_default};
    /* The addresses the sandboxes of an earlier run hold stay theirs. */
    if (net_sandbox_ipam_load(&out->cfg, err) == -1) goto out;
    if (out->ipam)
        diag_info("pod network: %zu pod addresses held by sandboxes on disk",
                  net_ipam_used(out->ipam));
    rc = 0;
out:
    json_decref(list);
    free(conf_path);
    free(cidrs);
    free(base);
    free(own_conf);
    return rc;
}

void node_podnet_free(node_podnet_t *p)
{
    for (size_t i = 0; p->bin_dirs && p->bin_dirs[i]; i++)
        free(p->bin_dirs[i]);
    free(p->bin_dirs);
    free(p->conf_dir);
    free(p->run_dir);
    free(p->state_dir);
    net_ipam_free(p->ipam);
    memset(p, 0, sizeof *p);
}
