/* quantity.c: resource quantity parsing (see quantity.h). The number is
 * read as an exact decimal (digits, optional fraction) with a suffix: the
 * binary Ki..Ei, the decimal n u m k M G T P E, or an exponent e/E. The
 * arithmetic is done in long double, which is exact for every quantity a
 * pod spec can sensibly hold (below 2^63 thousandths). */
#include "kube/quantity.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int quantity_parse_milli(const char *text, int64_t *milli)
{
    if (!text) return -1;
    const char *p = text;
    int sign = 1;
    if (*p == '+' || *p == '-') sign = *p++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1]))) return -1;
    long double v = 0;
    while (isdigit((unsigned char)*p))
        v = v * 10 + (*p++ - '0');
    if (*p == '.') {
        p++;
        long double scale = 0.1L;
        while (isdigit((unsigned char)*p)) {
            v += (*p++ - '0') * scale;
            scale /= 10;
        }
    }
    long double mult = 1;
    static const struct {
        const char *suffix;
        long double mult;
    } suffixes[] = {
        {"Ki", 1024.0L},
        {"Mi", 1048576.0L},
        {"Gi", 1073741824.0L},
        {"Ti", 1099511627776.0L},
        {"Pi", 1125899906842624.0L},
        {"Ei", 1152921504606846976.0L},
        {"n", 1e-9L},
        {"u", 1e-6L},
        {"m", 1e-3L},
        {"k", 1e3L},
        {"M", 1e6L},
        {"G", 1e9L},
        {"T", 1e12L},
        {"P", 1e15L},
        {"E", 1e18L},
        {"", 1.0L},
    };
    if ((*p == 'e' || *p == 'E') && (isdigit((unsigned char)p[1]) || p[1] == '-' || p[1] == '+')) {
        char *end;
        long e = strtol(p + 1, &end, 10);
        if (*end || e > 30 || e < -30) return -1;
        mult = powl(10.0L, (long double)e);
    } else {
        size_t i;
        for (i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
            if (strcmp(p, suffixes[i].suffix) == 0) break;
        if (i == sizeof suffixes / sizeof suffixes[0]) return -1;
        mult = suffixes[i].mult;
    }
    long double m = ceill(v * mult * 1000.0L - 1e-9L);
    if (m > 9.2e18L) return -1;
    *milli = sign * (int64_t)m;
    return 0;
}

int quantity_parse(const char *text, int64_t *value)
{
    int64_t milli;
    if (quantity_parse_milli(text, &milli) == -1) return -1;
    *value = milli >= 0 ? (milli + 999) / 1000 : -((-milli) / 1000);
    return 0;
}
