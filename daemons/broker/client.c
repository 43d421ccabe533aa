/*
 * client.c - one MQTT connection: the read loop that feeds mqtt_decode()
 * from a per-connection buffer and dispatches packets, the keepalive
 * (1.5 x the client's interval), the write side (control packets and queued
 * deliveries in batches), the stackless idle wait and the close path.
 *
 * Idle connections hold no coroutine: at a packet boundary with nothing
 * buffered the reader frees its buffer, arms coro_watch_fd() with the
 * keepalive deadline and ends; readability starts a fresh reader.
 * Writes are done by whoever holds c->writing (under the session mutex):
 * the reader flushing its own acks, or a flusher coroutine spawned on the
 * connection's worker when another client's PUBLISH queued something.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"
#include "coro/log.h"

#define RBUF_MIN 8192
#define BATCH_IOV 128
#define HBUF_SIZE 16384

static struct {
    pthread_mutex_t mu;
    struct conn *head;
    atomic_size_t n;
} CL = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static void conn_serve(struct conn *c, bool readable);

/* ---- bookkeeping --------------------------------------------------------- */

void conn_ref(struct conn *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/* The last ref is always dropped on the connection's worker (reader or
 * flusher), where its fd is registered. */
void conn_unref(struct conn *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (c->tls)
        coro_tls_free(c->tls);
    coro_close(c->fd);
    if (c->s)
        session_unref(c->s);
    msg_unref(c->will);
    free(c->username);
    free(c->rb);
    free(c->ctl);
    free(c);
}

const char *client_name(const struct conn *c, char *buf, size_t len)
{
    struct coro_addr a;
    char ab[CORO_ADDR_STRLEN];

    memset(&a, 0, sizeof(a));
    a.len = c->peer.sa.sa_family == AF_INET6 ? sizeof(c->peer.in6) : sizeof(c->peer.in);
    memcpy(&a.ss, &c->peer, a.len);
    coro_addr_format(&a, ab, sizeof(ab));
    if (c->s)
        snprintf(buf, len, "client \"%s\" (%s)", c->s->client_id, ab);
    else
        snprintf(buf, len, "client (%s)", ab);
    return buf;
}

size_t client_count(void)
{
    return atomic_load(&CL.n);
}

static void list_add(struct conn *c)
{
    pthread_mutex_lock(&CL.mu);
    c->next = CL.head;
    if (CL.head)
        CL.head->prev = c;
    CL.head = c;
    atomic_fetch_add(&CL.n, 1);
    pthread_mutex_unlock(&CL.mu);
}

static void list_del(struct conn *c)
{
    pthread_mutex_lock(&CL.mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        CL.head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    atomic_fetch_sub(&CL.n, 1);
    pthread_mutex_unlock(&CL.mu);
}

/* Wake the reader (or the idle watch) with EOF; the close path does the
 * rest on the connection's worker. Callers keep c alive (list or s->mu). */
void conn_shutdown(struct conn *c)
{
    atomic_store(&c->closing, true);
    shutdown(c->fd, SHUT_RDWR);
}

void client_stop_all(void)
{
    pthread_mutex_lock(&CL.mu);
    for (struct conn *c = CL.head; c; c = c->next)
        conn_shutdown(c);
    pthread_mutex_unlock(&CL.mu);
}

/* ---- the write side ------------------------------------------------------ */

int conn_ctl_append(struct conn *c, const uint8_t *p, size_t n)
{
    size_t len = c->ctl ? c->ctl->len : 0, cap = c->ctl ? c->ctl->cap : 0;
    if (len + n > cap) {
        cap = cap ? cap : 256;
        while (cap < len + n)
            cap *= 2;
        struct cbuf *b = realloc(c->ctl, sizeof(*b) + cap);
        if (!b)
            return -1;
        b->len = len;
        b->cap = cap;
        c->ctl = b;
    }
    memcpy(c->ctl->d + len, p, n);
    c->ctl->len += n;
    return 0;
}

struct wbatch {
    struct iovec iov[BATCH_IOV];
    int niov;
    size_t bytes;
    struct cbuf *ctl;
    uint8_t *hbuf;
    size_t hcap, hlen;
    struct msg *refs[BATCH_IOV];
    int nrefs;
    uint64_t out[3];
};

static void batch_add(struct wbatch *b, const void *p, size_t n)
{
    b->iov[b->niov].iov_base = (void *)p;
    b->iov[b->niov].iov_len = n;
    b->niov++;
    b->bytes += n;
}

/* Encode one PUBLISH (or PUBREL for QI_REL) into the batch: false when
 * there is no room left. */
static bool batch_item(struct wbatch *b, const struct qitem *it)
{
    if (b->niov + 2 > BATCH_IOV)
        return false;
    if (b->hcap - b->hlen < (size_t)it->m->tlen + 16) {
        if (b->niov > 0)
            return false;
        uint8_t *h = realloc(b->hbuf, MQTT_PUBLISH_HEAD_MAX);
        if (!h)
            return false;
        b->hbuf = h;
        b->hcap = MQTT_PUBLISH_HEAD_MAX;
    }
    uint8_t *h = b->hbuf + b->hlen;
    size_t n;
    if (it->state == QI_REL) {
        n = mqtt_encode_ack(h, b->hcap - b->hlen, MQTT_PUBREL, it->id);
        batch_add(b, h, n);
    } else {
        n = mqtt_encode_publish_head(h, b->hcap - b->hlen, (const uint8_t *)it->m->topic,
                                     it->m->tlen, it->m->plen, it->qos, it->dup, it->retain,
                                     it->id);
        batch_add(b, h, n);
        if (it->m->plen)
            batch_add(b, it->m->payload, it->m->plen);
        b->refs[b->nrefs++] = msg_ref(it->m);
        b->out[it->qos]++;
    }
    b->hlen += n;
    return true;
}

/* Under s->mu: in-flight messages to send again (after a reconnect), then
 * queued ones while the in-flight window has room. */
static void batch_session(struct conn *c, struct session *s, struct wbatch *b)
{
    for (size_t i = 0; i < s->nfl; i++) {
        struct qitem *it = &s->fl[i];
        if (!it->dup)
            continue;
        it->dup = it->state == QI_SENT; /* the DUP flag on the wire */
        bool ok = batch_item(b, it);
        it->dup = false;
        if (!ok) {
            it->dup = true;
            return;
        }
    }
    size_t max_fl = atomic_load_explicit(&B.max_inflight, memory_order_relaxed);
    struct qitem *it;
    size_t popped = 0;
    while ((it = session_queue_peek(s)) != NULL) {
        if (it->qos > 0 && s->nfl >= max_fl)
            break;
        struct qitem x = *it;
        if (x.qos > 0) {
            x.id = session_next_id(s);
            x.state = QI_SENT;
        }
        if (!batch_item(b, &x))
            break;
        if (x.qos > 0 && session_inflight_add(s, &x) < 0) {
            b->nrefs--; /* undo: keep it queued */
            msg_unref(b->refs[b->nrefs]);
            b->niov -= x.m->plen ? 2 : 1;
            break;
        }
        if (x.qos == 0)
            msg_unref(x.m); /* the queue's ref; the batch holds its own */
        s->qbytes -= x.m->plen;
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qlen--;
        popped++;
    }
    if (popped)
        session_wake_publishers(s, popped); /* room for that many */
}

static void batch_build(struct conn *c, struct wbatch *b)
{
    b->niov = 0;
    b->bytes = 0;
    b->hlen = 0;
    b->nrefs = 0;
    memset(b->out, 0, sizeof(b->out));
    if (atomic_load(&c->closing)) {
        if (c->ctl)
            c->ctl->len = 0;
        return;
    }
    if (c->ctl && c->ctl->len) {
        b->ctl = c->ctl;
        batch_add(b, c->ctl->d, c->ctl->len);
        c->ctl = NULL;
    }
    if (c->s && c->connected && c->s->conn == c)
        batch_session(c, c->s, b);
}

static int batch_write(struct conn *c, struct wbatch *b)
{
    if (!c->tls)
        return coro_writev(c->fd, b->iov, b->niov, -1);
    uint8_t *flat = malloc(b->bytes), *p = flat;
    if (!flat)
        return -1;
    for (int i = 0; i < b->niov; i++) {
        memcpy(p, b->iov[i].iov_base, b->iov[i].iov_len);
        p += b->iov[i].iov_len;
    }
    int rc = coro_tls_write_all(c->tls, flat, b->bytes, -1);
    free(flat);
    return rc;
}

static void lock_s(struct conn *c)
{
    if (c->s)
        session_lock(c->s);
}

static void unlock_s(struct conn *c)
{
    if (c->s)
        session_unlock(c->s);
}

/* One header buffer kept per worker: a 16 KiB malloc and free per flush
 * made glibc consolidate its fast bins every time (2% of QoS 1 CPU). The
 * slot is the current worker's, looked up at each call (a coroutine may
 * resume on another worker); a global array, so nothing leaks at exit. */
#define HBUF_SLOTS 64
static uint8_t *hbuf_cache[HBUF_SLOTS];

static uint8_t *hbuf_get(void)
{
    int w = coro_worker_index();
    uint8_t *h = NULL;
    if (w >= 0 && w < HBUF_SLOTS) {
        h = hbuf_cache[w];
        hbuf_cache[w] = NULL;
    }
    return h ? h : malloc(HBUF_SIZE);
}

static void hbuf_put(uint8_t *h, size_t cap)
{
    int w = coro_worker_index();
    if (h && cap == HBUF_SIZE && w >= 0 && w < HBUF_SLOTS && !hbuf_cache[w])
        hbuf_cache[w] = h;
    else
        free(h);
}

/* The caller holds the write side; write until nothing is pending. */
static void flush_loop(struct conn *c)
{
    struct wbatch b;
    b.hcap = HBUF_SIZE;
    b.hbuf = hbuf_get();
    b.ctl = NULL;
    for (;;) {
        lock_s(c);
        if (b.hbuf)
            batch_build(c, &b);
        else
            b.niov = 0;
        if (b.niov == 0) {
            c->writing = false;
            unlock_s(c);
            break;
        }
        unlock_s(c);
        int rc = batch_write(c, &b);
        for (int i = 0; i < b.nrefs; i++)
            msg_unref(b.refs[i]);
        free(b.ctl);
        b.ctl = NULL;
        if (rc < 0) {
            conn_shutdown(c);
            continue; /* closing: the next build is empty */
        }
        metric_add(bstats.bytes_out, (int64_t)b.bytes);
        metric_add(c->lst->m_bytes_out, (int64_t)b.bytes);
        for (int q = 0; q < 3; q++)
            if (b.out[q])
                metric_add(bstats.msgs_out[q], (int64_t)b.out[q]);
    }
    hbuf_put(b.hbuf, b.hcap);
}

void conn_flush_now(struct conn *c)
{
    lock_s(c);
    bool mine = !c->writing;
    if (mine)
        c->writing = true;
    unlock_s(c);
    if (mine)
        flush_loop(c);
}

bool conn_need_kick(struct conn *c)
{
    if (!c || c->writing || !c->connected || atomic_load(&c->closing))
        return false;
    c->writing = true;
    conn_ref(c);
    return true;
}

static void flusher(void *arg)
{
    struct conn *c = arg;
    flush_loop(c);
    conn_unref(c);
}

void conn_kick(struct conn *c)
{
    coro_t *co = coro_spawn_on(c->worker, flusher, c);
    if (co) {
        coro_detach(co);
        return;
    }
    log_warn("cannot start a writer");
    session_lock(c->s);
    c->writing = false;
    session_unlock(c->s);
    conn_shutdown(c);
}

/* ---- packets --------------------------------------------------------------- */

static int dispatch(struct conn *c, const struct mqtt_packet *p, const char **why)
{
    uint8_t out[8];

    if (!c->connected && p->type != MQTT_CONNECT)
        return *why = "first packet is not CONNECT", -1;
    switch (p->type) {
    case MQTT_CONNECT:
        if (c->connected)
            return *why = "second CONNECT", -1;
        return handle_connect(c, p, why);
    case MQTT_PUBLISH:
        return handle_publish(c, p, why);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        return handle_ack(c, p, why);
    case MQTT_PUBREL:
        return handle_pubrel(c, p->u.id, why);
    case MQTT_SUBSCRIBE:
        return handle_subscribe(c, p, why);
    case MQTT_UNSUBSCRIBE:
        return handle_unsubscribe(c, p, why);
    case MQTT_PINGREQ: {
        size_t n = mqtt_encode_pingresp(out, sizeof(out));
        lock_s(c);
        int rc = conn_ctl_append(c, out, n);
        unlock_s(c);
        return rc;
    }
    case MQTT_DISCONNECT:
        c->clean_disconnect = true;
        return *why = NULL, -1;
    default:
        return *why = "packet type not sent by clients", -1;
    }
}

/* Handle every complete packet buffered: 0, or -1 to close (logged). */
static int process(struct conn *c)
{
    size_t pos = 0;
    int rc = 0;
    char nb[300];

    struct cbuf *rb = c->rb;
    if (!rb)
        return 0;
    while (pos < rb->len) {
        struct mqtt_packet p;
        struct mqtt_err err;
        size_t need = 0;
        int st = mqtt_decode(rb->d + pos, rb->len - pos,
                             atomic_load_explicit(&B.max_packet, memory_order_relaxed), &p,
                             &need, &err);
        if (st == MQTT_MORE && !c->connected && rb->d[pos] != 0x10) {
            st = MQTT_BAD; /* do not wait for the rest of something that is not CONNECT */
            err.reason = "first packet is not CONNECT";
        }
        if (st == MQTT_MORE)
            break; /* conn_read() grows the buffer when it is full */
        if (st == MQTT_BAD) {
            metric_inc(bstats.protocol_errors);
            log_notice("%s: protocol error: %s", client_name(c, nb, sizeof(nb)), err.reason);
            rc = -1;
            break;
        }
        const char *why = NULL;
        if (dispatch(c, &p, &why) < 0) {
            if (why) {
                metric_inc(bstats.protocol_errors);
                log_notice("%s: protocol error: %s", client_name(c, nb, sizeof(nb)), why);
            }
            rc = -1;
            break;
        }
        pos += p.size;
    }
    if (pos) {
        memmove(rb->d, rb->d + pos, rb->len - pos);
        rb->len -= pos;
    }
    return rc;
}

/* ---- reading, idling, closing ---------------------------------------------- */

/* ---- deadlines: one sweeper instead of a timer per connection ------------ */

#define SWEEP_MS 250

static struct {
    coro_t *co;
    atomic_bool stop;
} SW;

/* The CONNECT deadline, or 1.5 x keepalive after the last bytes read. */
static bool expired(struct conn *c, uint64_t now, uint64_t connect_ms)
{
    uint64_t last = atomic_load_explicit(&c->last_rx, memory_order_relaxed), span;
    struct session *s = c->s;
    if (s && __atomic_load_n(&s->bp_blocked, __ATOMIC_RELAXED))
        return false; /* not reading because it waits for room: not silent */
    if (!c->connected)
        span = connect_ms;
    else if (c->keepalive == 0)
        return false;
    else
        span = (uint64_t)c->keepalive * 1500u;
    return now > last + span;
}

/* Shut an expired connection's socket: its reader (or idle watch) sees EOF
 * and the close path, on its own worker, reports the timeout. */
static void sweeper(void *arg)
{
    while (!atomic_load(&SW.stop) && coro_sleep_ms(SWEEP_MS) == 0) {
        uint64_t now = coro_now_ms();
        uint64_t connect_ms =
            (uint64_t)((const struct broker_conf *)B.conf)->broker.connect_timeout_ms;
        pthread_mutex_lock(&CL.mu);
        for (struct conn *c = CL.head; c; c = c->next)
            if (!atomic_load(&c->expired) && !atomic_load(&c->closing) &&
                expired(c, now, connect_ms)) {
                atomic_store(&c->expired, true);
                shutdown(c->fd, SHUT_RDWR);
            }
        pthread_mutex_unlock(&CL.mu);
    }
}

int client_sweeper_start(void)
{
    atomic_store(&SW.stop, false);
    SW.co = coro_spawn(sweeper, NULL);
    return SW.co ? 0 : -1;
}

void client_sweeper_stop(void)
{
    if (!SW.co)
        return;
    atomic_store(&SW.stop, true);
    coro_cancel(SW.co);
    coro_join(SW.co);
    SW.co = NULL;
}

static void conn_close(struct conn *c, const char *reason, bool abnormal)
{
    char nb[300];
    struct session *s = c->s;

    if (reason)
        log_info("%s: %s", client_name(c, nb, sizeof(nb)), reason);
    atomic_store(&c->closing, true);
    if (abnormal && !atomic_load(&B.stopping))
        will_fire(c);
    else
        will_drop(c);
    shutdown(c->fd, SHUT_RDWR);
    list_del(c);
    if (s) {
        session_lock(s);
        bool mine = s->conn == c;
        if (mine) {
            s->conn = NULL;
            for (size_t i = 0; i < s->nfl; i++)
                s->fl[i].dup = true;
            session_wake_publishers(s, SIZE_MAX); /* offline: queue or drop, never wait */
        }
        session_unlock(s);
        if (mine && !s->persistent)
            session_discard(s);
    }
    if (c->connected) {
        metric_add(bstats.conns, -1);
        metric_add(c->lst->m_conns, -1);
    }
    atomic_fetch_sub(&c->lst->nconns, 1);
}

static void watch_cb(void *arg, int what)
{
    struct conn *c = arg;
    if (what & CORO_READ) {
        conn_serve(c, true);
        return;
    }
    conn_close(c, NULL, false);
    conn_unref(c);
}

/* Park without a stack: 0 when the watch now owns the reader's ref. */
static int idle_park(struct conn *c)
{
    if (c->tls && SSL_pending(coro_tls_ssl(c->tls)) > 0)
        return -1;
    free(c->rb);
    c->rb = NULL;
    return coro_watch_fd(c->fd, CORO_READ, -1, watch_cb, c) ? 0 : -1;
}

/* Read into c->rb, made or grown (up to max_packet_size) as needed. No
 * timeout: the sweeper shuts the socket at the deadline. */
static ssize_t conn_read(struct conn *c)
{
    struct cbuf *rb = c->rb;
    size_t len = rb ? rb->len : 0, cap = rb ? rb->cap : 0;
    if (!rb || cap - len < 512) {
        size_t need = len + 1 > RBUF_MIN ? len * 2 : RBUF_MIN;
        size_t max = atomic_load_explicit(&B.max_packet, memory_order_relaxed) + 8;
        if (need > max && rb)
            need = max > cap ? max : cap;
        if (!rb || need > cap) {
            if (!(rb = realloc(rb, sizeof(*rb) + need)))
                return -1;
            rb->len = len;
            rb->cap = need;
            c->rb = rb;
        }
    }
    if (rb->cap == rb->len) {
        errno = EMSGSIZE; /* cannot happen: mqtt_decode() refuses it first */
        return -1;
    }
    if (c->tls)
        return coro_tls_read(c->tls, rb->d + rb->len, rb->cap - rb->len, -1);
    return coro_read(c->fd, rb->d + rb->len, rb->cap - rb->len, -1);
}

/* readable: started by the idle watch, so read before parking again. */
static void conn_serve(struct conn *c, bool readable)
{
    struct daemon_conn dc;
    const char *reason = NULL;
    bool abnormal = true;

    daemon_conn_enter(B.d, &dc);
    for (;;) {
        if (process(c) < 0) {
            abnormal = !c->clean_disconnect;
            break;
        }
        conn_flush_now(c);
        if (atomic_load(&c->closing)) {
            reason = "closed";
            break;
        }
        if (!readable && (!c->rb || c->rb->len == 0) && c->connected && idle_park(c) == 0) {
            daemon_conn_leave(B.d, &dc);
            return;
        }
        readable = false;
        ssize_t n = conn_read(c);
        if (n > 0) {
            c->rb->len += (size_t)n;
            atomic_store_explicit(&c->last_rx, coro_now_ms(), memory_order_relaxed);
            metric_add(bstats.bytes_in, n);
            metric_add(c->lst->m_bytes_in, n);
            continue;
        }
        if (atomic_load(&c->expired)) {
            metric_inc(bstats.keepalive_timeouts);
            reason = c->connected ? "keepalive timeout" : "no CONNECT in time";
        } else if (n < 0 && errno != ECANCELED && errno != EPIPE && errno != ECONNRESET) {
            reason = "read error";
        } else {
            reason = atomic_load(&c->closing) ? NULL : "connection closed by peer";
        }
        break;
    }
    conn_close(c, reason, abnormal);
    daemon_conn_leave(B.d, &dc);
    conn_unref(c);
}

static bool over_limit(struct lst *l)
{
    long g = atomic_load(&B.max_conns), m = atomic_load(&l->max_conns);
    return (g > 0 && (long)client_count() >= g) || (m > 0 && atomic_load(&l->nconns) >= m);
}

/* The listener's handler: a coroutine on the accepting worker. */
void client_conn(int fd, const struct coro_addr *peer, void *arg)
{
    struct lst *l = arg;
    char err[256];

    metric_inc(l->m_accepted);
    if (atomic_load(&B.stopping) || over_limit(l)) {
        metric_inc(l->m_refused);
        metric_inc(bstats.refused);
        coro_close(fd);
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        coro_close(fd);
        return;
    }
    atomic_init(&c->refs, 1);
    c->fd = fd;
    c->worker = (uint16_t)coro_worker_index();
    c->lst = l;
    memcpy(&c->peer, &peer->ss,
           peer->len < sizeof(c->peer) ? peer->len : sizeof(c->peer));
    atomic_init(&c->last_rx, coro_now_ms());
    atomic_fetch_add(&l->nconns, 1);
    list_add(c);
    struct tlsref *tr = listener_tls_get(l);
    if (tr) {
        int64_t t = ((const struct broker_conf *)B.conf)->broker.connect_timeout_ms;
        c->tls = coro_tls_accept(tr->ctx, fd, t, err, sizeof(err));
        tlsref_unref(tr); /* the session holds what it needs */
        if (!c->tls) {
            char nb[300];
            log_info("%s: TLS handshake failed: %s", client_name(c, nb, sizeof(nb)), err);
            conn_close(c, NULL, false);
            conn_unref(c);
            return;
        }
    }
    conn_serve(c, false);
}
