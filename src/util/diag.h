/* diag.h: wasmlet's own diagnostic log (not container logs; those are
 * log/). One line per message on stderr: an RFC 3339 timestamp, the level,
 * and the text. The level is set once at start-up (--v, WASMLET_LOG). */
#ifndef WASMLET_UTIL_DIAG_H
#define WASMLET_UTIL_DIAG_H

enum diag_level { DIAG_ERROR = 0, DIAG_WARN = 1, DIAG_INFO = 2, DIAG_DEBUG = 3 };

void diag_set_level(enum diag_level level);
enum diag_level diag_get_level(void);
void diag(enum diag_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define diag_error(...) diag(DIAG_ERROR, __VA_ARGS__)
#define diag_warn(...) diag(DIAG_WARN, __VA_ARGS__)
#define diag_info(...) diag(DIAG_INFO, __VA_ARGS__)
#define diag_debug(...) diag(DIAG_DEBUG, __VA_ARGS__)

#endif
