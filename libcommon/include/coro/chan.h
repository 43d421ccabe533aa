/*
 * chan.h - typed-by-size MPMC channels between coroutines and threads.
 *
 * A channel carries fixed-size elements (copied in and out). Capacity 0 is a
 * rendezvous (a send completes only when a receiver takes the element),
 * N > 0 is a bounded buffer (send blocks when full: backpressure), and
 * CHAN_UNBOUNDED never blocks senders. Every call is safe from coroutines on
 * any worker and from plain threads at once; a blocking call parks the
 * calling coroutine (or blocks the plain thread) and may yield.
 *
 * Close: receivers first drain what was buffered, then get -1/EPIPE; a send
 * on a closed channel fails with EPIPE; blocked senders are woken with EPIPE.
 * Blocking calls in a cancelled coroutine return -1/ECANCELED.
 */
#ifndef CORO_CHAN_H
#define CORO_CHAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chan chan_t;

#define CHAN_UNBOUNDED ((size_t)-1)

/* New channel of elements of elem_size bytes (1..65536). NULL/EINVAL, ENOMEM.
 * The caller owns it: chan_free() once no one uses it any more. */
chan_t *chan_new(size_t elem_size, size_t capacity);

int chan_send(chan_t *ch, const void *elem);           /* 0, -1/EPIPE, ECANCELED */
int chan_recv(chan_t *ch, void *elem);                 /* 0, -1/EPIPE, ECANCELED */
int chan_try_send(chan_t *ch, const void *elem);       /* 0, -1/EAGAIN, EPIPE; never blocks */
int chan_try_recv(chan_t *ch, void *elem);             /* 0, -1/EAGAIN, EPIPE; never blocks */
/* As chan_send/chan_recv, failing with ETIMEDOUT after ms milliseconds
 * (ms < 0 waits forever, ms == 0 is the try variant). */
int chan_send_timeout(chan_t *ch, const void *elem, int64_t ms);
int chan_recv_timeout(chan_t *ch, void *elem, int64_t ms);

enum chan_dir { CHAN_SEND = 1, CHAN_RECV = 2 };
struct chan_op {
    chan_t *ch;        /* NULL: the op is skipped (lets callers disable a case) */
    enum chan_dir dir;
    void *elem;        /* element to send, or where to store the received one */
    int err;           /* out: 0, or EPIPE when this op completed on a closed channel */
};

/*
 * Wait until one of ops can proceed and perform exactly that one. Among ops
 * ready at once the choice is uniformly random (no case starves). Returns the
 * index of the op done (check ops[i].err: a recv on a closed, drained channel
 * or a send on a closed one "completes" with EPIPE), or -1 with ETIMEDOUT
 * (timeout_ms >= 0 elapsed; 0 polls), ECANCELED, or EINVAL (n == 0 or all
 * ops NULL and no timeout).
 */
int chan_select(struct chan_op *ops, size_t n, int64_t timeout_ms);

/* Close: idempotent, from any thread. */
void chan_close(chan_t *ch);
/* Free a channel no one is blocked on. Buffered elements are discarded. */
void chan_free(chan_t *ch);
/* Elements buffered now (racy snapshot). */
size_t chan_len(const chan_t *ch);
/* Capacity given to chan_new. */
size_t chan_cap(const chan_t *ch);

#ifdef __cplusplus
}
#endif
#endif
