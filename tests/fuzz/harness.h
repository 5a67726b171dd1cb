/* harness.h: what the libFuzzer harnesses of tests/fuzz share: a scratch
 * directory per process (removed at exit), writing an input to a file in it,
 * and taking option bytes off the front of an input. */
#ifndef WASMLET_FUZZ_HARNESS_H
#define WASMLET_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* The process's scratch directory (created on first use under $TMPDIR or
 * /tmp, removed with everything in it at exit). Aborts when it cannot be
 * made: a harness without it would test nothing. */
const char *fuzz_scratch(void);

/* Writes len bytes to <scratch>/<name> (replacing it); returns its path,
 * which the caller frees. Aborts on failure. */
char *fuzz_write(const char *name, const void *data, size_t len);

/* Empties the scratch directory (between inputs that leave files). */
void fuzz_scratch_clear(void);

/* An input being consumed from the front. */
typedef struct fuzz_in {
    const uint8_t *p;
    size_t n;
} fuzz_in_t;

/* The next byte, or 0 once the input is used up. */
uint8_t fuzz_byte(fuzz_in_t *in);

/* The bytes up to the next occurrence of sep (or the rest), as a
 * NUL-terminated copy the caller frees; *len (if not NULL) gets its length.
 * The separator is consumed. */
char *fuzz_take_until(fuzz_in_t *in, const char *sep, size_t *len);

/* The rest as a NUL-terminated copy (the caller frees). */
char *fuzz_rest(fuzz_in_t *in, size_t *len);

#endif
