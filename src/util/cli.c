/* cli.c: strict numeric options (see cli.h). */
#include "util/cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int cli_int(const char *text, int64_t min, int64_t max, int64_t *out)
{
    if (!text || !*text || isspace((unsigned char)*text)) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') return -1;
    if (v < min || v > max) return -1;
    *out = v;
    return 0;
}

int cli_parse_int(const char *cmd, const char *opt, const char *text, int64_t min, int64_t max,
                  int64_t *out)
{
    if (cli_int(text, min, max, out) == 0) return 0;
    fprintf(stderr, "wasmlet %s: --%s: \"%s\" is not an integer from %lld to %lld\n", cmd, opt,
            text ? text : "", (long long)min, (long long)max);
    return -1;
}

int cli_parse_int32(const char *cmd, const char *opt, const char *text, int min, int max, int *out)
{
    int64_t v;
    if (cli_parse_int(cmd, opt, text, min, max, &v) == -1) return -1;
    *out = (int)v;
    return 0;
}
