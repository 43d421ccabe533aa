/*
 * breaker.h - circuit breaker: stop calling something that keeps failing,
 * then let one probe call find out whether it has recovered.
 *
 *   closed --(failures consecutive failures, or >= ratio_pct% failures
 *             among the last `window` outcomes)--> open
 *   open --(cooldown_ms passed; the next caller becomes the probe)--> half-open
 *   half-open --(probe succeeds)--> closed     --(probe fails)--> open again
 *
 * In half-open exactly one caller holds the probe; the others are refused
 * as if open. A probe that never reports (its process was killed) is given
 * up after another cooldown_ms, and the next caller probes instead.
 *
 * Two forms share this state machine: an in-memory breaker for daemons,
 * and a file-backed one (coro_breaker_file_*) whose state lives in a small
 * text file read and rewritten under flock(2), so separate processes (cron
 * runs of `coro retry --breaker FILE`) agree on it and only one of them
 * gets the half-open probe. Times are caller-supplied milliseconds: any
 * monotonic clock in memory; for files a clock every process shares across
 * reboots, i.e. CLOCK_REALTIME (coro_breaker_file_now_ms()).
 */
#ifndef CORO_BREAKER_H
#define CORO_BREAKER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum coro_breaker_state {
    CORO_BREAKER_CLOSED = 0,
    CORO_BREAKER_OPEN,
    CORO_BREAKER_HALF_OPEN,
};

struct coro_breaker_conf {
    unsigned failures;    /* consecutive failures that open; 0 = not used */
    unsigned window;      /* outcomes for the ratio rule, 1..64; 0 = not used */
    unsigned ratio_pct;   /* 1..100: open at >= this % failures in a full window */
    uint64_t cooldown_ms; /* open -> half-open after this long */
};

/* What allow() decided. */
struct coro_breaker_ticket {
    int probe;                     /* this caller holds the half-open probe */
    uint64_t retry_in_ms;          /* when refused: until a probe may go */
    enum coro_breaker_state state; /* state after the decision */
};

/* "closed", "open", "half-open". */
const char *coro_breaker_state_name(enum coro_breaker_state s);

typedef struct coro_breaker coro_breaker_t;

/* NULL with EINVAL (no rule enabled, window > 64, ratio out of 1..100) or
 * ENOMEM. Thread-safe: all calls on one breaker may come from any thread
 * (internal mutex, O(1)); none yields. */
coro_breaker_t *coro_breaker_new(const struct coro_breaker_conf *conf);
void coro_breaker_free(coro_breaker_t *b);
/* May a call go ahead at now_ms? 0 (t->probe says whether it is the
 * probe), or -1/EAGAIN when open (t->retry_in_ms set). t may be NULL. */
int coro_breaker_allow(coro_breaker_t *b, uint64_t now_ms, struct coro_breaker_ticket *t);
/* Report the outcome of an allowed call; probe as the ticket said. In
 * half-open only the probe's outcome counts. */
void coro_breaker_record(coro_breaker_t *b, uint64_t now_ms, int success, int probe);
enum coro_breaker_state coro_breaker_state(coro_breaker_t *b);

/*
 * File-backed form. Each call opens path (created mode 0644 when missing;
 * an empty file is a closed breaker), takes flock(LOCK_EX), reads the
 * state, applies the same transition as above, rewrites the file in place
 * and unlocks, so concurrent processes serialise. Blocks the calling
 * thread on the lock for as long as another process holds it (a few
 * syscalls). Errors: -1 with the errno of open/flock/read/write, EBADMSG
 * for a file that is not a breaker state file, EAGAIN from allow when
 * open. The conf must be the same in every process sharing a file.
 */
int coro_breaker_file_allow(const char *path, const struct coro_breaker_conf *conf, uint64_t now_ms,
                            struct coro_breaker_ticket *t);
int coro_breaker_file_record(const char *path, const struct coro_breaker_conf *conf,
                             uint64_t now_ms, int success, int probe);
/* CLOCK_REALTIME in ms, the clock the file form's times are in. */
uint64_t coro_breaker_file_now_ms(void);

#ifdef __cplusplus
}
#endif
#endif
