/*
 * memhog: `memhog [STEP_KIB]` allocates STEP_KIB KiB (default 1024) at a time
 * with malloc, writes every byte of each block (so every page is really
 * touched and linear memory really grows), and after each step prints
 * "allocated <total> KiB" to stdout, flushed. It never frees and never stops
 * by itself. When malloc returns NULL it prints "malloc failed at <total> KiB"
 * (the total held before the failing step) to stderr and exits 3.
 *
 * Under a memory limit enforced on memory.grow, either the host denies the
 * growth (malloc returns NULL here: exit 3, unless the host reports the
 * denial itself as OOMKilled) or it traps; which one is up to wasmlet, and the
 * tests check that choice. Without a limit it stops at wasm32's 4 GiB.
 *
 * Blocks are chained into a list whose head lives in a volatile global, so
 * the optimiser cannot prove the memory unused and delete malloc and memset.
 *
 * A bad STEP_KIB (not a whole number in 1..1048576) prints a usage line to
 * stderr and exits 2.
 *
 * Used by examples/pods/memhog.yaml (limits.memory 16Mi) and the tests of
 * memory limits and the OOMKilled reason.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct block {
    struct block *next;
};

static struct block *volatile held;

int main(int argc, char **argv)
{
    long step_kib = 1024;
    if (argc > 2) goto usage;
    if (argc == 2) {
        char *end = NULL;
        errno = 0;
        step_kib = strtol(argv[1], &end, 10);
        if (errno != 0 || end == argv[1] || *end != '\0' || step_kib < 1 || step_kib > 1048576)
            goto usage;
    }

    size_t step_bytes = (size_t)step_kib * 1024;
    unsigned long long total_kib = 0;
    for (;;) {
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
    }

usage:
    fputs("usage: memhog [STEP_KIB]   (STEP_KIB in 1..1048576, default 1024)\n", stderr);
    return 2;
}
