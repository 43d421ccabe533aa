/*
 * handle_connect.c - CONNECT: protocol level, client id (empty ids get a
 * generated one with a clean session), authentication, the will, session
 * lookup or creation, takeover of a connected client id, CONNACK.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "coro/log.h"

static int refuse(struct conn *c, uint8_t rc, const char *what)
{
    uint8_t out[8];
    char nb[300];
    size_t n = mqtt_encode_connack(out, sizeof(out), false, rc);

    conn_ctl_append(c, out, n);
    conn_flush_now(c);
    metric_inc(bstats.refused);
    metric_inc(c->lst->m_refused);
    log_notice("%s: connection refused: %s", client_name(c, nb, sizeof(nb)), what);
    return -1;
}

/* Disconnect whoever holds client id cid now (the takeover rule). */
static void take_over(const char *cid, size_t len, bool clean)
{
    struct session *old = session_find(cid, len);
    if (!old)
        return;
    session_lock(old);
    if (old->conn) {
        log_info("client \"%s\": taken over by a new connection", old->client_id);
        conn_shutdown(old->conn);
    }
    session_unlock(old);
    if (clean && persist_on() && old->persistent)
        persist_session(old, true); /* the new connection drops the old state */
    session_unref(old);
}

static int attach(struct conn *c, struct session *s, bool present)
{
    uint8_t out[8];
    size_t n = mqtt_encode_connack(out, sizeof(out), present, MQTT_RC_ACCEPTED);

    session_lock(s);
    if (s->conn && s->conn != c)
        conn_shutdown(s->conn); /* raced with another CONNECT for this id */
    s->conn = c;
    free(s->username);
    s->username = c->username ? strdup(c->username) : NULL;
    int rc = conn_ctl_append(c, out, n);
    c->connected = true;
    for (size_t i = 0; i < s->nfl; i++)
        s->fl[i].dup = true;
    session_unlock(s);
    return rc;
}

int handle_connect(struct conn *c, const struct mqtt_packet *p, const char **why)
{
    const struct mqtt_connect *ck = &p->u.connect;
    char gen[40];
    const char *cid = (const char *)ck->client_id.p;
    size_t len = ck->client_id.len;
    bool present = false;

    if (!mqtt_connect_supported(ck))
        return refuse(c, MQTT_RC_BAD_PROTOCOL, "protocol not MQTT 3.1.1 or 3.1");
    if (len == 0) {
        if (!ck->clean)
            return refuse(c, MQTT_RC_ID_REJECTED, "empty client id without clean session");
        static atomic_uint_fast64_t seq;
        len = (size_t)snprintf(gen, sizeof(gen), "auto-%llx-%llx",
                               (unsigned long long)bstats.start_ms,
                               (unsigned long long)atomic_fetch_add(&seq, 1));
        cid = gen;
    }
    if (ck->has_username)
        c->username = strndup((const char *)ck->username.p, ck->username.len);
    int rc = auth_check(c, ck);
    if (rc != MQTT_RC_ACCEPTED)
        return refuse(c, (uint8_t)rc,
                      rc == MQTT_RC_BAD_USER_PASS ? "bad user name or password" : "not authorised");
    if (will_prepare(c, ck) < 0)
        return refuse(c, MQTT_RC_UNAVAILABLE, "out of memory");
    c->keepalive = ck->keepalive;

    take_over(cid, len, ck->clean);
    struct session *s = session_get(cid, len, ck->clean, &present);
    if (!s)
        return refuse(c, MQTT_RC_UNAVAILABLE, "out of memory");
    c->s = s;
    if (persist_on() && s->persistent && !present && persist_session(s, false) < 0)
        return refuse(c, MQTT_RC_UNAVAILABLE, "persistence failed");
    if (attach(c, s, present) < 0)
        return *why = "out of memory", -1;
    metric_inc(bstats.conns_total);
    metric_add(bstats.conns, 1);
    metric_add(c->lst->m_conns, 1);
    char nb[300];
    log_debug("%s: connected (clean %d, keepalive %u)", client_name(c, nb, sizeof(nb)),
              ck->clean, ck->keepalive);
    return 0;
}
