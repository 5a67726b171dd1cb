/*
 * tcp-client: a TCP client over wasi:sockets/tcp, for the tests of
 * component sockets. `tcp-client HOST PORT [LINE]` resolves HOST with
 * wasi:sockets/ip-name-lookup (an IP literal or a name such as localhost),
 * connects to its first address, sends LINE (default "hello") and a
 * newline, closes its sending side, and copies everything the server sends
 * back to stdout until the server closes. Against tcp-echo it prints LINE.
 * `tcp-client sockets N` only creates up to N IPv4 TCP sockets and keeps
 * them, then prints "sockets K" (no traffic at all): for the tests of the
 * descriptor cap.
 *
 * When the host refuses an operation it prints "tcp-client: <op>: <wasi
 * error-code name>" (for example "tcp-client: connect: access-denied" or
 * "tcp-client: connect: connection-refused") and exits 1; usage errors
 * exit 2.
 */
// component-world: tcp
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcp.h"

#include "net_addr.h"
#include "wasi_errors.h"

typedef wasi_sockets_tcp_borrow_tcp_socket_t sock_t;

static int tcp_client_fail(const char *op, wasi_sockets_network_error_code_t code)
{
    fprintf(stderr, "tcp-client: %s: %s\n", op, wasi_sockets_error_name(code));
    return 1;
}

static void tcp_client_block(wasi_io_poll_own_pollable_t p)
{
    wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(p));
    wasi_io_poll_pollable_drop_own(p);
}

/* The first address HOST resolves to; returns 0 or an error code + 1. */
static int tcp_client_resolve(wasi_sockets_network_borrow_network_t net, const char *host,
                              wasi_sockets_network_ip_address_t *addr)
{
    tcp_string_t name;
    tcp_string_set(&name, host);
    wasi_sockets_ip_name_lookup_own_resolve_address_stream_t stream;
    wasi_sockets_network_error_code_t code;
    if (!wasi_sockets_ip_name_lookup_resolve_addresses(net, &name, &stream, &code)) return code + 1;
    wasi_sockets_ip_name_lookup_borrow_resolve_address_stream_t s =
        wasi_sockets_ip_name_lookup_borrow_resolve_address_stream(stream);
    int rc = 0;
    for (;;) {
        wasi_sockets_ip_name_lookup_option_ip_address_t next;
        if (wasi_sockets_ip_name_lookup_method_resolve_address_stream_resolve_next_address(s, &next,
                                                                                           &code)) {
            if (next.is_some)
                *addr = next.val;
            else
                rc = WASI_SOCKETS_NETWORK_ERROR_CODE_NAME_UNRESOLVABLE + 1;
            break;
        }
        if (code != WASI_SOCKETS_NETWORK_ERROR_CODE_WOULD_BLOCK) {
            rc = code + 1;
            break;
        }
        tcp_client_block(wasi_sockets_ip_name_lookup_method_resolve_address_stream_subscribe(s));
    }
    wasi_sockets_ip_name_lookup_resolve_address_stream_drop_own(stream);
    return rc;
}

/* `tcp-client sockets N`. */
static int tcp_client_sockets(const char *n_arg)
{
    long n = strtol(n_arg, NULL, 10), made = 0;
    wasi_sockets_network_error_code_t code;
    int rc = 0;
    while (made < n) {
        wasi_sockets_tcp_own_tcp_socket_t own;
        if (!wasi_sockets_tcp_create_socket_create_tcp_socket(
                WASI_SOCKETS_NETWORK_IP_ADDRESS_FAMILY_IPV4, &own, &code)) {
            rc = 1;
            break;
        }
        made++; /* kept until exit */
    }
    printf("sockets %ld\n", made);
    fflush(stdout);
    return rc ? tcp_client_fail("socket", code) : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "sockets") == 0) return tcp_client_sockets(argv[2]);
    int port = argc >= 3 ? net_addr_parse_port(argv[2]) : -1;
    if (argc < 3 || argc > 4 || port < 0) {
        fprintf(stderr, "usage: tcp-client HOST PORT [LINE]\n");
        return 2;
    }
    const char *line = argc == 4 ? argv[3] : "hello";

    wasi_sockets_network_own_network_t net = wasi_sockets_instance_network_instance_network();
    wasi_sockets_network_ip_address_t ip;
    int rc = tcp_client_resolve(wasi_sockets_network_borrow_network(net), argv[1], &ip);
    if (rc != 0) return tcp_client_fail("resolve", (wasi_sockets_network_error_code_t)(rc - 1));

    wasi_sockets_network_ip_socket_address_t addr;
    wasi_sockets_network_ip_address_family_t family;
    if (ip.tag == WASI_SOCKETS_NETWORK_IP_ADDRESS_IPV4) {
        family = WASI_SOCKETS_NETWORK_IP_ADDRESS_FAMILY_IPV4;
        addr.tag = WASI_SOCKETS_NETWORK_IP_SOCKET_ADDRESS_IPV4;
        addr.val.ipv4.port = (uint16_t)port;
        addr.val.ipv4.address = ip.val.ipv4;
    } else {
        family = WASI_SOCKETS_NETWORK_IP_ADDRESS_FAMILY_IPV6;
        addr.tag = WASI_SOCKETS_NETWORK_IP_SOCKET_ADDRESS_IPV6;
        memset(&addr.val.ipv6, 0, sizeof addr.val.ipv6);
        addr.val.ipv6.port = (uint16_t)port;
        addr.val.ipv6.address = ip.val.ipv6;
    }

    wasi_sockets_network_error_code_t code;
    wasi_sockets_tcp_own_tcp_socket_t own;
    if (!wasi_sockets_tcp_create_socket_create_tcp_socket(family, &own, &code))
        return tcp_client_fail("socket", code);
    sock_t sock = wasi_sockets_tcp_borrow_tcp_socket(own);
    if (!wasi_sockets_tcp_method_tcp_socket_start_connect(
            sock, wasi_sockets_network_borrow_network(net), &addr, &code))
        return tcp_client_fail("connect", code);
    wasi_sockets_tcp_tuple2_own_input_stream_own_output_stream_t io;
    while (!wasi_sockets_tcp_method_tcp_socket_finish_connect(sock, &io, &code)) {
        if (code != WASI_SOCKETS_NETWORK_ERROR_CODE_WOULD_BLOCK)
            return tcp_client_fail("connect", code);
        tcp_client_block(wasi_sockets_tcp_method_tcp_socket_subscribe(sock));
    }
    wasi_io_streams_borrow_input_stream_t in = wasi_io_streams_borrow_input_stream(io.f0);
    wasi_io_streams_borrow_output_stream_t out = wasi_io_streams_borrow_output_stream(io.f1);

    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%s\n", line);
    tcp_list_u8_t msg = {(uint8_t *)buf, n < (int)sizeof buf ? (size_t)n : sizeof buf - 1};
    wasi_io_streams_stream_error_t err;
    if (!wasi_io_streams_method_output_stream_blocking_write_and_flush(out, &msg, &err)) {
        fprintf(stderr, "tcp-client: send: stream closed\n");
        return 1;
    }
    if (!wasi_sockets_tcp_method_tcp_socket_shutdown(sock, WASI_SOCKETS_TCP_SHUTDOWN_TYPE_SEND,
                                                     &code))
        return tcp_client_fail("shutdown", code);
    for (;;) {
        tcp_list_u8_t data;
        if (!wasi_io_streams_method_input_stream_blocking_read(in, sizeof buf, &data, &err))
            break; /* closed: the whole reply is in */
        fwrite(data.ptr, 1, data.len, stdout);
        tcp_list_u8_free(&data);
    }
    fflush(stdout);
    wasi_io_streams_input_stream_drop_own(io.f0);
    wasi_io_streams_output_stream_drop_own(io.f1);
    wasi_sockets_tcp_tcp_socket_drop_own(own);
    wasi_sockets_network_network_drop_own(net);
    return 0;
}
