/*
 * test_ratelimit.c - token bucket and sliding-window limiters: exact
 * arithmetic at chosen instants (edges of the window, fractional rates),
 * real-time accuracy of coro_ratelimit_acquire in a coroutine, the keyed
 * map's independence and idle eviction, thread safety and cancellation.
 */
#include "config.h"

#include <errno.h>
#include <check.h>
#include <stdio.h>

#include "coro/coro.h"
#include "coro/ratelimit.h"
#include "unit.h"

static coro_ratelimit_t *mk(enum coro_rl_algo a, uint64_t rate, uint64_t interval, uint64_t burst)
{
    struct coro_rl_conf c = {a, rate, interval, burst};
    coro_ratelimit_t *rl = coro_ratelimit_new(&c);
    ck_assert_ptr_nonnull(rl);
    return rl;
}

START_TEST(bucket_starts_full_then_spaces_grants)
{
    /* 10/s, burst 3: three at once, then one every 100 ms exactly. */
    coro_ratelimit_t *rl = mk(CORO_RL_TOKEN_BUCKET, 10, 1000000, 3);
    uint64_t t = 5000000;
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(coro_ratelimit_try(rl, t), 0);
    ck_assert_uint_eq(coro_ratelimit_try(rl, t), 100000);
    ck_assert_uint_eq(coro_ratelimit_wait_us(rl, t + 99999), 1);
    ck_assert_uint_eq(coro_ratelimit_try(rl, t + 100000), 0);
    ck_assert_uint_eq(coro_ratelimit_try(rl, t + 100000), 100000);
    /* After a long idle the bucket holds burst, not more. */
    t += 10000000;
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(coro_ratelimit_try(rl, t), 0);
    ck_assert_uint_gt(coro_ratelimit_try(rl, t), 0);
    coro_ratelimit_free(rl);
}
END_TEST

START_TEST(bucket_fractional_rate_does_not_drift)
{
    /* 3 per second = one every 333333.3 us: over 300 s exactly 900 grants
     * plus the initial burst, though each wait is rounded up to a whole us
     * (a burst of 2 absorbs lateness of up to one interval). */
    coro_ratelimit_t *rl = mk(CORO_RL_TOKEN_BUCKET, 3, 1000000, 2);
    uint64_t t = 0, grants = 0;
    while (t <= 300000000) {
        uint64_t w = coro_ratelimit_try(rl, t);
        if (w == 0)
            grants++;
        else
            t += w;
    }
    ck_assert_uint_eq(grants, 902);
    coro_ratelimit_free(rl);
}
END_TEST

START_TEST(window_exactly_n_pass_n_plus_one_waits)
{
    /* 5 per second, sliding log; grants at 0,100,...,400 ms. */
    coro_ratelimit_t *rl = mk(CORO_RL_SLIDING_WINDOW, 5, 1000000, 0);
    uint64_t t0 = 1000000;
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(coro_ratelimit_try(rl, t0 + i * 100000), 0);
    /* The 6th waits for the oldest stamp to leave: at t0 + 1 s exactly. */
    ck_assert_uint_eq(coro_ratelimit_try(rl, t0 + 500000), 500000);
    ck_assert_uint_eq(coro_ratelimit_try(rl, t0 + 999999), 1);
    ck_assert_uint_eq(coro_ratelimit_try(rl, t0 + 1000000), 0);
    /* Now the window (t0+0.1 s, t0+1 s] is full again until t0 + 1.1 s. */
    ck_assert_uint_eq(coro_ratelimit_try(rl, t0 + 1000000), 100000);
    ck_assert_uint_eq(coro_ratelimit_try(rl, t0 + 1100000), 0);
    coro_ratelimit_free(rl);
}
END_TEST

START_TEST(window_boundary_instant_counts_once)
{
    /* N grants at one instant: all pass; none more until exactly +interval. */
    coro_ratelimit_t *rl = mk(CORO_RL_SLIDING_WINDOW, 4, 60000000, 0);
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(coro_ratelimit_try(rl, 7), 0);
    ck_assert_uint_eq(coro_ratelimit_try(rl, 7), 60000000);
    ck_assert_uint_eq(coro_ratelimit_try(rl, 60000006), 1);
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(coro_ratelimit_try(rl, 60000007), 0);
    ck_assert_uint_gt(coro_ratelimit_try(rl, 60000007), 0);
    coro_ratelimit_free(rl);
}
END_TEST

START_TEST(window_burst_sets_a_shorter_window)
{
    /* 100/s with burst 10: at most 10 in any 100 ms. */
    coro_ratelimit_t *rl = mk(CORO_RL_SLIDING_WINDOW, 100, 1000000, 10);
    for (int i = 0; i < 10; i++)
        ck_assert_uint_eq(coro_ratelimit_try(rl, 0), 0);
    ck_assert_uint_eq(coro_ratelimit_try(rl, 0), 100000);
    coro_ratelimit_free(rl);
}
END_TEST

START_TEST(wait_us_takes_nothing)
{
    coro_ratelimit_t *rl = mk(CORO_RL_SLIDING_WINDOW, 1, 1000, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(coro_ratelimit_wait_us(rl, 0), 0);
    ck_assert_uint_eq(coro_ratelimit_try(rl, 0), 0);
    ck_assert_uint_eq(coro_ratelimit_wait_us(rl, 0), 1000);
    coro_ratelimit_free(rl);
}
END_TEST

START_TEST(new_rejects_bad_conf)
{
    struct coro_rl_conf c = {CORO_RL_TOKEN_BUCKET, 0, 1000000, 0};
    errno = 0;
    ck_assert_ptr_null(coro_ratelimit_new(&c));
    ck_assert_int_eq(errno, EINVAL);
    c = (struct coro_rl_conf){CORO_RL_TOKEN_BUCKET, 1, 0, 0};
    ck_assert_ptr_null(coro_ratelimit_new(&c));
    c = (struct coro_rl_conf){CORO_RL_SLIDING_WINDOW, 1, 1, CORO_RL_MAX_WINDOW_LOG + 1ull};
    ck_assert_ptr_null(coro_ratelimit_new(&c));
}
END_TEST

/* Real time: after the initial burst, `rate` acquires in a loop must take
 * one second within 5%. The runtime's timers fire a few ms late (libevent's
 * coarse clock), and much later on a loaded machine (sanitizer builds next
 * door): the buckets get a burst of 100 ms worth to absorb that, and each
 * sliding window (which loses the lateness once per window) lasts 0.5-1 s. */
struct accuracy {
    enum coro_rl_algo algo;
    uint64_t rate, burst, grants, elapsed_us;
};

static void accuracy_body(void *arg)
{
    struct accuracy *a = arg;
    coro_ratelimit_t *rl = mk(a->algo, a->rate, 1000000, a->burst);
    uint64_t start = coro_ratelimit_now_us();
    /* Spend the initial burst first so the second measures the rate. */
    while (coro_ratelimit_wait_us(rl, start) == 0)
        coro_ratelimit_try(rl, start);
    while (a->grants < a->rate) {
        if (coro_ratelimit_acquire(rl) < 0)
            break;
        a->grants++;
    }
    a->elapsed_us = coro_ratelimit_now_us() - start;
    coro_ratelimit_free(rl);
}

static void check_accuracy(enum coro_rl_algo algo, uint64_t rate, uint64_t burst)
{
    UNIT_SKIP_UNDER_VALGRIND("wall-clock rate");
    struct accuracy a = {algo, rate, burst, 0, 0};
    unit_run(1, accuracy_body, &a);
    double got = (double)a.grants * 1e6 / (double)a.elapsed_us;
    ck_assert_msg(got > rate * 0.95 && got < rate * 1.05, "%s %lu/s burst %lu: got %.1f/s",
                  algo == CORO_RL_TOKEN_BUCKET ? "bucket" : "window", (unsigned long)rate,
                  (unsigned long)burst, got);
}

START_TEST(bucket_acquire_rate_within_5_percent)
{
    check_accuracy(CORO_RL_TOKEN_BUCKET, 200, 20);
    check_accuracy(CORO_RL_TOKEN_BUCKET, 1000, 100);
}
END_TEST

START_TEST(window_acquire_rate_within_5_percent)
{
    check_accuracy(CORO_RL_SLIDING_WINDOW, 500, 250);
    check_accuracy(CORO_RL_SLIDING_WINDOW, 100, 0);
}
END_TEST

/* Cancelling a coroutine parked in acquire ends it with ECANCELED. */
static int cancel_rc, cancel_errno;

static void slow_acquirer(void *arg)
{
    coro_ratelimit_t *rl = arg;
    cancel_rc = coro_ratelimit_acquire(rl);
    cancel_errno = errno;
}

static void cancel_body(void *arg)
{
    coro_ratelimit_t *rl = mk(CORO_RL_TOKEN_BUCKET, 1, 3600000000ull, 1);
    ck_assert_uint_eq(coro_ratelimit_try(rl, coro_ratelimit_now_us()), 0);
    coro_t *c = coro_spawn(slow_acquirer, rl);
    coro_sleep_ms(20);
    coro_cancel(c);
    coro_join(c);
    coro_ratelimit_free(rl);
}

START_TEST(acquire_is_cancellable)
{
    unit_run(1, cancel_body, NULL);
    ck_assert_int_eq(cancel_rc, -1);
    ck_assert_int_eq(cancel_errno, ECANCELED);
}
END_TEST

/* Many coroutines on two workers race for one bucket at a frozen instant:
 * exactly burst grants, never more. */
struct race {
    coro_ratelimit_t *rl;
    int granted[64];
};

static struct race race;

static void racer(void *arg)
{
    intptr_t i = (intptr_t)arg;
    for (int k = 0; k < 1000; k++)
        if (coro_ratelimit_try(race.rl, 42) == 0)
            race.granted[i]++;
}

static void race_body(void *arg)
{
    coro_scope_t s;
    coro_scope_init(&s);
    for (intptr_t i = 0; i < 64; i++)
        coro_scope_spawn(&s, racer, (void *)i);
    coro_scope_wait(&s);
}

START_TEST(concurrent_try_never_overgrants)
{
    race.rl = mk(CORO_RL_TOKEN_BUCKET, 1, 1000000, 500);
    unit_run(2, race_body, NULL);
    int total = 0;
    for (int i = 0; i < 64; i++)
        total += race.granted[i];
    ck_assert_int_eq(total, 500);
    coro_ratelimit_free(race.rl);
}
END_TEST

START_TEST(map_keys_are_independent)
{
    struct coro_rl_conf c = {CORO_RL_TOKEN_BUCKET, 1, 1000000, 2};
    coro_ratelimit_map_t *m = coro_ratelimit_map_new(&c, 0);
    ck_assert_ptr_nonnull(m);
    char key[16];
    for (int k = 0; k < 1000; k++) {
        int n = snprintf(key, sizeof key, "k%d", k);
        ck_assert_uint_eq(coro_ratelimit_map_try(m, key, (size_t)n, 10), 0);
        ck_assert_uint_eq(coro_ratelimit_map_try(m, key, (size_t)n, 10), 0);
        ck_assert_uint_eq(coro_ratelimit_map_try(m, key, (size_t)n, 10), 1000000);
    }
    ck_assert_uint_eq(coro_ratelimit_map_size(m, 10), 1000);
    /* Keys differing only past a NUL are distinct keys. */
    ck_assert_uint_eq(coro_ratelimit_map_try(m, "a\0b", 3, 10), 0);
    ck_assert_uint_eq(coro_ratelimit_map_try(m, "a\0c", 3, 10), 0);
    coro_ratelimit_map_free(m);
}
END_TEST

START_TEST(map_forgets_idle_keys_only_when_refilled)
{
    /* 1/s, burst 2: an emptied bucket is full again after 2 s. */
    struct coro_rl_conf c = {CORO_RL_TOKEN_BUCKET, 1, 1000000, 2};
    coro_ratelimit_map_t *m = coro_ratelimit_map_new(&c, 500000);
    coro_ratelimit_map_try(m, "a", 1, 0);
    coro_ratelimit_map_try(m, "a", 1, 0);
    coro_ratelimit_map_try(m, "b", 1, 0);
    /* At 1.5 s both are idle past idle_us; "b" is full again, "a" is not. */
    ck_assert_uint_eq(coro_ratelimit_map_size(m, 1500000), 1);
    /* "a" kept its state: one token back, not a fresh bucket of two. */
    ck_assert_uint_eq(coro_ratelimit_map_try(m, "a", 1, 1500000), 0);
    ck_assert_uint_eq(coro_ratelimit_map_try(m, "a", 1, 1500000), 500000);
    ck_assert_uint_eq(coro_ratelimit_map_size(m, 10000000), 0);
    coro_ratelimit_map_free(m);
}
END_TEST

START_TEST(map_window_keys_evicted_after_window)
{
    struct coro_rl_conf c = {CORO_RL_SLIDING_WINDOW, 3, 1000000, 0};
    coro_ratelimit_map_t *m = coro_ratelimit_map_new(&c, 0);
    for (int i = 0; i < 4; i++)
        coro_ratelimit_map_try(m, "x", 1, 100);
    ck_assert_uint_eq(coro_ratelimit_map_size(m, 1000099), 1);
    ck_assert_uint_eq(coro_ratelimit_map_size(m, 1000100), 0);
    coro_ratelimit_map_free(m);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("arithmetic");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, bucket_starts_full_then_spaces_grants);
    tcase_add_test(tc, bucket_fractional_rate_does_not_drift);
    tcase_add_test(tc, window_exactly_n_pass_n_plus_one_waits);
    tcase_add_test(tc, window_boundary_instant_counts_once);
    tcase_add_test(tc, window_burst_sets_a_shorter_window);
    tcase_add_test(tc, wait_us_takes_nothing);
    tcase_add_test(tc, new_rejects_bad_conf);
    tcase_add_test(tc, map_keys_are_independent);
    tcase_add_test(tc, map_forgets_idle_keys_only_when_refilled);
    tcase_add_test(tc, map_window_keys_evicted_after_window);
    suite_add_tcase(s, tc);
    tc = tcase_create("runtime");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, bucket_acquire_rate_within_5_percent);
    tcase_add_test(tc, window_acquire_rate_within_5_percent);
    tcase_add_test(tc, acquire_is_cancellable);
    tcase_add_test(tc, concurrent_try_never_overgrants);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
