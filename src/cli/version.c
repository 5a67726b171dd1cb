/* version.c: `wasmlet version` (see version.h). */
#include "cli/version.h"
#include "wasm/wasmrt.h"

#include <stdio.h>

#ifndef WASMLET_VERSION
#define WASMLET_VERSION "dev"
#endif

int cli_version_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("wasmlet %s (wasmtime %s)\n", WASMLET_VERSION, wasmrt_engine_version());
    return 0;
}
