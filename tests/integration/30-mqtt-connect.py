#!/usr/bin/python3
"""MQTT 3.1.1 CONNECT/CONNACK (OASIS mqtt-v3.1.1 section 3.1, 3.2): return
codes, empty client ids, a second CONNECT, a first packet that is not
CONNECT, and client-id takeover. BROKER=coro|mosquitto (mqtt_harness.py)."""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_harness import (CONNACK, PINGREQ_PKT, Closed, TestFailure, check,
                          connect_packet, main)


def refused(c, what):
    """The CONNACK a refused CONNECT gets, then the close [MQTT-3.2.2-5]."""
    ack = c.expect(CONNACK, what=what)
    check(not ack.session_present, "%s: session present must be 0 with rc %d"
          % (what, ack.rc))
    check(c.closed_within(5), "%s: connection still open after CONNACK rc %d"
          % (what, ack.rc))
    return ack.rc


def not_accepted(c, what):
    """A violation: the connection closes, at most after a non-zero CONNACK."""
    try:
        p = c.read(5)
        check(p.type == CONNACK and p.rc != 0,
              "%s: broker answered %r instead of closing" % (what, p))
    except Closed:
        pass
    except OSError:
        raise TestFailure("%s: neither closed nor answered within 5s" % what)
    check(c.closed_within(5), "%s: connection still open" % what)


def accepted(b):
    c = b.conn()
    ack = c.connect("t30-ok", clean=True)
    check(ack.rc == 0, "CONNACK rc %d, want 0" % ack.rc)
    check(not ack.session_present, "clean session: session present must be 0")
    check(ack.raw == b"\x20\x02\x00\x00", "CONNACK bytes %r" % ack.raw)
    c.ping()
    c.disconnect()


def bad_protocol_level(b):
    for level in (2, 6):
        c = b.conn()
        c.send(connect_packet("t30-level%d" % level, level=level))
        rc = refused(c, "protocol level %d" % level)
        check(rc == 1, "protocol level %d: CONNACK rc %d, want 1" % (level, rc))


def empty_id_persistent(b):
    c = b.conn()
    c.send(connect_packet("", clean=False))
    rc = refused(c, "empty client id, clean session 0")
    check(rc == 2, "empty client id with clean session 0: rc %d, want 2" % rc)


def empty_id_clean(b):
    c = b.conn()
    ack = c.connect("", clean=True)
    check(ack.rc == 0, "empty client id with clean session 1: rc %d, want 0" % ack.rc)
    c.subscribe([("t30/empty", 0)])
    c.publish("t30/empty", b"self", qos=0)
    p = c.expect_publish(what="own message on an empty-id session")
    check(p.payload == b"self", "payload %r" % p.payload)
    c.disconnect()


def second_connect(b):
    c = b.client("t30-twice")
    c.send(connect_packet("t30-twice"))
    check(c.closed_within(5), "a second CONNECT must close the connection "
          "[MQTT-3.1.0-2]")


def first_packet_not_connect(b):
    c = b.conn()
    c.send(PINGREQ_PKT)
    check(c.closed_within(5), "PINGREQ before CONNECT must close the connection "
          "[MQTT-3.1.0-1]")


def connect_reserved_flag(b):
    c = b.conn()
    c.send(connect_packet("t30-reserved", reserved=True))
    not_accepted(c, "CONNECT with the reserved flag set [MQTT-3.1.2-3]")


def password_without_user(b):
    c = b.conn()
    c.send(connect_packet("t30-pw", password="x"))
    not_accepted(c, "password flag without user name flag [MQTT-3.1.2-22]")


def bad_protocol_name(b):
    c = b.conn()
    c.send(connect_packet("t30-name", proto="MQTX"))
    not_accepted(c, "protocol name MQTX")


def takeover(b):
    old = b.client("t30-same")
    new = b.client("t30-same")
    check(old.closed_within(5), "the first connection of a client id must be "
          "closed when the id connects again [MQTT-3.1.4-2]")
    new.ping()
    new.disconnect()


def disconnect_closes(b):
    c = b.client("t30-bye")
    c.send(b"\xe0\x00")
    check(c.closed_within(5), "the broker must close the connection after "
          "DISCONNECT")


if __name__ == "__main__":
    main([("CONNECT accepted: CONNACK 0, session present 0", accepted),
          ("unsupported protocol level: CONNACK rc 1, close", bad_protocol_level),
          ("empty client id, clean 0: CONNACK rc 2, close", empty_id_persistent),
          ("empty client id, clean 1: accepted", empty_id_clean),
          ("second CONNECT closes", second_connect),
          ("first packet not CONNECT closes", first_packet_not_connect),
          ("CONNECT reserved flag closes", connect_reserved_flag),
          ("password without user name closes", password_without_user),
          ("bad protocol name not accepted", bad_protocol_name),
          ("client id takeover closes the old connection", takeover),
          ("DISCONNECT: broker closes", disconnect_closes)])
