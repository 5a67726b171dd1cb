/* push_cmd.h: `wasmlet push MODULE.wasm REF` (image/push_cmd.c); listed
 * with the other commands in cli/commands.c. */
#ifndef WASMLET_IMAGE_PUSH_CMD_H
#define WASMLET_IMAGE_PUSH_CMD_H

/* The command's entry point (argv[0] is "push"); returns the process exit
 * status: 0 when pushed, 1 on a failure, 2 for a bad command line. */
int image_push_main(int argc, char **argv);

#endif
