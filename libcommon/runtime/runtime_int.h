/*
 * runtime_int.h - the runtime's private interface, shared by the files of
 * libcommon/runtime and by net/ (which builds on coroutine I/O).
 *
 * Not a public header: layouts and coro__ functions here may change.
 *
 * Parking protocol (every blocking primitive uses it):
 *   struct coro_waiter w; coro__waiter_init(&w);
 *   lock(object); if (can proceed) {...} else enqueue(&w); unlock(object);
 *   coro__park(&w, timeout_ms, CORO_PARK_CANCELLABLE);
 *   if (w.result != 0) { lock(object); dequeue if still queued; unlock; }
 * and the waking side, holding the object's lock:
 *   if (coro__waiter_claim(w)) { fill w->data...; dequeue;
 *                                coro__waiter_finish(w, 0); }
 * A timeout or a cancellation claims the waiter the same way, so exactly
 * one party completes each wait. coro__waiter_finish() may be called after
 * releasing the object's lock (it only touches the waiter).
 */
#ifndef CORO_RUNTIME_INT_H
#define CORO_RUNTIME_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sched.h>

#include "coro/coro.h"
#include "coro/sync.h"
#include "runtime/ctx.h"

struct event_base;

/* ---- fatal misuse -------------------------------------------------- */
__attribute__((noreturn, format(printf, 1, 2)))
void coro__fatal(const char *fmt, ...);
/* Abort with "FN: called outside a coroutine" unless in a coroutine. */
coro_t *coro__require(const char *fn);

/* ---- a small test-and-test-and-set spinlock -------------------------- */
static inline void coro__spin_lock(atomic_int *l)
{
    for (unsigned n = 0;; n++) {
        if (!atomic_load_explicit(l, memory_order_relaxed) &&
            !atomic_exchange_explicit(l, 1, memory_order_acquire))
            return;
        if (n < 64) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#elif defined(__aarch64__)
            __asm__ __volatile__("yield");
#endif
        } else {
            sched_yield(); /* the holder may be preempted: give it the CPU */
        }
    }
}
static inline void coro__spin_unlock(atomic_int *l)
{
    atomic_store_explicit(l, 0, memory_order_release);
}

/* ---- waiters --------------------------------------------------------- */
enum { CORO_W_WAITING = 0, CORO_W_CLAIMED = 1, CORO_W_DONE = 2 };

struct coro_waiter {
    atomic_int state;
    int result;                /* 0 or an errno value set by the claimer */
    coro_t *coro;              /* parked coroutine, NULL for a plain thread */
    atomic_uint futex;         /* plain threads sleep on this word */
    struct coro_waiter *next, *prev; /* links in the object's waitq */
    void *data;                /* primitive-specific (element buffer...) */
    size_t index;              /* primitive-specific (select op index) */
    struct coro_waiter *owner; /* select: the shared waiter of all ops */
    int queued;                /* set while linked in a waitq */
};

void coro__waiter_init(struct coro_waiter *w);
/* Try to become the one party that completes w. */
static inline bool coro__waiter_claim(struct coro_waiter *w)
{
    int expect = CORO_W_WAITING;
    return atomic_compare_exchange_strong_explicit(&w->state, &expect, CORO_W_CLAIMED,
                                                   memory_order_acq_rel, memory_order_acquire);
}
/* Complete a claimed waiter with result and make its owner runnable. */
void coro__waiter_finish(struct coro_waiter *w, int result);

enum {
    CORO_PARK_CANCELLABLE = 1,  /* coro_cancel() completes the wait with ECANCELED */
};
/*
 * Park until w is finished, or timeout_ms (< 0: never) passes (w finished
 * with ETIMEDOUT), or a cancellation (ECANCELED, with CORO_PARK_CANCELLABLE).
 * A cancelled coroutine returns at once with ECANCELED (w claimed). Returns
 * w->result. Works in coroutines and plain threads.
 */
int coro__park(struct coro_waiter *w, int64_t timeout_ms, int flags);

/* FIFO wait queue helpers; the caller holds the object's lock. */
void coro__waitq_push(struct coro_waitq *q, struct coro_waiter *w);
void coro__waitq_remove(struct coro_waitq *q, struct coro_waiter *w);
/* Pop waiters until one can be claimed; returns it (unlinked) or NULL. A
 * waiter with an owner (one op of a select) is claimed through its owner:
 * the caller then finishes w->owner, not w. */
struct coro_waiter *coro__waitq_claim_first(struct coro_waitq *q);

/* ---- coroutines and workers ------------------------------------------ */
struct worker;

typedef void (*coro__fn2)(void *arg, int what);

/*
 * The fields a spawn, a start, an end and a join touch come first, in two
 * cache lines (the struct is 64-byte aligned): a spawn onto another worker
 * moves those two lines there and back, not four.
 */
struct coro {
    /* first line: what the worker that starts it needs */
    _Alignas(64) coro_ctx_t ctx; /* saved machine context; first member */
    struct worker *worker;      /* owner once started; stealing may change it before */
    struct coro *next;          /* run queue / inbox links */
    void (*fn)(void *);
    coro__fn2 fn2;              /* when set, called as fn2(arg, fn2_what) */
    void *arg;
    struct coro_stack *stack;
    const char *stack_limit;    /* switching out below this is an overflow */
    /* second line: state, ending and joining */
    uint64_t id;
    atomic_uintptr_t join;      /* 0 or a CORO_JOIN_ value */
    struct coro_waiter *volatile cur_wait; /* the wait a cancellation would complete */
    struct worker *frame_w;     /* the first frame on stack is an ended
                                 * coroutine's, resumable only on this worker
                                 * (see coro__entry); CORO_FRAME_NONE: no stack
                                 * yet; NULL: a fresh frame, or no stack */
    coro_scope_t *scope;
    atomic_int refs;            /* handle + running */
    atomic_int cancelled;
    atomic_int started;         /* set once by the owner when it first runs */
    int fn2_what;
    unsigned char state;        /* CORO_NEW, CORO_RUNNING, CORO_READY, CORO_PARKED, CORO_DEAD */
    unsigned char handle;       /* CORO_H_JOINABLE, CORO_H_DETACHED, CORO_H_JOINED, CORO_H_SCOPE */
    unsigned char pinned;       /* spawned for one worker: never stolen */
    unsigned char end_error;    /* 0, or how it ended for coro_join: ECANCELED
                                 * (cancelled), ENOMEM (never ran: no stack) */
    /* the rest: parked joins, scopes, cancellation from other workers */
    struct coro_waiter join_w;  /* the joiner parks here: lives as long as the handle */
    struct coro *scope_next, *scope_prev;
    struct coro *cancel_next;   /* link in the owner worker's cancel inbox */
    void *asan_fake;            /* ASan fake stack while switched out */
};

#define CORO_JOIN_DONE ((uintptr_t)1)
#define CORO_JOIN_WAITING ((uintptr_t)2)
/* The joiner parks on the coroutine's own worker, which the coroutine can
 * no longer leave: its end completes the join without atomic RMWs. */
#define CORO_JOIN_LOCAL ((uintptr_t)3)
/* Ended after completing a CORO_JOIN_LOCAL join: the joiner drops the
 * running reference along with its own (one atomic less per join). */
#define CORO_JOIN_HANDOFF ((uintptr_t)4)

/* The worker running the calling thread, or NULL. */
struct worker *coro__worker_self(void);
struct event_base *coro__event_base(void); /* this worker's base; NULL outside */
int coro__worker_id(const struct worker *w);

/* Make c runnable; from any thread. */
void coro__ready(coro_t *c);

/* Spawn fn2(arg, what) on this worker (watch callbacks). */
coro_t *coro__spawn_fn2(coro__fn2 fn, void *arg, int what);

/* Count a non-coroutine thing that keeps coro_run() alive (watches). */
void coro__live_add(int delta);

/* Per-worker storage for other modules (io fd table, dns, curl, offload):
 * slot pointers start NULL; fini(slot_value) runs when the worker exits. */
enum coro_slot { CORO_SLOT_IO, CORO_SLOT_DNS, CORO_SLOT_CURL, CORO_SLOT_MAX };
void **coro__worker_slot(enum coro_slot s);
void coro__worker_slot_fini(enum coro_slot s, void (*fini)(void *));

/* Runtime-wide hooks run once when coro_run() is about to return (after
 * all workers stopped): the offload pool registers its shutdown here. */
void coro__at_shutdown(void (*fn)(void));

/* ---- counters --------------------------------------------------------- */
extern atomic_uint_fast64_t coro__stat_watches;

#endif
