#!/usr/bin/python3
"""MQTT 3.1.1 PUBLISH/SUBSCRIBE at QoS 0, 1 and 2 (sections 3.3-3.11,
4.3): the exact acknowledgement packets on a raw socket in both
directions, granted QoS and the delivery QoS min(subscription, publish),
SUBACK return codes, resubscribe, UNSUBSCRIBE, QoS 2 exactly-once when the
publisher resends before PUBREL. BROKER=coro|mosquitto (mqtt_harness.py)."""
import os
import struct
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_harness import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, QUIET,
                          ack_packet, check, main, mstr, packet, publish_packet,
                          subscribe_packet)


def pair(b, name, sub_qos, topic=None):
    topic = topic or "t31/" + name
    sub = b.client("t31-sub-" + name)
    codes = sub.subscribe([(topic, sub_qos)])
    check(codes == [sub_qos], "SUBACK %r, want [%d]" % (codes, sub_qos))
    pub = b.client("t31-pub-" + name)
    return sub, pub, topic


def qos0_bytes(b):
    sub, pub, topic = pair(b, "q0", 0)
    pub.send(publish_packet(topic, b"zero", qos=0))
    p = sub.expect(PUBLISH, what="QoS 0 delivery")
    want = packet(PUBLISH, 0, mstr(topic) + b"zero")
    check(p.raw == want, "QoS 0 PUBLISH bytes %r, want %r" % (p.raw, want))
    check(sub.publishes() == [], "QoS 0 delivered more than once")


def qos1_flows(b):
    sub, pub, topic = pair(b, "q1", 1)
    pub.send(publish_packet(topic, b"one", qos=1, pid=7))
    a = pub.read()
    check(a.raw == b"\x40\x02\x00\x07", "PUBACK bytes %r, want 40 02 00 07" % a.raw)
    p = sub.expect(PUBLISH, what="QoS 1 delivery")
    check(p.qos == 1 and not p.dup and not p.retain and p.payload == b"one",
          "QoS 1 delivery %r" % p)
    check(p.pid != 0, "QoS 1 PUBLISH packet id must be non-zero [MQTT-2.3.1-1]")
    sub.send(ack_packet(PUBACK, p.pid))
    check(sub.publishes() == [], "QoS 1 redelivered after PUBACK")


def qos2_flows(b):
    sub, pub, topic = pair(b, "q2", 2)
    pub.send(publish_packet(topic, b"two", qos=2, pid=0x1234))
    a = pub.read()
    check(a.raw == b"\x50\x02\x12\x34", "PUBREC bytes %r, want 50 02 12 34" % a.raw)
    pub.send(ack_packet(PUBREL, 0x1234))
    a = pub.read()
    check(a.raw == b"\x70\x02\x12\x34", "PUBCOMP bytes %r, want 70 02 12 34" % a.raw)
    p = sub.expect(PUBLISH, what="QoS 2 delivery")
    check(p.qos == 2 and p.payload == b"two" and p.pid, "QoS 2 delivery %r" % p)
    sub.send(ack_packet(PUBREC, p.pid))
    rel = sub.read()
    want = b"\x62\x02" + struct.pack("!H", p.pid)
    check(rel.raw == want, "PUBREL bytes %r, want %r (flags 0010)" % (rel.raw, want))
    sub.send(ack_packet(PUBCOMP, p.pid))
    check(sub.publishes() == [], "QoS 2 delivered more than once")
    sub.ping()


def qos2_resend_before_pubrel(b):
    """Method B of 4.3.3: the id is stored until PUBREL, so a resent
    PUBLISH with DUP must not be delivered again [MQTT-4.3.3-2]."""
    sub, pub, topic = pair(b, "q2dup", 2)
    pub.send(publish_packet(topic, b"once", qos=2, pid=9))
    check(pub.read().type == PUBREC, "PUBREC for the first PUBLISH")
    pub.send(publish_packet(topic, b"once", qos=2, pid=9, dup=True))
    check(pub.read().raw == b"\x50\x02\x00\x09", "PUBREC for the resent PUBLISH")
    pub.send(ack_packet(PUBREL, 9))
    check(pub.read().raw == b"\x70\x02\x00\x09", "PUBCOMP after PUBREL")
    got = sub.publishes(1.0)
    check(len(got) == 1, "QoS 2 resent before PUBREL delivered %d times, want 1"
          % len(got))


def downgrade(b):
    for sq in range(3):
        sub, pub, topic = pair(b, "dg%d" % sq, sq)
        for pq in range(3):
            pub.publish(topic, b"p%d" % pq, qos=pq)
            p = sub.expect_publish(what="sub QoS %d pub QoS %d" % (sq, pq))
            check(p.payload == b"p%d" % pq, "payload %r" % p.payload)
            check(p.qos == min(sq, pq), "subscription QoS %d, publish QoS %d: "
                  "delivered at QoS %d, want %d" % (sq, pq, p.qos, min(sq, pq)))


def suback_codes(b):
    c = b.client("t31-codes")
    c.send(subscribe_packet(0x4242, [("t31/c/0", 0), ("t31/c/1", 1), ("t31/c/2", 2),
                                     ("t31/c/+/x", 1), ("t31/c/#", 2)]))
    p = c.expect(9, what="SUBACK")
    check(p.raw == b"\x90\x07\x42\x42\x00\x01\x02\x01\x02",
          "SUBACK bytes %r, want 90 07 42 42 00 01 02 01 02" % p.raw)


def suback_bad_qos(b):
    c = b.client("t31-qos3")
    c.send(subscribe_packet(1, [("t31/q3", 3)]))
    check(c.closed_within(5), "SUBSCRIBE with requested QoS 3 must close "
          "the connection [MQTT-3.8.3-4]")


def resubscribe_replaces(b):
    sub, pub, topic = pair(b, "resub", 0)
    check(sub.subscribe([(topic, 2)]) == [2], "resubscribe SUBACK")
    pub.publish(topic, b"r", qos=2)
    got = sub.publishes(1.0)
    check(len(got) == 1, "a resubscribed filter delivered %d copies, want 1 "
          "[MQTT-3.8.4-3]" % len(got))
    check(got[0].qos == 2, "resubscribe must replace the QoS: got %d" % got[0].qos)


def unsubscribe(b):
    sub, pub, topic = pair(b, "unsub", 1)
    sub.unsubscribe([topic])
    sub.unsubscribe(["t31/never/subscribed"])  # UNSUBACK all the same [MQTT-3.10.4-5]
    pub.publish(topic, b"after", qos=1)
    check(sub.publishes(1.0) == [], "delivered after UNSUBSCRIBE")


def unsubscribe_exact(b):
    """Filters are compared character by character, wildcards are not
    expanded [MQTT-3.10.4-1]."""
    sub, pub, topic = pair(b, "unsub-exact", 1)
    check(sub.subscribe([("t31/unsub-x/+", 1)]) == [1], "SUBACK for t31/unsub-x/+")
    sub.unsubscribe(["t31/+"])
    sub.unsubscribe(["t31/unsub-x/a"])
    pub.publish("t31/unsub-x/a", b"still", qos=1)
    got = [p.payload for p in sub.publishes(1.0)]
    check(got == [b"still"], "UNSUBSCRIBE of other strings removed 't31/unsub-x/+': %r"
          % got)


def ids_per_client(b):
    """Packet ids belong to one session: two publishers using QoS 2 id 5 at
    once both get their messages through; reusing an id after PUBCOMP is a
    new message."""
    sub, pub, topic = pair(b, "ids", 2)
    other = b.client("t31-pub-ids-2")
    pub.send(publish_packet(topic, b"from 1", qos=2, pid=5))
    other.send(publish_packet(topic, b"from 2", qos=2, pid=5))
    for c in (pub, other):
        check(c.read().raw == b"\x50\x02\x00\x05", "PUBREC 5")
    for c in (pub, other):
        c.send(ack_packet(PUBREL, 5))
        check(c.read().raw == b"\x70\x02\x00\x05", "PUBCOMP 5")
    pub.send(publish_packet(topic, b"again 1", qos=2, pid=5))
    check(pub.read().raw == b"\x50\x02\x00\x05", "PUBREC for the reused id")
    pub.send(ack_packet(PUBREL, 5))
    check(pub.read().raw == b"\x70\x02\x00\x05", "PUBCOMP for the reused id")
    got = sorted(p.payload for p in sub.publishes(1.0))
    check(got == [b"again 1", b"from 1", b"from 2"], "same id from two clients and "
          "a reused id: delivered %r" % got)


def mixed_qos_order(b):
    """An ordered topic: one publisher's messages on one topic arrive in
    publish order "for the same Topic and QoS" [MQTT-4.6.0-6]; across QoS
    levels the order may change (mosquitto forwards QoS 2 on PUBREL)."""
    sub, pub, topic = pair(b, "order", 2)
    want = []
    for i in range(60):
        q = i % 3
        pid = pub.pid() if q else None
        pub.send(publish_packet(topic, b"%d" % i, qos=q, pid=pid))
        want.append(b"%d" % i)
    acks = comps = 0
    while acks < 20 or comps < 20:     # 20 QoS 1 and 20 QoS 2 flows
        p = pub.read()
        if p.type == PUBREC:
            pub.send(ack_packet(PUBREL, p.pid))
        acks += p.type == PUBACK
        comps += p.type == PUBCOMP
    got = []
    for _ in range(20):
        more = sub.publishes(0.5)
        got += [m.payload for m in more]
        if len(got) >= len(want) or not more:
            break
    check(sorted(got) == sorted(want), "mixed QoS 0/1/2: %d of %d delivered, "
          "%d distinct" % (len(got), len(want), len(set(got))))
    for q in range(3):
        sent = [m for m in want if int(m) % 3 == q]
        came = [m for m in got if int(m) % 3 == q]
        check(came == sent, "QoS %d messages on one topic out of order: %r" % (q, came))


def payloads(b):
    sub, pub, topic = pair(b, "payload", 1)
    for body in (b"", bytes(range(256)), os.urandom(200 * 1024)):
        pub.publish(topic, body, qos=1)
        p = sub.expect_publish(timeout=10, what="%d-byte payload" % len(body))
        check(p.payload == body, "%d-byte payload came back as %d bytes%s" % (
            len(body), len(p.payload), "" if len(body) != len(p.payload)
            else " with different content"))


def no_ack_for_qos0(b):
    sub, pub, topic = pair(b, "noack", 0)
    pub.send(publish_packet(topic, b"x", qos=0))
    sub.expect_publish(what="QoS 0 delivery")
    check(pub.publishes(QUIET) == [] and pub.pending == [],
          "the broker answered a QoS 0 PUBLISH with %r" % pub.pending)


if __name__ == "__main__":
    main([("QoS 0: delivery bytes", qos0_bytes),
          ("QoS 0: nothing sent back to the publisher", no_ack_for_qos0),
          ("QoS 1: PUBACK both ways", qos1_flows),
          ("QoS 2: PUBREC/PUBREL/PUBCOMP both ways", qos2_flows),
          ("QoS 2: resent PUBLISH before PUBREL delivered once", qos2_resend_before_pubrel),
          ("delivery QoS = min(subscription, publish)", downgrade),
          ("SUBACK: granted codes in order", suback_codes),
          ("SUBACK: requested QoS 3 closes", suback_bad_qos),
          ("resubscribe replaces the subscription", resubscribe_replaces),
          ("UNSUBSCRIBE stops delivery", unsubscribe),
          ("UNSUBSCRIBE compares filter strings exactly", unsubscribe_exact),
          ("packet ids are per client; reuse after PUBCOMP", ids_per_client),
          ("one topic: order kept per QoS", mixed_qos_order),
          ("payloads: empty, binary, 200 KiB", payloads)])
