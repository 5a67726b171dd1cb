/* fuzz_pki.c: PEM keys, certificate requests and certificates
 * (util/pki.h): what the API server hands back as a node's certificate,
 * what the files of a rotated identity hold, and the names a CSR asks for.
 *
 * Byte 0 % 5 picks the entry point; the rest is its text:
 *   0  pki_cert_info on the text (a signed certificate from a CSR's status)
 *   1  pki_pem_select of certificates and of keys, each then read back
 *   2  pki_key_matches: certificate part, "\n--key--\n", key part
 *   3  pki_csr_new and pki_self_signed with the text as the key
 *   4  pki_csr_new and pki_self_signed with a fixed key and the name from
 *      the text: lines "cn=", "o=", "dns=", "ip=" (the CSR is then read
 *      back through OpenSSL to check it is well-formed PEM) */
#include "harness.h"
#include "util/pki.h"
#include "util/xalloc.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

static char *fixed_key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    err_t err;
    if (pki_key_new(&fixed_key, &err) != 0) abort();
    return 0;
}

static void check_info(const char *pem)
{
    pki_cert_info_t info;
    err_t err;
    if (pki_cert_info(pem, &info, &err) == 0) {
        if (strnlen(info.cn, sizeof info.cn) == sizeof info.cn) abort();
        if (strnlen(info.org, sizeof info.org) == sizeof info.org) abort();
    }
}

static void csr_readable(const char *csr_pem)
{
    BIO *bio = BIO_new_mem_buf(csr_pem, -1);
    X509_REQ *req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    if (!req) abort(); /* what we made must read back */
    X509_REQ_free(req);
    BIO_free(bio);
}

static void make(const char *key, const pki_name_t *name)
{
    char *csr = NULL, *cert = NULL;
    err_t err;
    if (pki_csr_new(key, name, &csr, &err) == 0) {
        csr_readable(csr);
        free(csr);
    }
    if (pki_self_signed(key, name, 3600, &cert, &err) == 0) {
        pki_cert_info_t info;
        if (pki_cert_info(cert, &info, &err) != 0 || !info.self_signed) abort();
        if (!pki_key_matches(cert, key)) abort();
        free(cert);
    }
}

#define MAX_NAMES 8

static void names(char *text)
{
    const char *orgs[MAX_NAMES], *dns[MAX_NAMES], *ips[MAX_NAMES];
    pki_name_t n = {.orgs = orgs, .dns = dns, .ips = ips};
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "cn=", 3) == 0) n.cn = line + 3;
        if (strncmp(line, "o=", 2) == 0 && n.norgs < MAX_NAMES) orgs[n.norgs++] = line + 2;
        if (strncmp(line, "dns=", 4) == 0 && n.ndns < MAX_NAMES) dns[n.ndns++] = line + 4;
        if (strncmp(line, "ip=", 3) == 0 && n.nips < MAX_NAMES) ips[n.nips++] = line + 3;
    }
    make(fixed_key, &n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    int mode = fuzz_byte(&in) % 5;
    if (mode == 2) {
        char *cert = fuzz_take_until(&in, "\n--key--\n", NULL);
        char *key = fuzz_rest(&in, NULL);
        (void)pki_key_matches(cert, key);
        free(cert);
        free(key);
        return 0;
    }
    char *text = fuzz_rest(&in, NULL);
    if (mode == 0) {
        check_info(text);
    } else if (mode == 1) {
        for (int keys = 0; keys < 2; keys++) {
            char *sel = pki_pem_select(text, keys);
            if (!sel || strlen(sel) > strlen(text) + strlen(text) / 2 + 1) abort();
            if (!keys) check_info(sel);
            free(sel);
        }
    } else if (mode == 3) {
        pki_name_t n = {.cn = "system:node:fuzz"};
        make(text, &n);
    } else {
        names(text);
    }
    free(text);
    return 0;
}
