/*
 * mqtt_codec.h - MQTT 3.1.1 (OASIS) packet decoder and encoders.
 *
 * Zero-copy: every struct mqtt_buf a decoded packet holds points into the
 * caller's input buffer, so it is valid only as long as that buffer is.
 * The decoder is strict: anything the standard calls malformed is MQTT_BAD
 * with a short static reason and the byte offset of the problem; the
 * caller closes the connection. Pure functions, no allocation, no global
 * state: safe from any thread.
 *
 * CONNECT with an unknown protocol level decodes (level and proto_name are
 * exposed) so that the broker can answer CONNACK rc 1 as the standard asks.
 */
#ifndef BROKER_MQTT_CODEC_H
#define BROKER_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mqtt_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK,
    MQTT_PUBLISH,
    MQTT_PUBACK,
    MQTT_PUBREC,
    MQTT_PUBREL,
    MQTT_PUBCOMP,
    MQTT_SUBSCRIBE,
    MQTT_SUBACK,
    MQTT_UNSUBSCRIBE,
    MQTT_UNSUBACK,
    MQTT_PINGREQ,
    MQTT_PINGRESP,
    MQTT_DISCONNECT
};

/* CONNACK return codes. */
enum {
    MQTT_RC_ACCEPTED,
    MQTT_RC_BAD_PROTOCOL,
    MQTT_RC_ID_REJECTED,
    MQTT_RC_UNAVAILABLE,
    MQTT_RC_BAD_USER_PASS,
    MQTT_RC_NOT_AUTHORIZED
};

struct mqtt_buf {
    const uint8_t *p;
    size_t len;
};

struct mqtt_connect {
    struct mqtt_buf proto_name; /* "MQTT" (level 4) or "MQIsdp" (level 3) */
    uint8_t level;
    bool clean, will, will_retain, has_username, has_password;
    uint8_t will_qos;
    uint16_t keepalive;
    struct mqtt_buf client_id, will_topic, will_payload, username, password;
};

struct mqtt_publish {
    struct mqtt_buf topic, payload;
    uint16_t id; /* 0 for QoS 0 */
    uint8_t qos;
    bool dup, retain;
};

/* SUBSCRIBE/UNSUBSCRIBE: list is the validated payload, walk it with mqtt_sub_next(). */
struct mqtt_sublist {
    uint16_t id;
    struct mqtt_buf list;
    size_t count;
};

struct mqtt_packet {
    enum mqtt_type type;
    uint8_t flags; /* low nibble of the first byte */
    size_t size;   /* bytes consumed: fixed header + remaining length */
    union {
        struct mqtt_connect connect;
        struct mqtt_publish publish;
        struct mqtt_sublist sub;
        uint16_t id; /* PUBACK PUBREC PUBREL PUBCOMP UNSUBACK */
        struct {
            bool session_present;
            uint8_t rc;
        } connack;
        struct {
            uint16_t id;
            struct mqtt_buf codes;
        } suback;
    } u;
};

enum mqtt_status { MQTT_DONE = 0, MQTT_MORE = 1, MQTT_BAD = -1 };

struct mqtt_err {
    size_t offset;      /* from the start of the packet */
    const char *reason; /* static string, e.g. "bad remaining length" */
};

/* Decode one packet from buf[0..len): MQTT_DONE (pkt filled, pkt->size bytes used), MQTT_MORE
 * (need more bytes; *need set to the total packet size once the fixed header is complete,
 * else 0), MQTT_BAD (err filled). Packets larger than max_size are MQTT_BAD
 * ("packet too large") as soon as the fixed header says so. Strict 3.1.1 validation.
 * A bad first byte (type, flags, PUBLISH QoS/DUP) is MQTT_BAD as soon as it arrives.
 * max_size 0 means no limit beyond the protocol's; need and err may be NULL.
 * CONNECT: the protocol name must be "MQTT" or "MQIsdp"; at a level other than 3 or 4 only
 * proto_name and level are filled (DONE) and the server answers CONNACK rc 1: check
 * mqtt_connect_supported(). */
int mqtt_decode(const uint8_t *buf, size_t len, size_t max_size, struct mqtt_packet *pkt,
                size_t *need, struct mqtt_err *err);

/* Iterate a validated SUBSCRIBE (with_qos=1) / UNSUBSCRIBE list: 1 = got one, 0 = end.
 * Consumes list as it goes (pass a copy to iterate again). */
int mqtt_sub_next(struct mqtt_buf *list, int with_qos, struct mqtt_buf *filter, uint8_t *qos);

/* 1 for ("MQTT", 4) and ("MQIsdp", 3); otherwise reply CONNACK MQTT_RC_BAD_PROTOCOL. */
int mqtt_connect_supported(const struct mqtt_connect *c);

int mqtt_topic_name_valid(const uint8_t *p, size_t len);   /* no wildcards, non-empty, UTF-8 */
int mqtt_topic_filter_valid(const uint8_t *p, size_t len); /* + and # rules */

/* Encoders return the bytes written, 0 when cap is too small (or the input cannot be encoded). */
size_t mqtt_encode_connack(uint8_t *out, size_t cap, bool session_present, uint8_t rc);
/* PUBACK..PUBCOMP, UNSUBACK; PUBREL gets flags 2 */
size_t mqtt_encode_ack(uint8_t *out, size_t cap, enum mqtt_type type, uint16_t id);
size_t mqtt_encode_suback(uint8_t *out, size_t cap, uint16_t id, const uint8_t *codes, size_t n);
size_t mqtt_encode_pingresp(uint8_t *out, size_t cap);
/* PUBLISH fixed header + topic + packet id (qos>0); the payload follows separately (writev). */
size_t mqtt_encode_publish_head(uint8_t *out, size_t cap, const uint8_t *topic, size_t tlen,
                                size_t payload_len, uint8_t qos, bool dup, bool retain,
                                uint16_t id);
#define MQTT_PUBLISH_HEAD_MAX (5 + 2 + 65535 + 2)

/* Client-side encoders (tests, benches, fuzz seeds). CONNECT: proto_name.p NULL sends "MQTT",
 * level 0 sends 4. SUBSCRIBE: qos NULL asks QoS 0 for every filter. */
size_t mqtt_encode_connect(uint8_t *out, size_t cap, const struct mqtt_connect *c);
size_t mqtt_encode_subscribe(uint8_t *out, size_t cap, uint16_t id, const struct mqtt_buf *filters,
                             const uint8_t *qos, size_t n);
size_t mqtt_encode_unsubscribe(uint8_t *out, size_t cap, uint16_t id,
                               const struct mqtt_buf *filters, size_t n);
/* PINGREQ, PINGRESP, DISCONNECT */
size_t mqtt_encode_simple(uint8_t *out, size_t cap, enum mqtt_type type);

#endif
