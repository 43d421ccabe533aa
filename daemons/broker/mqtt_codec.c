/*
 * mqtt_codec.c - MQTT 3.1.1 packet decoder (strict, zero-copy) and encoders.
 *
 * The decoder checks the fixed header as soon as its bytes arrive (type,
 * flags, remaining length, max_size) so that a bad or oversized packet is
 * refused before the caller buffers its body. Once a whole packet is in
 * the buffer one function per packet type validates the body with a
 * bounds-checked cursor; every failure names the problem and the offset
 * of the offending byte from the packet start.
 */
#include "mqtt_codec.h"

#include <string.h>

#define RL_MAX 268435455u /* four remaining-length bytes of seven bits */

/* A bounds-checked cursor over one complete packet. */
struct dec {
    const uint8_t *b;
    size_t pos, end;
    struct mqtt_err *err;
};

static int bad(struct dec *d, size_t at, const char *why)
{
    d->err->offset = at;
    d->err->reason = why;
    return -1;
}

static int rd_u8(struct dec *d, uint8_t *v)
{
    if (d->pos >= d->end)
        return bad(d, d->pos, "packet too short");
    *v = d->b[d->pos++];
    return 0;
}

static int rd_u16(struct dec *d, uint16_t *v)
{
    if (d->end - d->pos < 2)
        return bad(d, d->pos, "packet too short");
    *v = (uint16_t)(d->b[d->pos] << 8 | d->b[d->pos + 1]);
    d->pos += 2;
    return 0;
}

/* A packet identifier: MQTT-2.3.1-1 wants it non-zero wherever it appears. */
static int rd_id(struct dec *d, uint16_t *id)
{
    if (rd_u16(d, id) < 0)
        return -1;
    if (*id == 0)
        return bad(d, d->pos - 2, "packet id 0");
    return 0;
}

/* Two-byte length prefix then that many bytes (strings and binary data). */
static int rd_bin(struct dec *d, struct mqtt_buf *v)
{
    uint16_t n;

    if (rd_u16(d, &n) < 0)
        return -1;
    if (d->end - d->pos < n)
        return bad(d, d->pos - 2, "string exceeds packet");
    v->p = d->b + d->pos;
    v->len = n;
    d->pos += n;
    return 0;
}

static int rd_end(struct dec *d)
{
    if (d->pos != d->end)
        return bad(d, d->pos, "trailing bytes in packet");
    return 0;
}

/*
 * Index of the first ill-formed sequence, or len when p is well-formed
 * UTF-8 without U+0000 (MQTT-1.5.3-1, -2): no overlong forms, no
 * surrogates, nothing past U+10FFFF.
 */
static size_t utf8_check(const uint8_t *p, size_t len)
{
    static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
    size_t i = 0;

    while (i < len) {
        uint8_t c = p[i];
        size_t n, k;
        uint32_t cp;

        if (c == 0)
            return i;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0)
            n = 1, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0)
            n = 2, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0)
            n = 3, cp = c & 0x07;
        else
            return i;
        if (len - i - 1 < n)
            return i;
        for (k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return i;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += n + 1;
    }
    return len;
}

/* Why p is not a valid topic name (NULL if it is); *at = offending index. */
static const char *topic_name_problem(const uint8_t *p, size_t len, size_t *at)
{
    size_t i;

    *at = 0;
    if (len == 0)
        return "empty topic";
    if ((*at = utf8_check(p, len)) != len)
        return "invalid UTF-8 in topic";
    for (i = 0; i < len; i++) {
        if (p[i] == '+' || p[i] == '#') {
            *at = i;
            return "topic contains wildcard";
        }
    }
    return NULL;
}

/* '+' fills a whole level, '#' fills the whole last level (MQTT-4.7.1). */
static const char *topic_filter_problem(const uint8_t *p, size_t len, size_t *at)
{
    size_t i;

    *at = 0;
    if (len == 0)
        return "empty topic filter";
    if ((*at = utf8_check(p, len)) != len)
        return "invalid UTF-8 in topic filter";
    for (i = 0; i < len; i++) {
        bool level_start = i == 0 || p[i - 1] == '/';
        bool level_end = i + 1 == len || p[i + 1] == '/';

        *at = i;
        if (p[i] == '+' && !(level_start && level_end))
            return "misplaced + in topic filter";
        if (p[i] == '#' && !(level_start && i + 1 == len))
            return "misplaced # in topic filter";
    }
    return NULL;
}

int mqtt_topic_name_valid(const uint8_t *p, size_t len)
{
    size_t at;

    return len <= 65535 && topic_name_problem(p, len, &at) == NULL;
}

int mqtt_topic_filter_valid(const uint8_t *p, size_t len)
{
    size_t at;

    return len <= 65535 && topic_filter_problem(p, len, &at) == NULL;
}

/* ---- fixed header ---- */

/* Flags each type must carry (MQTT-2.2.2-1); PUBLISH (-1) is checked on its own. */
static const int8_t type_flags[16] = {
    [MQTT_CONNECT] = 0,  [MQTT_CONNACK] = 0,     [MQTT_PUBLISH] = -1, [MQTT_PUBACK] = 0,
    [MQTT_PUBREC] = 0,   [MQTT_PUBREL] = 2,      [MQTT_PUBCOMP] = 0,  [MQTT_SUBSCRIBE] = 2,
    [MQTT_SUBACK] = 0,   [MQTT_UNSUBSCRIBE] = 2, [MQTT_UNSUBACK] = 0, [MQTT_PINGREQ] = 0,
    [MQTT_PINGRESP] = 0, [MQTT_DISCONNECT] = 0,
};

static const char *first_byte_problem(uint8_t b)
{
    unsigned type = b >> 4, flags = b & 0x0F;

    if (type < MQTT_CONNECT || type > MQTT_DISCONNECT)
        return "bad packet type";
    if (type != MQTT_PUBLISH)
        return (int)flags == type_flags[type] ? NULL : "reserved flags set";
    if ((flags >> 1 & 3) == 3)
        return "bad QoS";
    if ((flags & 8) && (flags >> 1 & 3) == 0)
        return "DUP set on QoS 0";
    return NULL;
}

/*
 * Remaining length: 1 to 4 bytes of 7 bits, least significant first
 * (MQTT-2.2.3). Non-minimal encodings are accepted, as 3.1.1 does not
 * forbid them and mosquitto reads them; a fifth byte is refused.
 * Returns the header length, 0 when more bytes are needed, -1 if bad.
 */
static int read_rl(const uint8_t *buf, size_t len, size_t *rl)
{
    size_t v = 0;
    int i;

    for (i = 1; i <= 4; i++) {
        if ((size_t)i >= len)
            return 0;
        v |= (size_t)(buf[i] & 0x7F) << (7 * (i - 1));
        if (!(buf[i] & 0x80)) {
            *rl = v;
            return i + 1;
        }
    }
    return -1;
}

/* ---- packet bodies ---- */

static int dec_connect_payload(struct dec *d, struct mqtt_connect *c)
{
    size_t at, start;
    const char *why;

    if (rd_bin(d, &c->client_id) < 0)
        return -1;
    if (utf8_check(c->client_id.p, c->client_id.len) != c->client_id.len)
        return bad(d, d->pos - c->client_id.len, "invalid UTF-8 in client id");
    if (c->will) {
        if (rd_bin(d, &c->will_topic) < 0)
            return -1;
        start = d->pos - c->will_topic.len;
        if ((why = topic_name_problem(c->will_topic.p, c->will_topic.len, &at)) != NULL)
            return bad(d, start + at, "invalid will topic");
        if (rd_bin(d, &c->will_payload) < 0)
            return -1;
    }
    if (c->has_username) {
        if (rd_bin(d, &c->username) < 0)
            return -1;
        if (utf8_check(c->username.p, c->username.len) != c->username.len)
            return bad(d, d->pos - c->username.len, "invalid UTF-8 in username");
    }
    if (c->has_password && rd_bin(d, &c->password) < 0)
        return -1;
    return rd_end(d);
}

/* Connect flags (MQTT-3.1.2-3, -11, -13, -14, -15, -22). */
static int dec_connect_flags(struct dec *d, struct mqtt_connect *c)
{
    uint8_t f;
    size_t at = d->pos;

    if (rd_u8(d, &f) < 0)
        return -1;
    if (f & 0x01)
        return bad(d, at, "reserved connect flag set");
    c->clean = f & 0x02;
    c->will = f & 0x04;
    c->will_qos = f >> 3 & 3;
    c->will_retain = f & 0x20;
    c->has_password = f & 0x40;
    c->has_username = f & 0x80;
    if (!c->will && (c->will_qos || c->will_retain))
        return bad(d, at, "will flags without will");
    if (c->will_qos == 3)
        return bad(d, at, "bad will QoS");
    if (c->has_password && !c->has_username)
        return bad(d, at, "password without username");
    return 0;
}

static int dec_connect(struct dec *d, struct mqtt_packet *pkt)
{
    struct mqtt_connect *c = &pkt->u.connect;
    struct mqtt_buf *pn = &c->proto_name;

    if (rd_bin(d, pn) < 0)
        return -1;
    if (!(pn->len == 4 && memcmp(pn->p, "MQTT", 4) == 0) &&
        !(pn->len == 6 && memcmp(pn->p, "MQIsdp", 6) == 0))
        return bad(d, d->pos - pn->len, "bad protocol name");
    if (rd_u8(d, &c->level) < 0)
        return -1;
    /* Another level may lay the rest out differently (MQTT 5 adds
     * properties): stop here so the server can answer CONNACK rc 1. */
    if (c->level != 3 && c->level != 4)
        return 0;
    if (dec_connect_flags(d, c) < 0 || rd_u16(d, &c->keepalive) < 0)
        return -1;
    return dec_connect_payload(d, c);
}

static int dec_publish(struct dec *d, struct mqtt_packet *pkt)
{
    struct mqtt_publish *m = &pkt->u.publish;
    const char *why;
    size_t at, start;

    m->qos = pkt->flags >> 1 & 3;
    m->dup = pkt->flags & 8;
    m->retain = pkt->flags & 1;
    if (rd_bin(d, &m->topic) < 0)
        return -1;
    start = d->pos - m->topic.len;
    if ((why = topic_name_problem(m->topic.p, m->topic.len, &at)) != NULL)
        return bad(d, m->topic.len ? start + at : start - 2, why);
    if (m->qos > 0 && rd_id(d, &m->id) < 0)
        return -1;
    m->payload.p = d->b + d->pos;
    m->payload.len = d->end - d->pos;
    d->pos = d->end;
    return 0;
}

/* SUBSCRIBE (with_qos) and UNSUBSCRIBE: id then at least one filter. */
static int dec_sublist(struct dec *d, struct mqtt_packet *pkt, int with_qos)
{
    struct mqtt_sublist *s = &pkt->u.sub;
    struct mqtt_buf f;
    const char *why;
    size_t at, start;
    uint8_t q;

    if (rd_id(d, &s->id) < 0)
        return -1;
    if (d->pos == d->end)
        return bad(d, d->pos, "empty subscription list");
    s->list.p = d->b + d->pos;
    s->list.len = d->end - d->pos;
    while (d->pos < d->end) {
        start = d->pos;
        if (rd_bin(d, &f) < 0)
            return -1;
        if ((why = topic_filter_problem(f.p, f.len, &at)) != NULL)
            return bad(d, start + (f.len ? 2 + at : 0), why);
        if (with_qos) {
            if (rd_u8(d, &q) < 0)
                return -1;
            if (q & 0xFC)
                return bad(d, d->pos - 1, "reserved bits in requested QoS");
            if (q == 3)
                return bad(d, d->pos - 1, "bad requested QoS");
        }
        s->count++;
    }
    return 0;
}

static int dec_suback(struct dec *d, struct mqtt_packet *pkt)
{
    size_t i;

    if (rd_id(d, &pkt->u.suback.id) < 0)
        return -1;
    if (d->pos == d->end)
        return bad(d, d->pos, "empty return code list");
    pkt->u.suback.codes.p = d->b + d->pos;
    pkt->u.suback.codes.len = d->end - d->pos;
    for (i = d->pos; i < d->end; i++)
        if (d->b[i] > 2 && d->b[i] != 0x80)
            return bad(d, i, "bad SUBACK return code");
    d->pos = d->end;
    return 0;
}

static int dec_connack(struct dec *d, struct mqtt_packet *pkt)
{
    uint8_t f, rc;

    if (rd_u8(d, &f) < 0 || rd_u8(d, &rc) < 0)
        return -1;
    if (f & 0xFE)
        return bad(d, d->pos - 2, "reserved flags set");
    if (rc > MQTT_RC_NOT_AUTHORIZED)
        return bad(d, d->pos - 1, "bad CONNACK return code");
    if (rc != MQTT_RC_ACCEPTED && (f & 1))
        return bad(d, d->pos - 2, "session present with error code");
    pkt->u.connack.session_present = f & 1;
    pkt->u.connack.rc = rc;
    return 0;
}

/* Fixed-size bodies: the remaining length is part of the format. */
static int fixed_rl(enum mqtt_type t)
{
    switch (t) {
    case MQTT_CONNACK:
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        return 2;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
    case MQTT_DISCONNECT:
        return 0;
    default:
        return -1;
    }
}

static int dec_body(struct dec *d, struct mqtt_packet *pkt)
{
    int frl = fixed_rl(pkt->type);

    if (frl >= 0 && d->end - d->pos != (size_t)frl)
        return bad(d, 1, "bad remaining length");
    switch (pkt->type) {
    case MQTT_CONNECT:
        return dec_connect(d, pkt);
    case MQTT_CONNACK:
        return dec_connack(d, pkt);
    case MQTT_PUBLISH:
        return dec_publish(d, pkt);
    case MQTT_SUBSCRIBE:
        return dec_sublist(d, pkt, 1);
    case MQTT_UNSUBSCRIBE:
        return dec_sublist(d, pkt, 0);
    case MQTT_SUBACK:
        return dec_suback(d, pkt);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
    case MQTT_DISCONNECT:
        return 0;
    default: /* PUBACK PUBREC PUBREL PUBCOMP UNSUBACK */
        return rd_id(d, &pkt->u.id);
    }
}

int mqtt_decode(const uint8_t *buf, size_t len, size_t max_size, struct mqtt_packet *pkt,
                size_t *need, struct mqtt_err *err)
{
    struct mqtt_err dummy;
    struct dec d = {.b = buf, .err = err ? err : &dummy};
    const char *why;
    size_t rl;
    int hl;

    if (need)
        *need = 0;
    if (len == 0)
        return MQTT_MORE;
    if ((why = first_byte_problem(buf[0])) != NULL)
        return bad(&d, 0, why), MQTT_BAD;
    if ((hl = read_rl(buf, len, &rl)) < 0)
        return bad(&d, 4, "bad remaining length"), MQTT_BAD;
    if (hl == 0)
        return MQTT_MORE;
    if (max_size && (size_t)hl + rl > max_size)
        return bad(&d, 1, "packet too large"), MQTT_BAD;
    if (len < (size_t)hl + rl) {
        if (need)
            *need = (size_t)hl + rl;
        return MQTT_MORE;
    }
    memset(pkt, 0, sizeof(*pkt));
    pkt->type = (enum mqtt_type)(buf[0] >> 4);
    pkt->flags = buf[0] & 0x0F;
    pkt->size = (size_t)hl + rl;
    d.pos = (size_t)hl;
    d.end = pkt->size;
    return dec_body(&d, pkt) < 0 ? MQTT_BAD : MQTT_DONE;
}

int mqtt_sub_next(struct mqtt_buf *list, int with_qos, struct mqtt_buf *filter, uint8_t *qos)
{
    size_t n, need;

    if (list->len < 2)
        return 0;
    n = (size_t)list->p[0] << 8 | list->p[1];
    need = 2 + n + (with_qos ? 1 : 0);
    if (list->len < need)
        return 0;
    filter->p = list->p + 2;
    filter->len = n;
    if (qos)
        *qos = with_qos ? list->p[2 + n] : 0;
    list->p += need;
    list->len -= need;
    return 1;
}

int mqtt_connect_supported(const struct mqtt_connect *c)
{
    const struct mqtt_buf *pn = &c->proto_name;

    if (pn->len == 4 && memcmp(pn->p, "MQTT", 4) == 0)
        return c->level == 4;
    if (pn->len == 6 && memcmp(pn->p, "MQIsdp", 6) == 0)
        return c->level == 3;
    return 0;
}

/* ---- encoders ---- */

/* A bounded writer: overflow makes the encoder return 0. */
struct enc {
    uint8_t *o;
    size_t pos, cap;
    bool over;
};

static void put_u8(struct enc *e, uint8_t v)
{
    if (e->pos < e->cap)
        e->o[e->pos++] = v;
    else
        e->over = true;
}

static void put_u16(struct enc *e, uint16_t v)
{
    put_u8(e, (uint8_t)(v >> 8));
    put_u8(e, (uint8_t)v);
}

static void put_bytes(struct enc *e, const uint8_t *p, size_t n)
{
    if (e->cap - e->pos < n || e->over) {
        e->over = true;
        return;
    }
    if (n)
        memcpy(e->o + e->pos, p, n);
    e->pos += n;
}

/* Length-prefixed string or binary data; longer than 65535 cannot be sent. */
static void put_bin(struct enc *e, const uint8_t *p, size_t n)
{
    if (n > 65535) {
        e->over = true;
        return;
    }
    put_u16(e, (uint16_t)n);
    put_bytes(e, p, n);
}

/* First byte and the minimal remaining-length encoding. */
static void put_head(struct enc *e, uint8_t first, size_t rl)
{
    if (rl > RL_MAX) {
        e->over = true;
        return;
    }
    put_u8(e, first);
    do {
        uint8_t b = rl & 0x7F;

        rl >>= 7;
        put_u8(e, rl ? b | 0x80 : b);
    } while (rl);
}

static size_t enc_done(const struct enc *e)
{
    return e->over ? 0 : e->pos;
}

size_t mqtt_encode_connack(uint8_t *out, size_t cap, bool session_present, uint8_t rc)
{
    struct enc e = {.o = out, .cap = cap};

    put_head(&e, MQTT_CONNACK << 4, 2);
    put_u8(&e, session_present ? 1 : 0);
    put_u8(&e, rc);
    return enc_done(&e);
}

size_t mqtt_encode_ack(uint8_t *out, size_t cap, enum mqtt_type type, uint16_t id)
{
    struct enc e = {.o = out, .cap = cap};

    if (fixed_rl(type) != 2 || type == MQTT_CONNACK)
        return 0;
    put_head(&e, (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 2 : 0)), 2);
    put_u16(&e, id);
    return enc_done(&e);
}

size_t mqtt_encode_suback(uint8_t *out, size_t cap, uint16_t id, const uint8_t *codes, size_t n)
{
    struct enc e = {.o = out, .cap = cap};

    put_head(&e, MQTT_SUBACK << 4, 2 + n);
    put_u16(&e, id);
    put_bytes(&e, codes, n);
    return enc_done(&e);
}

size_t mqtt_encode_simple(uint8_t *out, size_t cap, enum mqtt_type type)
{
    struct enc e = {.o = out, .cap = cap};

    if (type != MQTT_PINGREQ && type != MQTT_PINGRESP && type != MQTT_DISCONNECT)
        return 0;
    put_head(&e, (uint8_t)(type << 4), 0);
    return enc_done(&e);
}

size_t mqtt_encode_pingresp(uint8_t *out, size_t cap)
{
    return mqtt_encode_simple(out, cap, MQTT_PINGRESP);
}

size_t mqtt_encode_publish_head(uint8_t *out, size_t cap, const uint8_t *topic, size_t tlen,
                                size_t payload_len, uint8_t qos, bool dup, bool retain, uint16_t id)
{
    struct enc e = {.o = out, .cap = cap};
    size_t rl = 2 + tlen + (qos ? 2 : 0);

    if (qos > 2 || tlen > 65535 || payload_len > RL_MAX - rl)
        return 0;
    put_head(&e, (uint8_t)(MQTT_PUBLISH << 4 | dup << 3 | qos << 1 | retain), rl + payload_len);
    put_bin(&e, topic, tlen);
    if (qos)
        put_u16(&e, id);
    return enc_done(&e);
}

/* Size of a length-prefixed field, or more than RL_MAX when it cannot be sent. */
static size_t bin_size(const struct mqtt_buf *b)
{
    return b->len > 65535 ? RL_MAX + 1 : 2 + b->len;
}

size_t mqtt_encode_connect(uint8_t *out, size_t cap, const struct mqtt_connect *c)
{
    static const struct mqtt_buf mqtt = {(const uint8_t *)"MQTT", 4};
    const struct mqtt_buf *pn = c->proto_name.p ? &c->proto_name : &mqtt;
    struct enc e = {.o = out, .cap = cap};
    size_t rl = bin_size(pn) + 4 + bin_size(&c->client_id);
    uint8_t flags = (uint8_t)(c->clean << 1 | c->will << 2 | (c->will_qos & 3) << 3 |
                              c->will_retain << 5 | c->has_password << 6 | c->has_username << 7);

    if (c->will)
        rl += bin_size(&c->will_topic) + bin_size(&c->will_payload);
    if (c->has_username)
        rl += bin_size(&c->username);
    if (c->has_password)
        rl += bin_size(&c->password);
    put_head(&e, MQTT_CONNECT << 4, rl);
    put_bin(&e, pn->p, pn->len);
    put_u8(&e, c->level ? c->level : 4);
    put_u8(&e, flags);
    put_u16(&e, c->keepalive);
    put_bin(&e, c->client_id.p, c->client_id.len);
    if (c->will) {
        put_bin(&e, c->will_topic.p, c->will_topic.len);
        put_bin(&e, c->will_payload.p, c->will_payload.len);
    }
    if (c->has_username)
        put_bin(&e, c->username.p, c->username.len);
    if (c->has_password)
        put_bin(&e, c->password.p, c->password.len);
    return enc_done(&e);
}

/* SUBSCRIBE (with_qos; qos NULL asks QoS 0 throughout) or UNSUBSCRIBE. */
static size_t encode_sublist(uint8_t *out, size_t cap, uint8_t first, uint16_t id,
                             const struct mqtt_buf *filters, int with_qos, const uint8_t *qos,
                             size_t n)
{
    struct enc e = {.o = out, .cap = cap};
    size_t rl = 2, i;

    for (i = 0; i < n && rl <= RL_MAX; i++)
        rl += bin_size(&filters[i]) + (with_qos ? 1 : 0);
    put_head(&e, first, rl);
    put_u16(&e, id);
    for (i = 0; i < n && !e.over; i++) {
        put_bin(&e, filters[i].p, filters[i].len);
        if (with_qos)
            put_u8(&e, qos ? qos[i] : 0);
    }
    return enc_done(&e);
}

size_t mqtt_encode_subscribe(uint8_t *out, size_t cap, uint16_t id, const struct mqtt_buf *filters,
                             const uint8_t *qos, size_t n)
{
    return encode_sublist(out, cap, MQTT_SUBSCRIBE << 4 | 2, id, filters, 1, qos, n);
}

size_t mqtt_encode_unsubscribe(uint8_t *out, size_t cap, uint16_t id,
                               const struct mqtt_buf *filters, size_t n)
{
    return encode_sublist(out, cap, MQTT_UNSUBSCRIBE << 4 | 2, id, filters, 0, NULL, n);
}
