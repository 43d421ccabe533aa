/*
 * ratelimit.h - rate limiters: a token bucket and a sliding window, alone
 * or one per key in a map that forgets idle keys.
 *
 * Rate is `rate` grants per `interval_us`. The algorithms:
 *
 *  - CORO_RL_TOKEN_BUCKET: a bucket of `burst` tokens (default 1) refilled
 *    at the rate, kept as GCRA's "theoretical arrival time" in exact
 *    integer arithmetic (time scaled by rate), so 1000/s or 7/min never
 *    drifts through rounding. Starts full.
 *  - CORO_RL_SLIDING_WINDOW: a sliding log: at most `burst` grants (default
 *    `rate`) in any window of burst * interval / rate (default: interval).
 *    The log keeps one timestamp per grant in the window, so it is exact at
 *    the edges (the N+1st grant in a window waits until the oldest leaves)
 *    at O(burst) memory; the two-window weighted counter is O(1) but lets
 *    up to ~2N through at a boundary, which is what a shell user testing
 *    "N per minute" notices. Window is half-open: a grant at t counts for
 *    instants in [t, t + window).
 *
 * Times are microseconds on any monotonic clock the caller chooses (pass
 * the same clock always); coro_ratelimit_now_us() reads CLOCK_MONOTONIC.
 *
 * Timers: acquire sleeps with coro_sleep_ms, which may wake a few ms late
 * (libevent's coarse monotonic clock ticks every 1-4 ms). A token bucket
 * with burst 1 turns that lateness into a lower rate; a burst covering the
 * lateness (e.g. rate x 20 ms, at least 2) keeps the average rate exact.
 *
 * Thread-safety: every call on a limiter or map may come from any thread
 * or worker; an internal mutex held for O(1) (map: O(1) amortised) work
 * serialises them. The *_acquire calls park only the calling coroutine.
 */
#ifndef CORO_RATELIMIT_H
#define CORO_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum coro_rl_algo {
    CORO_RL_TOKEN_BUCKET = 0,
    CORO_RL_SLIDING_WINDOW,
};

struct coro_rl_conf {
    enum coro_rl_algo algo;
    uint64_t rate;        /* grants per interval, >= 1 */
    uint64_t interval_us; /* >= 1 */
    uint64_t burst;       /* 0 = default (token bucket 1, sliding window rate) */
};

/* Largest burst a sliding window accepts (its log holds burst stamps). */
#define CORO_RL_MAX_WINDOW_LOG (1u << 24)

typedef struct coro_ratelimit coro_ratelimit_t;

/* NULL with EINVAL (rate/interval 0, sliding-window burst over the cap)
 * or ENOMEM. */
coro_ratelimit_t *coro_ratelimit_new(const struct coro_rl_conf *conf);
void coro_ratelimit_free(coro_ratelimit_t *rl);

/* Take one grant at now_us: returns 0 when granted, else the microseconds
 * until a grant would be possible (>= 1; nothing is taken). Never yields. */
uint64_t coro_ratelimit_try(coro_ratelimit_t *rl, uint64_t now_us);
/* How long until the next grant at now_us, without taking it (0 = now). */
uint64_t coro_ratelimit_wait_us(coro_ratelimit_t *rl, uint64_t now_us);
/* Take one grant, sleeping (coro_sleep_ms) until there is one. 0, or
 * -1/ECANCELED. Coroutine only; may yield. Grants go in no fixed order
 * among coroutines waiting on one limiter. */
int coro_ratelimit_acquire(coro_ratelimit_t *rl);

/* CLOCK_MONOTONIC in microseconds. */
uint64_t coro_ratelimit_now_us(void);

/*
 * Keyed limiters: one limiter per key (any bytes), created on first use
 * from conf. A key unused for idle_us is forgotten, but only once its
 * limiter is back in its initial state (bucket full, window empty), so
 * forgetting never lets a key exceed its rate; idle_us 0 = as soon as
 * that holds. Memory is therefore bounded by the keys seen within about
 * one refill time.
 */
typedef struct coro_ratelimit_map coro_ratelimit_map_t;

coro_ratelimit_map_t *coro_ratelimit_map_new(const struct coro_rl_conf *conf, uint64_t idle_us);
void coro_ratelimit_map_free(coro_ratelimit_map_t *m);
/* As coro_ratelimit_try for key. UINT64_MAX with ENOMEM when the key's
 * limiter cannot be created. */
uint64_t coro_ratelimit_map_try(coro_ratelimit_map_t *m, const void *key, size_t keylen,
                                uint64_t now_us);
/* As coro_ratelimit_acquire for key: 0, or -1/ECANCELED, ENOMEM. */
int coro_ratelimit_map_acquire(coro_ratelimit_map_t *m, const void *key, size_t keylen);
/* Keys currently held (after forgetting the idle ones as of now_us). */
size_t coro_ratelimit_map_size(coro_ratelimit_map_t *m, uint64_t now_us);

#ifdef __cplusplus
}
#endif
#endif
