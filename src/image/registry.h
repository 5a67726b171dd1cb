/* registry.h: the Distribution API v2 client (internal to image/).
 *
 * One image_registry_t talks to one repository of one registry for one pull or
 * push, with one credential: it owns a curl handle (so connections are
 * reused between the manifest and blob requests) and the token or Basic
 * header that the registry's 401 challenge asked for. Not shared between
 * threads. */
#ifndef WASMLET_IMAGE_REGISTRY_H
#define WASMLET_IMAGE_REGISTRY_H

#include "image/image.h"

#include <stdbool.h>
#include <stddef.h>

/* One WWW-Authenticate challenge. */
typedef struct image_registry_challenge {
    char *scheme; /* "bearer" or "basic", lower case */
    char *realm;
    char *service;
    char *scope;
} image_registry_challenge_t;

/* Parses a WWW-Authenticate value (several challenges may share it) and
 * keeps the one wasmlet would answer: Bearer before Basic. Fails on a
 * header with neither, or a Bearer challenge without a realm. */
int image_registry_challenge_parse(const char *header, image_registry_challenge_t *out, err_t *err);
void image_registry_challenge_free(image_registry_challenge_t *c);

/* Reads a token endpoint's JSON answer: "token", else "access_token"
 * (OAuth2). *token gets a copy (the caller frees). Refuses a body that is
 * not a JSON object, one without a non-empty token, and a token holding a
 * NUL or a line break (it becomes an HTTP header line). */
int image_registry_token_parse(const char *body, size_t len, char **token, err_t *err);

/* True when host[:port] is reached over plain HTTP: loopback hosts always,
 * others when listed in insecure (entries "host" or "host:port"). */
bool image_registry_is_insecure(const char *endpoint, const char *const *insecure);

typedef struct image_registry_options {
    const char *endpoint;     /* host[:port] to connect to */
    const char *repository;   /* "library/hello" */
    const image_cred_t *cred; /* may be NULL: anonymous */
    const char *const *insecure;
    const char *ca_file;
    bool push;                  /* ask tokens for pull,push */
    image_store_stats_t *stats; /* counters to bump atomically, or NULL */
} image_registry_options_t;

typedef struct image_registry image_registry_t;

image_registry_t *image_registry_open(const image_registry_options_t *opts);
void image_registry_close(image_registry_t *r);

/* Set on every failed request: the HTTP status (0 when none arrived). A
 * 401/403 tells the caller to try the next credential. */
long image_registry_last_status(const image_registry_t *r);

typedef struct image_registry_manifest {
    char *data; /* NUL-terminated; NULL after a HEAD */
    size_t len;
    char *content_type;                   /* as the registry sent it, parameters cut */
    char header_digest[IMAGE_DIGEST_MAX]; /* Docker-Content-Digest, or "" */
} image_registry_manifest_t;

void image_registry_manifest_free(image_registry_manifest_t *m);

/* GET (or HEAD when head is true) /v2/<repo>/manifests/<reference>, with an
 * Accept header listing OCI and Docker manifests and indexes. */
int image_registry_get_manifest(image_registry_t *r, const char *reference, bool head,
                                image_registry_manifest_t *out, err_t *err);

/* Receives blob bytes as they arrive; returns 0, or -1 with err set to stop
 * the transfer. */
typedef int (*image_registry_sink_fn)(void *arg, const void *data, size_t len, err_t *err);

/* GET /v2/<repo>/blobs/<digest>, following redirects, into sink. */
int image_registry_get_blob(image_registry_t *r, const char *digest, image_registry_sink_fn sink,
                            void *arg, err_t *err);

/* HEAD /v2/<repo>/blobs/<digest>: *exists is true on a 2xx, false otherwise. */
int image_registry_blob_exists(image_registry_t *r, const char *digest, bool *exists, err_t *err);
/* Monolithic upload: POST /v2/<repo>/blobs/uploads/, then PUT <location>?digest=. */
int image_registry_upload_blob(image_registry_t *r, const char *digest, const void *data,
                               size_t len, err_t *err);
/* PUT /v2/<repo>/manifests/<reference>. */
int image_registry_put_manifest(image_registry_t *r, const char *reference, const char *media_type,
                                const void *data, size_t len, err_t *err);

#endif
