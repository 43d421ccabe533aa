/*
 * handle_publish.c - inbound PUBLISH (QoS 0/1/2, the in-flight QoS 2 set
 * between PUBREC and PUBREL) and the acknowledgements of outbound
 * messages (PUBACK, PUBREC -> PUBREL, PUBCOMP).
 */
#include <stdlib.h>

#include "broker.h"
#include "coro/log.h"

static int ack(struct conn *c, enum mqtt_type type, uint16_t id)
{
    uint8_t out[4];
    size_t n = mqtt_encode_ack(out, sizeof(out), type, id);
    session_lock(c->s);
    int rc = conn_ctl_append(c, out, n);
    session_unlock(c->s);
    return rc;
}

int handle_publish(struct conn *c, const struct mqtt_packet *p, const char **why)
{
    const struct mqtt_publish *pb = &p->u.publish;
    struct session *s = c->s;

    metric_inc(bstats.msgs_in[pb->qos]);
    if (pb->qos == 2) {
        session_lock(s);
        bool seen = session_in2_has(s, pb->id);
        session_unlock(s);
        if (seen) /* a resend before PUBREL: delivered already */
            return ack(c, MQTT_PUBREC, pb->id);
    }
    struct msg *m = msg_new(pb->topic.p, pb->topic.len, pb->payload.p, pb->payload.len, pb->qos,
                            pb->retain);
    if (!m)
        return *why = "out of memory", -1;
    int rc = 0;
    if (acl_allowed(c->username, s->client_id, m->topic, ACL_WRITE)) {
        if (pb->retain) {
            retain_set(m);
            if (persist_on())
                rc = persist_retain(m);
        }
        if (rc == 0)
            rc = deliver_publish(m, s);
    } else {
        char nb[300];
        log_info("%s: publish to \"%s\" denied", client_name(c, nb, sizeof(nb)), m->topic);
    }
    msg_unref(m);
    if (rc < 0)
        return *why = NULL, -1; /* not acked: the client sends it again */
    if (pb->qos == 1)
        return ack(c, MQTT_PUBACK, pb->id);
    if (pb->qos == 2) {
        session_lock(s);
        rc = session_in2_add(s, pb->id);
        session_unlock(s);
        if (rc == 0 && s->persistent && persist_on())
            rc = persist_in2(s, pb->id, false); /* before PUBREC: exactly once across restarts */
        return rc < 0 ? (*why = "out of memory", -1) : ack(c, MQTT_PUBREC, pb->id);
    }
    return 0;
}

int handle_pubrel(struct conn *c, uint16_t id, const char **why)
{
    session_lock(c->s);
    bool had = session_in2_has(c->s, id);
    session_in2_del(c->s, id);
    session_unlock(c->s);
    /* before PUBCOMP: the client may reuse the id for a new message then */
    if (had && c->s->persistent && persist_on() && persist_in2(c->s, id, true) < 0)
        return *why = NULL, -1;
    return ack(c, MQTT_PUBCOMP, id);
}

/* An outbound message is acknowledged: free its window slot, log it. */
int handle_ack(struct conn *c, const struct mqtt_packet *p, const char **why)
{
    struct session *s = c->s;
    uint64_t mid = 0;
    bool kick = false;
    uint8_t out[4];

    session_lock(s);
    struct qitem *it = session_inflight_find(s, p->u.id);
    if (!it) {
        session_unlock(s);
        return 0; /* unknown or already done: ignore, as mosquitto does */
    }
    if (p->type == MQTT_PUBACK && it->qos == 1 && it->state == QI_SENT) {
        mid = it->m->id;
        msg_unref(it->m);
        session_inflight_remove(s, it);
    } else if (p->type == MQTT_PUBREC && it->qos == 2 && it->state == QI_SENT) {
        mid = it->m->id;
        it->state = QI_REL;
        conn_ctl_append(c, out, mqtt_encode_ack(out, sizeof(out), MQTT_PUBREL, p->u.id));
    } else if (p->type == MQTT_PUBCOMP && it->state == QI_REL) {
        msg_unref(it->m);
        session_inflight_remove(s, it);
    }
    if (s->qlen)
        kick = conn_need_kick(c);
    session_unlock(s);
    if (kick)
        conn_kick(c);
    if (mid && s->persistent && persist_on())
        persist_acks(s, &mid, 1);
    return 0;
}
