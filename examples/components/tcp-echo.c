/*
 * tcp-echo: a TCP echo server over wasi:sockets/tcp, for the tests of
 * component sockets. `tcp-echo PORT COUNT [ADDRESS]` listens on
 * ADDRESS:PORT (IPv4, default 0.0.0.0; port 0 picks a free one), prints
 * "listening on ADDRESS:PORT" with the bound port once it accepts, then
 * serves COUNT connections one after the other: everything a client sends
 * is written back until it closes its side, and "connection N: M bytes" is
 * printed. It exits 0 after the last one.
 *
 * When the host refuses an operation it prints "tcp-echo: <op>: <wasi
 * error-code name>" (for example "tcp-echo: bind: access-denied") and exits
 * 1; usage errors exit 2.
 */
// component-world: tcp
#include <stdio.h>
#include <stdlib.h>

#include "tcp.h"

#include "net_addr.h"
#include "wasi_errors.h"

typedef wasi_sockets_tcp_borrow_tcp_socket_t sock_t;

static int tcp_echo_fail(const char *op, wasi_sockets_network_error_code_t code)
{
    fprintf(stderr, "tcp-echo: %s: %s\n", op, wasi_sockets_error_name(code));
    return 1;
}

/* Blocks until the socket's pollable is ready (an operation may finish). */
static void tcp_echo_wait(sock_t sock)
{
    wasi_io_poll_own_pollable_t p = wasi_sockets_tcp_method_tcp_socket_subscribe(sock);
    wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(p));
    wasi_io_poll_pollable_drop_own(p);
}

/* Echoes one connection until the client closes; returns the byte count. */
static size_t tcp_echo_serve(wasi_io_streams_borrow_input_stream_t in,
                             wasi_io_streams_borrow_output_stream_t out)
{
    size_t total = 0;
    for (;;) {
        tcp_list_u8_t data;
        wasi_io_streams_stream_error_t err;
        if (!wasi_io_streams_method_input_stream_blocking_read(in, 4096, &data, &err)) {
            if (err.tag == WASI_IO_STREAMS_STREAM_ERROR_LAST_OPERATION_FAILED)
                wasi_io_error_error_drop_own(err.val.last_operation_failed);
            return total;
        }
        total += data.len;
        int ok = wasi_io_streams_method_output_stream_blocking_write_and_flush(out, &data, &err);
        tcp_list_u8_free(&data);
        if (!ok) {
            if (err.tag == WASI_IO_STREAMS_STREAM_ERROR_LAST_OPERATION_FAILED)
                wasi_io_error_error_drop_own(err.val.last_operation_failed);
            return total;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: tcp-echo PORT COUNT [ADDRESS]\n");
        return 2;
    }
    int port = net_addr_parse_port(argv[1]);
    int count = atoi(argv[2]);
    wasi_sockets_network_ipv4_address_t ip = {0, 0, 0, 0};
    if (port < 0 || count < 1 || (argc == 4 && net_addr_parse_ipv4(argv[3], &ip) != 0)) {
        fprintf(stderr, "usage: tcp-echo PORT COUNT [ADDRESS]\n");
        return 2;
    }

    wasi_sockets_network_error_code_t code;
    wasi_sockets_tcp_own_tcp_socket_t own;
    if (!wasi_sockets_tcp_create_socket_create_tcp_socket(
            WASI_SOCKETS_NETWORK_IP_ADDRESS_FAMILY_IPV4, &own, &code))
        return tcp_echo_fail("socket", code);
    sock_t sock = wasi_sockets_tcp_borrow_tcp_socket(own);
    wasi_sockets_network_own_network_t net = wasi_sockets_instance_network_instance_network();

    wasi_sockets_network_ip_socket_address_t addr = {
        .tag = WASI_SOCKETS_NETWORK_IP_SOCKET_ADDRESS_IPV4,
        .val.ipv4 = {.port = (uint16_t)port, .address = ip},
    };
    if (!wasi_sockets_tcp_method_tcp_socket_start_bind(
            sock, wasi_sockets_network_borrow_network(net), &addr, &code))
        return tcp_echo_fail("bind", code);
    while (!wasi_sockets_tcp_method_tcp_socket_finish_bind(sock, &code)) {
        if (code != WASI_SOCKETS_NETWORK_ERROR_CODE_WOULD_BLOCK) return tcp_echo_fail("bind", code);
        tcp_echo_wait(sock);
    }
    if (!wasi_sockets_tcp_method_tcp_socket_start_listen(sock, &code))
        return tcp_echo_fail("listen", code);
    while (!wasi_sockets_tcp_method_tcp_socket_finish_listen(sock, &code)) {
        if (code != WASI_SOCKETS_NETWORK_ERROR_CODE_WOULD_BLOCK)
            return tcp_echo_fail("listen", code);
        tcp_echo_wait(sock);
    }
    if (!wasi_sockets_tcp_method_tcp_socket_local_address(sock, &addr, &code))
        return tcp_echo_fail("local-address", code);
    const wasi_sockets_network_ipv4_address_t *b = &addr.val.ipv4.address;
    printf("listening on %u.%u.%u.%u:%u\n", b->f0, b->f1, b->f2, b->f3, addr.val.ipv4.port);
    fflush(stdout);

    for (int i = 1; i <= count; i++) {
        wasi_sockets_tcp_tuple3_own_tcp_socket_own_input_stream_own_output_stream_t conn;
        while (!wasi_sockets_tcp_method_tcp_socket_accept(sock, &conn, &code)) {
            if (code != WASI_SOCKETS_NETWORK_ERROR_CODE_WOULD_BLOCK)
                return tcp_echo_fail("accept", code);
            tcp_echo_wait(sock);
        }
        size_t n = tcp_echo_serve(wasi_io_streams_borrow_input_stream(conn.f1),
                                  wasi_io_streams_borrow_output_stream(conn.f2));
        /* The streams are children of the socket: they go first. */
        wasi_io_streams_input_stream_drop_own(conn.f1);
        wasi_io_streams_output_stream_drop_own(conn.f2);
        wasi_sockets_tcp_tcp_socket_drop_own(conn.f0);
        printf("connection %d: %zu bytes\n", i, n);
        fflush(stdout);
    }
    wasi_sockets_tcp_tcp_socket_drop_own(own);
    wasi_sockets_network_network_drop_own(net);
    return 0;
}
