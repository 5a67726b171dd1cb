/* tls.h: the server's TLS contexts and what a client certificate says.
 * Internal to server/. */
#ifndef WASMLET_SERVER_TLS_H
#define WASMLET_SERVER_TLS_H

#include "util/err.h"
#include "util/strvec.h"

#include <openssl/ssl.h>

/* A server context serving cert_pem (a chain, leaf first) with key_pem.
 * With client_ca_pem, clients are asked for a certificate; the handshake
 * succeeds whether or not one is given or verifies (the request is then
 * simply not authenticated by it, as the kubelet does), and
 * server_tls_peer reports only a certificate that verified. */
SSL_CTX *server_tls_ctx(const char *cert_pem, const char *key_pem, const char *client_ca_pem,
                        err_t *err);

/* The user (CN) and groups (every O) of the connection's client
 * certificate when it verified against the client CA; *user stays NULL
 * otherwise. */
void server_tls_peer(SSL *ssl, char **user, strvec_t *groups);

#endif
