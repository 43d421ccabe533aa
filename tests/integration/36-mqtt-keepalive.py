#!/usr/bin/python3
"""MQTT 3.1.1 keepalive (sections 3.1.2.10, 3.12, 3.13): PINGREQ gets
PINGRESP; a client silent for 1.5x its keepalive is disconnected, one that
sends any packet in time is not, keepalive 0 turns the check off.
BROKER=coro|mosquitto (mqtt_harness.py)."""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_harness import (PINGREQ_PKT, PINGRESP, check, check_spec, main,
                          publish_packet)

KA = 2
SLACK = 1.0    # scheduling slack on the 1.5x deadline
HARD = 10.0    # beyond this the check is broken, whatever the broker


def pingresp(b):
    c = b.client("t36-ping")
    for _ in range(3):
        c.send(PINGREQ_PKT)
        p = c.expect(PINGRESP, what="PINGRESP")
        check(p.raw == b"\xd0\x00", "PINGRESP bytes %r, want d0 00" % p.raw)


def silent_closed(b):
    c = b.client("t36-silent", keepalive=KA)
    t0 = time.monotonic()
    closed = c.closed_within(1.5 * KA + HARD)
    dt = time.monotonic() - t0
    check(closed, "a client silent for %.0fs with keepalive %d is still "
          "connected [MQTT-3.1.2-24]" % (dt, KA))
    check(dt >= KA - 0.1, "keepalive %d: closed after %.2fs, before the "
          "keepalive period was over" % (KA, dt))
    check_spec(dt <= 1.5 * KA + SLACK, "keepalive %d: closed after %.2fs, want "
               "by 1.5x = %.1fs (+%.1fs slack) [MQTT-3.1.2-24]" % (KA, dt, 1.5 * KA, SLACK),
               "2.0.11 sweeps keepalives every few seconds; reworked in 2.0.21, "
               "eclipse-mosquitto/mosquitto#3138")
    print("     (closed after %.2fs)" % dt)


def pings_keep_alive(b):
    c = b.client("t36-pinger", keepalive=KA)
    end = time.monotonic() + 3 * KA
    while time.monotonic() < end:
        time.sleep(0.8 * KA)
        c.ping()
    c.ping()


def any_packet_counts(b):
    """Any control packet resets the timer, not just PINGREQ."""
    c = b.client("t36-talker", keepalive=KA)
    end = time.monotonic() + 3 * KA
    while time.monotonic() < end:
        time.sleep(0.8 * KA)
        c.send(publish_packet("t36/talk", b"x", qos=0))
    check(not c.closed_within(0.1), "a client publishing every %.1fs with "
          "keepalive %d was disconnected" % (0.8 * KA, KA))
    c.ping()


def zero_off(b):
    c = b.client("t36-zero", keepalive=0)
    check(not c.closed_within(2 * KA + 1), "keepalive 0 must turn the check off")
    c.ping()


if __name__ == "__main__":
    main([("PINGREQ -> PINGRESP", pingresp),
          ("silent for 1.5x keepalive: closed", silent_closed),
          ("PINGREQ every 0.8x keepalive: stays", pings_keep_alive),
          ("any packet resets the timer", any_packet_counts),
          ("keepalive 0: never closed", zero_off)])
