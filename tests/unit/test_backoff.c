/*
 * test_backoff.c - exponential backoff: the un-jittered sequence, the bounds
 * of every jitter mode over many draws, seeded determinism, parsing.
 */
#include "config.h"

#include <errno.h>
#include <check.h>

#include "coro/backoff.h"
#include "unit.h"

#define DRAWS 20000

START_TEST(none_doubles_from_min_to_max)
{
    struct coro_backoff b;
    ck_assert_int_eq(coro_backoff_init(&b, 100, 1000, CORO_JITTER_NONE, 1), 0);
    const uint64_t want[] = {100, 200, 400, 800, 1000, 1000, 1000};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        ck_assert_uint_eq(coro_backoff_next(&b), want[i]);
    coro_backoff_reset(&b);
    ck_assert_uint_eq(coro_backoff_next(&b), 100);
}
END_TEST

START_TEST(ceiling_saturates_without_overflow)
{
    struct coro_backoff b;
    ck_assert_int_eq(coro_backoff_init(&b, 3, UINT64_MAX, CORO_JITTER_NONE, 1), 0);
    ck_assert_uint_eq(coro_backoff_ceiling(&b, 1000), UINT64_MAX);
    for (int i = 0; i < 200; i++)
        ck_assert_uint_ge(coro_backoff_next(&b), 3);
}
END_TEST

/* Every draw of attempt n lies in [lo(exp), exp]; the mean shows the draws
 * are spread (not pinned to a bound). */
static void check_bounds(enum coro_jitter j, double lo_frac, double mean_frac)
{
    struct coro_backoff b;
    ck_assert_int_eq(coro_backoff_init(&b, 10, 5000, j, 42), 0);
    for (unsigned attempt = 0; attempt < 12; attempt++) {
        uint64_t exp = coro_backoff_ceiling(&b, attempt), lo = (uint64_t)(exp * lo_frac + 0.5);
        uint64_t below = 0, above = 0;
        double sum = 0;
        /* Count misses and assert once: ck_assert per draw is slow. */
        for (int i = 0; i < DRAWS; i++) {
            b.attempt = attempt;
            uint64_t d = coro_backoff_next(&b);
            below += d < lo;
            above += d > exp;
            sum += (double)d;
        }
        ck_assert_msg(below == 0 && above == 0, "attempt %u: %lu draws below %lu, %lu above %lu",
                      attempt, (unsigned long)below, (unsigned long)lo, (unsigned long)above,
                      (unsigned long)exp);
        double mean = sum / DRAWS / (double)exp;
        ck_assert_msg(mean > mean_frac - 0.03 && mean < mean_frac + 0.03,
                      "attempt %u: mean %.3f of ceiling, want ~%.2f", attempt, mean, mean_frac);
    }
}

START_TEST(full_jitter_is_uniform_in_zero_to_ceiling)
{
    check_bounds(CORO_JITTER_FULL, 0.0, 0.5);
}
END_TEST

START_TEST(equal_jitter_is_in_half_to_ceiling)
{
    check_bounds(CORO_JITTER_EQUAL, 0.5, 0.75);
}
END_TEST

START_TEST(none_is_exactly_the_ceiling)
{
    check_bounds(CORO_JITTER_NONE, 1.0, 1.0);
}
END_TEST

START_TEST(same_seed_same_sequence)
{
    struct coro_backoff a, b, c;
    coro_backoff_init(&a, 1, 1u << 20, CORO_JITTER_FULL, 7);
    coro_backoff_init(&b, 1, 1u << 20, CORO_JITTER_FULL, 7);
    coro_backoff_init(&c, 1, 1u << 20, CORO_JITTER_FULL, 8);
    int differ = 0;
    for (int i = 0; i < 20; i++) {
        uint64_t x = coro_backoff_next(&a), y = coro_backoff_next(&b);
        ck_assert_uint_eq(x, y);
        differ |= coro_backoff_next(&c) != x;
    }
    ck_assert(differ);
}
END_TEST

START_TEST(init_rejects_bad_bounds)
{
    struct coro_backoff b;
    errno = 0;
    ck_assert_int_eq(coro_backoff_init(&b, 0, 10, CORO_JITTER_FULL, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(coro_backoff_init(&b, 20, 10, CORO_JITTER_FULL, 1), -1);
    ck_assert_int_eq(coro_backoff_init(&b, 1, 10, (enum coro_jitter)9, 1), -1);
    ck_assert_int_eq(coro_backoff_init(&b, 10, 10, CORO_JITTER_EQUAL, 0), 0);
}
END_TEST

START_TEST(parse_jitter_names)
{
    enum coro_jitter j;
    ck_assert_int_eq(coro_backoff_parse_jitter("full", &j), 0);
    ck_assert_int_eq(j, CORO_JITTER_FULL);
    ck_assert_int_eq(coro_backoff_parse_jitter("equal", &j), 0);
    ck_assert_int_eq(j, CORO_JITTER_EQUAL);
    ck_assert_int_eq(coro_backoff_parse_jitter("none", &j), 0);
    ck_assert_int_eq(j, CORO_JITTER_NONE);
    ck_assert_int_eq(coro_backoff_parse_jitter("decorrelated", &j), -1);
    ck_assert_str_eq(coro_backoff_jitter_name(CORO_JITTER_EQUAL), "equal");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("backoff");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, none_doubles_from_min_to_max);
    tcase_add_test(tc, ceiling_saturates_without_overflow);
    tcase_add_test(tc, full_jitter_is_uniform_in_zero_to_ceiling);
    tcase_add_test(tc, equal_jitter_is_in_half_to_ceiling);
    tcase_add_test(tc, none_is_exactly_the_ceiling);
    tcase_add_test(tc, same_seed_same_sequence);
    tcase_add_test(tc, init_rejects_bad_bounds);
    tcase_add_test(tc, parse_jitter_names);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
