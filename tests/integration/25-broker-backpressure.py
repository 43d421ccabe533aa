#!/usr/bin/python3
"""coro-broker backpressure: a QoS 1 subscriber whose queue (max_queued =
20) is full makes its publisher wait (PUBACKs stop) instead of dropping,
and every message arrives once it reads again, even when the wait is
longer than the publisher's keepalive; a subscriber that goes away
releases the waiting publisher; two clients publishing to each other
without reading do not deadlock. mosquitto drops past its queue limit
instead, so this test is coro-broker's own (skipped under BROKER=mosquitto).
"""
import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_harness import (BROKER, PUBACK, PUBLISH, Closed, check, main,
                          publish_packet, skip)

N = 300
QUEUED = 20


def pipeline(c, topic, n, tag):
    """Send n QoS 1 PUBLISHes without waiting for their PUBACKs."""
    c.send(b"".join(publish_packet(topic, b"%s:%d" % (tag, i), 1, False, i + 1)
                    for i in range(n)))


def pubacks(c, timeout, want=None):
    """PUBACK ids arriving within timeout, or until want of them came
    (other packets are kept)."""
    got = []
    deadline = time.monotonic() + timeout
    while want is None or len(got) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            p = c._read_wire(time.monotonic() + left)
        except (socket.timeout, Closed):
            break
        if p.type == PUBACK:
            got.append(p.pid)
        else:
            c.pending.append(p)
    return got


def drain(c, n, timeout=20):
    """Read and acknowledge PUBLISHes until n arrived; their payloads."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += [p.payload for p in c.publishes(0.2)]
    return got


def slow_subscriber(b):
    sub = b.client("t25-slow", clean=True)
    check(sub.subscribe([("t25/slow", 1)]) == [1], "SUBACK")
    pub = b.client("t25-slow-pub")
    pipeline(pub, "t25/slow", N, b"s")
    early = pubacks(pub, 1.5)
    check(len(early) < N, "all %d PUBACKs came while the subscriber read "
          "nothing: no backpressure" % N)
    got = drain(sub, N)
    check(got == [b"s:%d" % i for i in range(N)], "subscriber got %d of %d "
          "messages, in order: %s" % (len(got), N, got == sorted(got)))
    late = pubacks(pub, 5, N - len(early)) if len(early) < N else []
    check(len(early) + len(late) == N, "publisher got %d PUBACKs of %d"
          % (len(early) + len(late), N))


def blocked_not_silent(b):
    """A publisher with keepalive 1 s blocked for 2.5 s by a full queue
    is waiting on the broker, not silent: it keeps its connection."""
    sub = b.client("t25-ka", clean=True)
    check(sub.subscribe([("t25/ka", 1)]) == [1], "SUBACK")
    pub = b.client("t25-ka-pub", keepalive=1)
    pipeline(pub, "t25/ka", N, b"k")
    early = pubacks(pub, 2.5)
    got = drain(sub, N)
    check(len(got) == N, "subscriber got %d of %d" % (len(got), N))
    late = pubacks(pub, 5, N - len(early))
    check(len(early) + len(late) == N, "blocked publisher got %d PUBACKs of "
          "%d (closed for keepalive while the broker made it wait?)"
          % (len(early) + len(late), N))


def subscriber_leaves(b):
    sub = b.client("t25-gone", clean=True)
    check(sub.subscribe([("t25/gone", 1)]) == [1], "SUBACK")
    pub = b.client("t25-gone-pub")
    pipeline(pub, "t25/gone", N, b"g")
    early = pubacks(pub, 1.0)
    check(len(early) < N, "no backpressure before the subscriber left")
    sub.close()
    late = pubacks(pub, 5, N - len(early))
    check(len(early) + len(late) == N, "after the subscriber left the "
          "publisher got %d PUBACKs of %d" % (len(early) + len(late), N))


def crossed(b):
    x = b.client("t25-x")
    y = b.client("t25-y")
    check(x.subscribe([("t25/to-x", 1)]) == [1], "SUBACK x")
    check(y.subscribe([("t25/to-y", 1)]) == [1], "SUBACK y")
    pipeline(x, "t25/to-y", N, b"x")
    pipeline(y, "t25/to-x", N, b"y")
    time.sleep(1.0)  # let both readers hit the full queues
    got_x, got_y = [], []
    deadline = time.monotonic() + 20
    while (len(got_x) < N or len(got_y) < N) and time.monotonic() < deadline:
        got_x += [p.payload for p in x.publishes(0.1)]
        got_y += [p.payload for p in y.publishes(0.1)]
    check(len(got_x) == N and len(got_y) == N, "crossed publishers: x got "
          "%d, y got %d of %d (deadlock?)" % (len(got_x), len(got_y), N))


if __name__ == "__main__":
    if BROKER != "coro":
        skip("coro-broker's backpressure (mosquitto drops instead)")
    main([("full QoS 1 queue: publisher waits, nothing dropped", slow_subscriber),
          ("blocked publisher is not closed for keepalive", blocked_not_silent),
          ("subscriber leaves: waiting publisher released", subscriber_leaves),
          ("publishers waiting on each other: no deadlock", crossed)],
         broker_opts={"max_queued": QUEUED})
