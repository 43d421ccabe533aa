/*
 * test_offload.c - the blocking-call pool (coro/offload.h): calls run on
 * other threads, the worker keeps serving coroutines meanwhile, cancelled
 * callers wait for their call and get ECANCELED, and many calls share the
 * min(8, 2 * workers) threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "coro/chan.h"
#include "coro/offload.h"
#include "unit.h"

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void block_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void record_thread(void *arg)
{
    *(pthread_t *)arg = pthread_self();
}

struct thread_check {
    pthread_t worker, pool;
    int rc;
};

static void body_other_thread(void *arg)
{
    struct thread_check *t = arg;
    t->worker = pthread_self();
    t->rc = coro_offload(record_thread, &t->pool);
}

START_TEST(offload_runs_fn_on_another_thread)
{
    struct thread_check t;
    unit_run(1, body_other_thread, &t);
    ck_assert_int_eq(t.rc, 0);
    ck_assert(!pthread_equal(t.worker, t.pool));
}
END_TEST

START_TEST(offload_outside_a_coroutine_runs_inline)
{
    pthread_t who;
    ck_assert_int_eq(coro_offload(record_thread, &who), 0);
    ck_assert(pthread_equal(who, pthread_self()));
}
END_TEST

/* Two runtimes in a row: the pool stops with the first and starts again. */
START_TEST(offload_pool_restarts_with_a_new_runtime)
{
    struct thread_check a, b;
    unit_run(2, body_other_thread, &a);
    unit_run(2, body_other_thread, &b);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(b.rc, 0);
    ck_assert(!pthread_equal(b.worker, b.pool));
}
END_TEST

struct slow {
    atomic_int done;
    int rc, err;
    uint64_t t_sleep, t_total;
};

static void slow_fn(void *arg)
{
    struct slow *s = arg;
    block_ms(200);
    atomic_store(&s->done, 1);
}

static void slow_caller(void *arg)
{
    struct slow *s = arg;
    s->rc = coro_offload(slow_fn, s);
    s->err = errno;
}

static void body_worker_not_blocked(void *arg)
{
    struct slow *s = arg;
    uint64_t t0 = mono_ms();
    coro_t *c = coro_spawn(slow_caller, s);
    coro_yield();
    ck_assert_int_eq(coro_sleep_ms(50), 0);
    s->t_sleep = mono_ms() - t0;
    ck_assert_int_eq(atomic_load(&s->done), 0);
    ck_assert_int_eq(coro_join(c), 0);
    s->t_total = mono_ms() - t0;
}

START_TEST(worker_runs_other_coroutines_during_a_200ms_offload)
{
    UNIT_SKIP_UNDER_VALGRIND("wall-clock bounds");
    struct slow s = {.rc = -2};
    unit_run(1, body_worker_not_blocked, &s);
    ck_assert_int_eq(s.rc, 0);
    ck_assert_uint_lt(s.t_sleep, 150);
    ck_assert_uint_ge(s.t_total, 200);
}
END_TEST

/* The call tells the main coroutine it has started through a channel
 * (plain threads may send), then blocks for 200 ms. */
struct cancelled_call {
    chan_t *started;
    atomic_int done;
    int done_at_return;
    int rc, err;
};

static void signalling_fn(void *arg)
{
    struct cancelled_call *c = arg;
    int one = 1;
    chan_send(c->started, &one);
    block_ms(200);
    atomic_store(&c->done, 1);
}

static void cancelled_caller(void *arg)
{
    struct cancelled_call *c = arg;
    c->rc = coro_offload(signalling_fn, c);
    c->err = errno;
    c->done_at_return = atomic_load(&c->done);
}

static void body_cancel(void *arg)
{
    struct cancelled_call *c = arg;
    int x;
    c->started = chan_new(sizeof(int), 1);
    coro_t *co = coro_spawn(cancelled_caller, c);
    ck_assert_int_eq(chan_recv(c->started, &x), 0);
    coro_cancel(co);
    ck_assert_int_eq(coro_join(co), -1);
    chan_free(c->started);
}

START_TEST(cancelled_caller_waits_for_fn_then_gets_ecanceled)
{
    struct cancelled_call c = {.rc = -2};
    unit_run(2, body_cancel, &c);
    ck_assert_int_eq(c.rc, -1);
    ck_assert_int_eq(c.err, ECANCELED);
    ck_assert_int_eq(c.done_at_return, 1);
}
END_TEST

static void count_fn(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

struct precancel {
    atomic_int ran;
    int rc, err;
};

static void self_cancelling(void *arg)
{
    struct precancel *p = arg;
    coro_cancel(coro_self());
    p->rc = coro_offload(count_fn, &p->ran);
    p->err = errno;
}

static void body_precancel(void *arg)
{
    coro_join(coro_spawn(self_cancelling, arg));
}

START_TEST(already_cancelled_caller_gets_ecanceled_without_running_fn)
{
    struct precancel p = {.rc = -2};
    unit_run(1, body_precancel, &p);
    ck_assert_int_eq(p.rc, -1);
    ck_assert_int_eq(p.err, ECANCELED);
    ck_assert_int_eq(atomic_load(&p.ran), 0);
}
END_TEST

#define NCALLS 200

struct many {
    atomic_int running, peak, done;
    atomic_int failed;
};

static void concurrent_fn(void *arg)
{
    struct many *m = arg;
    int now = atomic_fetch_add(&m->running, 1) + 1;
    int peak = atomic_load(&m->peak);
    while (now > peak && !atomic_compare_exchange_weak(&m->peak, &peak, now))
        ;
    block_ms(2);
    atomic_fetch_sub(&m->running, 1);
    atomic_fetch_add(&m->done, 1);
}

static void many_caller(void *arg)
{
    struct many *m = arg;
    if (coro_offload(concurrent_fn, m) != 0)
        atomic_fetch_add(&m->failed, 1);
}

static void body_many(void *arg)
{
    coro_t *c[NCALLS];
    for (int i = 0; i < NCALLS; i++)
        c[i] = coro_spawn_on(CORO_WORKER_ANY, many_caller, arg);
    for (int i = 0; i < NCALLS; i++)
        coro_join(c[i]);
}

START_TEST(many_concurrent_offloads_share_2x_workers_threads)
{
    struct many m = {.failed = 0};
    unit_run(2, body_many, &m);
    ck_assert_int_eq(atomic_load(&m.failed), 0);
    ck_assert_int_eq(atomic_load(&m.done), NCALLS);
    ck_assert_int_le(atomic_load(&m.peak), 4); /* min(8, 2 * 2 workers) */
    ck_assert_int_ge(atomic_load(&m.peak), 2);
}
END_TEST

static Suite *offload_suite(void)
{
    Suite *s = suite_create("offload");
    TCase *tc = tcase_create("offload");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, offload_runs_fn_on_another_thread);
    tcase_add_test(tc, offload_outside_a_coroutine_runs_inline);
    tcase_add_test(tc, offload_pool_restarts_with_a_new_runtime);
    tcase_add_test(tc, worker_runs_other_coroutines_during_a_200ms_offload);
    tcase_add_test(tc, cancelled_caller_waits_for_fn_then_gets_ecanceled);
    tcase_add_test(tc, already_cancelled_caller_gets_ecanceled_without_running_fn);
    tcase_add_test(tc, many_concurrent_offloads_share_2x_workers_threads);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(offload_suite)
