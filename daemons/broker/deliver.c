/*
 * deliver.c - routing a PUBLISH to subscribers: match, one entry per
 * subscriber with the highest matching QoS, granted QoS = min(sub, pub),
 * the per-subscriber bounded queue (QoS 0 dropped and counted when full,
 * QoS 1/2 make the publisher wait), persistence of QoS >= 1 messages for
 * persistent sessions, and the retained store.
 *
 * Backpressure: a publisher whose QoS 1/2 message finds a connected
 * subscriber's queue full links a struct bpwait into the session and parks
 * on its semaphore; the subscriber's writer posts one waiter per message it
 * takes off the queue, and a disconnect or discard posts them all (offline
 * sessions queue up to the limit and drop beyond it, as mosquitto does).
 * While its reader waits, a session is marked bp_blocked and is never waited
 * on: its acks are not being read, so waiting on it could close a cycle of
 * publishers waiting on each other; it takes the message over its limit.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "coro/log.h"

enum { ENQ_DONE, ENQ_QUEUED, ENQ_BUSY }; /* DONE: not queued (dropped, gone, offline QoS 0) */

struct target {
    struct session *s;
    uint8_t qos;
};

struct targets {
    struct target *v;
    size_t n, cap;
    struct target local[32];
};

static void on_match(void *sub, uint8_t qos, void *arg)
{
    struct targets *t = arg;
    struct session *s = sub;

    if (s->nsubs > 1) /* only then can it match twice */
        for (size_t i = 0; i < t->n; i++)
            if (t->v[i].s == s) {
                if (qos > t->v[i].qos)
                    t->v[i].qos = qos;
                return;
            }
    if (t->n == t->cap) {
        size_t cap = t->cap * 2;
        struct target *v = malloc(cap * sizeof(*v));
        if (!v)
            return; /* out of memory: this subscriber misses the message */
        memcpy(v, t->v, t->n * sizeof(*v));
        if (t->v != t->local)
            free(t->v);
        t->v = v;
        t->cap = cap;
    }
    session_ref(s);
    t->v[t->n].s = s;
    t->v[t->n].qos = qos;
    t->n++;
}

/* Queue m for s (s->mu taken here). ENQ_BUSY: a QoS 1/2 queue is full;
 * w, when given, is now linked in s: wait on w->sem, then try again. */
static int enqueue(struct session *s, struct msg *m, uint8_t qos, bool retain, bool force,
                   struct bpwait *w)
{
    struct conn *kick = NULL;

    session_lock(s);
    if (s->gone || (qos == 0 && !s->conn)) {
        session_unlock(s);
        return ENQ_DONE;
    }
    bool full = s->qlen >= atomic_load_explicit(&B.max_queued, memory_order_relaxed) ||
                s->qbytes + m->plen > atomic_load_explicit(&B.max_queued_bytes,
                                                           memory_order_relaxed);
    if (full && !force && !(qos > 0 && s->conn && s->bp_blocked)) {
        bool busy = qos > 0 && s->conn;
        if (busy && w) {
            w->next = NULL;
            if (s->bp_tail)
                s->bp_tail->next = w;
            else
                s->bp_head = w;
            s->bp_tail = w;
        }
        session_unlock(s);
        if (!busy)
            metric_inc(bstats.dropped);
        return busy ? ENQ_BUSY : ENQ_DONE;
    }
    struct qitem it = {msg_ref(m), 0, qos, QI_QUEUED, retain, false};
    int rc = ENQ_QUEUED;
    if (session_queue_push(s, &it) < 0) {
        msg_unref(m);
        metric_inc(bstats.dropped);
        rc = ENQ_DONE;
    } else if (conn_need_kick(s->conn)) {
        kick = s->conn;
    }
    session_unlock(s);
    if (kick)
        conn_kick(kick);
    return rc;
}

static void unlink_waiter(struct session *s, struct bpwait *w)
{
    session_lock(s);
    struct bpwait *prev = NULL;
    for (struct bpwait *x = s->bp_head; x; prev = x, x = x->next) {
        if (x != w)
            continue;
        if (prev)
            prev->next = w->next;
        else
            s->bp_head = w->next;
        if (s->bp_tail == w)
            s->bp_tail = prev;
        break;
    }
    session_unlock(s); /* a post made under s->mu is complete now */
}

static void set_blocked(struct session *from, bool on)
{
    if (!from)
        return;
    session_lock(from);
    __atomic_store_n(&from->bp_blocked, on, __ATOMIC_RELAXED); /* the sweeper reads it */
    if (on) /* those waiting on from's queue now take it over its limit */
        session_wake_publishers(from, SIZE_MAX);
    else if (from->conn) /* keepalive counts again from now */
        atomic_store_explicit(&from->conn->last_rx, coro_now_ms(), memory_order_relaxed);
    session_unlock(from);
}

/* Wait for room in s's queue: the publishing coroutine parks, so a slow
 * subscriber slows its publishers instead of growing without bound.
 * true when m was queued for s. */
static bool enqueue_wait(struct session *s, struct msg *m, uint8_t qos, struct session *from)
{
    struct bpwait w;
    bool blocked = false;
    int rc = enqueue(s, m, qos, false, s == from, NULL);

    if (rc != ENQ_BUSY)
        return rc == ENQ_QUEUED;
    coro_sem_init(&w.sem, 0);
    while ((rc = enqueue(s, m, qos, false, s == from, &w)) == ENQ_BUSY) {
        if (!blocked)
            set_blocked(from, blocked = true);
        if (coro_sem_wait(&w.sem) < 0) { /* cancelled: stopping; not acked */
            unlink_waiter(s, &w);
            break;
        }
    }
    if (blocked)
        set_blocked(from, false);
    coro_sem_fini(&w.sem);
    return rc == ENQ_QUEUED;
}

void deliver_to_session(struct session *s, struct msg *m, uint8_t qos, bool retain)
{
    enqueue(s, m, qos, retain, false, NULL);
}

static bool readable(struct session *s, const struct msg *m)
{
    return acl_allowed(s->username, s->client_id, m->topic, ACL_READ);
}

int deliver_publish(struct msg *m, struct session *from)
{
    struct targets t = {.v = NULL, .n = 0, .cap = 32};
    t.v = t.local;
    topic_match(B.topics, m->topic, m->tlen, on_match, &t);

    struct session **ps = NULL;
    size_t np = 0;
    if (persist_on() && m->qos > 0 && t.n) {
        ps = malloc(t.n * sizeof(*ps));
        m->id = persist_msg_id();
    }
    for (size_t i = 0; i < t.n; i++) {
        struct session *s = t.v[i].s;
        uint8_t q = t.v[i].qos < m->qos ? t.v[i].qos : m->qos;
        /* logged only for the sessions that queued it: a message dropped
         * at an offline session's limit must not come back on restart */
        if (readable(s, m) && enqueue_wait(s, m, q, from) && ps && q > 0 && s->persistent)
            ps[np++] = s;
    }
    int rc = np ? persist_deliver(m, ps, np) : 0;
    for (size_t i = 0; i < t.n; i++)
        session_unref(t.v[i].s);
    if (t.v != t.local)
        free(t.v);
    free(ps);
    return rc;
}

/* ---- retained messages --------------------------------------------------- */

void retain_set(struct msg *m)
{
    void *old = topic_retain_set(B.topics, m->topic, m->tlen, m->plen ? msg_ref(m) : NULL);
    msg_unref(old);
}

struct rvec {
    struct msg **v;
    size_t n, cap;
};

static void on_retained(void *msg, void *arg)
{
    struct rvec *r = arg;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct msg **v = realloc(r->v, cap * sizeof(*v));
        if (!v)
            return;
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = msg_ref(msg);
}

void retain_send(struct session *s, const char *filter, size_t len, uint8_t qos)
{
    struct rvec r = {NULL, 0, 0};
    topic_retain_match(B.topics, filter, len, on_retained, &r);
    for (size_t i = 0; i < r.n; i++) {
        if (readable(s, r.v[i]))
            enqueue(s, r.v[i], r.v[i]->qos < qos ? r.v[i]->qos : qos, true, false, NULL);
        msg_unref(r.v[i]);
    }
    free(r.v);
}
