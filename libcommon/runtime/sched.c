/*
 * sched.c - the M:N scheduler: workers, run queues, hand-off between
 * coroutines, cross-thread wake-ups, work stealing, and coro_run().
 *
 * Each worker is an OS thread with its own libevent event_base and three
 * queues: a local ready queue (coroutines resumed on this worker; only this
 * thread touches it, so no lock), a Chase-Lev deque of coroutines not
 * started yet (this thread pushes and pops without a lock; idle workers
 * steal from the other end), and an inbox (lock-free stacks plus an
 * eventfd) through which other threads hand over readied coroutines,
 * spawns and cancellations. A coroutine that parks switches straight to the
 * next ready one; the scheduler loop on the worker's own stack only runs
 * when nothing is ready or every CORO_BUDGET hand-offs, to poll I/O.
 *
 * A started coroutine never moves: compilers may cache thread-local
 * addresses (errno's included) across a switch, and libevent state is per
 * worker. Only coroutines that have not started are stolen.
 *
 * Not for: the public spawn/join/scope API (coro.c) or waiting (wait.c).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#ifdef CORO_SANITIZERS
#include <sanitizer/common_interface_defs.h>
#endif

#include "runtime/sched_int.h"

#define CORO_BUDGET 1024          /* hand-offs between two I/O polls */
#define IDLE_SPIN_NS 50000        /* spin this long before sleeping in epoll */
#define ALTSTACK_SIZE (64 * 1024)

struct runtime *coro__rt;
__thread struct worker *coro__tls_worker;

/* ---- barriers ----------------------------------------------------------- */

int coro__have_membarrier;

static void membarrier_register(void)
{
    coro__have_membarrier =
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

void coro__heavy_fence(void)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (coro__have_membarrier &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
        coro__fatal("membarrier: %s", strerror(errno));
}

/* ---- misuse ----------------------------------------------------------- */

void coro__fatal(const char *fmt, ...)
{
    va_list ap;
    char buf[512];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fprintf(stderr, "coro: fatal: %s\n", buf);
    fflush(stderr);
    abort();
}

coro_t *coro__require(const char *fn)
{
    struct worker *w = coro__tls_worker;
    if (!w || !w->current)
        coro__fatal("%s: called outside a coroutine", fn);
    return w->current;
}

/* ---- the Chase-Lev deque (Le, Pop, Cohen, Zappa Nardelli, PPoPP 2013) ---- */

static int dq_init(struct deque *d)
{
    struct dq_array *a = calloc(1, sizeof(*a) + 256 * sizeof(a->buf[0]));
    if (!a)
        return -1;
    a->cap = 256;
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    atomic_init(&d->arr, a);
    return 0;
}

static void dq_fini(struct deque *d)
{
    struct dq_array *a = atomic_load(&d->arr), *next;
    for (; a; a = next) {
        next = a->retired;
        free(a);
    }
}

static struct dq_array *dq_grow(struct dq_array *a, int64_t t, int64_t b)
{
    struct dq_array *n = calloc(1, sizeof(*n) + 2 * a->cap * sizeof(n->buf[0]));
    if (!n)
        coro__fatal("out of memory growing a run queue");
    n->cap = 2 * a->cap;
    for (int64_t i = t; i < b; i++)
        atomic_store_explicit(&n->buf[i & (n->cap - 1)],
                              atomic_load_explicit(&a->buf[i & (a->cap - 1)], memory_order_relaxed),
                              memory_order_relaxed);
    n->retired = a; /* thieves may still read the old array */
    return n;
}

static void dq_push(struct deque *d, coro_t *c)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    struct dq_array *a = atomic_load_explicit(&d->arr, memory_order_relaxed);
    if (b - t > a->cap - 1) {
        a = dq_grow(a, t, b);
        atomic_store_explicit(&d->arr, a, memory_order_release);
    }
    atomic_store_explicit(&a->buf[b & (a->cap - 1)], c, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
}

static coro_t *dq_pop(struct deque *d)
{
    /* Owner-side emptiness check without the fence: a stale top is never
     * larger than the real one, so "empty" is always right. */
    if (atomic_load_explicit(&d->bottom, memory_order_relaxed) <=
        atomic_load_explicit(&d->top, memory_order_relaxed))
        return NULL;
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    struct dq_array *a = atomic_load_explicit(&d->arr, memory_order_relaxed);
    atomic_store_explicit(&d->bottom, b, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    coro_t *x = NULL;
    if (t <= b) {
        x = atomic_load_explicit(&a->buf[b & (a->cap - 1)], memory_order_relaxed);
        if (t == b) {
            if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                         memory_order_relaxed))
                x = NULL;
            atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        }
    } else {
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
    return x;
}

static coro_t *dq_steal(struct deque *d)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    atomic_thread_fence(memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire);
    if (t >= b)
        return NULL;
    struct dq_array *a = atomic_load_explicit(&d->arr, memory_order_acquire);
    coro_t *x = atomic_load_explicit(&a->buf[t & (a->cap - 1)], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return NULL;
    return x;
}

static int dq_nonempty(struct deque *d)
{
    return atomic_load_explicit(&d->bottom, memory_order_acquire) >
           atomic_load_explicit(&d->top, memory_order_acquire);
}

/* ---- local ready queue --------------------------------------------------- */

static inline coro_t *rq_pop(struct worker *w)
{
    coro_t *c = w->rq_head;
    if (c && !(w->rq_head = c->next))
        w->rq_tail = NULL;
    return c;
}

/* ---- cross-thread hand-over ------------------------------------------------ */

static void wake_worker(struct worker *w)
{
    uint64_t one = 1;
    if (write(w->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        coro__fatal("worker %d: eventfd write: %s", w->id, strerror(errno));
}

/*
 * Called after pushing onto w's inbox (a seq_cst compare-and-swap, ordered
 * before this load). drain_inbox() clears inbox_pending, fences, then
 * takes the lists: either it sees our item, or we see the flag cleared and
 * set it. If the flag is still set, a drain that will see our item is yet
 * to come, and the pusher that set it checks (or checked) w->sleeping:
 * skip the store, the check and a second eventfd write while w is still
 * waking up (a batch of spawns onto a sleeping worker paid one write per
 * spawn).
 */
static void inbox_kick(struct worker *w)
{
    if (atomic_load(&w->inbox_pending))
        return;
    atomic_store(&w->inbox_pending, 1);
    if (atomic_load(&w->sleeping))
        wake_worker(w);
}

void coro__inbox_push(struct worker *w, coro_t *c)
{
    coro_t *old = atomic_load_explicit(&w->in_head, memory_order_relaxed);
    do
        c->next = old;
    while (!atomic_compare_exchange_weak(&w->in_head, &old, c));
    inbox_kick(w);
}

void coro__post_cancel(coro_t *c)
{
    struct worker *w = c->worker;
    atomic_fetch_add(&c->refs, 1);
    coro_t *old = atomic_load_explicit(&w->cancel_head, memory_order_relaxed);
    do
        c->cancel_next = old;
    while (!atomic_compare_exchange_weak(&w->cancel_head, &old, c));
    inbox_kick(w);
}

/* Complete the wait of a parked, cancelled coroutine on its own worker. */
static void deliver_cancel(coro_t *c)
{
    struct coro_waiter *cw = c->cur_wait;
    if (c->state == CORO_PARKED && cw && coro__waiter_claim(cw))
        coro__waiter_finish(cw, ECANCELED);
}

/*
 * A coroutine not started yet arrived on w from another worker. It may
 * have no stack yet (CORO_FRAME_NONE, see coro__prepare_inl): take one from
 * w's pool. Or its stack holds a frame kept from an ended run, which
 * resumes only on the worker it ended on (see coro__entry): build a fresh
 * one. -1 when no stack can be had.
 */
static inline int adopt_new(struct worker *w, coro_t *c)
{
#ifdef CORO_REUSE_FRAME
    if (c->frame_w && c->frame_w != w) {
        if (!c->stack)
            return coro__prepare(c, w);
        coro__ctx_make(&c->ctx, c->stack->lo, c->stack->size, coro__entry);
        c->frame_w = NULL;
    }
#else
    (void)w;
    (void)c;
#endif
    return 0;
}

/* c, spawned onto w by another worker, got no stack here: it ends without
 * running, and coro_join() reports ENOMEM. Everything else is as for an
 * end (coro__entry, coro__reap), minus the stack. */
static __attribute__((noinline, cold)) void never_ran(struct worker *w, coro_t *c)
{
    fprintf(stderr, "coro: coroutine %llu not started on worker %d: no memory for its stack\n",
            (unsigned long long)c->id, w->id);
    c->worker = w;
    c->state = CORO_DEAD;
    c->end_error = ENOMEM;
    coro_t *joiner = coro__finish(c);
    if (joiner)
        coro__rq_push(w, joiner);
    if (atomic_load_explicit(&c->join, memory_order_relaxed) != CORO_JOIN_HANDOFF)
        coro__unref(c);
    coro__live_dec();
}

static void drain_inbox(struct worker *w)
{
    coro_t *c, *next, *cancels, *fifo = NULL;
    atomic_store_explicit(&w->inbox_pending, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    c = atomic_exchange(&w->in_head, NULL);
    cancels = atomic_exchange(&w->cancel_head, NULL);
    for (; c; c = next) { /* newest first: reverse to arrival order */
        next = c->next;
        c->next = fifo;
        fifo = c;
    }
    for (c = fifo; c; c = next) {
        next = c->next;
        if (c->state == CORO_NEW && adopt_new(w, c) < 0) {
            never_ran(w, c);
            continue;
        }
        if (c->state == CORO_NEW && !c->pinned)
            dq_push(&w->dq, c);
        else
            coro__rq_push(w, c); /* resumed, or spawned for this worker only */
    }
    for (; cancels; cancels = next) {
        next = cancels->cancel_next;
        deliver_cancel(cancels);
        coro__unref(cancels);
    }
}

void coro__ready(coro_t *c)
{
    coro__ready_inl(c);
}

/* Offer a new coroutine to worker w (the caller's own, or another). */
void coro__enqueue_new(struct worker *w, coro_t *c)
{
    struct runtime *rt = w->rt;
    if (w != coro__tls_worker) {
        coro__inbox_push(w, c);
        return;
    }
    /* The newest spawn runs next without touching the deque (no fence, no
     * CAS): spawn+join stays cheap. The one it displaces becomes stealable,
     * unless it was spawned for this worker only. */
    coro_t *old = w->runnext;
    w->runnext = c;
    if (!old)
        return;
    if (old->pinned) {
        coro__rq_push(w, old);
        return;
    }
    dq_push(&w->dq, old);
    /* An idle worker could steal it: wake one that sleeps. */
    if (atomic_load_explicit(&rt->nidle, memory_order_relaxed) > 0) {
        for (unsigned i = 0; i < rt->nworkers; i++) {
            struct worker *o = &rt->workers[i];
            if (o != w && atomic_load_explicit(&o->sleeping, memory_order_relaxed)) {
                wake_worker(o);
                break;
            }
        }
    }
}

static void stop_all(struct runtime *rt)
{
    atomic_store(&rt->stopping, 1);
    for (unsigned i = 0; i < rt->nworkers; i++)
        wake_worker(&rt->workers[i]);
}

void coro__live_add(int delta)
{
    if (atomic_fetch_add(&coro__rt->live, delta) + delta == 0)
        stop_all(coro__rt);
}

/* Ends are counted locally and subtracted when the worker runs out of
 * work: one atomic less per coroutine. Spawns are added at once, so the
 * shared count never reaches zero while anything is alive. */
void coro__live_dec(void)
{
    coro__tls_worker->live_delta--;
}

static void flush_live(struct worker *w)
{
    if (w->live_delta) {
        long d = w->live_delta;
        w->live_delta = 0;
        coro__live_add((int)d);
    }
}

/* ---- coroutine structs ---------------------------------------------------- */

/* ---- switching ---------------------------------------------------------------- */

static inline void swap_to(struct worker *w, coro_ctx_t *from, void **from_fake,
                           coro_ctx_t *to, const struct coro_stack *to_stack)
{
#ifdef CORO_SANITIZERS
    const void *lo = to_stack ? to_stack->lo : w->sched_ctx_lo;
    size_t sz = to_stack ? to_stack->size : w->sched_ctx_size;
    __sanitizer_start_switch_fiber(from_fake, lo, sz);
#else
    (void)from_fake;
    (void)to_stack;
#endif
    w->switches++;
    coro__ctx_swap(from, to);
#ifdef CORO_SANITIZERS
    __sanitizer_finish_switch_fiber(from_fake ? *from_fake : NULL, NULL, NULL);
#endif
}

static __attribute__((noinline, cold)) void overflow_message(const coro_t *c)
{
    char buf[200];
    int n = snprintf(buf, sizeof(buf),
                     "coro: fatal: coroutine %llu overflowed its stack (stack_size = %zu bytes); "
                     "raise [runtime] stack_size\n",
                     (unsigned long long)c->id, coro__stack_size());
    if (write(2, buf, (size_t)n) < 0)
        n = 0;
}

/* The check that protects unguarded (slab) stacks: at every switch the
 * stack pointer must still be above the red zone. */
static inline void check_stack(const coro_t *c)
{
    const char *sp;
#if defined(__x86_64__)
    __asm__("movq %%rsp, %0" : "=r"(sp));
#elif defined(__aarch64__)
    __asm__("mov %0, sp" : "=r"(sp));
#else
    sp = __builtin_frame_address(0);
#endif
    if (__builtin_expect(sp < c->stack_limit, 0)) {
        overflow_message(c);
        abort();
    }
}

static inline coro_t *take_new(struct worker *w)
{
    coro_t *c = w->runnext;
    if (c) {
        w->runnext = NULL;
        return c;
    }
    /* dq_pop()'s emptiness check, inline: usually there is nothing. */
    if (atomic_load_explicit(&w->dq.bottom, memory_order_relaxed) <=
        atomic_load_explicit(&w->dq.top, memory_order_relaxed))
        return NULL;
    return dq_pop(&w->dq);
}

static inline coro_t *pick_next(struct worker *w)
{
    coro_t *c;
    /* Unstarted coroutines first (a spawner that yields lets its children
     * start), but every 8th pick serves the ready queue first so a flood
     * of spawns cannot starve resumed coroutines. */
    if ((w->switches & 7) != 0 && (c = take_new(w)))
        return c;
    if ((c = rq_pop(w)))
        return c;
    return take_new(w);
}

static inline __attribute__((always_inline)) void start_or_resume(struct worker *w, coro_t *c)
{
    if (c->state == CORO_NEW) {
        c->worker = w;
        /* Store-load ordering against coro_cancel(): with membarrier the
         * cancelling side pays for it, not every start. */
        if (coro__have_membarrier) {
            atomic_store_explicit(&c->started, 1, memory_order_relaxed);
            atomic_signal_fence(memory_order_seq_cst);
        } else {
            atomic_store(&c->started, 1);
        }
    }
    c->state = CORO_RUNNING;
    w->current = c;
}

/*
 * Switch from the running coroutine cur to next (NULL: the scheduler
 * loop). The one call site of coro__ctx_switch for coroutines, reached by
 * tail calls: the return from the switch is then predicted right whichever
 * coroutine comes back through it.
 */
static __attribute__((noinline)) void switch_to(struct worker *w, coro_t *cur, coro_t *next)
{
    void **fake = cur->state == CORO_DEAD ? NULL : &cur->asan_fake;
    coro_ctx_t *to = &w->sched_ctx;
    const struct coro_stack *to_stack = NULL;
    if (next) {
        start_or_resume(w, next);
        to = &next->ctx;
        to_stack = next->stack;
    } else {
        w->current = NULL;
    }
    swap_to(w, &cur->ctx, fake, to, to_stack);
    /* Back on this thread (a coroutine never moves): reading the worker
     * again keeps nothing alive across the switch, so nothing for the
     * compiler to save besides what coro__ctx_switch saves anyway. */
    w = coro__tls_worker;
    if (w->dead)
        coro__reap(w);
}

/* coro__switch_out() in general: the inbox to drain, the budget used up,
 * the ready queue's turn, older unstarted coroutines, a yield. */
static __attribute__((noinline)) void switch_out_slow(struct worker *w, coro_t *cur)
{
    coro_t *next = NULL;
    if (atomic_load_explicit(&w->inbox_pending, memory_order_relaxed))
        drain_inbox(w);
    if (w->budget) {
        w->budget--;
        next = pick_next(w);
    }
    if (next == cur) {
        /* Served from the ready queue (every 8th pick) and the only one
         * there: a yield or an early wake-up. Let a coroutine that has not
         * started run first, else keep running. */
        if (!(next = take_new(w))) {
            cur->state = CORO_RUNNING;
            return;
        }
        coro__rq_push(w, cur);
    }
    switch_to(w, cur, next);
}

/*
 * The running coroutine gives up the CPU: it has set its state (PARKED,
 * READY after queueing itself, or DEAD). Hand off to the next ready
 * coroutine directly, or to the scheduler loop. The common cases, as
 * pick_next() would choose, without a call that is not a tail call (so
 * nothing to save): the newest spawn, or the head of the ready queue when
 * there is no older unstarted coroutine.
 */
void coro__switch_out(struct worker *w)
{
    coro_t *cur = w->current, *next;
    check_stack(cur);
    if (__builtin_expect(atomic_load_explicit(&w->inbox_pending, memory_order_relaxed) ||
                             !w->budget || !(w->switches & 7),
                         0)) {
        switch_out_slow(w, cur);
        return;
    }
    if ((next = w->runnext)) {
        w->runnext = NULL;
    } else if (atomic_load_explicit(&w->dq.bottom, memory_order_relaxed) <=
               atomic_load_explicit(&w->dq.top, memory_order_relaxed)) {
        if ((next = rq_pop(w)) == cur) {
            /* a yield with nothing else to run (see switch_out_slow) */
            w->budget--;
            cur->state = CORO_RUNNING;
            return;
        }
    } else {
        switch_out_slow(w, cur);
        return;
    }
    w->budget--;
    switch_to(w, cur, next);
}

/*
 * The current coroutine has ended and hands the CPU straight to its
 * joiner, which coro__finish() found parked with nothing else waiting to
 * run: no queueing and no picking. Counts against the I/O polling budget
 * like any hand-off (coro__finish checked that some is left).
 */
void coro__switch_dead(struct worker *w, coro_t *next)
{
    coro_t *cur = w->current;
    check_stack(cur);
    w->budget--;
    switch_to(w, cur, next);
}

static void flush_returns(struct worker *w)
{
    if (w->ret)
        coro__stack_return(w->ret, &w->pool);
    w->ret = NULL;
    w->nret = 0;
}

/* Give d's stack back: to this worker's pool, or, from another worker's
 * spawn, to that worker (through the shared pool): else a worker that
 * spawns onto others keeps mapping fresh stacks while theirs fill up with
 * its old ones. */
static void drop_stack(struct worker *w, coro_t *d)
{
    struct coro_stack *s = d->stack;
#ifdef CORO_REUSE_FRAME
    /* d's last switch saved its frame, in coro__entry's loop: the next
     * spawn on this worker that takes s resumes it (coro__first_frame).
     * Set before s is handed on. */
    s->frame_sp = d->ctx.sp;
    s->frame_owner = w;
#endif
    if (s->home != w->id) {
        s->next = w->ret;
        w->ret = s;
        if (++w->nret >= CORO_STACK_RETURN_BATCH)
            flush_returns(w);
    } else if (!coro__stack_push(&w->pool, s)) {
        coro__stack_put(&w->pool, s);
    }
    d->stack = NULL;
    d->frame_w = NULL;
#ifdef CORO_CTX_UCONTEXT
    coro__ctx_fini(&d->ctx); /* the assembly context holds nothing to free */
#endif
}

/* d ended after a local join, whose joiner frees d on this worker right
 * away: d keeps its stack (counted in the pool) with the first frame
 * rebuilt, so the next spawn that recycles d skips both. */
static int keep_stack(struct worker *w, coro_t *d)
{
    struct coro_stack *s = d->stack;
    if (s->home != w->id || w->pool.n >= w->pool.cap)
        return 0;
#ifdef CORO_REUSE_FRAME
    d->frame_w = w; /* see adopt_new() */
#else
#ifdef CORO_SANITIZERS
    coro__stack_unpoison(s);
#endif
    if (coro__ctx_make(&d->ctx, s->lo, s->size, coro__entry) < 0)
        return 0;
#endif
    w->pool.n++;
    return 1;
}

/* Undo keep_stack() for a struct that is not reused (freed, or cached on
 * a full list): on the stack's own worker, as only the joiner frees it. */
static void unkeep_stack(struct worker *w, coro_t *c)
{
    struct coro_stack *s = c->stack;
    if (!w || s->home != w->id)
        coro__fatal("coroutine %llu freed away from its stack's worker",
                    (unsigned long long)c->id);
#ifdef CORO_REUSE_FRAME
    s->frame_sp = c->ctx.sp; /* as drop_stack() */
    s->frame_owner = c->frame_w == CORO_FRAME_NONE ? NULL : c->frame_w;
#endif
    c->stack = NULL;
    c->frame_w = NULL;
#ifdef CORO_CTX_UCONTEXT
    coro__ctx_fini(&c->ctx);
#endif
    w->pool.n--;
    coro__stack_put(&w->pool, s);
}

void coro__free_stack(coro_t *c)
{
    unkeep_stack(coro__tls_worker, c);
}

/* Release what the coroutine that ended last needed its own stack for. */
void coro__reap(struct worker *w)
{
    coro_t *d = w->dead;
    if (!d)
        return;
    w->dead = NULL;
    if (atomic_load_explicit(&d->join, memory_order_relaxed) == CORO_JOIN_HANDOFF) {
        /* The joiner drops the running reference along with its own (it
         * runs only after this reap: every switch on this worker reaps
         * first). */
        if (!keep_stack(w, d))
            drop_stack(w, d);
    } else {
        drop_stack(w, d);
        coro__unref(d);
    }
    coro__live_dec();
}

void coro__entry(void)
{
#ifdef CORO_SANITIZERS
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    struct worker *w = coro__tls_worker;
    if (w->dead)
        coro__reap(w);
    for (;;) {
        coro_t *c = w->current;
        if (c->fn2)
            c->fn2(c->arg, c->fn2_what);
        else
            c->fn(c->arg);
        coro_t *joiner = coro__finish(c);
        c->state = CORO_DEAD;
        if (joiner) {
#ifdef CORO_REUSE_FRAME
            /* The joiner frees c first thing: keep the stack now, which
             * only counts it (the switch saves this frame), and leave
             * nothing to reap. */
            if (keep_stack(w, c)) {
                coro__live_dec();
                coro__switch_dead(w, joiner);
                continue;
            }
#endif
            w->dead = c;
            coro__switch_dead(w, joiner);
        } else {
            w->dead = c;
            coro__switch_out(w);
        }
        /* Resumed: the struct and its stack were recycled by a spawn on
         * this same worker (adopt_new() builds a fresh frame elsewhere),
         * and this frame runs the new coroutine. */
#ifndef CORO_REUSE_FRAME
        coro__fatal("coroutine %llu resumed after it ended", (unsigned long long)c->id);
#endif
    }
}

int coro__prepare(coro_t *c, struct worker *w)
{
    static struct coro_stack_pool nopool; /* plain threads: no pooling */
    if (!w || !(c->stack = coro__stack_pop(&w->pool)))
        c->stack = coro__stack_get(w ? &w->pool : &nopool);
    if (!c->stack)
        return -1;
    c->stack->home = w ? w->id : -1;
    c->stack_limit = (char *)c->stack->lo + CORO_STACK_REDZONE;
    if (coro__first_frame(c, c->stack, w) < 0) {
        coro__stack_put(w ? &w->pool : &nopool, c->stack);
        c->stack = NULL;
        return -1;
    }
    return 0;
}

/* ---- the worker loop ------------------------------------------------------ */

static void run(struct worker *w, coro_t *c)
{
    start_or_resume(w, c);
    swap_to(w, &w->sched_ctx, &w->sched_fake, &c->ctx, c->stack);
    coro__reap(w);
}

static coro_t *steal(struct worker *w)
{
    struct runtime *rt = w->rt;
    unsigned n = rt->nworkers, start = (unsigned)rand_r(&w->seed) % n;
    for (unsigned i = 0; i < n; i++) {
        struct worker *o = &rt->workers[(start + i) % n];
        coro_t *c;
        if (o != w && (c = dq_steal(&o->dq))) {
            /* A stack kept by o may hold a frame for o only. (It has a
             * stack: this cannot fail.) */
            if (adopt_new(w, c) < 0)
                coro__fatal("stolen coroutine %llu has no stack", (unsigned long long)c->id);
            w->steals++;
            return c;
        }
    }
    return NULL;
}

static int others_have_work(struct worker *w)
{
    struct runtime *rt = w->rt;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (&rt->workers[i] != w && dq_nonempty(&rt->workers[i].dq))
            return 1;
    return 0;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Does the event loop watch anything besides the wake-up eventfd? */
static int has_events(struct worker *w)
{
    return event_base_get_num_events(w->base, EVENT_BASE_COUNT_ADDED) > 1;
}

static int has_local_work(struct worker *w)
{
    return w->rq_head || w->runnext || dq_nonempty(&w->dq);
}

static void idle(struct worker *w)
{
    struct runtime *rt = w->rt;
    atomic_fetch_add(&rt->nidle, 1);
    /* A short spin catches the quick ping-pong between workers without
     * the cost of an eventfd round trip; a worker with fds or timers to
     * watch goes straight to epoll instead, so I/O is never delayed. */
    if (rt->nworkers > 1 && !has_events(w)) {
        uint64_t until = mono_ns() + IDLE_SPIN_NS;
        for (unsigned i = 1;; i++) {
            if (atomic_load_explicit(&w->inbox_pending, memory_order_relaxed) ||
                atomic_load_explicit(&rt->stopping, memory_order_relaxed))
                goto out;
#if defined(__x86_64__)
            __builtin_ia32_pause();
#endif
            if ((i & 63) == 0 && (others_have_work(w) || mono_ns() > until))
                break;
        }
    }
    atomic_store(&w->sleeping, 1);
    if (!atomic_load(&w->inbox_pending) && !atomic_load(&rt->stopping) && !others_have_work(w) &&
        !has_local_work(w))
        event_base_loop(w->base, EVLOOP_ONCE);
    atomic_store(&w->sleeping, 0);
out:
    atomic_fetch_sub(&rt->nidle, 1);
}

static void worker_loop(struct worker *w)
{
    struct runtime *rt = w->rt;
    for (;;) {
        int exhausted = w->budget == 0;
        w->budget = CORO_BUDGET;
        if (atomic_load_explicit(&w->inbox_pending, memory_order_relaxed))
            drain_inbox(w);
        if (exhausted)
            event_base_loop(w->base, EVLOOP_NONBLOCK);
        coro_t *c = pick_next(w);
        if (c) {
            run(w, c);
            continue;
        }
        if (has_events(w)) {
            /* callbacks may ready coroutines or spawn new ones (watches) */
            event_base_loop(w->base, EVLOOP_NONBLOCK);
            if (has_local_work(w))
                continue;
        }
        if ((c = steal(w))) {
            run(w, c);
            continue;
        }
        flush_live(w);
        flush_returns(w);
        if (atomic_load(&rt->stopping))
            break;
        idle(w);
    }
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        coro__fatal("eventfd read: %s", strerror(errno));
}

/* ---- stack overflow on a guard page ---------------------------------------- */

static struct sigaction old_segv, old_bus;

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    struct worker *w = coro__tls_worker;
    coro_t *c = w ? w->current : NULL;
    if (c && coro__stack_in_guard(c->stack, si->si_addr)) {
        overflow_message(c);
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    /* Not ours: put the previous handler back and let the fault recur. */
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
    (void)sig;
    (void)uc;
}

static void install_segv_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

static void altstack_on(struct worker *w)
{
    w->altstack = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
    if (w->altstack == MAP_FAILED) {
        w->altstack = NULL;
        return;
    }
    stack_t ss = { .ss_sp = w->altstack, .ss_size = ALTSTACK_SIZE, .ss_flags = 0 };
    sigaltstack(&ss, &w->old_altstack);
}

static void altstack_off(struct worker *w)
{
    if (!w->altstack)
        return;
    sigaltstack(&w->old_altstack, NULL);
    munmap(w->altstack, ALTSTACK_SIZE);
    w->altstack = NULL;
}

/* ---- workers ----------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    coro__tls_worker = w;
    altstack_on(w);
#ifdef CORO_SANITIZERS
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &w->sched_ctx_lo, &w->sched_ctx_size);
        pthread_attr_destroy(&attr);
    }
#endif
    worker_loop(w);
    for (int i = 0; i < CORO_SLOT_MAX; i++)
        if (w->slots[i] && w->slot_fini[i])
            w->slot_fini[i](w->slots[i]);
    altstack_off(w);
    coro__tls_worker = NULL;
    return NULL;
}

static int worker_init(struct runtime *rt, struct worker *w, int id)
{
    w->id = id;
    w->rt = rt;
    w->seed = (unsigned)id * 2654435761u + 1;
    w->pool.cap = rt->cfg.pool_capacity;
    w->budget = CORO_BUDGET;
    w->efd = -1;
    if (coro__ctx_init_thread(&w->sched_ctx) < 0 || dq_init(&w->dq) < 0)
        return -1;
    /* Precise timers: libevent's default coarse clock makes a 1 ms sleep
     * take a jiffy (4 ms). No locking: only this worker's thread uses it. */
    struct event_config *ec = event_config_new();
    if (!ec)
        return -1;
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER | EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!w->base)
        return -1;
    if ((w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        return -1;
    w->wake_ev = event_new(w->base, w->efd, EV_READ | EV_PERSIST, wake_cb, w);
    if (!w->wake_ev || event_add(w->wake_ev, NULL) < 0)
        return -1;
    return 0;
}

static void worker_fini(struct worker *w)
{
    coro_t *c, *next;
    if (w->wake_ev)
        event_free(w->wake_ev);
    if (w->base)
        event_base_free(w->base);
    if (w->efd >= 0)
        close(w->efd);
    dq_fini(&w->dq);
    flush_returns(w);
    for (c = w->free_coros; c; c = next) {
        next = c->next;
        if (c->stack)
            unkeep_stack(w, c);
        free(c);
    }
    coro__stack_pool_fini(&w->pool);
    coro__ctx_fini(&w->sched_ctx);
}

/* ---- per-worker slots and shutdown hooks -------------------------------------- */

void **coro__worker_slot(enum coro_slot s)
{
    struct worker *w = coro__tls_worker;
    if (!w)
        coro__fatal("per-worker state used outside a worker thread");
    return &w->slots[s];
}

void coro__worker_slot_fini(enum coro_slot s, void (*fini)(void *))
{
    coro__tls_worker->slot_fini[s] = fini;
}

#define MAX_SHUTDOWN_HOOKS 8
static void (*shutdown_hooks[MAX_SHUTDOWN_HOOKS])(void);
static atomic_int nshutdown_hooks;

void coro__at_shutdown(void (*fn)(void))
{
    int n = atomic_load(&nshutdown_hooks);
    for (int i = 0; i < n; i++)
        if (shutdown_hooks[i] == fn)
            return;
    n = atomic_fetch_add(&nshutdown_hooks, 1);
    if (n >= MAX_SHUTDOWN_HOOKS)
        coro__fatal("too many shutdown hooks");
    shutdown_hooks[n] = fn;
}

struct worker *coro__worker_self(void)
{
    return coro__tls_worker;
}

struct event_base *coro__event_base(void)
{
    return coro__tls_worker ? coro__tls_worker->base : NULL;
}

int coro__worker_id(const struct worker *w)
{
    return w->id;
}

/* ---- coro_run ---------------------------------------------------------------------- */

static atomic_int running;

static void teardown(struct runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++)
        worker_fini(&rt->workers[i]);
    free(rt->workers);
    coro__stack_global_fini();
    free(rt);
}

int coro__start(struct runtime *rt, coro_t *main_coro);

int coro_run(const struct coro_config *cfg, void (*main_fn)(void *), void *arg)
{
    struct coro_config def;
    if (!cfg) {
        coro_config_default(&def);
        cfg = &def;
    }
    if (coro_config_check(cfg) || !main_fn) {
        errno = EINVAL;
        return -1;
    }
    int expect = 0;
    if (!atomic_compare_exchange_strong(&running, &expect, 1)) {
        errno = EBUSY;
        return -1;
    }
    struct runtime *rt = calloc(1, sizeof(*rt));
    if (!rt)
        goto fail_running;
    rt->cfg = *cfg;
    rt->nworkers = cfg->workers;
    coro__stack_global_init(cfg->stack_size);
    coro__stack_shared_cap(cfg->pool_capacity * cfg->workers);
    /* aligned as struct worker wants: its inbox lists and flags each own
     * a cache line */
    if (!(rt->workers = aligned_alloc(_Alignof(struct worker),
                                      rt->nworkers * sizeof(*rt->workers))))
        goto fail;
    memset(rt->workers, 0, rt->nworkers * sizeof(*rt->workers));
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (worker_init(rt, &rt->workers[i], (int)i) < 0)
            goto fail;
    coro__rt = rt;
    atomic_store(&nshutdown_hooks, atomic_load(&nshutdown_hooks)); /* keep hooks */

    struct worker *w0 = &rt->workers[0];
    coro__tls_worker = w0;
    coro_t *m = coro_spawn(main_fn, arg);
    if (!m)
        goto fail_tls;
    coro_detach(m);

    install_segv_handler();
    membarrier_register();
    unsigned started = 1;
    for (; started < rt->nworkers; started++)
        if (pthread_create(&rt->workers[started].thread, NULL, worker_main,
                           &rt->workers[started]) != 0)
            coro__fatal("cannot start worker thread %u: %s", started, strerror(errno));
    coro__tls_worker = NULL;
    worker_main(w0);
    for (unsigned i = 1; i < started; i++)
        pthread_join(rt->workers[i].thread, NULL);
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);

    int n = atomic_load(&nshutdown_hooks);
    for (int i = 0; i < n; i++)
        shutdown_hooks[i]();
    coro__rt = NULL;
    teardown(rt);
    atomic_store(&running, 0);
    return 0;

fail_tls:
    coro__tls_worker = NULL;
    coro__rt = NULL;
fail:;
    int e = errno ? errno : ENOMEM;
    if (rt->workers)
        teardown(rt);
    else
        free(rt);
    errno = e;
fail_running:
    atomic_store(&running, 0);
    return -1;
}

/* ---- stats ------------------------------------------------------------------------- */

void coro_stats_get(struct coro_stats *st)
{
    struct runtime *rt = coro__rt;
    memset(st, 0, sizeof(*st));
    st->watches = atomic_load(&coro__stat_watches);
    if (!rt)
        return;
    st->spawned = atomic_load(&rt->spawned);
    long live = atomic_load(&rt->live) - (long)st->watches;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = &rt->workers[i];
        st->switches += w->switches;
        st->steals += w->steals;
        st->stacks_pooled += w->pool.n;
        st->spawned += w->spawned;
        live += w->live_delta;
    }
    st->alive = live > 0 ? (uint64_t)live : 0;
    coro__stack_stats(&st->stacks_mapped, &st->stacks_guarded);
}
