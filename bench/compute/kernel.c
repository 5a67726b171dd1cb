/*
 * kernel: examples/sha256.c, unchanged, with a clock around it. The
 * example's main is renamed by the preprocessor and called between two
 * clock_gettime(CLOCK_MONOTONIC) readings; the elapsed time goes to stderr
 * as one line, "kernel_ns <N>", after the example's own output (its digest
 * on stdout).
 *
 * Why time from inside: the work must be compared across a native
 * process, `wasmtime run`, `wasmlet run` and a pod, and each of those adds
 * its own start-up (exec, compile or cache load, instantiation, pod
 * machinery) that is not compute. Timing inside the module measures the
 * same instructions everywhere. WASI's clock_time_get(monotonic) is the
 * host's CLOCK_MONOTONIC, so the two builds read the same clock.
 *
 * Built by bench/run.sh, for wasm32-wasi with the flags of
 * examples/examples.cmake and natively with `cc -O2`.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>

#define main sha256_example_main
#include "../../examples/sha256.c"
#undef main

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long long t0 = now_ns();
    int rc = sha256_example_main(argc, argv);
    long long t1 = now_ns();
    fflush(stdout);
    fprintf(stderr, "kernel_ns %lld\n", t1 - t0);
    return rc;
}
