/*
 * conf_dump.c - files generated from a schema: the annotated defaults
 * (`--dump-config`, the shipped conf/coro-NAME.ini) and the man page key
 * list. Both walk the same tables the loader validates with, so the docs
 * cannot drift from the parser; a test loads the dump back.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "service/conf_int.h"

/* "integer 1..65535", "duration 0s..1h", "one of: a, b". */
static char *describe(const struct conf_key *k, char *buf, size_t len)
{
    static const char *const names[] = {
        [CONF_INT] = "integer",  [CONF_SIZE] = "size",       [CONF_DURATION] = "duration",
        [CONF_BOOL] = "yes/no",  [CONF_ENUM] = "one of:",    [CONF_STRING] = "string",
        [CONF_PATH] = "path",    [CONF_ADDR] = "address",    [CONF_ADDR_LIST] = "address list",
    };
    size_t off = (size_t)snprintf(buf, len, "%s", names[k->type]);
    char lo[32], hi[32];

    if (k->min < k->max && k->type == CONF_INT)
        off += (size_t)snprintf(buf + off, len - off, " %lld..%lld", (long long)k->min,
                                (long long)k->max);
    else if (k->min < k->max && k->type == CONF_SIZE)
        off += (size_t)snprintf(buf + off, len - off, " %s..%s",
                                conf_format_size(k->min, lo, sizeof(lo)),
                                conf_format_size(k->max, hi, sizeof(hi)));
    else if (k->min < k->max && k->type == CONF_DURATION)
        off += (size_t)snprintf(buf + off, len - off, " %s..%s",
                                conf_format_duration(k->min, lo, sizeof(lo)),
                                conf_format_duration(k->max, hi, sizeof(hi)));
    for (const struct conf_enum *e = k->enums; k->type == CONF_ENUM && e->name && off < len; e++)
        off += (size_t)snprintf(buf + off, len - off, "%s %s", e == k->enums ? "" : ",", e->name);
    if ((k->flags & CONF_REQUIRED) && off < len)
        snprintf(buf + off, len - off, ", required");
    return buf;
}

/* The value written for k, or NULL to comment the key out. */
static const char *value_of(const struct conf_schema *s, const struct conf_section *sec,
                            const struct conf_key *k, int common)
{
    if (common && strcmp(sec->name, "admin") == 0 && strcmp(k->name, "listen") == 0)
        return s->admin_default ? s->admin_default : "";
    if (k->def)
        return k->def;
    if (k->flags & CONF_REQUIRED)
        return k->example;
    switch (k->type) {
    case CONF_INT:
    case CONF_SIZE:
    case CONF_DURATION:
        return "0";
    case CONF_BOOL:
        return "no";
    case CONF_ENUM:
        return k->enums[0].name;
    default:
        return "";
    }
}

/* A "# " comment wrapped at 78 columns: the loader refuses long lines. */
static void comment(FILE *out, const char *text)
{
    const char *p = text;

    while (*p) {
        size_t n = strlen(p);
        if (n > 76) {
            n = 76;
            while (n > 0 && p[n] != ' ')
                n--;
            if (n == 0)
                n = strcspn(p, " ");
        }
        fprintf(out, "# %.*s\n", (int)n, p);
        p += n;
        p += strspn(p, " ");
    }
}

static void dump_section(FILE *out, const struct conf_schema *s, const struct conf_section *sec,
                         int common)
{
    const char *cm = "";
    char desc[256];

    fputc('\n', out);
    comment(out, sec->doc ? sec->doc : sec->name);
    if (!(sec->flags & CONF_NAMED)) {
        fprintf(out, "[%s]\n", sec->name);
    } else if (sec->example) {
        fprintf(out, "# Repeatable: one [%s.NAME] section per instance.\n[%s.%s]\n", sec->name,
                sec->name, sec->example);
    } else {
        fprintf(out, "# Repeatable: one [%s.NAME] section per instance, e.g.:\n#[%s.NAME]\n",
                sec->name, sec->name);
        cm = "#";
    }
    for (const struct conf_key *k = sec->keys; k->name; k++) {
        const char *v = value_of(s, sec, k, common);
        char text[512];
        snprintf(text, sizeof(text), "%s (%s)", k->doc ? k->doc : k->name,
                 describe(k, desc, sizeof(desc)));
        comment(out, text);
        fprintf(out, "%s%s =%s%s\n", v ? cm : "#", k->name, v && *v ? " " : "", v ? v : "");
    }
}

int conf_dump(const struct conf_schema *s, FILE *out)
{
    fprintf(out,
            "# coro-%s.ini - configuration of coro-%s(8); see coro-%s.ini(5).\n"
            "#\n"
            "# Every key is listed with its default value. Generated from the\n"
            "# daemon's schema (coro-%s --dump-config); keys may be removed to use\n"
            "# the default. Sizes: 64k, 1M, 1G. Durations: 500ms, 5s, 2m, 1h.\n"
            "# Booleans: yes/no. `include = PATTERN` reads drop-in files.\n",
            s->daemon, s->daemon, s->daemon, s->daemon);
    for (const struct conf_section *sec = conf__common_sections; sec->name; sec++)
        dump_section(out, s, sec, 1);
    for (const struct conf_section *sec = s->sections; sec && sec->name; sec++)
        dump_section(out, s, sec, 0);
    if (fflush(out) != 0 || ferror(out)) {
        errno = errno ? errno : EIO;
        return -1;
    }
    return 0;
}

/* Text for man(7): backslashes and leading dots or quotes escaped. */
static void roff(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

static void man_section(FILE *out, const struct conf_schema *s, const struct conf_section *sec,
                        int common)
{
    char desc[256];

    fprintf(out, ".SS [%s%s]\n", sec->name, (sec->flags & CONF_NAMED) ? ".NAME" : "");
    roff(out, sec->doc ? sec->doc : "");
    fputc('\n', out);
    for (const struct conf_key *k = sec->keys; k->name; k++) {
        const char *v = value_of(s, sec, k, common);
        fprintf(out, ".TP\n.B %s\n(", k->name);
        roff(out, describe(k, desc, sizeof(desc)));
        if (k->def || common) {
            fputs("; default: ", out);
            roff(out, v && *v ? v : "empty");
        }
        fputs(")\n", out);
        roff(out, k->doc ? k->doc : "");
        fputc('\n', out);
    }
}

int conf_dump_man(const struct conf_schema *s, FILE *out)
{
    for (const struct conf_section *sec = conf__common_sections; sec->name; sec++)
        man_section(out, s, sec, 1);
    for (const struct conf_section *sec = s->sections; sec && sec->name; sec++)
        man_section(out, s, sec, 0);
    if (fflush(out) != 0 || ferror(out)) {
        errno = errno ? errno : EIO;
        return -1;
    }
    return 0;
}
