/*
 * exit-code: `exit-code N [MESSAGE]` prints MESSAGE (when given) and a
 * newline to stderr, then ends through wasi:cli/exit's exit-with-code with
 * code N (0..255). The preview-1 adapter maps C's exit(n) to wasi:cli/exit's
 * exit, which carries only ok or err (exit code 0 or 1); a component that
 * wants its own code calls exit-with-code, as this one does, and the
 * container's exit code is then that code.
 *
 * A bad N (not a whole number in 0..255, or missing) prints a usage line to
 * stderr and exits 2 (through the adapter, so the container shows 1).
 */
// component-world: exit-code
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "exit_code.h"

int main(int argc, char **argv)
{
    char *end = NULL;
    long code = -1;
    if (argc == 2 || argc == 3) {
        errno = 0;
        code = strtol(argv[1], &end, 10);
        if (errno != 0 || end == argv[1] || *end != '\0') code = -1;
    }
    if (code < 0 || code > 255) {
        fputs("usage: exit-code N [MESSAGE]   (N in 0..255)\n", stderr);
        return 2;
    }
    if (argc == 3) fprintf(stderr, "%s\n", argv[2]);
    fflush(stdout);
    wasi_cli_exit_exit_with_code((uint8_t)code);
    return 2; /* not reached: exit-with-code does not return */
}
