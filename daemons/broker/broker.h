/*
 * broker.h - coro-broker's internal types and the functions its files share:
 * the config struct, messages, sessions, connections, delivery, auth,
 * persistence and statistics. Not a library header: only daemons/broker
 * includes it.
 *
 * Threading: connections run on the worker that accepted them (their fd
 * is registered with that worker's loop), publishers deliver from any
 * worker. A session's state (queue, in-flight window, the attached
 * connection's write state) is guarded by the session's spinlock
 * (session_lock), held only for short stretches that never yield.
 */
#ifndef CORO_BROKER_H
#define CORO_BROKER_H

#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "coro/conf.h"
#include "coro/daemon.h"
#include "coro/io.h"
#include "coro/metrics.h"
#include "coro/sync.h"
#include "coro/tls.h"

#include "mqtt_codec.h"
#include "topic.h"

#define BROKER_VERSION "coro-broker " PACKAGE_VERSION_STR
#ifdef PACKAGE_VERSION
#define PACKAGE_VERSION_STR PACKAGE_VERSION
#else
#define PACKAGE_VERSION_STR "0"
#endif

/* ---- configuration (conf_schema.c) --------------------------------------- */

enum { ANON_AUTO, ANON_YES, ANON_NO };
enum { FSYNC_ALWAYS, FSYNC_INTERVAL, FSYNC_NEVER };
enum { CORRUPT_RECOVER, CORRUPT_REFUSE };

struct listener_conf {
    struct coro_addr listen;
    char *tls_cert, *tls_key, *tls_ca;
    int require_certificate;
    int allow_anonymous; /* ANON_*: auto = [auth] on loopback, refused elsewhere */
    int64_t max_connections;
};

struct broker_conf {
    struct {
        int persistence;
        char *state_dir;
        int fsync;
        int64_t fsync_interval_ms;
        int on_corruption;
        int64_t compact_after;
        int64_t sys_interval_ms;
        int64_t max_packet_size;
        int64_t max_inflight;
        int64_t max_queued;
        int64_t max_queued_bytes;
        int64_t max_connections;
        int64_t connect_timeout_ms;
    } broker;
    struct {
        int allow_anonymous;
        char *password_file;
        char *acl_file;
    } auth;
    struct conf_list listeners;
};

extern const struct conf_schema broker_schema;

/* ---- messages (msg.c) ---------------------------------------------------- */

/* An application message, shared by every queue it sits in and by the
 * retained store; immutable once made except for refs. */
struct msg {
    atomic_uint refs;
    uint8_t qos;
    bool retain;
    uint16_t tlen;
    uint32_t plen;
    uint64_t id; /* persistence id; 0 = not logged */
    uint8_t *payload;
    char topic[]; /* NUL-terminated, payload follows */
};

struct msg *msg_new(const void *topic, size_t tlen, const void *payload, size_t plen,
                    uint8_t qos, bool retain);
static inline struct msg *msg_ref(struct msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}
void msg_unref(struct msg *m);
void msg_unref_void(void *m);

/* ---- sessions (session.c) ------------------------------------------------ */

enum { QI_QUEUED, QI_SENT, QI_REL };

struct qitem {
    struct msg *m;
    uint16_t id;   /* packet id once sent (qos > 0) */
    uint8_t qos;   /* granted */
    uint8_t state; /* QI_* */
    bool retain;   /* retain flag on the wire */
    bool dup;      /* resend after a reconnect */
};

struct sub {
    struct sub *next;
    uint8_t qos;
    uint16_t len;
    char filter[];
};

struct conn;

/* A publisher waiting for room in a session's queue (on its stack). */
struct bpwait {
    struct bpwait *next;
    coro_sem_t sem;
};

/* Small on purpose (an idle client's memory is mostly this and its
 * conn): a spinlock, 32-bit counters, the client id inline. */
struct session {
    atomic_uint refs;
    atomic_int mu; /* spinlock: held for short stretches that never yield */
    char *username; /* of the last connection, for ACL checks at delivery */
    struct conn *conn;
    struct sub *subs;
    struct qitem *q;  /* queued messages, a ring */
    struct qitem *fl; /* sent, waiting for PUBACK / PUBREC / PUBCOMP */
    uint16_t *in2;    /* inbound QoS 2 ids between PUBREC and PUBREL */
    struct bpwait *bp_head, *bp_tail; /* publishers waiting for room in q, FIFO */
    struct session *hnext;            /* hash chain */
    size_t qbytes;
    uint32_t qhead, qlen, qcap, nfl, flcap, nsubs;
    uint16_t next_id, nin2, in2cap;
    bool persistent;
    bool gone;       /* dropped from the table: no new deliveries */
    bool bp_blocked; /* its reader waits for room elsewhere: never make it a target */
    char client_id[];
};

static inline void session_lock(struct session *s)
{
    for (unsigned n = 0;; n++) {
        if (!atomic_load_explicit(&s->mu, memory_order_relaxed) &&
            !atomic_exchange_explicit(&s->mu, 1, memory_order_acquire))
            return;
        if (n < 100) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            sched_yield(); /* the holder may be preempted: give it the CPU */
        }
    }
}

static inline void session_unlock(struct session *s)
{
    atomic_store_explicit(&s->mu, 0, memory_order_release);
}

void session_table_init(void);
/* Find or make the session for client id; *present tells whether state
 * existed. With clean, old state is discarded. A ref for the caller. */
struct session *session_get(const char *cid, size_t len, bool clean, bool *present);
struct session *session_find(const char *cid, size_t len); /* ref or NULL */
void session_ref(struct session *s);
void session_unref(struct session *s);
/* Drop a clean session: unsubscribe everything, release queued messages. */
void session_discard(struct session *s);
void session_foreach(void (*fn)(struct session *s, void *arg), void *arg);
size_t session_count(void);
/* Helpers under s->mu */
int session_queue_push(struct session *s, const struct qitem *it);
struct qitem *session_queue_peek(struct session *s);
void session_queue_pop(struct session *s);
/* Wake n (SIZE_MAX: all) publishers waiting for room in s's queue. */
void session_wake_publishers(struct session *s, size_t n);
int session_inflight_add(struct session *s, const struct qitem *it);
struct qitem *session_inflight_find(struct session *s, uint16_t id);
void session_inflight_remove(struct session *s, struct qitem *it);
uint16_t session_next_id(struct session *s);
bool session_in2_has(struct session *s, uint16_t id);
int session_in2_add(struct session *s, uint16_t id);
void session_in2_del(struct session *s, uint16_t id);
int session_sub_add(struct session *s, const char *f, size_t len, uint8_t qos); /* 1 new */
int session_sub_del(struct session *s, const char *f, size_t len);

/* ---- listeners (listener.c) ---------------------------------------------- */

/* A listener's TLS context and the files it was made from, reference
 * counted: a handshake in progress keeps the one it started with while a
 * reload re-reads the files into it or replaces it. */
struct tlsref {
    atomic_uint refs;
    coro_tls_ctx_t *ctx;
    char *cert, *key, *ca;
    int require_certificate;
};

/* Per listener name, kept for the life of the process so connections may
 * point at it across reloads. Settings are replaced by reloads. */
struct lst {
    char *name;
    daemon_t *d;
    pthread_mutex_t tls_mu; /* guards tls: taking a ref races with a swap */
    struct tlsref *tls;
    atomic_int allow_anon;
    atomic_long max_conns;
    atomic_long nconns;
    metric_t *m_conns, *m_accepted, *m_bytes_in, *m_bytes_out, *m_refused;
    struct lst *next;
};

int listener_apply(daemon_t *d, const struct broker_conf *bc, char *err, size_t errlen);
struct tlsref *listener_tls_get(struct lst *l); /* a ref, or NULL: plain listener */
void tlsref_unref(struct tlsref *t);
void listener_close_all(void);
size_t listener_count(void);

/* ---- connections (client.c) ---------------------------------------------- */

/* A byte buffer allocated only while it holds something. */
struct cbuf {
    size_t len, cap;
    uint8_t d[];
};

/* Small on purpose, like struct session: an idle connection has no read
 * buffer, no control buffer, no coroutine and no timer (keepalive
 * deadlines are swept by one coroutine, client.c). */
struct conn {
    atomic_uint refs;
    int fd;
    struct session *s; /* set by CONNECT, never changed after */
    struct lst *lst;
    coro_tls_t *tls;
    struct cbuf *rb;  /* read buffer, only while a reader runs */
    struct cbuf *ctl; /* control packets waiting to be written; under s's lock */
    struct msg *will;
    char *username;
    struct conn *prev, *next;
    _Atomic uint64_t last_rx; /* coro_now_ms() of the last bytes read */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
    uint16_t keepalive;
    uint16_t worker;
    bool connected;
    bool clean_disconnect;
    bool writing; /* a coroutine owns the write side; under s's lock */
    atomic_bool closing;
    atomic_bool expired; /* the sweeper found its deadline passed */
};

void client_conn(int fd, const struct coro_addr *peer, void *arg);
/* "client \"ID\" (ADDR)" into buf, for log lines. */
const char *client_name(const struct conn *c, char *buf, size_t len);
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);
/* Queue control bytes (acks); under s->mu or before CONNECT. 0/-1. */
int conn_ctl_append(struct conn *c, const uint8_t *p, size_t n);
/* Take the write side if free and write everything pending. */
void conn_flush_now(struct conn *c);
/* Make sure a flusher runs for c (caller holds c->s->mu). Returns true
 * when the caller must spawn it (after unlocking) with conn_kick(). */
bool conn_need_kick(struct conn *c);
void conn_kick(struct conn *c);
/* Close from another connection (takeover) or at stop: any thread. */
void conn_shutdown(struct conn *c);
void client_stop_all(void);
/* The keepalive / CONNECT-deadline sweeper (one coroutine). */
int client_sweeper_start(void);
void client_sweeper_stop(void);
size_t client_count(void);

/* ---- packet handlers (handle_*.c) ---------------------------------------- */

/* 0 = go on, -1 = close the connection (reason logged by the handler or
 * set in *why). */
int handle_connect(struct conn *c, const struct mqtt_packet *p, const char **why);
int handle_publish(struct conn *c, const struct mqtt_packet *p, const char **why);
int handle_pubrel(struct conn *c, uint16_t id, const char **why);
int handle_ack(struct conn *c, const struct mqtt_packet *p, const char **why);
int handle_subscribe(struct conn *c, const struct mqtt_packet *p, const char **why);
int handle_unsubscribe(struct conn *c, const struct mqtt_packet *p, const char **why);

/* ---- delivery (deliver.c) ------------------------------------------------ */

/* Route m to every matching subscriber; blocks (parks) while a subscriber
 * with a QoS 1/2 queue is full. from: the publishing session (or NULL).
 * 0, or -1 when persisting failed. */
int deliver_publish(struct msg *m, struct session *from);
/* Queue m for s with qos, retain flag as given; for retained-on-subscribe. */
void deliver_to_session(struct session *s, struct msg *m, uint8_t qos, bool retain);
/* Build one batch of writes for c under s->mu. */
struct wbatch;
/* Retained store */
void retain_set(struct msg *m); /* empty payload clears */
void retain_send(struct session *s, const char *filter, size_t len, uint8_t qos);

/* ---- wills (will.c) ------------------------------------------------------ */

int will_prepare(struct conn *c, const struct mqtt_connect *ck);
void will_fire(struct conn *c);
void will_drop(struct conn *c);

/* ---- auth (auth.c, acl.c) ------------------------------------------------ */

int auth_load(const struct broker_conf *bc, char *err, size_t errlen);
/* MQTT_RC_* for a CONNECT; may yield (password hashing is offloaded). */
int auth_check(struct conn *c, const struct mqtt_connect *ck);
enum { ACL_READ = 1, ACL_WRITE = 2 };
bool acl_allowed(const char *user, const char *cid, const char *topic, int access);
/* false when no rule lets this client read any topic the filter matches. */
bool acl_filter_readable(const char *user, const char *cid, const char *filter, size_t len);
int acl_load(const char *path, char *err, size_t errlen);
void acl_clear(void);
int topic_filter_matches(const char *filter, size_t flen, const char *topic, size_t tlen);

/* ---- persistence (persist.c) --------------------------------------------- */

int persist_open(const struct broker_conf *bc, daemon_t *d);
bool persist_on(void);
uint64_t persist_msg_id(void);
/* Log a message queued for the persistent sessions cids (n of them). */
int persist_deliver(struct msg *m, struct session **ss, size_t n);
int persist_acks(struct session *s, const uint64_t *ids, size_t n);
int persist_retain(struct msg *m);
int persist_in2(struct session *s, uint16_t id, bool del); /* inbound QoS 2 set */
int persist_session(struct session *s, bool del);
int persist_sub(struct session *s, const char *f, size_t len, uint8_t qos, bool del);
void persist_start_compactor(void);
void persist_close(void);

/* ---- statistics, $SYS, metrics (stats.c, sys.c) -------------------------- */

struct broker_stats {
    metric_t *conns, *conns_total, *bytes_in, *bytes_out;
    metric_t *msgs_in[3], *msgs_out[3];
    metric_t *dropped, *refused, *protocol_errors, *keepalive_timeouts;
    metric_t *persist_torn, *persist_corrupt, *persist_lost;
    uint64_t start_ms;
};
extern struct broker_stats bstats;
void stats_init(daemon_t *d);
void sys_start(int64_t interval_ms);
void sys_stop(void);

/* ---- the broker (main.c) ------------------------------------------------- */

struct broker {
    daemon_t *d;
    const struct broker_conf *conf; /* current */
    topic_tree_t *topics;
    atomic_size_t max_packet, max_inflight, max_queued, max_queued_bytes;
    atomic_long max_conns;
    atomic_bool stopping;
};
extern struct broker B;

#endif
