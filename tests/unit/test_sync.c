/*
 * test_sync.c - mutex, condition variable, semaphore and wait group:
 * hand-off order, timeouts, cancellation, coroutines on several workers
 * and plain threads.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "unit.h"
#include "coro/sync.h"

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A 50 ms timeout must not fire early, nor much late. */
#define ck_assert_took_50ms(took) \
    ck_assert_msg((took) >= 50 && (took) <= 150, "50 ms timeout took %.2f ms", (took))

/* Shared state of one test; coroutines record, the main coroutine asserts. */
struct st {
    coro_mutex_t m;
    coro_cond_t c;
    coro_sem_t s;
    coro_wg_t wg;
    int entered, done, rc, err, held_after;
    int order[8], norder;
    long counter;
    int ready;
};

static void st_init(struct st *t, uint64_t sem)
{
    *t = (struct st){0};
    coro_mutex_init(&t->m);
    coro_cond_init(&t->c);
    coro_sem_init(&t->s, sem);
    coro_wg_init(&t->wg);
}

static void st_fini(struct st *t)
{
    coro_mutex_fini(&t->m);
    coro_cond_fini(&t->c);
    coro_sem_fini(&t->s);
    coro_wg_fini(&t->wg);
}

static void record(struct st *t, int rc)
{
    t->err = rc ? errno : 0;
    t->rc = rc;
    t->done = 1;
}

/* ---- mutex ---------------------------------------------------------------- */

START_TEST(test_mutex_trylock)
{
    coro_mutex_t m;
    ck_assert_int_eq(coro_mutex_init(&m), 0);
    ck_assert_int_eq(coro_mutex_trylock(&m), 0);
    ck_assert_int_eq(coro_mutex_trylock(&m), -1);
    ck_assert_int_eq(errno, EBUSY);
    coro_mutex_unlock(&m);
    ck_assert_int_eq(coro_mutex_lock(&m), 0); /* uncontended: no wait */
    coro_mutex_unlock(&m);
    coro_mutex_fini(&m);
}
END_TEST

#define INCR_COROS 8
#define INCR_EACH 20000

static void incr_coro(void *arg)
{
    struct st *t = arg;
    for (int i = 0; i < INCR_EACH; i++) {
        coro_mutex_lock(&t->m);
        long v = t->counter;
        if (i % 64 == 0)
            coro_yield(); /* let others queue up behind the lock */
        t->counter = v + 1;
        coro_mutex_unlock(&t->m);
    }
}

static void *incr_thread_plain(void *arg)
{
    struct st *t = arg;
    for (int i = 0; i < INCR_EACH; i++) {
        coro_mutex_lock(&t->m);
        t->counter++;
        coro_mutex_unlock(&t->m);
    }
    return NULL;
}

static void body_counter(void *arg)
{
    struct st *t = arg;
    coro_t *h[INCR_COROS];
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, incr_thread_plain, t), 0);
    for (int i = 0; i < INCR_COROS; i++)
        h[i] = coro_spawn_on(i % 2, incr_coro, t);
    for (int i = 0; i < INCR_COROS; i++)
        coro_join(h[i]);
    pthread_join(th, NULL);
}

START_TEST(test_mutex_counter_across_workers_and_thread)
{
    struct st t;
    st_init(&t, 0);
    unit_run(2, body_counter, &t);
    ck_assert_int_eq(t.counter, (long)(INCR_COROS + 1) * INCR_EACH);
    ck_assert_int_eq(coro_mutex_trylock(&t.m), 0); /* left unlocked */
    st_fini(&t);
}
END_TEST

struct who {
    struct st *t;
    int id;
};

static void lock_and_log(void *arg)
{
    struct who *w = arg;
    coro_mutex_lock(&w->t->m);
    w->t->order[w->t->norder++] = w->id;
    coro_mutex_unlock(&w->t->m);
}

static void body_fifo(void *arg)
{
    struct st *t = arg;
    struct who w[3] = {{t, 1}, {t, 2}, {t, 3}};
    coro_t *h[3];
    coro_mutex_lock(&t->m);
    for (int i = 0; i < 3; i++) {
        h[i] = coro_spawn(lock_and_log, &w[i]);
        coro_yield(); /* h[i] queues on the mutex before the next one */
    }
    ck_assert_int_eq(t->norder, 0);
    coro_mutex_unlock(&t->m);
    for (int i = 0; i < 3; i++)
        coro_join(h[i]);
    ck_assert_int_eq(t->norder, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(t->order[i], i + 1);
}

START_TEST(test_mutex_hands_off_in_fifo_order)
{
    struct st t;
    st_init(&t, 0);
    unit_run(1, body_fifo, &t);
    st_fini(&t);
}
END_TEST

static void lock_blocked(void *arg)
{
    struct st *t = arg;
    t->entered = 1;
    int rc = coro_mutex_lock(&t->m);
    record(t, rc);
    if (rc == 0)
        coro_mutex_unlock(&t->m);
}

static void body_mutex_cancel(void *arg)
{
    struct st *t = arg;
    coro_mutex_lock(&t->m);
    coro_t *h = coro_spawn(lock_blocked, t);
    coro_yield();
    ck_assert(t->entered && !t->done);
    coro_cancel(h);
    coro_join(h);
    ck_assert_int_eq(t->rc, -1);
    ck_assert_int_eq(t->err, ECANCELED);
    coro_mutex_unlock(&t->m);
    /* the cancelled waiter did not get the lock */
    ck_assert_int_eq(coro_mutex_trylock(&t->m), 0);
    coro_mutex_unlock(&t->m);
}

START_TEST(test_mutex_lock_cancelled)
{
    struct st t;
    st_init(&t, 0);
    unit_run(1, body_mutex_cancel, &t);
    st_fini(&t);
}
END_TEST

/* ---- condition variable ----------------------------------------------------- */

static void cond_waiter(void *arg)
{
    struct st *t = arg;
    coro_mutex_lock(&t->m);
    t->entered++;
    while (!t->ready) {
        if (coro_cond_wait(&t->c, &t->m) != 0) {
            record(t, -1);
            break;
        }
    }
    t->held_after += coro_mutex_trylock(&t->m) == -1 && errno == EBUSY;
    t->done++;
    coro_mutex_unlock(&t->m);
}

static void body_cond_signal(void *arg)
{
    struct st *t = arg;
    coro_t *h[4];
    for (int i = 0; i < 4; i++)
        h[i] = coro_spawn(cond_waiter, t);
    coro_yield();
    ck_assert_int_eq(t->entered, 4);
    ck_assert_int_eq(t->done, 0);

    /* a signal with the predicate unchanged: the woken one waits again */
    coro_cond_signal(&t->c);
    coro_yield();
    ck_assert_int_eq(t->done, 0);

    coro_mutex_lock(&t->m);
    t->ready = 1;
    coro_cond_signal(&t->c);
    coro_mutex_unlock(&t->m);
    for (int i = 0; i < 3; i++)
        coro_yield();
    ck_assert_int_eq(t->done, 1); /* a signal wakes exactly one */

    coro_cond_broadcast(&t->c);
    for (int i = 0; i < 4; i++)
        coro_join(h[i]);
    ck_assert_int_eq(t->done, 4);
    ck_assert_int_eq(t->held_after, 4);
}

START_TEST(test_cond_signal_and_broadcast)
{
    struct st t;
    st_init(&t, 0);
    unit_run(1, body_cond_signal, &t);
    st_fini(&t);
}
END_TEST

static void body_cond_timeout(void *arg)
{
    struct st *t = arg;
    coro_mutex_lock(&t->m);
    double t0 = mono_ms();
    ck_assert_int_eq(coro_cond_timedwait(&t->c, &t->m, 50), -1);
    double took = mono_ms() - t0;
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_took_50ms(took);
    ck_assert_int_eq(coro_mutex_trylock(&t->m), -1); /* re-locked */
    coro_mutex_unlock(&t->m);
}

START_TEST(test_cond_timedwait_expires_and_relocks)
{
    struct st t;
    st_init(&t, 0);
    unit_run(1, body_cond_timeout, &t);
    st_fini(&t);
}
END_TEST

/* A cancelled cond waiter must get the mutex back before returning, and
 * waiting for it is not cut short by the cancellation. */
static void body_cond_cancel(void *arg)
{
    struct st *t = arg;
    coro_t *h = coro_spawn(cond_waiter, t);
    coro_yield();
    ck_assert_int_eq(t->entered, 1);
    coro_mutex_lock(&t->m);
    coro_cancel(h);
    for (int i = 0; i < 5; i++)
        coro_yield();
    ck_assert_int_eq(t->done, 0); /* still re-locking: we hold m */
    coro_mutex_unlock(&t->m);
    coro_join(h);
    ck_assert_int_eq(t->rc, -1);
    ck_assert_int_eq(t->err, ECANCELED);
    ck_assert_int_eq(t->held_after, 1);
    ck_assert_int_eq(coro_mutex_trylock(&t->m), 0);
    coro_mutex_unlock(&t->m);
}

START_TEST(test_cond_wait_cancelled_relocks_uninterruptibly)
{
    struct st t;
    st_init(&t, 0);
    unit_run(1, body_cond_cancel, &t);
    st_fini(&t);
}
END_TEST

/* Producer/consumer through a one-slot box guarded by m and c, with the
 * producer a plain thread. */
#define BOX_ITEMS 5000

struct box {
    coro_mutex_t m;
    coro_cond_t c;
    int full, val;
    long long sum;
};

static void *box_producer(void *arg)
{
    struct box *b = arg;
    for (int i = 1; i <= BOX_ITEMS; i++) {
        coro_mutex_lock(&b->m);
        while (b->full)
            coro_cond_wait(&b->c, &b->m);
        b->val = i;
        b->full = 1;
        coro_cond_broadcast(&b->c);
        coro_mutex_unlock(&b->m);
    }
    return NULL;
}

static void body_box(void *arg)
{
    struct box *b = arg;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, box_producer, b), 0);
    for (int i = 1; i <= BOX_ITEMS; i++) {
        coro_mutex_lock(&b->m);
        while (!b->full)
            coro_cond_wait(&b->c, &b->m);
        ck_assert_int_eq(b->val, i);
        b->sum += b->val;
        b->full = 0;
        coro_cond_broadcast(&b->c);
        coro_mutex_unlock(&b->m);
    }
    pthread_join(th, NULL);
}

START_TEST(test_cond_between_thread_and_coroutine)
{
    struct box b = {0};
    coro_mutex_init(&b.m);
    coro_cond_init(&b.c);
    unit_run(1, body_box, &b);
    ck_assert_int_eq(b.sum, (long long)BOX_ITEMS * (BOX_ITEMS + 1) / 2);
}
END_TEST

/* ---- semaphore ------------------------------------------------------------ */

static void sem_blocked(void *arg)
{
    struct st *t = arg;
    t->entered = 1;
    record(t, coro_sem_wait(&t->s));
}

static void body_sem(void *arg)
{
    struct st *t = arg;
    ck_assert_int_eq(coro_sem_value(&t->s), 2);
    ck_assert_int_eq(coro_sem_trywait(&t->s), 0);
    ck_assert_int_eq(coro_sem_wait(&t->s), 0);
    ck_assert_int_eq(coro_sem_trywait(&t->s), -1);
    ck_assert_int_eq(errno, EAGAIN);

    double t0 = mono_ms();
    ck_assert_int_eq(coro_sem_timedwait(&t->s, 50), -1);
    double took = mono_ms() - t0;
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_took_50ms(took);

    /* a post goes straight to the parked waiter */
    coro_t *h = coro_spawn(sem_blocked, t);
    coro_yield();
    ck_assert(t->entered && !t->done);
    coro_sem_post(&t->s);
    ck_assert_int_eq(coro_sem_value(&t->s), 0);
    coro_join(h);
    ck_assert_int_eq(t->rc, 0);

    /* cancellation */
    t->entered = t->done = t->rc = 0;
    h = coro_spawn(sem_blocked, t);
    coro_yield();
    ck_assert(t->entered && !t->done);
    coro_cancel(h);
    coro_join(h);
    ck_assert_int_eq(t->rc, -1);
    ck_assert_int_eq(t->err, ECANCELED);
    coro_sem_post(&t->s); /* the cancelled waiter does not swallow it */
    ck_assert_int_eq(coro_sem_value(&t->s), 1);
}

START_TEST(test_sem_wait_post_timeout_cancel)
{
    struct st t;
    st_init(&t, 2);
    unit_run(1, body_sem, &t);
    st_fini(&t);
}
END_TEST

/* Semaphore as a concurrency limit across workers: never more than 3
 * holders at once. */
struct lim {
    coro_sem_t s;
    atomic_int inside, max;
};

static void lim_coro(void *arg)
{
    struct lim *l = arg;
    for (int i = 0; i < 200; i++) {
        coro_sem_wait(&l->s);
        int n = atomic_fetch_add(&l->inside, 1) + 1;
        int m = atomic_load(&l->max);
        while (n > m && !atomic_compare_exchange_weak(&l->max, &m, n))
            ;
        coro_yield();
        atomic_fetch_sub(&l->inside, 1);
        coro_sem_post(&l->s);
    }
}

static void body_lim(void *arg)
{
    coro_t *h[8];
    for (int i = 0; i < 8; i++)
        h[i] = coro_spawn_on(CORO_WORKER_ANY, lim_coro, arg);
    for (int i = 0; i < 8; i++)
        coro_join(h[i]);
}

START_TEST(test_sem_limits_concurrency)
{
    struct lim l = {0};
    coro_sem_init(&l.s, 3);
    unit_run(2, body_lim, &l);
    ck_assert_int_le(atomic_load(&l.max), 3);
    ck_assert_int_ge(atomic_load(&l.max), 1);
    ck_assert_int_eq(coro_sem_value(&l.s), 3);
}
END_TEST

/* ---- wait group ----------------------------------------------------------- */

static void wg_piece(void *arg)
{
    struct st *t = arg;
    coro_yield();
    __atomic_fetch_add(&t->counter, 1, __ATOMIC_RELAXED);
    coro_wg_done(&t->wg);
}

static void wg_blocked(void *arg)
{
    struct st *t = arg;
    t->entered = 1;
    record(t, coro_wg_wait(&t->wg));
}

static void body_wg(void *arg)
{
    struct st *t = arg;
    ck_assert_int_eq(coro_wg_wait(&t->wg), 0); /* zero: returns at once */
    coro_wg_add(&t->wg, 10);
    for (int i = 0; i < 10; i++)
        coro_detach(coro_spawn_on(CORO_WORKER_ANY, wg_piece, t));
    ck_assert_int_eq(coro_wg_wait(&t->wg), 0);
    ck_assert_int_eq(__atomic_load_n(&t->counter, __ATOMIC_RELAXED), 10);

    coro_wg_add(&t->wg, 1);
    double t0 = mono_ms();
    ck_assert_int_eq(coro_wg_timedwait(&t->wg, 50), -1);
    double took = mono_ms() - t0;
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_took_50ms(took);

    coro_t *h = coro_spawn(wg_blocked, t);
    coro_yield();
    ck_assert(t->entered && !t->done);
    coro_cancel(h);
    coro_join(h);
    ck_assert_int_eq(t->rc, -1);
    ck_assert_int_eq(t->err, ECANCELED);
    coro_wg_done(&t->wg);
    ck_assert_int_eq(coro_wg_timedwait(&t->wg, 0), 0);
}

START_TEST(test_wg_wait_timeout_cancel)
{
    struct st t;
    st_init(&t, 0);
    unit_run(2, body_wg, &t);
    st_fini(&t);
}
END_TEST

START_TEST(test_wg_below_zero_aborts)
{
    coro_wg_t wg;
    coro_wg_init(&wg);
    coro_wg_add(&wg, 1);
    coro_wg_done(&wg);
    coro_wg_done(&wg);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("sync");
    TCase *tc = tcase_create("mutex");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, test_mutex_trylock);
    tcase_add_test(tc, test_mutex_counter_across_workers_and_thread);
    tcase_add_test(tc, test_mutex_hands_off_in_fifo_order);
    tcase_add_test(tc, test_mutex_lock_cancelled);
    suite_add_tcase(s, tc);

    tc = tcase_create("cond");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, test_cond_signal_and_broadcast);
    tcase_add_test(tc, test_cond_timedwait_expires_and_relocks);
    tcase_add_test(tc, test_cond_wait_cancelled_relocks_uninterruptibly);
    tcase_add_test(tc, test_cond_between_thread_and_coroutine);
    suite_add_tcase(s, tc);

    tc = tcase_create("sem_wg");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, test_sem_wait_post_timeout_cancel);
    tcase_add_test(tc, test_sem_limits_concurrency);
    tcase_add_test(tc, test_wg_wait_timeout_cancel);
    tcase_add_test_raise_signal(tc, test_wg_below_zero_aborts, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
