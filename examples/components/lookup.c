/*
 * lookup: name resolution over wasi:sockets/ip-name-lookup, for the tests
 * of component sockets. `lookup NAME` prints each address NAME resolves to,
 * one a line ("127.0.0.1", "::1"), in the resolver's order, and exits 0.
 *
 * When the host refuses or the name does not resolve it prints
 * "lookup: NAME: <wasi error-code name>" (for example "lookup: localhost:
 * access-denied" or "lookup: nosuch.invalid: name-unresolvable") and exits
 * 1; usage errors exit 2.
 */
// component-world: lookup
#include <stdio.h>

#include "lookup.h"

#include "net_addr.h"
#include "wasi_errors.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: lookup NAME\n");
        return 2;
    }
    wasi_sockets_network_own_network_t net = wasi_sockets_instance_network_instance_network();
    lookup_string_t name;
    lookup_string_set(&name, argv[1]);
    wasi_sockets_ip_name_lookup_own_resolve_address_stream_t stream;
    wasi_sockets_network_error_code_t code;
    if (!wasi_sockets_ip_name_lookup_resolve_addresses(wasi_sockets_network_borrow_network(net),
                                                       &name, &stream, &code)) {
        fprintf(stderr, "lookup: %s: %s\n", argv[1], wasi_sockets_error_name(code));
        return 1;
    }
    wasi_sockets_ip_name_lookup_borrow_resolve_address_stream_t s =
        wasi_sockets_ip_name_lookup_borrow_resolve_address_stream(stream);
    int found = 0, rc = 0;
    for (;;) {
        wasi_sockets_ip_name_lookup_option_ip_address_t next;
        if (wasi_sockets_ip_name_lookup_method_resolve_address_stream_resolve_next_address(s, &next,
                                                                                           &code)) {
            if (!next.is_some) break;
            char text[64];
            net_addr_format(&next.val, text, sizeof text);
            printf("%s\n", text);
            found++;
            continue;
        }
        if (code != WASI_SOCKETS_NETWORK_ERROR_CODE_WOULD_BLOCK) {
            fprintf(stderr, "lookup: %s: %s\n", argv[1], wasi_sockets_error_name(code));
            rc = 1;
            break;
        }
        wasi_io_poll_own_pollable_t p =
            wasi_sockets_ip_name_lookup_method_resolve_address_stream_subscribe(s);
        wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(p));
        wasi_io_poll_pollable_drop_own(p);
    }
    if (rc == 0 && found == 0) {
        fprintf(stderr, "lookup: %s: %s\n", argv[1],
                wasi_sockets_error_name(WASI_SOCKETS_NETWORK_ERROR_CODE_NAME_UNRESOLVABLE));
        rc = 1;
    }
    wasi_sockets_ip_name_lookup_resolve_address_stream_drop_own(stream);
    wasi_sockets_network_network_drop_own(net);
    return rc;
}
