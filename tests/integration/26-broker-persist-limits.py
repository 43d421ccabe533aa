#!/usr/bin/python3
"""coro-broker persistence edges across kill -9: messages dropped at an
offline persistent session's queue limit (max_queued = 5) stay dropped
after a restart, and a QoS 2 message whose PUBREC was sent before the
crash is delivered exactly once when its publisher resends it (the
inbound QoS 2 set is logged). coro-broker's own (state_dir, kill -9):
skipped under BROKER=mosquitto.
"""
import os
import signal
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_harness import (BROKER, PUBCOMP, PUBLISH, PUBREC, PUBREL, ack_packet,
                          check, main, publish_packet, skip)

LIMIT = 5


def dropped_stay_dropped(b):
    sub = b.client("t26-lim", clean=False)
    check(sub.subscribe([("t26/lim", 1)]) == [1], "SUBACK")
    sub.disconnect()
    pub = b.client("t26-lim-pub")
    for i in range(2 * LIMIT):
        pub.publish("t26/lim", b"%d" % i, qos=1)
    pub.disconnect()
    b.restart(signal.SIGKILL)
    sub = b.client("t26-lim", clean=False)
    got = [p.payload for p in sub.publishes(1.5)]
    check(got == [b"%d" % i for i in range(LIMIT)], "after a restart the "
          "offline session got %r; want the first %d (the rest were dropped "
          "at its queue limit)" % (got, LIMIT))
    sub.disconnect()


def qos2_once(b):
    sub = b.client("t26-q2", clean=False)
    check(sub.subscribe([("t26/q2", 2)]) == [2], "SUBACK")
    sub.disconnect()
    pub = b.client("t26-q2-pub", clean=False)
    pub.send(publish_packet("t26/q2", b"once", 2, False, 7))
    rec = pub.expect(PUBREC, what="PUBREC before the crash")
    check(rec.pid == 7, "PUBREC id")
    b.restart(signal.SIGKILL)
    pub = b.client("t26-q2-pub", clean=False)
    pub.send(publish_packet("t26/q2", b"once", 2, False, 7, dup=True))
    check(pub.expect(PUBREC, what="PUBREC for the resend").pid == 7, "PUBREC id")
    pub.send(ack_packet(PUBREL, 7))
    check(pub.expect(PUBCOMP, what="PUBCOMP").pid == 7, "PUBCOMP id")
    sub = b.client("t26-q2", clean=False)
    got = [p.payload for p in sub.publishes(1.5)]
    check(got == [b"once"], "QoS 2 across a restart: subscriber got %r, "
          "want exactly one b'once'" % got)
    sub.disconnect()
    pub.disconnect()


if __name__ == "__main__":
    if BROKER != "coro":
        skip("coro-broker's state_dir across kill -9")
    main([("offline queue limit: dropped messages stay dropped", dropped_stay_dropped),
          ("QoS 2 PUBREC before a crash: delivered once", qos2_once)],
         broker_opts={"persistence": True, "max_queued": LIMIT})
