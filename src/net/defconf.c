/* defconf.c: the network config wasmlet writes when the node has none.
 *
 * The config lives in wasmlet's own data dir, never in /etc/cni/net.d,
 * because several nodes on one machine (the e2e suite, the benchmarks)
 * would share that; each node hands out the addresses of its own podCIDR.
 *
 * The addresses: "static" IPAM, filled in by wasmlet for each ADD (ipam.c),
 * not host-local, whose every ADD and DEL reads all its lease files and so
 * slows down as pods accumulate (13 ms per 1,000, bench/sandbox -t).
 *
 * The interface plugin is ptp: one veth pair per pod, the host end holding
 * the gateway address and a /32 (or /128) route to the pod. A Linux bridge
 * stops at 1,024 ports, which is below the node's density goal; ptp has no
 * such limit. What does grow with the pod count on the host is the
 * neighbour table (one entry per pod veth): past net.ipv4.neigh.default.
 * gc_thresh3 (1,024 by default) the kernel drops entries and pods become
 * unreachable, so a node running thousands of pods raises gc_thresh1..3
 * (and the IPv6 ones). The list then runs portmap for hostPort, and only
 * for a pod that has one (sandbox.c drops it for the others). It has no
 * loopback plugin: wasmlet brings lo up itself when it makes the namespace
 * (netns.c), as container runtimes do, which saves two plugin runs (an ADD
 * and a DEL, about 4.5 ms each, bench/sandbox) per pod. */
#include "net/cni.h"
#include "net/net.h"
#include "util/fs.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

/* Which family "addr/len" is (4 or 6), or 0 when it is no pod range
 * (net_pod_cidr_parse, as the addresses' allocator reads it). */
static int cidr_family(const char *cidr)
{
    unsigned char addr[16];
    int prefix;
    int fam = net_pod_cidr_parse(cidr, addr, &prefix, NULL);
    return fam == -1 ? 0 : fam;
}

int net_default_conf(const net_default_opts_t *opts, json_t **conflist, err_t *err)
{
    if (!opts->pod_cidrs || !opts->pod_cidrs[0])
        return err_set(err, "default CNI config: the node has no podCIDR");
    json_t *routes = json_array();
    bool seen[7] = {false};
    char *cidrs = xstrdup(opts->pod_cidrs), *save = NULL;
    int rc = 0;
    for (char *c = strtok_r(cidrs, ", ", &save); c; c = strtok_r(NULL, ", ", &save)) {
        int fam = cidr_family(c);
        if (!fam) {
            rc = err_set(err, "default CNI config: podCIDR \"%s\" is not a usable CIDR", c);
            break;
        }
        if (seen[fam]) {
            rc = err_set(err, "default CNI config: two IPv%d podCIDRs in \"%s\"", fam,
                         opts->pod_cidrs);
            break;
        }
        seen[fam] = true;
        json_array_append_new(routes, json_pack("{s:s}", "dst", fam == 4 ? "0.0.0.0/0" : "::/0"));
    }
    free(cidrs);
    if (rc == -1 || json_array_size(routes) == 0) {
        json_decref(routes);
        return rc == -1 ? -1 : err_set(err, "default CNI config: no podCIDR");
    }
    /* No addresses here: wasmlet writes each pod's into the config of its
     * ADD (net_config_t.ipam, ipam.c). */
    json_t *ipam = json_pack("{s:s,s:o}", "type", "static", "routes", routes);
    *conflist = json_pack("{s:s,s:s,s:[{s:s,s:b,s:o},{s:s,s:{s:b}}]}", "cniVersion", CNI_VERSION,
                          "name", opts->name ? opts->name : "wasmlet", "plugins", "type", "ptp",
                          "ipMasq", opts->ip_masq, "ipam", ipam, "type", "portmap", "capabilities",
                          "portMappings", 1);
    return 0;
}

int net_default_conf_write(const char *path, const net_default_opts_t *opts, err_t *err)
{
    json_t *list;
    if (net_default_conf(opts, &list, err) == -1) return -1;
    char *text = json_dumps(list, JSON_INDENT(2));
    json_decref(list);
    size_t len = strlen(text);
    text = xrealloc(text, len + 2);
    text[len++] = '\n';
    text[len] = '\0';
    int rc = fs_write_atomic(path, text, len, 0644, err);
    free(text);
    return rc;
}
