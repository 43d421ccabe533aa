#!/usr/bin/python3
"""MQTT 3.1.1 persistent sessions (clean session 0, sections 3.1.2.4 and
4.4): session present, subscriptions kept across reconnects, QoS 1/2
messages queued while offline and delivered in order after reconnect,
unacknowledged PUBLISH (with DUP) and PUBREL resent after reconnect,
clean session 1 discarding the state, and sessions plus retained messages
surviving a broker restart (persistence on). BROKER=coro|mosquitto."""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_harness import (PUBCOMP, PUBLISH, PUBREC, PUBREL, ack_packet, check,
                          main)


def persistent(b, cid, present):
    c = b.conn()
    ack = c.connect(cid, clean=False)
    check(ack.rc == 0, "CONNECT %r clean 0: rc %d" % (cid, ack.rc))
    check(ack.session_present == present, "%r: session present %d, want %d "
          "[MQTT-3.2.2-2/3]" % (cid, ack.session_present, present))
    return c


def subs_survive(b):
    c = persistent(b, "t35-subs", False)
    c.subscribe([("t35/subs", 1)])
    c.disconnect()
    c = persistent(b, "t35-subs", True)
    b.client("t35-subs-pub").publish("t35/subs", b"still", qos=1)
    p = c.expect_publish(what="delivery through a subscription kept by the session")
    check(p.payload == b"still", "payload %r" % p.payload)


def queued_offline(b):
    c = persistent(b, "t35-queue", False)
    c.subscribe([("t35/queue/#", 2)])
    c.disconnect()
    pub = b.client("t35-queue-pub")
    want = []
    for i in range(20):
        q = 1 + i % 2
        pub.publish("t35/queue/%d" % q, b"m%02d" % i, qos=q)
        want.append((b"m%02d" % i, q))
    c = persistent(b, "t35-queue", True)
    got = [(p.payload, p.qos) for p in c.publishes(1.5)]
    check(got == want, "QoS 1/2 messages queued offline: got %r, want %r in order"
          % (got, want))


def inflight_redelivered(b):
    c = persistent(b, "t35-dup", False)
    c.subscribe([("t35/dup", 1)])
    b.client("t35-dup-pub").publish("t35/dup", b"unacked", qos=1)
    first = c.expect_publish(what="first delivery", ack=False)
    check(not first.dup, "first delivery has DUP set")
    c.close()  # no PUBACK
    c = persistent(b, "t35-dup", True)
    p = c.expect(PUBLISH, what="redelivery after reconnect [MQTT-4.4.0-1]")
    check(p.dup, "a redelivered PUBLISH must have DUP set [MQTT-3.3.1-1]")
    check(p.pid == first.pid and p.payload == b"unacked" and p.qos == 1,
          "redelivery %r differs from the first delivery %r" % (p, first))
    c.ack(p)
    check(c.publishes(1.0) == [], "delivered again after PUBACK")


def pubrel_resent(b):
    c = persistent(b, "t35-rel", False)
    c.subscribe([("t35/rel", 2)])
    b.client("t35-rel-pub").publish("t35/rel", b"q2", qos=2)
    p = c.expect_publish(what="QoS 2 delivery", ack=False)
    c.send(ack_packet(PUBREC, p.pid))
    rel = c.expect(PUBREL, what="PUBREL")
    c.close()  # no PUBCOMP
    c = persistent(b, "t35-rel", True)
    again = c.read()
    check(again.type == PUBREL and again.pid == rel.pid,
          "after reconnect the unacknowledged PUBREL must be resent "
          "[MQTT-4.4.0-1], got %r" % again)
    c.send(ack_packet(PUBCOMP, again.pid))
    check(c.publishes(1.0) == [], "the QoS 2 message was delivered again "
          "after PUBREC")


def clean_discards(b):
    c = persistent(b, "t35-clean", False)
    c.subscribe([("t35/clean", 1)])
    c.disconnect()
    c = b.conn()
    ack = c.connect("t35-clean", clean=True)
    check(ack.rc == 0 and not ack.session_present,
          "clean session 1: session present must be 0 [MQTT-3.2.2-1]")
    c.disconnect()
    c = persistent(b, "t35-clean", False)
    b.client("t35-clean-pub").publish("t35/clean", b"gone", qos=1)
    check(c.publishes(1.0) == [], "a subscription survived clean session 1 "
          "[MQTT-3.1.2-6]")


def takeover_keeps(b):
    """A second connection with the same id and clean session 0 takes the
    session over: session present 1, the old connection closed, its
    unacknowledged message resent with DUP on the new one [MQTT-3.1.4-2]."""
    old = persistent(b, "t35-take", False)
    old.subscribe([("t35/take", 1)])
    b.client("t35-take-pub").publish("t35/take", b"in flight", qos=1)
    first = old.expect_publish(what="delivery to the first connection", ack=False)
    new = persistent(b, "t35-take", True)
    check(old.closed_within(5), "takeover: the old connection is still open")
    p = new.expect(PUBLISH, what="unacknowledged message after takeover")
    check(p.dup and p.payload == b"in flight" and p.pid == first.pid,
          "after takeover got %r, want the unacknowledged one with DUP" % p)
    new.ack(p)
    b.client("t35-take-pub2").publish("t35/take", b"next", qos=1)
    p = new.expect_publish(what="delivery after takeover")
    check(p.payload == b"next" and not p.dup, "after takeover: %r" % p)


def restart_keeps(b):
    c = persistent(b, "t35-restart", False)
    c.subscribe([("t35/restart", 1)])
    c.disconnect()
    pub = b.client("t35-restart-pub")
    pub.publish("t35/restart", b"queued-before-restart", qos=1)
    pub.publish("t35/restart/ret", b"retained-before-restart", qos=1, retain=True)
    pub.disconnect()
    rc = b.stop()
    check(rc == 0, "broker exit status %s on SIGTERM" % rc)
    b.start()
    c = persistent(b, "t35-restart", True)
    got = [p.payload for p in c.publishes(1.5)]
    check(got == [b"queued-before-restart"], "queued QoS 1 message after a "
          "restart: %r" % got)
    late = b.client("t35-restart-late")
    late.subscribe([("t35/restart/ret", 1)])
    got = [p.payload for p in late.publishes(1.0)]
    check(got == [b"retained-before-restart"], "retained after restart: %r" % got)
    b.client("t35-restart-pub2").publish("t35/restart", b"after", qos=1)
    p = c.expect_publish(what="delivery through the restored subscription")
    check(p.payload == b"after", "payload %r" % p.payload)


if __name__ == "__main__":
    main([("subscriptions survive a reconnect", subs_survive),
          ("QoS 1/2 queued offline, delivered in order", queued_offline),
          ("unacknowledged QoS 1 resent with DUP", inflight_redelivered),
          ("unacknowledged PUBREL resent", pubrel_resent),
          ("clean session 1 discards the session", clean_discards),
          ("takeover keeps the session", takeover_keeps),
          ("broker restart keeps sessions, queue, retained", restart_keeps)],
         broker_opts={"persistence": True})
