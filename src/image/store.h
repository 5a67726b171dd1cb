/* store.h: the content store's internals, shared by store.c and pull.c.
 *
 * Locking: store->lock guards the index (in memory and on disk), the
 * in-flight table, and removals of blob files, so a garbage collection can
 * never delete a module that a lookup has just handed out. Downloads run
 * without the lock; they write to tmp/ and rename into blobs/. */
#ifndef WASMLET_IMAGE_STORE_H
#define WASMLET_IMAGE_STORE_H

#include "image/digest.h"
#include "image/image.h"

#include <jansson.h>
#include <pthread.h>

typedef struct image_inflight image_inflight_t;

struct image_store {
    char *dir;
    char *blobs;    /* <dir>/blobs/sha256 */
    char *compiled; /* <dir>/compiled */
    char *tmp;      /* <dir>/tmp */
    char *index_path;
    char **insecure; /* NULL-terminated copy */
    char *ca_file;
    image_auth_t node_auth;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* an in-flight pull finished */
    json_t *index;       /* {"refs": {ref: {...}}, "manifests": {digest: {...}}} */
    image_inflight_t *inflight;
    image_store_stats_t stats; /* updated with atomics */
};

/* --- blobs ---------------------------------------------------------------- */

/* A blob being written: bytes go to a temp file in tmp/ while SHA-256 runs
 * over them; finish compares digest and size, install renames it into
 * blobs/. Nothing reaches blobs/ unverified. */
typedef struct image_blob_writer {
    image_store_t *store;
    char expected[IMAGE_DIGEST_MAX]; /* "" when the content names itself */
    int64_t expected_size;           /* -1 when unknown */
    uint64_t written;
    image_sha256_t sha;
    int fd;
    char *tmp_path;
    char digest[IMAGE_DIGEST_MAX]; /* after finish */
} image_blob_writer_t;

int image_blob_begin(image_store_t *s, const char *expected, int64_t expected_size,
                     image_blob_writer_t *w, err_t *err);
int image_blob_write(image_blob_writer_t *w, const void *data, size_t len, err_t *err);
/* Closes the file and verifies it: "digest mismatch: expected X, got Y". */
int image_blob_finish(image_blob_writer_t *w, err_t *err);
/* Moves a finished blob into blobs/ (replacing nothing that is there). */
int image_blob_install(image_blob_writer_t *w, err_t *err);
/* Releases the writer, removing its temp file if it was not installed. */
void image_blob_abort(image_blob_writer_t *w);

/* Path of a module blob; the caller frees. */
char *image_store_blob_path(const image_store_t *s, const char *digest);
/* True when the blob exists; marks it used now (for GC). */
bool image_store_has_blob(image_store_t *s, const char *digest);

/* --- index ----------------------------------------------------------------- */

typedef struct image_index_entry {
    char manifest[IMAGE_DIGEST_MAX];
    char module[IMAGE_DIGEST_MAX];
    image_format_t format;
} image_index_entry_t;

/* Looks a reference up (its module must still be on disk); 0 or -1. */
int image_index_get_ref(image_store_t *s, const char *ref, image_index_entry_t *out);
/* Looks a manifest (or index) digest up; 0 or -1. */
int image_index_get_manifest(image_store_t *s, const char *digest, image_index_entry_t *out);
/* Records refs -> entry and each digest in manifests -> entry, and saves. */
int image_index_put(image_store_t *s, const char *const *refs, size_t n_refs,
                    const char *const *manifests, size_t n_manifests,
                    const image_index_entry_t *entry, err_t *err);

#endif
