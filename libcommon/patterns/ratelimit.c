/*
 * ratelimit.c - token bucket (GCRA) and sliding-log limiters, and a map of
 * them per key with idle eviction. See ratelimit.h for the semantics; this
 * file holds the arithmetic and the locking, not policy (the CLI and the
 * daemons decide what to limit and what to say when they do).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "coro/coro.h"
#include "coro/ratelimit.h"

typedef unsigned __int128 u128;

/* The state of one limiter, without a lock (map entries share the map's). */
struct rl_state {
    u128 tat;      /* token bucket: theoretical arrival time, us * rate */
    uint64_t *log; /* sliding window: grant stamps, a ring */
    uint32_t head, count, cap;
};

struct coro_ratelimit {
    pthread_mutex_t mu;
    struct coro_rl_conf conf;
    uint64_t window_us;
    struct rl_state st;
};

static int conf_fill(struct coro_rl_conf *c, uint64_t *window_us)
{
    if (c->rate == 0 || c->interval_us == 0 || (unsigned)c->algo > CORO_RL_SLIDING_WINDOW)
        goto fail;
    if (c->burst == 0)
        c->burst = c->algo == CORO_RL_TOKEN_BUCKET ? 1 : c->rate;
    if (c->algo == CORO_RL_SLIDING_WINDOW && c->burst > CORO_RL_MAX_WINDOW_LOG)
        goto fail;
    /* Both algorithms go from empty back to their initial state in
     * burst * interval / rate: the sliding window's length, and what the
     * map waits before a key may be forgotten. */
    u128 w = ((u128)c->burst * c->interval_us + c->rate - 1) / c->rate;
    *window_us = w > UINT64_MAX / 2 ? UINT64_MAX / 2 : (uint64_t)w;
    return 0;
fail:
    errno = EINVAL;
    return -1;
}

/* Drop stamps that have left the window [now - window, now]. */
static void log_expire(struct rl_state *s, uint64_t window_us, uint64_t now)
{
    while (s->count > 0) {
        uint64_t t = s->log[s->head];
        if (now < t || now - t < window_us)
            break;
        s->head = (s->head + 1) % s->cap;
        s->count--;
    }
}

static int log_push(struct rl_state *s, uint64_t limit, uint64_t now)
{
    if (s->count == s->cap) {
        uint32_t ncap = s->cap ? s->cap * 2 : 8;
        if (ncap > limit)
            ncap = (uint32_t)limit;
        uint64_t *n = malloc(sizeof *n * ncap);
        if (!n)
            return -1;
        for (uint32_t i = 0; i < s->count; i++)
            n[i] = s->log[(s->head + i) % s->cap];
        free(s->log);
        s->log = n;
        s->head = 0;
        s->cap = ncap;
    }
    s->log[(s->head + s->count) % s->cap] = now;
    s->count++;
    return 0;
}

/* The core of try/wait: 0 and (when take) the grant taken, else the wait. */
static uint64_t state_check(struct rl_state *s, const struct coro_rl_conf *c, uint64_t window_us,
                            uint64_t now, int take)
{
    if (c->algo == CORO_RL_TOKEN_BUCKET) {
        u128 n = (u128)now * c->rate;
        u128 tau = (u128)(c->burst - 1) * c->interval_us;
        u128 tat = s->tat > n ? s->tat : n;
        if (tat > n + tau)
            return (uint64_t)((tat - tau - n + c->rate - 1) / c->rate);
        if (take)
            s->tat = tat + c->interval_us;
        return 0;
    }
    log_expire(s, window_us, now);
    if (s->count < c->burst) {
        /* Out of memory: report a short wait rather than over-granting. */
        if (take && log_push(s, c->burst, now) < 0)
            return 1000;
        return 0;
    }
    uint64_t oldest = s->log[s->head];
    return oldest + window_us > now ? oldest + window_us - now : 1;
}

/* Back in its initial state: forgetting it changes nothing. */
static int state_idle(struct rl_state *s, const struct coro_rl_conf *c, uint64_t window_us,
                      uint64_t now)
{
    if (c->algo == CORO_RL_TOKEN_BUCKET)
        return s->tat <= (u128)now * c->rate;
    log_expire(s, window_us, now);
    return s->count == 0;
}

uint64_t coro_ratelimit_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

coro_ratelimit_t *coro_ratelimit_new(const struct coro_rl_conf *conf)
{
    coro_ratelimit_t *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    rl->conf = *conf;
    if (conf_fill(&rl->conf, &rl->window_us) < 0) {
        free(rl);
        return NULL;
    }
    pthread_mutex_init(&rl->mu, NULL);
    return rl;
}

void coro_ratelimit_free(coro_ratelimit_t *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->mu);
    free(rl->st.log);
    free(rl);
}

static uint64_t rl_check(coro_ratelimit_t *rl, uint64_t now_us, int take)
{
    pthread_mutex_lock(&rl->mu);
    uint64_t w = state_check(&rl->st, &rl->conf, rl->window_us, now_us, take);
    pthread_mutex_unlock(&rl->mu);
    return w;
}

uint64_t coro_ratelimit_try(coro_ratelimit_t *rl, uint64_t now_us)
{
    return rl_check(rl, now_us, 1);
}

uint64_t coro_ratelimit_wait_us(coro_ratelimit_t *rl, uint64_t now_us)
{
    return rl_check(rl, now_us, 0);
}

/* Sleep for a wait given in us. Timers have millisecond resolution: round
 * up, so we never wake early and spin; the GCRA state does not lose the
 * time overslept, and a burst of 2 or more absorbs the timer's slack. */
static int sleep_us(uint64_t us)
{
    return coro_sleep_ms((us + 999) / 1000);
}

int coro_ratelimit_acquire(coro_ratelimit_t *rl)
{
    for (;;) {
        uint64_t w = coro_ratelimit_try(rl, coro_ratelimit_now_us());
        if (w == 0)
            return 0;
        if (sleep_us(w) < 0)
            return -1;
    }
}

/* ---- keyed map ---- */

struct rl_entry {
    struct rl_entry *next;
    uint64_t hash, last_us;
    struct rl_state st;
    size_t keylen;
    unsigned char key[];
};

struct coro_ratelimit_map {
    pthread_mutex_t mu;
    struct coro_rl_conf conf;
    uint64_t window_us, idle_us, seed, last_sweep;
    struct rl_entry **buckets;
    size_t nbuckets, count;
};

coro_ratelimit_map_t *coro_ratelimit_map_new(const struct coro_rl_conf *conf, uint64_t idle_us)
{
    coro_ratelimit_map_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->conf = *conf;
    if (conf_fill(&m->conf, &m->window_us) < 0)
        goto fail;
    m->idle_us = idle_us;
    m->nbuckets = 64;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    if (!m->buckets)
        goto fail;
    /* A per-map seed so keys from the network cannot be picked to collide. */
    if (getrandom(&m->seed, sizeof m->seed, GRND_NONBLOCK) != sizeof m->seed)
        m->seed = coro_ratelimit_now_us() * 0x9e3779b97f4a7c15ull;
    pthread_mutex_init(&m->mu, NULL);
    return m;
fail:
    free(m);
    return NULL;
}

static void entry_free(struct rl_entry *e)
{
    free(e->st.log);
    free(e);
}

void coro_ratelimit_map_free(coro_ratelimit_map_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (struct rl_entry *e = m->buckets[i], *n; e; e = n) {
            n = e->next;
            entry_free(e);
        }
    }
    pthread_mutex_destroy(&m->mu);
    free(m->buckets);
    free(m);
}

/* FNV-1a over the seed and the key, then a final mix for the low bits. */
static uint64_t key_hash(uint64_t seed, const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

static void map_grow(coro_ratelimit_map_t *m)
{
    size_t n = m->nbuckets * 2;
    struct rl_entry **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (struct rl_entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

/* Forget idle keys, at most once per max(idle, refill time): O(keys)
 * amortised over every call in that time. */
static void map_sweep(coro_ratelimit_map_t *m, uint64_t now, int force)
{
    uint64_t every = m->idle_us > m->window_us ? m->idle_us : m->window_us;
    if (!force && now - m->last_sweep < every && now >= m->last_sweep)
        return;
    m->last_sweep = now;
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (struct rl_entry **pp = &m->buckets[i]; *pp;) {
            struct rl_entry *e = *pp;
            if (now >= e->last_us && now - e->last_us >= m->idle_us &&
                state_idle(&e->st, &m->conf, m->window_us, now)) {
                *pp = e->next;
                entry_free(e);
                m->count--;
            } else {
                pp = &e->next;
            }
        }
    }
}

static struct rl_entry *map_get(coro_ratelimit_map_t *m, const void *key, size_t len)
{
    uint64_t h = key_hash(m->seed, key, len);
    for (struct rl_entry *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && e->keylen == len && !memcmp(e->key, key, len))
            return e;
    struct rl_entry *e = calloc(1, sizeof *e + len);
    if (!e)
        return NULL;
    e->hash = h;
    e->keylen = len;
    memcpy(e->key, key, len);
    if (m->count >= m->nbuckets)
        map_grow(m);
    e->next = m->buckets[h & (m->nbuckets - 1)];
    m->buckets[h & (m->nbuckets - 1)] = e;
    m->count++;
    return e;
}

uint64_t coro_ratelimit_map_try(coro_ratelimit_map_t *m, const void *key, size_t keylen,
                                uint64_t now_us)
{
    uint64_t w = UINT64_MAX;
    pthread_mutex_lock(&m->mu);
    map_sweep(m, now_us, 0);
    struct rl_entry *e = map_get(m, key, keylen);
    if (e) {
        e->last_us = now_us;
        w = state_check(&e->st, &m->conf, m->window_us, now_us, 1);
    }
    pthread_mutex_unlock(&m->mu);
    if (!e)
        errno = ENOMEM;
    return w;
}

int coro_ratelimit_map_acquire(coro_ratelimit_map_t *m, const void *key, size_t keylen)
{
    for (;;) {
        uint64_t w = coro_ratelimit_map_try(m, key, keylen, coro_ratelimit_now_us());
        if (w == 0)
            return 0;
        if (w == UINT64_MAX || sleep_us(w) < 0)
            return -1;
    }
}

size_t coro_ratelimit_map_size(coro_ratelimit_map_t *m, uint64_t now_us)
{
    pthread_mutex_lock(&m->mu);
    map_sweep(m, now_us, 1);
    size_t n = m->count;
    pthread_mutex_unlock(&m->mu);
    return n;
}
