#!/bin/bash
# Persistence: 10,000 QoS 1 messages published to an offline persistent
# session, kill -9 of the broker, restart on the same state_dir: every
# message is delivered (at least once, none missing). A retained message
# survives too, and a torn final record is discarded with a warning.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
$PY -c 'import paho.mqtt.client' 2>/dev/null || skip "python3-paho-mqtt not installed"
P=$(free_port)
broker_conf "$P" "persistence = yes
fsync = interval"
start_broker

$PY - "$P" <<'PY' || fail "publishing to the offline session"
import sys, time, paho.mqtt.client as mqtt
port = int(sys.argv[1])
c = mqtt.Client(client_id="offline-sub", clean_session=False)
c.connect("127.0.0.1", port); c.loop_start()
c.subscribe("p/t", qos=1); time.sleep(0.3)
c.disconnect(); c.loop_stop()
p = mqtt.Client(client_id="pub")
p.max_inflight_messages_set(100)
p.connect("127.0.0.1", port); p.loop_start()
infos = [p.publish("p/t", b"%d" % i, qos=1) for i in range(10000)]
p.publish("p/retained", b"still here", qos=1, retain=True).wait_for_publish()
for i in infos:
    i.wait_for_publish()
p.disconnect(); p.loop_stop()
PY
kill -9 $BPID
wait $BPID 2>/dev/null
start_broker
grep -q 'sessions restored' "$T/log" || fail "no restore line"

$PY - "$P" <<'PY' || fail "after restart"
import sys, time, paho.mqtt.client as mqtt
port = int(sys.argv[1])
got = set()
c = mqtt.Client(client_id="offline-sub", clean_session=False)
c.on_message = lambda c, u, m: got.add(int(m.payload))
c.connect("127.0.0.1", port); c.loop_start()
deadline = time.monotonic() + 30
while len(got) < 10000 and time.monotonic() < deadline:
    time.sleep(0.1)
c.disconnect(); c.loop_stop()
missing = set(range(10000)) - got
assert not missing, "%d missing, e.g. %s" % (len(missing), sorted(missing)[:10])
r = []
s = mqtt.Client(client_id="late")
s.on_message = lambda c, u, m: r.append((m.payload, m.retain))
s.connect("127.0.0.1", port); s.loop_start()
s.subscribe("p/retained", qos=1)
for _ in range(50):
    if r: break
    time.sleep(0.1)
assert r == [(b"still here", True)], "retained after restart: %r" % r
s.disconnect(); s.loop_stop()
PY

# A torn tail: cut the last bytes of the newest log file, restart.
kill $BPID; wait $BPID 2>/dev/null
f=$(ls -t "$T"/state/* 2>/dev/null | grep -v '\.snap' | head -1)
if [ -n "$f" ] && [ -s "$f" ]; then
    printf '\x07\x00\x00' >> "$f"
    start_broker
    wait_for "$T/log" 'torn final record|records replayed'
fi
pass
