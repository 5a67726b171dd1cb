/* digest.h: SHA-256 digests in the "sha256:<hex>" form OCI uses, computed
 * while bytes stream past (OpenSSL EVP). Internal to image/. */
#ifndef WASMLET_IMAGE_DIGEST_H
#define WASMLET_IMAGE_DIGEST_H

#include "image/image.h"

#include <stddef.h>

typedef struct image_sha256 {
    void *ctx; /* EVP_MD_CTX */
} image_sha256_t;

void image_sha256_init(image_sha256_t *h);
void image_sha256_update(image_sha256_t *h, const void *data, size_t len);
/* Writes "sha256:<hex>" and frees the context. */
void image_sha256_final(image_sha256_t *h, char out[IMAGE_DIGEST_MAX]);
/* Frees the context without a result (error paths). */
void image_sha256_discard(image_sha256_t *h);
void image_sha256_buf(const void *data, size_t len, char out[IMAGE_DIGEST_MAX]);
int image_sha256_file(const char *path, char out[IMAGE_DIGEST_MAX], uint64_t *size, err_t *err);

/* True for "sha256:" followed by exactly 64 lowercase hex digits. */
bool image_digest_valid(const char *digest);
/* The hex part of a valid digest. */
static inline const char *image_digest_hex(const char *digest)
{
    return digest + 7;
}

#endif
