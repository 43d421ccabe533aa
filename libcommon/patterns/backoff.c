/*
 * backoff.c - exponential backoff with full/equal/no jitter (see backoff.h
 * for the formulas). Pure arithmetic on a caller-owned struct; the only
 * system call is getrandom() when the caller asks for a random seed.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "coro/backoff.h"

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n] (inclusive, as the blog's random_between): Lemire's
 * multiply-shift; the bias is below 2^-64 * n, far under any test's reach. */
static uint64_t uniform_incl(uint64_t *s, uint64_t n)
{
    if (n == UINT64_MAX)
        return splitmix64(s);
    return (uint64_t)(((unsigned __int128)splitmix64(s) * (n + 1)) >> 64);
}

int coro_backoff_init(struct coro_backoff *b, uint64_t min_ms, uint64_t max_ms,
                      enum coro_jitter jitter, uint64_t seed)
{
    if (min_ms < 1 || max_ms < min_ms || (unsigned)jitter > CORO_JITTER_NONE) {
        errno = EINVAL;
        return -1;
    }
    if (seed == 0 && getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
    }
    b->min_ms = min_ms;
    b->max_ms = max_ms;
    b->jitter = jitter;
    b->attempt = 0;
    b->rng = seed;
    return 0;
}

uint64_t coro_backoff_ceiling(const struct coro_backoff *b, unsigned n)
{
    /* min * 2^n saturates at max without overflowing. */
    uint64_t v = b->min_ms;
    for (unsigned i = 0; i < n && v < b->max_ms; i++)
        v = v > b->max_ms / 2 ? b->max_ms : v * 2;
    return v < b->max_ms ? v : b->max_ms;
}

uint64_t coro_backoff_next(struct coro_backoff *b)
{
    uint64_t exp = coro_backoff_ceiling(b, b->attempt);
    if (b->attempt < 64)
        b->attempt++;
    switch (b->jitter) {
    case CORO_JITTER_FULL:
        return uniform_incl(&b->rng, exp);
    case CORO_JITTER_EQUAL:
        return exp - exp / 2 + uniform_incl(&b->rng, exp / 2);
    case CORO_JITTER_NONE:
    default:
        return exp;
    }
}

void coro_backoff_reset(struct coro_backoff *b)
{
    b->attempt = 0;
}

static const char *const jitter_names[] = {"full", "equal", "none"};

int coro_backoff_parse_jitter(const char *s, enum coro_jitter *out)
{
    for (unsigned i = 0; i < sizeof jitter_names / sizeof *jitter_names; i++) {
        if (!strcmp(s, jitter_names[i])) {
            *out = (enum coro_jitter)i;
            return 0;
        }
    }
    errno = EINVAL;
    return -1;
}

const char *coro_backoff_jitter_name(enum coro_jitter j)
{
    return (unsigned)j <= CORO_JITTER_NONE ? jitter_names[j] : "?";
}
