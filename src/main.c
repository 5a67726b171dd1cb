/* main.c: wasmlet's command line. It looks the subcommand up in the table
 * of commands (cli/commands.h) and hands over to it; it holds no logic of
 * its own.
 *
 *   wasmlet node --kubeconfig K    join a cluster as a Node and run its pods
 *   wasmlet run -f pod.yaml        run one pod here, without a cluster
 *   wasmlet push m.wasm REF        publish a module to an OCI registry
 *   wasmlet version                versions of wasmlet and Wasmtime */
#include "cli/commands.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    const cli_command_t *c = cli_command_find(cmd);
    if (c) return c->main(argc - 1, argv + 1);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        cli_usage(stdout);
        return 0;
    }
    fprintf(stderr, "wasmlet: unknown command \"%s\"\n", cmd);
    cli_usage(stderr);
    return 2;
}
