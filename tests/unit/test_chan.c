/*
 * test_chan.c - channels: buffering modes, close semantics, timeouts,
 * cancellation, plain threads, select (fairness, exactly one op) and an
 * MPMC stress across workers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "unit.h"
#include "coro/chan.h"

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A 50 ms timeout must not fire early, nor much late. */
#define ck_assert_took_50ms(took) \
    ck_assert_msg((took) >= 50 && (took) <= 150, "50 ms timeout took %.2f ms", (took))

/* One blocking op run in its own coroutine, observed from outside. */
struct blk {
    chan_t *ch, *ch2;
    int val;
    int64_t ms;
    int entered, done, rc, err;
    double took_ms;
};

static void blk_end(struct blk *b, int rc, double t0)
{
    b->err = rc ? errno : 0;
    b->rc = rc;
    b->took_ms = mono_ms() - t0;
    b->done = 1;
}

static void do_send(void *arg)
{
    struct blk *b = arg;
    b->entered = 1;
    double t0 = mono_ms();
    blk_end(b, chan_send_timeout(b->ch, &b->val, b->ms), t0);
}

static void do_recv(void *arg)
{
    struct blk *b = arg;
    b->entered = 1;
    double t0 = mono_ms();
    blk_end(b, chan_recv_timeout(b->ch, &b->val, b->ms), t0);
}

static void do_select_recv(void *arg)
{
    struct blk *b = arg;
    int x, y;
    struct chan_op ops[2] = {{b->ch, CHAN_RECV, &x, 0}, {b->ch2, CHAN_RECV, &y, 0}};
    b->entered = 1;
    double t0 = mono_ms();
    int rc = chan_select(ops, 2, b->ms);
    blk_end(b, rc < 0 ? -1 : 0, t0);
    if (rc >= 0)
        b->val = rc == 0 ? x : y;
}

/* ---- construction and buffering ----------------------------------------- */

START_TEST(test_new_rejects_bad_sizes)
{
    errno = 0;
    ck_assert_ptr_null(chan_new(0, 1));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(chan_new(65537, 1));
    ck_assert_int_eq(errno, EINVAL);
    chan_t *ch = chan_new(65536, 2);
    ck_assert_ptr_nonnull(ch);
    ck_assert_uint_eq(chan_cap(ch), 2);
    chan_free(ch);
    ch = chan_new(4, CHAN_UNBOUNDED);
    ck_assert_uint_eq(chan_cap(ch), CHAN_UNBOUNDED);
    chan_free(ch);
    chan_free(NULL);
}
END_TEST

START_TEST(test_bounded_fifo_and_full)
{
    chan_t *ch = chan_new(sizeof(int), 4);
    int v;
    for (int round = 0; round < 3; round++) { /* rounds wrap the ring */
        for (int i = 0; i < 4; i++)
            ck_assert_int_eq(chan_try_send(ch, &(int){round * 10 + i}), 0);
        ck_assert_int_eq(chan_len(ch), 4);
        ck_assert_int_eq(chan_try_send(ch, &(int){99}), -1);
        ck_assert_int_eq(errno, EAGAIN);
        for (int i = 0; i < 3; i++) {
            ck_assert_int_eq(chan_try_recv(ch, &v), 0);
            ck_assert_int_eq(v, round * 10 + i);
        }
        ck_assert_int_eq(chan_try_recv(ch, &v), 0);
        ck_assert_int_eq(chan_try_recv(ch, &v), -1);
        ck_assert_int_eq(errno, EAGAIN);
        ck_assert_int_eq(chan_len(ch), 0);
    }
    chan_free(ch);
}
END_TEST

START_TEST(test_unbounded_never_blocks_and_keeps_order)
{
    chan_t *ch = chan_new(sizeof(int), CHAN_UNBOUNDED);
    int v, next_out = 0, next_in = 0;
    /* Leave part in the ring each round so growth happens while wrapped. */
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 1000; i++, next_in++)
            ck_assert_int_eq(chan_try_send(ch, &next_in), 0);
        for (int i = 0; i < 700; i++) {
            ck_assert_int_eq(chan_try_recv(ch, &v), 0);
            ck_assert_int_eq(v, next_out++);
        }
    }
    ck_assert_int_eq(chan_len(ch), next_in - next_out);
    while (chan_try_recv(ch, &v) == 0)
        ck_assert_int_eq(v, next_out++);
    ck_assert_int_eq(next_out, next_in);
    chan_free(ch);
}
END_TEST

START_TEST(test_rendezvous_try_needs_a_partner)
{
    chan_t *ch = chan_new(sizeof(int), 0);
    int v;
    ck_assert_int_eq(chan_try_send(ch, &(int){1}), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(chan_try_recv(ch, &v), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(chan_len(ch), 0);
    chan_free(ch);
}
END_TEST

/* A send on a rendezvous channel waits for a receiver, and a parked
 * receiver gets the element handed over directly. */
static void body_rendezvous(void *arg)
{
    chan_t *ch = chan_new(sizeof(int), 0);
    struct blk s = {.ch = ch, .val = 42, .ms = -1};
    coro_t *c = coro_spawn(do_send, &s);
    coro_yield();
    ck_assert(s.entered && !s.done);
    int v = 0;
    ck_assert_int_eq(chan_recv(ch, &v), 0);
    ck_assert_int_eq(v, 42);
    coro_join(c);
    ck_assert_int_eq(s.rc, 0);

    struct blk r = {.ch = ch, .ms = -1};
    c = coro_spawn(do_recv, &r);
    coro_yield();
    ck_assert(r.entered && !r.done);
    ck_assert_int_eq(chan_try_send(ch, &(int){7}), 0);
    coro_join(c);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.val, 7);
    chan_free(ch);
}

START_TEST(test_rendezvous_hand_off)
{
    unit_run(1, body_rendezvous, NULL);
}
END_TEST

static void producer_100(void *arg)
{
    chan_t *ch = arg;
    for (int i = 0; i < 100; i++)
        chan_send(ch, &i);
    chan_close(ch);
}

/* A producer much faster than the ring blocks and resumes; nothing is
 * lost or reordered. */
static void body_backpressure(void *arg)
{
    chan_t *ch = chan_new(sizeof(int), 2);
    coro_t *c = coro_spawn(producer_100, ch);
    int v, n = 0;
    while (chan_recv(ch, &v) == 0) {
        ck_assert_int_eq(v, n++);
        ck_assert_uint_le(chan_len(ch), 2);
    }
    ck_assert_int_eq(errno, EPIPE);
    ck_assert_int_eq(n, 100);
    coro_join(c);
    chan_free(ch);
}

START_TEST(test_bounded_backpressure)
{
    unit_run(1, body_backpressure, NULL);
}
END_TEST

/* ---- close -------------------------------------------------------------- */

START_TEST(test_close_drains_then_epipe)
{
    chan_t *ch = chan_new(sizeof(int), 4);
    int v;
    for (int i = 0; i < 3; i++)
        chan_try_send(ch, &i);
    chan_close(ch);
    chan_close(ch); /* idempotent */
    ck_assert_int_eq(chan_try_send(ch, &(int){9}), -1);
    ck_assert_int_eq(errno, EPIPE);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(chan_try_recv(ch, &v), 0);
        ck_assert_int_eq(v, i);
    }
    ck_assert_int_eq(chan_try_recv(ch, &v), -1);
    ck_assert_int_eq(errno, EPIPE);
    chan_free(ch);
}
END_TEST

static void body_close_blocking(void *arg)
{
    chan_t *ch = chan_new(sizeof(int), 4);
    chan_send(ch, &(int){1});
    chan_close(ch);
    int v;
    ck_assert_int_eq(chan_send(ch, &(int){2}), -1);
    ck_assert_int_eq(errno, EPIPE);
    ck_assert_int_eq(chan_recv(ch, &v), 0);
    ck_assert_int_eq(chan_recv(ch, &v), -1);
    ck_assert_int_eq(errno, EPIPE);
    ck_assert_int_eq(chan_recv_timeout(ch, &v, 1000), -1);
    ck_assert_int_eq(errno, EPIPE);
    chan_free(ch);
}

START_TEST(test_close_blocking_calls_do_not_block)
{
    unit_run(1, body_close_blocking, NULL);
}
END_TEST

static void body_close_wakes(void *arg)
{
    chan_t *empty = chan_new(sizeof(int), 1);
    chan_t *full = chan_new(sizeof(int), 1);
    chan_send(full, &(int){5});
    struct blk r[3], s[2];
    coro_t *cr[3], *cs[2];
    for (int i = 0; i < 3; i++) {
        r[i] = (struct blk){.ch = empty, .ms = -1};
        cr[i] = coro_spawn(do_recv, &r[i]);
    }
    for (int i = 0; i < 2; i++) {
        s[i] = (struct blk){.ch = full, .val = 6, .ms = -1};
        cs[i] = coro_spawn(do_send, &s[i]);
    }
    coro_yield();
    for (int i = 0; i < 3; i++)
        ck_assert(r[i].entered && !r[i].done);
    chan_close(empty);
    chan_close(full);
    for (int i = 0; i < 3; i++) {
        coro_join(cr[i]);
        ck_assert_int_eq(r[i].rc, -1);
        ck_assert_int_eq(r[i].err, EPIPE);
    }
    for (int i = 0; i < 2; i++) {
        coro_join(cs[i]);
        ck_assert_int_eq(s[i].rc, -1);
        ck_assert_int_eq(s[i].err, EPIPE);
    }
    int v;
    ck_assert_int_eq(chan_recv(full, &v), 0); /* buffered before close */
    ck_assert_int_eq(v, 5);
    ck_assert_int_eq(chan_recv(full, &v), -1);
    chan_free(empty);
    chan_free(full);
}

START_TEST(test_close_wakes_blocked_senders_and_receivers)
{
    unit_run(1, body_close_wakes, NULL);
}
END_TEST

/* ---- timeouts ------------------------------------------------------------ */

static void body_timeouts(void *arg)
{
    chan_t *ch = chan_new(sizeof(int), 1);
    int v;
    double t0 = mono_ms();
    ck_assert_int_eq(chan_recv_timeout(ch, &v, 50), -1);
    double took = mono_ms() - t0;
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_took_50ms(took);

    chan_send(ch, &(int){1});
    t0 = mono_ms();
    ck_assert_int_eq(chan_send_timeout(ch, &(int){2}, 50), -1);
    took = mono_ms() - t0;
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_took_50ms(took);

    ck_assert_int_eq(chan_send_timeout(ch, &(int){2}, 0), -1);
    ck_assert_int_eq(errno, EAGAIN);
    /* The timed-out sender left no trace: one element, the first. */
    ck_assert_int_eq(chan_recv_timeout(ch, &v, 0), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(chan_try_recv(ch, &v), -1);
    chan_free(ch);
}

START_TEST(test_timeouts_expire_on_time)
{
    unit_run(1, body_timeouts, NULL);
}
END_TEST

static void body_timeout_met(void *arg)
{
    chan_t *ch = chan_new(sizeof(int), 0);
    struct blk r = {.ch = ch, .ms = 5000};
    coro_t *c = coro_spawn(do_recv, &r);
    coro_yield();
    ck_assert_int_eq(chan_send(ch, &(int){3}), 0);
    coro_join(c);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.val, 3);
    ck_assert(r.took_ms < 1000);
    chan_free(ch);
}

START_TEST(test_timeout_not_taken_when_partner_comes)
{
    unit_run(1, body_timeout_met, NULL);
}
END_TEST

/* ---- cancellation -------------------------------------------------------- */

/* Park fn in a coroutine, cancel it, and check it returns -1/ECANCELED and
 * leaves no waiter behind (a rendezvous try_* then finds no partner). */
static void cancel_case(void (*fn)(void *))
{
    chan_t *a = chan_new(sizeof(int), 0), *b = chan_new(sizeof(int), 0);
    struct blk x = {.ch = a, .ch2 = b, .val = 1, .ms = -1};
    coro_t *c = coro_spawn(fn, &x);
    coro_yield();
    ck_assert(x.entered && !x.done);
    coro_cancel(c);
    coro_join(c);
    ck_assert_int_eq(x.rc, -1);
    ck_assert_int_eq(x.err, ECANCELED);
    int v;
    ck_assert_int_eq(chan_try_send(a, &v), -1);
    ck_assert_int_eq(chan_try_recv(a, &v), -1);
    ck_assert_int_eq(chan_try_send(b, &v), -1);
    chan_free(a);
    chan_free(b);
}

static void body_cancel(void *arg)
{
    cancel_case(do_send);
    cancel_case(do_recv);
    cancel_case(do_select_recv);
}

START_TEST(test_cancel_blocked_send_recv_select)
{
    unit_run(1, body_cancel, NULL);
}
END_TEST

/* ---- plain threads ------------------------------------------------------- */

#define THREAD_ITEMS 20000

static void *thread_producer(void *arg)
{
    chan_t *ch = arg;
    for (int i = 1; i <= THREAD_ITEMS; i++)
        if (chan_send(ch, &i) != 0)
            return (void *)1;
    chan_close(ch);
    return NULL;
}

struct tsum {
    chan_t *ch;
    long long sum;
    int n, err;
    double took_ms;
};

static void *thread_consumer(void *arg)
{
    struct tsum *t = arg;
    int v;
    while (chan_recv(t->ch, &v) == 0) {
        t->sum += v;
        t->n++;
    }
    t->err = errno;
    return NULL;
}

static void body_threads(void *arg)
{
    /* plain-thread producer, coroutine consumer */
    chan_t *ch = chan_new(sizeof(int), 8);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, thread_producer, ch), 0);
    long long sum = 0;
    int v, n = 0;
    while (chan_recv(ch, &v) == 0) {
        ck_assert_int_eq(v, n + 1);
        sum += v, n++;
    }
    void *tr;
    pthread_join(th, &tr);
    ck_assert_ptr_null(tr);
    ck_assert_int_eq(n, THREAD_ITEMS);
    ck_assert_int_eq(sum, (long long)THREAD_ITEMS * (THREAD_ITEMS + 1) / 2);
    chan_free(ch);

    /* coroutine producer, plain-thread consumer on a rendezvous channel */
    struct tsum t = {.ch = chan_new(sizeof(int), 0)};
    ck_assert_int_eq(pthread_create(&th, NULL, thread_consumer, &t), 0);
    for (int i = 1; i <= THREAD_ITEMS; i++)
        ck_assert_int_eq(chan_send(t.ch, &i), 0);
    chan_close(t.ch);
    pthread_join(th, NULL);
    ck_assert_int_eq(t.n, THREAD_ITEMS);
    ck_assert_int_eq(t.err, EPIPE);
    ck_assert_int_eq(t.sum, (long long)THREAD_ITEMS * (THREAD_ITEMS + 1) / 2);
    chan_free(t.ch);
}

START_TEST(test_plain_thread_with_coroutine)
{
    unit_run(2, body_threads, NULL);
}
END_TEST

static void *thread_timed_recv(void *arg)
{
    struct tsum *t = arg;
    int v;
    double t0 = mono_ms();
    t->n = chan_recv_timeout(t->ch, &v, 50);
    t->err = errno;
    t->took_ms = mono_ms() - t0;
    return NULL;
}

/* Plain threads alone, no runtime: they block on the channel's futexes. */
START_TEST(test_plain_threads_without_runtime)
{
    struct tsum t = {.ch = chan_new(sizeof(int), 0)};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, thread_consumer, &t), 0);
    for (int i = 1; i <= 1000; i++)
        ck_assert_int_eq(chan_send(t.ch, &i), 0);
    chan_close(t.ch);
    pthread_join(th, NULL);
    ck_assert_int_eq(t.n, 1000);
    ck_assert_int_eq(t.sum, 1000LL * 1001 / 2);
    chan_free(t.ch);

    struct tsum u = {.ch = chan_new(sizeof(int), 0)};
    ck_assert_int_eq(pthread_create(&th, NULL, thread_timed_recv, &u), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(u.n, -1);
    ck_assert_int_eq(u.err, ETIMEDOUT);
    ck_assert_took_50ms(u.took_ms);
    chan_free(u.ch);
}
END_TEST

/* ---- MPMC stress ---------------------------------------------------------- */

#define STRESS_PAIRS 8
#define STRESS_ITEMS 200000
#define STRESS_WORKERS 2

struct stress {
    chan_t *ch;
    int id;
    long long sum;
    long n;
    int bad;
};

static void stress_producer(void *arg)
{
    struct stress *p = arg;
    int per = STRESS_ITEMS / STRESS_PAIRS;
    for (int k = 0; k < per; k++) {
        int v = p->id * per + k + 1;
        if (chan_send(p->ch, &v) != 0)
            p->bad++;
    }
}

static void stress_consumer(void *arg)
{
    struct stress *c = arg;
    int v;
    while (chan_recv(c->ch, &v) == 0) {
        if (v < 1 || v > STRESS_ITEMS)
            c->bad++;
        c->sum += v;
        c->n++;
    }
}

static void body_stress(void *arg)
{
    chan_t *ch = chan_new(sizeof(int), 16);
    struct stress p[STRESS_PAIRS], c[STRESS_PAIRS];
    coro_t *hp[STRESS_PAIRS], *hc[STRESS_PAIRS];
    for (int i = 0; i < STRESS_PAIRS; i++) {
        c[i] = (struct stress){.ch = ch, .id = i};
        p[i] = (struct stress){.ch = ch, .id = i};
        hc[i] = coro_spawn_on(CORO_WORKER_ANY, stress_consumer, &c[i]);
        hp[i] = coro_spawn_on(i % STRESS_WORKERS, stress_producer, &p[i]);
        ck_assert(hc[i] && hp[i]);
    }
    for (int i = 0; i < STRESS_PAIRS; i++)
        coro_join(hp[i]);
    chan_close(ch);
    long long sum = 0;
    long n = 0;
    for (int i = 0; i < STRESS_PAIRS; i++) {
        coro_join(hc[i]);
        sum += c[i].sum;
        n += c[i].n;
        ck_assert_int_eq(p[i].bad + c[i].bad, 0);
    }
    ck_assert_int_eq(n, STRESS_ITEMS);
    ck_assert_int_eq(sum, (long long)STRESS_ITEMS * (STRESS_ITEMS + 1) / 2);
    chan_free(ch);
}

START_TEST(test_mpmc_stress_exact_sum)
{
    unit_run(STRESS_WORKERS, body_stress, NULL);
}
END_TEST

/* ---- select --------------------------------------------------------------- */

START_TEST(test_select_ready_ops_and_errors)
{
    chan_t *a = chan_new(sizeof(int), 1), *b = chan_new(sizeof(int), 1);
    int x = 0, y = 5;
    struct chan_op ops[2] = {{a, CHAN_RECV, &x, 0}, {b, CHAN_SEND, &y, 0}};

    /* only the send can proceed */
    ck_assert_int_eq(chan_select(ops, 2, 0), 1);
    ck_assert_int_eq(ops[1].err, 0);
    ck_assert_int_eq(chan_len(b), 1);
    /* now nothing can: poll times out at once */
    ck_assert_int_eq(chan_select(ops, 2, 0), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    /* a disabled op is skipped */
    chan_try_send(a, &(int){8});
    ops[0].ch = NULL;
    ck_assert_int_eq(chan_select(ops, 2, 0), -1);
    ops[0].ch = a;
    ck_assert_int_eq(chan_select(ops, 2, 0), 0);
    ck_assert_int_eq(x, 8);
    /* closed: the recv completes with EPIPE, the send too */
    chan_close(a);
    ck_assert_int_eq(chan_select(ops, 1, 0), 0);
    ck_assert_int_eq(ops[0].err, EPIPE);
    struct chan_op snd = {a, CHAN_SEND, &y, 0};
    ck_assert_int_eq(chan_select(&snd, 1, -1), 0);
    ck_assert_int_eq(snd.err, EPIPE);
    /* invalid: nothing to wait for, forever */
    ck_assert_int_eq(chan_select(ops, 0, 10), -1);
    ck_assert_int_eq(errno, EINVAL);
    ops[0].ch = ops[1].ch = NULL;
    ck_assert_int_eq(chan_select(ops, 2, -1), -1);
    ck_assert_int_eq(errno, EINVAL);
    chan_free(a);
    chan_free(b);
}
END_TEST

static void body_select_timeout(void *arg)
{
    chan_t *a = chan_new(sizeof(int), 0);
    int x;
    struct chan_op ops[2] = {{a, CHAN_RECV, &x, 0}, {a, CHAN_SEND, &x, 0}};
    double t0 = mono_ms();
    ck_assert_int_eq(chan_select(ops, 2, 50), -1);
    double took = mono_ms() - t0;
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_took_50ms(took);
    /* all ops disabled: a plain timed wait */
    ops[0].ch = ops[1].ch = NULL;
    t0 = mono_ms();
    ck_assert_int_eq(chan_select(ops, 2, 50), -1);
    took = mono_ms() - t0;
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_took_50ms(took);
    /* the timed-out select left no waiters */
    ck_assert_int_eq(chan_try_send(a, &x), -1);
    ck_assert_int_eq(chan_try_recv(a, &x), -1);
    chan_free(a);
}

START_TEST(test_select_timeout)
{
    unit_run(1, body_select_timeout, NULL);
}
END_TEST

/* Two rendezvous channels, each with a parked sender: one select takes
 * exactly one element; the other sender is still waiting. */
static void body_select_exactly_one(void *arg)
{
    chan_t *ch[2] = {chan_new(sizeof(int), 0), chan_new(sizeof(int), 0)};
    struct blk s[2];
    coro_t *c[2];
    for (int i = 0; i < 2; i++) {
        s[i] = (struct blk){.ch = ch[i], .val = 100 + i, .ms = -1};
        c[i] = coro_spawn(do_send, &s[i]);
    }
    coro_yield();
    int x = -1, y = -1;
    struct chan_op ops[2] = {{ch[0], CHAN_RECV, &x, 0}, {ch[1], CHAN_RECV, &y, 0}};
    int i = chan_select(ops, 2, -1);
    ck_assert(i == 0 || i == 1);
    ck_assert_int_eq(i == 0 ? x : y, 100 + i);
    ck_assert_int_eq(i == 0 ? y : x, -1);
    coro_join(c[i]);
    ck_assert(s[i].done && !s[1 - i].done);
    int v;
    ck_assert_int_eq(chan_try_recv(ch[i], &v), -1);
    ck_assert_int_eq(chan_try_recv(ch[1 - i], &v), 0);
    ck_assert_int_eq(v, 101 - i);
    coro_join(c[1 - i]);
    chan_free(ch[0]);
    chan_free(ch[1]);
}

START_TEST(test_select_performs_exactly_one)
{
    unit_run(1, body_select_exactly_one, NULL);
}
END_TEST

static void close_fn(void *arg)
{
    chan_close(arg);
}

/* A parked select is completed by a partner: a sender for its recv op,
 * a receiver for its send op. */
static void body_select_parked(void *arg)
{
    chan_t *a = chan_new(sizeof(int), 0), *b = chan_new(sizeof(int), 0);
    int x = 0, y = 77;
    struct chan_op ops[2] = {{a, CHAN_RECV, &x, 0}, {b, CHAN_SEND, &y, 0}};

    struct blk s = {.ch = a, .val = 31, .ms = -1};
    coro_t *c = coro_spawn(do_send, &s); /* runs once we park */
    ck_assert_int_eq(chan_select(ops, 2, -1), 0);
    ck_assert_int_eq(x, 31);
    coro_join(c);

    struct blk r = {.ch = b, .ms = -1};
    c = coro_spawn(do_recv, &r);
    ck_assert_int_eq(chan_select(ops, 2, 5000), 1);
    coro_join(c);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.val, 77);

    /* closing wakes a parked select with EPIPE on that op */
    c = coro_spawn(close_fn, b);
    ck_assert_int_eq(chan_select(ops, 2, -1), 1);
    ck_assert_int_eq(ops[1].err, EPIPE);
    coro_join(c);
    chan_free(a);
    chan_free(b);
}

START_TEST(test_select_parked_is_completed_by_partner)
{
    unit_run(1, body_select_parked, NULL);
}
END_TEST

START_TEST(test_select_fairness)
{
    chan_t *ch[2] = {chan_new(sizeof(int), 1), chan_new(sizeof(int), 1)};
    int x, y, count[2] = {0, 0};
    chan_try_send(ch[0], &(int){0});
    chan_try_send(ch[1], &(int){1});
    struct chan_op ops[2] = {{ch[0], CHAN_RECV, &x, 0}, {ch[1], CHAN_RECV, &y, 0}};
    for (int k = 0; k < 10000; k++) {
        int i = chan_select(ops, 2, 0);
        ck_assert(i == 0 || i == 1);
        count[i]++;
        ck_assert_int_eq(chan_try_send(ch[i], &i), 0); /* always ready again */
    }
    ck_assert_int_ge(count[0], 4000);
    ck_assert_int_le(count[0], 6000);
    ck_assert_int_eq(count[0] + count[1], 10000);
    chan_free(ch[0]);
    chan_free(ch[1]);
}
END_TEST

/* Selects racing senders on another worker: every element arrives once. */
#define SEL_ITEMS 20000

static void sel_sender(void *arg)
{
    chan_t *ch = arg;
    for (int i = 1; i <= SEL_ITEMS; i++)
        chan_send(ch, &i);
    chan_close(ch);
}

static void body_select_stress(void *arg)
{
    chan_t *ch[2] = {chan_new(sizeof(int), 0), chan_new(sizeof(int), 0)};
    coro_t *c0 = coro_spawn_on(1, sel_sender, ch[0]);
    coro_t *c1 = coro_spawn_on(1, sel_sender, ch[1]);
    int v[2], last[2] = {0, 0}, open = 2, n = 0;
    struct chan_op ops[2] = {{ch[0], CHAN_RECV, &v[0], 0}, {ch[1], CHAN_RECV, &v[1], 0}};
    while (open > 0) {
        int i = chan_select(ops, 2, -1);
        ck_assert(i == 0 || i == 1);
        if (ops[i].err == EPIPE) {
            ops[i].ch = NULL;
            open--;
            continue;
        }
        ck_assert_int_eq(v[i], last[i] + 1); /* no loss, no duplicate */
        last[i] = v[i];
        n++;
    }
    ck_assert_int_eq(n, 2 * SEL_ITEMS);
    coro_join(c0);
    coro_join(c1);
    chan_free(ch[0]);
    chan_free(ch[1]);
}

START_TEST(test_select_across_workers_loses_nothing)
{
    unit_run(2, body_select_stress, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("chan");
    TCase *tc = tcase_create("basic");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, test_new_rejects_bad_sizes);
    tcase_add_test(tc, test_bounded_fifo_and_full);
    tcase_add_test(tc, test_unbounded_never_blocks_and_keeps_order);
    tcase_add_test(tc, test_rendezvous_try_needs_a_partner);
    tcase_add_test(tc, test_rendezvous_hand_off);
    tcase_add_test(tc, test_bounded_backpressure);
    tcase_add_test(tc, test_close_drains_then_epipe);
    tcase_add_test(tc, test_close_blocking_calls_do_not_block);
    tcase_add_test(tc, test_close_wakes_blocked_senders_and_receivers);
    tcase_add_test(tc, test_timeouts_expire_on_time);
    tcase_add_test(tc, test_timeout_not_taken_when_partner_comes);
    tcase_add_test(tc, test_cancel_blocked_send_recv_select);
    tcase_add_test(tc, test_plain_thread_with_coroutine);
    tcase_add_test(tc, test_plain_threads_without_runtime);
    suite_add_tcase(s, tc);

    tc = tcase_create("select");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, test_select_ready_ops_and_errors);
    tcase_add_test(tc, test_select_timeout);
    tcase_add_test(tc, test_select_performs_exactly_one);
    tcase_add_test(tc, test_select_parked_is_completed_by_partner);
    tcase_add_test(tc, test_select_fairness);
    tcase_add_test(tc, test_select_across_workers_loses_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("stress");
    tcase_set_timeout(tc, UNIT_TIMEOUT);
    tcase_add_test(tc, test_mpmc_stress_exact_sum);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
