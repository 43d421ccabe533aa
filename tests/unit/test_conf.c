/*
 * test_conf.c - the config loader: every value type (valid, invalid, out
 * of range) with the exact `FILE:LINE: [section] key: reason` message,
 * all errors of a file reported, unknown sections and keys, required keys,
 * named sections, includes (errors inside them, loops), over-long lines,
 * and the generated defaults loading back.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coro/conf.h"
#include "unit.h"

struct t_main {
    int port;
    size_t buf;
    int64_t timeout_ms;
    int flag;
    int mode;
    char *name;
    char *dir;
    struct coro_addr addr;
    struct conf_addr_list peers;
};

struct t_listener {
    struct coro_addr listen;
    int backlog;
    int anonymous;
};

struct t_conf {
    struct t_main main;
    struct conf_list listeners;
};

static const struct conf_enum modes[] = {{"fast", 1}, {"slow", 2}, {NULL, 0}};

#define M(member) CONF_FIELD(struct t_main, member)
static const struct conf_key main_keys[] = {
    {"port", CONF_INT, M(port), "1883", 1, 65535, NULL, 0, "a port", NULL},
    {"buf", CONF_SIZE, M(buf), "64k", 1024, 1024 * 1024 * 1024, NULL, 0, "a buffer", NULL},
    {"timeout", CONF_DURATION, M(timeout_ms), "5s", 1, 3600000, NULL, 0, "a timeout", NULL},
    {"flag", CONF_BOOL, M(flag), "no", 0, 0, NULL, 0, "a flag", NULL},
    {"mode", CONF_ENUM, M(mode), "fast", 0, 0, modes, 0, "a mode", NULL},
    {"name", CONF_STRING, M(name), NULL, 0, 0, NULL, 0, "a name", NULL},
    {"dir", CONF_PATH, M(dir), "/var/lib/t", 0, 0, NULL, 0, "a dir", NULL},
    {"addr", CONF_ADDR, M(addr), "127.0.0.1:80", 0, 0, NULL, 0, "an address", NULL},
    {"peers", CONF_ADDR_LIST, M(peers), "", 0, 0, NULL, 0, "peers", NULL},
    {0},
};

#define L(member) CONF_FIELD(struct t_listener, member)
static const struct conf_key listener_keys[] = {
    {"listen", CONF_ADDR, L(listen), NULL, 0, 0, NULL, CONF_REQUIRED, "where", "127.0.0.1:1883"},
    {"backlog", CONF_INT, L(backlog), "128", 1, 65535, NULL, 0, "backlog", NULL},
    {"anonymous", CONF_BOOL, L(anonymous), "yes", 0, 0, NULL, 0, "anonymous", NULL},
    {0},
};

static const struct conf_section sections[] = {
    {"main", 0, offsetof(struct t_conf, main), 0, main_keys, "main things", NULL},
    {"listener", CONF_NAMED, offsetof(struct t_conf, listeners), sizeof(struct t_listener),
     listener_keys, "listeners", "default"},
    {0},
};

static const struct conf_schema schema = {"test", sizeof(struct t_conf), sections,
                                          "127.0.0.1:0"};

/* Each test runs in its own forked child: give it a fresh directory. */
static void in_tmpdir(void)
{
    static int done;
    char tmpl[] = "/tmp/test_conf.XXXXXX";
    if (done++)
        return;
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    ck_assert_int_eq(chdir(tmpl), 0);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static conf_t *load(const char *text)
{
    in_tmpdir();
    write_file("t.ini", text);
    conf_t *c = conf_load(&schema, "t.ini");
    ck_assert_ptr_nonnull(c);
    return c;
}

/* The file must produce exactly one error, `want`. */
static void expect_one(const char *text, const char *want)
{
    conf_t *c = load(text);
    ck_assert_msg(c->nerrors == 1, "%zu errors for %s (first: %s)", c->nerrors, want,
                  c->nerrors ? c->errors[0] : "none");
    ck_assert_str_eq(c->errors[0], want);
    conf_free(c);
}

#define D(c) ((struct t_conf *)(c)->data)

START_TEST(every_type_parses)
{
    conf_t *c = load("[main]\nport = 8080\nbuf = 2M\ntimeout = 500ms\nflag = on\n"
                     "mode = slow\nname = hello world\ndir = data\naddr = [::1]:99\n"
                     "peers = 127.0.0.1:1, 127.0.0.2:2 unix:/x\n");
    ck_assert_uint_eq(c->nerrors, 0);
    struct t_main *m = &D(c)->main;
    ck_assert_int_eq(m->port, 8080);
    ck_assert_uint_eq(m->buf, 2 * 1024 * 1024);
    ck_assert_int_eq(m->timeout_ms, 500);
    ck_assert_int_eq(m->flag, 1);
    ck_assert_int_eq(m->mode, 2);
    ck_assert_str_eq(m->name, "hello world");
    ck_assert_str_eq(m->dir, "data"); /* relative to the file's dir: "t.ini" has none */
    char buf[CORO_ADDR_STRLEN];
    ck_assert_str_eq(coro_addr_format(&m->addr, buf, sizeof(buf)), "[::1]:99");
    ck_assert_uint_eq(m->peers.n, 3);
    ck_assert_str_eq(coro_addr_format(&m->peers.v[1], buf, sizeof(buf)), "127.0.0.2:2");
    ck_assert_str_eq(coro_addr_format(&m->peers.v[2], buf, sizeof(buf)), "unix:/x");
    conf_free(c);
}
END_TEST

START_TEST(defaults_apply)
{
    conf_t *c = load("; nothing but a comment\n");
    ck_assert_uint_eq(c->nerrors, 0);
    struct t_main *m = &D(c)->main;
    ck_assert_int_eq(m->port, 1883);
    ck_assert_uint_eq(m->buf, 65536);
    ck_assert_int_eq(m->timeout_ms, 5000);
    ck_assert_int_eq(m->mode, 1);
    ck_assert_ptr_null(m->name);
    ck_assert_str_eq(m->dir, "/var/lib/t");
    ck_assert_uint_eq(m->peers.n, 0);
    ck_assert_int_eq(coro_addr_port(&c->common.admin_listen), 0);
    ck_assert_uint_ne(c->common.admin_listen.len, 0);
    ck_assert_int_eq(c->common.log_level, LOG_INFO);
    ck_assert_int_eq(c->common.shutdown_timeout_ms, 10000);
    ck_assert_uint_ge(c->common.runtime.workers, 1); /* 0 = one per CPU */
    ck_assert_uint_eq(c->common.runtime.stack_size, 65536);
    ck_assert_uint_eq(D(c)->listeners.n, 0);
    conf_free(c);
}
END_TEST

START_TEST(path_relative_to_file)
{
    in_tmpdir();
    ck_assert_int_eq(mkdir("etc", 0700), 0);
    write_file("etc/t.ini", "[main]\ndir = state\n");
    conf_t *c = conf_load(&schema, "etc/t.ini");
    ck_assert_uint_eq(c->nerrors, 0);
    ck_assert_str_eq(D(c)->main.dir, "etc/state");
    conf_free(c);
}
END_TEST

START_TEST(bad_int)
{
    expect_one("[main]\nport = abc\n", "t.ini:2: [main] port: not an integer");
    expect_one("[main]\nport = 70000\n", "t.ini:2: [main] port: out of range 1..65535");
    expect_one("[main]\n\nport = 0\n", "t.ini:3: [main] port: out of range 1..65535");
    expect_one("[main]\nport =\n", "t.ini:2: [main] port: empty value");
}
END_TEST

START_TEST(bad_size)
{
    expect_one("[main]\nbuf = 12x\n",
               "t.ini:2: [main] buf: not a size (use a number with an optional k, M or G: 64k, "
               "1M)");
    expect_one("[main]\nbuf = 2G\n", "t.ini:2: [main] buf: out of range 1k..1G");
    expect_one("[main]\nbuf = -5\n",
               "t.ini:2: [main] buf: not a size (use a number with an optional k, M or G: 64k, "
               "1M)");
}
END_TEST

START_TEST(bad_duration)
{
    const char *why = "not a duration (use ms, s, m or h: 500ms, 5s, 2m, 1h)";
    char want[200];
    snprintf(want, sizeof(want), "t.ini:2: [main] timeout: %s", why);
    expect_one("[main]\ntimeout = 5d\n", want);
    expect_one("[main]\ntimeout = 5 s\n", want);
    expect_one("[main]\ntimeout = 2h\n", "t.ini:2: [main] timeout: out of range 1ms..1h");
    conf_t *c = load("[main]\ntimeout = 2m\n");
    ck_assert_int_eq(D(c)->main.timeout_ms, 120000);
    conf_free(c);
}
END_TEST

START_TEST(bad_bool_enum)
{
    expect_one("[main]\nflag = maybe\n",
               "t.ini:2: [main] flag: not a boolean (use yes/no, true/false, on/off, 1/0)");
    expect_one("[main]\nmode = medium\n", "t.ini:2: [main] mode: must be one of fast, slow");
}
END_TEST

START_TEST(bad_address)
{
    expect_one("[main]\naddr = 127.0.0.1:99999\n",
               "t.ini:2: [main] addr: port out of range 0..65535");
    expect_one("[main]\npeers = 127.0.0.1:1, 127.0.0.1\n",
               "t.ini:2: [main] peers: \"127.0.0.1\": missing port");
}
END_TEST

START_TEST(every_error_reported)
{
    conf_t *c = load("[main]\nport = x\nbuf = 1\n[nope]\nkey = 1\n[main]\nmode = z\nwhat = 1\n"
                     "port = 5\n");
    ck_assert_uint_eq(c->nerrors, 6);
    ck_assert_str_eq(c->errors[0], "t.ini:2: [main] port: not an integer");
    ck_assert_str_eq(c->errors[1], "t.ini:3: [main] buf: out of range 1k..1G");
    ck_assert_str_eq(c->errors[2], "t.ini:4: [nope]: unknown section");
    ck_assert_str_eq(c->errors[3], "t.ini:7: [main] mode: must be one of fast, slow");
    ck_assert_str_eq(c->errors[4], "t.ini:8: [main] what: unknown key");
    ck_assert_str_eq(c->errors[5], "t.ini:9: [main] port: duplicate key (first set at t.ini:2)");
    conf_free(c);
}
END_TEST

START_TEST(syntax_errors)
{
    conf_t *c = load("top = 1\n[main\njust words\n[main]\n  port = 10 ; comment\n");
    ck_assert_uint_eq(c->nerrors, 3);
    ck_assert_str_eq(c->errors[0], "t.ini:1: top: key outside any section");
    ck_assert_str_eq(c->errors[1], "t.ini:2: syntax error: missing ']'");
    ck_assert_str_eq(c->errors[2],
                     "t.ini:3: syntax error: expected \"key = value\" or \"[section]\"");
    ck_assert_int_eq(D(c)->main.port, 10);
    conf_free(c);
}
END_TEST

START_TEST(named_sections)
{
    conf_t *c = load("[listener.a]\nlisten = 127.0.0.1:1\n[listener.b-2]\nlisten = [::1]:2\n"
                     "backlog = 7\n[listener.a]\nanonymous = no\n");
    ck_assert_uint_eq(c->nerrors, 0);
    struct conf_list *l = &D(c)->listeners;
    ck_assert_uint_eq(l->n, 2);
    ck_assert_str_eq(l->names[0], "a");
    ck_assert_str_eq(l->names[1], "b-2");
    struct t_listener *a = CONF_LIST_AT(l, struct t_listener, 0);
    struct t_listener *b = CONF_LIST_AT(l, struct t_listener, 1);
    ck_assert_int_eq(coro_addr_port(&a->listen), 1);
    ck_assert_int_eq(a->backlog, 128);
    ck_assert_int_eq(a->anonymous, 0);
    ck_assert_int_eq(b->backlog, 7);
    ck_assert_int_eq(b->anonymous, 1);
    conf_free(c);
}
END_TEST

START_TEST(named_section_errors)
{
    conf_t *c = load("[listener.a]\nbacklog = 1\n[listener]\nlisten = 127.0.0.1:1\n"
                     "[listener.a b]\n[main.x]\n");
    ck_assert_uint_eq(c->nerrors, 4);
    ck_assert_str_eq(c->errors[0], "t.ini:3: [listener]: needs an instance name of letters, "
                                   "digits, '_' or '-': [listener.NAME]");
    ck_assert_str_eq(c->errors[1], "t.ini:5: [listener.a b]: needs an instance name of letters, "
                                   "digits, '_' or '-': [listener.NAME]");
    ck_assert_str_eq(c->errors[2], "t.ini:6: [main.x]: unknown section ([main] takes no name)");
    ck_assert_str_eq(c->errors[3], "t.ini:1: [listener.a] listen: missing required key");
    conf_free(c);
}
END_TEST

START_TEST(include_errors_point_into_included_file)
{
    in_tmpdir();
    ck_assert_int_eq(mkdir("d", 0700), 0);
    write_file("t.ini", "[main]\ninclude = d/*.ini\nname = main\n[listener.x]\n"
                        "include = d/x.part\n");
    write_file("d/10-a.ini", "port = 99\n\nbuf = huge\n[listener.y]\nlisten = 127.0.0.1:5\n");
    write_file("d/20-b.ini", "[main]\nflag = yes\n");
    write_file("d/x.part", "listen = 127.0.0.1:6\nbacklog = 0\n");
    conf_t *c = conf_load(&schema, "t.ini");
    ck_assert_uint_eq(c->nerrors, 2);
    ck_assert_str_eq(c->errors[0], "d/10-a.ini:3: [main] buf: not a size (use a number with an "
                                   "optional k, M or G: 64k, 1M)");
    ck_assert_str_eq(c->errors[1], "d/x.part:2: [listener.x] backlog: out of range 1..65535");
    /* keys before an included file's first header belong to the including section */
    ck_assert_int_eq(D(c)->main.port, 99);
    ck_assert_int_eq(D(c)->main.flag, 1);
    ck_assert_str_eq(D(c)->main.name, "main");
    ck_assert_uint_eq(D(c)->listeners.n, 2);
    ck_assert_str_eq(D(c)->listeners.names[0], "y");
    ck_assert_str_eq(D(c)->listeners.names[1], "x");
    conf_free(c);
}
END_TEST

START_TEST(include_missing_and_loop)
{
    in_tmpdir();
    write_file("t.ini", "include = none/*.ini\ninclude = missing.ini\ninclude = b.ini\n");
    write_file("b.ini", "[main]\ninclude = t.ini\n");
    conf_t *c = conf_load(&schema, "t.ini");
    ck_assert_uint_eq(c->nerrors, 2);
    ck_assert_str_eq(c->errors[0], "t.ini:2: include: missing.ini: No such file or directory");
    ck_assert_str_eq(c->errors[1], "b.ini:2: [main] include: t.ini: include loop (already being "
                                   "read)");
    conf_free(c);
}
END_TEST

START_TEST(long_line_rejected)
{
    char text[600];
    char pad[301];
    memset(pad, 'x', 300);
    pad[300] = '\0';
    snprintf(text, sizeof(text), "[main]\nname = %s\nport = 7\nmode = bad\n", pad);
    conf_t *c = load(text);
    ck_assert_uint_eq(c->nerrors, 2);
    ck_assert_str_eq(c->errors[0], "t.ini:2: line too long (307 bytes, at most 197)");
    ck_assert_str_eq(c->errors[1], "t.ini:4: [main] mode: must be one of fast, slow");
    ck_assert_int_eq(D(c)->main.port, 7);
    conf_free(c);
    /* exactly at the limit is fine */
    memset(pad, 'x', 190);
    pad[190] = '\0';
    snprintf(text, sizeof(text), "[main]\nname = %s\n", pad);
    c = load(text);
    ck_assert_uint_eq(c->nerrors, 0);
    ck_assert_uint_eq(strlen(D(c)->main.name), 190);
    conf_free(c);
}
END_TEST

START_TEST(missing_file_and_common_sections)
{
    in_tmpdir();
    conf_t *c = conf_load(&schema, "absent.ini");
    ck_assert_uint_eq(c->nerrors, 1);
    ck_assert_str_eq(c->errors[0], "absent.ini: cannot open: No such file or directory");
    conf_free(c);
    c = load("[runtime]\nworkers = 2\nstack_size = 1M\n[log]\nlevel = debug\n[admin]\nlisten =\n");
    ck_assert_uint_eq(c->nerrors, 0);
    ck_assert_uint_eq(c->common.runtime.workers, 2);
    ck_assert_uint_eq(c->common.runtime.stack_size, 1024 * 1024);
    ck_assert_int_eq(c->common.log_level, LOG_DEBUG);
    ck_assert_uint_eq(c->common.admin_listen.len, 0);
    conf_free(c);
    expect_one("[runtime]\nstack_size = 4k\n",
               "t.ini:2: [runtime] stack_size: out of range 16k..1G");
    expect_one("[log]\nlevel = loud\n",
               "t.ini:2: [log] level: must be one of debug, info, notice, warning, err");
}
END_TEST

START_TEST(dump_loads_back)
{
    in_tmpdir();
    FILE *f = fopen("dump.ini", "w");
    ck_assert_int_eq(conf_dump(&schema, f), 0);
    fclose(f);
    conf_t *c = conf_load(&schema, "dump.ini");
    ck_assert_msg(c->nerrors == 0, "%s", c->nerrors ? c->errors[0] : "");
    ck_assert_int_eq(D(c)->main.port, 1883);
    ck_assert_uint_eq(D(c)->listeners.n, 1); /* the example instance */
    ck_assert_str_eq(D(c)->listeners.names[0], "default");
    conf_free(c);
    /* every key is documented with its type */
    f = fopen("dump.ini", "r");
    char line[256];
    int found = 0;
    while (fgets(line, sizeof(line), f))
        found += strcmp(line, "# a port (integer 1..65535)\n") == 0 ||
                 strcmp(line, "# a timeout (duration 1ms..1h)\n") == 0 ||
                 strcmp(line, "# where (address, required)\n") == 0;
    fclose(f);
    ck_assert_int_eq(found, 3);
    f = fopen("man.txt", "w");
    ck_assert_int_eq(conf_dump_man(&schema, f), 0);
    fclose(f);
}
END_TEST

START_TEST(setters_and_formatters)
{
    int64_t v;
    char buf[32];
    ck_assert_int_eq(conf_parse_size("1G", &v), 0);
    ck_assert_int_eq(v, 1LL << 30);
    ck_assert_int_eq(conf_parse_size("99999999999999999999", &v), -1);
    ck_assert_int_eq(conf_parse_duration("1h", &v), 0);
    ck_assert_int_eq(v, 3600000);
    ck_assert_str_eq(conf_format_size(65536, buf, sizeof(buf)), "64k");
    ck_assert_str_eq(conf_format_size(1000, buf, sizeof(buf)), "1000");
    ck_assert_str_eq(conf_format_duration(90000, buf, sizeof(buf)), "90s");
    ck_assert_str_eq(conf_format_duration(1500, buf, sizeof(buf)), "1500ms");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("conf");
    tcase_add_test(tc, every_type_parses);
    tcase_add_test(tc, defaults_apply);
    tcase_add_test(tc, path_relative_to_file);
    tcase_add_test(tc, bad_int);
    tcase_add_test(tc, bad_size);
    tcase_add_test(tc, bad_duration);
    tcase_add_test(tc, bad_bool_enum);
    tcase_add_test(tc, bad_address);
    tcase_add_test(tc, every_error_reported);
    tcase_add_test(tc, syntax_errors);
    tcase_add_test(tc, named_sections);
    tcase_add_test(tc, named_section_errors);
    tcase_add_test(tc, include_errors_point_into_included_file);
    tcase_add_test(tc, include_missing_and_loop);
    tcase_add_test(tc, long_line_rejected);
    tcase_add_test(tc, missing_file_and_common_sections);
    tcase_add_test(tc, dump_loads_back);
    tcase_add_test(tc, setters_and_formatters);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
