/* err.h: the one error type of wasmlet.
 *
 * A function that can fail returns 0 on success and -1 on failure, and fills
 * the caller's err_t with a message a user can act on ("pod default/web:
 * container app: image ./app.wasm: no such file"). Callers add context with
 * err_prefix() as the error travels up; only the top of a thread (main, a
 * worker, the server) prints it. A NULL err_t is allowed and discards the
 * message. */
#ifndef WASMLET_UTIL_ERR_H
#define WASMLET_UTIL_ERR_H

#include <stddef.h>

#define ERR_MSG_MAX 1024

typedef struct err {
    char msg[ERR_MSG_MAX];
} err_t;

/* Sets the message (printf-style) and returns -1, so `return err_set(...)`
 * reads as the failure it is. */
int err_set(err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like err_set, with ": strerror(errno)" appended. */
int err_errno(err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Puts "<context>: " in front of the current message; returns -1. */
int err_prefix(err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline void err_clear(err_t *err)
{
    if (err) err->msg[0] = '\0';
}

#endif
