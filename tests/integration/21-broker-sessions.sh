#!/bin/bash
# Sessions with paho: a will published when its client is killed (kill -9)
# and not after DISCONNECT, a persistent session receiving the QoS 1
# messages queued while it was away, takeover of a connected client id,
# and the keepalive timeout (1.5 x) closing a silent client.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
$PY -c 'import paho.mqtt.client' 2>/dev/null || skip "python3-paho-mqtt not installed"
P=$(free_port)
broker_conf "$P"
start_broker

# A client with a will, killed with SIGKILL: the will reaches a subscriber.
timeout 10 mosquitto_sub -p "$P" -t 'will/#' -C 1 -v > "$T/will" &
SP=$!
$PY - "$P" > "$T/willc.out" 2>&1 <<'PY' &
import sys, time, paho.mqtt.client as mqtt
c = mqtt.Client(client_id="dying")
c.will_set("will/dying", b"gone", qos=1)
c.connect("127.0.0.1", int(sys.argv[1]), keepalive=60)
c.loop_start()
time.sleep(30)
PY
WP=$!
track $WP
wait_for "$T/log" 'client "dying".*connected'
{ kill -9 $WP; wait $WP; } 2>/dev/null
wait $SP || fail "will not delivered after kill -9"
expect_eq "will" "$(cat "$T/will")" "will/dying gone"

# DISCONNECT drops the will.
timeout 2 mosquitto_sub -p "$P" -t 'will2/#' -C 1 -v > "$T/will2" &
SP=$!
sleep 0.3
mosquitto_pub -p "$P" -t x -m y --will-topic will2/x --will-payload no || fail "pub with will"
wait $SP
expect_eq "no will after DISCONNECT" "$(cat "$T/will2")" ""

# Persistent session: subscribe, go away, 100 QoS 1 messages, come back.
$PY - "$P" <<'PY' || fail "persistent session"
import sys, time, paho.mqtt.client as mqtt
port = int(sys.argv[1])
def connect(clean):
    c = mqtt.Client(client_id="keeper", clean_session=clean)
    got = []
    c.on_message = lambda c, u, m: got.append(m.payload)
    c.connect("127.0.0.1", port, keepalive=60)
    c.loop_start()
    return c, got
c, _ = connect(False)
r, mid = c.subscribe("keep/t", qos=1)
time.sleep(0.3)
c.disconnect(); c.loop_stop()
p = mqtt.Client(client_id="pub1")
p.connect("127.0.0.1", port); p.loop_start()
for i in range(100):
    p.publish("keep/t", b"%d" % i, qos=1).wait_for_publish()
p.disconnect(); p.loop_stop()
c, got = connect(False)
for _ in range(100):
    if len(got) >= 100: break
    time.sleep(0.05)
assert got == [b"%d" % i for i in range(100)], "got %d in order? %r" % (len(got), got[:5])
c.disconnect(); c.loop_stop()
PY

# Takeover: a second connection with the same id closes the first.
$PY - "$P" <<'PY' || fail "takeover"
import socket, sys, time
def conn():
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.sendall(bytes([0x10, 15, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 3]) + b"dup")
    assert s.recv(4) == b"\x20\x02\x00\x00"
    return s
a = conn()
b = conn()
assert a.recv(10) == b"", "old connection still open"
b.sendall(bytes([0xc0, 0]))
assert b.recv(2) == b"\xd0\x00", "new connection not served"
PY

# Keepalive 1 s: closed after 1.5 s of silence.
$PY - "$P" <<'PY' || fail "keepalive"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(bytes([0x10, 16, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 1, 0, 4]) + b"idle")
assert s.recv(4) == b"\x20\x02\x00\x00"
t = time.monotonic()
assert s.recv(10) == b""
el = time.monotonic() - t
assert 1.3 < el < 3.0, "closed after %.2fs" % el
PY
grep -q 'client "idle".*keepalive timeout' "$T/log" || fail "keepalive timeout not logged"
pass
