/*
 * duration.c - durations and rates on the command line: "500ms", "5s",
 * "2m", "1h", "1.5s" (a bare number is seconds), and "N/s", "N/min",
 * "N/10s" rates. Not for sizes (size.c).
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    double ms;
} units[] = {
    {"ms", 1}, {"s", 1e3}, {"sec", 1e3}, {"m", 60e3}, {"min", 60e3}, {"h", 3600e3}, {"d", 86400e3},
};

int cli_parse_duration_ms(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0 || !isfinite(v))
        goto bad;
    double mul = *end ? 0 : 1e3;
    for (size_t i = 0; i < sizeof units / sizeof *units && !mul; i++)
        if (!strcmp(end, units[i].name))
            mul = units[i].ms;
    if (!mul || v * mul >= 9.2e18)
        goto bad;
    *out = (uint64_t)llround(v * mul);
    return 0;
bad:
    errno = EINVAL;
    return -1;
}

int cli_parse_rate(const char *s, uint64_t *count, uint64_t *interval_ms)
{
    char *end, unit[32] = "1";
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (end == s || errno || n == 0 || *end != '/' || strlen(end + 1) >= sizeof unit - 1)
        goto bad;
    /* "N/s" means per one second: give a bare unit the count 1. */
    strcpy(end[1] >= '0' && end[1] <= '9' ? unit : unit + 1, end + 1);
    if (cli_parse_duration_ms(unit, interval_ms) < 0 || *interval_ms == 0)
        goto bad;
    *count = n;
    return 0;
bad:
    errno = EINVAL;
    return -1;
}
