/*
 * trap: prints "about to trap" to stdout, flushes it so the line reaches the
 * log before the instance dies, then executes an `unreachable` instruction
 * (__builtin_trap), which makes the engine raise a trap.
 *
 * Used by examples/pods/trap.yaml and the tests that a trap ends the container
 * with exit code 134, reason Error and the trap message, while the output
 * written before the trap is kept.
 */
#include <stdio.h>

int main(void)
{
    puts("about to trap");
    fflush(stdout);
    __builtin_trap();
}
