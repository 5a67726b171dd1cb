/* digest.c: streaming SHA-256 (see digest.h).
 *
 * Hashing goes through OpenSSL's EVP interface, one context per stream, so
 * a blob is verified in the same pass that writes it to disk: there is never
 * a second read of a file to check it. */
#include "image/digest.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void image_sha256_init(image_sha256_t *h)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        fputs("wasmlet: cannot initialise SHA-256\n", stderr);
        abort();
    }
    h->ctx = ctx;
}

void image_sha256_update(image_sha256_t *h, const void *data, size_t len)
{
    if (len) EVP_DigestUpdate(h->ctx, data, len);
}

void image_sha256_final(image_sha256_t *h, char out[IMAGE_DIGEST_MAX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(h->ctx, md, &n);
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (unsigned int i = 0; i < n && i < 32; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[7 + 64] = '\0';
}

void image_sha256_discard(image_sha256_t *h)
{
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

void image_sha256_buf(const void *data, size_t len, char out[IMAGE_DIGEST_MAX])
{
    image_sha256_t h;
    image_sha256_init(&h);
    image_sha256_update(&h, data, len);
    image_sha256_final(&h, out);
}

int image_sha256_file(const char *path, char out[IMAGE_DIGEST_MAX], uint64_t *size, err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) return err_errno(err, "open %s", path);
    image_sha256_t h;
    image_sha256_init(&h);
    char buf[65536];
    uint64_t total = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            err_errno(err, "read %s", path);
            image_sha256_discard(&h);
            close(fd);
            return -1;
        }
        image_sha256_update(&h, buf, (size_t)r);
        total += (uint64_t)r;
    }
    close(fd);
    image_sha256_final(&h, out);
    if (size) *size = total;
    return 0;
}

bool image_digest_valid(const char *digest)
{
    if (!digest || strncmp(digest, "sha256:", 7) != 0) return false;
    const char *p = digest + 7;
    size_t n = 0;
    for (; p[n]; n++)
        if (!((p[n] >= '0' && p[n] <= '9') || (p[n] >= 'a' && p[n] <= 'f'))) return false;
    return n == 64;
}
