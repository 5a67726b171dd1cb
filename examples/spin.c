/*
 * spin: prints "spinning" (flushed) and then burns CPU forever; it never
 * exits on its own. The counter is volatile so the optimiser has to keep every
 * increment: an empty infinite loop could otherwise be compiled to a single
 * branch-to-self or, worse, be assumed unreachable.
 *
 * Used by examples/pods/spin-deadline.yaml (activeDeadlineSeconds: 2) and the
 * tests that a running instance is stopped from another thread (epoch
 * interruption) on pod deletion, deadline or wasmlet shutdown, ending with
 * exit code 137.
 */
#include <stdint.h>
#include <stdio.h>

static volatile uint64_t counter;

int main(void)
{
    puts("spinning");
    fflush(stdout);
    for (;;)
        counter = counter * 6364136223846793005u + 1442695040888963407u;
}
