/* time.h: clocks and the timestamp formats Kubernetes speaks.
 * Wall-clock times are int64 nanoseconds since the Unix epoch (UTC);
 * durations and deadlines use the monotonic clock. */
#ifndef WASMLET_UTIL_TIME_H
#define WASMLET_UTIL_TIME_H

#include <stddef.h>
#include <stdint.h>

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_SEC INT64_C(1000000000)

int64_t time_now_ns(void);  /* CLOCK_REALTIME */
int64_t time_mono_ns(void); /* CLOCK_MONOTONIC */

/* "2026-11-26T14:21:11.123456789Z" (always 9 fractional digits, as the CRI
 * log format writes). Returns buf. */
char *time_format_rfc3339nano(char *buf, size_t len, int64_t ns);
/* "2026-11-26T14:21:11Z" (metav1.Time). Returns buf. */
char *time_format_rfc3339(char *buf, size_t len, int64_t ns);
/* Parses RFC 3339 with an optional fraction and a Z or +hh:mm offset into
 * nanoseconds; returns 0, or -1 when the text is not a timestamp. */
int time_parse_rfc3339(const char *text, int64_t *ns);

/* Parses a Go duration ("1m30s", "90s", "1.5h", "250ms", "0"), as the
 * kubelet's flags take them, into nanoseconds: one or more decimal numbers
 * (a fraction allowed), each with a unit of ns, us, ms, s, m or h; no sign.
 * Returns 0, or -1 when the text is not one or it overflows. */
int time_parse_duration(const char *text, int64_t *ns);

/* Sleeps for ms milliseconds (restarting after signals). */
void time_sleep_ms(int64_t ms);

#endif
