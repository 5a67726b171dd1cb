/*
 * hello: the smallest wasmlet workload. It prints "Hello from wasmlet!" and a
 * newline to stdout and returns 0 from main, so the module ends by returning
 * from _start rather than by calling proc_exit with a code.
 *
 * Used by examples/pods/hello.yaml (the README's first command,
 * `wasmlet run -f examples/pods/hello.yaml`), and by the tests that need a
 * module which succeeds and logs one known line (runtime smoke tests, CRI log
 * files, kubectl logs). badmodules.sh also cuts truncated.wasm out of it.
 */
#include <stdio.h>

int main(void)
{
    puts("Hello from wasmlet!");
    return 0;
}
