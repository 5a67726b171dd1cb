/* fuzz_crilog.c: the CRI log reader behind `kubectl logs` (log/crilog.h),
 * over log files a container's output (and a crash mid-write) could leave.
 *
 * Input: one option byte, then the option values it announces, then the
 * files' contents. The contents are split at "\n--rotate--\n": every part
 * but the last is a rotated file (<run>.log.1, .2, ...; oldest first), the
 * last is the current file <run>.log.
 *   byte 0: bit 0 timestamps; bits 1-2 streams (0 both, 1 stdout, 2 stderr,
 *           3 both named); bit 3 tail; bit 4 limit; bit 5 since
 *   tail:   1 byte, tailLines 0..63
 *   limit:  2 bytes big-endian, limitBytes 1..65536
 *   since:  4 bytes big-endian, seconds since the epoch
 * Follow is not fuzzed: it waits for the files to change. What the sink
 * receives must keep the options' promises (no more lines than the tail,
 * no more bytes than the limit). */
#include "harness.h"
#include "log/crilog.h"
#include "log/crilog_files.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

#define ROTATE_SEP "\n--rotate--\n"
#define MAX_FILES 6

typedef struct out {
    size_t bytes, newlines, calls;
} out_t;

static int sink(void *ctx, const char *data, size_t len)
{
    out_t *o = ctx;
    if (len == 0) abort(); /* nothing to say is not a line */
    o->bytes += len;
    o->calls++;
    for (size_t i = 0; i < len; i++)
        if (data[i] == '\n') o->newlines++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    crilog_read_opts_t opts = CRILOG_READ_OPTS_INIT;
    uint8_t flags = fuzz_byte(&in);
    opts.timestamps = flags & 1;
    unsigned streams = (flags >> 1) & 3;
    opts.streams =
        (streams & 1 ? 1u << CRILOG_STDOUT : 0) | (streams & 2 ? 1u << CRILOG_STDERR : 0);
    if (flags & 8) opts.tail_lines = fuzz_byte(&in) % 64;
    if (flags & 16) {
        unsigned hi = fuzz_byte(&in), lo = fuzz_byte(&in);
        opts.limit_bytes = (int64_t)((hi << 8) | lo) + 1;
    }
    if (flags & 32) {
        uint32_t s = 0;
        for (int i = 0; i < 4; i++)
            s = (s << 8) | fuzz_byte(&in);
        opts.since_ns = (int64_t)s * 1000000000;
    }

    fuzz_scratch_clear();
    char *parts[MAX_FILES];
    size_t lens[MAX_FILES], nparts = 0;
    while (nparts < MAX_FILES - 1 && memmem(in.p, in.n, ROTATE_SEP, strlen(ROTATE_SEP)))
        parts[nparts] = fuzz_take_until(&in, ROTATE_SEP, &lens[nparts]), nparts++;
    parts[nparts] = fuzz_rest(&in, &lens[nparts]);
    nparts++;

    char *cur = fuzz_write("0.log", parts[nparts - 1], lens[nparts - 1]);
    for (size_t i = 0; i + 1 < nparts; i++) {
        char *name = xasprintf("0.log.%zu", i + 1);
        free(fuzz_write(name, parts[i], lens[i]));
        free(name);
    }

    out_t o = {0};
    err_t err;
    if (crilog_read(cur, &opts, sink, &o, &err) != 0) abort(); /* the files are there */
    if (opts.limit_bytes > 0 && o.bytes > (size_t)opts.limit_bytes) abort();
    if (opts.tail_lines >= 0 && o.newlines > (size_t)opts.tail_lines) abort();

    for (size_t i = 0; i < nparts; i++)
        free(parts[i]);
    free(cur);
    return 0;
}
