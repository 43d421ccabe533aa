/*
 * offload.c - the blocking-call pool: plain threads that run a function
 * (getaddrinfo, fsync, big file I/O) while the calling coroutine is parked,
 * so its worker keeps serving other coroutines.
 *
 * One pool per runtime, started by the first coro_offload() with
 * min(8, 2 * workers) threads and joined when coro_run() returns (through
 * coro__at_shutdown). Jobs live on the caller's stack: the caller stays
 * parked, uncancellably, until its job has run, so the pool never touches
 * a stack that is gone.
 *
 * Not for: CPU-heavy work that wants its own scheduling (spawn coroutines
 * on other workers instead), or calls that never return.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include "coro/offload.h"
#include "runtime/runtime_int.h"

#define OFFLOAD_MAX_THREADS 8

struct offload_job {
    void (*fn)(void *);
    void *arg;
    struct coro_waiter w;
    struct offload_job *next;
};

struct offload_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct offload_job *head, *tail;
    pthread_t threads[OFFLOAD_MAX_THREADS];
    int nthreads;
    int stopping;
    atomic_int started;
};

static struct offload_pool pool = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
};

static struct offload_job *pool_pop(void)
{
    struct offload_job *j;

    pthread_mutex_lock(&pool.mu);
    while (!pool.head && !pool.stopping)
        pthread_cond_wait(&pool.cv, &pool.mu);
    j = pool.head;
    if (j) {
        pool.head = j->next;
        if (!pool.head)
            pool.tail = NULL;
    }
    pthread_mutex_unlock(&pool.mu);
    return j;
}

static void *pool_thread(void *unused)
{
    struct offload_job *j;

    while ((j = pool_pop()) != NULL) {
        j->fn(j->arg);
        /* The caller's stack may be reused as soon as the waiter is done. */
        if (coro__waiter_claim(&j->w))
            coro__waiter_finish(&j->w, 0);
    }
    return NULL;
}

/* Runs once all workers have stopped: no coroutine can be parked in
 * coro_offload any more, so the queue is empty and the threads idle. */
static void pool_shutdown(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.stopping = 1;
    pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 0; i < pool.nthreads; i++)
        pthread_join(pool.threads[i], NULL);
    pool.nthreads = 0;
    pool.stopping = 0;
    atomic_store_explicit(&pool.started, 0, memory_order_release);
}

/* Start the threads with every signal blocked: signals belong to the
 * daemon's event loop, never to a pool thread. */
static int pool_start_locked(void)
{
    unsigned want = 2 * coro_worker_count();
    if (want > OFFLOAD_MAX_THREADS)
        want = OFFLOAD_MAX_THREADS;
    if (want == 0)
        want = 1;

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = 0;
    while (pool.nthreads < (int)want) {
        err = pthread_create(&pool.threads[pool.nthreads], NULL, pool_thread, NULL);
        if (err)
            break;
        pool.nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pool.nthreads == 0) { /* fewer threads than asked still works */
        errno = err;
        return -1;
    }
    coro__at_shutdown(pool_shutdown);
    atomic_store_explicit(&pool.started, 1, memory_order_release);
    return 0;
}

static int pool_start(void)
{
    if (atomic_load_explicit(&pool.started, memory_order_acquire))
        return 0;
    pthread_mutex_lock(&pool.mu);
    int rc = atomic_load_explicit(&pool.started, memory_order_relaxed) ? 0 : pool_start_locked();
    pthread_mutex_unlock(&pool.mu);
    return rc;
}

int coro_offload(void (*fn)(void *), void *arg)
{
    if (!coro_self()) {
        fn(arg);
        return 0;
    }
    if (coro_cancelled()) {
        errno = ECANCELED;
        return -1;
    }
    if (pool_start() < 0)
        return -1;

    struct offload_job job = {.fn = fn, .arg = arg};
    coro__waiter_init(&job.w);
    pthread_mutex_lock(&pool.mu);
    if (pool.tail)
        pool.tail->next = &job;
    else
        pool.head = &job;
    pool.tail = &job;
    pthread_cond_signal(&pool.cv);
    pthread_mutex_unlock(&pool.mu);

    /* Not cancellable: fn may be using our stack until the pool is done. */
    coro__park(&job.w, -1, 0);
    if (coro_cancelled()) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}
