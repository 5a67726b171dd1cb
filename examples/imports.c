/*
 * imports: a command module that imports a function no host provides,
 * `wasmlet_test::mystery`, besides its ordinary WASI preview 1 imports. A
 * declaration with import_module/import_name is an explicit import, so
 * wasm-ld leaves it undefined without needing --allow-undefined.
 *
 * Instantiation must fail, before main runs, with an error that names
 * wasmlet_test::mystery; the printf below is never reached and exists only so
 * the import is used and kept.
 *
 * Used by the tests that unknown imports fail the container with a clear
 * reason instead of a trap at call time.
 */
#include <stdio.h>

__attribute__((import_module("wasmlet_test"), import_name("mystery"))) int mystery(int);

int main(void)
{
    printf("mystery(7) = %d\n", mystery(7));
    return 0;
}
