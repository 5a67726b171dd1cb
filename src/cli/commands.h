/* commands.h: every command of the wasmlet binary in one table, so that
 * main.c only looks a name up and calls it.
 *
 * Each command's entry point has a header in the subsystem that owns it:
 * node/cmd.h (node), run/run.h (run), image/push_cmd.h (push), and
 * cli/version.h (version). cli/ sits above every other folder: it may
 * include any of them, and nothing includes it but main.c. */
#ifndef WASMLET_CLI_COMMANDS_H
#define WASMLET_CLI_COMMANDS_H

#include <stdio.h>

typedef struct cli_command {
    const char *name;     /* what follows "wasmlet" */
    const char *synopsis; /* the name with its main arguments, for usage */
    const char *summary;  /* one line */
    /* Entry point: argv[0] is the command's name; returns the exit status. */
    int (*main)(int argc, char **argv);
} cli_command_t;

/* The command called name (or one of its aliases, such as --version), or
 * NULL. */
const cli_command_t *cli_command_find(const char *name);

/* The binary's usage: every command and its summary. */
void cli_usage(FILE *f);

#endif
