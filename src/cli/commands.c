/* commands.c: the table of the binary's commands (see commands.h). */
#include "cli/commands.h"
#include "cli/version.h"
#include "image/push_cmd.h"
#include "node/cmd.h"
#include "run/run.h"

#include <string.h>

static const cli_command_t commands[] = {
    {"node", "node", "join a Kubernetes cluster as a Node and run its pods", node_main},
    {"run", "run -f POD.yaml", "run a Pod manifest on this machine, without a cluster", run_main},
    {"push", "push M.wasm REF", "publish a module to an OCI registry", image_push_main},
    {"version", "version", "print the versions of wasmlet and its WebAssembly engine",
     cli_version_main},
};

#define NCOMMANDS (sizeof commands / sizeof *commands)

const cli_command_t *cli_command_find(const char *name)
{
    if (strcmp(name, "--version") == 0) name = "version";
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

void cli_usage(FILE *f)
{
    fputs("usage: wasmlet COMMAND [options]\ncommands:\n", f);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-16s  %s\n", commands[i].synopsis, commands[i].summary);
    fputs("Run 'wasmlet COMMAND --help' for a command's options.\n", f);
}
