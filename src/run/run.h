/* run.h: `wasmlet run`, the standalone mode: one Pod manifest run on this
 * machine, with no cluster, by the same pod workers as `wasmlet node`. */
#ifndef WASMLET_RUN_RUN_H
#define WASMLET_RUN_RUN_H

/* The command's entry point; returns the process exit status. */
int run_main(int argc, char **argv);

#endif
