/*
 * chan.c - MPMC channels: rendezvous, bounded ring, unbounded growable ring,
 * and chan_select over several of them.
 *
 * Built on the parking protocol of runtime_int.h: a caller that cannot
 * proceed links a waiter into the channel's recvq or sendq and parks; the
 * party that can complete it claims the waiter under the channel lock and
 * copies the element straight between the two callers' buffers (a parked
 * receiver never sees its element pass through the ring). A per-channel
 * spinlock, not a pthread mutex, guards the state: critical sections are a
 * few loads and a memcpy, and the same-worker round trip must stay cheap.
 *
 * Select ops are one waiter each, all pointing (->owner) at one shared
 * waiter the selecting caller parks on; wakers claim the owner, so at most
 * one op of a select ever completes, and record the op index in it.
 *
 * Not here: timers and cancellation (coro__park handles both).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/types.h>

#include "coro/chan.h"
#include "runtime/sched_int.h"

#define CHAN_MAX_ELEM 65536u
#define CHAN_UNBOUNDED_SLOTS0 16u /* first ring of an unbounded channel */
#define SELECT_STACK_OPS 8u       /* selects up to this size never allocate */

/* The send/recv fast paths are a few instructions each; calls would be a
 * visible share of a same-worker round trip. */
#define HOT static inline __attribute__((always_inline))

struct chan {
    atomic_int lock;
    int closed;
    size_t esz;   /* element size */
    size_t cap;   /* as given to chan_new */
    size_t limit; /* elements the ring may hold: cap, or SIZE_MAX */
    size_t slots; /* ring slots allocated */
    size_t head, len;
    unsigned char *ring;
    struct coro_waitq recvq; /* parked receivers; data = where to store */
    struct coro_waitq sendq; /* parked senders; data = element to send */
};

/* ---- construction ------------------------------------------------------- */

chan_t *chan_new(size_t elem_size, size_t capacity)
{
    if (elem_size == 0 || elem_size > CHAN_MAX_ELEM) {
        errno = EINVAL;
        return NULL;
    }
    chan_t *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    ch->esz = elem_size;
    ch->cap = capacity;
    ch->limit = capacity == CHAN_UNBOUNDED ? SIZE_MAX : capacity;
    ch->slots = capacity == CHAN_UNBOUNDED ? CHAN_UNBOUNDED_SLOTS0 : capacity;
    if (ch->slots > 0) {
        if (ch->slots > SIZE_MAX / elem_size) {
            errno = ENOMEM;
            goto fail;
        }
        ch->ring = malloc(ch->slots * elem_size);
        if (!ch->ring)
            goto fail;
    }
    return ch;
fail:
    free(ch);
    return NULL;
}

void chan_free(chan_t *ch)
{
    if (!ch)
        return;
    free(ch->ring);
    free(ch);
}

size_t chan_len(const chan_t *ch)
{
    return __atomic_load_n(&ch->len, __ATOMIC_RELAXED);
}

size_t chan_cap(const chan_t *ch)
{
    return ch->cap;
}

/* ---- the ring (channel locked) ----------------------------------------- */

/* Word-sized elements (the common case) copy without a libc call. */
HOT void copy_elem(void *dst, const void *src, size_t n)
{
    switch (n) {
    case 4:
        memcpy(dst, src, 4);
        break;
    case 8:
        memcpy(dst, src, 8);
        break;
    case 16:
        memcpy(dst, src, 16);
        break;
    default:
        memcpy(dst, src, n);
        break;
    }
}

/* Double an unbounded channel's ring, unwrapping it at the same time. */
static int ring_grow(chan_t *ch)
{
    if (ch->slots > SIZE_MAX / 2 / ch->esz)
        return ENOMEM;
    unsigned char *nr = malloc(ch->slots * 2 * ch->esz);
    if (!nr)
        return ENOMEM;
    size_t first = ch->slots - ch->head;
    if (first > ch->len)
        first = ch->len;
    memcpy(nr, ch->ring + ch->head * ch->esz, first * ch->esz);
    memcpy(nr + first * ch->esz, ch->ring, (ch->len - first) * ch->esz);
    free(ch->ring);
    ch->ring = nr;
    ch->slots *= 2;
    ch->head = 0;
    return 0;
}

HOT int ring_push(chan_t *ch, const void *elem)
{
    if (ch->len == ch->slots) {
        int r = ring_grow(ch);
        if (r)
            return r;
    }
    size_t tail = ch->head + ch->len;
    if (tail >= ch->slots)
        tail -= ch->slots;
    copy_elem(ch->ring + tail * ch->esz, elem, ch->esz);
    __atomic_store_n(&ch->len, ch->len + 1, __ATOMIC_RELAXED);
    return 0;
}

HOT void ring_pop(chan_t *ch, void *elem)
{
    copy_elem(elem, ch->ring + ch->head * ch->esz, ch->esz);
    if (++ch->head == ch->slots)
        ch->head = 0;
    __atomic_store_n(&ch->len, ch->len - 1, __ATOMIC_RELAXED);
}

/* ---- waiters (channel locked) ------------------------------------------ */

/*
 * Claim a waiter that is not part of a select. Besides wakers holding the
 * channel lock (as we do), only its coroutine's own worker claims it (a
 * timeout, a cancellation): when that is this thread, nobody can race us
 * and the compare-and-swap is not needed. Select owners are claimed by
 * wakers of other channels too, so they always take the CAS.
 */
HOT bool claim_plain(struct coro_waiter *w)
{
    coro_t *c = w->coro;
    if (!c || c->worker != coro__tls_worker)
        return coro__waiter_claim(w);
    if (atomic_load_explicit(&w->state, memory_order_relaxed) != CORO_W_WAITING)
        return false;
    atomic_store_explicit(&w->state, CORO_W_CLAIMED, memory_order_relaxed);
    return true;
}

/*
 * Unlink the first waiter of q whose wait can still be completed and claim
 * it (through its select owner if it has one). Waiters already claimed by
 * a timeout, a cancellation or another op of the same select are dropped.
 */
HOT struct coro_waiter *take_waiter(struct coro_waitq *q)
{
    struct coro_waiter *w;
    while ((w = q->head) != NULL) {
        /* coro__waitq_remove() of the head, inlined for the hot path */
        q->head = w->next;
        if (q->head)
            q->head->prev = NULL;
        else
            q->tail = NULL;
        w->next = w->prev = NULL;
        w->queued = 0;
        if (!w->owner) {
            if (claim_plain(w))
                return w;
        } else if (coro__waiter_claim(w->owner)) {
            w->owner->index = w->index;
            return w;
        }
    }
    return NULL;
}

/* Finish a waiter returned by take_waiter; called after unlocking. */
HOT void complete(struct coro_waiter *w, int result)
{
    coro__waiter_finish_inl(w->owner ? w->owner : w, result);
}

/* Try to send now: 0 (done), EPIPE, ENOMEM, or EAGAIN (would block).
 * *wake gets a waiter to complete once the lock is released. */
HOT int send_locked(chan_t *ch, const void *elem, struct coro_waiter **wake)
{
    if (ch->closed)
        return EPIPE;
    struct coro_waiter *w = take_waiter(&ch->recvq);
    if (w) {
        copy_elem(w->data, elem, ch->esz);
        *wake = w;
        return 0;
    }
    if (ch->len < ch->limit)
        return ring_push(ch, elem);
    return EAGAIN;
}

/* Try to receive now: 0, EPIPE (closed and drained) or EAGAIN. */
HOT int recv_locked(chan_t *ch, void *elem, struct coro_waiter **wake)
{
    struct coro_waiter *w;
    if (ch->len > 0) {
        ring_pop(ch, elem);
        /* A full bounded ring may have parked senders: move one in. */
        if ((w = take_waiter(&ch->sendq)) != NULL) {
            ring_push(ch, w->data); /* cannot fail: a slot was just freed */
            *wake = w;
        }
        return 0;
    }
    if ((w = take_waiter(&ch->sendq)) != NULL) {
        copy_elem(elem, w->data, ch->esz);
        *wake = w;
        return 0;
    }
    return ch->closed ? EPIPE : EAGAIN;
}

/* Enqueue on q, release the lock, park, and tidy up after a failed wait. */
static int park_on(chan_t *ch, struct coro_waitq *q, void *data, int64_t ms)
{
    struct worker *wk = coro__tls_worker;
    coro_t *self = wk ? wk->current : NULL;
    struct coro_waiter w;
    coro__waiter_init_inl(&w, self);
    w.data = data;
    coro__waitq_push_inl(q, &w);
    coro__spin_unlock(&ch->lock);

    int r = ms < 0 && self ? coro__park_inl(&w, self, wk)
                           : coro__park(&w, ms, CORO_PARK_CANCELLABLE);
    if (r != 0) {
        coro__spin_lock(&ch->lock);
        if (w.queued)
            coro__waitq_remove(q, &w);
        coro__spin_unlock(&ch->lock);
    }
    return r;
}

/* Common ending of a non-blocking outcome: unlock, wake, report. */
HOT int finish_now(chan_t *ch, int r, struct coro_waiter *wake)
{
    coro__spin_unlock(&ch->lock);
    if (wake)
        complete(wake, 0);
    if (r) {
        errno = r;
        return -1;
    }
    return 0;
}

/* ---- send and receive --------------------------------------------------- */

int chan_send_timeout(chan_t *ch, const void *elem, int64_t ms)
{
    struct coro_waiter *wake = NULL;
    coro__spin_lock(&ch->lock);
    int r = send_locked(ch, elem, &wake);
    if (r != EAGAIN || ms == 0)
        return finish_now(ch, r, wake);
    r = park_on(ch, &ch->sendq, (void *)elem, ms);
    if (r) {
        errno = r;
        return -1;
    }
    return 0;
}

int chan_recv_timeout(chan_t *ch, void *elem, int64_t ms)
{
    struct coro_waiter *wake = NULL;
    coro__spin_lock(&ch->lock);
    int r = recv_locked(ch, elem, &wake);
    if (r != EAGAIN || ms == 0)
        return finish_now(ch, r, wake);
    r = park_on(ch, &ch->recvq, elem, ms);
    if (r) {
        errno = r;
        return -1;
    }
    return 0;
}

int chan_send(chan_t *ch, const void *elem)
{
    return chan_send_timeout(ch, elem, -1);
}

int chan_recv(chan_t *ch, void *elem)
{
    return chan_recv_timeout(ch, elem, -1);
}

int chan_try_send(chan_t *ch, const void *elem)
{
    return chan_send_timeout(ch, elem, 0);
}

int chan_try_recv(chan_t *ch, void *elem)
{
    return chan_recv_timeout(ch, elem, 0);
}

void chan_close(chan_t *ch)
{
    struct coro_waiter *list = NULL, *w;
    coro__spin_lock(&ch->lock);
    if (!ch->closed) {
        ch->closed = 1;
        /* Parked receivers imply an empty ring: nothing left for them. */
        while ((w = take_waiter(&ch->recvq)) != NULL) {
            w->next = list;
            list = w;
        }
        while ((w = take_waiter(&ch->sendq)) != NULL) {
            w->next = list;
            list = w;
        }
    }
    coro__spin_unlock(&ch->lock);
    while (list) {
        w = list;
        list = w->next; /* read before finishing: w may vanish after */
        complete(w, EPIPE);
    }
}

/* ---- select ------------------------------------------------------------- */

/* A per-thread xorshift64* generator: select order needs to be fair, not
 * unpredictable. Coroutines stay on their worker, so TLS is safe here. */
static __thread uint64_t rng_state;

static size_t rand_below(size_t n)
{
    uint64_t x = rng_state;
    if (x == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = (uint64_t)ts.tv_nsec << 20 ^ (uint64_t)ts.tv_sec;
        x = (x ^ (uint64_t)(uintptr_t)&rng_state) | 1; /* threads differ */
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return (size_t)(((x * 0x2545F4914F6CDD1DULL) >> 32) * (uint64_t)n >> 32);
}

struct sel {
    struct chan_op *ops;
    size_t n;
    size_t nact;    /* ops with a channel */
    size_t *order;  /* active op indices, shuffled */
    chan_t **locks; /* distinct channels, by address */
    size_t nlocks;
    struct coro_waiter *ws; /* one waiter per op */
    void *mem;              /* heap block for large selects, or NULL */
};

static int sel_alloc(struct sel *s, size_t *ord, chan_t **lk, struct coro_waiter *ws)
{
    s->mem = NULL;
    if (s->n <= SELECT_STACK_OPS) {
        s->order = ord;
        s->locks = lk;
        s->ws = ws;
        return 0;
    }
    size_t each = sizeof(struct coro_waiter) + sizeof(size_t) + sizeof(chan_t *);
    if (s->n > SIZE_MAX / each)
        return ENOMEM;
    s->mem = malloc(s->n * each);
    if (!s->mem)
        return ENOMEM;
    s->ws = s->mem;
    s->order = (size_t *)(s->ws + s->n);
    s->locks = (chan_t **)(s->order + s->n);
    return 0;
}

/* Shuffle the active ops (Fisher-Yates: the first ready op in this order
 * is uniformly random among the ready ones) and sort their channels. */
static void sel_prepare(struct sel *s)
{
    s->nact = 0;
    for (size_t i = 0; i < s->n; i++) {
        s->ops[i].err = 0;
        if (!s->ops[i].ch)
            continue;
        size_t j = rand_below(s->nact + 1);
        s->order[s->nact] = s->order[j];
        s->order[j] = i;
        s->nact++;
    }
    s->nlocks = 0;
    for (size_t k = 0; k < s->nact; k++) {
        chan_t *ch = s->ops[s->order[k]].ch;
        size_t j = s->nlocks;
        while (j > 0 && (uintptr_t)s->locks[j - 1] > (uintptr_t)ch)
            j--;
        if (j > 0 && s->locks[j - 1] == ch)
            continue;
        memmove(&s->locks[j + 1], &s->locks[j], (s->nlocks - j) * sizeof(chan_t *));
        s->locks[j] = ch;
        s->nlocks++;
    }
}

/* Address order: two selects over the same channels cannot deadlock. */
static void sel_lock(struct sel *s)
{
    for (size_t i = 0; i < s->nlocks; i++)
        coro__spin_lock(&s->locks[i]->lock);
}

static void sel_unlock(struct sel *s)
{
    for (size_t i = s->nlocks; i > 0; i--)
        coro__spin_unlock(&s->locks[i - 1]->lock);
}

/* With every channel locked, perform the first ready op in shuffled order.
 * Returns its index, or -1 (*err = EAGAIN: none ready, or ENOMEM). */
static ssize_t sel_poll(struct sel *s, int *err, struct coro_waiter **wake)
{
    for (size_t k = 0; k < s->nact; k++) {
        size_t i = s->order[k];
        struct chan_op *op = &s->ops[i];
        int r = op->dir == CHAN_SEND ? send_locked(op->ch, op->elem, wake)
                                     : recv_locked(op->ch, op->elem, wake);
        if (r == EAGAIN)
            continue;
        if (r == ENOMEM) {
            *err = r;
            return -1;
        }
        op->err = r;
        return (ssize_t)i;
    }
    *err = EAGAIN;
    return -1;
}

/* Nothing ready: queue one waiter per op, all owned by `owner`, and park. */
static int sel_wait(struct sel *s, int64_t timeout_ms, size_t *index)
{
    struct coro_waiter owner;
    coro__waiter_init(&owner);
    for (size_t k = 0; k < s->nact; k++) {
        size_t i = s->order[k];
        struct coro_waiter *w = &s->ws[i];
        coro__waiter_init(w);
        w->owner = &owner;
        w->index = i;
        w->data = s->ops[i].elem;
        chan_t *ch = s->ops[i].ch;
        coro__waitq_push(s->ops[i].dir == CHAN_SEND ? &ch->sendq : &ch->recvq, w);
    }
    sel_unlock(s);

    int r = coro__park(&owner, timeout_ms, CORO_PARK_CANCELLABLE);
    sel_lock(s);
    for (size_t k = 0; k < s->nact; k++) {
        size_t i = s->order[k];
        chan_t *ch = s->ops[i].ch;
        if (s->ws[i].queued)
            coro__waitq_remove(s->ops[i].dir == CHAN_SEND ? &ch->sendq : &ch->recvq, &s->ws[i]);
    }
    sel_unlock(s);
    *index = owner.index;
    return r;
}

/* No op to wait for: only a timeout (or a cancellation) can end this. */
static int select_none(int64_t timeout_ms)
{
    if (timeout_ms < 0) {
        errno = EINVAL;
        return -1;
    }
    struct coro_waiter w;
    coro__waiter_init(&w);
    errno = timeout_ms == 0 ? ETIMEDOUT : coro__park(&w, timeout_ms, CORO_PARK_CANCELLABLE);
    return -1;
}

int chan_select(struct chan_op *ops, size_t n, int64_t timeout_ms)
{
    size_t ord_st[SELECT_STACK_OPS];
    chan_t *lk_st[SELECT_STACK_OPS];
    struct coro_waiter ws_st[SELECT_STACK_OPS];
    struct sel s = {.ops = ops, .n = n};
    struct coro_waiter *wake = NULL;
    size_t index = 0;
    int err;

    if (n == 0) {
        errno = EINVAL;
        return -1;
    }
    if ((err = sel_alloc(&s, ord_st, lk_st, ws_st)) != 0)
        goto fail;
    sel_prepare(&s);
    if (s.nact == 0) {
        free(s.mem);
        return select_none(timeout_ms);
    }

    sel_lock(&s);
    ssize_t done = sel_poll(&s, &err, &wake);
    if (done >= 0 || err != EAGAIN || timeout_ms == 0) {
        sel_unlock(&s);
        if (wake)
            complete(wake, 0);
        free(s.mem);
        if (done >= 0)
            return (int)done;
        errno = err == EAGAIN ? ETIMEDOUT : err;
        return -1;
    }
    err = sel_wait(&s, timeout_ms, &index);
    free(s.mem);
    if (err == 0 || err == EPIPE) {
        ops[index].err = err;
        return (int)index;
    }
fail:
    errno = err;
    return -1;
}
