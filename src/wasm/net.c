/* net.c: the network of a component container (wasmrt_net_t).
 *
 * A component may use wasi:sockets (TCP, UDP, ip-name-lookup) and outgoing
 * wasi:http, as a container's process has sockets. Until pods have network
 * namespaces of their own, those sockets use the node's network, where
 * etcd, the API server, the registry and the kubelet API listen on
 * loopback or on the node's addresses. So one address check, shared by
 * the sockets and the HTTP policy of a store, denies as destinations of a
 * connect, a datagram or an HTTP request: loopback, link-local, the
 * unspecified address (a connect to 0.0.0.0 reaches loopback on Linux),
 * IPv4-mapped forms of these, and the node's own addresses, unless the pod
 * lifts it (allow_local). Binding, listening, accepting connections and
 * receiving datagrams reach nothing and are not restricted. net.none gives a component no
 * sockets, no name lookup and no outgoing HTTP at all.
 *
 * The check runs on Wasmtime's threads (the store's and tokio's), so its
 * data is immutable after set-up and reference-counted: the WASI context
 * and the HTTP policy each hold a reference, released by their
 * finalizers. */
#include "wasm/internal.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What HTTPS trusts by default (as the wrapper does without CA files). */
#define NODE_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

typedef struct addr_policy {
    atomic_int refs; /* one per holder: no holder ever takes a second */
    bool allow_local;
    size_t n4, n6;
    struct in_addr *v4;  /* the node's IPv4 addresses */
    struct in6_addr *v6; /* and IPv6 */
} addr_policy_t;

static addr_policy_t *policy_new(const wasmrt_net_t *net)
{
    addr_policy_t *p = xcalloc(1, sizeof *p);
    atomic_init(&p->refs, 1);
    p->allow_local = net->allow_local;
    p->v4 = xcalloc(net->n_node_addrs + 1, sizeof *p->v4);
    p->v6 = xcalloc(net->n_node_addrs + 1, sizeof *p->v6);
    for (size_t i = 0; i < net->n_node_addrs; i++) {
        const char *a = net->node_addrs[i];
        if (inet_pton(AF_INET, a, &p->v4[p->n4]) == 1)
            p->n4++;
        else if (inet_pton(AF_INET6, a, &p->v6[p->n6]) == 1)
            p->n6++;
    }
    return p;
}

static void policy_unref(void *data)
{
    addr_policy_t *p = data;
    if (atomic_fetch_sub(&p->refs, 1) != 1) return;
    free(p->v4);
    free(p->v6);
    free(p);
}

/* Whether an IPv4 address (network order) is one the node keeps to itself. */
static bool local_v4(const addr_policy_t *p, struct in_addr a)
{
    uint32_t h = ntohl(a.s_addr);
    if ((h >> 24) == 127 || (h >> 16) == 0xa9fe || h == 0) return true; /* 127/8, 169.254/16 */
    for (size_t i = 0; i < p->n4; i++)
        if (p->v4[i].s_addr == a.s_addr) return true;
    return false;
}

static bool local_v6(const addr_policy_t *p, const struct in6_addr *a)
{
    if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a)) {
        struct in_addr v4;
        memcpy(&v4, &a->s6_addr[12], 4);
        return local_v4(p, v4);
    }
    if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LINKLOCAL(a))
        return true;
    for (size_t i = 0; i < p->n6; i++)
        if (memcmp(&p->v6[i], a, sizeof *a) == 0) return true;
    return false;
}

static bool check_addr(void *data, const struct sockaddr *addr, socklen_t len, int use)
{
    const addr_policy_t *p = data;
    /* Binding, listening, accepting and receiving reach nothing. */
    if (use != WASMLET_ADDR_TCP_CONNECT && use != WASMLET_ADDR_UDP_SEND &&
        use != WASMLET_ADDR_HTTP_CONNECT)
        return true;
    if (p->allow_local) return true;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
        return !local_v4(p, ((const struct sockaddr_in *)addr)->sin_addr);
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6))
        return !local_v6(p, &((const struct sockaddr_in6 *)addr)->sin6_addr);
    return false;
}

bool wasmrt_net_allows_destination(const wasmrt_net_t *net, const struct sockaddr *addr,
                                   socklen_t len)
{
    addr_policy_t *p = policy_new(net);
    bool ok = !net->none && check_addr(p, addr, len, WASMLET_ADDR_TCP_CONNECT);
    policy_unref(p);
    return ok;
}

void wasmrt_net_configure(wasi_config_t *wasi, const wasmrt_spec_t *spec)
{
    if (spec->net.none) return; /* Wasmtime's defaults: no TCP, no UDP, no lookup */
    wasmlet_wasi_config_allow_tcp(wasi, true);
    wasmlet_wasi_config_allow_udp(wasi, true);
    wasi_config_allow_ip_name_lookup(wasi, true);
    addr_policy_t *p = policy_new(&spec->net);
    wasmlet_wasi_config_socket_addr_check(wasi, check_addr, p, policy_unref);
}

int wasmrt_net_http_policy(wasmtime_context_t *cx, const wasmrt_spec_t *spec, char *msg, size_t len)
{
    const wasmrt_net_t *net = &spec->net;
    static const char *const none[1] = {NULL};
    wasmtime_error_t *error;
    if (net->none) {
        /* An empty allow-list: every request fails with HTTP-request-denied. */
        error = wasmlet_context_set_http_policy(cx, none, 0, NULL, NULL, NULL, NULL, 0);
    } else {
        /* Extra CA files are trusted besides the node's bundle. */
        const char **cas = NULL;
        size_t ncas = 0;
        if (net->n_http_ca_files) {
            cas = xcalloc(net->n_http_ca_files + 1, sizeof *cas);
            if (access(NODE_CA_BUNDLE, R_OK) == 0) cas[ncas++] = NODE_CA_BUNDLE;
            for (size_t i = 0; i < net->n_http_ca_files; i++)
                cas[ncas++] = net->http_ca_files[i];
        }
        addr_policy_t *p = policy_new(&spec->net);
        error = wasmlet_context_set_http_policy(
            cx, net->http_hosts_set ? (net->n_http_hosts ? net->http_hosts : none) : NULL,
            net->http_hosts_set ? net->n_http_hosts : 0, check_addr, p, policy_unref, cas, ncas);
        free(cas);
    }
    if (!error) return 0;
    char text[512];
    wasmrt_take_failure(error, NULL, text, sizeof text);
    snprintf(msg, len, "outgoing HTTP set-up failed: %s", text);
    return -1;
}
