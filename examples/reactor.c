/*
 * reactor: a WASI reactor, not a command. It is linked with
 * -mexec-model=reactor (the wasm-flags line below, which examples.cmake
 * adds to this file's compile command), so the module exports `_initialize`
 * and `work` but no `_start`. A host would call _initialize once and then
 * work(n), which prints "work <n>" to stdout and returns n * n.
 *
 * wasmlet runs commands only, so this module must be refused with an error
 * that says it has no _start export, before anything runs. It is the
 * realistic case of that error (a library built for embedding, shipped as a
 * container image); build/examples/bad/nostart.wasm and nostart-export.wasm
 * from badmodules.sh are the minimal hand-made ones.
 *
 * Used by the tests of module validation before start (pod fails with a
 * clear reason instead of crashing or hanging).
 */
// wasm-flags: -mexec-model=reactor
#include <stdio.h>

__attribute__((export_name("work"))) int work(int n)
{
    printf("work %d\n", n);
    fflush(stdout);
    return n * n;
}
