#!/usr/bin/python3
"""MQTT 3.1.1 will messages (section 3.1.2.5): published when the network
connection closes without DISCONNECT (socket closed, client process
killed, keepalive expired, protocol error), not after DISCONNECT; will
QoS and will retain honoured. BROKER=coro|mosquitto (mqtt_harness.py)."""
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mqtt_harness import WAIT, check, main


def watcher(b, name, topic, qos=2):
    w = b.client("t34-watch-" + name)
    check(w.subscribe([(topic, qos)]) == [qos], "SUBACK for %r" % topic)
    return w


def will_of(w, topic, timeout=WAIT):
    got = [p for p in w.publishes(timeout) if p.topic == topic]
    return got


def wait_will(w, topic, timeout=WAIT):
    p = w.expect_publish(timeout=timeout, what="will on %r" % topic)
    check(p.topic == topic, "will topic %r, want %r" % (p.topic, topic))
    return p


def socket_close(b):
    w = watcher(b, "close", "t34/close")
    c = b.client("t34-close", will=("t34/close", b"gone", 1, False))
    c.ping()
    c.close()
    p = wait_will(w, "t34/close")
    check(p.payload == b"gone", "will payload %r" % p.payload)
    check(p.qos == 1, "will QoS 1 to a QoS 2 subscription came at QoS %d" % p.qos)
    check(not p.retain, "will published without will retain has RETAIN set")


def not_after_disconnect(b):
    w = watcher(b, "disc", "t34/disc")
    c = b.client("t34-disc", will=("t34/disc", b"must not", 0, False))
    c.ping()
    c.disconnect()
    got = will_of(w, "t34/disc", 1.5)
    check(got == [], "will published after DISCONNECT [MQTT-3.1.2-10]: %r" % got)


def keepalive_expiry(b):
    w = watcher(b, "ka", "t34/ka")
    c = b.client("t34-ka", keepalive=1, will=("t34/ka", b"timeout", 0, False))
    t0 = time.monotonic()
    p = wait_will(w, "t34/ka", timeout=12)  # mosquitto 2.0.11 sweeps every ~6 s
    dt = time.monotonic() - t0
    check(p.payload == b"timeout", "will payload %r" % p.payload)
    check(dt >= 0.9, "keepalive 1 s: will after %.2fs, before the keepalive "
          "period had passed" % dt)
    check(c.closed_within(2), "the silent client's connection is closed")


def protocol_error(b):
    w = watcher(b, "proto", "t34/proto")
    c = b.client("t34-proto", will=("t34/proto", b"violation", 0, False))
    c.send(bytes([0x36, 0x05, 0x00, 0x01, 0x78, 0x00, 0x01]))  # PUBLISH QoS 3
    check(c.closed_within(5), "PUBLISH with QoS 3 must close the connection")
    p = wait_will(w, "t34/proto")
    check(p.payload == b"violation", "will payload %r" % p.payload)


def will_retain(b):
    c = b.client("t34-ret", will=("t34/ret", b"last words", 1, True))
    c.close()
    # the will is published some time after the close: poll with fresh
    # subscribers (bounded). One that subscribed before the will fired gets
    # it live, without RETAIN: only a copy sent as retained counts.
    deadline = time.monotonic() + WAIT
    got = []
    while time.monotonic() < deadline and not got:
        late = b.client("t34-ret-late")
        late.subscribe([("t34/ret", 1)])
        got = [p for p in late.publishes(0.3) if p.retain]
        late.disconnect()
    check(len(got) == 1, "a retained will reaches a late subscriber: %r" % got)
    check(got[0].retain and got[0].payload == b"last words" and got[0].qos == 1,
          "retained will: %r" % got[0])


PAHO_CHILD = r'''
import sys, time
import paho.mqtt.client as mqtt
c = mqtt.Client(client_id="t34-killed", protocol=mqtt.MQTTv311)
c.will_set("t34/killed", b"killed", 1, False)
c.on_connect = lambda *a: print("connected", flush=True)
c.connect("127.0.0.1", int(sys.argv[1]), 60)
c.loop_start()
time.sleep(30)
'''


def killed_client(b):
    """A real client library in a process killed with SIGKILL."""
    w = watcher(b, "killed", "t34/killed")
    child = subprocess.Popen(["/usr/bin/python3", "-c", PAHO_CHILD, str(b.port)],
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        check(line.strip() == "connected", "paho child did not connect: %r" % line)
        child.send_signal(signal.SIGKILL)
        child.wait(5)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
    p = wait_will(w, "t34/killed")
    check(p.payload == b"killed" and p.qos == 1, "will of the killed client: %r" % p)


if __name__ == "__main__":
    main([("socket closed without DISCONNECT: will published", socket_close),
          ("after DISCONNECT: no will", not_after_disconnect),
          ("keepalive expiry: will published", keepalive_expiry),
          ("protocol error: will published", protocol_error),
          ("will retain: late subscriber gets it", will_retain),
          ("paho client killed with SIGKILL: will published", killed_client)])
