/*
 * udp-echo: a UDP echo over wasi:sockets/udp, for the tests of component
 * sockets. Two modes:
 *
 *   udp-echo server PORT COUNT [ADDRESS]
 *       binds ADDRESS:PORT (IPv4, default 0.0.0.0; port 0 picks a free
 *       one), prints "listening on ADDRESS:PORT", sends each of COUNT
 *       datagrams back to its sender ("datagram N: M bytes"), exits 0.
 *   udp-echo client ADDRESS PORT MESSAGE
 *       sends MESSAGE to ADDRESS:PORT (an IPv4 literal) and prints the
 *       reply; exits 1 with "udp-echo: receive: timeout" when none comes
 *       within 5 s.
 *   udp-echo sockets N
 *       only creates up to N IPv4 UDP sockets and keeps them, then prints
 *       "sockets K" (no traffic at all): for the tests of the descriptor
 *       cap.
 *
 * When the host refuses an operation it prints "udp-echo: <op>: <wasi
 * error-code name>" (for example "udp-echo: bind: access-denied") and
 * exits 1; usage errors exit 2.
 */
// component-world: udp
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "udp.h"

#include "net_addr.h"
#include "wasi_errors.h"

#define UDP_ECHO_TIMEOUT_NS (5ull * 1000 * 1000 * 1000)

typedef wasi_sockets_udp_borrow_incoming_datagram_stream_t in_t;
typedef wasi_sockets_udp_borrow_outgoing_datagram_stream_t out_t;

static int udp_echo_fail(const char *op, wasi_sockets_network_error_code_t code)
{
    fprintf(stderr, "udp-echo: %s: %s\n", op, wasi_sockets_error_name(code));
    return 1;
}

static int udp_echo_usage(void)
{
    fprintf(stderr, "usage: udp-echo server PORT COUNT [ADDRESS]\n"
                    "       udp-echo client ADDRESS PORT MESSAGE\n"
                    "       udp-echo sockets N\n");
    return 2;
}

/* Waits until P is ready or TIMEOUT_NS passed (0: forever); 1 when ready. */
static int udp_echo_wait(wasi_io_poll_own_pollable_t p, uint64_t timeout_ns)
{
    int ready = 1;
    if (timeout_ns == 0) {
        wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(p));
    } else {
        wasi_io_poll_own_pollable_t t = wasi_clocks_monotonic_clock_subscribe_duration(timeout_ns);
        wasi_io_poll_borrow_pollable_t both[2] = {wasi_io_poll_borrow_pollable(p),
                                                  wasi_io_poll_borrow_pollable(t)};
        wasi_io_poll_list_borrow_pollable_t list = {both, 2};
        udp_list_u32_t which;
        wasi_io_poll_poll(&list, &which);
        ready = which.len > 0 && which.ptr[0] == 0;
        udp_list_u32_free(&which);
        wasi_io_poll_pollable_drop_own(t);
    }
    wasi_io_poll_pollable_drop_own(p);
    return ready;
}

/* Sends DATA (to TO, or to the stream's remote address when TO is NULL). */
static int udp_echo_send(out_t out, udp_list_u8_t data,
                         wasi_sockets_network_ip_socket_address_t *to)
{
    wasi_sockets_network_error_code_t code;
    uint64_t room = 0;
    while (room == 0) {
        if (!wasi_sockets_udp_method_outgoing_datagram_stream_check_send(out, &room, &code))
            return udp_echo_fail("send", code);
        if (room == 0)
            udp_echo_wait(wasi_sockets_udp_method_outgoing_datagram_stream_subscribe(out), 0);
    }
    wasi_sockets_udp_outgoing_datagram_t d = {.data = data};
    if (to) {
        d.remote_address.is_some = true;
        d.remote_address.val = *to;
    }
    wasi_sockets_udp_list_outgoing_datagram_t list = {&d, 1};
    uint64_t sent;
    if (!wasi_sockets_udp_method_outgoing_datagram_stream_send(out, &list, &sent, &code))
        return udp_echo_fail("send", code);
    return 0;
}

/* `udp-echo sockets N`. */
static int udp_echo_sockets(const char *n_arg)
{
    long n = strtol(n_arg, NULL, 10), made = 0;
    wasi_sockets_network_error_code_t code;
    int rc = 0;
    while (made < n) {
        wasi_sockets_udp_own_udp_socket_t own;
        if (!wasi_sockets_udp_create_socket_create_udp_socket(
                WASI_SOCKETS_NETWORK_IP_ADDRESS_FAMILY_IPV4, &own, &code)) {
            rc = 1;
            break;
        }
        made++; /* kept until exit */
    }
    printf("sockets %ld\n", made);
    fflush(stdout);
    return rc ? udp_echo_fail("socket", code) : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "sockets") == 0) return udp_echo_sockets(argv[2]);
    int server = argc >= 2 && strcmp(argv[1], "server") == 0;
    int client = argc == 5 && strcmp(argv[1], "client") == 0;
    if (!(server && (argc == 4 || argc == 5)) && !client) return udp_echo_usage();

    wasi_sockets_network_ipv4_address_t ip = {0, 0, 0, 0}, peer = {0, 0, 0, 0};
    int port = net_addr_parse_port(argv[server ? 2 : 3]);
    int count = server ? atoi(argv[3]) : 1;
    if (port < 0 || count < 1 || (server && argc == 5 && net_addr_parse_ipv4(argv[4], &ip) != 0) ||
        (client && net_addr_parse_ipv4(argv[2], &peer) != 0))
        return udp_echo_usage();

    wasi_sockets_network_error_code_t code;
    wasi_sockets_udp_own_udp_socket_t own;
    if (!wasi_sockets_udp_create_socket_create_udp_socket(
            WASI_SOCKETS_NETWORK_IP_ADDRESS_FAMILY_IPV4, &own, &code))
        return udp_echo_fail("socket", code);
    wasi_sockets_udp_borrow_udp_socket_t sock = wasi_sockets_udp_borrow_udp_socket(own);
    wasi_sockets_network_own_network_t net = wasi_sockets_instance_network_instance_network();

    /* A client binds an ephemeral port; a server the one asked for. */
    wasi_sockets_network_ip_socket_address_t local = {
        .tag = WASI_SOCKETS_NETWORK_IP_SOCKET_ADDRESS_IPV4,
        .val.ipv4 = {.port = server ? (uint16_t)port : 0, .address = ip},
    };
    if (!wasi_sockets_udp_method_udp_socket_start_bind(
            sock, wasi_sockets_network_borrow_network(net), &local, &code))
        return udp_echo_fail("bind", code);
    while (!wasi_sockets_udp_method_udp_socket_finish_bind(sock, &code)) {
        if (code != WASI_SOCKETS_NETWORK_ERROR_CODE_WOULD_BLOCK) return udp_echo_fail("bind", code);
        udp_echo_wait(wasi_sockets_udp_method_udp_socket_subscribe(sock), 0);
    }
    wasi_sockets_network_ip_socket_address_t remote = {
        .tag = WASI_SOCKETS_NETWORK_IP_SOCKET_ADDRESS_IPV4,
        .val.ipv4 = {.port = (uint16_t)port, .address = peer},
    };
    wasi_sockets_udp_tuple2_own_incoming_datagram_stream_own_outgoing_datagram_stream_t io;
    if (!wasi_sockets_udp_method_udp_socket_stream(sock, client ? &remote : NULL, &io, &code))
        return udp_echo_fail(client ? "connect" : "stream", code);
    in_t in = wasi_sockets_udp_borrow_incoming_datagram_stream(io.f0);
    out_t out = wasi_sockets_udp_borrow_outgoing_datagram_stream(io.f1);

    int rc = 0;
    if (client) {
        udp_list_u8_t msg = {(uint8_t *)argv[4], strlen(argv[4])};
        rc = udp_echo_send(out, msg, NULL);
    } else {
        if (!wasi_sockets_udp_method_udp_socket_local_address(sock, &local, &code))
            return udp_echo_fail("local-address", code);
        const wasi_sockets_network_ipv4_address_t *b = &local.val.ipv4.address;
        printf("listening on %u.%u.%u.%u:%u\n", b->f0, b->f1, b->f2, b->f3, local.val.ipv4.port);
        fflush(stdout);
    }
    for (int i = 1; rc == 0 && i <= count;) {
        if (!udp_echo_wait(wasi_sockets_udp_method_incoming_datagram_stream_subscribe(in),
                           client ? UDP_ECHO_TIMEOUT_NS : 0)) {
            fprintf(stderr, "udp-echo: receive: timeout\n");
            rc = 1;
            break;
        }
        wasi_sockets_udp_list_incoming_datagram_t got;
        if (!wasi_sockets_udp_method_incoming_datagram_stream_receive(in, 1, &got, &code)) {
            rc = udp_echo_fail("receive", code);
            break;
        }
        for (size_t k = 0; k < got.len && rc == 0; k++, i++) {
            wasi_sockets_udp_incoming_datagram_t *d = &got.ptr[k];
            if (client) {
                printf("%.*s\n", (int)d->data.len, (const char *)d->data.ptr);
            } else {
                rc = udp_echo_send(out, d->data, &d->remote_address);
                printf("datagram %d: %zu bytes\n", i, d->data.len);
            }
            fflush(stdout);
        }
        wasi_sockets_udp_list_incoming_datagram_free(&got);
    }
    wasi_sockets_udp_incoming_datagram_stream_drop_own(io.f0);
    wasi_sockets_udp_outgoing_datagram_stream_drop_own(io.f1);
    wasi_sockets_udp_udp_socket_drop_own(own);
    wasi_sockets_network_network_drop_own(net);
    return rc;
}
