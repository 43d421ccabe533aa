/*
 * sched_int.h - scheduler internals shared by sched.c, coro.c, wait.c and
 * stack.c: the worker, the runtime, stacks and the stealable deque.
 * Private to libcommon/runtime.
 */
#ifndef CORO_SCHED_INT_H
#define CORO_SCHED_INT_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime_int.h"

/* ---- stacks (stack.c) -------------------------------------------------- */
struct coro_stack {
    void *lo;                 /* lowest usable byte */
    size_t size;              /* usable bytes */
    void *map;                /* guarded: whole mapping incl. guard page */
    size_t map_len;
    int guarded;
    unsigned vg_id;           /* valgrind stack id */
    int home;                 /* worker that last spawned on it (-1: none) */
    struct coro_stack *next;  /* pool / free list link */
    /* With CORO_REUSE_FRAME: the frame of a coroutine that ended on
     * frame_owner, still on this stack and resumable there (at frame_sp)
     * as the next coroutine's first frame. NULL: none. */
    const struct worker *frame_owner;
    void *frame_sp;
};

struct coro_stack_pool {
    struct coro_stack *head;
    size_t n, cap;
};

/* Bytes at the bottom of an unguarded stack that a switched-out coroutine
 * must not have reached: the overflow check at every switch. */
#define CORO_STACK_REDZONE 2048

void coro__stack_global_init(size_t stack_size);
void coro__stack_global_fini(void);
void coro__stack_shared_cap(size_t cap);
struct coro_stack *coro__stack_get(struct coro_stack_pool *p);
void coro__stack_put(struct coro_stack_pool *p, struct coro_stack *s);
/* Stacks reaped on a worker other than their home: hand the list back
 * through the shared pool (one lock for all), so a spawner's stacks flow
 * back to it; what does not fit goes to p or is released. */
void coro__stack_return(struct coro_stack *list, struct coro_stack_pool *p);
#define CORO_STACK_RETURN_BATCH 32
void coro__stack_pool_fini(struct coro_stack_pool *p);
int coro__stack_in_guard(const struct coro_stack *s, const void *addr);
size_t coro__stack_size(void);
void coro__stack_unpoison(struct coro_stack *s);
void coro__stack_stats(uint64_t *mapped, uint64_t *guarded);

/* ---- Chase-Lev work-stealing deque of unstarted coroutines -------------- */
struct dq_array {
    int64_t cap;
    struct dq_array *retired;   /* older arrays, freed with the deque */
    _Atomic(coro_t *) buf[];
};

struct deque {
    _Alignas(64) atomic_int_fast64_t top;
    _Alignas(64) atomic_int_fast64_t bottom;
    _Atomic(struct dq_array *) arr;
};

/* An ended coroutine whose struct keeps its stack (see keep_stack() in
 * sched.c) leaves its frame there: the next coroutine of that struct
 * resumes it instead of a freshly built one, when it starts on the same
 * worker. Not with ASan, whose fiber bookkeeping ends with the coroutine,
 * nor with ucontext. */
#if !defined(CORO_SANITIZERS) && !defined(CORO_CTX_UCONTEXT)
#define CORO_REUSE_FRAME 1
#endif

/* ---- coroutine states and handle kinds --------------------------------- */
enum { CORO_NEW, CORO_RUNNING, CORO_READY, CORO_PARKED, CORO_DEAD };
enum { CORO_H_JOINABLE, CORO_H_DETACHED, CORO_H_JOINED, CORO_H_SCOPE };

/* ---- workers ----------------------------------------------------------- */
struct worker {
    int id;
    pthread_t thread;
    struct event_base *base;
    struct runtime *rt;
    coro_ctx_t sched_ctx;       /* the worker thread's own stack */
    coro_t *current;
    coro_t *dead;               /* ended coroutine to reap once off its stack */

    /* local ready queue: touched only by this thread, no lock */
    coro_t *rq_head, *rq_tail;

    coro_t *runnext;            /* the latest spawn: runs next, not stealable */
    struct deque dq;            /* older unstarted coroutines; others may steal */

    /* inbox: readies, spawns and cancellations from other threads, each a
     * lock-free stack (a push is one compare-and-swap; this worker takes
     * all at once and restores the order). The lists (written by every
     * push) and the flags (polled by this worker, even while it spins
     * idle) sit in separate cache lines: a poll then does not pull the
     * lists' line away from a pushing thread. */
    _Alignas(64) _Atomic(coro_t *) in_head;
    _Atomic(coro_t *) cancel_head;
    _Alignas(64) atomic_int inbox_pending;
    atomic_int sleeping;
    int efd;                    /* eventfd that wakes the event loop */
    struct event *wake_ev;

    _Alignas(64) struct coro_stack_pool pool;
    struct coro_stack *ret;     /* other workers' stacks to hand back in one go */
    size_t nret;
    coro_t *free_coros;         /* recycled coro structs */
    size_t nfree;
    unsigned budget;            /* direct hand-offs left before polling I/O */
    long live_delta;            /* coroutine ends not yet subtracted from rt->live */
    unsigned seed;              /* victim choice when stealing */
    uint64_t switches, steals, spawned, idseq;
    void *altstack;
    stack_t old_altstack;
    void *sched_fake;           /* ASan fake stack of the scheduler context */
    void *sched_ctx_lo;         /* the thread's stack, for ASan */
    size_t sched_ctx_size;

    void *slots[CORO_SLOT_MAX];
    void (*slot_fini[CORO_SLOT_MAX])(void *);
};

struct runtime {
    struct coro_config cfg;
    struct worker *workers;
    unsigned nworkers;
    atomic_long live;           /* coroutines not ended + armed watches */
    atomic_int stopping;
    atomic_int nidle;           /* workers looking for work */
    atomic_uint rr;             /* round-robin spawn cursor */
    atomic_uint_fast64_t spawned;
    atomic_uint_fast64_t next_id;
};

extern struct runtime *coro__rt;
extern __thread struct worker *coro__tls_worker;

/* sched.c */
void coro__inbox_push(struct worker *w, coro_t *c);    /* from another thread */
void coro__enqueue_new(struct worker *w, coro_t *c);   /* w may be another worker */
void coro__switch_out(struct worker *w);               /* current has set its state */
void coro__switch_dead(struct worker *w, coro_t *next); /* see coro__entry */
void coro__reap(struct worker *w);
void coro__post_cancel(coro_t *c);
void coro__live_dec(void);
int coro__prepare(coro_t *c, struct worker *w);         /* stack + first frame */
void coro__entry(void);                                 /* a coroutine's first frame */
/* Full barrier on every thread of the process (membarrier), paired with
 * compiler-only barriers on hot paths; a seq_cst fence where unsupported. */
void coro__heavy_fence(void);
extern int coro__have_membarrier;

/* ---- hot paths, inlined into every runtime file ------------------------------
 * Spawn, join, park and wake are a few dozen instructions each; calls
 * between files would be a visible share of them. */

static inline void coro__rq_push(struct worker *w, coro_t *c)
{
    c->next = NULL;
    if (w->rq_tail)
        w->rq_tail->next = c;
    else
        w->rq_head = c;
    w->rq_tail = c;
}

/* Make c runnable: on its own worker's queue directly, else via its inbox. */
static inline void coro__ready_inl(coro_t *c)
{
    struct worker *w = c->worker;
    if (w == coro__tls_worker)
        coro__rq_push(w, c);
    else
        coro__inbox_push(w, c);
}

/* The pool fast paths of stack.c. */
static inline struct coro_stack *coro__stack_pop(struct coro_stack_pool *p)
{
    struct coro_stack *s = p->head;
    if (s) {
        p->head = s->next;
        p->n--;
        s->next = NULL;
#ifdef CORO_SANITIZERS
        coro__stack_unpoison(s);
#endif
    }
    return s;
}

static inline int coro__stack_push(struct coro_stack_pool *p, struct coro_stack *s)
{
    if (p->n >= p->cap)
        return 0;
    s->next = p->head;
    p->head = s;
    p->n++;
    return 1;
}

#define CORO_FREE_CACHE 4096

/* Fields not set here are set by spawn() before the coroutine is used. */
static inline coro_t *coro__alloc(struct worker *w)
{
    coro_t *c;
    if (w && (c = w->free_coros)) {
        w->free_coros = c->next;
        if (c->next) {
            /* Ask for the next one's lines now: after a spawn onto another
             * worker they come back from that core, one miss each. */
            __builtin_prefetch(c->next, 1);
            __builtin_prefetch((char *)c->next + 64, 1);
        }
        w->nfree--;
        c->next = NULL; /* c->stack: kept, see coro__reap(); fn2: set by spawn */
        atomic_store_explicit(&c->join, 0, memory_order_relaxed);
        atomic_store_explicit(&c->cancelled, 0, memory_order_relaxed);
        atomic_store_explicit(&c->started, 0, memory_order_relaxed);
        c->end_error = 0;
        c->cur_wait = NULL;
        c->scope = NULL;
        c->asan_fake = NULL;
#ifdef CORO_CTX_UCONTEXT
        if (!c->stack)
            c->ctx.uc = NULL;
#endif
        return c;
    }
    if (!(c = aligned_alloc(_Alignof(coro_t), sizeof(coro_t))))
        return NULL;
    return memset(c, 0, sizeof(*c));
}

void coro__free_stack(coro_t *c);

static inline void coro__free(coro_t *c)
{
    struct worker *w = coro__tls_worker;
    if (c->stack && (!w || w->nfree >= CORO_FREE_CACHE))
        coro__free_stack(c);
    if (w && w->nfree < CORO_FREE_CACHE) {
        c->next = w->free_coros;
        w->free_coros = c;
        w->nfree++;
        return;
    }
    free(c);
}

static inline void coro__unref(coro_t *c)
{
    /* The last owner needs no read-modify-write: nobody else can hold it. */
    if (atomic_load_explicit(&c->refs, memory_order_acquire) == 1 ||
        atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        coro__free(c);
}

/* Drop two references at once (a local join: the handle's and the
 * running one, see CORO_JOIN_HANDOFF). */
static inline void coro__unref2(coro_t *c)
{
    if (atomic_load_explicit(&c->refs, memory_order_acquire) == 2 ||
        atomic_fetch_sub_explicit(&c->refs, 2, memory_order_acq_rel) == 2)
        coro__free(c);
}

/* frame_w of a coroutine whose stack has no frame yet: the worker that
 * starts it builds one (see adopt_new() in sched.c). */
#define CORO_FRAME_NONE ((struct worker *)1)

/*
 * Give c the first frame on its new stack s, for a spawn by worker w (NULL:
 * a plain thread): the frame an ended coroutine left on s on this worker
 * (see drop_stack() in sched.c), resumed as it is like a kept one (see
 * coro__entry); else a fresh one. 0, or -1 (ucontext: no memory).
 */
static inline int coro__first_frame(coro_t *c, struct coro_stack *s, struct worker *w)
{
#ifdef CORO_REUSE_FRAME
    if (w && s->frame_owner == w) {
        c->ctx.sp = s->frame_sp;
        c->frame_w = w;
        return 0;
    }
    c->frame_w = NULL;
#endif
    return coro__ctx_make(&c->ctx, s->lo, s->size, coro__entry);
}

/*
 * coro__prepare() with the pooled-stack case inline, for a spawn by worker
 * w (NULL: a plain thread). elsewhere: the coroutine starts on another
 * worker. With CORO_REUSE_FRAME that worker takes the stack from its own
 * pool and builds the first frame (see adopt_new() in sched.c): its stacks
 * stay in its cache and in its pool, and the spawner writes no stack line.
 */
static inline int coro__prepare_inl(coro_t *c, struct worker *w, int elsewhere)
{
    struct coro_stack *s = c->stack;
#ifdef CORO_REUSE_FRAME
    if (elsewhere && w) {
        if (s)
            coro__free_stack(c); /* back to w's pool */
        c->frame_w = CORO_FRAME_NONE;
        return 0;
    }
#else
    (void)elsewhere;
#endif
    if (s) {
        /* Recycled with its stack and first frame: see keep_stack() in
         * sched.c (the stack was counted in w's pool). */
        w->pool.n--;
        return 0;
    }
    if (!w || !(s = coro__stack_pop(&w->pool)))
        return coro__prepare(c, w);
    c->stack = s;
    s->home = w->id;
    c->stack_limit = (char *)s->lo + CORO_STACK_REDZONE;
    if (coro__first_frame(c, s, w) < 0) {
        coro__stack_put(&w->pool, s);
        c->stack = NULL;
        return -1;
    }
    return 0;
}

/* coro__waiter_init() for a waiter of coroutine c (NULL: a plain thread). */
static inline void coro__waiter_init_inl(struct coro_waiter *w, coro_t *c)
{
    atomic_store_explicit(&w->state, CORO_W_WAITING, memory_order_relaxed);
    atomic_store_explicit(&w->futex, 0, memory_order_relaxed);
    w->result = 0;
    w->coro = c;
    w->next = w->prev = w->owner = NULL;
    w->data = NULL;
    w->index = 0;
    w->queued = 0;
}

/* coro__waitq_push(), inline. */
static inline void coro__waitq_push_inl(struct coro_waitq *q, struct coro_waiter *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    w->queued = 1;
}

/* coro__waiter_finish(), inline for a parked coroutine. */
static inline void coro__waiter_finish_inl(struct coro_waiter *w, int result)
{
    coro_t *c = w->coro;
    if (!c) {
        coro__waiter_finish(w, result);
        return;
    }
    w->result = result;
    atomic_store_explicit(&w->state, CORO_W_DONE, memory_order_release);
    coro__ready_inl(c);
}

/* coro__park(w, -1, CORO_PARK_CANCELLABLE) for coroutine c running on
 * worker wk: no timer to arm. */
static inline int coro__park_inl(struct coro_waiter *w, coro_t *c, struct worker *wk)
{
    if (atomic_load_explicit(&c->cancelled, memory_order_relaxed) && coro__waiter_claim(w)) {
        w->result = ECANCELED;
        atomic_store_explicit(&w->state, CORO_W_DONE, memory_order_release);
        return ECANCELED;
    }
    c->cur_wait = w;
    /* Whoever claimed w makes us ready exactly once: see coro__park(). */
    do {
        c->state = CORO_PARKED;
        coro__switch_out(wk);
    } while (atomic_load_explicit(&w->state, memory_order_acquire) != CORO_W_DONE);
    c->cur_wait = NULL;
    return w->result;
}

void coro__scope_member_ended(coro_t *c); /* coro.c */

/*
 * A coroutine's end, run on its own stack when its function returned (or
 * for one that never ran): tell its joiner or its scope. Returns the
 * parked joiner when it should run right away, directly (see
 * coro__switch_dead): nothing else is ready and the polling budget is not
 * used up. Inline: with a local join (the common spawn+join), the end is a
 * few stores.
 */
static inline coro_t *coro__finish(coro_t *c)
{
    if (atomic_load(&c->cancelled))
        c->end_error = ECANCELED;
    if (c->scope) {
        coro__scope_member_ended(c);
        return NULL;
    }
    if (atomic_load_explicit(&c->join, memory_order_relaxed) == CORO_JOIN_LOCAL) {
        /* The joiner is parked on this worker: see join_local() in coro.c.
         * Its wait may have been claimed by a cancellation (on this thread
         * too). */
        struct coro_waiter *jw = &c->join_w;
        if (atomic_load_explicit(&jw->state, memory_order_relaxed) == CORO_W_WAITING) {
            struct worker *w = c->worker;
            atomic_store_explicit(&c->join, CORO_JOIN_HANDOFF, memory_order_relaxed);
            jw->result = 0;
            atomic_store_explicit(&jw->state, CORO_W_DONE, memory_order_release);
            if (w->budget > 1 && !w->rq_head && !w->runnext &&
                !atomic_load_explicit(&w->inbox_pending, memory_order_relaxed))
                return jw->coro;
            coro__rq_push(w, jw->coro);
        } else {
            atomic_store_explicit(&c->join, CORO_JOIN_DONE, memory_order_relaxed);
        }
        return NULL;
    }
    uintptr_t prev = atomic_exchange(&c->join, CORO_JOIN_DONE);
    if (prev != 0 && coro__waiter_claim(&c->join_w))
        coro__waiter_finish(&c->join_w, 0);
    return NULL;
}

#endif
