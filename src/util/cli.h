/* cli.h: strict parsing of numeric command-line options.
 *
 * atoi reads "--port x" as 0 and "--max-pods 10k" as 10; an option that
 * was mistyped must stop the command instead, with a message that names
 * the option and says what it takes. cli_parse_int accepts only a whole
 * decimal integer (an optional sign, digits, nothing else, not empty)
 * within [min, max]. On a bad value it prints
 *     wasmlet CMD: --OPT: "VALUE" is not an integer from MIN to MAX
 * to stderr and returns -1; the command then exits with status 2, as for
 * any other usage error. */
#ifndef WASMLET_UTIL_CLI_H
#define WASMLET_UTIL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit status of a command whose command line is wrong. */
#define CLI_USAGE_ERROR 2

/* Parses text as a decimal integer in [min, max] without printing;
 * returns 0, or -1 when it is not one. */
int cli_int(const char *text, int64_t min, int64_t max, int64_t *out);

/* cli_int, with the message above on failure. cmd is the command's name
 * ("node"), opt the option without dashes ("port"). */
int cli_parse_int(const char *cmd, const char *opt, const char *text, int64_t min, int64_t max,
                  int64_t *out);

/* The same for an int-sized option. */
int cli_parse_int32(const char *cmd, const char *opt, const char *text, int min, int max, int *out);

#endif
