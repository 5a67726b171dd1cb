/* diag.c: wasmlet's diagnostic log on stderr (see diag.h). Each message is
 * formatted into one buffer and written with one write(2), so lines from
 * different threads never interleave. */
#include "util/diag.h"
#include "util/time.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static atomic_int level_now = DIAG_INFO;

void diag_set_level(enum diag_level level)
{
    atomic_store(&level_now, (int)level);
}

enum diag_level diag_get_level(void)
{
    return (enum diag_level)atomic_load(&level_now);
}

void diag(enum diag_level level, const char *fmt, ...)
{
    static const char *const names[] = {"E", "W", "I", "D"};
    if ((int)level > atomic_load(&level_now)) return;
    char line[2048];
    char ts[40];
    time_format_rfc3339nano(ts, sizeof ts, time_now_ns());
    int n = snprintf(line, sizeof line, "%s %s ", ts, names[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line - 1) n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
