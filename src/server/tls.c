/* tls.c: TLS contexts for the HTTPS server (see tls.h).
 *
 * A context is built whole from PEM text and never changed afterwards:
 * rotation makes a new one. TLS 1.2 is the floor (the API server and
 * every current client speak 1.3). Client certificates are requested, not
 * required, and a failed verification does not fail the handshake: a
 * client without a valid certificate may still present a bearer token,
 * and one with neither gets a 401 it can read instead of a TLS alert. */
#include "server/tls.h"
#include "util/xalloc.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>

static SSL_CTX *fail(SSL_CTX *ctx, err_t *err, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    err_set(err, "%s%s%s", what, buf[0] ? ": " : "", buf);
    SSL_CTX_free(ctx);
    return NULL;
}

/* Accept the handshake whatever the verification found; the result is
 * read per request with SSL_get_verify_result. */
static int accept_any(int ok, X509_STORE_CTX *store)
{
    (void)ok;
    (void)store;
    return 1;
}

static int load_chain(SSL_CTX *ctx, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio) return 0;
    X509 *leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    int ok = leaf && SSL_CTX_use_certificate(ctx, leaf) == 1;
    X509_free(leaf);
    X509 *extra;
    while (ok && (extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        ok = SSL_CTX_add0_chain_cert(ctx, extra) == 1;
    ERR_clear_error(); /* the end of the PEM data */
    BIO_free(bio);
    return ok;
}

static int load_key(SSL_CTX *ctx, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    int ok = key && SSL_CTX_use_PrivateKey(ctx, key) == 1;
    EVP_PKEY_free(key);
    BIO_free(bio);
    return ok;
}

static int load_client_ca(SSL_CTX *ctx, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio) return 0;
    STACK_OF(X509_INFO) *infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!infos) return 0;
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    int n = 0;
    for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *info = sk_X509_INFO_value(infos, i);
        if (!info->x509) continue;
        if (X509_STORE_add_cert(store, info->x509) == 1) n++;
        X509_NAME *name = X509_NAME_dup(X509_get_subject_name(info->x509));
        if (name && names) sk_X509_NAME_push(names, name);
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    if (names) SSL_CTX_set_client_CA_list(ctx, names);
    ERR_clear_error();
    return n > 0;
}

SSL_CTX *server_tls_ctx(const char *cert_pem, const char *key_pem, const char *client_ca_pem,
                        err_t *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return fail(NULL, err, "TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* libevent retries a blocked SSL_write from its output buffer, whose
     * data may have moved by then (the buffer realigns as data is added);
     * without this mode OpenSSL fails the retry ("bad write retry") and the
     * connection drops mid-stream whenever a client reads slower than a
     * log is written. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!load_chain(ctx, cert_pem)) return fail(ctx, err, "serving certificate");
    if (!load_key(ctx, key_pem)) return fail(ctx, err, "serving key");
    if (SSL_CTX_check_private_key(ctx) != 1)
        return fail(ctx, err, "serving key does not match the certificate");
    static const unsigned char sid[] = "wasmlet";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    if (client_ca_pem) {
        if (!load_client_ca(ctx, client_ca_pem))
            return fail(ctx, err, "client CA: no certificate in it");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any);
        SSL_CTX_set_verify_depth(ctx, 8);
    }
    return ctx;
}

static char *name_entry(const X509_NAME *name, int index)
{
    const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
    int n = ASN1_STRING_length(s);
    return xstrndup((const char *)ASN1_STRING_get0_data(s), n > 0 ? (size_t)n : 0);
}

void server_tls_peer(SSL *ssl, char **user, strvec_t *groups)
{
    *user = NULL;
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (!peer) return;
    if (SSL_get_verify_result(ssl) == X509_V_OK) {
        const X509_NAME *name = X509_get_subject_name(peer);
        int cn = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
        if (cn >= 0) {
            *user = name_entry(name, cn);
            for (int i = X509_NAME_get_index_by_NID(name, NID_organizationName, -1); i >= 0;
                 i = X509_NAME_get_index_by_NID(name, NID_organizationName, i))
                strvec_push_owned(groups, name_entry(name, i));
        }
    }
    X509_free(peer);
}
