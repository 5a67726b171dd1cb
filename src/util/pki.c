/* pki.c: keys, requests and certificates as PEM text (see pki.h).
 *
 * Every function parses what it is given, builds one OpenSSL object, and
 * writes it back out as PEM through a memory BIO; nothing is cached, as a
 * node makes a handful of these a year (or a few a minute in tests). The
 * OpenSSL error queue is drained into err_t text so a caller can report
 * "key: no start line" rather than a bare failure. */
#include "util/pki.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Sets err to what, with the newest OpenSSL error appended; clears the queue. */
static int ssl_fail(err_t *err, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return err_set(err, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

static char *bio_take(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *out = xstrndup(data ? data : "", n > 0 ? (size_t)n : 0);
    BIO_free(bio);
    return out;
}

static EVP_PKEY *key_parse(const char *pem, err_t *err)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!key) ssl_fail(err, "private key");
    return key;
}

static X509 *cert_parse(const char *pem, err_t *err)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!x) ssl_fail(err, "certificate");
    return x;
}

int pki_key_new(char **key_pem, err_t *err)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (!key) return ssl_fail(err, "generate P-256 key");
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) {
        BIO_free(bio);
        EVP_PKEY_free(key);
        return ssl_fail(err, "write key");
    }
    EVP_PKEY_free(key);
    *key_pem = bio_take(bio);
    return 0;
}

static X509_NAME *name_build(const pki_name_t *n)
{
    X509_NAME *name = X509_NAME_new();
    if (!name) return NULL;
    for (size_t i = 0; i < n->norgs; i++)
        if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)n->orgs[i],
                                        -1, -1, 0))
            goto fail;
    if (n->cn && !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                             (const unsigned char *)n->cn, -1, -1, 0))
        goto fail;
    return name;
fail:
    X509_NAME_free(name);
    return NULL;
}

/* The subjectAltName of n, or NULL (with *none set) when n has none. */
static GENERAL_NAMES *sans_build(const pki_name_t *n, bool *none, err_t *err)
{
    *none = n->ndns == 0 && n->nips == 0;
    if (*none) return NULL;
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    if (!gens) goto oom;
    for (size_t i = 0; i < n->ndns; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        if (!g || !s || !ASN1_STRING_set(s, n->dns[i], -1)) {
            GENERAL_NAME_free(g);
            ASN1_IA5STRING_free(s);
            goto oom;
        }
        GENERAL_NAME_set0_value(g, GEN_DNS, s);
        sk_GENERAL_NAME_push(gens, g);
    }
    for (size_t i = 0; i < n->nips; i++) {
        ASN1_OCTET_STRING *ip = a2i_IPADDRESS(n->ips[i]);
        if (!ip) {
            GENERAL_NAMES_free(gens);
            ERR_clear_error();
            err_set(err, "%s is not an IP address", n->ips[i]);
            return NULL;
        }
        GENERAL_NAME *g = GENERAL_NAME_new();
        if (!g) {
            ASN1_OCTET_STRING_free(ip);
            goto oom;
        }
        GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
        sk_GENERAL_NAME_push(gens, g);
    }
    return gens;
oom:
    GENERAL_NAMES_free(gens);
    ssl_fail(err, "subjectAltName");
    return NULL;
}

int pki_csr_new(const char *key_pem, const pki_name_t *n, char **csr_pem, err_t *err)
{
    int rc = -1;
    X509_REQ *req = NULL;
    X509_NAME *name = NULL;
    GENERAL_NAMES *gens = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    EVP_PKEY *key = key_parse(key_pem, err);
    if (!key) return -1;
    bool no_sans;
    gens = sans_build(n, &no_sans, err);
    if (!gens && !no_sans) goto out;
    req = X509_REQ_new();
    name = name_build(n);
    if (!req || !name || !X509_REQ_set_version(req, 0) || !X509_REQ_set_subject_name(req, name) ||
        !X509_REQ_set_pubkey(req, key)) {
        ssl_fail(err, "certificate request");
        goto out;
    }
    if (gens) {
        exts = sk_X509_EXTENSION_new_null();
        X509_EXTENSION *ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
        if (!exts || !ext || !sk_X509_EXTENSION_push(exts, ext)) {
            X509_EXTENSION_free(ext);
            ssl_fail(err, "subjectAltName");
            goto out;
        }
        if (!X509_REQ_add_extensions(req, exts)) {
            ssl_fail(err, "request extensions");
            goto out;
        }
    }
    if (!X509_REQ_sign(req, key, EVP_sha256())) {
        ssl_fail(err, "sign request");
        goto out;
    }
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || !PEM_write_bio_X509_REQ(bio, req)) {
        BIO_free(bio);
        ssl_fail(err, "write request");
        goto out;
    }
    *csr_pem = bio_take(bio);
    rc = 0;
out:
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(gens);
    X509_NAME_free(name);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    return rc;
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext) return 0;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

int pki_self_signed(const char *key_pem, const pki_name_t *n, int64_t valid_seconds,
                    char **cert_pem, err_t *err)
{
    int rc = -1;
    X509 *x = NULL;
    X509_NAME *name = NULL;
    GENERAL_NAMES *gens = NULL;
    BIGNUM *serial = NULL;
    EVP_PKEY *key = key_parse(key_pem, err);
    if (!key) return -1;
    bool no_sans;
    gens = sans_build(n, &no_sans, err);
    if (!gens && !no_sans) goto out;
    x = X509_new();
    name = name_build(n);
    serial = BN_new();
    if (!x || !name || !serial || !X509_set_version(x, 2) || !BN_rand(serial, 127, -1, 0) ||
        !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), (long)valid_seconds) ||
        !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name) ||
        !X509_set_pubkey(x, key) || !add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(x, NID_key_usage, "critical,digitalSignature") ||
        !add_ext(x, NID_ext_key_usage, "serverAuth") ||
        !add_ext(x, NID_subject_key_identifier, "hash") ||
        (gens && !X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT))) {
        ssl_fail(err, "self-signed certificate");
        goto out;
    }
    if (!X509_sign(x, key, EVP_sha256())) {
        ssl_fail(err, "sign certificate");
        goto out;
    }
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || !PEM_write_bio_X509(bio, x)) {
        BIO_free(bio);
        ssl_fail(err, "write certificate");
        goto out;
    }
    *cert_pem = bio_take(bio);
    rc = 0;
out:
    BN_free(serial);
    GENERAL_NAMES_free(gens);
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

static int64_t asn1_time_ns(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm)) return 0;
    int64_t s = (int64_t)timegm(&tm);
    if (s > INT64_MAX / 1000000000) return INT64_MAX; /* past 2262: never expires */
    if (s < INT64_MIN / 1000000000) return INT64_MIN;
    return s * 1000000000;
}

static void name_entry(const X509_NAME *name, int nid, char *buf, size_t len)
{
    buf[0] = '\0';
    int i = X509_NAME_get_index_by_NID(name, nid, -1);
    if (i < 0) return;
    const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    int n = ASN1_STRING_length(s);
    if (n < 0) return;
    if ((size_t)n >= len) n = (int)len - 1;
    memcpy(buf, ASN1_STRING_get0_data(s), (size_t)n);
    buf[n] = '\0';
}

int pki_cert_info(const char *cert_pem, pki_cert_info_t *info, err_t *err)
{
    memset(info, 0, sizeof *info);
    X509 *x = cert_parse(cert_pem, err);
    if (!x) return -1;
    info->not_before_ns = asn1_time_ns(X509_get0_notBefore(x));
    info->not_after_ns = asn1_time_ns(X509_get0_notAfter(x));
    name_entry(X509_get_subject_name(x), NID_commonName, info->cn, sizeof info->cn);
    name_entry(X509_get_subject_name(x), NID_organizationName, info->org, sizeof info->org);
    info->self_signed = X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0;
    X509_free(x);
    return 0;
}

bool pki_key_matches(const char *cert_pem, const char *key_pem)
{
    X509 *x = cert_parse(cert_pem, NULL);
    EVP_PKEY *key = x ? key_parse(key_pem, NULL) : NULL;
    bool ok = x && key && X509_check_private_key(x, key) == 1;
    ERR_clear_error();
    EVP_PKEY_free(key);
    X509_free(x);
    return ok;
}

char *pki_pem_select(const char *text, bool keys)
{
    strbuf_t out = STRBUF_INIT;
    const char *p = text;
    for (;;) {
        const char *begin = strstr(p, "-----BEGIN ");
        if (!begin) break;
        const char *type = begin + 11;
        const char *type_end = strstr(type, "-----");
        if (!type_end) break;
        char kind[64];
        snprintf(kind, sizeof kind, "%.*s", (int)(type_end - type), type);
        char end_marker[96];
        snprintf(end_marker, sizeof end_marker, "-----END %s-----", kind);
        const char *end = strstr(type_end, end_marker);
        if (!end) break;
        end += strlen(end_marker);
        bool is_key = strstr(kind, "PRIVATE KEY") != NULL;
        bool is_cert = strcmp(kind, "CERTIFICATE") == 0 || strcmp(kind, "TRUSTED CERTIFICATE") == 0;
        if (keys ? is_key : is_cert) {
            strbuf_append(&out, begin, (size_t)(end - begin));
            strbuf_putc(&out, '\n');
        }
        p = end;
    }
    return strbuf_take(&out);
}
