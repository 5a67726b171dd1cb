/* main.c: wasmlet's command line. It parses the subcommand and hands over
 * to the subsystem that owns it; it holds no logic of its own.
 *
 *   wasmlet node --kubeconfig K    join a cluster as a Node and run its pods
 *   wasmlet run -f pod.yaml        run one pod here, without a cluster
 *   wasmlet push m.wasm REF        publish a module to an OCI registry
 *   wasmlet version                versions of wasmlet and Wasmtime */
#include "node/node.h"
#include "run/run.h"

int image_push_main(int argc, char **argv); /* image/push_cmd.c */
#include "wasm/wasmrt.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("usage: wasmlet COMMAND [options]\n"
          "commands:\n"
          "  node              join a Kubernetes cluster as a Node and run its pods\n"
          "  run -f POD.yaml   run a Pod manifest on this machine, without a cluster\n"
          "  push M.wasm REF   publish a module to an OCI registry\n"
          "  version           print the versions of wasmlet and its WebAssembly engine\n"
          "Run 'wasmlet COMMAND --help' for a command's options.\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0) return run_main(argc - 1, argv + 1);
    if (strcmp(cmd, "node") == 0) return node_main(argc - 1, argv + 1);
    if (strcmp(cmd, "push") == 0) return image_push_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("wasmlet %s (wasmtime %s)\n", WASMLET_VERSION, wasmrt_engine_version());
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "wasmlet: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
