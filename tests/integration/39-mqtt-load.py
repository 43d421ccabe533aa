#!/usr/bin/python3
"""Ordering and load: 10 python3-paho-mqtt publishers send 1,000 QoS 1
messages each at once; one subscriber gets all 10,000, each publisher's
in its publish order, none lost, none duplicated (no reconnect happens, so
a QoS 1 duplicate would be a broker bug) [MQTT-4.6.0-5]. Then 200
concurrent clients connect, subscribe, all receive a fan-out in order and
answer PINGREQ. BROKER=coro|mosquitto (mqtt_harness.py)."""
import os
import resource
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_harness import (CONNACK, PINGREQ_PKT, PINGRESP, PUBACK, PUBLISH,
                          SUBACK, Conn, Paho, ack_packet, check,
                          connect_packet, main, subscribe_packet)

PUBLISHERS = 10
PER_PUBLISHER = 1000
CLIENTS = 200


def publisher(b, i, errors):
    try:
        p = Paho(b, "t39-pub-%d" % i)
        infos = [p.c.publish("t39/load/%d" % i, b"%d:%d" % (i, n), qos=1)
                 for n in range(PER_PUBLISHER)]
        deadline = time.monotonic() + 60
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                errors.append("publisher %d: PUBACK missing for mid %d" % (i, info.mid))
                break
        p.close()
    except Exception as e:   # reported by the main thread
        errors.append("publisher %d: %r" % (i, e))


def ordered_load(b):
    sub = b.client("t39-sub")
    check(sub.subscribe([("t39/load/#", 1)]) == [1], "SUBACK")
    errors = []
    threads = [threading.Thread(target=publisher, args=(b, i, errors), daemon=True)
               for i in range(PUBLISHERS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    seqs = {i: [] for i in range(PUBLISHERS)}
    total, want = 0, PUBLISHERS * PER_PUBLISHER
    deadline = time.monotonic() + 90
    while total < want and time.monotonic() < deadline:
        try:
            p = sub.read(max(0.1, min(10, deadline - time.monotonic())))
        except socket.timeout:
            break
        if p.type != PUBLISH:
            continue
        if p.qos:
            sub.send(ack_packet(PUBACK, p.pid))
        i, n = p.payload.split(b":")
        seqs[int(i)].append(int(n))
        total += 1
    dt = time.monotonic() - t0
    for t in threads:
        t.join(30)
    check(not errors, "publishers: %s" % errors[:3])
    for i, got in seqs.items():
        missing = sorted(set(range(PER_PUBLISHER)) - set(got))
        check(not missing, "publisher %d: %d messages lost (first %r)"
              % (i, len(missing), missing[:5]))
        check(len(got) == PER_PUBLISHER, "publisher %d: %d duplicates"
              % (i, len(got) - PER_PUBLISHER))
        bad = next((k for k in range(1, len(got)) if got[k] < got[k - 1]), None)
        check(bad is None, "publisher %d: out of order at %d: %r" % (
            i, bad or 0, got[max(0, (bad or 0) - 3):(bad or 0) + 3]))
    print("     (%d QoS 1 messages in %.1fs, %.0f/s)" % (total, dt, total / dt))


def many_clients(b):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * CLIENTS + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    conns = [Conn(b.port) for _ in range(CLIENTS)]
    try:
        for k, c in enumerate(conns):        # all at once, then the answers
            c.send(connect_packet("t39-many-%d" % k))
        for k, c in enumerate(conns):
            check(c.expect(CONNACK, what="CONNACK %d" % k).rc == 0, "client %d refused" % k)
        for c in conns:
            c.send(subscribe_packet(1, [("t39/fan", 1)]))
        for k, c in enumerate(conns):
            check(c.expect(SUBACK, what="SUBACK %d" % k).codes == [1], "client %d SUBACK" % k)
        pub = b.client("t39-fan-pub")
        for n in range(5):
            pub.publish("t39/fan", b"fan %d" % n, qos=1)
        for k, c in enumerate(conns):
            got = [c.expect_publish(what="client %d message %d" % (k, n)).payload
                   for n in range(5)]
            check(got == [b"fan %d" % n for n in range(5)], "client %d got %r" % (k, got))
        for c in conns:
            c.send(PINGREQ_PKT)
        for k, c in enumerate(conns):
            c.expect(PINGRESP, what="PINGRESP %d" % k)
    finally:
        for c in conns:
            c.close()


if __name__ == "__main__":
    main([("10 x 1,000 QoS 1: none lost, per-publisher order", ordered_load),
          ("%d concurrent clients" % CLIENTS, many_clients)], time_limit=240,
         # mosquitto drops QoS 1 past max_queued_messages (default 1000) for
         # a subscriber that falls behind; the burst here is 10,000
         broker_opts={"max_queued": 2 * PUBLISHERS * PER_PUBLISHER})
