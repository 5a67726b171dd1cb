/*
 * exitcode: `exitcode N [MESSAGE]` prints MESSAGE (when given) and a newline to
 * stderr, then exits with code N (0..255) through proc_exit. Nothing goes to
 * stdout.
 *
 * A bad N (not a whole number in 0..255, or missing) prints a usage line to
 * stderr and exits 2.
 *
 * Used by examples/pods/exitcode.yaml (exit 3, terminated reason Error) and
 * examples/pods/crashloop.yaml (exit 1 under restartPolicy OnFailure, to show
 * CrashLoopBackOff), and by the tests of exit code mapping and restart policy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

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
        fputs("usage: exitcode N [MESSAGE]   (N in 0..255)\n", stderr);
        return 2;
    }
    if (argc == 3) fprintf(stderr, "%s\n", argv[2]);
    exit((int)code);
}
