/*
 * test_coro.c - the coroutine lifecycle and the scheduler: coro_run, spawn,
 * join, detach, yield, sleep, cancellation, scopes, stealing, spawning from
 * plain threads, configuration checks and loud misuse.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "coro/coro.h"
#include "unit.h"

static uint64_t now_ms(void)
{
    return coro_now_ms();
}

/* ---- coro_run and config -------------------------------------------------- */

static int ran;
static void set_ran(void *arg) { ran = *(int *)arg; }

START_TEST(run_returns_after_main)
{
    int v = 42;
    ran = 0;
    unit_run(2, set_ran, &v);
    ck_assert_int_eq(ran, 42);
}
END_TEST

static atomic_int detached_done;
static void detached_child(void *arg)
{
    coro_sleep_ms(30);
    atomic_fetch_add(&detached_done, 1);
}
static void spawn_detached(void *arg)
{
    for (int i = 0; i < 10; i++)
        coro_detach(coro_spawn(detached_child, NULL));
}

START_TEST(run_waits_for_detached_coroutines)
{
    atomic_store(&detached_done, 0);
    unit_run(2, spawn_detached, NULL);
    ck_assert_int_eq(atomic_load(&detached_done), 10);
}
END_TEST

START_TEST(config_rejects_bad_values)
{
    struct coro_config cfg;
    coro_config_default(&cfg);
    ck_assert_ptr_null(coro_config_check(&cfg));
    cfg.workers = 0;
    ck_assert_ptr_nonnull(strstr(coro_config_check(&cfg), "workers"));
    errno = 0;
    ck_assert_int_eq(coro_run(&cfg, set_ran, NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    coro_config_default(&cfg);
    cfg.stack_size = 8192;
    ck_assert_ptr_nonnull(strstr(coro_config_check(&cfg), "stack_size"));
    cfg.stack_size = (size_t)1 << 40;
    ck_assert_ptr_nonnull(strstr(coro_config_check(&cfg), "stack_size"));
    ck_assert_int_eq(coro_run(&cfg, set_ran, NULL), -1);
    coro_config_default(&cfg);
    cfg.workers = 100000;
    ck_assert_ptr_nonnull(coro_config_check(&cfg));
}
END_TEST

static int nested_result = -1;
static void nested(void *arg)
{
    int dummy = 0;
    nested_result = coro_run(NULL, set_ran, &dummy) == -1 && errno == EBUSY;
}

START_TEST(run_inside_run_is_ebusy)
{
    unit_run(1, nested, NULL);
    ck_assert_int_eq(nested_result, 1);
}
END_TEST

/* ---- spawn / join / yield ------------------------------------------------- */

static void add_one(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

static void join_many(void *arg)
{
    atomic_int n = 0;
    coro_t *cs[100];
    for (int i = 0; i < 100; i++)
        cs[i] = coro_spawn(add_one, &n);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(coro_join(cs[i]), 0);
    ck_assert_int_eq(atomic_load(&n), 100);
}

START_TEST(join_waits_for_each)
{
    unit_run(2, join_many, NULL);
}
END_TEST

static char trace[64];
static int trace_len;
static void yielder(void *arg)
{
    for (int i = 0; i < 3; i++) {
        trace[trace_len++] = *(char *)arg;
        coro_yield();
    }
}
static void yield_main(void *arg)
{
    coro_t *a = coro_spawn(yielder, "a"), *b = coro_spawn(yielder, "b");
    coro_join(a);
    coro_join(b);
}

START_TEST(yield_alternates)
{
    trace_len = 0;
    unit_run(1, yield_main, NULL);
    trace[trace_len] = 0;
    /* both ran three times, interleaved: never three in a row of one */
    ck_assert_int_eq(trace_len, 6);
    ck_assert_ptr_null(strstr(trace, "aaa"));
    ck_assert_ptr_null(strstr(trace, "bbb"));
}
END_TEST

static void nothing(void *arg) { (void)arg; }
static void million(void *arg)
{
    for (int i = 0; i < 1000000; i++)
        ck_assert_int_eq(coro_join(coro_spawn(nothing, NULL)), 0);
    struct coro_stats st;
    coro_stats_get(&st);
    /* stacks come from the pool: a handful mapped, not a million */
    ck_assert_uint_lt(st.stacks_mapped, 64);
}

START_TEST(million_spawn_join)
{
    unit_run(1, million, NULL);
}
END_TEST

static atomic_int where[2];
static void record_worker(void *arg)
{
    int i = coro_worker_index();
    if (i >= 0 && i < 2)
        atomic_fetch_add(&where[i], 1);
}
static void spawn_on_main(void *arg)
{
    coro_t *c = coro_spawn_on(1, record_worker, NULL);
    ck_assert_int_eq(coro_join(c), 0);
    ck_assert_ptr_null(coro_spawn_on(7, record_worker, NULL));
    ck_assert_int_eq(errno, EINVAL);
}

START_TEST(spawn_on_runs_on_that_worker)
{
    atomic_store(&where[0], 0);
    atomic_store(&where[1], 0);
    unit_run(2, spawn_on_main, NULL);
    ck_assert_int_eq(atomic_load(&where[1]), 1);
    ck_assert_int_eq(atomic_load(&where[0]), 0);
}
END_TEST

static volatile uint64_t sink;
static volatile uint64_t *arg_sink = &sink;
static void busy(void *arg)
{
    record_worker(NULL);
    volatile uint64_t x = 0;
    for (int i = 0; i < 2000000; i++)
        x = x + (uint64_t)i;
    *(volatile uint64_t *)arg_sink = x;
}
static uint64_t steals;
static void steal_main(void *arg)
{
    coro_t *cs[64];
    for (int i = 0; i < 64; i++)
        cs[i] = coro_spawn(busy, NULL);
    /* main stays busy too, so worker 1 can only get work by stealing */
    busy(NULL);
    for (int i = 0; i < 64; i++)
        coro_join(cs[i]);
    struct coro_stats st;
    coro_stats_get(&st);
    steals = st.steals;
}

START_TEST(idle_worker_steals_unstarted)
{
    atomic_store(&where[0], 0);
    atomic_store(&where[1], 0);
    unit_run(2, steal_main, NULL);
    ck_assert_uint_gt(steals, 0);
    ck_assert_int_gt(atomic_load(&where[1]), 0);
    ck_assert_int_eq(atomic_load(&where[0]) + atomic_load(&where[1]), 65);
}
END_TEST

/* Structs recycled with their stack (local joins keep the ended frame for
 * the next spawn on that worker) must start cleanly on another worker:
 * spawned onto it, or stolen. Each run checks it stays on one worker
 * across switches and that its own handle is current. */
static atomic_int recycled_ran, recycled_bad;
static void recycled_check(void *arg)
{
    coro_t *self = coro_self();
    int w = coro_worker_index();
    if (arg && w != 1)
        atomic_fetch_add(&recycled_bad, 1);
    for (int i = 0; i < 3; i++) {
        coro_yield();
        if (coro_worker_index() != w || coro_self() != self)
            atomic_fetch_add(&recycled_bad, 1);
    }
    volatile uint64_t x = 0;
    for (int i = 0; i < 20000; i++)
        x = x + (uint64_t)i;
    atomic_fetch_add(&recycled_ran, 1);
}
static atomic_int detached_done;
static void detached_end(void *arg)
{
    atomic_fetch_add(&detached_done, 1);
}
static void recycled_main(void *arg)
{
    coro_t *cs[64];
    for (int round = 0; round < 20; round++) {
        /* Detached ones leave their ended frames on pooled stacks, which
         * the next spawns here take (with fresh structs: the cache is
         * drained by the 64 spawned below). */
        atomic_store(&detached_done, 0);
        for (int i = 0; i < 100; i++)
            coro_detach(coro_spawn_on(0, detached_end, NULL));
        while (atomic_load(&detached_done) < 100)
            coro_yield();
        for (int i = 0; i < 100; i++)
            ck_assert_int_eq(coro_join(coro_spawn(nothing, NULL)), 0);
        for (int i = 0; i < 64; i++)
            ck_assert_ptr_nonnull(cs[i] = coro_spawn_on(1, recycled_check, cs));
        for (int i = 0; i < 64; i++)
            ck_assert_int_eq(coro_join(cs[i]), 0);
        for (int i = 0; i < 100; i++)
            ck_assert_int_eq(coro_join(coro_spawn(nothing, NULL)), 0);
        for (int i = 0; i < 64; i++)
            ck_assert_ptr_nonnull(cs[i] = coro_spawn(recycled_check, NULL));
        volatile uint64_t x = 0; /* busy: worker 1 can only steal */
        for (int i = 0; i < 2000000; i++)
            x = x + (uint64_t)i;
        for (int i = 0; i < 64; i++)
            ck_assert_int_eq(coro_join(cs[i]), 0);
    }
}

START_TEST(recycled_structs_start_on_any_worker)
{
    atomic_store(&recycled_ran, 0);
    atomic_store(&recycled_bad, 0);
    unit_run(2, recycled_main, NULL);
    ck_assert_int_eq(atomic_load(&recycled_ran), 20 * 128);
    ck_assert_int_eq(atomic_load(&recycled_bad), 0);
}
END_TEST

/* No memory for a stack: a spawn onto another worker reports ENOMEM,
 * either at once (the spawner maps the stack) or through coro_join (that
 * worker maps it when the coroutine arrives, and it never runs). */
static atomic_int nomem_ran;
static void nomem_body(void *arg)
{
    atomic_fetch_add(&nomem_ran, 1);
}
static void nomem_main(void *arg)
{
    int *outcome = arg;
    struct rlimit old, lim;
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    lim = old;
    lim.rlim_cur = pages * (unsigned long)sysconf(_SC_PAGESIZE) + 16 * 1024;
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);
    /* qemu-user, for one, does not enforce the guest's RLIMIT_AS */
    void *probe = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe != MAP_FAILED) {
        munmap(probe, 1 << 20);
        setrlimit(RLIMIT_AS, &old);
        *outcome = -2;
        return;
    }
    coro_t *c = coro_spawn_on(1, nomem_body, NULL);
    int e = errno, rc = c ? coro_join(c) : -1;
    e = c ? errno : e;
    setrlimit(RLIMIT_AS, &old);
    *outcome = rc == -1 && e == ENOMEM ? (c ? 2 : 1) : 0;
}

START_TEST(spawn_without_memory_for_a_stack_is_enomem)
{
#if defined(__SANITIZE_ADDRESS__)
    fprintf(stderr, "%s: not checked under ASan (its shadow memory needs RLIMIT_AS)\n", __func__);
    return;
#endif
    UNIT_SKIP_UNDER_VALGRIND("RLIMIT_AS");
    struct coro_config cfg;
    int outcome = -1;
    coro_config_default(&cfg);
    cfg.workers = 2;
    cfg.pool_capacity = 0; /* every stack is mapped when needed */
    atomic_store(&nomem_ran, 0);
    ck_assert_int_eq(coro_run(&cfg, nomem_main, &outcome), 0);
    if (outcome == -2) {
        fprintf(stderr, "%s: not checked: RLIMIT_AS is not enforced here\n", __func__);
        return;
    }
    ck_assert_int_gt(outcome, 0);
    ck_assert_int_eq(atomic_load(&nomem_ran), 0);
}
END_TEST

static atomic_int from_thread;
static void *plain_thread(void *arg)
{
    for (int i = 0; i < 100; i++)
        coro_detach(coro_spawn(add_one, &from_thread));
    return NULL;
}
static void thread_main(void *arg)
{
    pthread_t t;
    pthread_create(&t, NULL, plain_thread, NULL);
    /* keep the runtime alive until the thread has spawned everything */
    while (atomic_load(&from_thread) < 100)
        coro_sleep_ms(1);
    pthread_join(t, NULL);
}

START_TEST(spawn_from_plain_thread)
{
    atomic_store(&from_thread, 0);
    unit_run(2, thread_main, NULL);
    ck_assert_int_eq(atomic_load(&from_thread), 100);
}
END_TEST

START_TEST(spawn_without_runtime_is_esrch)
{
    errno = 0;
    ck_assert_ptr_null(coro_spawn(nothing, NULL));
    ck_assert_int_eq(errno, ESRCH);
}
END_TEST

/* ---- sleep, timers ---------------------------------------------------------- */

static void sleep_accuracy(void *arg)
{
    uint64_t t0 = now_ms();
    ck_assert_int_eq(coro_sleep_ms(50), 0);
    uint64_t dt = now_ms() - t0;
    ck_assert_uint_ge(dt, 50);
    ck_assert_uint_lt(dt, 150);
}

START_TEST(sleep_is_accurate)
{
    unit_run(2, sleep_accuracy, NULL);
}
END_TEST

static atomic_int woke;
static uint64_t wake_at;
static void sleeper(void *arg)
{
    uint64_t now = now_ms();
    if (coro_sleep_ms(wake_at > now ? wake_at - now : 1) == 0)
        atomic_fetch_add(&woke, 1);
}
static void hundred_k(void *arg)
{
    /* One worker: all 100,000 are queued before any starts, then each
     * parks on its own timer until a common instant, however slow the
     * machine (sanitizers, valgrind, qemu) is at spawning them. */
    for (int i = 0; i < 100000; i++)
        coro_detach(coro_spawn(sleeper, NULL));
    wake_at = now_ms() + 300;
    struct coro_stats st;
    coro_stats_get(&st);
    ck_assert_uint_ge(st.alive, 100001);
    uint64_t t0 = now_ms();
    while (atomic_load(&woke) < 100000 && now_ms() - t0 < 60000)
        coro_sleep_ms(20);
}

START_TEST(hundred_thousand_parked_woken_by_timers)
{
    atomic_store(&woke, 0);
    unit_run(1, hundred_k, NULL);
    ck_assert_int_eq(atomic_load(&woke), 100000);
}
END_TEST

/* ---- cancellation --------------------------------------------------------- */

static void long_sleep(void *arg)
{
    int *res = arg;
    errno = 0;
    int r = coro_sleep_ms(60000);
    *res = r == -1 && errno == ECANCELED;
}
static void cancel_main(void *arg)
{
    int res[3] = { 0, 0, 0 };
    uint64_t t0 = now_ms();
    /* parked on the same worker */
    coro_t *a = coro_spawn_on(0, long_sleep, &res[0]);
    /* parked on another worker */
    coro_t *b = coro_spawn_on(1, long_sleep, &res[1]);
    /* cancelled before it ever ran */
    coro_t *c = coro_spawn(long_sleep, &res[2]);
    coro_cancel(c);
    coro_sleep_ms(20);
    coro_cancel(a);
    coro_cancel(b);
    coro_cancel(b); /* idempotent */
    ck_assert_int_eq(coro_join(a), -1);
    ck_assert_int_eq(errno, ECANCELED);
    ck_assert_int_eq(coro_join(b), -1);
    ck_assert_int_eq(coro_join(c), -1);
    ck_assert_int_eq(res[0], 1);
    ck_assert_int_eq(res[1], 1);
    ck_assert_int_eq(res[2], 1);
    ck_assert_uint_lt(now_ms() - t0, 5000);
}

START_TEST(cancel_interrupts_sleep_everywhere)
{
    unit_run(2, cancel_main, NULL);
}
END_TEST

static coro_t *join_target;
static int joiner_result;
static void joiner(void *arg)
{
    errno = 0;
    joiner_result = coro_join(join_target) == -1 && errno == ECANCELED;
}
static void forever_until_cancel(void *arg) { coro_sleep_ms(60000); }
static void cancel_joiner_main(void *arg)
{
    join_target = coro_spawn(forever_until_cancel, NULL);
    coro_t *j = coro_spawn(joiner, NULL);
    coro_sleep_ms(10);
    coro_cancel(j);
    coro_join(j);
    ck_assert_int_eq(joiner_result, 1);
    /* the target was detached by the cancelled join; end it */
    coro_cancel(join_target);
}

START_TEST(cancelled_joiner_returns_ecanceled)
{
    unit_run(2, cancel_joiner_main, NULL);
}
END_TEST

/* ---- joins completed on the joiner's own worker (no atomics) ------------------ */

static void sleep_forever(void *arg) { coro_sleep_ms(60000); }

/* A target cancelled before it starts, joined while it is still runnext. */
static void cancel_runnext_main(void *arg)
{
    for (int i = 0; i < 100; i++) {
        coro_t *t = coro_spawn(sleep_forever, NULL);
        coro_cancel(t);
        errno = 0;
        ck_assert_int_eq(coro_join(t), -1);
        ck_assert_int_eq(errno, ECANCELED);
    }
}

START_TEST(join_of_cancelled_runnext_is_ecanceled)
{
    unit_run(2, cancel_runnext_main, NULL);
}
END_TEST

/* A joiner parked on a local join is cancelled (from its own worker or, with
 * the joiner on worker 1, from worker 0); the target ends later on its own. */
static atomic_int local_joiner_ok;
static coro_t *local_targets[2];
static void local_joiner(void *arg)
{
    int pinned = (int)(uintptr_t)arg;
    coro_t *t = pinned ? coro_spawn_on(coro_worker_index(), sleep_forever, NULL)
                       : coro_spawn(sleep_forever, NULL);
    local_targets[pinned] = t;
    errno = 0;
    if (coro_join(t) == -1 && errno == ECANCELED)
        atomic_fetch_add(&local_joiner_ok, 1);
}
static void cancel_local_joiner_main(void *arg)
{
    int where = (int)(uintptr_t)arg;
    for (int pinned = 0; pinned < 2; pinned++) {
        coro_t *j = coro_spawn_on(where, local_joiner, (void *)(uintptr_t)pinned);
        coro_sleep_ms(20);
        coro_cancel(j);
        ck_assert_int_eq(coro_join(j), -1); /* j itself ended cancelled */
        coro_cancel(local_targets[pinned]); /* its handle went with the join */
    }
    ck_assert_int_eq(atomic_load(&local_joiner_ok), 2);
}

START_TEST(cancelled_local_joiner_returns_ecanceled)
{
    unit_run(1, cancel_local_joiner_main, (void *)(uintptr_t)0);
}
END_TEST

START_TEST(local_joiner_cancelled_from_other_worker)
{
    unit_run(2, cancel_local_joiner_main, (void *)(uintptr_t)1);
}
END_TEST

/* A joined runnext target must end on its joiner's worker even when a
 * later spawn displaces it from runnext while idle workers try to steal. */
static atomic_int churn_stop, wrong_worker, recorded;
static void noop_member(void *arg) {}
static void churn(void *arg)
{
    while (!atomic_load(&churn_stop)) {
        coro_detach(coro_spawn(noop_member, NULL));
        coro_yield();
    }
}
static void record_join_worker(void *arg)
{
    if (coro_worker_index() != *(int *)arg)
        atomic_fetch_add(&wrong_worker, 1);
    atomic_fetch_add(&recorded, 1);
}
static void displaced_main(void *arg)
{
    int me = coro_worker_index();
    coro_t *c1 = coro_spawn_on(me, churn, NULL), *c2 = coro_spawn_on(me, churn, NULL);
    coro_yield();
    for (int i = 0; i < 20000; i++)
        ck_assert_int_eq(coro_join(coro_spawn(record_join_worker, &me)), 0);
    atomic_store(&churn_stop, 1);
    coro_join(c1);
    coro_join(c2);
    ck_assert_int_eq(atomic_load(&recorded), 20000);
    ck_assert_int_eq(atomic_load(&wrong_worker), 0);
}

START_TEST(joined_runnext_stays_on_joiner_worker)
{
    unit_run(2, displaced_main, NULL);
}
END_TEST

/* Joins across workers in both directions, and of already ended targets. */
static atomic_int cross_ran;
static void cross_member(void *arg) { atomic_fetch_add(&cross_ran, 1); }
static void cross_joiner(void *arg)
{
    for (int i = 0; i < 2000; i++) {
        coro_t *t = coro_spawn_on(0, cross_member, NULL);
        if (i & 1)
            coro_sleep_ms(0);
        if (coro_join(t) != 0)
            return;
    }
}
static void cross_join_main(void *arg)
{
    coro_t *j = coro_spawn_on(1, cross_joiner, NULL);
    for (int i = 0; i < 2000; i++)
        ck_assert_int_eq(coro_join(coro_spawn_on(1, cross_member, NULL)), 0);
    ck_assert_int_eq(coro_join(j), 0);
    ck_assert_int_eq(atomic_load(&cross_ran), 4000);
}

START_TEST(join_from_other_worker)
{
    unit_run(2, cross_join_main, NULL);
}
END_TEST

/* ---- scopes ------------------------------------------------------------------ */

static atomic_int scope_done;
static void scope_member(void *arg)
{
    coro_sleep_ms((uint64_t)(uintptr_t)arg);
    atomic_fetch_add(&scope_done, 1);
}
static void scope_main(void *arg)
{
    coro_scope_t s;
    coro_scope_init(&s);
    for (int i = 0; i < 50; i++)
        ck_assert_ptr_nonnull(coro_scope_spawn(&s, scope_member, (void *)(uintptr_t)(i % 7)));
    ck_assert_int_eq(coro_scope_wait(&s), 0);
    ck_assert_int_eq(atomic_load(&scope_done), 50);
}

START_TEST(scope_waits_for_members)
{
    atomic_store(&scope_done, 0);
    unit_run(2, scope_main, NULL);
}
END_TEST

static atomic_int scope_cancelled;
static void scope_sleeper(void *arg)
{
    if (coro_sleep_ms(60000) == -1 && errno == ECANCELED)
        atomic_fetch_add(&scope_cancelled, 1);
}
static void scope_cancel_main(void *arg)
{
    coro_scope_t s;
    coro_scope_init(&s);
    for (int i = 0; i < 20; i++)
        coro_scope_spawn(&s, scope_sleeper, NULL);
    coro_sleep_ms(10);
    coro_scope_cancel(&s);
    ck_assert_int_eq(coro_scope_wait(&s), 0);
    ck_assert_int_eq(atomic_load(&scope_cancelled), 20);
}

START_TEST(scope_cancel_cancels_members)
{
    atomic_store(&scope_cancelled, 0);
    unit_run(2, scope_cancel_main, NULL);
}
END_TEST

static void scope_owner(void *arg)
{
    coro_scope_t s;
    coro_scope_init(&s);
    for (int i = 0; i < 5; i++)
        coro_scope_spawn(&s, scope_sleeper, NULL);
    errno = 0;
    *(int *)arg = coro_scope_wait(&s) == -1 && errno == ECANCELED;
}
static void scope_owner_main(void *arg)
{
    coro_t *o = coro_spawn(scope_owner, arg);
    coro_sleep_ms(10);
    coro_cancel(o);
    coro_join(o);
}

START_TEST(cancelled_scope_owner_still_waits_for_members)
{
    int res = 0;
    atomic_store(&scope_cancelled, 0);
    unit_run(2, scope_owner_main, &res);
    ck_assert_int_eq(res, 1);
    ck_assert_int_eq(atomic_load(&scope_cancelled), 5);
}
END_TEST

/* ---- misuse is loud ---------------------------------------------------------- */

START_TEST(yield_outside_runtime_aborts)
{
    coro_yield();
}
END_TEST

static void join_twice(void *arg)
{
    coro_t *c = coro_spawn(nothing, NULL);
    coro_join(c);
    coro_join(c);
}

START_TEST(join_detached_aborts)
{
    unit_run(1, join_twice, NULL);
}
END_TEST

static void join_detached(void *arg)
{
    coro_t *c = coro_spawn(forever_until_cancel, NULL);
    coro_detach(c);
    coro_join(c);
}

START_TEST(join_of_detached_aborts)
{
    unit_run(1, join_detached, NULL);
}
END_TEST

static Suite *coro_suite(void)
{
    Suite *s = suite_create("coro");
    TCase *tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, run_returns_after_main);
    tcase_add_test(tc, run_waits_for_detached_coroutines);
    tcase_add_test(tc, config_rejects_bad_values);
    tcase_add_test(tc, run_inside_run_is_ebusy);
    tcase_add_test(tc, join_waits_for_each);
    tcase_add_test(tc, yield_alternates);
    tcase_add_test(tc, spawn_on_runs_on_that_worker);
    tcase_add_test(tc, idle_worker_steals_unstarted);
    tcase_add_test(tc, recycled_structs_start_on_any_worker);
    tcase_add_test(tc, spawn_without_memory_for_a_stack_is_enomem);
    tcase_add_test(tc, spawn_from_plain_thread);
    tcase_add_test(tc, spawn_without_runtime_is_esrch);
    suite_add_tcase(s, tc);

    tc = tcase_create("stress");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, million_spawn_join);
    tcase_add_test(tc, hundred_thousand_parked_woken_by_timers);
    suite_add_tcase(s, tc);

    tc = tcase_create("time_and_cancel");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, sleep_is_accurate);
    tcase_add_test(tc, cancel_interrupts_sleep_everywhere);
    tcase_add_test(tc, cancelled_joiner_returns_ecanceled);
    tcase_add_test(tc, join_of_cancelled_runnext_is_ecanceled);
    tcase_add_test(tc, cancelled_local_joiner_returns_ecanceled);
    tcase_add_test(tc, local_joiner_cancelled_from_other_worker);
    tcase_add_test(tc, joined_runnext_stays_on_joiner_worker);
    tcase_add_test(tc, join_from_other_worker);
    tcase_add_test(tc, scope_waits_for_members);
    tcase_add_test(tc, scope_cancel_cancels_members);
    tcase_add_test(tc, cancelled_scope_owner_still_waits_for_members);
    suite_add_tcase(s, tc);

    tc = tcase_create("misuse");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test_raise_signal(tc, yield_outside_runtime_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, join_detached_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, join_of_detached_aborts, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(coro_suite)
