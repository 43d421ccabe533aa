/*
 * coro.h - stackful coroutines on an M:N scheduler over libevent.
 *
 * This header is the runtime's lifecycle API: start the runtime, spawn, join,
 * yield, sleep, cancel, and structured scopes. Channels, sync primitives,
 * fd I/O, networking, TLS, libcurl and the blocking-call pool have their own
 * headers (chan.h, sync.h, io.h, net.h, tls.h, curl.h, offload.h).
 *
 * Conventions: calls return 0 or -1 with errno set; constructors return NULL
 * with errno set. "May yield" means the calling coroutine can be parked and
 * other coroutines run before the call returns. Calls marked "coroutine only"
 * abort with a message when made outside a coroutine (misuse is loud).
 */
#ifndef CORO_CORO_H
#define CORO_CORO_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coro coro_t;

struct coro_config {
    unsigned workers;     /* OS threads, each with its own event loop; >= 1 */
    size_t stack_size;    /* bytes per coroutine stack; >= 16 KiB, <= 1 GiB */
    size_t pool_capacity; /* stacks kept for reuse per worker; 0 = no pooling */
};

#define CORO_DEFAULT_STACK_SIZE (64u * 1024u)
#define CORO_DEFAULT_POOL_CAPACITY 1024u
#define CORO_MIN_STACK_SIZE (16u * 1024u)
#define CORO_MAX_STACK_SIZE (1024u * 1024u * 1024u)
#define CORO_MAX_WORKERS 1024u

/* Fill cfg with defaults: one worker per online CPU, 64 KiB stacks. */
void coro_config_default(struct coro_config *cfg);

/* NULL when cfg is acceptable, else a static reason such as
 * "workers must be between 1 and 1024 (got 0)". Thread-safe. */
const char *coro_config_check(const struct coro_config *cfg);

/*
 * Start the runtime with cfg (NULL = defaults), run main_fn(arg) as the first
 * coroutine on worker 0 (the calling thread) and return when main_fn and
 * every coroutine spawned meanwhile have ended. Returns 0, or -1 with errno:
 * EINVAL (cfg fails coro_config_check), EBUSY (a runtime is already running
 * in this process), or an allocation/thread error.
 */
int coro_run(const struct coro_config *cfg, void (*main_fn)(void *), void *arg);

/*
 * Spawn fn(arg) as a new coroutine and return a joinable handle. The caller
 * owns the handle and must coro_join() or coro_detach() it exactly once.
 * From a coroutine the new one is queued on the caller's worker (idle
 * workers may steal it before it starts); from any other thread it goes to
 * a worker chosen round-robin. Does not yield. NULL/ENOMEM, or ESRCH when no
 * runtime is running.
 */
coro_t *coro_spawn(void (*fn)(void *), void *arg);

#define CORO_WORKER_ANY (-1)
/* As coro_spawn, on worker `worker` (0..workers-1): the coroutine runs
 * there and nowhere else (it is never stolen), which per-worker state such
 * as listeners relies on. CORO_WORKER_ANY picks a worker round-robin and
 * leaves it stealable. EINVAL for a worker index out of range. Onto
 * another worker than the caller's, the stack comes from that worker's
 * pool when the coroutine arrives there: if none can be mapped then, the
 * coroutine never runs (a message says so) and coro_join reports ENOMEM. */
coro_t *coro_spawn_on(int worker, void (*fn)(void *), void *arg);

/* Wait for c to end and release the handle. 0, or -1 with ECANCELED when c
 * ended because it was cancelled or when the caller was cancelled while
 * waiting (c is then detached), or with ENOMEM when c never ran for want of
 * a stack (see coro_spawn_on). Coroutine only; may yield. Joining twice or
 * joining a detached handle aborts with a message. */
int coro_join(coro_t *c);

/* Give up the handle: c's resources are freed when it ends. Once only. */
void coro_detach(coro_t *c);

/* Let every other ready coroutine on this worker run once. Coroutine only. */
void coro_yield(void);

/* Park for ms milliseconds. 0, or -1/ECANCELED. Coroutine only. */
int coro_sleep_ms(uint64_t ms);

/*
 * Ask c to stop: its current and future blocking calls return -1 with
 * ECANCELED (a coroutine that never blocks is not interrupted). Callable
 * from any thread while the caller still holds a valid handle. Idempotent.
 */
void coro_cancel(coro_t *c);

/* The running coroutine, or NULL outside coroutines. */
coro_t *coro_self(void);
/* Nonzero when the running coroutine has been cancelled. */
int coro_cancelled(void);
/* A process-unique id, for logs (also used in the stack overflow message). */
uint64_t coro_id(const coro_t *c);

/* Worker index of the calling thread (0..workers-1), or -1 if not a worker. */
int coro_worker_index(void);
/* Number of workers of the running runtime, 0 when none runs. */
unsigned coro_worker_count(void);
/* Monotonic milliseconds, cached per scheduler tick on workers. */
uint64_t coro_now_ms(void);

/* Counters for /metrics and benchmarks. Values are racy snapshots. */
struct coro_stats {
    uint64_t spawned;       /* coroutines created since start */
    uint64_t alive;         /* coroutines not yet ended */
    uint64_t switches;      /* context switches */
    uint64_t steals;        /* unstarted coroutines taken by idle workers */
    uint64_t stacks_pooled; /* stacks kept for reuse */
    uint64_t stacks_mapped; /* stacks currently mmap'd */
    uint64_t stacks_guarded;/* of which carry a PROT_NONE guard page */
    uint64_t watches;       /* armed stackless fd watches (coro_watch_fd) */
};
void coro_stats_get(struct coro_stats *st);

/*
 * Structured concurrency: a scope tracks the coroutines spawned in it;
 * coro_scope_wait() returns when all have ended. The struct is embedded by
 * the caller; its fields are private.
 */
typedef struct coro_scope {
    pthread_mutex_t mu;
    struct coro *members;  /* live members, linked through coro->scope_next */
    size_t live;
    struct coro_waiter *waiter;
    int cancelled;
} coro_scope_t;

void coro_scope_init(coro_scope_t *s);
/* Spawn a member. The handle stays valid until the member ends; it may be
 * passed to coro_cancel() but never joined or detached. NULL/ENOMEM. */
coro_t *coro_scope_spawn(coro_scope_t *s, void (*fn)(void *), void *arg);
/* Wait until every member has ended: 0, or -1/ECANCELED when the caller is
 * cancelled (the members are then cancelled and still waited for, so the
 * scope never outlives its coroutines). Coroutine only; may yield. */
int coro_scope_wait(coro_scope_t *s);
/* Cancel every current member, and members spawned later. Any thread. */
void coro_scope_cancel(coro_scope_t *s);

#ifdef __cplusplus
}
#endif
#endif
