/*
 * wait.c - parking and waking: the one mechanism under every blocking call
 * (channels, locks, I/O, DNS, joins, sleeps). See the protocol at the top of
 * runtime_int.h. A coroutine parks by switching away; a plain thread parks
 * on a futex, so channels and locks also work between coroutines and
 * ordinary threads.
 *
 * Not for: deciding what runs next (sched.c).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "runtime/sched_int.h"

void coro__waiter_init(struct coro_waiter *w)
{
    coro__waiter_init_inl(w, coro__tls_worker ? coro__tls_worker->current : NULL);
}

void coro__waiter_finish(struct coro_waiter *w, int result)
{
    coro_t *c = w->coro;
    w->result = result;
    if (c) {
        atomic_store_explicit(&w->state, CORO_W_DONE, memory_order_release);
        coro__ready_inl(c);
        return;
    }
    atomic_store_explicit(&w->state, CORO_W_DONE, memory_order_release);
    atomic_store_explicit(&w->futex, 1, memory_order_release);
    /* The sleeper may already be gone; a wake on a dead address is harmless. */
    syscall(SYS_futex, &w->futex, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Claim w ourselves and complete it with result, without waking anyone. */
static int self_complete(struct coro_waiter *w, int result)
{
    w->result = result;
    atomic_store_explicit(&w->state, CORO_W_DONE, memory_order_release);
    return result;
}

static int thread_park(struct coro_waiter *w, int64_t timeout_ms)
{
    struct timespec deadline, now, rel, *relp = NULL;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (timeout_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
    }
    while (atomic_load_explicit(&w->futex, memory_order_acquire) == 0) {
        relp = NULL;
        if (timeout_ms >= 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            rel.tv_sec = deadline.tv_sec - now.tv_sec;
            rel.tv_nsec = deadline.tv_nsec - now.tv_nsec;
            if (rel.tv_nsec < 0) {
                rel.tv_sec--;
                rel.tv_nsec += 1000000000;
            }
            if (rel.tv_sec < 0) {
                if (coro__waiter_claim(w))
                    return self_complete(w, ETIMEDOUT);
                timeout_ms = -1; /* claimed by a waker: it finishes soon */
                continue;
            }
            relp = &rel;
        }
        syscall(SYS_futex, &w->futex, FUTEX_WAIT_PRIVATE, 0, relp, NULL, 0);
    }
    return w->result;
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct coro_waiter *w = arg;
    if (coro__waiter_claim(w))
        coro__waiter_finish(w, ETIMEDOUT);
}

int coro__park(struct coro_waiter *w, int64_t timeout_ms, int flags)
{
    struct worker *wk = coro__tls_worker;
    coro_t *c = wk ? wk->current : NULL;
    if (!c)
        return thread_park(w, timeout_ms);

    if (flags & CORO_PARK_CANCELLABLE) {
        if (atomic_load(&c->cancelled) && coro__waiter_claim(w))
            return self_complete(w, ECANCELED);
        c->cur_wait = w;
    }
    if (timeout_ms == 0 && coro__waiter_claim(w)) {
        c->cur_wait = NULL;
        return self_complete(w, ETIMEDOUT);
    }
    struct event timer;
    if (timeout_ms > 0) {
        struct timeval tv = { .tv_sec = timeout_ms / 1000,
                              .tv_usec = (timeout_ms % 1000) * 1000 };
        evtimer_assign(&timer, wk->base, timeout_cb, w);
        evtimer_add(&timer, &tv);
    }
    /* Whoever claimed w makes us ready exactly once, even if it marked w
     * done before we got here: so always switch out, and take that ready. */
    do {
        c->state = CORO_PARKED;
        coro__switch_out(wk);
    } while (atomic_load_explicit(&w->state, memory_order_acquire) != CORO_W_DONE);
    if (timeout_ms > 0)
        evtimer_del(&timer);
    c->cur_wait = NULL;
    return w->result;
}

/* ---- wait queues ---------------------------------------------------------- */

void coro__waitq_push(struct coro_waitq *q, struct coro_waiter *w)
{
    coro__waitq_push_inl(q, w);
}

void coro__waitq_remove(struct coro_waitq *q, struct coro_waiter *w)
{
    if (!w->queued)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->next = w->prev = NULL;
    w->queued = 0;
}

struct coro_waiter *coro__waitq_claim_first(struct coro_waitq *q)
{
    struct coro_waiter *w;
    while ((w = q->head)) {
        coro__waitq_remove(q, w);
        if (coro__waiter_claim(w->owner ? w->owner : w))
            return w;
    }
    return NULL;
}

/* ---- sleeping ----------------------------------------------------------------- */

int coro_sleep_ms(uint64_t ms)
{
    coro__require("coro_sleep_ms");
    if (ms == 0) {
        coro_yield();
        if (coro_cancelled()) {
            errno = ECANCELED;
            return -1;
        }
        return 0;
    }
    struct coro_waiter w;
    coro__waiter_init(&w);
    int64_t t = ms > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)ms;
    if (coro__park(&w, t, CORO_PARK_CANCELLABLE) == ECANCELED) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}
