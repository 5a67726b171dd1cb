/* pki.h: the few X.509 operations a node needs for its own identity, on
 * PEM text so that callers never hold OpenSSL objects: a new private key,
 * a certificate signing request, a self-signed serving certificate, and
 * what a certificate says (names, validity).
 *
 * Keys are ECDSA P-256, as the kubelet makes them: small, fast to make on
 * every rotation, and accepted by every Kubernetes signer. Shared by node/
 * (TLS bootstrap, rotation) and server/ (the serving certificate and the
 * identity of clients). */
#ifndef WASMLET_UTIL_PKI_H
#define WASMLET_UTIL_PKI_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A subject and its alternative names. */
typedef struct pki_name {
    const char *cn;          /* commonName */
    const char *const *orgs; /* organization entries (Kubernetes groups) */
    size_t norgs;
    const char *const *dns; /* subjectAltName DNS entries */
    size_t ndns;
    const char *const *ips; /* subjectAltName IP entries (v4 or v6 text) */
    size_t nips;
} pki_name_t;

/* A new ECDSA P-256 key as PKCS#8 PEM; the caller frees. */
int pki_key_new(char **key_pem, err_t *err);

/* A PEM certificate request for name, signed with key_pem. */
int pki_csr_new(const char *key_pem, const pki_name_t *name, char **csr_pem, err_t *err);

/* A self-signed certificate for serving TLS (serverAuth, CA:FALSE) valid
 * from a minute ago for valid_seconds. */
int pki_self_signed(const char *key_pem, const pki_name_t *name, int64_t valid_seconds,
                    char **cert_pem, err_t *err);

/* What the first certificate of a PEM chain says. */
typedef struct pki_cert_info {
    int64_t not_before_ns; /* Unix ns */
    int64_t not_after_ns;
    char cn[256];
    char org[256];    /* the first organization, "" when none */
    bool self_signed; /* issuer equals subject */
} pki_cert_info_t;

int pki_cert_info(const char *cert_pem, pki_cert_info_t *info, err_t *err);

/* Whether key_pem is the private key of the first certificate of cert_pem. */
bool pki_key_matches(const char *cert_pem, const char *key_pem);

/* The PEM blocks of text whose type contains "CERTIFICATE" (no key), or
 * of the private key only (keys = true), in order; the caller frees. Used
 * to split a file holding a chain and its key, as rotated files do. */
char *pki_pem_select(const char *text, bool keys);

#endif
