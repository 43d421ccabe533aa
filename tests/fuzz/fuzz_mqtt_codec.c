/*
 * fuzz_mqtt_codec.c - libFuzzer target for the broker's MQTT 3.1.1 decoder.
 *
 * Decodes the input packet by packet and checks, for every packet that
 * decodes: its views lie inside the packet, SUBSCRIBE/UNSUBSCRIBE lists
 * iterate to exactly `count` valid filters, every prefix is MQTT_MORE with
 * the right `need`, max_size is honoured to the byte, and re-encoding the
 * fields with the encoders gives the same body (byte for byte; the header
 * too unless the input used a non-minimal remaining length) which decodes
 * again. Any mismatch aborts.
 *
 * The codec source is included, not linked, so that one fuzz_<parser>.c is
 * one target that tests/fuzz/build.sh compiles alone with coverage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemons/broker/mqtt_codec.c"

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "fuzz_mqtt_codec: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                                   \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

static uint8_t *enc_buf;
static size_t enc_cap;

static void view_inside(struct mqtt_buf b, const uint8_t *pkt, size_t size)
{
    if (b.len == 0)
        return;
    CHECK(b.p >= pkt && b.p + b.len <= pkt + size);
}

static size_t header_len(const uint8_t *pkt)
{
    size_t i = 1;

    while (pkt[i] & 0x80)
        i++;
    return i + 1;
}

/* Walk a SUBSCRIBE/UNSUBSCRIBE list; fill filters/qos (may be NULL) and return the count. */
static size_t walk_sublist(const struct mqtt_packet *p, struct mqtt_buf *filters, uint8_t *qos)
{
    struct mqtt_buf list = p->u.sub.list, f;
    int with_qos = p->type == MQTT_SUBSCRIBE;
    size_t n = 0;
    uint8_t q = 0;

    while (mqtt_sub_next(&list, with_qos, &f, &q)) {
        CHECK(mqtt_topic_filter_valid(f.p, f.len));
        CHECK(q <= 2);
        if (filters) {
            filters[n] = f;
            qos[n] = q;
        }
        n++;
    }
    CHECK(list.len == 0);
    return n;
}

/* Re-encode p with the encoders; 0 when the packet cannot be re-encoded. */
static size_t reencode(const struct mqtt_packet *p)
{
    const struct mqtt_publish *m = &p->u.publish;
    struct mqtt_buf *filters;
    uint8_t *qos;
    size_t n = 0, h;

    switch (p->type) {
    case MQTT_CONNECT:
        if (p->u.connect.level != 3 && p->u.connect.level != 4)
            return 0; /* only proto_name and level were decoded */
        return mqtt_encode_connect(enc_buf, enc_cap, &p->u.connect);
    case MQTT_CONNACK:
        return mqtt_encode_connack(enc_buf, enc_cap, p->u.connack.session_present, p->u.connack.rc);
    case MQTT_PUBLISH:
        h = mqtt_encode_publish_head(enc_buf, enc_cap, m->topic.p, m->topic.len, m->payload.len,
                                     m->qos, m->dup, m->retain, m->id);
        CHECK(h > 0 && enc_cap - h >= m->payload.len);
        memcpy(enc_buf + h, m->payload.p, m->payload.len);
        return h + m->payload.len;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        filters = malloc(p->u.sub.count * sizeof(*filters) + 1);
        qos = malloc(p->u.sub.count + 1);
        CHECK(filters && qos);
        CHECK(walk_sublist(p, filters, qos) == p->u.sub.count);
        if (p->type == MQTT_SUBSCRIBE)
            n = mqtt_encode_subscribe(enc_buf, enc_cap, p->u.sub.id, filters, qos, p->u.sub.count);
        else
            n = mqtt_encode_unsubscribe(enc_buf, enc_cap, p->u.sub.id, filters, p->u.sub.count);
        free(filters);
        free(qos);
        return n;
    case MQTT_SUBACK:
        return mqtt_encode_suback(enc_buf, enc_cap, p->u.suback.id, p->u.suback.codes.p,
                                  p->u.suback.codes.len);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
    case MQTT_DISCONNECT:
        return mqtt_encode_simple(enc_buf, enc_cap, p->type);
    default:
        return mqtt_encode_ack(enc_buf, enc_cap, p->type, p->u.id);
    }
}

static void check_views(const struct mqtt_packet *p, const uint8_t *pkt)
{
    const struct mqtt_connect *c = &p->u.connect;

    switch (p->type) {
    case MQTT_CONNECT:
        view_inside(c->proto_name, pkt, p->size);
        view_inside(c->client_id, pkt, p->size);
        view_inside(c->will_topic, pkt, p->size);
        view_inside(c->will_payload, pkt, p->size);
        view_inside(c->username, pkt, p->size);
        view_inside(c->password, pkt, p->size);
        CHECK(c->will || (c->will_qos == 0 && !c->will_retain));
        CHECK(c->will_qos <= 2 && (c->has_username || !c->has_password));
        if (c->will)
            CHECK(mqtt_topic_name_valid(c->will_topic.p, c->will_topic.len));
        break;
    case MQTT_PUBLISH:
        view_inside(p->u.publish.topic, pkt, p->size);
        view_inside(p->u.publish.payload, pkt, p->size);
        CHECK(mqtt_topic_name_valid(p->u.publish.topic.p, p->u.publish.topic.len));
        CHECK(p->u.publish.qos <= 2 && (p->u.publish.qos == 0) == (p->u.publish.id == 0));
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        view_inside(p->u.sub.list, pkt, p->size);
        CHECK(p->u.sub.count > 0 && p->u.sub.id != 0);
        CHECK(walk_sublist(p, NULL, NULL) == p->u.sub.count);
        break;
    case MQTT_SUBACK:
        view_inside(p->u.suback.codes, pkt, p->size);
        break;
    default:
        break;
    }
}

/* Every prefix needs more, with need known once the fixed header is in; max_size is exact. */
static void check_prefixes_and_limit(const struct mqtt_packet *p, const uint8_t *pkt)
{
    const size_t hl = header_len(pkt);
    const size_t cuts[] = {0, 1, hl - 1, hl, p->size / 2, p->size - 1};
    struct mqtt_packet q;
    struct mqtt_err err;
    size_t need;

    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        if (cuts[i] >= p->size)
            continue;
        CHECK(mqtt_decode(pkt, cuts[i], 0, &q, &need, &err) == MQTT_MORE);
        CHECK(need == (cuts[i] >= hl ? p->size : 0));
    }
    CHECK(mqtt_decode(pkt, p->size, p->size, &q, &need, &err) == MQTT_DONE);
    CHECK(mqtt_decode(pkt, hl, p->size - 1, &q, &need, &err) == MQTT_BAD);
    CHECK(strcmp(err.reason, "packet too large") == 0);
}

static void check_roundtrip(const struct mqtt_packet *p, const uint8_t *pkt)
{
    struct mqtt_packet q;
    struct mqtt_err err;
    size_t n = reencode(p), need, hl_old = header_len(pkt), hl_new;

    if (p->type == MQTT_CONNECT && n == 0)
        return;
    CHECK(n > 0);
    hl_new = header_len(enc_buf);
    CHECK(hl_new <= hl_old && enc_buf[0] == pkt[0]);
    CHECK(n - hl_new == p->size - hl_old);
    CHECK(memcmp(enc_buf + hl_new, pkt + hl_old, n - hl_new) == 0);
    if (hl_new == hl_old)
        CHECK(memcmp(enc_buf, pkt, n) == 0);
    CHECK(mqtt_decode(enc_buf, n, 0, &q, &need, &err) == MQTT_DONE);
    CHECK(q.size == n && q.type == p->type && q.flags == p->flags);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;

    if (enc_cap < size + 16) {
        free(enc_buf);
        enc_cap = size + 16;
        enc_buf = malloc(enc_cap);
        CHECK(enc_buf);
    }
    while (off < size) {
        struct mqtt_packet p;
        struct mqtt_err err = {0, NULL};
        size_t need = 12345;
        int rc = mqtt_decode(data + off, size - off, 0, &p, &need, &err);

        if (rc == MQTT_MORE) {
            CHECK(need == 0 || need > size - off);
            break;
        }
        if (rc == MQTT_BAD) {
            CHECK(err.reason != NULL && err.offset <= size - off);
            break;
        }
        CHECK(rc == MQTT_DONE && p.size >= 2 && p.size <= size - off);
        check_views(&p, data + off);
        check_prefixes_and_limit(&p, data + off);
        check_roundtrip(&p, data + off);
        off += p.size;
    }
    return 0;
}
