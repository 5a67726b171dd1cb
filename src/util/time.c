/* time.c: clocks and RFC 3339 formatting and parsing (see time.h). */
#include "util/time.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t time_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

int64_t time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static void split(int64_t ns, time_t *sec, long *frac)
{
    int64_t s = ns / NS_PER_SEC, f = ns % NS_PER_SEC;
    if (f < 0) {
        f += NS_PER_SEC;
        s -= 1;
    }
    *sec = (time_t)s;
    *frac = (long)f;
}

char *time_format_rfc3339nano(char *buf, size_t len, int64_t ns)
{
    time_t sec;
    long frac;
    split(ns, &sec, &frac);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%09ldZ", base, frac);
    return buf;
}

char *time_format_rfc3339(char *buf, size_t len, int64_t ns)
{
    time_t sec;
    long frac;
    split(ns, &sec, &frac);
    struct tm tm;
    gmtime_r(&sec, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

int time_parse_rfc3339(const char *text, int64_t *ns)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p) return -1;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits < 9) {
                frac = frac * 10 + (*p - '0');
                digits++;
            }
            p++;
        }
        if (digits == 0) return -1;
        for (; digits < 9; digits++)
            frac *= 10;
    }
    int64_t offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        /* exactly hh:mm (a short offset must not move p past the end) */
        for (int i = 1; i <= 5; i++)
            if (i == 3 ? p[i] != ':' : (p[i] < '0' || p[i] > '9')) return -1;
        int hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (p[4] - '0') * 10 + (p[5] - '0');
        if (hh > 23 || mm > 59) return -1;
        offset = sign * (int64_t)(hh * 3600 + mm * 60);
        p += 6;
    } else {
        return -1;
    }
    if (*p) return -1;
    time_t sec = timegm(&tm);
    int64_t s = (int64_t)sec - offset;
    if (s >= INT64_MAX / NS_PER_SEC || s <= INT64_MIN / NS_PER_SEC) return -1;
    *ns = s * NS_PER_SEC + frac;
    return 0;
}

void time_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * NS_PER_MS};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

int time_parse_duration(const char *text, int64_t *ns)
{
    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {{"ns", 1},         {"us", 1000},           {"ms", NS_PER_MS},
                 {"s", NS_PER_SEC}, {"m", 60 * NS_PER_SEC}, {"h", 3600 * NS_PER_SEC}};
    const char *p = text;
    if (!p || !*p) return -1;
    if (strcmp(p, "0") == 0) {
        *ns = 0;
        return 0;
    }
    int64_t total = 0;
    while (*p) {
        int64_t whole = 0, frac = 0, scale = 1;
        const char *digits = p;
        while (*p >= '0' && *p <= '9') {
            if (whole > (INT64_MAX - 9) / 10) return -1;
            whole = whole * 10 + (*p++ - '0');
        }
        bool any = p > digits;
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9') {
                any = true;
                if (scale < NS_PER_SEC) { /* nanoseconds of an hour at most need 9 digits */
                    frac = frac * 10 + (*p - '0');
                    scale *= 10;
                }
                p++;
            }
        }
        if (!any) return -1;
        size_t u = 0, ulen = 0;
        for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
            size_t n = strlen(units[i].name);
            if (strncmp(p, units[i].name, n) == 0 && n > ulen) {
                u = i;
                ulen = n;
            }
        }
        if (!ulen) return -1;
        /* "m" must not swallow the "m" of "ms": the longest unit wins. */
        p += ulen;
        int64_t unit = units[u].ns;
        if (whole > INT64_MAX / unit) return -1;
        int64_t v = whole * unit;
        /* frac / scale of a unit, in ns (scale <= 1e9, unit <= 3.6e12:
         * split to stay in range). */
        int64_t part = (frac * (unit / scale)) + (frac * (unit % scale)) / scale;
        if (v > INT64_MAX - part || total > INT64_MAX - v - part) return -1;
        total += v + part;
    }
    *ns = total;
    return 0;
}
