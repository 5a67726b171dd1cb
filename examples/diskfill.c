/*
 * diskfill: fills a file of a mounted volume, at a bounded pace, then stays.
 *
 *   diskfill PATH MIB [CHUNK_KIB [PAUSE_MS]]
 *
 * Appends MIB MiB to PATH (created or truncated) in writes of CHUNK_KIB KiB
 * (default 1024), sleeping PAUSE_MS milliseconds (default 20) after each,
 * and prints "wrote <n> MiB" after every whole MiB (flushed). Then it prints
 * "done" and sleeps until it is stopped, so a test sees the pod still
 * running with its volume full. A failed write prints
 * "write failed at <n> KiB: <strerror>" to stderr and exits 1; bad arguments
 * print a usage line to stderr and exit 2.
 *
 * The bound (MIB) and the pace keep a test of emptyDir and ephemeral-storage
 * eviction from filling the disk of the machine it runs on: the node's
 * eviction pass (every 10 s) sees the volume over its limit long before MIB
 * is reached.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int number(const char *s, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > max) return -1;
    *out = v;
    return 0;
}

static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    long mib, chunk_kib = 1024, pause = 20;
    if (argc < 3 || argc > 5 || number(argv[2], 1L << 20, &mib) == -1 ||
        (argc > 3 && (number(argv[3], 1L << 20, &chunk_kib) == -1 || chunk_kib == 0)) ||
        (argc > 4 && number(argv[4], 60000, &pause) == -1)) {
        fprintf(stderr, "usage: diskfill PATH MIB [CHUNK_KIB [PAUSE_MS]]\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "wb");
    if (!f) {
        fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    size_t chunk = (size_t)chunk_kib * 1024;
    char *buf = malloc(chunk);
    if (!buf) return 1;
    for (size_t i = 0; i < chunk; i++)
        buf[i] = (char)('a' + i % 26);
    long long total_kib = 0, goal_kib = (long long)mib * 1024, reported = 0;
    while (total_kib < goal_kib) {
        size_t n = chunk;
        if ((long long)(n / 1024) > goal_kib - total_kib) n = (size_t)(goal_kib - total_kib) * 1024;
        if (fwrite(buf, 1, n, f) != n || fflush(f) != 0) {
            fprintf(stderr, "write failed at %lld KiB: %s\n", total_kib, strerror(errno));
            return 1;
        }
        total_kib += (long long)(n / 1024);
        while (reported < total_kib / 1024) {
            reported++;
            printf("wrote %lld MiB\n", reported);
            fflush(stdout);
        }
        if (pause) pause_ms(pause);
    }
    fclose(f);
    free(buf);
    printf("done\n");
    fflush(stdout);
    for (;;)
        pause_ms(1000);
}
