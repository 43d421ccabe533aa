/*
 * handle_subscribe.c - SUBSCRIBE (granted QoS, SUBACK, then the retained
 * messages of each filter with the retain flag set) and UNSUBSCRIBE.
 */
#include <stdlib.h>

#include "broker.h"
#include "coro/log.h"

static void add_filter(struct session *s, const struct mqtt_buf *f, uint8_t qos)
{
    session_lock(s);
    int r = session_sub_add(s, (const char *)f->p, f->len, qos);
    session_unlock(s);
    if (r < 0)
        return;
    if (r == 1)
        session_ref(s); /* the tree's */
    topic_subscribe(B.topics, (const char *)f->p, f->len, s, qos);
    if (s->persistent && persist_on())
        persist_sub(s, (const char *)f->p, f->len, qos, false);
}

int handle_subscribe(struct conn *c, const struct mqtt_packet *p, const char **why)
{
    struct session *s = c->s;
    struct mqtt_buf list = p->u.sub.list, f;
    uint8_t qos, *codes = calloc(p->u.sub.count ? p->u.sub.count : 1, 1);
    size_t n = 0;

    if (!codes)
        return *why = "out of memory", -1;
    while (n < p->u.sub.count && mqtt_sub_next(&list, 1, &f, &qos) == 1) {
        if (qos > 2 || !mqtt_topic_filter_valid(f.p, f.len) ||
            !acl_filter_readable(c->username, s->client_id, (const char *)f.p, f.len)) {
            codes[n++] = 0x80; /* deliveries are still checked one by one */
            continue;
        }
        add_filter(s, &f, qos);
        codes[n++] = qos;
    }
    size_t cap = 5 + 2 + n;
    uint8_t *out = malloc(cap);
    int rc = -1;
    if (out) {
        size_t len = mqtt_encode_suback(out, cap, p->u.sub.id, codes, n);
        session_lock(s);
        rc = conn_ctl_append(c, out, len);
        session_unlock(s);
        free(out);
    }
    /* SUBACK is queued first, then the retained messages. */
    list = p->u.sub.list;
    for (size_t i = 0; rc == 0 && i < n && mqtt_sub_next(&list, 1, &f, &qos) == 1; i++)
        if (codes[i] != 0x80)
            retain_send(s, (const char *)f.p, f.len, codes[i]);
    free(codes);
    return rc < 0 ? (*why = "out of memory", -1) : 0;
}

int handle_unsubscribe(struct conn *c, const struct mqtt_packet *p, const char **why)
{
    struct session *s = c->s;
    struct mqtt_buf list = p->u.sub.list, f;
    uint8_t out[4];

    while (mqtt_sub_next(&list, 0, &f, NULL) == 1) {
        session_lock(s);
        int r = session_sub_del(s, (const char *)f.p, f.len);
        session_unlock(s);
        if (r == 0) {
            topic_unsubscribe(B.topics, (const char *)f.p, f.len, s);
            session_unref(s);
            if (s->persistent && persist_on())
                persist_sub(s, (const char *)f.p, f.len, 0, true);
        }
    }
    session_lock(s);
    int rc = conn_ctl_append(c, out, mqtt_encode_ack(out, sizeof(out), MQTT_UNSUBACK, p->u.sub.id));
    session_unlock(s);
    return rc;
}
