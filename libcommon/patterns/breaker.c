/*
 * breaker.c - the circuit breaker state machine (see breaker.h), wrapped
 * once in a mutex for daemons and once in a flock(2)-protected text file
 * for separate processes. The transitions live in core_allow/core_record
 * and nowhere else, so both forms behave the same.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "coro/breaker.h"

struct core {
    enum coro_breaker_state state;
    unsigned consec;    /* consecutive failures while closed */
    unsigned n;         /* outcomes in the ratio window (<= conf.window) */
    uint64_t bits;      /* the window, newest in bit 0, 1 = failure */
    uint64_t opened_at; /* when it last opened */
    uint64_t probe_at;  /* when the half-open probe was handed out, 0 = none */
};

struct coro_breaker {
    pthread_mutex_t mu;
    struct coro_breaker_conf conf;
    struct core c;
};

static const char *const state_names[] = {"closed", "open", "half-open"};

const char *coro_breaker_state_name(enum coro_breaker_state s)
{
    return (unsigned)s <= CORO_BREAKER_HALF_OPEN ? state_names[s] : "?";
}

static int conf_ok(const struct coro_breaker_conf *c)
{
    if ((c->failures == 0 && c->window == 0) || c->window > 64 ||
        (c->window && (c->ratio_pct < 1 || c->ratio_pct > 100))) {
        errno = EINVAL;
        return 0;
    }
    return 1;
}

static uint64_t since(uint64_t now, uint64_t then)
{
    return now >= then ? now - then : 0; /* a clock stepped back waits longer */
}

static void core_open(struct core *k, uint64_t now)
{
    k->state = CORO_BREAKER_OPEN;
    k->opened_at = now;
    k->probe_at = 0;
}

static int core_allow(struct core *k, const struct coro_breaker_conf *cf, uint64_t now,
                      struct coro_breaker_ticket *t)
{
    t->probe = 0;
    t->retry_in_ms = 0;
    if (k->state == CORO_BREAKER_OPEN && since(now, k->opened_at) >= cf->cooldown_ms)
        k->state = CORO_BREAKER_HALF_OPEN;
    if (k->state == CORO_BREAKER_HALF_OPEN) {
        /* The probe is leased for one cooldown: a prober that died without
         * reporting must not keep the circuit half-open forever. */
        if (k->probe_at == 0 || since(now, k->probe_at) >= cf->cooldown_ms) {
            k->probe_at = now ? now : 1;
            t->probe = 1;
        } else {
            t->retry_in_ms = cf->cooldown_ms - since(now, k->probe_at);
        }
    } else if (k->state == CORO_BREAKER_OPEN) {
        t->retry_in_ms = cf->cooldown_ms - since(now, k->opened_at);
    }
    t->state = k->state;
    if (k->state == CORO_BREAKER_CLOSED || t->probe)
        return 0;
    errno = EAGAIN;
    return -1;
}

static int ratio_trips(const struct core *k, const struct coro_breaker_conf *cf)
{
    if (cf->window == 0 || k->n < cf->window)
        return 0;
    unsigned fails = (unsigned)__builtin_popcountll(k->bits);
    return fails * 100 >= cf->ratio_pct * cf->window;
}

static void core_record(struct core *k, const struct coro_breaker_conf *cf, uint64_t now,
                        int success, int probe)
{
    if (k->state == CORO_BREAKER_HALF_OPEN) {
        if (!probe)
            return;
        if (success) {
            memset(k, 0, sizeof *k);
        } else {
            core_open(k, now);
        }
        return;
    }
    if (k->state != CORO_BREAKER_CLOSED)
        return; /* a call let through before it opened, finishing late */
    if (cf->window) {
        uint64_t mask = cf->window == 64 ? UINT64_MAX : (1ull << cf->window) - 1;
        k->bits = ((k->bits << 1) | (success ? 0 : 1)) & mask;
        if (k->n < cf->window)
            k->n++;
    }
    k->consec = success ? 0 : k->consec + 1;
    if (!success && ((cf->failures && k->consec >= cf->failures) || ratio_trips(k, cf)))
        core_open(k, now);
}

/* ---- in memory ---- */

coro_breaker_t *coro_breaker_new(const struct coro_breaker_conf *conf)
{
    if (!conf_ok(conf))
        return NULL;
    coro_breaker_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->conf = *conf;
    pthread_mutex_init(&b->mu, NULL);
    return b;
}

void coro_breaker_free(coro_breaker_t *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b);
}

int coro_breaker_allow(coro_breaker_t *b, uint64_t now_ms, struct coro_breaker_ticket *t)
{
    struct coro_breaker_ticket tmp;
    pthread_mutex_lock(&b->mu);
    int r = core_allow(&b->c, &b->conf, now_ms, t ? t : &tmp);
    pthread_mutex_unlock(&b->mu);
    if (r < 0)
        errno = EAGAIN;
    return r;
}

void coro_breaker_record(coro_breaker_t *b, uint64_t now_ms, int success, int probe)
{
    pthread_mutex_lock(&b->mu);
    core_record(&b->c, &b->conf, now_ms, success, probe);
    pthread_mutex_unlock(&b->mu);
}

enum coro_breaker_state coro_breaker_state(coro_breaker_t *b)
{
    pthread_mutex_lock(&b->mu);
    enum coro_breaker_state s = b->c.state;
    pthread_mutex_unlock(&b->mu);
    return s;
}

/* ---- in a file ---- */

uint64_t coro_breaker_file_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#define FILE_MAGIC "coro-breaker 1"

/* Parse the file's text into k: 0, or -1/EBADMSG. Empty text = closed. */
static int core_parse(struct core *k, const char *text)
{
    memset(k, 0, sizeof *k);
    if (*text == '\0')
        return 0;
    char st[16];
    unsigned consec, n;
    uint64_t bits, opened, probe;
    if (sscanf(text,
               FILE_MAGIC "\nstate %15s\nconsecutive_failures %u\nwindow %u %" SCNx64
                          "\nopened_at_ms %" SCNu64 "\nprobe_at_ms %" SCNu64,
               st, &consec, &n, &bits, &opened, &probe) != 6)
        goto bad;
    k->state = CORO_BREAKER_CLOSED;
    while ((unsigned)k->state <= CORO_BREAKER_HALF_OPEN && strcmp(st, state_names[k->state]))
        k->state++;
    if ((unsigned)k->state > CORO_BREAKER_HALF_OPEN || n > 64)
        goto bad;
    k->consec = consec;
    k->n = n;
    k->bits = bits;
    k->opened_at = opened;
    k->probe_at = probe;
    return 0;
bad:
    errno = EBADMSG;
    return -1;
}

static int core_format(const struct core *k, char *buf, size_t len)
{
    return snprintf(buf, len,
                    FILE_MAGIC "\nstate %s\nconsecutive_failures %u\nwindow %u %" PRIx64
                               "\nopened_at_ms %" PRIu64 "\nprobe_at_ms %" PRIu64 "\n",
                    state_names[k->state], k->consec, k->n, k->bits, k->opened_at, k->probe_at);
}

/* Open and lock path, read the state into k: the fd, or -1. */
static int file_lock_read(const char *path, struct core *k)
{
    char buf[512];
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR)
            goto fail;
    ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
    if (r < 0)
        goto fail;
    buf[r] = '\0';
    if (core_parse(k, buf) < 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd); /* closing drops the lock */
    errno = e;
    return -1;
}

/* Rewrite in place (not rename: the lock is on this inode), unlock, close. */
static int file_write_close(int fd, const struct core *k)
{
    char buf[512];
    int len = core_format(k, buf, sizeof buf);
    int r = 0;
    if (pwrite(fd, buf, (size_t)len, 0) != len || ftruncate(fd, len) < 0)
        r = -1;
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

int coro_breaker_file_allow(const char *path, const struct coro_breaker_conf *conf, uint64_t now_ms,
                            struct coro_breaker_ticket *t)
{
    struct core k;
    struct coro_breaker_ticket tmp;
    if (!conf_ok(conf))
        return -1;
    int fd = file_lock_read(path, &k);
    if (fd < 0)
        return -1;
    int r = core_allow(&k, conf, now_ms, t ? t : &tmp);
    if (file_write_close(fd, &k) < 0)
        return -1;
    if (r < 0)
        errno = EAGAIN;
    return r;
}

int coro_breaker_file_record(const char *path, const struct coro_breaker_conf *conf,
                             uint64_t now_ms, int success, int probe)
{
    struct core k;
    if (!conf_ok(conf))
        return -1;
    int fd = file_lock_read(path, &k);
    if (fd < 0)
        return -1;
    core_record(&k, conf, now_ms, success, probe);
    return file_write_close(fd, &k);
}
