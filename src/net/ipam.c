/* ipam.c: the pod addresses of the default network config, handed out by
 * wasmlet itself (net.h, net_ipam_*).
 *
 * host-local, the usual IPAM plugin, keeps one file per lease, and each of
 * its ADDs and DELs reads every one of them to find the container's own:
 * 13 ms more per call for each 1,000 pods held (bench/sandbox -t), about
 * 70 ms at 5,000. So the default config names Debian's "static" IPAM plugin
 * instead, and sandbox.c writes the pod's address and gateway into the copy
 * of the config each ADD runs with. The sandbox's state keeps that copy, so
 * the addresses in use are those named by the states on disk: read back
 * when the node starts (net_sandbox_ipam_load), given back when a sandbox's
 * state goes.
 *
 * A range per podCIDR (one per family). Offset 0 is the network address,
 * 1 the gateway (the host end of every pod's veth, as it was host-local's
 * default), the last of an IPv4 range its broadcast address; the others,
 * at most 65,536 per range, are the pods'. They are handed out round robin
 * from after the last one given, so an address just released is not reused
 * at once (a peer's conntrack or neighbour entry may still name it), as
 * host-local does. A bitmap per range, under one mutex. */
#include "net/net.h"
#include "util/json.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RANGE_MAX_ADDRS 65536u

typedef struct range {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char base[16]; /* the network address */
    int prefix;
    uint32_t size;        /* addresses in the range, at most RANGE_MAX_ADDRS */
    uint32_t first, last; /* the pods' offsets: [first, last] */
    uint32_t cursor;      /* the offset handed out last */
    uint32_t used;
    uint8_t *bits;
    char text[64]; /* the CIDR, as given */
} range_t;

struct net_ipam {
    pthread_mutex_t lock;
    range_t ranges[2];
    size_t n;
};

/* The network part of byte i of an address under a prefix length. */
static unsigned char prefix_mask(int prefix, int i)
{
    int keep = prefix - i * 8;
    return keep >= 8 ? 0xff : keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
}

int net_pod_cidr_parse(const char *cidr, unsigned char addr[16], int *prefix, err_t *err)
{
    const char *slash = strchr(cidr, '/');
    char text[64];
    if (!slash || (size_t)(slash - cidr) >= sizeof text)
        return err_set(err, "pod range \"%s\": not a CIDR", cidr);
    memcpy(text, cidr, (size_t)(slash - cidr));
    text[slash - cidr] = '\0';
    char *end;
    long len = strtol(slash + 1, &end, 10);
    int family, bits;
    if (inet_pton(AF_INET, text, addr) == 1)
        family = 4, bits = 32;
    else if (inet_pton(AF_INET6, text, addr) == 1)
        family = 6, bits = 128;
    else
        return err_set(err, "pod range \"%s\": not an address", cidr);
    /* Room for a gateway and at least one pod. */
    if (*end || slash[1] == '\0' || len < 1 || len > bits - 2)
        return err_set(err, "pod range \"%s\": bad prefix length", cidr);
    *prefix = (int)len;
    return family;
}

static int parse_range(const char *cidr, range_t *r, err_t *err)
{
    memset(r, 0, sizeof *r);
    snprintf(r->text, sizeof r->text, "%s", cidr);
    int fam = net_pod_cidr_parse(cidr, r->base, &r->prefix, err);
    if (fam == -1) return -1;
    r->family = fam == 4 ? AF_INET : AF_INET6;
    int bits = fam == 4 ? 32 : 128;
    /* The network address: the host bits cleared. */
    for (int i = 0; i < bits / 8; i++)
        r->base[i] &= prefix_mask(r->prefix, i);
    int host_bits = bits - r->prefix;
    r->size = host_bits >= 16 ? RANGE_MAX_ADDRS : 1u << host_bits;
    r->first = 2;
    /* IPv4's last address is the broadcast, when the range is whole. */
    r->last = r->size - 1 - (r->family == AF_INET && host_bits <= 16 ? 1 : 0);
    if (r->last < r->first) return err_set(err, "pod range \"%s\": no room for pods", cidr);
    r->cursor = r->last;
    r->bits = xcalloc(r->size / 8 + 1, 1);
    return 0;
}

/* How many pod addresses r has: its offsets first..last. */
static uint32_t capacity(const range_t *r)
{
    return r->last - r->first + 1;
}

/* The address at offset off of r, as text. */
static void addr_at(const range_t *r, uint32_t off, char *out, size_t outlen)
{
    unsigned char a[16];
    memcpy(a, r->base, sizeof a);
    int len = r->family == AF_INET ? 4 : 16;
    uint32_t carry = off;
    for (int i = len - 1; i >= 0 && carry; i--) {
        uint32_t v = a[i] + (carry & 0xff);
        a[i] = (unsigned char)v;
        carry = (carry >> 8) + (v >> 8);
    }
    inet_ntop(r->family, a, out, (socklen_t)outlen);
}

/* The offset of addr in r, or -1 when it is not one of the pods'. */
static int64_t offset_of(const range_t *r, const char *addr)
{
    unsigned char a[16] = {0};
    if (inet_pton(r->family, addr, a) != 1) return -1;
    int len = r->family == AF_INET ? 4 : 16;
    /* Same network: the prefix bits match; then the offset is the low bits. */
    for (int i = 0; i < len; i++)
        if ((a[i] & prefix_mask(r->prefix, i)) != r->base[i]) return -1;
    uint64_t off = 0;
    for (int i = 0; i < len; i++) {
        if (i < len - 4) {
            unsigned char host = (unsigned char)(a[i] & ~r->base[i]);
            if (host) return -1; /* beyond the first 65,536 */
            continue;
        }
        off = off << 8 | (unsigned char)(a[i] - r->base[i]);
    }
    if (off < r->first || off > r->last) return -1;
    return (int64_t)off;
}

static bool bit_get(const range_t *r, uint32_t off)
{
    return r->bits[off / 8] & (1u << (off % 8));
}

static void bit_set(range_t *r, uint32_t off, bool on)
{
    if (bit_get(r, off) == on) return;
    if (on)
        r->bits[off / 8] |= (uint8_t)(1u << (off % 8));
    else
        r->bits[off / 8] &= (uint8_t) ~(1u << (off % 8));
    r->used += on ? 1 : (uint32_t)-1;
}

int net_ipam_new(const char *pod_cidrs, net_ipam_t **out, err_t *err)
{
    net_ipam_t *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    char *list = xstrdup(pod_cidrs ? pod_cidrs : ""), *save = NULL;
    int rc = 0;
    for (char *c = strtok_r(list, ", ", &save); c && rc == 0; c = strtok_r(NULL, ", ", &save)) {
        range_t r;
        if (p->n == 2) {
            rc = err_set(err, "pod ranges \"%s\": more than one per family", pod_cidrs);
        } else if ((rc = parse_range(c, &r, err)) == 0) {
            if (p->n == 1 && p->ranges[0].family == r.family) {
                free(r.bits);
                rc = err_set(err, "pod ranges \"%s\": two of one family", pod_cidrs);
            } else {
                p->ranges[p->n++] = r;
            }
        }
    }
    free(list);
    if (rc == 0 && p->n == 0) rc = err_set(err, "pod ranges \"%s\": none", pod_cidrs);
    if (rc == -1) {
        net_ipam_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

void net_ipam_free(net_ipam_t *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n; i++)
        free(p->ranges[i].bits);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* The next free offset of r after its cursor (round robin), or -1. */
static int64_t take_locked(range_t *r)
{
    uint32_t span = capacity(r);
    for (uint32_t k = 1; k <= span; k++) {
        uint32_t off = r->first + (r->cursor - r->first + k) % span;
        if (!bit_get(r, off)) {
            bit_set(r, off, true);
            r->cursor = off;
            return off;
        }
    }
    return -1;
}

int net_ipam_assign(net_ipam_t *p, json_t *ipam_conf, err_t *err)
{
    json_t *addrs = json_array();
    int rc = 0;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n; i++) {
        range_t *r = &p->ranges[i];
        int64_t off = take_locked(r);
        if (off < 0) {
            rc = err_set(err, "no IP addresses available in range %s (%u of %u in use)", r->text,
                         r->used, capacity(r));
            break;
        }
        char a[INET6_ADDRSTRLEN], gw[INET6_ADDRSTRLEN], cidr[INET6_ADDRSTRLEN + 8];
        addr_at(r, (uint32_t)off, a, sizeof a);
        addr_at(r, 1, gw, sizeof gw);
        snprintf(cidr, sizeof cidr, "%s/%d", a, r->prefix);
        json_array_append_new(addrs, json_pack("{s:s,s:s}", "address", cidr, "gateway", gw));
    }
    pthread_mutex_unlock(&p->lock);
    if (rc == -1) {
        json_t *tmp = json_pack("{s:o}", "addresses", addrs);
        net_ipam_mark(p, tmp, false);
        json_decref(tmp);
        return -1;
    }
    json_object_set_new(ipam_conf, "addresses", addrs);
    return 0;
}

void net_ipam_mark(net_ipam_t *p, const json_t *ipam_conf, bool held)
{
    size_t i;
    json_t *a;
    pthread_mutex_lock(&p->lock);
    json_array_foreach(json_object_get(ipam_conf, "addresses"), i, a)
    {
        const char *cidr = json_str_at(a, "address");
        if (!cidr) continue;
        char addr[INET6_ADDRSTRLEN + 8];
        snprintf(addr, sizeof addr, "%s", cidr);
        char *slash = strchr(addr, '/');
        if (slash) *slash = '\0';
        for (size_t k = 0; k < p->n; k++) {
            int64_t off = offset_of(&p->ranges[k], addr);
            if (off >= 0) bit_set(&p->ranges[k], (uint32_t)off, held);
        }
    }
    pthread_mutex_unlock(&p->lock);
}

bool net_ipam_held(net_ipam_t *p, const char *addr)
{
    bool held = false;
    pthread_mutex_lock(&p->lock);
    for (size_t k = 0; k < p->n && !held; k++) {
        int64_t off = offset_of(&p->ranges[k], addr);
        held = off >= 0 && bit_get(&p->ranges[k], (uint32_t)off);
    }
    pthread_mutex_unlock(&p->lock);
    return held;
}

size_t net_ipam_stats(net_ipam_t *p, net_ipam_range_stats_t *out, size_t max)
{
    pthread_mutex_lock(&p->lock);
    size_t n = 0;
    for (; n < p->n && n < max; n++) {
        const range_t *r = &p->ranges[n];
        snprintf(out[n].cidr, sizeof out[n].cidr, "%s", r->text);
        out[n].family = r->family == AF_INET ? 4 : 6;
        out[n].held = r->used;
        out[n].capacity = capacity(r);
    }
    pthread_mutex_unlock(&p->lock);
    return n;
}

size_t net_ipam_used(net_ipam_t *p)
{
    pthread_mutex_lock(&p->lock);
    size_t n = 0;
    for (size_t k = 0; k < p->n; k++)
        n += p->ranges[k].used;
    pthread_mutex_unlock(&p->lock);
    return n;
}
