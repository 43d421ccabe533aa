/*
 * persist.c - what the broker keeps in state_dir and how it comes back:
 * record formats on top of plog (retained messages, persistent sessions,
 * their subscriptions, QoS 1/2 messages queued for them and their
 * acknowledgements), replay at start, periodic compaction into a snapshot,
 * and reporting of torn or corrupt records (log and /metrics).
 *
 * Records are little-endian; strings are u16 length + bytes. A message is
 * logged after it is in the subscribers' queues and before its publisher
 * gets PUBACK/PUBREC, so every acknowledged message is in the log; an ack
 * racing ahead of its message record only causes a redelivery (QoS 1
 * semantics), never a loss. A message dropped at an offline session's
 * queue limit is not logged for it. Inbound QoS 2 ids between PUBREC and
 * PUBREL are logged before PUBREC and PUBCOMP go out, so a resend after a
 * restart is recognised and not delivered twice.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "coro/log.h"
#include "coro/offload.h"
#include "plog.h"

enum {
    R_RETAIN = 1,  /* topic, u8 qos, payload */
    R_SESSION,     /* cid */
    R_SESSION_DEL, /* cid */
    R_SUB,         /* cid, u8 qos, filter */
    R_UNSUB,       /* cid, filter */
    R_MSG,         /* u64 id, u8 qos, topic, u32 plen, payload, u16 n, n x (cid, u8 qos) */
    R_ACKS,        /* cid, u32 n, n x u64 id */
    R_IN2,         /* cid, u16 packet id: inbound QoS 2 PUBREC sent, PUBREL not yet seen */
    R_IN2_DEL,     /* cid, u16 packet id: PUBREL seen */
};

static struct {
    plog_t *log;
    bool on;
    atomic_uint_fast64_t next_id;
    coro_t *compactor;
    atomic_bool stop;
} P;

bool persist_on(void)
{
    return P.on;
}

uint64_t persist_msg_id(void)
{
    return atomic_fetch_add(&P.next_id, 1);
}

/* ---- encoding ------------------------------------------------------------ */

struct rec {
    uint8_t *p;
    size_t len, cap;
    bool oom;
    uint8_t small[512];
};

static void rec_init(struct rec *r)
{
    r->p = r->small;
    r->len = 0;
    r->cap = sizeof(r->small);
    r->oom = false;
}

static void rec_fini(struct rec *r)
{
    if (r->p != r->small)
        free(r->p);
}

static void put(struct rec *r, const void *d, size_t n)
{
    if (r->oom)
        return;
    if (r->len + n > r->cap) {
        size_t cap = r->cap * 2;
        while (cap < r->len + n)
            cap *= 2;
        uint8_t *p = r->p == r->small ? malloc(cap) : realloc(r->p, cap);
        if (!p) {
            r->oom = true;
            return;
        }
        if (r->p == r->small)
            memcpy(p, r->small, r->len);
        r->p = p;
        r->cap = cap;
    }
    memcpy(r->p + r->len, d, n);
    r->len += n;
}

static void put_u8(struct rec *r, uint8_t v)
{
    put(r, &v, 1);
}

static void put_u16(struct rec *r, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(r, b, 2);
}

static void put_u32(struct rec *r, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        put_u8(r, (uint8_t)(v >> (8 * i)));
}

static void put_u64(struct rec *r, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        put_u8(r, (uint8_t)(v >> (8 * i)));
}

static void put_str(struct rec *r, const char *s, size_t n)
{
    put_u16(r, (uint16_t)n);
    put(r, s, n);
}

/* ---- decoding ------------------------------------------------------------ */

struct rd {
    const uint8_t *p, *end;
    bool bad;
};

static bool need(struct rd *d, size_t n)
{
    if (d->bad || (size_t)(d->end - d->p) < n)
        return !(d->bad = true);
    return true;
}

static uint64_t get_n(struct rd *d, int n)
{
    uint64_t v = 0;
    if (!need(d, (size_t)n))
        return 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)d->p[i] << (8 * i);
    d->p += n;
    return v;
}

static const char *get_str(struct rd *d, size_t *n)
{
    *n = (size_t)get_n(d, 2);
    if (!need(d, *n))
        return NULL;
    const char *s = (const char *)d->p;
    d->p += *n;
    return s;
}

/* ---- writing records ----------------------------------------------------- */

static int append(uint32_t type, struct rec *r)
{
    int rc = -1;
    if (!r->oom)
        rc = plog_append(P.log, type, r->p, r->len);
    if (rc < 0)
        log_warn("persistence: cannot log a record");
    rec_fini(r);
    return rc;
}

static void enc_msg(struct rec *r, const struct msg *m)
{
    put_u64(r, m->id);
    put_u8(r, m->qos);
    put_str(r, m->topic, m->tlen);
    put_u32(r, m->plen);
    put(r, m->payload, m->plen);
}

int persist_deliver(struct msg *m, struct session **ss, size_t n)
{
    struct rec r;
    rec_init(&r);
    enc_msg(&r, m);
    put_u16(&r, (uint16_t)n);
    for (size_t i = 0; i < n; i++) {
        put_str(&r, ss[i]->client_id, strlen(ss[i]->client_id));
        put_u8(&r, m->qos);
    }
    return append(R_MSG, &r);
}

int persist_acks(struct session *s, const uint64_t *ids, size_t n)
{
    struct rec r;
    rec_init(&r);
    put_str(&r, s->client_id, strlen(s->client_id));
    put_u32(&r, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        put_u64(&r, ids[i]);
    return append(R_ACKS, &r);
}

int persist_in2(struct session *s, uint16_t id, bool del)
{
    struct rec r;
    rec_init(&r);
    put_str(&r, s->client_id, strlen(s->client_id));
    put_u16(&r, id);
    return append(del ? R_IN2_DEL : R_IN2, &r);
}

int persist_retain(struct msg *m)
{
    struct rec r;
    rec_init(&r);
    put_str(&r, m->topic, m->tlen);
    put_u8(&r, m->qos);
    put(&r, m->payload, m->plen);
    return append(R_RETAIN, &r);
}

int persist_session(struct session *s, bool del)
{
    struct rec r;
    rec_init(&r);
    put_str(&r, s->client_id, strlen(s->client_id));
    return append(del ? R_SESSION_DEL : R_SESSION, &r);
}

int persist_sub(struct session *s, const char *f, size_t len, uint8_t qos, bool del)
{
    struct rec r;
    rec_init(&r);
    put_str(&r, s->client_id, strlen(s->client_id));
    if (!del)
        put_u8(&r, qos);
    put(&r, f, len);
    return append(del ? R_UNSUB : R_SUB, &r);
}

/* ---- replay -------------------------------------------------------------- */

static struct session *replay_session(const char *cid, size_t n)
{
    bool present;
    return session_get(cid, n, false, &present);
}

static void replay_sub(struct rd *d, bool del)
{
    size_t n;
    const char *cid = get_str(d, &n);
    uint8_t qos = del ? 0 : (uint8_t)get_n(d, 1);
    if (d->bad)
        return;
    struct session *s = session_find(cid, n);
    if (!s)
        return;
    const char *f = (const char *)d->p;
    size_t fl = (size_t)(d->end - d->p);
    if (del) {
        if (session_sub_del(s, f, fl) == 0) {
            topic_unsubscribe(B.topics, f, fl, s);
            session_unref(s);
        }
    } else if (session_sub_add(s, f, fl, qos) == 1) {
        session_ref(s);
        topic_subscribe(B.topics, f, fl, s, qos);
    } else {
        topic_subscribe(B.topics, f, fl, s, qos);
    }
    session_unref(s);
}

static void replay_msg(struct rd *d)
{
    uint64_t id = get_n(d, 8);
    uint8_t qos = (uint8_t)get_n(d, 1);
    size_t tl, nc;
    const char *t = get_str(d, &tl);
    uint32_t pl = (uint32_t)get_n(d, 4);
    if (d->bad || !need(d, pl))
        return;
    struct msg *m = msg_new(t, tl, d->p, pl, qos, false);
    if (!m)
        return;
    m->id = id;
    d->p += pl;
    if (id >= atomic_load(&P.next_id))
        atomic_store(&P.next_id, id + 1);
    nc = (size_t)get_n(d, 2);
    for (size_t i = 0; i < nc && !d->bad; i++) {
        size_t cl;
        const char *cid = get_str(d, &cl);
        uint8_t q = (uint8_t)get_n(d, 1);
        struct session *s = d->bad ? NULL : session_find(cid, cl);
        if (!s)
            continue;
        struct qitem it = {msg_ref(m), 0, q, QI_QUEUED, false, false};
        if (session_queue_push(s, &it) < 0)
            msg_unref(m);
        session_unref(s);
    }
    msg_unref(m);
}

/* Drop queued message id from s (replay only, so no lock is needed). */
static void queue_remove_id(struct session *s, uint64_t id)
{
    for (size_t i = 0; i < s->qlen; i++) {
        struct qitem *it = &s->q[(s->qhead + i) % s->qcap];
        if (it->m->id != id)
            continue;
        struct msg *m = it->m;
        s->qbytes -= m->plen;
        for (size_t j = i; j + 1 < s->qlen; j++)
            s->q[(s->qhead + j) % s->qcap] = s->q[(s->qhead + j + 1) % s->qcap];
        s->qlen--;
        msg_unref(m);
        return;
    }
}

static void replay_acks(struct rd *d)
{
    size_t cl;
    const char *cid = get_str(d, &cl);
    uint32_t n = (uint32_t)get_n(d, 4);
    struct session *s = d->bad ? NULL : session_find(cid, cl);
    for (uint32_t i = 0; s && i < n && !d->bad; i++)
        queue_remove_id(s, get_n(d, 8));
    if (s)
        session_unref(s);
}

static void replay_in2(struct rd *d, bool del)
{
    size_t cl;
    const char *cid = get_str(d, &cl);
    uint16_t id = (uint16_t)get_n(d, 2);
    struct session *s = d->bad ? NULL : session_find(cid, cl);
    if (!s)
        return;
    if (del)
        session_in2_del(s, id);
    else if (!session_in2_has(s, id))
        session_in2_add(s, id);
    session_unref(s);
}

static int replay(void *arg, uint32_t type, const void *data, size_t len)
{
    struct rd d = {data, (const uint8_t *)data + len, false};
    size_t n;
    const char *s;
    struct session *ss;

    switch (type) {
    case R_RETAIN: {
        s = get_str(&d, &n);
        uint8_t qos = (uint8_t)get_n(&d, 1);
        if (d.bad)
            break;
        struct msg *m = msg_new(s, n, d.p, (size_t)(d.end - d.p), qos, true);
        if (m) {
            retain_set(m);
            msg_unref(m);
        }
        break;
    }
    case R_SESSION:
    case R_SESSION_DEL:
        s = get_str(&d, &n);
        if (d.bad)
            break;
        if (type == R_SESSION) {
            if ((ss = replay_session(s, n)))
                session_unref(ss);
        } else if ((ss = session_find(s, n))) {
            session_discard(ss);
            session_unref(ss);
        }
        break;
    case R_SUB:
    case R_UNSUB:
        replay_sub(&d, type == R_UNSUB);
        break;
    case R_MSG:
        replay_msg(&d);
        break;
    case R_ACKS:
        replay_acks(&d);
        break;
    case R_IN2:
    case R_IN2_DEL:
        replay_in2(&d, type == R_IN2_DEL);
        break;
    default:
        d.bad = true;
    }
    if (d.bad)
        log_warnx("persistence: skipping a malformed record of type %u", (unsigned)type);
    return 0;
}

/* ---- snapshot ------------------------------------------------------------ */

struct dumper {
    plog_snap_t *w;
    int rc;
};

static void snap_put(struct dumper *k, uint32_t type, struct rec *r)
{
    if (k->rc == 0 && (r->oom || plog_snapshot_put(k->w, type, r->p, r->len) < 0))
        k->rc = -1;
    rec_fini(r);
}

static void dump_retained(void *msg, void *arg)
{
    struct msg *m = msg;
    struct rec r;
    rec_init(&r);
    put_str(&r, m->topic, m->tlen);
    put_u8(&r, m->qos);
    put(&r, m->payload, m->plen);
    snap_put(arg, R_RETAIN, &r);
}

static void dump_item(struct dumper *k, struct session *s, const struct qitem *it)
{
    struct rec r;
    if (it->qos == 0 || it->m->id == 0)
        return;
    rec_init(&r);
    enc_msg(&r, it->m);
    put_u16(&r, 1);
    put_str(&r, s->client_id, strlen(s->client_id));
    put_u8(&r, it->qos);
    snap_put(k, R_MSG, &r);
}

static void dump_session(struct session *s, void *arg)
{
    struct dumper *k = arg;
    struct rec r;

    session_lock(s);
    if (s->persistent && !s->gone) {
        rec_init(&r);
        put_str(&r, s->client_id, strlen(s->client_id));
        snap_put(k, R_SESSION, &r);
        for (struct sub *x = s->subs; x; x = x->next) {
            rec_init(&r);
            put_str(&r, s->client_id, strlen(s->client_id));
            put_u8(&r, x->qos);
            put(&r, x->filter, x->len);
            snap_put(k, R_SUB, &r);
        }
        for (size_t i = 0; i < s->nin2; i++) {
            rec_init(&r);
            put_str(&r, s->client_id, strlen(s->client_id));
            put_u16(&r, s->in2[i]);
            snap_put(k, R_IN2, &r);
        }
        for (size_t i = 0; i < s->nfl; i++)
            dump_item(k, s, &s->fl[i]);
        for (size_t i = 0; i < s->qlen; i++)
            dump_item(k, s, &s->q[(s->qhead + i) % s->qcap]);
    }
    session_unlock(s);
}

static int dump(void *arg, plog_snap_t *w)
{
    struct dumper k = {w, 0};
    topic_retain_foreach(B.topics, dump_retained, &k);
    session_foreach(dump_session, &k);
    return k.rc;
}

static void compactor(void *arg)
{
    while (!atomic_load(&P.stop) && coro_sleep_ms(1000) == 0)
        if (plog_maybe_compact(P.log, dump, NULL) < 0)
            log_warn("persistence: compaction failed");
}

void persist_start_compactor(void)
{
    if (P.on)
        P.compactor = coro_spawn(compactor, NULL);
}

/* ---- open / close -------------------------------------------------------- */

struct opener {
    struct plog_opts o;
    struct plog_report rep;
    char err[512];
    plog_t *log;
};

static void open_offloaded(void *arg)
{
    struct opener *op = arg;
    op->log = plog_open(&op->o, replay, NULL, &op->rep, op->err, sizeof(op->err));
}

static void report(const struct opener *op, const char *dir)
{
    const struct plog_report *r = &op->rep;
    log_info("persistence: %s: %llu records replayed (%llu from the snapshot)", dir,
             (unsigned long long)(r->records + r->snapshot_records),
             (unsigned long long)r->snapshot_records);
    if (r->torn_bytes) {
        log_warnx("persistence: %s: discarded a torn final record (%llu bytes)", dir,
                  (unsigned long long)r->torn_bytes);
        metric_add(bstats.persist_torn, (int64_t)r->torn_bytes);
    }
    if (r->corrupt) {
        log_errorx("persistence: %s: corrupt record at offset %llu, %llu bytes lost; "
                   "damaged file moved to %s",
                   dir, (unsigned long long)r->corrupt_offset,
                   (unsigned long long)r->lost_bytes, r->moved_to);
        metric_add(bstats.persist_corrupt, r->corrupt);
        metric_add(bstats.persist_lost, (int64_t)r->lost_bytes);
    }
}

int persist_open(const struct broker_conf *bc, daemon_t *d)
{
    static const enum plog_fsync fs[] = {PLOG_FSYNC_ALWAYS, PLOG_FSYNC_INTERVAL,
                                         PLOG_FSYNC_NEVER};
    struct opener *op;

    atomic_store(&P.next_id, 1);
    if (!bc->broker.persistence)
        return 0;
    if (!(op = calloc(1, sizeof(*op))))
        return -1;
    op->o.dir = bc->broker.state_dir;
    op->o.fsync = fs[bc->broker.fsync];
    op->o.fsync_interval_ms = (uint64_t)bc->broker.fsync_interval_ms;
    op->o.on_corruption =
        bc->broker.on_corruption == CORRUPT_REFUSE ? PLOG_REFUSE : PLOG_RECOVER;
    op->o.compact_after_bytes = (uint64_t)bc->broker.compact_after;
    coro_offload(open_offloaded, op);
    if (!op->log) {
        log_errorx("persistence: %s: %s", bc->broker.state_dir, op->err);
        free(op);
        return -1;
    }
    report(op, bc->broker.state_dir);
    P.log = op->log;
    P.on = true;
    free(op);
    return 0;
}

void persist_close(void)
{
    if (!P.on)
        return;
    atomic_store(&P.stop, true);
    if (P.compactor) {
        coro_cancel(P.compactor);
        coro_join(P.compactor);
        P.compactor = NULL;
    }
    if (plog_close(P.log) < 0)
        log_warn("persistence: closing the log");
    P.on = false;
    P.log = NULL;
}
