/*
 * test_mqtt_codec.c - the broker's MQTT 3.1.1 codec: every packet type
 * round-trips through the encoders and the decoder, encodings match the
 * standard's bytes, decoding works one byte at a time and packet by packet
 * from one buffer, max_size is enforced from the fixed header, and every
 * validation rule rejects its packet with its reason and offset.
 */
#include "config.h"

#include <check.h>
#include <string.h>

#include "mqtt_codec.h"
#include "unit.h"

#define B(s) ((struct mqtt_buf){(const uint8_t *)(s), sizeof(s) - 1})

static uint8_t out[4096];

static int buf_eq(struct mqtt_buf b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.p, s, b.len) == 0;
}

/* Decode exactly one complete packet of n bytes. */
static struct mqtt_packet decode_ok(const uint8_t *p, size_t n)
{
    struct mqtt_packet pkt;
    struct mqtt_err err = {0, NULL};
    size_t need = 99;
    int rc = mqtt_decode(p, n, 0, &pkt, &need, &err);

    ck_assert_msg(rc == MQTT_DONE, "decode: %d (%s at %zu)", rc, err.reason ? err.reason : "",
                  err.offset);
    ck_assert_uint_eq(pkt.size, n);
    return pkt;
}

START_TEST(connect_round_trips_with_every_field)
{
    struct mqtt_connect c = {.clean = true,
                             .will = true,
                             .will_qos = 2,
                             .will_retain = true,
                             .has_username = true,
                             .has_password = true,
                             .keepalive = 60,
                             .client_id = B("sensor-7"),
                             .will_topic = B("dead/sensor-7"),
                             .will_payload = B("gone\0x"),
                             .username = B("bob"),
                             .password = B("s\0cret")};
    size_t n = mqtt_encode_connect(out, sizeof out, &c);
    struct mqtt_packet p = decode_ok(out, n);
    struct mqtt_connect *d = &p.u.connect;

    ck_assert_int_eq(p.type, MQTT_CONNECT);
    ck_assert(buf_eq(d->proto_name, "MQTT"));
    ck_assert_uint_eq(d->level, 4);
    ck_assert(mqtt_connect_supported(d));
    ck_assert(d->clean && d->will && d->will_retain && d->has_username && d->has_password);
    ck_assert_uint_eq(d->will_qos, 2);
    ck_assert_uint_eq(d->keepalive, 60);
    ck_assert(buf_eq(d->client_id, "sensor-7"));
    ck_assert(buf_eq(d->will_topic, "dead/sensor-7"));
    ck_assert_uint_eq(d->will_payload.len, 6);
    ck_assert(memcmp(d->will_payload.p, "gone\0x", 6) == 0);
    ck_assert(buf_eq(d->username, "bob"));
    ck_assert_uint_eq(d->password.len, 6);
    /* Views point into the input buffer (zero-copy). */
    ck_assert(d->client_id.p > out && d->client_id.p < out + n);
}
END_TEST

START_TEST(connect_minimal_and_mqisdp_decode)
{
    struct mqtt_connect c = {.proto_name = B("MQIsdp"), .level = 3};
    size_t n = mqtt_encode_connect(out, sizeof out, &c);
    struct mqtt_packet p = decode_ok(out, n);

    ck_assert(buf_eq(p.u.connect.proto_name, "MQIsdp"));
    ck_assert_uint_eq(p.u.connect.level, 3);
    ck_assert(mqtt_connect_supported(&p.u.connect));
    ck_assert_uint_eq(p.u.connect.client_id.len, 0);
    ck_assert(!p.u.connect.clean && !p.u.connect.will && !p.u.connect.has_username);
}
END_TEST

/* An unknown level decodes (the server answers CONNACK rc 1), even when
 * the rest is laid out for another protocol version. */
START_TEST(connect_unknown_level_decodes_for_rc1)
{
    static const uint8_t v5[] = {0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0, 0, 0};
    struct mqtt_connect c = {.level = 3};
    struct mqtt_packet p = decode_ok(v5, sizeof v5);
    size_t n;

    ck_assert_uint_eq(p.u.connect.level, 5);
    ck_assert(!mqtt_connect_supported(&p.u.connect));
    n = mqtt_encode_connect(out, sizeof out, &c); /* "MQTT" at level 3: a mismatch */
    p = decode_ok(out, n);
    ck_assert(!mqtt_connect_supported(&p.u.connect));
}
END_TEST

START_TEST(publish_round_trips_at_each_qos)
{
    static const char payload[] = "hello, world";
    for (uint8_t qos = 0; qos <= 2; qos++) {
        size_t h = mqtt_encode_publish_head(out, sizeof out, (const uint8_t *)"a/b/c", 5,
                                            sizeof payload, qos, qos > 0, true, 77);
        ck_assert_uint_gt(h, 0);
        memcpy(out + h, payload, sizeof payload);
        struct mqtt_packet p = decode_ok(out, h + sizeof payload);
        ck_assert_int_eq(p.type, MQTT_PUBLISH);
        ck_assert_uint_eq(p.u.publish.qos, qos);
        ck_assert_int_eq(p.u.publish.dup, qos > 0);
        ck_assert(p.u.publish.retain);
        ck_assert_uint_eq(p.u.publish.id, qos ? 77 : 0);
        ck_assert(buf_eq(p.u.publish.topic, "a/b/c"));
        ck_assert_uint_eq(p.u.publish.payload.len, sizeof payload);
        ck_assert(p.u.publish.payload.p == out + h);
    }
    /* An empty payload (clears a retained message) is fine. */
    size_t h = mqtt_encode_publish_head(out, sizeof out, (const uint8_t *)"t", 1, 0, 0, 0, 1, 0);
    ck_assert_uint_eq(decode_ok(out, h).u.publish.payload.len, 0);
}
END_TEST

START_TEST(subscribe_and_unsubscribe_round_trip)
{
    const struct mqtt_buf f[] = {B("a/+/c"), B("#"), B("$SYS/broker/#")};
    const uint8_t q[] = {0, 1, 2};
    struct mqtt_buf list, filter;
    uint8_t qos;
    size_t n = mqtt_encode_subscribe(out, sizeof out, 9, f, q, 3);
    struct mqtt_packet p = decode_ok(out, n);

    ck_assert_int_eq(p.type, MQTT_SUBSCRIBE);
    ck_assert_uint_eq(p.u.sub.id, 9);
    ck_assert_uint_eq(p.u.sub.count, 3);
    list = p.u.sub.list;
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(mqtt_sub_next(&list, 1, &filter, &qos), 1);
        ck_assert(filter.len == f[i].len && memcmp(filter.p, f[i].p, f[i].len) == 0);
        ck_assert_uint_eq(qos, q[i]);
    }
    ck_assert_int_eq(mqtt_sub_next(&list, 1, &filter, &qos), 0);

    n = mqtt_encode_unsubscribe(out, sizeof out, 10, f, 2);
    p = decode_ok(out, n);
    ck_assert_int_eq(p.type, MQTT_UNSUBSCRIBE);
    ck_assert_uint_eq(p.u.sub.id, 10);
    ck_assert_uint_eq(p.u.sub.count, 2);
    list = p.u.sub.list;
    ck_assert_int_eq(mqtt_sub_next(&list, 0, &filter, NULL), 1);
    ck_assert(buf_eq(filter, "a/+/c"));
    ck_assert_int_eq(mqtt_sub_next(&list, 0, &filter, NULL), 1);
    ck_assert(buf_eq(filter, "#"));
    ck_assert_int_eq(mqtt_sub_next(&list, 0, &filter, NULL), 0);
}
END_TEST

START_TEST(acks_and_simple_packets_round_trip)
{
    const enum mqtt_type acks[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP,
                                   MQTT_UNSUBACK};
    const enum mqtt_type simple[] = {MQTT_PINGREQ, MQTT_PINGRESP, MQTT_DISCONNECT};
    const uint8_t codes[] = {0, 2, 0x80};
    struct mqtt_packet p;

    for (size_t i = 0; i < 5; i++) {
        p = decode_ok(out, mqtt_encode_ack(out, sizeof out, acks[i], 0xBEEF));
        ck_assert_int_eq(p.type, acks[i]);
        ck_assert_uint_eq(p.u.id, 0xBEEF);
    }
    for (size_t i = 0; i < 3; i++)
        ck_assert_int_eq(decode_ok(out, mqtt_encode_simple(out, sizeof out, simple[i])).type,
                         simple[i]);
    p = decode_ok(out, mqtt_encode_connack(out, sizeof out, true, MQTT_RC_ACCEPTED));
    ck_assert(p.type == MQTT_CONNACK && p.u.connack.session_present && p.u.connack.rc == 0);
    p = decode_ok(out, mqtt_encode_connack(out, sizeof out, false, MQTT_RC_NOT_AUTHORIZED));
    ck_assert(!p.u.connack.session_present && p.u.connack.rc == MQTT_RC_NOT_AUTHORIZED);
    p = decode_ok(out, mqtt_encode_suback(out, sizeof out, 5, codes, 3));
    ck_assert_int_eq(p.type, MQTT_SUBACK);
    ck_assert_uint_eq(p.u.suback.id, 5);
    ck_assert(p.u.suback.codes.len == 3 && memcmp(p.u.suback.codes.p, codes, 3) == 0);
}
END_TEST

#define EXPECT_BYTES(n, ...)                              \
    do {                                                  \
        static const uint8_t want_[] = {__VA_ARGS__};     \
        ck_assert_uint_eq((n), sizeof want_);             \
        ck_assert(memcmp(out, want_, sizeof want_) == 0); \
    } while (0)

START_TEST(server_encodings_are_byte_exact)
{
    const uint8_t codes[] = {0, 1, 0x80};

    EXPECT_BYTES(mqtt_encode_connack(out, sizeof out, true, 0), 0x20, 0x02, 0x01, 0x00);
    EXPECT_BYTES(mqtt_encode_connack(out, sizeof out, false, 5), 0x20, 0x02, 0x00, 0x05);
    EXPECT_BYTES(mqtt_encode_ack(out, sizeof out, MQTT_PUBACK, 0x1234), 0x40, 0x02, 0x12, 0x34);
    EXPECT_BYTES(mqtt_encode_ack(out, sizeof out, MQTT_PUBREC, 1), 0x50, 0x02, 0x00, 0x01);
    EXPECT_BYTES(mqtt_encode_ack(out, sizeof out, MQTT_PUBREL, 1), 0x62, 0x02, 0x00, 0x01);
    EXPECT_BYTES(mqtt_encode_ack(out, sizeof out, MQTT_PUBCOMP, 1), 0x70, 0x02, 0x00, 0x01);
    EXPECT_BYTES(mqtt_encode_ack(out, sizeof out, MQTT_UNSUBACK, 2), 0xB0, 0x02, 0x00, 0x02);
    EXPECT_BYTES(mqtt_encode_suback(out, sizeof out, 10, codes, 3), 0x90, 0x05, 0x00, 0x0A, 0x00,
                 0x01, 0x80);
    EXPECT_BYTES(mqtt_encode_pingresp(out, sizeof out), 0xD0, 0x00);
    EXPECT_BYTES(mqtt_encode_simple(out, sizeof out, MQTT_PINGREQ), 0xC0, 0x00);
    EXPECT_BYTES(mqtt_encode_simple(out, sizeof out, MQTT_DISCONNECT), 0xE0, 0x00);
    /* Spec 3.3.2.3: topic "a/b", packet id 10; QoS 1, 5 payload bytes. */
    EXPECT_BYTES(
        mqtt_encode_publish_head(out, sizeof out, (const uint8_t *)"a/b", 3, 5, 1, 0, 0, 10), 0x32,
        0x0C, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A);
    EXPECT_BYTES(
        mqtt_encode_publish_head(out, sizeof out, (const uint8_t *)"a/b", 3, 0, 2, 1, 1, 10), 0x3D,
        0x07, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A);
    EXPECT_BYTES(
        mqtt_encode_publish_head(out, sizeof out, (const uint8_t *)"a/b", 3, 0, 0, 0, 0, 10), 0x30,
        0x05, 0x00, 0x03, 'a', '/', 'b');
}
END_TEST

/* Remaining-length boundaries from the table in spec 2.2.3. */
START_TEST(remaining_length_boundaries)
{
    const struct {
        size_t rl;
        uint8_t enc[4];
        size_t n;
    } t[] = {
        {0 + 5, {5}, 1},
        {127, {0x7F}, 1},
        {128, {0x80, 0x01}, 2},
        {321, {0xC1, 0x02}, 2},
        {16383, {0xFF, 0x7F}, 2},
        {16384, {0x80, 0x80, 0x01}, 3},
        {2097151, {0xFF, 0xFF, 0x7F}, 3},
        {2097152, {0x80, 0x80, 0x80, 0x01}, 4},
        {268435455, {0xFF, 0xFF, 0xFF, 0x7F}, 4},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        /* Topic "a/b" at QoS 0 takes 5 bytes; the payload makes up the rest. */
        size_t h = mqtt_encode_publish_head(out, sizeof out, (const uint8_t *)"a/b", 3, t[i].rl - 5,
                                            0, 0, 0, 0);
        ck_assert_uint_eq(h, 1 + t[i].n + 5);
        ck_assert_msg(memcmp(out + 1, t[i].enc, t[i].n) == 0, "rl %zu", t[i].rl);
    }
    ck_assert_uint_eq(mqtt_encode_publish_head(out, sizeof out, (const uint8_t *)"a/b", 3,
                                               268435455 - 5 + 1, 0, 0, 0, 0),
                      0);
}
END_TEST

/* Spec 3.1.2.10: the variable header of a CONNECT with keepalive 10 and
 * flags username, password, will QoS 1, will, clean session. */
START_TEST(connect_variable_header_matches_spec_example)
{
    static const uint8_t want[] = {0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xCE, 0x00, 0x0A};
    struct mqtt_connect c = {.clean = true,
                             .will = true,
                             .will_qos = 1,
                             .has_username = true,
                             .has_password = true,
                             .keepalive = 10,
                             .client_id = B("c"),
                             .will_topic = B("w"),
                             .will_payload = B(""),
                             .username = B("u"),
                             .password = B("p")};
    size_t n = mqtt_encode_connect(out, sizeof out, &c);

    ck_assert_uint_eq(n, 2 + 10 + 3 + 3 + 2 + 3 + 3);
    ck_assert_uint_eq(out[0], 0x10);
    ck_assert_uint_eq(out[1], n - 2);
    ck_assert(memcmp(out + 2, want, sizeof want) == 0);
}
END_TEST

START_TEST(encoders_refuse_small_buffers)
{
    const struct mqtt_buf f[] = {B("a/b")};
    struct mqtt_connect c = {.client_id = B("abc")};
    size_t n;

    n = mqtt_encode_connect(out, sizeof out, &c);
    ck_assert_uint_eq(mqtt_encode_connect(out, n - 1, &c), 0);
    n = mqtt_encode_subscribe(out, sizeof out, 1, f, NULL, 1);
    ck_assert_uint_eq(out[n - 1], 0); /* qos NULL asks QoS 0 */
    ck_assert_uint_eq(mqtt_encode_subscribe(out, n - 1, 1, f, NULL, 1), 0);
    n = mqtt_encode_unsubscribe(out, sizeof out, 1, f, 1);
    ck_assert_uint_eq(mqtt_encode_unsubscribe(out, n - 1, 1, f, 1), 0);
    ck_assert_uint_eq(mqtt_encode_connack(out, 3, false, 0), 0);
    ck_assert_uint_eq(mqtt_encode_ack(out, 3, MQTT_PUBACK, 1), 0);
    ck_assert_uint_eq(mqtt_encode_suback(out, 4, 1, (const uint8_t *)"\0", 1), 0);
    ck_assert_uint_eq(mqtt_encode_pingresp(out, 1), 0);
    ck_assert_uint_eq(mqtt_encode_publish_head(out, 6, (const uint8_t *)"a/b", 3, 0, 0, 0, 0, 0),
                      0);
    ck_assert_uint_eq(mqtt_encode_publish_head(out, 100, (const uint8_t *)"a", 1, 0, 3, 0, 0, 1),
                      0);
    /* Types the function does not encode. */
    ck_assert_uint_eq(mqtt_encode_ack(out, sizeof out, MQTT_CONNACK, 1), 0);
    ck_assert_uint_eq(mqtt_encode_ack(out, sizeof out, MQTT_PUBLISH, 1), 0);
    ck_assert_uint_eq(mqtt_encode_simple(out, sizeof out, MQTT_CONNECT), 0);
}
END_TEST

/* One byte at a time: MQTT_MORE with need 0 until the fixed header is
 * complete, then need = the packet size, then DONE. */
START_TEST(incremental_decoding_one_byte_at_a_time)
{
    static uint8_t payload[300];
    size_t h = mqtt_encode_publish_head(out, sizeof out, (const uint8_t *)"x/y", 3, sizeof payload,
                                        1, 0, 0, 3);
    size_t total = h + sizeof payload, need;
    struct mqtt_packet p;
    struct mqtt_err err;

    memcpy(out + h, payload, sizeof payload);
    ck_assert_uint_eq(out[2] & 0x80, 0); /* a 2-byte remaining length: header is 3 bytes */
    for (size_t i = 0; i < total; i++) {
        ck_assert_int_eq(mqtt_decode(out, i, 0, &p, &need, &err), MQTT_MORE);
        ck_assert_uint_eq(need, i < 3 ? 0 : total);
    }
    ck_assert_int_eq(mqtt_decode(out, total, 0, &p, &need, &err), MQTT_DONE);
    ck_assert_uint_eq(p.size, total);
    ck_assert_uint_eq(p.u.publish.id, 3);
}
END_TEST

START_TEST(max_size_is_enforced_from_the_fixed_header)
{
    size_t h = mqtt_encode_publish_head(out, sizeof out, (const uint8_t *)"t", 1, 95, 0, 0, 0, 0);
    size_t total = h + 95, need = 0;
    struct mqtt_packet p;
    struct mqtt_err err = {0, NULL};

    ck_assert_uint_eq(total, 100);
    memset(out + h, 'x', 95);
    /* Two bytes (the fixed header) are enough to refuse it. */
    ck_assert_int_eq(mqtt_decode(out, 2, 99, &p, &need, &err), MQTT_BAD);
    ck_assert_str_eq(err.reason, "packet too large");
    ck_assert_int_eq(mqtt_decode(out, 2, 100, &p, &need, &err), MQTT_MORE);
    ck_assert_uint_eq(need, 100);
    ck_assert_int_eq(mqtt_decode(out, total, 100, &p, &need, &err), MQTT_DONE);
    ck_assert_int_eq(mqtt_decode(out, total, 0, &p, &need, &err), MQTT_DONE);
}
END_TEST

START_TEST(multi_packet_buffer_decodes_packet_by_packet)
{
    static uint8_t buf[1024];
    const struct mqtt_buf f[] = {B("a/#")};
    struct mqtt_connect c = {.clean = true, .client_id = B("multi")};
    const enum mqtt_type want[] = {MQTT_CONNECT, MQTT_SUBSCRIBE, MQTT_PUBLISH,
                                   MQTT_PUBACK,  MQTT_PINGREQ,   MQTT_DISCONNECT};
    size_t n = 0, off = 0, i = 0, need;
    struct mqtt_packet p;
    struct mqtt_err err;

    n += mqtt_encode_connect(buf + n, sizeof buf - n, &c);
    n += mqtt_encode_subscribe(buf + n, sizeof buf - n, 1, f, (const uint8_t[]){1}, 1);
    n +=
        mqtt_encode_publish_head(buf + n, sizeof buf - n, (const uint8_t *)"a/b", 3, 2, 1, 0, 0, 2);
    buf[n++] = 'h', buf[n++] = 'i';
    n += mqtt_encode_ack(buf + n, sizeof buf - n, MQTT_PUBACK, 2);
    n += mqtt_encode_simple(buf + n, sizeof buf - n, MQTT_PINGREQ);
    n += mqtt_encode_simple(buf + n, sizeof buf - n, MQTT_DISCONNECT);
    while (off < n) {
        ck_assert_int_eq(mqtt_decode(buf + off, n - off, 0, &p, &need, &err), MQTT_DONE);
        ck_assert_uint_lt(i, 6);
        ck_assert_int_eq(p.type, want[i++]);
        if (p.type == MQTT_PUBLISH)
            ck_assert(buf_eq(p.u.publish.payload, "hi"));
        off += p.size;
    }
    ck_assert_uint_eq(off, n);
    ck_assert_uint_eq(i, 6);
    ck_assert_int_eq(mqtt_decode(buf + off, 0, 0, &p, &need, &err), MQTT_MORE);
}
END_TEST

/* ---- every validation rule, one loop test per rule ---- */

struct bad_case {
    const char *name;
    uint8_t b[40];
    size_t n;
    const char *reason;
    size_t offset;
};

/* A CONNECT for client "c" with the given connect flags (at offset 9). */
#define CONNECT_FLAGS(f) {0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 4, f, 0, 0, 0, 1, 'c'}, 15

static const struct bad_case bad_cases[] = {
    {"type 0", {0x00, 0x00}, 2, "bad packet type", 0},
    {"type 15", {0xF0, 0x00}, 2, "bad packet type", 0},
    {"fifth length byte", {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, 6, "bad remaining length", 4},
    {"PUBREL flags 0", {0x60, 0x02, 0, 1}, 4, "reserved flags set", 0},
    {"SUBSCRIBE flags 0", {0x80, 0x06, 0, 1, 0, 1, 'a', 0}, 8, "reserved flags set", 0},
    {"UNSUBSCRIBE flags 0", {0xA0, 0x05, 0, 1, 0, 1, 'a'}, 7, "reserved flags set", 0},
    {"PUBACK flags 2", {0x42, 0x02, 0, 1}, 4, "reserved flags set", 0},
    {"CONNECT flags 1", {0x11, 0x00}, 2, "reserved flags set", 0},
    {"PINGREQ flags 1", {0xC1, 0x00}, 2, "reserved flags set", 0},
    {"PUBLISH QoS 3", {0x36, 0x05, 0, 1, 'a', 0, 1}, 7, "bad QoS", 0},
    {"DUP on QoS 0", {0x38, 0x03, 0, 1, 'a'}, 5, "DUP set on QoS 0", 0},
    {"PUBLISH id 0", {0x32, 0x05, 0, 1, 'a', 0, 0}, 7, "packet id 0", 5},
    {"PUBACK id 0", {0x40, 0x02, 0, 0}, 4, "packet id 0", 2},
    {"UNSUBACK id 0", {0xB0, 0x02, 0, 0}, 4, "packet id 0", 2},
    {"SUBSCRIBE id 0", {0x82, 0x06, 0, 0, 0, 1, 'a', 0}, 8, "packet id 0", 2},
    {"topic with +", {0x30, 0x05, 0, 3, 'a', '/', '+'}, 7, "topic contains wildcard", 6},
    {"topic with #", {0x30, 0x03, 0, 1, '#'}, 5, "topic contains wildcard", 4},
    {"empty topic", {0x30, 0x02, 0, 0}, 4, "empty topic", 2},
    {"overlong NUL in topic", {0x30, 0x04, 0, 2, 0xC0, 0x80}, 6, "invalid UTF-8 in topic", 4},
    {"U+0000 in topic", {0x30, 0x04, 0, 2, 'a', 0x00}, 6, "invalid UTF-8 in topic", 5},
    {"surrogate in topic", {0x30, 0x05, 0, 3, 0xED, 0xA0, 0x80}, 7, "invalid UTF-8 in topic", 4},
    {"past U+10FFFF", {0x30, 0x06, 0, 4, 0xF4, 0x90, 0x80, 0x80}, 8, "invalid UTF-8 in topic", 4},
    {"truncated sequence", {0x30, 0x04, 0, 2, 'a', 0xE2}, 6, "invalid UTF-8 in topic", 5},
    {"bare continuation", {0x30, 0x03, 0, 1, 0x80}, 5, "invalid UTF-8 in topic", 4},
    {"topic past the end", {0x30, 0x03, 0, 5, 'a'}, 5, "string exceeds packet", 2},
    {"filter a+", {0x82, 0x07, 0, 1, 0, 2, 'a', '+', 0}, 9, "misplaced + in topic filter", 7},
    {"filter a/#/b",
     {0x82, 0x0A, 0, 1, 0, 5, 'a', '/', '#', '/', 'b', 0},
     12,
     "misplaced # in topic filter",
     8},
    {"filter a#", {0xA2, 0x06, 0, 1, 0, 2, 'a', '#'}, 8, "misplaced # in topic filter", 7},
    {"empty filter", {0x82, 0x05, 0, 1, 0, 0, 0}, 7, "empty topic filter", 4},
    {"bad UTF-8 filter", {0x82, 0x06, 0, 1, 0, 1, 0xFF, 0}, 8, "invalid UTF-8 in topic filter", 6},
    {"empty SUBSCRIBE", {0x82, 0x02, 0, 1}, 4, "empty subscription list", 4},
    {"empty UNSUBSCRIBE", {0xA2, 0x02, 0, 1}, 4, "empty subscription list", 4},
    {"QoS byte 0x04", {0x82, 0x06, 0, 1, 0, 1, 'a', 0x04}, 8, "reserved bits in requested QoS", 7},
    {"requested QoS 3", {0x82, 0x06, 0, 1, 0, 1, 'a', 3}, 8, "bad requested QoS", 7},
    {"missing QoS byte", {0x82, 0x05, 0, 1, 0, 1, 'a'}, 7, "packet too short", 7},
    {"protocol MQTX",
     {0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 0, 0, 1, 'c'},
     15,
     "bad protocol name",
     4},
    {"reserved connect flag", CONNECT_FLAGS(0x03), "reserved connect flag set", 9},
    {"will QoS without will", CONNECT_FLAGS(0x08), "will flags without will", 9},
    {"will retain without will", CONNECT_FLAGS(0x20), "will flags without will", 9},
    {"will QoS 3", CONNECT_FLAGS(0x1C), "bad will QoS", 9},
    {"password without username", CONNECT_FLAGS(0x40), "password without username", 9},
    {"client id not UTF-8",
     {0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 1, 0xC1},
     15,
     "invalid UTF-8 in client id",
     14},
    {"will topic wildcard",
     {0x10, 0x12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 0, 0, 1, 'c', 0, 1, '#', 0, 0},
     20,
     "invalid will topic",
     17},
    {"username not UTF-8",
     {0x10, 0x10, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x82, 0, 0, 0, 1, 'c', 0, 1, 0xFE},
     18,
     "invalid UTF-8 in username",
     17},
    {"CONNECT trailing bytes",
     {0x10, 0x0E, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 1, 'c', 'x'},
     16,
     "trailing bytes in packet",
     15},
    {"CONNECT missing password",
     {0x10, 0x10, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 0, 0, 1, 'c', 0, 1, 'u'},
     18,
     "packet too short",
     18},
    {"PINGREQ length 1", {0xC0, 0x01, 0}, 3, "bad remaining length", 1},
    {"DISCONNECT length 1", {0xE0, 0x01, 0}, 3, "bad remaining length", 1},
    {"PUBACK length 3", {0x40, 0x03, 0, 1, 0}, 5, "bad remaining length", 1},
    {"PUBREL length 1", {0x62, 0x01, 0}, 3, "bad remaining length", 1},
    {"CONNACK reserved bits", {0x20, 0x02, 0x02, 0}, 4, "reserved flags set", 2},
    {"CONNACK rc 6", {0x20, 0x02, 0, 6}, 4, "bad CONNACK return code", 3},
    {"CONNACK session on error", {0x20, 0x02, 1, 5}, 4, "session present with error code", 2},
    {"SUBACK code 3", {0x90, 0x04, 0, 1, 0, 3}, 6, "bad SUBACK return code", 5},
    {"SUBACK empty", {0x90, 0x02, 0, 1}, 4, "empty return code list", 4},
};

START_TEST(each_rule_rejects_with_reason_and_offset)
{
    const struct bad_case *c = &bad_cases[_i];
    struct mqtt_packet p;
    struct mqtt_err err = {0, NULL};
    size_t need;
    int rc = mqtt_decode(c->b, c->n, 0, &p, &need, &err);

    ck_assert_msg(rc == MQTT_BAD, "%s: decode returned %d", c->name, rc);
    ck_assert_msg(strcmp(err.reason, c->reason) == 0, "%s: reason '%s', want '%s'", c->name,
                  err.reason, c->reason);
    ck_assert_msg(err.offset == c->offset, "%s: offset %zu, want %zu", c->name, err.offset,
                  c->offset);
}
END_TEST

/* The first byte is judged as soon as it arrives. */
START_TEST(bad_first_byte_is_refused_before_the_rest)
{
    struct mqtt_packet p;
    struct mqtt_err err;
    size_t need;

    ck_assert_int_eq(mqtt_decode((const uint8_t[]){0x36}, 1, 0, &p, &need, &err), MQTT_BAD);
    ck_assert_str_eq(err.reason, "bad QoS");
    ck_assert_int_eq(mqtt_decode((const uint8_t[]){0x30}, 1, 0, &p, &need, &err), MQTT_MORE);
    /* A fourth length byte with its continuation bit set is refused at once. */
    ck_assert_int_eq(
        mqtt_decode((const uint8_t[]){0x30, 0x80, 0x80, 0x80, 0x80}, 5, 0, &p, &need, &err),
        MQTT_BAD);
    /* A non-minimal length (5 in two bytes) is accepted, as 3.1.1 allows. */
    ck_assert_int_eq(mqtt_decode((const uint8_t[]){0xC0, 0x80, 0x00}, 3, 0, &p, &need, &err),
                     MQTT_DONE);
    ck_assert_uint_eq(p.size, 3);
}
END_TEST

START_TEST(topic_name_and_filter_validators)
{
    static uint8_t big[65536];
    const char *names_ok[] = {
        "a/b", "/", "a//b", "$SYS/broker", " ", "caf\xc3\xa9", "\xf0\x9f\x98\x80"};
    const char *names_bad[] = {"", "a/+", "#", "a/#", "caf\xc3", "\xed\xbf\xbf"};
    const char *filters_ok[] = {"#", "+", "sport/+/player1", "+/+", "/+", "sport/#", "+/#", "a//b"};
    const char *filters_bad[] = {
        "", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "++", "#/", "a/+b", "\xc0\xaf"};

    for (size_t i = 0; i < sizeof names_ok / sizeof *names_ok; i++)
        ck_assert_msg(mqtt_topic_name_valid((const uint8_t *)names_ok[i], strlen(names_ok[i])),
                      "%s", names_ok[i]);
    for (size_t i = 0; i < sizeof names_bad / sizeof *names_bad; i++)
        ck_assert_msg(!mqtt_topic_name_valid((const uint8_t *)names_bad[i], strlen(names_bad[i])),
                      "%s", names_bad[i]);
    for (size_t i = 0; i < sizeof filters_ok / sizeof *filters_ok; i++)
        ck_assert_msg(
            mqtt_topic_filter_valid((const uint8_t *)filters_ok[i], strlen(filters_ok[i])), "%s",
            filters_ok[i]);
    for (size_t i = 0; i < sizeof filters_bad / sizeof *filters_bad; i++)
        ck_assert_msg(
            !mqtt_topic_filter_valid((const uint8_t *)filters_bad[i], strlen(filters_bad[i])), "%s",
            filters_bad[i]);
    memset(big, 'a', sizeof big);
    ck_assert(mqtt_topic_name_valid(big, 65535));
    ck_assert(!mqtt_topic_name_valid(big, 65536));
    ck_assert(!mqtt_topic_filter_valid(big, 65536));
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("mqtt_codec");
    TCase *tc = tcase_create("mqtt_codec");

    tcase_add_test(tc, connect_round_trips_with_every_field);
    tcase_add_test(tc, connect_minimal_and_mqisdp_decode);
    tcase_add_test(tc, connect_unknown_level_decodes_for_rc1);
    tcase_add_test(tc, publish_round_trips_at_each_qos);
    tcase_add_test(tc, subscribe_and_unsubscribe_round_trip);
    tcase_add_test(tc, acks_and_simple_packets_round_trip);
    tcase_add_test(tc, server_encodings_are_byte_exact);
    tcase_add_test(tc, remaining_length_boundaries);
    tcase_add_test(tc, connect_variable_header_matches_spec_example);
    tcase_add_test(tc, encoders_refuse_small_buffers);
    tcase_add_test(tc, incremental_decoding_one_byte_at_a_time);
    tcase_add_test(tc, max_size_is_enforced_from_the_fixed_header);
    tcase_add_test(tc, multi_packet_buffer_decodes_packet_by_packet);
    tcase_add_loop_test(tc, each_rule_rejects_with_reason_and_offset, 0,
                        sizeof bad_cases / sizeof *bad_cases);
    tcase_add_test(tc, bad_first_byte_is_refused_before_the_rest);
    tcase_add_test(tc, topic_name_and_filter_validators);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(make_suite)
