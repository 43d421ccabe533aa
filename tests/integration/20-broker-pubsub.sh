#!/bin/bash
# coro-broker with mosquitto_pub/mosquitto_sub: QoS 0, 1 and 2 delivery,
# + and # wildcards, $-topics not matched by a leading wildcard, retained
# delivery to a late subscriber and clearing with an empty payload, and a
# malformed packet closing only that connection.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/broker_lib.sh"
P=$(free_port)
broker_conf "$P"
start_broker

# sub FILE ARGS...: a subscriber in the background that exits after -C N.
timeout 10 mosquitto_sub -p "$P" -q 2 -v -C 5 -t 'a/+/c' -t 'a/#' -t '$x/#' > "$T/sub" &
SP=$!
wait_for "$T/log" 'connected'
sleep 0.2 # the SUBACK has gone out once the broker logged the connection
for q in 0 1 2; do mosquitto_pub -p "$P" -q $q -t "a/q$q" -m "m$q" || fail "pub qos $q"; done
mosquitto_pub -p "$P" -t 'a/b/c' -m wild || fail "pub wild"
mosquitto_pub -p "$P" -t '$x/y' -m dollar || fail "pub dollar"
wait $SP || fail "subscriber did not get 5 messages: $(cat "$T/sub")"
for want in "a/q0 m0" "a/q1 m1" "a/q2 m2" "a/b/c wild" "\$x/y dollar"; do
    grep -qxF "$want" "$T/sub" || fail "missing '$want' in $(cat "$T/sub")"
done
expect_eq "a/b/c delivered once per subscriber" "$(grep -c '^a/b/c wild$' "$T/sub")" 1

# '#' alone must not match $-topics.
timeout 2 mosquitto_sub -p "$P" -t '#' -C 1 -v > "$T/hash" &
SP=$!
sleep 0.3
mosquitto_pub -p "$P" -t '$x/z' -m nope
wait $SP
[ -s "$T/hash" ] && fail "'#' matched a \$ topic: $(cat "$T/hash")"

# Retained: a late subscriber gets it with the retain flag; empty clears.
mosquitto_pub -p "$P" -q 1 -r -t r/1 -m kept || fail "retained pub"
got=$(timeout 5 mosquitto_sub -p "$P" -t 'r/#' -C 1 -F '%r %t %p')
expect_eq "retained delivered" "$got" "1 r/1 kept"
mosquitto_pub -p "$P" -q 1 -r -t r/1 -n || fail "clear pub"
got=$(timeout 1 mosquitto_sub -p "$P" -t 'r/#' -C 1 -v)
expect_eq "retained cleared" "$got" ""

# A malformed packet closes that connection only.
timeout 10 mosquitto_sub -p "$P" -t 'ok/#' -C 1 -v > "$T/ok" &
SP=$!
sleep 0.3
$PY - "$P" <<'PY' || fail "malformed packet not answered by a close"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 0]))
assert s.recv(4) == b"\x20\x02\x00\x00"
s.sendall(bytes([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]))  # remaining length > 4 bytes
assert s.recv(10) == b""
PY
wait_for "$T/log" 'protocol error: '
mosquitto_pub -p "$P" -t ok/1 -m still || fail "pub after malformed"
wait $SP || fail "other subscriber lost its connection"
expect_eq "other subscriber still served" "$(cat "$T/ok")" "ok/1 still"
pass
