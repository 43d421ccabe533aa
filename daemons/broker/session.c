/*
 * session.c - MQTT sessions by client id: the table, persistent and clean
 * sessions, and the per-session containers (queued messages, the in-flight
 * window, inbound QoS 2 ids, subscriptions). Delivery policy lives in
 * deliver.c, the wire in client.c.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"

#define TABLE_SIZE 4096 /* buckets; chains stay short up to ~100k sessions */

static struct {
    pthread_mutex_t mu;
    struct session *b[TABLE_SIZE];
    size_t n;
} T = {PTHREAD_MUTEX_INITIALIZER, {0}, 0};

static size_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return (size_t)(h % TABLE_SIZE);
}

void session_table_init(void)
{
}

static struct session *session_new(const char *cid, size_t len)
{
    struct session *s = calloc(1, sizeof(*s) + len + 1);
    if (!s)
        return NULL;
    memcpy(s->client_id, cid, len);
    s->client_id[len] = '\0';
    atomic_init(&s->refs, 1); /* the table's */
    s->next_id = 1;
    return s;
}

void session_ref(struct session *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

static void session_free(struct session *s)
{
    for (size_t i = 0; i < s->qlen; i++)
        msg_unref(s->q[(s->qhead + i) % s->qcap].m);
    for (size_t i = 0; i < s->nfl; i++)
        msg_unref(s->fl[i].m);
    for (struct sub *x = s->subs, *n; x; x = n) {
        n = x->next;
        free(x);
    }
    free(s->q);
    free(s->fl);
    free(s->in2);
    free(s->username);
    free(s);
}

void session_unref(struct session *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        session_free(s);
}

static struct session **lookup(const char *cid, size_t len)
{
    struct session **pp = &T.b[hash(cid, len)];
    for (; *pp; pp = &(*pp)->hnext)
        if (strlen((*pp)->client_id) == len && memcmp((*pp)->client_id, cid, len) == 0)
            break;
    return pp;
}

struct session *session_find(const char *cid, size_t len)
{
    pthread_mutex_lock(&T.mu);
    struct session *s = *lookup(cid, len);
    if (s)
        session_ref(s);
    pthread_mutex_unlock(&T.mu);
    return s;
}

/* Unlink from the table (T.mu held); the table's ref passes to the caller. */
static void unlink_locked(struct session **pp)
{
    struct session *s = *pp;
    *pp = s->hnext;
    s->hnext = NULL;
    T.n--;
    session_lock(s);
    s->gone = true;
    session_wake_publishers(s, SIZE_MAX);
    session_unlock(s);
}

struct session *session_get(const char *cid, size_t len, bool clean, bool *present)
{
    struct session *old = NULL, *s;

    pthread_mutex_lock(&T.mu);
    struct session **pp = lookup(cid, len);
    if (*pp && clean) {
        old = *pp;
        unlink_locked(pp);
    }
    if ((s = *pp) == NULL) {
        if ((s = session_new(cid, len)) == NULL) {
            pthread_mutex_unlock(&T.mu);
            if (old)
                session_discard(old), session_unref(old);
            return NULL;
        }
        *pp = s;
        T.n++;
        *present = false;
    } else {
        *present = s->persistent;
    }
    s->persistent = !clean;
    session_ref(s);
    pthread_mutex_unlock(&T.mu);
    if (old) {
        session_discard(old);
        session_unref(old);
    }
    return s;
}

/* Drop s from the table (if still there) and undo its subscriptions. */
void session_discard(struct session *s)
{
    pthread_mutex_lock(&T.mu);
    struct session **pp = lookup(s->client_id, strlen(s->client_id));
    bool had = *pp == s;
    if (had)
        unlink_locked(pp);
    pthread_mutex_unlock(&T.mu);

    session_lock(s);
    s->gone = true;
    session_wake_publishers(s, SIZE_MAX);
    struct sub *subs = s->subs;
    s->subs = NULL;
    s->nsubs = 0;
    session_unlock(s);
    for (struct sub *x = subs, *n; x; x = n) {
        n = x->next;
        topic_unsubscribe(B.topics, x->filter, x->len, s);
        session_unref(s); /* the tree's */
        free(x);
    }
    if (had)
        session_unref(s); /* the table's */
}

void session_foreach(void (*fn)(struct session *s, void *arg), void *arg)
{
    pthread_mutex_lock(&T.mu);
    size_t n = T.n, k = 0;
    struct session **v = malloc((n ? n : 1) * sizeof(*v));
    for (size_t i = 0; v && i < TABLE_SIZE; i++)
        for (struct session *s = T.b[i]; s; s = s->hnext)
            session_ref(s), v[k++] = s;
    pthread_mutex_unlock(&T.mu);
    for (size_t i = 0; i < k; i++) {
        fn(v[i], arg);
        session_unref(v[i]);
    }
    free(v);
}

size_t session_count(void)
{
    return T.n;
}

/* ---- containers (s->mu held) --------------------------------------------- */

int session_queue_push(struct session *s, const struct qitem *it)
{
    if (s->qlen == s->qcap) {
        size_t cap = s->qcap ? s->qcap * 2 : 8;
        struct qitem *q = malloc(cap * sizeof(*q));
        if (!q)
            return -1;
        for (size_t i = 0; i < s->qlen; i++)
            q[i] = s->q[(s->qhead + i) % s->qcap];
        free(s->q);
        s->q = q;
        s->qcap = cap;
        s->qhead = 0;
    }
    s->q[(s->qhead + s->qlen) % s->qcap] = *it;
    s->qlen++;
    s->qbytes += it->m->plen;
    return 0;
}

void session_wake_publishers(struct session *s, size_t n)
{
    while (n-- > 0 && s->bp_head) {
        struct bpwait *w = s->bp_head;
        if (!(s->bp_head = w->next))
            s->bp_tail = NULL;
        w->next = NULL;
        coro_sem_post(&w->sem); /* under s->mu: the waiter unlinks itself under it */
    }
}

struct qitem *session_queue_peek(struct session *s)
{
    return s->qlen ? &s->q[s->qhead] : NULL;
}

void session_queue_pop(struct session *s)
{
    s->qbytes -= s->q[s->qhead].m->plen;
    s->qhead = (s->qhead + 1) % s->qcap;
    session_wake_publishers(s, 1);
    if (--s->qlen == 0 && s->qcap > 64) { /* give back a burst's memory */
        free(s->q);
        s->q = NULL;
        s->qcap = s->qhead = 0;
    }
}

int session_inflight_add(struct session *s, const struct qitem *it)
{
    if (s->nfl == s->flcap) {
        size_t cap = s->flcap ? s->flcap * 2 : 4;
        struct qitem *f = realloc(s->fl, cap * sizeof(*f));
        if (!f)
            return -1;
        s->fl = f;
        s->flcap = cap;
    }
    s->fl[s->nfl++] = *it;
    return 0;
}

struct qitem *session_inflight_find(struct session *s, uint16_t id)
{
    for (size_t i = 0; i < s->nfl; i++)
        if (s->fl[i].id == id)
            return &s->fl[i];
    return NULL;
}

/* Keeps the order of the rest: resends after a reconnect go out in the
 * order the messages were first sent. */
void session_inflight_remove(struct session *s, struct qitem *it)
{
    size_t i = (size_t)(it - s->fl);
    memmove(&s->fl[i], &s->fl[i + 1], (s->nfl - i - 1) * sizeof(*it));
    if (--s->nfl == 0 && s->flcap > 16) {
        free(s->fl);
        s->fl = NULL;
        s->flcap = 0;
    }
}

uint16_t session_next_id(struct session *s)
{
    for (;;) {
        uint16_t id = s->next_id++;
        if (s->next_id == 0)
            s->next_id = 1;
        if (!session_inflight_find(s, id))
            return id;
    }
}

bool session_in2_has(struct session *s, uint16_t id)
{
    for (size_t i = 0; i < s->nin2; i++)
        if (s->in2[i] == id)
            return true;
    return false;
}

int session_in2_add(struct session *s, uint16_t id)
{
    if (s->nin2 == s->in2cap) {
        size_t cap = s->in2cap ? s->in2cap * 2 : 4;
        uint16_t *v = realloc(s->in2, cap * sizeof(*v));
        if (!v)
            return -1;
        s->in2 = v;
        s->in2cap = cap;
    }
    s->in2[s->nin2++] = id;
    return 0;
}

void session_in2_del(struct session *s, uint16_t id)
{
    for (size_t i = 0; i < s->nin2; i++)
        if (s->in2[i] == id) {
            s->in2[i] = s->in2[--s->nin2];
            return;
        }
}

int session_sub_add(struct session *s, const char *f, size_t len, uint8_t qos)
{
    for (struct sub *x = s->subs; x; x = x->next)
        if (x->len == len && memcmp(x->filter, f, len) == 0) {
            x->qos = qos;
            return 0;
        }
    struct sub *x = malloc(sizeof(*x) + len + 1);
    if (!x)
        return -1;
    x->qos = qos;
    x->len = (uint16_t)len;
    memcpy(x->filter, f, len);
    x->filter[len] = '\0';
    x->next = s->subs;
    s->subs = x;
    s->nsubs++;
    return 1;
}

int session_sub_del(struct session *s, const char *f, size_t len)
{
    for (struct sub **pp = &s->subs; *pp; pp = &(*pp)->next)
        if ((*pp)->len == len && memcmp((*pp)->filter, f, len) == 0) {
            struct sub *x = *pp;
            *pp = x->next;
            free(x);
            s->nsubs--;
            return 0;
        }
    errno = ENOENT;
    return -1;
}
