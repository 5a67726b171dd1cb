/*
 * flood: writes a lot of log output, fast, in a shape that makes every byte
 * checkable.
 *
 *   flood LINES [LINE_BYTES]   write LINES lines (0: forever) to stdout, then
 *                              exit 0. Every line is exactly LINE_BYTES bytes
 *                              (default 100, at least 10) counting its
 *                              newline: the line number (1, 2, ...; modulo
 *                              10^8) zero-padded to 8 digits, one space, then
 *                              'x' filler up to the newline. So line 1 of the
 *                              default size is "00000001 " + 90 'x' + "\n",
 *                              and LINES lines are LINES * LINE_BYTES bytes.
 *   flood --partial N          write N 'x' bytes and no newline, then exit 0:
 *                              a last line that never ends (CRI "P" tag).
 *
 * stdout gets a 64 KiB buffer, so output leaves in large writes (as a chatty
 * program's would) rather than one write per line; the buffer is flushed
 * before exit. Bad arguments print a usage line to stderr and exit 2.
 *
 * Used by the tests of CRI log files (long lines, partial lines), log
 * rotation and the containerLogs tail/limitBytes readers, and by benchmarks
 * of log throughput.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char out_buffer[65536];

/* Parses a whole decimal number in [min, max]; -1 when it is not one. */
static long long parse_number(const char *s, long long min, long long max)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) return -1;
    return v;
}

static int usage(void)
{
    fputs("usage: flood LINES [LINE_BYTES]   (LINES 0 = forever, LINE_BYTES >= 10)\n"
          "       flood --partial N\n",
          stderr);
    return 2;
}

static int write_filler(long long n)
{
    char chunk[4096];
    memset(chunk, 'x', sizeof(chunk));
    while (n > 0) {
        size_t now = n < (long long)sizeof(chunk) ? (size_t)n : sizeof(chunk);
        if (fwrite(chunk, 1, now, stdout) != now) return -1;
        n -= (long long)now;
    }
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, out_buffer, _IOFBF, sizeof(out_buffer));

    if (argc == 3 && strcmp(argv[1], "--partial") == 0) {
        long long n = parse_number(argv[2], 0, 1LL << 32);
        if (n < 0) return usage();
        if (write_filler(n) != 0 || fflush(stdout) != 0) return 1;
        return 0;
    }
    if (argc < 2 || argc > 3) return usage();
    long long lines = parse_number(argv[1], 0, 1LL << 62);
    long long line_bytes = argc == 3 ? parse_number(argv[2], 10, 1LL << 24) : 100;
    if (lines < 0 || line_bytes < 0) return usage();

    /* Lines differ only in their first 8 bytes: build one, patch the number. */
    char *line = malloc((size_t)line_bytes);
    if (line == NULL) {
        fputs("flood: out of memory\n", stderr);
        return 1;
    }
    memset(line, 'x', (size_t)line_bytes);
    line[8] = ' ';
    line[line_bytes - 1] = '\n';
    for (long long i = 1; lines == 0 || i <= lines; i++) {
        unsigned long number = (unsigned long)(i % 100000000);
        for (int d = 7; d >= 0; d--) {
            line[d] = (char)('0' + number % 10);
            number /= 10;
        }
        if (fwrite(line, 1, (size_t)line_bytes, stdout) != (size_t)line_bytes) {
            free(line);
            return 1;
        }
    }
    free(line);
    if (fflush(stdout) != 0) return 1;
    return 0;
}
