/* annotations.c: wasmlet's per-pod annotations (see annotations.h). */
#include "pod/annotations.h"
#include "pod/termination.h"
#include "util/json.h"
#include "util/time.h"
#include "util/xalloc.h"

#include <ifaddrs.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *annotation(const podspec_t *spec, const char *name)
{
    char key[128];
    snprintf(key, sizeof key, "%s%s", POD_ANNOTATION_PREFIX, name);
    return json_str_at(spec->raw, "metadata", "annotations", key);
}

static bool strvec_has(const strvec_t *v, const char *s)
{
    for (size_t i = 0; i < v->len; i++)
        if (strcmp(v->items[i], s) == 0) return true;
    return false;
}

/* Every address of the node's interfaces, each once: the node's own
 * addresses. getifaddrs() dumps every link with its statistics, and a node
 * with pod networking has a veth per pod (whose host sides share the
 * gateway address): with thousands of pods, while CNI plugins add and
 * remove veths, one dump can take minutes. So the list is shared by all
 * container starts and read again once older than NODE_ADDRS_MAX_AGE_NS by
 * one of them, outside the lock, while the others go on with the list as
 * it was (only the first start of all waits for a list). */
#define NODE_ADDRS_MAX_AGE_NS (30 * 1000000000LL)
static pthread_mutex_t node_addrs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t node_addrs_read = PTHREAD_COND_INITIALIZER;
static strvec_t node_addrs_cache; /* under node_addrs_lock */
static int64_t node_addrs_at;     /* time_mono_ns of the last dump; 0: none */
static bool node_addrs_reading;   /* a thread is dumping now */

static void interface_addrs_read(strvec_t *out)
{
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) == -1) return;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr) continue;
        char text[INET6_ADDRSTRLEN];
        const void *a = NULL;
        /* Link-local addresses are left out: the address check denies all
         * of them anyway (wasm/net.c), and each pod's veth has one of its
         * own, so keeping them made every container's copy of the list grow
         * with the node's pods (5,000 networked pods: about 360 KiB for
         * each new container). */
        if (i->ifa_addr->sa_family == AF_INET) {
            const struct in_addr *v4 = &((const struct sockaddr_in *)i->ifa_addr)->sin_addr;
            if ((ntohl(v4->s_addr) >> 16) != 0xa9fe) a = v4; /* 169.254/16 */
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            const struct in6_addr *v6 = &((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
            if (!IN6_IS_ADDR_LINKLOCAL(v6)) a = v6;
        }
        if (a && inet_ntop(i->ifa_addr->sa_family, a, text, sizeof text) && !strvec_has(out, text))
            strvec_push(out, text);
    }
    freeifaddrs(ifs);
}

static void interface_addrs(strvec_t *out)
{
    pthread_mutex_lock(&node_addrs_lock);
    int64_t now = time_mono_ns();
    bool stale = node_addrs_at == 0 || now - node_addrs_at > NODE_ADDRS_MAX_AGE_NS;
    if (stale && !node_addrs_reading) {
        node_addrs_reading = true;
        pthread_mutex_unlock(&node_addrs_lock);
        strvec_t fresh = {0};
        interface_addrs_read(&fresh);
        pthread_mutex_lock(&node_addrs_lock);
        strvec_free(&node_addrs_cache);
        node_addrs_cache = fresh;
        node_addrs_at = time_mono_ns();
        node_addrs_reading = false;
        pthread_cond_broadcast(&node_addrs_read);
    }
    while (node_addrs_at == 0 && node_addrs_reading)
        pthread_cond_wait(&node_addrs_read, &node_addrs_lock);
    for (size_t i = 0; i < node_addrs_cache.len; i++)
        if (!strvec_has(out, node_addrs_cache.items[i]))
            strvec_push(out, node_addrs_cache.items[i]);
    pthread_mutex_unlock(&node_addrs_lock);
}

static int flag(const char *value, const char *name, bool *out, err_t *err)
{
    if (!value) return 0;
    if (strcmp(value, "true") == 0)
        *out = true;
    else if (strcmp(value, "false") == 0)
        *out = false;
    else
        return err_set(err, "annotation %s%s: \"%s\" is not \"true\" or \"false\"",
                       POD_ANNOTATION_PREFIX, name, value);
    return 0;
}

/* The host path of the CA file named in the container's file system. */
static int ca_file(const char *path, const wasmrt_mount_t *mounts, size_t n, char **out, err_t *err)
{
    const char *root = NULL;
    char *host = pod_term_host_path(mounts, n, path, &root);
    char real_file[PATH_MAX], real_root[PATH_MAX];
    if (!host || !realpath(host, real_file) || !realpath(root, real_root) ||
        strncmp(real_file, real_root, strlen(real_root)) != 0 ||
        (real_file[strlen(real_root)] != '/' && real_file[strlen(real_root)] != '\0')) {
        free(host);
        return err_set(err,
                       "annotation %shttp-ca-file: %s is not a readable file inside one of the "
                       "container's volume mounts",
                       POD_ANNOTATION_PREFIX, path);
    }
    free(host);
    *out = xstrdup(real_file);
    return 0;
}

int pod_net_policy_from_annotations(const podspec_t *spec, const wasmrt_mount_t *mounts,
                                    size_t nmounts, const char *host_ip, pod_net_policy_t *out,
                                    err_t *err)
{
    memset(out, 0, sizeof *out);
    const char *network = annotation(spec, "network");
    if (network && strcmp(network, "none") != 0 && strcmp(network, "default") != 0)
        return err_set(err, "annotation %snetwork: \"%s\" is not \"none\" or \"default\"",
                       POD_ANNOTATION_PREFIX, network);
    out->net.none = network && strcmp(network, "none") == 0;
    if (flag(annotation(spec, "allow-local-network"), "allow-local-network", &out->net.allow_local,
             err) == -1)
        return -1;
    if (host_ip && *host_ip) strvec_push(&out->node_addrs, host_ip);
    interface_addrs(&out->node_addrs);
    out->net.node_addrs = (const char *const *)out->node_addrs.items;
    out->net.n_node_addrs = out->node_addrs.len;

    const char *hosts = annotation(spec, "http-allowed-hosts");
    if (hosts) {
        out->net.http_hosts_set = true;
        char *copy = xstrdup(hosts), *save = NULL;
        for (char *h = strtok_r(copy, ", ", &save); h; h = strtok_r(NULL, ", ", &save))
            strvec_push(&out->hosts, h);
        free(copy);
        out->net.http_hosts = (const char *const *)out->hosts.items;
        out->net.n_http_hosts = out->hosts.len;
    }
    const char *ca = annotation(spec, "http-ca-file");
    if (ca) {
        if (ca_file(ca, mounts, nmounts, &out->ca_file, err) == -1) return -1;
        out->net.http_ca_files = (const char *const *)&out->ca_file;
        out->net.n_http_ca_files = 1;
    }
    return 0;
}

void pod_net_policy_free(pod_net_policy_t *n)
{
    strvec_free(&n->node_addrs);
    strvec_free(&n->hosts);
    free(n->ca_file);
    memset(n, 0, sizeof *n);
}

int pod_http_serving_from_spec(const podspec_t *spec, const podspec_container_t *c,
                               pod_http_serving_t *out, err_t *err)
{
    memset(out, 0, sizeof *out);
    json_t *ports = json_object_get(c->raw, "ports");
    out->ports = xcalloc(json_array_size(ports) + 1, sizeof *out->ports);
    size_t i;
    json_t *p;
    json_array_foreach(ports, i, p)
    {
        const char *proto = json_string_value(json_object_get(p, "protocol"));
        json_int_t port = json_integer_value(json_object_get(p, "containerPort"));
        if ((proto && strcmp(proto, "TCP") != 0) || port < 1 || port > 65535) continue;
        out->ports[out->http.nports++] = (uint16_t)port;
    }
    out->http.ports = out->ports;
    const char *max = annotation(spec, "http-max-in-flight");
    if (max) {
        char *end;
        long n = strtol(max, &end, 10);
        if (!*max || *end || n < 1 || n > 1000000)
            return err_set(err,
                           "annotation %shttp-max-in-flight: \"%s\" is not a whole number from "
                           "1 to 1000000",
                           POD_ANNOTATION_PREFIX, max);
        out->http.max_in_flight = (uint32_t)n;
    }
    const char *timeout = annotation(spec, "http-request-timeout");
    if (timeout) {
        int64_t ns;
        if (time_parse_duration(timeout, &ns) == -1 || ns < NS_PER_MS)
            return err_set(err,
                           "annotation %shttp-request-timeout: \"%s\" is not a duration of 1ms "
                           "or more (60s, 1m30s)",
                           POD_ANNOTATION_PREFIX, timeout);
        out->http.request_timeout_ms = ns / NS_PER_MS;
    }
    bool access_log = true;
    if (flag(annotation(spec, "http-access-log"), "http-access-log", &access_log, err) == -1)
        return -1;
    out->http.no_access_log = !access_log;
    return 0;
}

void pod_http_serving_free(pod_http_serving_t *h)
{
    free(h->ports);
    memset(h, 0, sizeof *h);
}

int pod_max_open_files(const podspec_t *spec, int64_t node_default, size_t *out, err_t *err)
{
    *out = node_default > 0 ? (size_t)node_default : 0;
    const char *v = annotation(spec, "max-open-files");
    if (!v) return 0;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < 1 || n > 1048576)
        return err_set(err, "annotation %smax-open-files: \"%s\" is not a number from 1 to 1048576",
                       POD_ANNOTATION_PREFIX, v);
    *out = (size_t)n;
    return 0;
}
