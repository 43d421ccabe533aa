/*
 * coro.c - the public coroutine lifecycle: configuration checks, spawn,
 * join, detach, yield, cancel, and structured scopes.
 *
 * Handles are reference counted: one reference for the handle (dropped by
 * join/detach, or by the scope when a member ends) and one for the running
 * coroutine (dropped when its stack is reaped). A joiner parks on a waiter
 * embedded in the coroutine itself, so a cancelled joiner can walk away
 * while the ending coroutine still safely touches that waiter.
 *
 * Not for: the scheduler and switching (sched.c), parking (wait.c).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/sched_int.h"

/* ---- configuration ------------------------------------------------------------ */

void coro_config_default(struct coro_config *cfg)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = n > 0 ? (n > (long)CORO_MAX_WORKERS ? CORO_MAX_WORKERS : (unsigned)n) : 1;
    cfg->stack_size = CORO_DEFAULT_STACK_SIZE;
    cfg->pool_capacity = CORO_DEFAULT_POOL_CAPACITY;
}

const char *coro_config_check(const struct coro_config *cfg)
{
    static __thread char why[128];
    if (!cfg)
        return "no configuration";
    if (cfg->workers < 1 || cfg->workers > CORO_MAX_WORKERS) {
        snprintf(why, sizeof(why), "workers must be between 1 and %u (got %u)", CORO_MAX_WORKERS,
                 cfg->workers);
        return why;
    }
    if (cfg->stack_size < CORO_MIN_STACK_SIZE || cfg->stack_size > CORO_MAX_STACK_SIZE) {
        snprintf(why, sizeof(why), "stack_size must be between 16k and 1G (got %zu bytes)",
                 cfg->stack_size);
        return why;
    }
    if (cfg->pool_capacity > 1000000) {
        snprintf(why, sizeof(why), "pool_capacity must be at most 1000000 (got %zu)",
                 cfg->pool_capacity);
        return why;
    }
    return NULL;
}

/* ---- spawn ------------------------------------------------------------------- */

static struct worker *round_robin(struct runtime *rt)
{
    return &rt->workers[atomic_fetch_add_explicit(&rt->rr, 1, memory_order_relaxed) %
                        rt->nworkers];
}

static void scope_link(coro_scope_t *s, coro_t *c);

/* Fill in a coroutine made by self (NULL: a plain thread) for worker dst. */
static inline __attribute__((always_inline)) void
spawn_init(struct runtime *rt, struct worker *self, coro_t *c, struct worker *dst, int pinned,
           void (*fn)(void *), coro__fn2 fn2, void *arg, int what)
{
    c->fn = fn;
    c->fn2 = fn2;
    c->arg = arg;
    c->fn2_what = what;
    c->state = CORO_NEW;
    c->handle = CORO_H_JOINABLE;
    c->worker = dst;
    c->pinned = pinned;
    atomic_init(&c->refs, 2);
    if (self) {
        c->id = (++self->idseq << 10) | (uint64_t)self->id;
        self->spawned++;
    } else {
        c->id = (atomic_fetch_add(&rt->next_id, 1) << 10) | 1023;
        atomic_fetch_add(&rt->spawned, 1);
    }
    /* rt->live counts live coroutines plus ends not yet subtracted (see
     * coro__live_dec): a spawn may take over one of this worker's pending
     * ends instead of adding, which leaves rt->live unchanged and every
     * term non-negative, so it still reaches zero only when all is done. */
    if (self && self->live_delta < 0)
        self->live_delta++;
    else
        atomic_fetch_add_explicit(&rt->live, 1, memory_order_relaxed);
}

/* Create a coroutine for worker dst. pinned: it runs only there (no
 * stealing). scope, when set, is locked by the caller: the member is linked
 * in before it can run (and end) on another worker. */
static inline __attribute__((always_inline)) coro_t *
spawn_inl(struct worker *dst, int pinned, void (*fn)(void *), coro__fn2 fn2, void *arg, int what,
          coro_scope_t *scope)
{
    struct runtime *rt = coro__rt;
    struct worker *self = coro__tls_worker;
    coro_t *c = coro__alloc(self);
    if (!c)
        return NULL;
    if (coro__prepare_inl(c, self, dst != self) < 0) {
        coro__free(c);
        errno = ENOMEM;
        return NULL;
    }
    spawn_init(rt, self, c, dst, pinned, fn, fn2, arg, what);
    if (scope)
        scope_link(scope, c);
    /* The common case, the caller's worker with an empty runnext, inline. */
    if (dst == self && !self->runnext)
        self->runnext = c;
    else
        coro__enqueue_new(dst, c);
    return c;
}

static coro_t *spawn(struct worker *dst, int pinned, void (*fn)(void *), coro__fn2 fn2, void *arg,
                     int what, coro_scope_t *scope)
{
    return spawn_inl(dst, pinned, fn, fn2, arg, what, scope);
}

/* The caller's worker, or any worker for plain threads; NULL/ESRCH without
 * a runtime. */
static struct worker *default_worker(void)
{
    if (!coro__rt) {
        errno = ESRCH;
        return NULL;
    }
    return coro__tls_worker ? coro__tls_worker : round_robin(coro__rt);
}

static __attribute__((noinline)) coro_t *spawn_any(void (*fn)(void *), void *arg)
{
    struct worker *self = coro__tls_worker;
    if (self && coro__rt) /* in a worker: spawn for it, specialised inline */
        return spawn_inl(self, 0, fn, NULL, arg, 0, NULL);
    struct worker *dst = default_worker();
    return dst ? spawn(dst, 0, fn, NULL, arg, 0, NULL) : NULL;
}

coro_t *coro_spawn(void (*fn)(void *), void *arg)
{
    /* The common case calls nothing (no registers to save): a cached
     * struct that kept its stack and first frame (see keep_stack() in
     * sched.c), run next on this worker. */
    struct worker *self = coro__tls_worker;
    coro_t *c;
    if (self && coro__rt && (c = self->free_coros) && c->stack && !self->runnext) {
        c = coro__alloc(self);
        self->pool.n--; /* as coro__prepare_inl() */
        spawn_init(coro__rt, self, c, self, 0, fn, NULL, arg, 0);
        self->runnext = c;
        return c;
    }
    return spawn_any(fn, arg);
}

/* An explicit worker pins the coroutine there (no stealing): per-worker
 * listeners and fd state rely on it. CORO_WORKER_ANY only picks a start. */
coro_t *coro_spawn_on(int worker, void (*fn)(void *), void *arg)
{
    struct runtime *rt = coro__rt;
    if (!rt) {
        errno = ESRCH;
        return NULL;
    }
    if (worker == CORO_WORKER_ANY)
        return spawn(round_robin(rt), 0, fn, NULL, arg, 0, NULL);
    if (worker < 0 || (unsigned)worker >= rt->nworkers) {
        errno = EINVAL;
        return NULL;
    }
    return spawn(&rt->workers[worker], 1, fn, NULL, arg, 0, NULL);
}

coro_t *coro__spawn_fn2(coro__fn2 fn, void *arg, int what)
{
    struct worker *dst = default_worker();
    coro_t *c = dst ? spawn(dst, 1, NULL, fn, arg, what, NULL) : NULL;
    if (c)
        coro_detach(c);
    return c;
}

/* ---- join / detach / end ------------------------------------------------------- */

static const char *handle_kind(int h)
{
    switch (h) {
    case CORO_H_DETACHED: return "detached";
    case CORO_H_JOINED: return "already joined";
    case CORO_H_SCOPE: return "owned by a scope";
    default: return "joinable";
    }
}

/* Drop the handle's reference and report how c ended. */
static int join_result(coro_t *c, int refs)
{
    int err = c->end_error;
    if (refs == 2)
        coro__unref2(c);
    else
        coro__unref(c);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/*
 * c will end on the joiner's own worker w: it is pinned there, or it is
 * w's runnext (not stealable; pinned now so that a later spawn displacing
 * it cannot make it stealable). Its end then runs on this thread, as does
 * any cancellation of the joiner (delivered on the joiner's worker), so
 * join and join_w need no atomic read-modify-write.
 */
static int join_local(coro_t *c, coro_t *self, struct worker *w)
{
    if (c == w->runnext)
        c->pinned = 1;
    /* Never in a wait queue, never a plain thread's: only these matter. */
    atomic_store_explicit(&c->join_w.state, CORO_W_WAITING, memory_order_relaxed);
    c->join_w.result = 0;
    c->join_w.coro = self;
    atomic_store_explicit(&c->join, CORO_JOIN_LOCAL, memory_order_relaxed);
    /* The hand-off to c goes through coro__switch_out like any other (its
     * common case is a few loads): a direct switch from here was measured
     * slower, before every switch went through one call site. */
    if (coro__park_inl(&c->join_w, self, w) == ECANCELED) {
        /* c ends on its own later; its end may still look at join_w. */
        coro__unref(c);
        errno = ECANCELED;
        return -1;
    }
    /* Completed by coro__finish: c is reaped and left us its reference. */
    return join_result(c, 2);
}

int coro_join(coro_t *c)
{
    struct worker *w = coro__tls_worker;
    coro_t *self = w ? w->current : NULL;
    if (!self)
        coro__fatal("coro_join: called outside a coroutine");
    if (!c)
        coro__fatal("coro_join: NULL handle");
    if (c == self)
        coro__fatal("coro_join: coroutine %llu joins itself", (unsigned long long)c->id);
    if (c->handle != CORO_H_JOINABLE)
        coro__fatal("coro_join: coroutine %llu is %s", (unsigned long long)c->id,
                    handle_kind(c->handle));
    c->handle = CORO_H_JOINED;
    if (atomic_load_explicit(&c->join, memory_order_acquire) == CORO_JOIN_DONE)
        return join_result(c, 1);
    if (c->worker == w && (c == w->runnext || c->pinned))
        return join_local(c, self, w);
    uintptr_t expect = 0;
    coro__waiter_init(&c->join_w);
    if (atomic_compare_exchange_strong(&c->join, &expect, CORO_JOIN_WAITING) &&
        coro__park(&c->join_w, -1, CORO_PARK_CANCELLABLE) == ECANCELED) {
        /* Cancelled while waiting: c now ends on its own. Its end may
         * still look at join_w, which lives as long as c does. */
        coro__unref(c);
        errno = ECANCELED;
        return -1;
    }
    return join_result(c, 1);
}

void coro_detach(coro_t *c)
{
    if (!c)
        coro__fatal("coro_detach: NULL handle");
    if (c->handle != CORO_H_JOINABLE)
        coro__fatal("coro_detach: coroutine %llu is %s", (unsigned long long)c->id,
                    handle_kind(c->handle));
    c->handle = CORO_H_DETACHED;
    coro__unref(c);
}

/* ---- yield, cancel, identity ---------------------------------------------------- */

void coro_yield(void)
{
    coro_t *c = coro__require("coro_yield");
    /* Queue itself behind the others; with nothing else ready the
     * hand-off picks it again and returns without a switch. */
    c->state = CORO_READY;
    coro__ready_inl(c);
    coro__switch_out(c->worker);
}

void coro_cancel(coro_t *c)
{
    if (!c)
        return;
    if (atomic_exchange(&c->cancelled, 1))
        return;
    if (!atomic_load(&c->started)) {
        /* Not started, or started so recently that we cannot see it: a
         * process-wide barrier (the coroutine side has only a compiler
         * barrier, see start_or_resume) settles which. */
        coro__heavy_fence();
        if (!atomic_load(&c->started))
            return; /* its first blocking call will see the flag */
    }
    struct worker *w = coro__tls_worker;
    if (w && c->worker == w) {
        if (c != w->current && c->state == CORO_PARKED && c->cur_wait &&
            coro__waiter_claim(c->cur_wait))
            coro__waiter_finish(c->cur_wait, ECANCELED);
        return;
    }
    coro__post_cancel(c);
}

coro_t *coro_self(void)
{
    struct worker *w = coro__tls_worker;
    return w ? w->current : NULL;
}

int coro_cancelled(void)
{
    coro_t *c = coro_self();
    return c ? atomic_load(&c->cancelled) : 0;
}

uint64_t coro_id(const coro_t *c)
{
    return c ? c->id : 0;
}

int coro_worker_index(void)
{
    struct worker *w = coro__tls_worker;
    return w ? w->id : -1;
}

unsigned coro_worker_count(void)
{
    return coro__rt ? coro__rt->nworkers : 0;
}

uint64_t coro_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- scopes ---------------------------------------------------------------------- */

void coro_scope_init(coro_scope_t *s)
{
    pthread_mutex_init(&s->mu, NULL);
    s->members = NULL;
    s->live = 0;
    s->waiter = NULL;
    s->cancelled = 0;
}

coro_t *coro_scope_spawn(coro_scope_t *s, void (*fn)(void *), void *arg)
{
    /* Registered before it can run, so the scope never misses an end. */
    struct worker *dst = default_worker();
    if (!dst)
        return NULL;
    pthread_mutex_lock(&s->mu);
    coro_t *c = spawn(dst, 0, fn, NULL, arg, 0, s);
    pthread_mutex_unlock(&s->mu);
    return c;
}

static void scope_link(coro_scope_t *s, coro_t *c)
{
    c->handle = CORO_H_SCOPE;
    c->scope = s;
    c->scope_prev = NULL;
    c->scope_next = s->members;
    if (s->members)
        s->members->scope_prev = c;
    s->members = c;
    s->live++;
    if (s->cancelled)
        atomic_store(&c->cancelled, 1); /* not started: the flag is enough */
}

/* coro__finish() of a scope's member: unlink it, wake the scope's waiter
 * after the last one. */
void coro__scope_member_ended(coro_t *c)
{
    coro_scope_t *s = c->scope;
    struct coro_waiter *wake = NULL;
    pthread_mutex_lock(&s->mu);
    if (c->scope_prev)
        c->scope_prev->scope_next = c->scope_next;
    else
        s->members = c->scope_next;
    if (c->scope_next)
        c->scope_next->scope_prev = c->scope_prev;
    if (--s->live == 0 && s->waiter && coro__waiter_claim(s->waiter)) {
        wake = s->waiter;
        s->waiter = NULL;
    }
    /* Finish while holding the lock: once it is released, the waiter may
     * return and the scope (and the waiter) go away. */
    if (wake)
        coro__waiter_finish(wake, 0);
    pthread_mutex_unlock(&s->mu);
    coro__unref(c); /* the scope's handle reference */
}

void coro_scope_cancel(coro_scope_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->cancelled = 1;
    for (coro_t *c = s->members; c; c = c->scope_next)
        coro_cancel(c);
    pthread_mutex_unlock(&s->mu);
}

int coro_scope_wait(coro_scope_t *s)
{
    coro__require("coro_scope_wait");
    int result = 0;
    for (;;) {
        struct coro_waiter w;
        coro__waiter_init(&w);
        pthread_mutex_lock(&s->mu);
        if (s->live == 0) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        s->waiter = &w;
        pthread_mutex_unlock(&s->mu);
        if (coro__park(&w, -1, result ? 0 : CORO_PARK_CANCELLABLE) == ECANCELED) {
            /* Our waiter was claimed by the cancellation: withdraw it,
             * cancel the members and keep waiting, uninterruptibly. */
            pthread_mutex_lock(&s->mu);
            if (s->waiter == &w)
                s->waiter = NULL;
            pthread_mutex_unlock(&s->mu);
            coro_scope_cancel(s);
            result = -1;
        }
    }
    if (result) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}
