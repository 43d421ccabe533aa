/*
 * msg.c - application messages: one allocation holding topic and payload,
 * reference counted so one PUBLISH fanned out to many queues (and the
 * retained store) is stored once.
 */
#include <stdlib.h>
#include <string.h>

#include "broker.h"

struct msg *msg_new(const void *topic, size_t tlen, const void *payload, size_t plen,
                    uint8_t qos, bool retain)
{
    struct msg *m = malloc(sizeof(*m) + tlen + 1 + plen);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->qos = qos;
    m->retain = retain;
    m->tlen = (uint16_t)tlen;
    m->plen = (uint32_t)plen;
    m->id = 0;
    memcpy(m->topic, topic, tlen);
    m->topic[tlen] = '\0';
    m->payload = (uint8_t *)m->topic + tlen + 1;
    if (plen)
        memcpy(m->payload, payload, plen);
    return m;
}

void msg_unref(struct msg *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

void msg_unref_void(void *m)
{
    msg_unref(m);
}
