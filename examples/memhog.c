/*
 * memhog: `memhog [STEP_KIB [HOLD_KIB [DELAY_MS]]]` allocates STEP_KIB KiB
 * (default 1024) at a time with malloc, writes every byte of each block (so
 * every page is really touched and linear memory really grows), and after
 * each step prints "allocated <total> KiB" to stdout, flushed, then sleeps
 * DELAY_MS milliseconds (default 0). It never frees. Without HOLD_KIB (or
 * with 0) it never stops by itself; with it, once it holds at least
 * HOLD_KIB it prints "holding <total> KiB", flushed, and sleeps forever
 * (a service that keeps its memory). When malloc returns NULL it prints "malloc failed at <total>
 * KiB" (the total held before the failing step) to stderr and exits 3.
 *
 * Under a memory limit enforced on memory.grow, either the host denies the
 * growth (malloc returns NULL here: exit 3, unless the host reports the
 * denial itself as OOMKilled) or it traps; which one is up to wasmlet, and the
 * tests check that choice. Without a limit it stops at wasm32's 4 GiB.
 *
 * Blocks are chained into a list whose head lives in a volatile global, so
 * the optimiser cannot prove the memory unused and delete malloc and memset.
 *
 * A bad STEP_KIB (not a whole number in 1..1048576), HOLD_KIB (0..4194304) or
 * DELAY_MS (0..60000) prints a usage line to stderr and exits 2.
 *
 * Used by examples/pods/memhog.yaml (limits.memory 16Mi) and the tests of
 * memory limits and the OOMKilled reason; with HOLD_KIB and DELAY_MS by the
 * tests of in-place resize of limits.memory.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct block {
    struct block *next;
};

static struct block *volatile held;

/* Parses a whole decimal number in [min, max]; -1 when it is not one. */
static long parse_number(const char *s, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) return -1;
    return v;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    long step_kib = 1024, hold_kib = 0, delay_ms = 0;
    if (argc > 4) goto usage;
    if (argc >= 2 && (step_kib = parse_number(argv[1], 1, 1048576)) < 0) goto usage;
    if (argc >= 3 && (hold_kib = parse_number(argv[2], 0, 4194304)) < 0) goto usage;
    if (argc >= 4 && (delay_ms = parse_number(argv[3], 0, 60000)) < 0) goto usage;

    size_t step_bytes = (size_t)step_kib * 1024;
    unsigned long long total_kib = 0;
    for (;;) {
        if (hold_kib > 0 && total_kib >= (unsigned long long)hold_kib) {
            printf("holding %llu KiB\n", total_kib);
            fflush(stdout);
            for (;;)
                sleep_ms(1000);
        }
        struct block *b = malloc(step_bytes);
        if (b == NULL) {
            fprintf(stderr, "malloc failed at %llu KiB\n", total_kib);
            exit(3);
        }
        memset(b, 0xa5, step_bytes);
        b->next = held;
        held = b;
        total_kib += (unsigned long long)step_kib;
        printf("allocated %llu KiB\n", total_kib);
        fflush(stdout);
        if (delay_ms > 0) sleep_ms(delay_ms);
    }

usage:
    fputs("usage: memhog [STEP_KIB [HOLD_KIB [DELAY_MS]]]   (STEP_KIB in 1..1048576, default "
          "1024; HOLD_KIB in 0..4194304; DELAY_MS in 0..60000)\n",
          stderr);
    return 2;
}
