/*
 * will.c - the Last Will: kept from CONNECT, published when the connection
 * ends without DISCONNECT (network error, keepalive timeout, protocol
 * error, takeover by a new connection with the same client id), dropped
 * on DISCONNECT.
 */
#include "broker.h"
#include "coro/log.h"

int will_prepare(struct conn *c, const struct mqtt_connect *ck)
{
    if (!ck->will)
        return 0;
    c->will = msg_new(ck->will_topic.p, ck->will_topic.len, ck->will_payload.p,
                      ck->will_payload.len, ck->will_qos, ck->will_retain);
    return c->will ? 0 : -1;
}

void will_fire(struct conn *c)
{
    struct msg *m = c->will;
    char nb[300];

    if (!m || !c->s)
        return will_drop(c);
    c->will = NULL;
    if (!acl_allowed(c->username, c->s->client_id, m->topic, ACL_WRITE)) {
        log_info("%s: will to \"%s\" denied", client_name(c, nb, sizeof(nb)), m->topic);
        msg_unref(m);
        return;
    }
    log_debug("%s: publishing will to \"%s\"", client_name(c, nb, sizeof(nb)), m->topic);
    if (m->retain) {
        retain_set(m);
        if (persist_on())
            persist_retain(m);
    }
    metric_inc(bstats.msgs_in[m->qos]);
    deliver_publish(m, NULL);
    msg_unref(m);
}

void will_drop(struct conn *c)
{
    msg_unref(c->will);
    c->will = NULL;
}
