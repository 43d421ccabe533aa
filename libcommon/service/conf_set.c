/*
 * conf_set.c - the generic value setters behind every schema key: parse
 * the text of one value by type, check its range, store it into the field
 * the key points at. Also the exact formatters used to print ranges and
 * defaults ("64k", "500ms").
 *
 * Not here: finding keys, sections, includes and error positions (conf.c).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/conf_int.h"

/* Reasons with numbers in them are formatted here; one per thread is
 * enough because the caller copies the reason before the next call. */
static __thread char reason_buf[160];

struct conf_arena {
    struct conf_arena *next;
};

struct conf_arena *conf__arena_new(void)
{
    return calloc(1, sizeof(struct conf_arena));
}

void conf__arena_free(struct conf_arena *a)
{
    while (a) {
        struct conf_arena *next = a->next;
        free(a);
        a = next;
    }
}

void *conf__alloc(struct conf_arena *a, size_t n)
{
    if (!a)
        return calloc(1, n ? n : 1);
    /* Each block is chained after the head; the head itself holds nothing. */
    struct conf_arena *b = calloc(1, sizeof(*b) + n);
    if (!b)
        return NULL;
    b->next = a->next;
    a->next = b;
    return b + 1;
}

char *conf__strdup(struct conf_arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = conf__alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

int conf_parse_int(const char *s, int64_t *out)
{
    char *end;

    if (!*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* Digits followed by a unit: the number and where the unit starts. */
static int parse_num_unit(const char *s, int64_t *num, const char **unit)
{
    int64_t v = 0;
    const char *p = s;

    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    *num = v;
    *unit = p;
    return 0;
}

static int scale(int64_t v, int64_t mul, int64_t *out)
{
    if (v > INT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

int conf_parse_size(const char *s, int64_t *out)
{
    int64_t v;
    const char *u;

    if (parse_num_unit(s, &v, &u) < 0)
        return -1;
    switch (tolower((unsigned char)*u)) {
    case '\0':
        *out = v;
        return 0;
    case 'k':
        return u[1] ? -1 : scale(v, 1024, out);
    case 'm':
        return u[1] ? -1 : scale(v, 1024 * 1024, out);
    case 'g':
        return u[1] ? -1 : scale(v, 1024 * 1024 * 1024, out);
    }
    return -1;
}

int conf_parse_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    int64_t v;
    const char *u;

    if (parse_num_unit(s, &v, &u) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(u, units[i].unit) == 0)
            return scale(v, units[i].ms, ms);
    return -1;
}

int conf_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

char *conf_format_size(int64_t v, char *buf, size_t len)
{
    static const char sfx[] = "GMk";
    int64_t unit = 1024 * 1024 * 1024;

    for (int i = 0; i < 3; i++, unit /= 1024) {
        if (v != 0 && v % unit == 0) {
            snprintf(buf, len, "%" PRId64 "%c", v / unit, sfx[i]);
            return buf;
        }
    }
    snprintf(buf, len, "%" PRId64, v);
    return buf;
}

char *conf_format_duration(int64_t ms, char *buf, size_t len)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(buf, len, "%" PRId64 "h", ms / 3600000);
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(buf, len, "%" PRId64 "m", ms / 60000);
    else if (ms % 1000 == 0)
        snprintf(buf, len, "%" PRId64 "s", ms / 1000);
    else
        snprintf(buf, len, "%" PRId64 "ms", ms);
    return buf;
}

/* Store v into an integer field of 1, 2, 4 or 8 bytes. */
static void store_int(void *dst, size_t width, int64_t v)
{
    switch (width) {
    case 1: {
        int8_t x = (int8_t)v;
        memcpy(dst, &x, 1);
        break;
    }
    case 2: {
        int16_t x = (int16_t)v;
        memcpy(dst, &x, 2);
        break;
    }
    case 4: {
        int32_t x = (int32_t)v;
        memcpy(dst, &x, 4);
        break;
    }
    default:
        memcpy(dst, &v, 8);
    }
}

static char *format_by_type(enum conf_type t, int64_t v, char *buf, size_t len)
{
    if (t == CONF_SIZE)
        return conf_format_size(v, buf, len);
    if (t == CONF_DURATION)
        return conf_format_duration(v, buf, len);
    snprintf(buf, len, "%" PRId64, v);
    return buf;
}

static const char *set_number(const struct conf_key *k, void *dst, const char *text)
{
    static const char *const bad[] = {
        [CONF_INT] = "not an integer",
        [CONF_SIZE] = "not a size (use a number with an optional k, M or G: 64k, 1M)",
        [CONF_DURATION] = "not a duration (use ms, s, m or h: 500ms, 5s, 2m, 1h)",
    };
    int64_t v;
    int rc = k->type == CONF_INT    ? conf_parse_int(text, &v)
             : k->type == CONF_SIZE ? conf_parse_size(text, &v)
                                    : conf_parse_duration(text, &v);
    if (rc < 0)
        return bad[k->type];
    if (k->min < k->max && (v < k->min || v > k->max)) {
        char lo[32], hi[32];
        snprintf(reason_buf, sizeof(reason_buf), "out of range %s..%s",
                 format_by_type(k->type, k->min, lo, sizeof(lo)),
                 format_by_type(k->type, k->max, hi, sizeof(hi)));
        return reason_buf;
    }
    store_int(dst, k->width, v);
    return NULL;
}

static const char *set_enum(const struct conf_key *k, void *dst, const char *text)
{
    size_t off = 0;

    for (const struct conf_enum *e = k->enums; e && e->name; e++) {
        if (strcmp(text, e->name) == 0) {
            store_int(dst, k->width, e->value);
            return NULL;
        }
    }
    off = (size_t)snprintf(reason_buf, sizeof(reason_buf), "must be one of");
    for (const struct conf_enum *e = k->enums; e && e->name && off < sizeof(reason_buf); e++)
        off += (size_t)snprintf(reason_buf + off, sizeof(reason_buf) - off, "%s %s",
                                e == k->enums ? "" : ",", e->name);
    return reason_buf;
}

static const char *set_string(const struct conf_key *k, void *dst, const char *text,
                              const char *base_dir, struct conf_arena *arena)
{
    char *s;

    if (*text == '\0') {
        s = NULL; /* empty = unset */
    } else if (k->type == CONF_PATH && text[0] != '/' && base_dir) {
        size_t n = strlen(base_dir) + strlen(text) + 2;
        if (!(s = conf__alloc(arena, n)))
            return "out of memory";
        snprintf(s, n, "%s/%s", base_dir, text);
    } else if (!(s = conf__strdup(arena, text))) {
        return "out of memory";
    }
    memcpy(dst, &s, sizeof(s));
    return NULL;
}

static const char *set_addr(void *dst, const char *text)
{
    struct coro_addr a;
    char err[96];

    memset(&a, 0, sizeof(a));
    if (*text && coro_addr_parse(text, &a, err, sizeof(err)) < 0) {
        snprintf(reason_buf, sizeof(reason_buf), "%s", err);
        return reason_buf;
    }
    memcpy(dst, &a, sizeof(a));
    return NULL;
}

static const char *set_addr_list(void *dst, const char *text, struct conf_arena *arena)
{
    static const char sep[] = ", \t";
    struct conf_addr_list l = {0, NULL};
    size_t cap = 1;
    char tok[CONF_MAX_LINE + 1];

    for (const char *p = text; *p; p++)
        cap += strchr(sep, *p) != NULL;
    if (!(l.v = conf__alloc(arena, cap * sizeof(*l.v))))
        return "out of memory";
    for (const char *p = text + strspn(text, sep); *p; p += strspn(p, sep)) {
        size_t n = strcspn(p, sep);
        snprintf(tok, sizeof(tok), "%.*s", (int)n, p);
        const char *why = set_addr(&l.v[l.n], tok);
        if (why) {
            char copy[sizeof(reason_buf)];
            snprintf(copy, sizeof(copy), "%s", why);
            snprintf(reason_buf, sizeof(reason_buf), "\"%.60s\": %.90s", tok, copy);
            if (!arena)
                free(l.v);
            return reason_buf;
        }
        l.n++;
        p += n;
    }
    memcpy(dst, &l, sizeof(l));
    return NULL;
}

const char *conf_set(const struct conf_key *k, void *dst, const char *text, const char *base_dir,
                     struct conf_arena *arena)
{
    int b;

    switch (k->type) {
    case CONF_INT:
    case CONF_SIZE:
    case CONF_DURATION:
        return set_number(k, dst, text);
    case CONF_BOOL:
        if (conf_parse_bool(text, &b) < 0)
            return "not a boolean (use yes/no, true/false, on/off, 1/0)";
        store_int(dst, k->width, b);
        return NULL;
    case CONF_ENUM:
        return set_enum(k, dst, text);
    case CONF_STRING:
    case CONF_PATH:
        return set_string(k, dst, text, base_dir, arena);
    case CONF_ADDR:
        return set_addr(dst, text);
    case CONF_ADDR_LIST:
        return set_addr_list(dst, text, arena);
    }
    return "bad key type in schema";
}
