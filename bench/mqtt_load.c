/*
 * mqtt_load.c - MQTT 3.1.1 load generator for bench/broker.sh: publishers
 * and subscribers are coroutines on the coro runtime, so one or two worker
 * threads drive thousands of connections. It measures end-to-end
 * deliveries per second (messages received by the subscribers), checks
 * every count (duplicates, gaps, loss), and prints one line (or --json).
 *
 * Modes:
 *   pubsub     P publishers -> S subscribers, one topic or --distinct topics
 *   fanout     pubsub with 1 publisher -> 100 subscribers by default
 *   many-pubs  pubsub with 1,000 publishers -> 1 subscriber by default
 *   conns      N idle clients held open; the broker's RSS growth per client
 *
 * Flow control: a publisher keeps at most --window deliveries outstanding
 * per subscriber that hears it (sent, not yet received; the publishers one
 * subscriber hears share its window), and at QoS 1/2 at most --inflight
 * PUBLISH awaiting their ack. Without the window a publisher facing a
 * broker that reads faster than it delivers never parks, so the
 * subscribers sharing its worker starve and the broker's per-client queue
 * overflows: the figure would measure dropping, not delivering. The
 * default (20,000) is deep enough that round-trip latency does not limit
 * the rate; --window 0 removes it (loss, if any, is reported).
 *
 * Every payload starts with the publisher's index and a sequence number
 * (big-endian u32 each): subscribers count duplicates and gaps per
 * publisher, and feed the per-publisher delivered counter the window uses.
 * Loopback or any address, but bounded in time: --timeout caps every run.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "coro/coro.h"
#include "coro/io.h"
#include "coro/net.h"
#include "coro/sync.h"

#include "daemons/broker/mqtt_codec.h"

#define OUT_CAP (64 * 1024)
#define IN_CAP (256 * 1024)
#define CONNECT_GATE 64 /* concurrent connects: brokers listen with small backlogs */
#define IO_TIMEOUT_MS 10000

enum mode { M_PUBSUB, M_FANOUT, M_MANYPUBS, M_CONNS };

struct opts {
    enum mode mode;
    struct coro_addr addr;
    char addr_str[CORO_ADDR_STRLEN];
    int qos, pubs, subs, conns, distinct, inflight, workers, json, keepalive, batch;
    uint64_t count;    /* messages per publisher; 0 with a duration */
    double duration;   /* seconds of publishing; 0 = by count */
    double rate;       /* messages/s per publisher; 0 = as fast as the windows allow */
    double idle;       /* give up waiting for deliveries after this long without one */
    double timeout;    /* hard cap on the whole measurement */
    double hold;       /* conns: seconds to hold the clients */
    uint64_t window;   /* outstanding deliveries per subscriber; 0 = unbounded */
    size_t size;
    long pid;          /* broker PID for RSS readings; 0 = none */
    const char *topic, *label;
};

struct pub {
    int idx, fd, nsubs, err;
    uint64_t sent, acked, limit; /* sent is read by subscribers (atomics) */
    uint64_t delivered;          /* incremented by subscribers */
    int waiting;
    coro_sem_t sem;
    uint64_t t_done_ns;
    char topic[96];
};

struct sub {
    int idx, fd, err;
    uint64_t got, dup, gap, t_last_ns;
    uint32_t *next; /* per publisher: next expected sequence number */
    char filter[96];
};

struct load {
    struct opts o;
    struct pub *pubs;
    struct sub *subs;
    uint64_t w_per_pub; /* window per publisher, in messages */
    uint64_t t0_ns, deadline_ns;
    coro_wg_t ready, go;
    coro_sem_t gate;
    int failed;
};

static struct load G; /* one measurement per process; coroutines reach it from their args */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define LD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ST(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)

static long rss_kb(long pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* ---- framing ------------------------------------------------------------- */

/* Size of the packet at b[0..n): > 0 when complete, 0 when more bytes are
 * needed, -1 when the remaining length is malformed. *hl = fixed header size.
 * The broker's strict decoder is not used on this path on purpose: the
 * generator reads hundreds of thousands of packets a second and only
 * needs their frames; a broker sending garbage shows up as dup/gap counts. */
static ssize_t frame(const uint8_t *b, size_t n, size_t *hl)
{
    size_t rl = 0;
    for (size_t i = 1; i < 5; i++) {
        if (i >= n)
            return 0;
        rl |= (size_t)(b[i] & 127) << (7 * (i - 1));
        if (!(b[i] & 128)) {
            *hl = i + 1;
            return i + 1 + rl <= n ? (ssize_t)(i + 1 + rl) : 0;
        }
    }
    return -1;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

/* ---- connection setup ---------------------------------------------------- */

/* Read one whole packet of type `want` (others before it are skipped):
 * 0, or -1 on EOF/error/timeout. */
static int read_packet(int fd, uint8_t *buf, size_t cap, int want)
{
    size_t have = 0, hl;
    for (;;) {
        ssize_t sz = frame(buf, have, &hl);
        if (sz < 0)
            return -1;
        if (sz > 0) {
            if (buf[0] >> 4 == want)
                return 0;
            memmove(buf, buf + sz, have - (size_t)sz);
            have -= (size_t)sz;
            continue;
        }
        if (have == cap)
            return -1;
        ssize_t r = coro_read(fd, buf + have, cap - have, IO_TIMEOUT_MS);
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
}

/* Dial and CONNECT with a clean session; the CONNACK must accept. fd or -1. */
static int mqtt_open(struct load *L, const char *cid)
{
    uint8_t buf[256];
    struct mqtt_connect c = {.proto_name = {(const uint8_t *)"MQTT", 4}, .level = 4,
                             .clean = true, .keepalive = (uint16_t)L->o.keepalive,
                             .client_id = {(const uint8_t *)cid, strlen(cid)}};
    int one = 1, fd;

    coro_sem_wait(&L->gate);
    fd = coro_dial_addr(&L->o.addr, IO_TIMEOUT_MS);
    coro_sem_post(&L->gate);
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    size_t n = mqtt_encode_connect(buf, sizeof buf, &c);
    if (n == 0 || coro_write_all(fd, buf, n, IO_TIMEOUT_MS) < 0 ||
        read_packet(fd, buf, sizeof buf, MQTT_CONNACK) < 0 || buf[3] != MQTT_RC_ACCEPTED) {
        coro_close(fd);
        return -1;
    }
    return fd;
}

/* ---- subscribers --------------------------------------------------------- */

/* A publisher blocked on its window is woken once the in-flight deliveries
 * fall to half of it, so wake-ups come in batches. */
static void credit(struct load *L, struct pub *p)
{
    /* seq_cst pairs with pub_wait(): it sets waiting then reads delivered,
     * we add to delivered then read waiting; one of us sees the other. */
    if (!__atomic_load_n(&p->waiting, __ATOMIC_SEQ_CST))
        return;
    uint64_t out = LD(&p->sent) * (uint64_t)p->nsubs - LD(&p->delivered);
    if (out * 2 <= L->w_per_pub * (uint64_t)p->nsubs &&
        __atomic_exchange_n(&p->waiting, 0, __ATOMIC_ACQ_REL))
        coro_sem_post(&p->sem);
}

static void on_message(struct load *L, struct sub *s, const uint8_t *pl, size_t len)
{
    ADD(&s->got, 1);
    if (len < 8 || rd32(pl) >= (uint32_t)L->o.pubs)
        return;
    uint32_t pi = rd32(pl), seq = rd32(pl + 4);
    struct pub *p = &L->pubs[pi];
    if (seq < s->next[pi]) {
        s->dup++;
        return;
    }
    if (seq != s->next[pi])
        s->gap++;
    s->next[pi] = seq + 1;
    __atomic_add_fetch(&p->delivered, 1, __ATOMIC_SEQ_CST);
    credit(L, p);
}

/* Handle every complete packet in buf; acks go to out. Bytes consumed. */
static size_t sub_parse(struct load *L, struct sub *s, uint8_t *buf, size_t have, uint8_t *out,
                        size_t *olen)
{
    size_t off = 0, hl;
    ssize_t sz;

    while ((sz = frame(buf + off, have - off, &hl)) > 0) {
        const uint8_t *b = buf + off, *p = b + hl, *end = b + sz;
        int type = b[0] >> 4, qos = (b[0] >> 1) & 3;
        uint16_t id = 0;
        if (type == MQTT_PUBLISH && end - p >= 2) {
            p += 2 + ((size_t)p[0] << 8 | p[1]);
            if (qos && p + 2 <= end)
                id = (uint16_t)(p[0] << 8 | p[1]), p += 2;
            if (p <= end)
                on_message(L, s, p, (size_t)(end - p));
            if (qos)
                *olen += mqtt_encode_ack(out + *olen, 4,
                                         qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, id);
        } else if (type == MQTT_PUBREL && sz >= 4) {
            *olen += mqtt_encode_ack(out + *olen, 4, MQTT_PUBCOMP, rd32(b) & 0xffff);
        }
        off += (size_t)sz;
        if (*olen > OUT_CAP - 8)
            break;
    }
    if (sz < 0)
        s->err = EPROTO;
    return off;
}

static void sub_loop(struct load *L, struct sub *s, uint8_t *buf, uint8_t *out)
{
    size_t have = 0;
    for (;;) {
        ssize_t r = coro_read(s->fd, buf + have, IN_CAP - have, -1);
        if (r <= 0) {
            if (r == 0 || errno != ECANCELED)
                s->err = r == 0 ? ECONNRESET : errno;
            return;
        }
        have += (size_t)r;
        ST(&s->t_last_ns, now_ns());
        size_t olen = 0, used = sub_parse(L, s, buf, have, out, &olen);
        memmove(buf, buf + used, have - used);
        have -= used;
        if (s->err || (olen && coro_write_all(s->fd, out, olen, IO_TIMEOUT_MS) < 0))
            return;
    }
}

static void sub_main(void *arg)
{
    struct load *L = &G;
    struct sub *s = arg;
    uint8_t *buf = malloc(IN_CAP), *out = malloc(OUT_CAP);
    char cid[64];
    uint8_t qos = (uint8_t)L->o.qos;
    struct mqtt_buf f = {(const uint8_t *)s->filter, strlen(s->filter)};

    s->next = calloc((size_t)L->o.pubs, sizeof *s->next);
    snprintf(cid, sizeof cid, "mqtt_load-%d-s%d", (int)getpid(), s->idx);
    s->fd = -1;
    if (!buf || !out || !s->next || (s->fd = mqtt_open(L, cid)) < 0)
        goto fail;
    size_t n = mqtt_encode_subscribe(out, OUT_CAP, 1, &f, &qos, 1);
    if (coro_write_all(s->fd, out, n, IO_TIMEOUT_MS) < 0 ||
        read_packet(s->fd, buf, IN_CAP, MQTT_SUBACK) < 0 || buf[4] == 0x80)
        goto fail;
    coro_wg_done(&L->ready);
    sub_loop(L, s, buf, out);
    goto out;
fail:
    s->err = errno ? errno : EPROTO;
    coro_wg_done(&L->ready);
out:
    if (s->fd >= 0)
        coro_close(s->fd);
    free(buf);
    free(out);
}

/* ---- publishers ---------------------------------------------------------- */

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Messages the windows (end to end, QoS in flight, count) let p send now. */
static uint64_t win_room(struct load *L, struct pub *p)
{
    uint64_t room = p->limit - p->sent;

    if (L->o.window && p->nsubs) {
        uint64_t n = (uint64_t)p->nsubs, cap = L->w_per_pub * n;
        uint64_t out = p->sent * n - LD(&p->delivered);
        room = min64(room, out >= cap ? 0 : (cap - out) / n);
    }
    if (L->o.qos)
        room = min64(room, (uint64_t)L->o.inflight - (p->sent - p->acked));
    return room;
}

/* Messages --rate lets p send now: the schedule is relative to the start. */
static uint64_t rate_room(struct load *L, struct pub *p)
{
    if (L->o.rate <= 0)
        return UINT64_MAX;
    double el = (double)(now_ns() - L->t0_ns) / 1e9;
    uint64_t due = (uint64_t)(el * L->o.rate) + 1;
    return due > p->sent ? due - p->sent : 0;
}

static uint64_t pub_room(struct load *L, struct pub *p)
{
    uint64_t room = min64(win_room(L, p), rate_room(L, p));
    return L->o.batch ? min64(room, (uint64_t)L->o.batch) : room;
}

/* Handle what the broker sent p: PUBACK/PUBCOMP complete a message, PUBREC
 * gets its PUBREL. Waits up to ms for something (0: only what is there). */
static int pub_acks(struct pub *p, uint8_t *buf, size_t *have, int64_t ms)
{
    uint8_t rel[512];
    size_t off = 0, rl = 0, hl;
    ssize_t r, sz;

    r = ms ? coro_read(p->fd, buf + *have, IN_CAP - *have, ms)
           : recv(p->fd, buf + *have, IN_CAP - *have, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == ETIMEDOUT))
        return 0;
    if (r <= 0)
        return -1;
    *have += (size_t)r;
    while ((sz = frame(buf + off, *have - off, &hl)) > 0) {
        int type = buf[off] >> 4;
        if (type == MQTT_PUBACK || type == MQTT_PUBCOMP)
            p->acked++;
        else if (type == MQTT_PUBREC)
            rl += mqtt_encode_ack(rel + rl, 4, MQTT_PUBREL, rd32(buf + off) & 0xffff);
        off += (size_t)sz;
        if (rl > sizeof rel - 4 && coro_write_all(p->fd, rel, rl, IO_TIMEOUT_MS) < 0)
            return -1;
        rl = rl > sizeof rel - 4 ? 0 : rl;
    }
    memmove(buf, buf + off, *have - off);
    *have -= off;
    if (sz < 0 || (rl && coro_write_all(p->fd, rel, rl, IO_TIMEOUT_MS) < 0))
        return -1;
    return 0;
}

/* Nothing may be sent: sleep until the next message is due, or wait for
 * acks when some are owed (QoS 2 needs our PUBREL before anything is
 * delivered), else for credit from a subscriber. */
static int pub_wait(struct load *L, struct pub *p, uint8_t *buf, size_t *have)
{
    if (rate_room(L, p) == 0) {
        double due = (double)(p->sent + 1) / L->o.rate;
        double el = (double)(now_ns() - L->t0_ns) / 1e9;
        uint64_t ms = due > el ? (uint64_t)((due - el) * 1000) + 1 : 1;
        if (coro_sleep_ms(ms) < 0)
            return -1;
        return L->o.qos ? pub_acks(p, buf, have, 0) : 0;
    }
    if (L->o.qos && p->sent > p->acked)
        return pub_acks(p, buf, have, 100);
    __atomic_store_n(&p->waiting, 1, __ATOMIC_SEQ_CST);
    if (win_room(L, p) > 0) {
        ST(&p->waiting, 0);
        return 0;
    }
    if (coro_sem_timedwait(&p->sem, 100) < 0 && errno == ECANCELED)
        return -1;
    return 0;
}

/* Write k PUBLISH packets (as many as fit one buffer). */
static int pub_send(struct load *L, struct pub *p, uint8_t *out, const uint8_t *payload,
                    uint64_t k)
{
    size_t olen = 0, tlen = strlen(p->topic), sz = L->o.size;
    uint64_t seq = p->sent, i;

    for (i = 0; i < k && olen + sz + tlen + 16 <= OUT_CAP; i++, seq++) {
        olen += mqtt_encode_publish_head(out + olen, OUT_CAP - olen, (const uint8_t *)p->topic,
                                         tlen, sz, (uint8_t)L->o.qos, false, false,
                                         (uint16_t)(seq % 65535 + 1));
        memcpy(out + olen, payload, sz);
        wr32(out + olen, (uint32_t)p->idx);
        wr32(out + olen + 4, (uint32_t)seq);
        olen += sz;
    }
    /* Counted before the write so a subscriber never sees more delivered than sent. */
    ST(&p->sent, seq);
    return coro_write_all(p->fd, out, olen, IO_TIMEOUT_MS);
}

static int pub_run(struct load *L, struct pub *p, uint8_t *out, uint8_t *in, uint8_t *payload)
{
    size_t have = 0;

    while (p->sent < p->limit && now_ns() < L->deadline_ns) {
        uint64_t room = pub_room(L, p);
        if (room == 0) {
            if (pub_wait(L, p, in, &have) < 0)
                return -1;
            continue;
        }
        if (pub_send(L, p, out, payload, room) < 0 ||
            (L->o.qos && pub_acks(p, in, &have, 0) < 0))
            return -1;
    }
    uint64_t end = L->t0_ns + (uint64_t)(L->o.timeout * 1e9);
    while (L->o.qos && p->acked < p->sent && now_ns() < end)
        if (pub_acks(p, in, &have, 100) < 0)
            return -1;
    return 0;
}

static void pub_main(void *arg)
{
    struct load *L = &G;
    struct pub *p = arg;
    uint8_t *out = malloc(OUT_CAP), *in = malloc(IN_CAP), *payload = malloc(L->o.size);
    char cid[64];

    snprintf(cid, sizeof cid, "mqtt_load-%d-p%d", (int)getpid(), p->idx);
    p->fd = -1;
    if (!out || !in || !payload || (p->fd = mqtt_open(L, cid)) < 0) {
        p->err = errno ? errno : ENOMEM;
        coro_wg_done(&L->ready);
        goto out;
    }
    memset(payload, 'x', L->o.size);
    coro_wg_done(&L->ready);
    coro_wg_wait(&L->go);
    if (pub_run(L, p, out, in, payload) < 0)
        p->err = errno ? errno : EPROTO;
    p->t_done_ns = now_ns();
    /* A clean DISCONNECT: mosquitto logs (and may not flush) after an abrupt close. */
    size_t n = mqtt_encode_simple(out, OUT_CAP, MQTT_DISCONNECT);
    if (!p->err)
        coro_write_all(p->fd, out, n, 1000);
out:
    if (p->fd >= 0)
        coro_close(p->fd);
    free(out);
    free(in);
    free(payload);
}

/* ---- one pub/sub measurement ---------------------------------------------- */

struct result {
    uint64_t sent, expected, unique, dup, gap, acked;
    int errors;
    double elapsed, pub_elapsed, cpu, broker_cpu;
    long rss0, rss1;
};

/* Topics and how many subscribers hear each publisher. */
static void plan(struct load *L)
{
    struct opts *o = &L->o;
    int most = 0;

    for (int i = 0; i < o->pubs; i++) {
        struct pub *p = &L->pubs[i];
        p->idx = i;
        p->limit = o->count ? o->count : UINT64_MAX;
        p->nsubs = o->distinct ? o->subs / o->pubs + (i < o->subs % o->pubs) : o->subs;
        snprintf(p->topic, sizeof p->topic, o->distinct ? "%s/%d" : "%s", o->topic, i);
        coro_sem_init(&p->sem, 0);
    }
    for (int j = 0; j < o->subs; j++) {
        L->subs[j].idx = j;
        snprintf(L->subs[j].filter, sizeof L->subs[j].filter, o->distinct ? "%s/%d" : "%s",
                 o->topic, j % o->pubs);
    }
    /* Publishers heard by one subscriber share its window. */
    most = o->distinct ? 1 : o->pubs;
    L->w_per_pub = o->window / (uint64_t)most ? o->window / (uint64_t)most : 1;
}

static uint64_t delivered_unique(struct load *L)
{
    uint64_t n = 0;
    for (int j = 0; j < L->o.subs; j++)
        n += LD(&L->subs[j].got) - LD(&L->subs[j].dup);
    return n;
}

/* After the publishers stop: wait for the expected deliveries, giving up
 * after --idle seconds without progress or at the hard deadline. */
static void await_deliveries(struct load *L, uint64_t expected)
{
    uint64_t last = delivered_unique(L), t_prog = now_ns();
    uint64_t hard = L->t0_ns + (uint64_t)((L->o.timeout + L->o.idle) * 1e9);

    while (last < expected) {
        if (coro_sleep_ms(5) < 0)
            return;
        uint64_t n = delivered_unique(L), t = now_ns();
        if (n != last)
            last = n, t_prog = t;
        if (t - t_prog > (uint64_t)(L->o.idle * 1e9) || t > hard)
            return;
    }
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* utime + stime of pid in seconds, -1 when unreadable. */
static double proc_cpu_s(long pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut, st;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if (pid <= 0 || !(f = fopen(path, "r")))
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void collect(struct load *L, struct result *r)
{
    uint64_t t_last = L->t0_ns, t_pub = L->t0_ns;

    for (int i = 0; i < L->o.pubs; i++) {
        struct pub *p = &L->pubs[i];
        r->sent += p->sent;
        r->acked += p->acked;
        r->expected += p->sent * (uint64_t)p->nsubs;
        r->errors += p->err != 0;
        t_pub = p->t_done_ns > t_pub ? p->t_done_ns : t_pub;
    }
    for (int j = 0; j < L->o.subs; j++) {
        struct sub *s = &L->subs[j];
        r->unique += s->got - s->dup;
        r->dup += s->dup;
        r->gap += s->gap;
        r->errors += s->err != 0;
        t_last = s->t_last_ns > t_last ? s->t_last_ns : t_last;
    }
    r->elapsed = (double)(t_last - L->t0_ns) / 1e9;
    r->pub_elapsed = (double)(t_pub - L->t0_ns) / 1e9;
}

static void run_pubsub(struct load *L, struct result *r)
{
    coro_scope_t ps, ss;
    double c0, b0;

    plan(L);
    coro_scope_init(&ps);
    coro_scope_init(&ss);
    coro_wg_add(&L->ready, L->o.pubs + L->o.subs);
    coro_wg_add(&L->go, 1);
    for (int j = 0; j < L->o.subs; j++)
        coro_scope_spawn(&ss, sub_main, &L->subs[j]);
    for (int i = 0; i < L->o.pubs; i++)
        coro_scope_spawn(&ps, pub_main, &L->pubs[i]);
    if (coro_wg_timedwait(&L->ready, 60000) < 0)
        L->failed = 1;
    for (int j = 0; j < L->o.subs; j++)
        L->failed |= L->subs[j].fd < 0;
    for (int i = 0; i < L->o.pubs; i++)
        L->failed |= L->pubs[i].fd < 0;
    r->rss0 = L->o.pid ? rss_kb(L->o.pid) : -1;
    c0 = cpu_s(), b0 = proc_cpu_s(L->o.pid);
    L->t0_ns = now_ns();
    L->deadline_ns = L->failed ? 0 : L->t0_ns + (uint64_t)(1e9 * (L->o.duration > 0 ?
                                                                   L->o.duration : L->o.timeout));
    coro_wg_done(&L->go);
    coro_scope_wait(&ps);
    uint64_t expected = 0;
    for (int i = 0; i < L->o.pubs; i++)
        expected += L->pubs[i].sent * (uint64_t)L->pubs[i].nsubs;
    if (!L->failed)
        await_deliveries(L, expected);
    collect(L, r);
    double wall = (double)(now_ns() - L->t0_ns) / 1e9;
    r->cpu = (cpu_s() - c0) / wall;
    r->broker_cpu = b0 < 0 ? -1 : (proc_cpu_s(L->o.pid) - b0) / wall;
    r->rss1 = L->o.pid ? rss_kb(L->o.pid) : -1;
    coro_scope_cancel(&ss);
    coro_scope_wait(&ss);
}

/* ---- idle connections ----------------------------------------------------- */

struct conns {
    int n, next, *fds;
};

static void conns_open(void *arg)
{
    struct conns *c = arg;
    char cid[64];
    int i;

    while ((i = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED)) < c->n) {
        snprintf(cid, sizeof cid, "mqtt_load-%d-i%d", (int)getpid(), i);
        c->fds[i] = mqtt_open(&G, cid);
    }
}

/* Connections the broker has closed (EOF or error) since they were opened;
 * PINGRESPs and anything else pending are read and dropped. */
static int conns_dead(struct conns *c, int ping)
{
    uint8_t buf[256], req[2];
    size_t rn = mqtt_encode_simple(req, sizeof req, MQTT_PINGREQ);
    int dead = 0;

    for (int i = 0; i < c->n; i++) {
        if (c->fds[i] < 0)
            continue;
        ssize_t r;
        while ((r = recv(c->fds[i], buf, sizeof buf, MSG_DONTWAIT)) > 0)
            ;
        if (r == 0 || (r < 0 && errno != EAGAIN) ||
            (ping && send(c->fds[i], req, rn, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)rn)) {
            coro_close(c->fds[i]);
            c->fds[i] = -1;
            dead++;
        }
    }
    return dead;
}

/* Open --conns clients (CONNECT accepted, nothing subscribed), let the
 * broker settle, read its RSS, hold them --hold seconds (PINGREQ every
 * keepalive/2) and count those it dropped. */
static void run_conns(struct load *L, struct result *r, int *connected, int *dropped)
{
    struct conns c = {.n = L->o.conns, .fds = calloc((size_t)L->o.conns, sizeof(int))};
    coro_scope_t sc;

    r->rss0 = L->o.pid ? rss_kb(L->o.pid) : -1;
    uint64_t t0 = now_ns();
    coro_scope_init(&sc);
    for (int k = 0; k < CONNECT_GATE && k < c.n; k++)
        coro_scope_spawn(&sc, conns_open, &c);
    coro_scope_wait(&sc);
    r->elapsed = (double)(now_ns() - t0) / 1e9;
    for (int i = 0; i < c.n; i++)
        *connected += c.fds[i] >= 0;
    coro_sleep_ms(1000); /* the broker finishes its accept-time work */
    r->rss1 = L->o.pid ? rss_kb(L->o.pid) : -1;
    uint64_t end = now_ns() + (uint64_t)(L->o.hold * 1e9), ping = (uint64_t)L->o.keepalive * 500;
    uint64_t next_ping = now_ns() / 1000000 + ping;
    while (now_ns() < end) {
        coro_sleep_ms(100);
        int do_ping = ping && now_ns() / 1000000 >= next_ping;
        *dropped += conns_dead(&c, do_ping);
        next_ping += do_ping ? ping : 0;
    }
    *dropped += conns_dead(&c, 0);
    for (int i = 0; i < c.n; i++)
        if (c.fds[i] >= 0)
            coro_close(c.fds[i]);
    free(c.fds);
}

/* ---- report --------------------------------------------------------------- */

static const char *const mode_names[] = {"pubsub", "fanout", "many-pubs", "conns"};

static void report_conns(struct load *L, struct result *r, int connected, int dropped)
{
    long d = r->rss0 >= 0 && r->rss1 >= 0 ? r->rss1 - r->rss0 : -1;
    double per = d >= 0 && connected ? (double)d * 1024 / connected : -1;
    const char *fmt = L->o.json
        ? "{\"label\":\"%s\",\"mode\":\"conns\",\"conns\":%d,\"connected\":%d,\"dropped\":%d,"
          "\"connect_s\":%.2f,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,"
          "\"bytes_per_client\":%.0f}\n"
        : "%smode=conns conns=%d connected=%d dropped=%d connect_s=%.2f rss_before_kb=%ld "
          "rss_after_kb=%ld bytes_per_client=%.0f\n";
    printf(fmt, L->o.label, L->o.conns, connected, dropped, r->elapsed, r->rss0, r->rss1, per);
}

static void report_pubsub(struct load *L, struct result *r)
{
    struct opts *o = &L->o;
    double el = r->elapsed > 0 ? r->elapsed : 1e-9, pel = r->pub_elapsed > 0 ? r->pub_elapsed : 1e-9;
    int64_t lost = (int64_t)r->expected - (int64_t)r->unique;
    const char *fmt = o->json
        ? "{\"label\":\"%s\",\"mode\":\"%s\",\"qos\":%d,\"pubs\":%d,\"subs\":%d,\"distinct\":%d,"
          "\"size\":%zu,\"window\":%llu,\"inflight\":%d,\"workers\":%d,\"sent\":%llu,"
          "\"acked\":%llu,\"expected\":%llu,\"delivered\":%llu,\"lost\":%lld,\"dup\":%llu,"
          "\"gaps\":%llu,\"errors\":%d,\"deliveries_s\":%.0f,\"publish_s\":%.0f,"
          "\"elapsed_s\":%.3f,\"gen_cpu\":%.2f,\"broker_cpu\":%.2f,\"rss_before_kb\":%ld,"
          "\"rss_after_kb\":%ld}\n"
        : "%smode=%s qos=%d pubs=%d subs=%d distinct=%d size=%zu window=%llu inflight=%d "
          "workers=%d sent=%llu acked=%llu expected=%llu delivered=%llu lost=%lld dup=%llu "
          "gaps=%llu errors=%d deliveries_s=%.0f publish_s=%.0f elapsed_s=%.3f gen_cpu=%.2f "
          "broker_cpu=%.2f rss_before_kb=%ld rss_after_kb=%ld\n";
    printf(fmt, o->label, mode_names[o->mode], o->qos, o->pubs, o->subs, o->distinct, o->size,
           (unsigned long long)o->window, o->inflight, o->workers, (unsigned long long)r->sent,
           (unsigned long long)r->acked, (unsigned long long)r->expected,
           (unsigned long long)r->unique, (long long)lost, (unsigned long long)r->dup,
           (unsigned long long)r->gap, r->errors, (double)r->unique / el, (double)r->sent / pel,
           r->elapsed, r->cpu, r->broker_cpu, r->rss0, r->rss1);
}

static void main_co(void *arg)
{
    struct load *L = arg;
    struct result r = {0};
    int connected = 0, dropped = 0;

    coro_sem_init(&L->gate, CONNECT_GATE);
    coro_wg_init(&L->ready);
    coro_wg_init(&L->go);
    if (L->o.mode == M_CONNS) {
        run_conns(L, &r, &connected, &dropped);
        report_conns(L, &r, connected, dropped);
        L->failed = connected < L->o.conns || dropped > 0;
        return;
    }
    run_pubsub(L, &r);
    report_pubsub(L, &r);
    L->failed |= r.errors > 0 || (L->o.qos > 0 && (r.unique != r.expected || r.acked != r.sent));
}

/* ---- command line ---------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mqtt_load MODE [options]   (MODE: pubsub fanout many-pubs conns)\n"
            "  -a, --addr HOST:PORT   broker (default 127.0.0.1:1883)\n"
            "  -q, --qos N            0, 1 or 2 (publish and subscribe)\n"
            "  -P, --pubs N           publishers (pubsub 1, fanout 1, many-pubs 1000)\n"
            "  -S, --subs N           subscribers (pubsub 1, fanout 100, many-pubs 1)\n"
            "  -D, --distinct         publisher i on TOPIC/i, subscriber j on TOPIC/(j %% P)\n"
            "  -n, --count N          messages per publisher (default 200000/P)\n"
            "  -d, --duration S       publish for S seconds instead of a count\n"
            "  -s, --size N           payload bytes, >= 8 (default 64)\n"
            "  -i, --inflight N       QoS 1/2 PUBLISH awaiting their ack per publisher (64)\n"
            "  -w, --window N         deliveries outstanding per subscriber (20000; 0 = none)\n"
            "  -r, --rate N           messages/s per publisher (default: as fast as allowed)\n"
            "  -b, --batch N          at most N messages per write (default: 64 KiB worth)\n"
            "  -c, --conns N          conns: idle clients to open (10000)\n"
            "      --hold S           conns: seconds to hold them (3)\n"
            "  -k, --keepalive S      CONNECT keepalive (60)\n"
            "  -W, --workers N        coroutine worker threads (1)\n"
            "  -p, --pid PID          broker PID: its RSS and CPU are reported\n"
            "      --idle S           stop waiting after S s without a delivery (3)\n"
            "  -t, --timeout S        cap on publishing time (60)\n"
            "      --topic T          topic (bench/t)\n"
            "  -l, --label S          prefix of the result line\n"
            "  -j, --json             one JSON object instead of key=value\n"
            "exit: 0 ok; 1 errors, QoS>0 loss, or dropped/unconnected clients; 2 usage\n");
}

static const struct option longopts[] = {
    {"addr", 1, 0, 'a'},     {"qos", 1, 0, 'q'},     {"pubs", 1, 0, 'P'},
    {"subs", 1, 0, 'S'},     {"distinct", 0, 0, 'D'}, {"count", 1, 0, 'n'},
    {"duration", 1, 0, 'd'}, {"size", 1, 0, 's'},    {"inflight", 1, 0, 'i'},
    {"window", 1, 0, 'w'},   {"rate", 1, 0, 'r'},    {"batch", 1, 0, 'b'},
    {"conns", 1, 0, 'c'},    {"hold", 1, 0, 'H'},    {"keepalive", 1, 0, 'k'},
    {"workers", 1, 0, 'W'},  {"pid", 1, 0, 'p'},     {"idle", 1, 0, 'I'},
    {"timeout", 1, 0, 't'},  {"topic", 1, 0, 'T'},   {"label", 1, 0, 'l'},
    {"json", 0, 0, 'j'},     {"help", 0, 0, 'h'},    {0, 0, 0, 0},
};

static int set_mode(struct opts *o, const char *m)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(m, mode_names[i])) {
            o->mode = (enum mode)i;
            o->pubs = i == M_MANYPUBS ? 1000 : 1;
            o->subs = i == M_FANOUT ? 100 : 1;
            return 0;
        }
    return -1;
}

static int parse_args(struct opts *o, int argc, char **argv)
{
    const char *addr = "127.0.0.1:1883";
    char err[128];
    int c;

    *o = (struct opts){.size = 64, .inflight = 64, .window = 20000, .conns = 10000, .hold = 3,
                       .keepalive = 60, .workers = 1, .idle = 3, .timeout = 60,
                       .topic = "bench/t", .label = ""};
    if (argc < 2 || set_mode(o, argv[1]) < 0)
        return -1;
    optind = 2;
    while ((c = getopt_long(argc, argv, "a:q:P:S:Dn:d:s:i:w:r:b:c:k:W:p:t:l:jh", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'a': addr = optarg; break;
        case 'q': o->qos = atoi(optarg); break;
        case 'P': o->pubs = atoi(optarg); break;
        case 'S': o->subs = atoi(optarg); break;
        case 'D': o->distinct = 1; break;
        case 'n': o->count = strtoull(optarg, NULL, 10); break;
        case 'd': o->duration = atof(optarg); break;
        case 's': o->size = strtoul(optarg, NULL, 10); break;
        case 'i': o->inflight = atoi(optarg); break;
        case 'w': o->window = strtoull(optarg, NULL, 10); break;
        case 'r': o->rate = atof(optarg); break;
        case 'b': o->batch = atoi(optarg); break;
        case 'c': o->conns = atoi(optarg); break;
        case 'H': o->hold = atof(optarg); break;
        case 'k': o->keepalive = atoi(optarg); break;
        case 'W': o->workers = atoi(optarg); break;
        case 'p': o->pid = atol(optarg); break;
        case 'I': o->idle = atof(optarg); break;
        case 't': o->timeout = atof(optarg); break;
        case 'T': o->topic = optarg; break;
        case 'l': o->label = optarg; break;
        case 'j': o->json = 1; break;
        default: return -1;
        }
    }
    if (o->qos < 0 || o->qos > 2 || o->pubs < 1 || o->subs < 0 || o->size < 8 ||
        o->size > 65536 || o->inflight < 1 || o->inflight > 65535 || o->workers < 1 ||
        o->conns < 1 || o->keepalive < 0 || o->keepalive > 65535 || o->timeout <= 0 ||
        optind != argc)
        return -1;
    if (!o->count && o->duration <= 0)
        o->count = 200000 / (uint64_t)o->pubs ? 200000 / (uint64_t)o->pubs : 1;
    if (coro_addr_parse(addr, &o->addr, err, sizeof err) < 0) {
        fprintf(stderr, "mqtt_load: %s: %s\n", addr, err);
        return -1;
    }
    return 0;
}

/* Room for every client fd, past the hard limit when privileged. */
static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    struct rlimit up = {want, rl.rlim_max > want ? rl.rlim_max : want};
    if (setrlimit(RLIMIT_NOFILE, &up) < 0 && rl.rlim_max > rl.rlim_cur) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    struct load *L = &G;
    struct coro_config cfg;

    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (parse_args(&L->o, argc, argv) < 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    raise_nofile((rlim_t)(L->o.mode == M_CONNS ? L->o.conns : L->o.pubs + L->o.subs) + 256);
    L->pubs = calloc((size_t)L->o.pubs, sizeof *L->pubs);
    L->subs = calloc((size_t)L->o.subs + 1, sizeof *L->subs);
    coro_config_default(&cfg);
    cfg.workers = (unsigned)L->o.workers;
    if (!L->pubs || !L->subs || coro_run(&cfg, main_co, L) < 0) {
        perror("mqtt_load");
        return 1;
    }
    return L->failed ? 1 : 0;
}
