/*
 * printenv: shows exactly what argv and environment a container was given, so
 * tests can check the Kubernetes command/args/env mapping (including $(VAR)
 * expansion and $$ escapes) without guessing.
 *
 * Output, on stdout:
 *   arg[<i>]=<value>     one line per argv element, i from 0
 *   env <NAME>=<value>   one line per environment variable, sorted by NAME
 * then exit 0. Names are compared bytewise (strcmp order); entries with the
 * same name keep a stable order by comparing the whole entry. An entry without
 * '=' (possible in WASI, where the host passes raw strings) is printed as is.
 *
 * Used by examples/pods/printenv.yaml and the argv/env mapping tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

/* Compares two "NAME=value" entries by NAME first, then by the whole text. */
static int compare_entries(const void *a, const void *b)
{
    const char *x = *(const char *const *)a;
    const char *y = *(const char *const *)b;
    size_t xn = strcspn(x, "=");
    size_t yn = strcspn(y, "=");
    size_t n = xn < yn ? xn : yn;
    int c = memcmp(x, y, n);
    if (c != 0) return c;
    if (xn != yn) return xn < yn ? -1 : 1;
    return strcmp(x, y);
}

int main(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        printf("arg[%d]=%s\n", i, argv[i]);

    size_t count = 0;
    while (environ != NULL && environ[count] != NULL)
        count++;
    if (count > 0) {
        char **sorted = malloc(count * sizeof(*sorted));
        if (sorted == NULL) {
            fputs("printenv: out of memory\n", stderr);
            return 1;
        }
        memcpy(sorted, environ, count * sizeof(*sorted));
        qsort(sorted, count, sizeof(*sorted), compare_entries);
        for (size_t i = 0; i < count; i++)
            printf("env %s\n", sorted[i]);
        free(sorted);
    }
    if (fflush(stdout) != 0) return 1;
    return 0;
}
