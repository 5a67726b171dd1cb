/*
 * ticker: a stand-in for a long-running service. `ticker [INTERVAL_MS]
 * [COUNT]` prints "ticker started" to stderr, then "tick <n> <message>" to
 * stdout every INTERVAL_MS milliseconds (default 1000), n counting from 1,
 * each line flushed as it is written. The first tick comes at once; after
 * tick COUNT it exits 0 without sleeping again, so COUNT ticks take about
 * (COUNT - 1) * INTERVAL_MS. COUNT absent or 0 means forever.
 *
 * <message> is the environment variable TICK_MESSAGE when set (even empty),
 * else "alive".
 *
 * Sleeps are relative (nanosleep per tick), so over hours the ticks drift by
 * the time spent printing; that is fine for a liveness stand-in and keeps it
 * to the simplest WASI clock call.
 *
 * Bad arguments print a usage line to stderr and exit 2.
 *
 * Used by examples/pods/ticker.yaml (3 ticks, 200 ms apart) and the tests of
 * log streaming (kubectl logs -f, since/tail), stderr and stdout interleaving,
 * env from ConfigMaps, and pod status while running.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Parses a whole decimal number in [min, max]; -1 when it is not one. */
static long long parse_number(const char *s, long long min, long long max)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) return -1;
    return v;
}

int main(int argc, char **argv)
{
    long long interval = argc > 1 ? parse_number(argv[1], 0, 86400000) : 1000;
    long long count = argc > 2 ? parse_number(argv[2], 0, 1LL << 62) : 0;
    if (argc > 3 || interval < 0 || count < 0) {
        fputs("usage: ticker [INTERVAL_MS] [COUNT]   (COUNT 0 = forever)\n", stderr);
        return 2;
    }
    const char *message = getenv("TICK_MESSAGE");
    if (message == NULL) message = "alive";

    fputs("ticker started\n", stderr);
    fflush(stderr);
    for (long long n = 1;; n++) {
        printf("tick %lld %s\n", n, message);
        fflush(stdout);
        if (count != 0 && n >= count) break;
        struct timespec left = {.tv_sec = (time_t)(interval / 1000),
                                .tv_nsec = (long)(interval % 1000) * 1000000};
        while (nanosleep(&left, &left) != 0 && errno == EINTR) {
        }
    }
    return 0;
}
