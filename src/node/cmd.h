/* cmd.h: `wasmlet node`, the command that makes this machine a Node
 * (node/cmd.c); listed with the other commands in cli/commands.c. */
#ifndef WASMLET_NODE_CMD_H
#define WASMLET_NODE_CMD_H

/* The command's entry point (argv[0] is "node"); returns the process exit
 * status: 0 after a graceful shutdown, 1 on a failure, 2 for a bad command
 * line. */
int node_main(int argc, char **argv);

#endif
