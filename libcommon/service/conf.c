/*
 * conf.c - the config loader: reads the main file and its includes through
 * inih with a line-counting reader, resolves sections (plain, named
 * instances, the common ones), hands each value to the generic setter of
 * its key, and collects every error with its FILE:LINE.
 *
 * Why our own reader: Debian's inih passes the handler no line number, cuts
 * lines over 200 bytes silently and only returns the first error line. The
 * reader counts lines, rejects over-long and malformed lines itself (and
 * feeds inih an empty line instead), and tracks section headers, so every
 * message carries its exact position and headers of sections without keys
 * are seen too.
 *
 * Not here: value syntax (conf_set.c), generated files (conf_dump.c).
 */
#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "service/conf_int.h"

#define MAX_INCLUDE_DEPTH 16

/* Where keys go: a plain section's struct or one named instance. */
struct target {
    const struct conf_section *sec; /* NULL: top level, or unknown when bad */
    void *base;
    const char *name; /* "listener.mqtt", for messages */
    int bad;          /* the header was an error: skip its keys quietly */
};

/* A named instance, allocated apart and gathered into its list at the end. */
struct inst {
    const struct conf_section *sec;
    char *name;     /* the part after the dot */
    char *fullname; /* "listener.mqtt" */
    void *base;
    const char *file;
    int line;
    struct inst *next;
};

/* A plain section's first header, for "missing required key" positions. */
struct plain {
    const struct conf_section *sec;
    void *base;
    const char *file;
    int line;
    struct plain *next;
};

/* A key already set: duplicates and missing required keys. */
struct seen {
    const void *base;
    const struct conf_key *key;
    const char *file;
    int line;
    struct seen *next;
};

/* One open file of the include stack. */
struct file {
    FILE *fp;
    const char *path;
    char *dir;
    int line;
    struct target cur;
    dev_t dev;
    ino_t ino;
    struct file *up;
    char *buf;
    size_t cap;
};

struct loader {
    conf_t *c;
    struct conf_arena *a;
    struct file *top;
    int depth;
    struct inst *insts, **insts_tail;
    struct plain *plains;
    struct seen *seen;
    size_t errcap;
    int oom;
};

static void add_err(struct loader *ld, const char *file, int line, const char *sec, const char *key,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void add_err(struct loader *ld, const char *file, int line, const char *sec, const char *key,
                    const char *fmt, ...)
{
    char msg[512];
    size_t off;
    va_list ap;
    conf_t *c = ld->c;

    off = line > 0 ? (size_t)snprintf(msg, sizeof(msg), "%s:%d: ", file, line)
                   : (size_t)snprintf(msg, sizeof(msg), "%s: ", file);
    if (sec && off < sizeof(msg))
        off += (size_t)snprintf(msg + off, sizeof(msg) - off, key ? "[%s] " : "[%s]: ", sec);
    if (key && off < sizeof(msg))
        off += (size_t)snprintf(msg + off, sizeof(msg) - off, "%s: ", key);
    if (off < sizeof(msg)) {
        va_start(ap, fmt);
        vsnprintf(msg + off, sizeof(msg) - off, fmt, ap);
        va_end(ap);
    }
    if (c->nerrors == ld->errcap) {
        size_t ncap = ld->errcap ? ld->errcap * 2 : 8;
        char **v = conf__alloc(ld->a, ncap * sizeof(*v));
        if (!v) {
            ld->oom = 1;
            return;
        }
        if (c->nerrors)
            memcpy(v, c->errors, c->nerrors * sizeof(*v));
        c->errors = v;
        ld->errcap = ncap;
    }
    char *s = conf__strdup(ld->a, msg);
    if (!s) {
        ld->oom = 1;
        return;
    }
    c->errors[c->nerrors++] = s;
}

static void apply_defaults(struct loader *ld, const struct conf_section *sec, void *base,
                           int common)
{
    for (const struct conf_key *k = sec->keys; k->name; k++) {
        const char *def = k->def;
        if (common && strcmp(sec->name, "admin") == 0 && strcmp(k->name, "listen") == 0)
            def = ld->c->schema->admin_default ? ld->c->schema->admin_default : "";
        if (!def)
            continue;
        const char *why = conf_set(k, (char *)base + k->offset, def, NULL, ld->a);
        if (why)
            add_err(ld, "schema", 0, sec->name, k->name, "bad default \"%s\": %s", def, why);
    }
}

static const struct conf_section *find_section(const struct conf_section *v, const char *name,
                                               size_t n)
{
    for (; v && v->name; v++)
        if (strlen(v->name) == n && strncmp(v->name, name, n) == 0)
            return v;
    return NULL;
}

static int valid_instance_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return 0;
    return 1;
}

/* The instance [sec.name], created with its defaults on first sight. */
static struct inst *get_inst(struct loader *ld, const struct conf_section *sec, const char *name,
                             const char *full)
{
    struct inst *in;

    for (in = ld->insts; in; in = in->next)
        if (in->sec == sec && strcmp(in->name, name) == 0)
            return in;
    if (!(in = conf__alloc(ld->a, sizeof(*in))) ||
        !(in->base = conf__alloc(ld->a, sec->instance_size)) ||
        !(in->name = conf__strdup(ld->a, name)) || !(in->fullname = conf__strdup(ld->a, full))) {
        ld->oom = 1;
        return NULL;
    }
    in->sec = sec;
    in->file = ld->top->path;
    in->line = ld->top->line;
    *ld->insts_tail = in;
    ld->insts_tail = &in->next;
    apply_defaults(ld, sec, in->base, 0);
    return in;
}

static void note_plain(struct loader *ld, const struct conf_section *sec, void *base)
{
    for (struct plain *p = ld->plains; p; p = p->next)
        if (p->sec == sec)
            return;
    struct plain *p = conf__alloc(ld->a, sizeof(*p));
    if (!p) {
        ld->oom = 1;
        return;
    }
    *p = (struct plain){sec, base, ld->top->path, ld->top->line, ld->plains};
    ld->plains = p;
}

/* A "[name]" header: point the current file's target at it. */
static void open_section(struct loader *ld, const char *name)
{
    struct file *f = ld->top;
    const struct conf_section *sec;
    const char *dot = strchr(name, '.');
    size_t n = dot ? (size_t)(dot - name) : strlen(name);
    conf_t *c = ld->c;

    f->cur = (struct target){NULL, NULL, NULL, 1};
    if (!(f->cur.name = conf__strdup(ld->a, name))) {
        ld->oom = 1;
        return;
    }
    if ((sec = find_section(conf__common_sections, name, n)) && !dot) {
        f->cur.sec = sec;
        f->cur.base = &c->common;
    } else if ((sec = find_section(c->schema->sections, name, n)) == NULL) {
        add_err(ld, f->path, f->line, name, NULL, "unknown section");
        return;
    } else if (!(sec->flags & CONF_NAMED)) {
        if (dot) {
            add_err(ld, f->path, f->line, name, NULL, "unknown section ([%s] takes no name)",
                    sec->name);
            return;
        }
        f->cur.sec = sec;
        f->cur.base = (char *)c->data + sec->offset;
    } else {
        if (!dot || !valid_instance_name(dot + 1)) {
            add_err(ld, f->path, f->line, name, NULL,
                    "needs an instance name of letters, digits, '_' or '-': [%s.NAME]",
                    sec->name);
            return;
        }
        struct inst *in = get_inst(ld, sec, dot + 1, name);
        if (!in)
            return;
        f->cur.sec = sec;
        f->cur.base = in->base;
        f->cur.name = in->fullname;
    }
    f->cur.bad = 0;
    if (!(sec->flags & CONF_NAMED))
        note_plain(ld, sec, f->cur.base);
}

/* Check one raw line; return what inih should see. */
static const char *screen_line(struct loader *ld, char *line, int limit)
{
    struct file *f = ld->top;
    size_t len = strlen(line);

    if (len > 0 && line[len - 1] == '\n')
        line[--len] = '\0';
    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    if ((int)len > limit) {
        add_err(ld, f->path, f->line, NULL, NULL, "line too long (%zu bytes, at most %d)", len,
                limit);
        return "";
    }
    line += strspn(line, " \t");
    if (*line == '\0' || *line == '#' || *line == ';')
        return "";
    if (*line == '[') {
        char *end = strchr(line, ']');
        if (!end) {
            add_err(ld, f->path, f->line, NULL, NULL, "syntax error: missing ']'");
            return "";
        }
        char *name = line + 1 + strspn(line + 1, " \t");
        char *e = end;
        while (e > name && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        *e = '\0';
        open_section(ld, name);
        return ""; /* sections are tracked here, inih needs no header */
    }
    size_t key = strcspn(line, "=:");
    if (line[key] != '=') {
        add_err(ld, f->path, f->line, NULL, NULL,
                "syntax error: expected \"key = value\" or \"[section]\"");
        return "";
    }
    return line;
}

/* inih's fgets-like reader: one whole physical line per call. */
static char *reader(char *str, int num, void *stream)
{
    struct loader *ld = stream;
    struct file *f = ld->top;
    int limit = num - 3 < CONF_MAX_LINE ? num - 3 : CONF_MAX_LINE;

    if (getline(&f->buf, &f->cap, f->fp) < 0)
        return NULL;
    f->line++;
    snprintf(str, (size_t)num, "%s\n", screen_line(ld, f->buf, limit));
    return str;
}

static int has_wildcard(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static void parse_file(struct loader *ld, const char *path, const struct target *start);

static void include(struct loader *ld, const char *pattern)
{
    struct file *f = ld->top;
    const char *sec = f->cur.sec ? f->cur.name : NULL;
    char full[4096];
    glob_t g;

    if (!*pattern) {
        add_err(ld, f->path, f->line, sec, "include", "empty pattern");
        return;
    }
    if (pattern[0] != '/' && f->dir)
        snprintf(full, sizeof(full), "%s/%s", f->dir, pattern);
    else
        snprintf(full, sizeof(full), "%s", pattern);
    int rc = glob(full, 0, NULL, &g);
    if (rc == GLOB_NOMATCH) {
        if (!has_wildcard(full))
            add_err(ld, f->path, f->line, sec, "include", "%s: %s", full, strerror(ENOENT));
        return;
    }
    if (rc != 0) {
        add_err(ld, f->path, f->line, sec, "include", "%s: cannot expand pattern", full);
        return;
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct stat st;
        if (stat(g.gl_pathv[i], &st) == 0 && S_ISDIR(st.st_mode))
            continue;
        const char *p = conf__strdup(ld->a, g.gl_pathv[i]);
        if (!p) {
            ld->oom = 1;
            break;
        }
        parse_file(ld, p, &f->cur);
    }
    globfree(&g);
}

static struct seen *find_seen(struct loader *ld, const void *base, const struct conf_key *k)
{
    for (struct seen *s = ld->seen; s; s = s->next)
        if (s->base == base && s->key == k)
            return s;
    return NULL;
}

static const struct conf_key *find_key(const struct conf_section *sec, const char *name)
{
    for (const struct conf_key *k = sec->keys; k->name; k++)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct loader *ld = user;
    struct file *f = ld->top;
    const struct target *t = &f->cur;
    const struct conf_key *k;
    struct seen *s;

    (void)section; /* tracked by the reader, which also sees empty sections */
    if (strcmp(name, "include") == 0) {
        include(ld, value);
        return 1;
    }
    if (t->bad)
        return 1;
    if (!t->sec) {
        add_err(ld, f->path, f->line, NULL, name, "key outside any section");
    } else if (!(k = find_key(t->sec, name))) {
        add_err(ld, f->path, f->line, t->name, name, "unknown key");
    } else if ((s = find_seen(ld, t->base, k))) {
        add_err(ld, f->path, f->line, t->name, name, "duplicate key (first set at %s:%d)",
                s->file, s->line);
    } else {
        const char *why = conf_set(k, (char *)t->base + k->offset, value, f->dir, ld->a);
        if (why && !*value && k->type != CONF_ENUM)
            why = "empty value";
        if (why)
            add_err(ld, f->path, f->line, t->name, name, "%s", why);
        if (!(s = conf__alloc(ld->a, sizeof(*s)))) {
            ld->oom = 1;
            return 1;
        }
        *s = (struct seen){t->base, k, f->path, f->line, ld->seen};
        ld->seen = s;
    }
    return 1;
}

/* Refuse a file already on the include stack. */
static int is_loop(struct loader *ld, const struct stat *st)
{
    for (struct file *u = ld->top; u; u = u->up)
        if (u->dev == st->st_dev && u->ino == st->st_ino)
            return 1;
    return 0;
}

static void parse_file(struct loader *ld, const char *path, const struct target *start)
{
    struct file f = {0};
    struct file *up = ld->top;
    const char *sec = up && up->cur.sec ? up->cur.name : NULL;
    struct stat st;

    if (!(f.fp = fopen(path, "re")) || fstat(fileno(f.fp), &st) < 0) {
        if (up)
            add_err(ld, up->path, up->line, sec, "include", "%s: %s", path, strerror(errno));
        else
            add_err(ld, path, 0, NULL, NULL, "cannot open: %s", strerror(errno));
        goto out;
    }
    if (up && (is_loop(ld, &st) || ld->depth >= MAX_INCLUDE_DEPTH)) {
        add_err(ld, up->path, up->line, sec, "include", "%s: include loop (already being read)",
                path);
        goto out;
    }
    const char *slash = strrchr(path, '/');
    f.dir = slash ? conf__alloc(ld->a, (size_t)(slash - path) + 2) : NULL;
    if (f.dir)
        memcpy(f.dir, path, slash == path ? 1 : (size_t)(slash - path));
    f.path = path;
    f.cur = *start;
    f.dev = st.st_dev;
    f.ino = st.st_ino;
    f.up = up;
    ld->top = &f;
    ld->depth++;
    if (ini_parse_stream(reader, ld, handler, ld) == -2)
        ld->oom = 1;
    ld->depth--;
    ld->top = up;
out:
    free(f.buf);
    if (f.fp)
        fclose(f.fp);
}

static void check_required(struct loader *ld, const struct conf_section *sec, const void *base,
                           const char *name, const char *file, int line)
{
    for (const struct conf_key *k = sec->keys; k->name; k++)
        if ((k->flags & CONF_REQUIRED) && !find_seen(ld, base, k))
            add_err(ld, file, line, name, k->name, "missing required key");
}

/* Gather named instances into their lists; check required keys. */
static void finish(struct loader *ld)
{
    conf_t *c = ld->c;

    for (const struct conf_section *sec = c->schema->sections; sec && sec->name; sec++) {
        if (!(sec->flags & CONF_NAMED)) {
            struct plain *p = ld->plains;
            while (p && p->sec != sec)
                p = p->next;
            check_required(ld, sec, (char *)c->data + sec->offset, sec->name,
                           p ? p->file : c->path, p ? p->line : 0);
            continue;
        }
        struct conf_list *l = (struct conf_list *)((char *)c->data + sec->offset);
        size_t n = 0, i = 0;
        for (struct inst *in = ld->insts; in; in = in->next)
            n += in->sec == sec;
        l->n = n;
        l->names = conf__alloc(ld->a, (n + 1) * sizeof(char *));
        l->items = conf__alloc(ld->a, (n + 1) * sec->instance_size);
        if (!l->names || !l->items) {
            ld->oom = 1;
            return;
        }
        for (struct inst *in = ld->insts; in; in = in->next) {
            if (in->sec != sec)
                continue;
            check_required(ld, sec, in->base, in->fullname, in->file, in->line);
            l->names[i] = in->name;
            memcpy((char *)l->items + i++ * sec->instance_size, in->base, sec->instance_size);
        }
    }
}

/* [runtime] as a whole must satisfy the runtime's own check. */
static void check_runtime(struct loader *ld)
{
    struct coro_config *rt = &ld->c->common.runtime;
    struct coro_config def;
    const char *why;

    if (rt->workers == 0) {
        coro_config_default(&def);
        rt->workers = def.workers;
    }
    if ((why = coro_config_check(rt))) {
        struct plain *p = ld->plains;
        while (p && p->sec != &conf__common_sections[0])
            p = p->next;
        add_err(ld, p ? p->file : ld->c->path, p ? p->line : 0, "runtime", NULL, "%s", why);
    }
}

conf_t *conf_load(const struct conf_schema *s, const char *path)
{
    struct loader ld = {0};
    conf_t *c = calloc(1, sizeof(*c));
    struct target top = {NULL, NULL, NULL, 0};

    if (!c || !(ld.a = conf__arena_new()))
        goto fail;
    c->arena = ld.a;
    c->schema = s;
    ld.c = c;
    ld.insts_tail = &ld.insts;
    if (!(c->path = conf__strdup(ld.a, path)) || !(c->data = conf__alloc(ld.a, s->size)))
        goto fail;
    for (const struct conf_section *sec = conf__common_sections; sec->name; sec++)
        apply_defaults(&ld, sec, &c->common, 1);
    for (const struct conf_section *sec = s->sections; sec && sec->name; sec++)
        if (!(sec->flags & CONF_NAMED))
            apply_defaults(&ld, sec, (char *)c->data + sec->offset, 0);
    parse_file(&ld, c->path, &top);
    if (!ld.oom)
        finish(&ld);
    if (!ld.oom)
        check_runtime(&ld);
    if (ld.oom)
        goto fail;
    return c;
fail:
    if (c)
        conf__arena_free(c->arena);
    free(c);
    errno = ENOMEM;
    return NULL;
}

void conf_free(conf_t *c)
{
    if (!c)
        return;
    conf__arena_free(c->arena);
    free(c);
}
