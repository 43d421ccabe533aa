#!/usr/bin/python3
"""MQTT 3.1.1 retained messages (section 3.3.1.3): a late subscriber gets
the last retained message with RETAIN set, at min(retained QoS,
subscription QoS); an empty retained payload clears it; messages forwarded
to existing subscriptions have RETAIN clear; QoS 0 retained messages are
kept; resubscribing re-sends them. Raw sockets and python3-paho-mqtt.
BROKER=coro|mosquitto (mqtt_harness.py)."""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_harness import Paho, check, main


def late_subscriber(b):
    pub = b.client("t33-pub-late")
    pub.publish("t33/late", b"kept", qos=1, retain=True)
    pub.disconnect()
    for sq in (0, 1, 2):
        sub = b.client("t33-late-%d" % sq)
        check(sub.subscribe([("t33/late", sq)]) == [sq], "SUBACK")
        got = sub.publishes(1.0)
        check(len(got) == 1, "late subscriber got %d retained messages, want 1: %r"
              % (len(got), got))
        p = got[0]
        check(p.retain, "retained message sent to a new subscription without "
              "RETAIN set [MQTT-3.3.1-8]")
        check(p.payload == b"kept", "retained payload %r" % p.payload)
        check(p.qos == min(1, sq), "retained QoS 1 to a QoS %d subscription "
              "came at QoS %d" % (sq, p.qos))


def forwarded_not_flagged(b):
    sub = b.client("t33-live")
    sub.subscribe([("t33/live", 1)])
    pub = b.client("t33-pub-live")
    pub.publish("t33/live", b"now", qos=1, retain=True)
    p = sub.expect_publish(what="live delivery of a retained publish")
    check(not p.retain, "RETAIN must be 0 on delivery to an established "
          "subscription [MQTT-3.3.1-9]")
    # and the next subscriber still gets it retained
    late = b.client("t33-live-late")
    late.subscribe([("t33/live", 1)])
    p = late.expect_publish(what="retained to the late subscriber")
    check(p.retain and p.payload == b"now", "late subscriber got %r" % p)


def empty_clears(b):
    pub = b.client("t33-pub-clear")
    pub.publish("t33/clear", b"old", qos=1, retain=True)
    live = b.client("t33-clear-live")
    live.subscribe([("t33/clear", 1)])
    live.publishes(1.0)  # the retained "old"
    pub.publish("t33/clear", b"", qos=1, retain=True)
    got = live.publishes(1.0)
    check(len(got) == 1 and got[0].payload == b"", "the clearing empty message "
          "is forwarded like any other to existing subscribers: %r" % got)
    late = b.client("t33-clear-late")
    late.subscribe([("t33/clear", 1), ("t33/#", 0)])
    got = [p for p in late.publishes(1.0) if p.topic == "t33/clear"]
    check(got == [], "an empty retained payload must clear the topic "
          "[MQTT-3.3.1-10/11], a late subscriber got %r" % got)


def replaced(b):
    pub = b.client("t33-pub-repl")
    for v in (b"v1", b"v2", b"v3"):
        pub.publish("t33/repl", v, qos=1, retain=True)
    pub.publish("t33/repl", b"not-retained", qos=1, retain=False)
    sub = b.client("t33-repl")
    sub.subscribe([("t33/repl", 1)])
    got = sub.publishes(1.0)
    check([p.payload for p in got] == [b"v3"], "retained after v1, v2, v3 and "
          "a non-retained publish: %r, want only v3" % got)


def qos0_kept(b):
    pub = b.client("t33-pub-q0")
    pub.publish("t33/q0", b"zero", qos=0, retain=True)
    pub.ping()  # the broker has handled the PUBLISH
    sub = b.client("t33-q0")
    sub.subscribe([("t33/q0", 2)])
    got = sub.publishes(1.0)
    check(len(got) == 1 and got[0].payload == b"zero" and got[0].qos == 0
          and got[0].retain, "QoS 0 retained message for a late subscriber: %r" % got)


def wildcard_many(b):
    pub = b.client("t33-pub-wild")
    topics = ["t33/w/a", "t33/w/b/c", "t33/w/d"]
    for t in topics:
        pub.publish(t, t.encode(), qos=1, retain=True)
    sub = b.client("t33-wild")
    sub.subscribe([("t33/w/#", 1)])
    got = sorted(p.topic for p in sub.publishes(1.0) if p.retain)
    check(got == topics, "'t33/w/#' got retained %r, want %r" % (got, topics))


def resubscribe_resends(b):
    pub = b.client("t33-pub-resub")
    pub.publish("t33/resub", b"again", qos=1, retain=True)
    sub = b.client("t33-resub")
    sub.subscribe([("t33/resub", 1)])
    check(len(sub.publishes(1.0)) == 1, "first retained delivery")
    sub.subscribe([("t33/resub", 1)])
    got = sub.publishes(1.0)
    check(len(got) == 1 and got[0].retain, "resubscribing must re-send the "
          "retained message [MQTT-3.8.4-3]: %r" % got)


def paho_late(b):
    pub = Paho(b, "t33-paho-pub")
    pub.publish("t33/paho", b"library", qos=1, retain=True)
    pub.close()
    sub = Paho(b, "t33-paho-sub")
    check(sub.subscribe("t33/paho", 1) == [1], "paho SUBACK")
    m = sub.received(1)[0]
    sub.close()
    check(m.retain and m.payload == b"library" and m.qos == 1,
          "paho late subscriber: retain=%s qos=%d payload=%r" % (m.retain, m.qos, m.payload))


if __name__ == "__main__":
    main([("late subscriber gets it with RETAIN, min QoS", late_subscriber),
          ("forwarded live without RETAIN", forwarded_not_flagged),
          ("empty payload clears", empty_clears),
          ("the last retained publish wins", replaced),
          ("QoS 0 retained is kept", qos0_kept),
          ("wildcard subscription gets every retained topic", wildcard_many),
          ("resubscribe re-sends retained", resubscribe_resends),
          ("paho late subscriber", paho_late)])
