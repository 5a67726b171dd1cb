/* version.h: `wasmlet version`, the versions of wasmlet and of its
 * WebAssembly engine (cli/version.c). */
#ifndef WASMLET_CLI_VERSION_H
#define WASMLET_CLI_VERSION_H

/* The command's entry point; prints one line and returns 0. */
int cli_version_main(int argc, char **argv);

#endif
