/* test_server_ca.h: a throw-away certificate authority for the server and
 * bootstrap tests: a CA, client certificates it issues (CN, O), and the
 * signing of a PEM certificate request, as a Kubernetes signer would.
 * Header-only, included by test_server.c and test_bootstrap.c. */
#ifndef WASMLET_TEST_SERVER_CA_H
#define WASMLET_TEST_SERVER_CA_H

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#define TCA_API static __attribute__((unused))

typedef struct test_ca {
    EVP_PKEY *key;
    X509 *cert;
    char *cert_pem;
} test_ca_t;

TCA_API char *tca_bio_take(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *out = malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(bio);
    return out;
}

TCA_API char *tca_cert_pem(X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, x);
    return tca_bio_take(bio);
}

TCA_API char *tca_key_pem(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
    return tca_bio_take(bio);
}

TCA_API void tca_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext) abort();
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
}

TCA_API void tca_serial(X509 *x)
{
    BIGNUM *bn = BN_new();
    BN_rand(bn, 64, -1, 0);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
}

TCA_API void tca_init(test_ca_t *ca, const char *cn)
{
    ca->key = EVP_EC_gen("P-256");
    ca->cert = X509_new();
    X509_set_version(ca->cert, 2);
    tca_serial(ca->cert);
    X509_gmtime_adj(X509_getm_notBefore(ca->cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(ca->cert), 86400);
    X509_NAME *n = X509_get_subject_name(ca->cert);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(ca->cert, n);
    X509_set_pubkey(ca->cert, ca->key);
    tca_ext(ca->cert, ca->cert, NID_basic_constraints, "critical,CA:TRUE");
    tca_ext(ca->cert, ca->cert, NID_key_usage, "critical,keyCertSign,digitalSignature");
    tca_ext(ca->cert, ca->cert, NID_subject_key_identifier, "hash");
    X509_sign(ca->cert, ca->key, EVP_sha256());
    ca->cert_pem = tca_cert_pem(ca->cert);
}

TCA_API void tca_free(test_ca_t *ca)
{
    EVP_PKEY_free(ca->key);
    X509_free(ca->cert);
    free(ca->cert_pem);
}

/* Signs a certificate for pub with subject name, valid for seconds. */
TCA_API X509 *tca_issue(test_ca_t *ca, EVP_PKEY *pub, X509_NAME *name, long seconds,
                        const char *eku)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    tca_serial(x);
    X509_gmtime_adj(X509_getm_notBefore(x), -300);
    X509_gmtime_adj(X509_getm_notAfter(x), seconds);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, X509_get_subject_name(ca->cert));
    X509_set_pubkey(x, pub);
    tca_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE");
    tca_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature");
    tca_ext(x, ca->cert, NID_ext_key_usage, eku);
    X509_sign(x, ca->key, EVP_sha256());
    return x;
}

/* A client certificate (clientAuth) for cn and org (may be NULL) with a new
 * key; the caller frees both PEMs. */
TCA_API void tca_client(test_ca_t *ca, const char *cn, const char *org, char **cert_pem,
                        char **key_pem)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509_NAME *n = X509_NAME_new();
    if (org)
        X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)org, -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509 *x = tca_issue(ca, k, n, 3600, "clientAuth");
    *cert_pem = tca_cert_pem(x);
    *key_pem = tca_key_pem(k);
    X509_free(x);
    X509_NAME_free(n);
    EVP_PKEY_free(k);
}

/* Signs a PEM certificate request as a signer would (its subject and the
 * given lifetime); returns the certificate PEM, or NULL when the request
 * does not parse or its signature is wrong. */
TCA_API char *tca_sign_csr(test_ca_t *ca, const char *csr_pem, long seconds, const char *eku)
{
    BIO *bio = BIO_new_mem_buf(csr_pem, -1);
    X509_REQ *req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!req) return NULL;
    EVP_PKEY *pub = X509_REQ_get_pubkey(req);
    char *out = NULL;
    if (pub && X509_REQ_verify(req, pub) == 1) {
        X509 *x = tca_issue(ca, pub, X509_REQ_get_subject_name(req), seconds, eku);
        out = tca_cert_pem(x);
        X509_free(x);
    }
    EVP_PKEY_free(pub);
    X509_REQ_free(req);
    return out;
}

#endif
