/*
 * net_addr.h: text forms of wasi:sockets addresses for the preview-2
 * example programs: formatting an ip-address ("127.0.0.1", "::1") and
 * parsing an IPv4 literal. Include it after a world's bindings header (any
 * world that imports wasi:sockets has the wasi_sockets_network_* types).
 */
#ifndef NET_ADDR_H
#define NET_ADDR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes ADDR to OUT (at least 40 bytes), IPv6 with the longest run of two
 * or more zero groups shortened to "::". */
static inline void net_addr_format(const wasi_sockets_network_ip_address_t *addr, char *out,
                                   size_t size)
{
    if (addr->tag == WASI_SOCKETS_NETWORK_IP_ADDRESS_IPV4) {
        const wasi_sockets_network_ipv4_address_t *a = &addr->val.ipv4;
        snprintf(out, size, "%u.%u.%u.%u", a->f0, a->f1, a->f2, a->f3);
        return;
    }
    const wasi_sockets_network_ipv6_address_t *a = &addr->val.ipv6;
    unsigned g[8] = {a->f0, a->f1, a->f2, a->f3, a->f4, a->f5, a->f6, a->f7};
    int best = -1, best_len = 1;
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && g[j] == 0)
            j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j > i ? j : i + 1;
    }
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < 8 && n < size; i++) {
        if (i == best) {
            n += (size_t)snprintf(out + n, size - n, "::");
            i += best_len - 1;
            continue;
        }
        int colon = i > 0 && i != best + best_len;
        n += (size_t)snprintf(out + n, size - n, "%s%x", colon ? ":" : "", g[i]);
    }
}

/* Parses "a.b.c.d" into ADDR; returns 0, or -1 when TEXT is not one. */
static inline int net_addr_parse_ipv4(const char *text, wasi_sockets_network_ipv4_address_t *addr)
{
    unsigned b[4];
    char end;
    if (sscanf(text, "%u.%u.%u.%u%c", &b[0], &b[1], &b[2], &b[3], &end) != 4) return -1;
    for (int i = 0; i < 4; i++)
        if (b[i] > 255) return -1;
    addr->f0 = (uint8_t)b[0];
    addr->f1 = (uint8_t)b[1];
    addr->f2 = (uint8_t)b[2];
    addr->f3 = (uint8_t)b[3];
    return 0;
}

/* Parses a port number; returns it, or -1. */
static inline int net_addr_parse_port(const char *text)
{
    char *end;
    long port = strtol(text, &end, 10);
    return *text && !*end && port >= 0 && port <= 65535 ? (int)port : -1;
}

#endif
