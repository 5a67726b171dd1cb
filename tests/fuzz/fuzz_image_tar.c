/* fuzz_image_tar.c: tar and gzip image layers (image/tar.h), as a registry
 * hands them over.
 *
 * Byte 0 picks the mode:
 *   even: the rest is one archive, read in memory through image_tar_next and
 *         image_tar_read in chunks whose size byte 1 picks; every entry's
 *         path must be clean, and its data exactly its size or an error.
 *   odd:  image_tar_extract, as a pull finds the module in an oci-image:
 *         the rest up to the first '\n' is the path to find, then layer
 *         files (tar, or tar.gz) separated by "\n--layer--\n", bottom layer
 *         first, at most 4. Layers and the output live in the harness's
 *         scratch directory, emptied for every input. */
#include "harness.h"
#include "image/tar.h"
#include "util/xalloc.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LAYER_SEP "\n--layer--\n"
#define MAX_LAYERS 4

typedef struct mem_src {
    const uint8_t *p;
    size_t n;
    size_t chunk; /* at most this much per read, as a network would */
} mem_src_t;

static ssize_t mem_read(void *arg, void *buf, size_t len, err_t *err)
{
    mem_src_t *s = arg;
    if (len > s->chunk) len = s->chunk;
    if (len > s->n) len = s->n;
    memcpy(buf, s->p, len);
    s->p += len;
    s->n -= len;
    return (ssize_t)len;
}

static void stream(fuzz_in_t *in)
{
    size_t chunk = (size_t)fuzz_byte(in) * 61 + 1;
    mem_src_t src = {in->p, in->n, chunk};
    image_tar_t *t = image_tar_open(mem_read, &src);
    const image_tar_entry_t *e;
    err_t err;
    char buf[4096];
    int rc;
    while ((rc = image_tar_next(t, &e, &err)) == 1) {
        if (!e->path || !e->link) abort();
        /* Cleaning is idempotent, and a clean path has no "..", "." or "". */
        char *again = image_tar_clean_path(e->path);
        if (strcmp(again, e->path) != 0) abort();
        free(again);
        if (e->path[0] == '/' || strstr(e->path, "//")) abort();
        uint64_t got = 0;
        ssize_t r;
        while ((r = image_tar_read(t, buf, chunk < sizeof buf ? chunk : sizeof buf, &err)) > 0)
            got += (uint64_t)r;
        if (r == 0 && got != e->size) abort();
        if (r < 0) break;
    }
    image_tar_close(t);
}

static void extract(fuzz_in_t *in)
{
    fuzz_scratch_clear();
    char *target = fuzz_take_until(in, "\n", NULL);
    char *layers[MAX_LAYERS];
    size_t n = 0;
    while (n < MAX_LAYERS && (in->n > 0 || n == 0)) {
        size_t len;
        char *part =
            n + 1 < MAX_LAYERS ? fuzz_take_until(in, LAYER_SEP, &len) : fuzz_rest(in, &len);
        char *name = xasprintf("layer%zu", n);
        layers[n++] = fuzz_write(name, part, len);
        free(name);
        free(part);
    }
    char *out_path = fuzz_write("out", "", 0);
    int fd = open(out_path, O_RDWR | O_CLOEXEC);
    if (fd == -1) abort();
    err_t err;
    if (image_tar_extract((const char *const *)layers, n, target, fd, &err) != 0 && !err.msg[0])
        abort();
    close(fd);
    free(out_path);
    for (size_t i = 0; i < n; i++)
        free(layers[i]);
    free(target);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    if (fuzz_byte(&in) & 1)
        extract(&in);
    else
        stream(&in);
    return 0;
}
