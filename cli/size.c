/*
 * size.c - human sizes for the CLI: "64k", "1M", "1.5G" in, "1.2 GiB" out.
 *
 * Suffixes are binary (k = 1024) as in mbuffer and dd; an optional trailing
 * "B" or "iB" is accepted ("64KiB", "1MB"). Not for durations or rates.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int suffix_shift(const char *s, unsigned *shift)
{
    static const char units[] = "kmgt";
    const char *u = *s ? strchr(units, s[0] | 0x20) : NULL;

    *shift = 0;
    if (u) {
        *shift = 10 * (unsigned)(u - units + 1);
        s++;
        if (*s == 'i')
            s++;
    }
    if (*s == 'B' || *s == 'b')
        s++;
    return *s ? -1 : 0;
}

int cli_parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned shift;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno || v < 0 || !isfinite(v) || suffix_shift(end, &shift) < 0) {
        errno = EINVAL;
        return -1;
    }
    v = ldexp(v, (int)shift);
    if (v >= 18446744073709551615.0) {
        errno = ERANGE;
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

const char *cli_fmt_size(char *buf, size_t len, double bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned i = 0;

    while (bytes >= 1024 && i < 4) {
        bytes /= 1024;
        i++;
    }
    snprintf(buf, len, "%.*f %s", !i ? 0 : bytes < 10 ? 2 : bytes < 100 ? 1 : 0, bytes, units[i]);
    return buf;
}
