/*
 * conf.h - INI configuration checked against a per-daemon schema table.
 *
 * A daemon describes every key once, in tables (nginx command-table style):
 * section, key, type, where the value goes (offset into a struct), default,
 * range or enum values, required, and a one-line doc. From those tables the
 * loader parses and validates, `-t` tests, `--dump-config` prints the
 * annotated defaults, the shipped conf/coro-NAME.ini is generated and the
 * man page key list is written, so none of them can drift apart.
 *
 * File syntax (inih): `[section]`, `key = value`, full-line comments with
 * `#` or `;`, inline comments after ` ;`. Leading whitespace is ignored (no
 * continuation lines). A line longer than CONF_MAX_LINE bytes is an error
 * (Debian's inih would silently cut it). `[NAME.INSTANCE]` opens one
 * instance of a named section (e.g. `[listener.mqtt]`); instance names are
 * [A-Za-z0-9_-]+. `include = PATTERN` (top level or in any section) reads
 * the files matching the glob PATTERN in sorted order, as if their text
 * stood at that line; keys before the first section header of an included
 * file belong to the including section. A relative PATTERN or `path` value
 * is taken relative to the directory of the file it is written in. A
 * pattern with wildcards may match nothing; a literal path must exist.
 *
 * Value syntax per type:
 *   int       decimal, optional leading '-'
 *   size      bytes with optional suffix k, m, g (powers of 1024): 64k, 1M
 *   duration  number with unit ms, s, m, h (bare number = seconds): 500ms, 2m;
 *             stored as int64 milliseconds
 *   bool      yes/no, true/false, on/off, 1/0
 *   enum      one of the names in the key's table; stored as its value
 *   string    any text (char *, NULL when unset); path: same, made absolute
 *   address   coro_addr_parse() syntax; empty = unset (len 0)
 *   addrlist  addresses separated by commas and/or spaces
 *
 * Errors: every problem in the file set is collected (not just the first),
 * each formatted as `FILE:LINE: [section] key: reason`. Library rules apply:
 * nothing here prints, logs or exits; the daemon framework does that.
 * Thread-safety: a loaded conf_t is immutable and may be read from any
 * thread; loading uses no global state and is reentrant. Nothing here
 * yields: load configs outside coroutines or accept a short stall (the
 * files are small and local).
 */
#ifndef CORO_CONF_H
#define CORO_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "coro/coro.h"
#include "coro/net.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CONF_MAX_LINE 197 /* bytes per line, without the line ending */

enum conf_type {
    CONF_INT,
    CONF_SIZE,
    CONF_DURATION,
    CONF_BOOL,
    CONF_ENUM,
    CONF_STRING,
    CONF_PATH,
    CONF_ADDR,
    CONF_ADDR_LIST,
};

/* One name of an enum key and the integer stored for it. */
struct conf_enum {
    const char *name;
    int value;
};

/* A list of addresses (CONF_ADDR_LIST); memory owned by the conf_t. */
struct conf_addr_list {
    size_t n;
    struct coro_addr *v;
};

/* The instances of a named section; memory owned by the conf_t. items is an
 * array of n structs of the section's instance_size, in order of first
 * appearance; names[i] is the part after the dot. */
struct conf_list {
    size_t n;
    char **names;
    void *items;
};
#define CONF_LIST_AT(list, type, i) (&((type *)(list)->items)[i])

enum {
    CONF_REQUIRED = 0x01, /* key: must be set (per instance in named sections) */
    CONF_NAMED = 0x02,    /* section: [name.INSTANCE], repeatable */
};

/*
 * One key. `offset`/`width` locate the field in the section's struct:
 * CONF_INT, CONF_SIZE, CONF_DURATION, CONF_BOOL and CONF_ENUM accept any
 * integer field of 1, 2, 4 or 8 bytes (the range keeps values in bounds);
 * strings and paths are char *, addresses struct coro_addr, address lists
 * struct conf_addr_list. Use CONF_FIELD(struct type, member).
 * `def` is the default as text (parsed by the same setter, so a bad
 * default is caught by the tests); NULL = zero/unset. min/max bound int,
 * size and duration values (milliseconds) when min < max. `example` is the
 * value written by the generator for a required key without default.
 */
struct conf_key {
    const char *name;
    enum conf_type type;
    size_t offset;
    size_t width;
    const char *def;
    int64_t min, max;
    const struct conf_enum *enums; /* CONF_ENUM: terminated by {NULL, 0} */
    unsigned flags;
    const char *doc;
    const char *example;
};
#define CONF_FIELD(type, member) offsetof(type, member), sizeof(((type *)0)->member)

/*
 * One section. Plain: the struct lives at `offset` in the daemon's config
 * struct. CONF_NAMED: a struct conf_list lives at `offset`, each instance is
 * a struct of `instance_size` bytes filled from `keys`; `example` names the
 * instance the generator writes (NULL: the generator writes a commented-out
 * instance).
 */
struct conf_section {
    const char *name;
    unsigned flags;
    size_t offset;
    size_t instance_size;
    const struct conf_key *keys; /* terminated by {0} (clang warns on {NULL}) */
    const char *doc;
    const char *example;
};

/*
 * A daemon's schema: its config struct (`size` bytes, zeroed then filled
 * with defaults) and its sections, terminated by {0}. The common
 * sections [runtime], [log] and [admin] are added by the loader and land
 * in conf_t.common; `admin_default` is this daemon's default for
 * [admin] listen ("" = admin endpoint off).
 */
struct conf_schema {
    const char *daemon; /* "broker": titles of generated files */
    size_t size;
    const struct conf_section *sections;
    const char *admin_default;
};

/* The sections every daemon gets. */
struct conf_common {
    struct coro_config runtime; /* [runtime] workers (0 = one per CPU), stack_size, pool_capacity */
    int64_t shutdown_timeout_ms; /* [runtime] shutdown_timeout */
    int log_level;               /* [log] level: LOG_DEBUG..LOG_ERR from <syslog.h> */
    struct coro_addr admin_listen; /* [admin] listen; len 0 = off */
};

/*
 * A loaded configuration. Read-only for its users; conf_free() releases
 * everything, including strings, lists and error messages.
 */
typedef struct conf {
    char *path;                 /* the main file */
    const struct conf_schema *schema;
    struct conf_common common;
    void *data;                 /* the daemon's struct, schema->size bytes */
    char **errors;              /* `FILE:LINE: [section] key: reason` */
    size_t nerrors;
    struct conf_arena *arena;   /* private */
} conf_t;

/*
 * Load and validate path against s. Returns a conf_t even when the file is
 * invalid: check nerrors (the values are then incomplete; do not use them).
 * NULL only with errno ENOMEM. A file that cannot be opened is an error in
 * the list (`FILE: cannot open: No such file or directory`).
 */
conf_t *conf_load(const struct conf_schema *s, const char *path);
void conf_free(conf_t *c);

/* Write the annotated defaults as a commented INI file (what
 * --dump-config prints and conf/coro-NAME.ini holds). 0, or -1/errno. */
int conf_dump(const struct conf_schema *s, FILE *out);
/* Write the key list as man(7) markup for the NAME.ini(5) page. 0/-1. */
int conf_dump_man(const struct conf_schema *s, FILE *out);

/*
 * Generic setters: parse text for key k into the field at dst (the
 * section's struct + k->offset is computed by the caller). Return NULL on
 * success or a short static-or-thread-local reason ("out of range
 * 1..65535", "not a size (use 64k, 1M, 1G)"). Strings are allocated from
 * `arena` when non-NULL, else with malloc (caller frees). `base_dir`
 * resolves relative paths (may be NULL).
 */
const char *conf_set(const struct conf_key *k, void *dst, const char *text, const char *base_dir,
                     struct conf_arena *arena);

/* Parsers behind the setters, for daemons with their own value syntaxes.
 * 0 or -1 (value unchanged on -1). */
int conf_parse_int(const char *s, int64_t *out);
int conf_parse_size(const char *s, int64_t *out);
int conf_parse_duration(const char *s, int64_t *ms);
int conf_parse_bool(const char *s, int *out);
/* Format a size ("64k") or a duration ("500ms", "2m") exactly. Returns buf. */
char *conf_format_size(int64_t v, char *buf, size_t len);
char *conf_format_duration(int64_t ms, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
