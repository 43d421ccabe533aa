/*
 * sync.h - coroutine-aware mutex, condition variable, semaphore, wait group.
 *
 * These park the calling coroutine instead of blocking its worker thread,
 * and also work from plain threads (which then block on a futex). They are
 * embedded by the caller (x_init/x_fini); the struct fields are private.
 * Waiters are served in FIFO order. Blocking calls may yield and return
 * -1/ECANCELED in a cancelled coroutine (coro_mutex_lock included: a
 * cancelled coroutine does not get the lock).
 */
#ifndef CORO_SYNC_H
#define CORO_SYNC_H

#include <stdatomic.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct coro_waiter;
struct coro_waitq { struct coro_waiter *head, *tail; };

typedef struct coro_mutex {
    atomic_int spin;
    int locked;
    struct coro_waitq q;
} coro_mutex_t;

int  coro_mutex_init(coro_mutex_t *m);
void coro_mutex_fini(coro_mutex_t *m);
int  coro_mutex_lock(coro_mutex_t *m);       /* 0, -1/ECANCELED */
int  coro_mutex_trylock(coro_mutex_t *m);    /* 0, -1/EBUSY */
void coro_mutex_unlock(coro_mutex_t *m);     /* hands the lock to the first waiter */

typedef struct coro_cond {
    atomic_int spin;
    struct coro_waitq q;
} coro_cond_t;

int  coro_cond_init(coro_cond_t *c);
void coro_cond_fini(coro_cond_t *c);
/* Atomically unlock m and wait; m is locked again on return, whatever the
 * result (0, -1/ETIMEDOUT, -1/ECANCELED). ms < 0 waits forever. */
int  coro_cond_wait(coro_cond_t *c, coro_mutex_t *m);
int  coro_cond_timedwait(coro_cond_t *c, coro_mutex_t *m, int64_t ms);
void coro_cond_signal(coro_cond_t *c);
void coro_cond_broadcast(coro_cond_t *c);

typedef struct coro_sem {
    atomic_int spin;
    uint64_t value;
    struct coro_waitq q;
} coro_sem_t;

int  coro_sem_init(coro_sem_t *s, uint64_t value);
void coro_sem_fini(coro_sem_t *s);
int  coro_sem_wait(coro_sem_t *s);                   /* 0, -1/ECANCELED */
int  coro_sem_timedwait(coro_sem_t *s, int64_t ms);  /* 0, -1/ETIMEDOUT, ECANCELED */
int  coro_sem_trywait(coro_sem_t *s);                /* 0, -1/EAGAIN */
void coro_sem_post(coro_sem_t *s);
uint64_t coro_sem_value(coro_sem_t *s);

/* Wait group: add(n) before starting work, done() when each piece ends,
 * wait() until the count is back to zero. */
typedef struct coro_wg {
    atomic_int spin;
    int64_t count;
    struct coro_waitq q;
} coro_wg_t;

int  coro_wg_init(coro_wg_t *wg);
void coro_wg_fini(coro_wg_t *wg);
void coro_wg_add(coro_wg_t *wg, int64_t n);    /* count below zero aborts */
void coro_wg_done(coro_wg_t *wg);
int  coro_wg_wait(coro_wg_t *wg);                     /* 0, -1/ECANCELED */
int  coro_wg_timedwait(coro_wg_t *wg, int64_t ms);    /* 0, -1/ETIMEDOUT, ECANCELED */

#ifdef __cplusplus
}
#endif
#endif
