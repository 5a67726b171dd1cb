/*
 * wasi_errors.h: the names of the WASI 0.2 error codes, as the WIT spells
 * them, for the preview-2 example programs. They print these names when the
 * host refuses an operation ("tcp-client: connect: access-denied"), and the
 * tests match them, so keep them exactly as in the WIT files of
 * wasmtime-wasi and wasmtime-wasi-http 48.0.8 (wasi 0.2.12).
 */
#ifndef WASI_ERRORS_H
#define WASI_ERRORS_H

#include <stddef.h>

/* wasi:sockets/network error-code, an enum: its value indexes the table. */
static inline const char *wasi_sockets_error_name(unsigned code)
{
    static const char *const names[] = {
        "unknown",
        "access-denied",
        "not-supported",
        "invalid-argument",
        "out-of-memory",
        "timeout",
        "concurrency-conflict",
        "not-in-progress",
        "would-block",
        "invalid-state",
        "new-socket-limit",
        "address-not-bindable",
        "address-in-use",
        "remote-unreachable",
        "connection-refused",
        "connection-reset",
        "connection-aborted",
        "datagram-too-large",
        "name-unresolvable",
        "temporary-resolver-failure",
        "permanent-resolver-failure",
    };
    return code < sizeof names / sizeof names[0] ? names[code] : "?";
}

/* wasi:http/types error-code, a variant: its tag indexes the table. */
static inline const char *wasi_http_error_name(unsigned tag)
{
    static const char *const names[] = {
        "DNS-timeout",
        "DNS-error",
        "destination-not-found",
        "destination-unavailable",
        "destination-IP-prohibited",
        "destination-IP-unroutable",
        "connection-refused",
        "connection-terminated",
        "connection-timeout",
        "connection-read-timeout",
        "connection-write-timeout",
        "connection-limit-reached",
        "TLS-protocol-error",
        "TLS-certificate-error",
        "TLS-alert-received",
        "HTTP-request-denied",
        "HTTP-request-length-required",
        "HTTP-request-body-size",
        "HTTP-request-method-invalid",
        "HTTP-request-URI-invalid",
        "HTTP-request-URI-too-long",
        "HTTP-request-header-section-size",
        "HTTP-request-header-size",
        "HTTP-request-trailer-section-size",
        "HTTP-request-trailer-size",
        "HTTP-response-incomplete",
        "HTTP-response-header-section-size",
        "HTTP-response-header-size",
        "HTTP-response-body-size",
        "HTTP-response-trailer-section-size",
        "HTTP-response-trailer-size",
        "HTTP-response-transfer-coding",
        "HTTP-response-content-coding",
        "HTTP-response-timeout",
        "HTTP-upgrade-failed",
        "HTTP-protocol-error",
        "loop-detected",
        "configuration-error",
        "internal-error",
    };
    return tag < sizeof names / sizeof names[0] ? names[tag] : "?";
}

#endif
