/*
 * backoff.h - exponential backoff between retries, with the jitter modes of
 * the AWS Architecture Blog ("Exponential Backoff And Jitter", 2015):
 *
 *   exp    = min(max, min * 2^attempt)           (attempt counts from 0)
 *   none   : sleep = exp
 *   full   : sleep = random_between(0, exp)
 *   equal  : sleep = exp/2 + random_between(0, exp/2)
 *
 * Full jitter may sleep less than min (down to 0), as the blog defines it;
 * callers that need a floor use equal jitter. The random source is a small
 * seeded generator (splitmix64) so tests can replay a sequence; it is not
 * for cryptography. Only computes delays: it never sleeps itself.
 */
#ifndef CORO_BACKOFF_H
#define CORO_BACKOFF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum coro_jitter {
    CORO_JITTER_FULL = 0,
    CORO_JITTER_EQUAL,
    CORO_JITTER_NONE,
};

/* Embedded by the caller (init/no fini); fields are private. One owner: not
 * thread-safe (give each retrying coroutine its own). */
struct coro_backoff {
    uint64_t min_ms, max_ms;
    enum coro_jitter jitter;
    unsigned attempt;
    uint64_t rng;
};

/* min_ms >= 1 and max_ms >= min_ms, else -1/EINVAL. seed 0 seeds from
 * getrandom() (different every run); any other seed gives a fixed sequence. */
int coro_backoff_init(struct coro_backoff *b, uint64_t min_ms, uint64_t max_ms,
                      enum coro_jitter jitter, uint64_t seed);
/* The delay before the next retry, in ms; advances the attempt count. */
uint64_t coro_backoff_next(struct coro_backoff *b);
/* Back to the first attempt (after a success). The RNG keeps its state. */
void coro_backoff_reset(struct coro_backoff *b);
/* The un-jittered ceiling for attempt n: min(max, min * 2^n). */
uint64_t coro_backoff_ceiling(const struct coro_backoff *b, unsigned n);

/* "full", "equal" or "none" -> *out; -1/EINVAL otherwise. */
int coro_backoff_parse_jitter(const char *s, enum coro_jitter *out);
/* The name of j ("full"...). */
const char *coro_backoff_jitter_name(enum coro_jitter j);

#ifdef __cplusplus
}
#endif
#endif
