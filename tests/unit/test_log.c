/*
 * test_log.c - log lines: the <N> priority prefix, strerror appended by the
 * _warn/_error forms, the level filter, one line per event (embedded
 * newlines flattened, long messages cut), errno preserved, fatal exits 1.
 */
#include <check.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "coro/log.h"
#include "unit.h"

static int rfd = -1;

/* Send log lines into a pipe; read back what was written so far. */
static void capture(void)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    rfd = p[0];
    log_set_fd(p[1]);
    log_set_level(LOG_INFO);
}

static const char *captured(void)
{
    static char buf[4096];
    log_msg(LOG_CRIT, 0, "END"); /* marks the end, so the read below never blocks */
    size_t off = 0;
    while (off < sizeof(buf) - 1) {
        ssize_t n = read(rfd, buf + off, sizeof(buf) - 1 - off);
        ck_assert_int_gt(n, 0);
        off += (size_t)n;
        buf[off] = '\0';
        if (off >= 6 && strcmp(buf + off - 6, "<2>END\n") == 0)
            break;
        if (strstr(buf, "<2>END\n"))
            break;
    }
    *strstr(buf, "<2>END\n") = '\0';
    return buf;
}

START_TEST(prefix_and_strerror)
{
    capture();
    log_warnx("listener \"%s\": %d", "mqtt", 7);
    errno = ENOENT;
    log_warn("open %s", "x.pem");
    ck_assert_int_eq(errno, ENOENT);
    errno = EACCES;
    log_error("bind");
    log_errorx("plain");
    log_notice("n");
    log_info("i");
    ck_assert_str_eq(captured(), "<4>listener \"mqtt\": 7\n"
                                 "<4>open x.pem: No such file or directory\n"
                                 "<3>bind: Permission denied\n<3>plain\n<5>n\n<6>i\n");
}
END_TEST

START_TEST(level_filter)
{
    capture();
    log_debug("hidden at info");
    log_set_level(LOG_WARNING);
    ck_assert_int_eq(log_get_level(), LOG_WARNING);
    log_info("hidden");
    log_notice("hidden");
    log_warnx("shown");
    log_set_level(LOG_DEBUG);
    log_debug("dbg");
    ck_assert_str_eq(captured(), "<4>shown\n<7>dbg\n");
}
END_TEST

START_TEST(one_line_per_event)
{
    char big[3000];
    capture();
    log_info("a\nb\r\nc");
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_info("%s", big);
    const char *out = captured();
    ck_assert(strncmp(out, "<6>a b  c\n<6>xxx", 16) == 0);
    const char *second = strchr(out, '\n') + 1;
    size_t len = strlen(second);
    ck_assert_uint_eq(len, LOG_MAX_LINE);
    ck_assert(strcmp(second + len - 4, "...\n") == 0);
}
END_TEST

START_TEST(fatalx_exits_1)
{
    capture();
    fatalx("bad %s", "thing");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, prefix_and_strerror);
    tcase_add_test(tc, level_filter);
    tcase_add_test(tc, one_line_per_event);
    tcase_add_exit_test(tc, fatalx_exits_1, 1);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
