/*
 * sleeper: `sleeper SECONDS [EXIT]` prints "sleeping <SECONDS>" (the argument
 * as given), flushed, sleeps that long with nanosleep (fractions allowed, e.g.
 * 0.25), prints "woke" and exits with EXIT (0..255, default 0).
 *
 * Bad arguments print a usage line to stderr and exit 2.
 *
 * Used by the tests that need a container which runs for a known time and
 * then ends with a chosen code: init container ordering, restart backoff
 * timing, graceful termination (deleting a pod mid-sleep), status
 * transitions Running -> Terminated with start/finish times.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int usage(void)
{
    fputs("usage: sleeper SECONDS [EXIT]   (SECONDS >= 0, may be fractional; EXIT 0..255)\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) return usage();
    char *end = NULL;
    errno = 0;
    double seconds = strtod(argv[1], &end);
    if (errno != 0 || end == argv[1] || *end != '\0' || !isfinite(seconds) || seconds < 0 ||
        seconds > 1e9)
        return usage();
    long code = 0;
    if (argc == 3) {
        errno = 0;
        code = strtol(argv[2], &end, 10);
        if (errno != 0 || end == argv[2] || *end != '\0' || code < 0 || code > 255) return usage();
    }

    printf("sleeping %s\n", argv[1]);
    fflush(stdout);
    double whole = floor(seconds);
    struct timespec left = {.tv_sec = (time_t)whole, .tv_nsec = (long)((seconds - whole) * 1e9)};
    if (left.tv_nsec > 999999999) left.tv_nsec = 999999999;
    while (nanosleep(&left, &left) != 0) {
        if (errno != EINTR) {
            perror("sleeper: nanosleep");
            return 1;
        }
    }
    puts("woke");
    fflush(stdout);
    return (int)code;
}
