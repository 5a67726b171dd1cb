/* harness.c: the scratch directory and input helpers of harness.h. */
#include "harness.h"

#include "util/fs.h"
#include "util/xalloc.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *scratch_dir;

static void scratch_remove(void)
{
    if (scratch_dir) fs_rm_rf(scratch_dir, NULL);
    free(scratch_dir);
    scratch_dir = NULL;
}

const char *fuzz_scratch(void)
{
    if (scratch_dir) return scratch_dir;
    const char *tmp = getenv("TMPDIR");
    char *tmpl = xasprintf("%s/wasmlet-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmpl)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    scratch_dir = tmpl;
    atexit(scratch_remove);
    return scratch_dir;
}

char *fuzz_write(const char *name, const void *data, size_t len)
{
    char *path = fs_join(fuzz_scratch(), name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1) {
        perror("fuzz: open");
        abort();
    }
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w <= 0) {
            perror("fuzz: write");
            abort();
        }
        p += w;
        len -= (size_t)w;
    }
    close(fd);
    return path;
}

void fuzz_scratch_clear(void)
{
    const char *dir = fuzz_scratch();
    if (fs_rm_rf(dir, NULL) != 0 || fs_mkdir_p(dir, 0700, NULL) != 0) {
        fprintf(stderr, "fuzz: cannot empty %s\n", dir);
        abort();
    }
}

uint8_t fuzz_byte(fuzz_in_t *in)
{
    if (in->n == 0) return 0;
    in->n--;
    return *in->p++;
}

char *fuzz_take_until(fuzz_in_t *in, const char *sep, size_t *len)
{
    size_t sl = strlen(sep), n = in->n, skip = 0;
    const uint8_t *hit = sl ? memmem(in->p, in->n, sep, sl) : NULL;
    if (hit) {
        n = (size_t)(hit - in->p);
        skip = sl;
    }
    char *out = xmalloc(n + 1);
    memcpy(out, in->p, n);
    out[n] = '\0';
    if (len) *len = n;
    in->p += n + skip;
    in->n -= n + skip;
    return out;
}

char *fuzz_rest(fuzz_in_t *in, size_t *len)
{
    return fuzz_take_until(in, "", len);
}
