/* tar.h: just enough tar to find one file in an image's layers, and to
 * write the one-file layer that `push --format oci-image` makes (internal
 * to image/). */
#ifndef WASMLET_IMAGE_TAR_H
#define WASMLET_IMAGE_TAR_H

#include "util/err.h"
#include "util/strbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Reads up to len bytes; returns the count, 0 at end, -1 with err set. */
typedef ssize_t (*image_tar_read_fn)(void *arg, void *buf, size_t len, err_t *err);

typedef struct image_tar_entry {
    char *path; /* cleaned: no leading "/" or "./", no "." or empty components */
    char *link; /* link target as written, for symlinks and hard links */
    char type;  /* '0' regular, '1' hard link, '2' symlink, '5' directory, ... */
    uint64_t size;
} image_tar_entry_t;

typedef struct image_tar image_tar_t;

image_tar_t *image_tar_open(image_tar_read_fn read, void *arg);
void image_tar_close(image_tar_t *t);
/* Next entry (valid until the next call): 1, 0 at the end, -1 on error.
 * Handles ustar prefixes, GNU long names and links ('L', 'K'), pax path,
 * linkpath and size records, and base-256 sizes. */
int image_tar_next(image_tar_t *t, const image_tar_entry_t **entry, err_t *err);
/* Reads the current entry's data; returns the count, 0 at its end, -1. */
ssize_t image_tar_read(image_tar_t *t, void *buf, size_t len, err_t *err);

/* "./a//b/./c/" -> "a/b/c"; ".." components are resolved without leaving
 * the root. The caller frees. */
char *image_tar_clean_path(const char *path);

/* Finds path in a stack of layer files (tar, or tar compressed with gzip;
 * layers[0] is the bottom one) as a container would see it: the top-most
 * layer that has it wins, whiteouts (".wh.<name>", ".wh..wh..opq") hide
 * what lies below, and symbolic and hard links are followed. Writes the
 * file's bytes to out_fd. */
int image_tar_extract(const char *const *layers, size_t n_layers, const char *path, int out_fd,
                      err_t *err);

/* Appends a ustar entry for a regular file (name up to 255 bytes). */
void image_tar_write_file(strbuf_t *out, const char *name, const void *data, size_t len,
                          unsigned mode, int64_t mtime);
/* Appends the two zero blocks that end an archive. */
void image_tar_write_end(strbuf_t *out);

#endif
