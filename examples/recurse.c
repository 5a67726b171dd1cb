/*
 * recurse: prints "recursing" (flushed), then recurses without bound until
 * the engine's call stack is exhausted and the instance traps.
 *
 * The optimiser must not turn the recursion into a loop, and the frames
 * should live on the wasm call stack (which the engine bounds and checks)
 * rather than on the shadow stack in linear memory (which nothing checks, so
 * overflowing it would silently corrupt data first). So dive() takes no
 * addresses of locals, and it does volatile work both before and after the
 * recursive call: the call is not in tail position and its result is used, so
 * neither tail-call elimination nor accumulator rewriting applies. The base
 * case compares against a volatile zero that the depth, starting at 1, never
 * reaches in practice; it is there because clang rejects a function that can
 * only call itself (-Winfinite-recursion).
 *
 * Used by the tests that a stack overflow is a trap (exit code 134, reason
 * Error, a message about the call stack) and not a crash of wasmlet.
 */
#include <stdint.h>
#include <stdio.h>

static volatile uint64_t sink;
static volatile uint64_t stop_depth;

static uint64_t dive(uint64_t depth)
{
    if (depth == stop_depth) return 0;
    sink = depth;
    uint64_t below = dive(depth + 1);
    sink = below;
    return below ^ (depth * 2654435761u);
}

int main(void)
{
    puts("recursing");
    fflush(stdout);
    printf("returned %llu\n", (unsigned long long)dive(1));
    return 0;
}
