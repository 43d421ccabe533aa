/*
 * sync.c - coroutine-aware mutex, condition variable, semaphore and wait
 * group, all on the parking protocol of runtime_int.h.
 *
 * Each object is a spinlock around a little state and a FIFO wait queue.
 * Waking hands the resource over directly (the unlocked mutex, the posted
 * semaphore unit) to the first waiter still waiting, so a woken waiter
 * never has to compete again and waiters are served in arrival order.
 * A plain thread parks the same way (coro__park blocks it on a futex).
 *
 * Not here: channels (chan.c), timers and cancellation (wait.c).
 */
#include <errno.h>

#include "coro/sync.h"
#include "runtime/runtime_int.h"

/* Queue on q (object lock held), release the lock and park. After a failed
 * wait the waiter is unlinked if no waker did it. Returns w.result. */
static int wait_on(atomic_int *spin, struct coro_waitq *q, int64_t ms, int flags)
{
    struct coro_waiter w;
    coro__waiter_init(&w);
    coro__waitq_push(q, &w);
    coro__spin_unlock(spin);

    int r = coro__park(&w, ms, flags);
    if (r != 0) {
        coro__spin_lock(spin);
        if (w.queued)
            coro__waitq_remove(q, &w);
        coro__spin_unlock(spin);
    }
    return r;
}

static int fail_with(int err)
{
    errno = err;
    return -1;
}

/* Claim every waiter of q (lock held) into a private list for wake_list. */
static struct coro_waiter *claim_all(struct coro_waitq *q)
{
    struct coro_waiter *list = NULL, *w;
    while ((w = coro__waitq_claim_first(q)) != NULL) {
        w->next = list;
        list = w;
    }
    return list;
}

static void wake_list(struct coro_waiter *list)
{
    while (list) {
        struct coro_waiter *w = list;
        list = w->next; /* read before finishing: w may vanish after */
        coro__waiter_finish(w, 0);
    }
}

/* ---- mutex -------------------------------------------------------------- */

int coro_mutex_init(coro_mutex_t *m)
{
    atomic_init(&m->spin, 0);
    m->locked = 0;
    m->q.head = m->q.tail = NULL;
    return 0;
}

void coro_mutex_fini(coro_mutex_t *m)
{
    (void)m;
}

/* On success of a wait the unlocker has already handed the lock over. */
static int mutex_lock(coro_mutex_t *m, int flags)
{
    coro__spin_lock(&m->spin);
    if (!m->locked) {
        m->locked = 1;
        coro__spin_unlock(&m->spin);
        return 0;
    }
    return wait_on(&m->spin, &m->q, -1, flags);
}

int coro_mutex_lock(coro_mutex_t *m)
{
    int r = mutex_lock(m, CORO_PARK_CANCELLABLE);
    return r ? fail_with(r) : 0;
}

int coro_mutex_trylock(coro_mutex_t *m)
{
    coro__spin_lock(&m->spin);
    int busy = m->locked;
    m->locked = 1;
    coro__spin_unlock(&m->spin);
    return busy ? fail_with(EBUSY) : 0;
}

void coro_mutex_unlock(coro_mutex_t *m)
{
    coro__spin_lock(&m->spin);
    struct coro_waiter *w = coro__waitq_claim_first(&m->q);
    if (!w)
        m->locked = 0; /* else it stays locked: w owns it now */
    coro__spin_unlock(&m->spin);
    if (w)
        coro__waiter_finish(w, 0);
}

/* ---- condition variable -------------------------------------------------- */

int coro_cond_init(coro_cond_t *c)
{
    atomic_init(&c->spin, 0);
    c->q.head = c->q.tail = NULL;
    return 0;
}

void coro_cond_fini(coro_cond_t *c)
{
    (void)c;
}

int coro_cond_timedwait(coro_cond_t *c, coro_mutex_t *m, int64_t ms)
{
    /* Queue before unlocking m: a signal sent right after cannot be lost. */
    coro__spin_lock(&c->spin);
    struct coro_waiter w;
    coro__waiter_init(&w);
    coro__waitq_push(&c->q, &w);
    coro__spin_unlock(&c->spin);
    coro_mutex_unlock(m);

    int r = coro__park(&w, ms, CORO_PARK_CANCELLABLE);
    if (r != 0) {
        coro__spin_lock(&c->spin);
        if (w.queued)
            coro__waitq_remove(&c->q, &w);
        coro__spin_unlock(&c->spin);
    }
    /* The caller's invariants assume m is held: re-lock whatever happened,
     * not cancellable (a cancelled waiter still gets the lock back). */
    mutex_lock(m, 0);
    return r ? fail_with(r) : 0;
}

int coro_cond_wait(coro_cond_t *c, coro_mutex_t *m)
{
    return coro_cond_timedwait(c, m, -1);
}

void coro_cond_signal(coro_cond_t *c)
{
    coro__spin_lock(&c->spin);
    struct coro_waiter *w = coro__waitq_claim_first(&c->q);
    coro__spin_unlock(&c->spin);
    if (w)
        coro__waiter_finish(w, 0);
}

void coro_cond_broadcast(coro_cond_t *c)
{
    coro__spin_lock(&c->spin);
    struct coro_waiter *list = claim_all(&c->q);
    coro__spin_unlock(&c->spin);
    wake_list(list);
}

/* ---- semaphore ----------------------------------------------------------- */

int coro_sem_init(coro_sem_t *s, uint64_t value)
{
    atomic_init(&s->spin, 0);
    s->value = value;
    s->q.head = s->q.tail = NULL;
    return 0;
}

void coro_sem_fini(coro_sem_t *s)
{
    (void)s;
}

int coro_sem_timedwait(coro_sem_t *s, int64_t ms)
{
    coro__spin_lock(&s->spin);
    if (s->value > 0) {
        s->value--;
        coro__spin_unlock(&s->spin);
        return 0;
    }
    if (ms == 0) {
        coro__spin_unlock(&s->spin);
        return fail_with(ETIMEDOUT);
    }
    int r = wait_on(&s->spin, &s->q, ms, CORO_PARK_CANCELLABLE);
    return r ? fail_with(r) : 0;
}

int coro_sem_wait(coro_sem_t *s)
{
    return coro_sem_timedwait(s, -1);
}

int coro_sem_trywait(coro_sem_t *s)
{
    if (coro_sem_timedwait(s, 0) == 0)
        return 0;
    return fail_with(EAGAIN);
}

void coro_sem_post(coro_sem_t *s)
{
    coro__spin_lock(&s->spin);
    struct coro_waiter *w = coro__waitq_claim_first(&s->q);
    if (!w)
        s->value++; /* else the unit goes straight to w */
    coro__spin_unlock(&s->spin);
    if (w)
        coro__waiter_finish(w, 0);
}

uint64_t coro_sem_value(coro_sem_t *s)
{
    coro__spin_lock(&s->spin);
    uint64_t v = s->value;
    coro__spin_unlock(&s->spin);
    return v;
}

/* ---- wait group ---------------------------------------------------------- */

int coro_wg_init(coro_wg_t *wg)
{
    atomic_init(&wg->spin, 0);
    wg->count = 0;
    wg->q.head = wg->q.tail = NULL;
    return 0;
}

void coro_wg_fini(coro_wg_t *wg)
{
    (void)wg;
}

void coro_wg_add(coro_wg_t *wg, int64_t n)
{
    struct coro_waiter *list = NULL;
    coro__spin_lock(&wg->spin);
    wg->count += n;
    int64_t now = wg->count;
    if (now == 0)
        list = claim_all(&wg->q);
    coro__spin_unlock(&wg->spin);
    if (now < 0)
        coro__fatal("coro_wg_add: wait group count below zero (%lld)", (long long)now);
    wake_list(list);
}

void coro_wg_done(coro_wg_t *wg)
{
    coro_wg_add(wg, -1);
}

int coro_wg_timedwait(coro_wg_t *wg, int64_t ms)
{
    coro__spin_lock(&wg->spin);
    if (wg->count == 0) {
        coro__spin_unlock(&wg->spin);
        return 0;
    }
    if (ms == 0) {
        coro__spin_unlock(&wg->spin);
        return fail_with(ETIMEDOUT);
    }
    int r = wait_on(&wg->spin, &wg->q, ms, CORO_PARK_CANCELLABLE);
    return r ? fail_with(r) : 0;
}

int coro_wg_wait(coro_wg_t *wg)
{
    return coro_wg_timedwait(wg, -1);
}
