#!/bin/bash
# The daemon framework end to end with tests/unit/testd (an echo daemon):
# -t on a good and a broken config (exit 78, FILE:LINE on stderr), start on
# ephemeral ports, sd_notify READY/RELOADING/STOPPING on NOTIFY_SOCKET,
# /healthz and /metrics over curl, SIGHUP adding a listener while an
# established connection keeps working, SIGHUP with a broken file keeping
# the old config, SIGTERM draining and exiting 0.
. "$(dirname "$0")/lib.sh"
need python3
need curl
TESTD=$BUILDDIR/tests/unit/testd
[ -x "$TESTD" ] || fail "$TESTD not built"

# wait_for FILE REGEX: poll (bounded, 10 s) until a line of FILE matches.
wait_for() {
    for _ in $(seq 200); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    fail "timed out waiting for /$2/ in $1: $(tail -5 "$1" 2>/dev/null)"
}
port_of() { sed -n "s/.*listener \"$1\": listening on 127.0.0.1:\([0-9]*\).*/\1/p" "$T/log" | tail -1; }
# echo_ok PORT: one line through the echo listener.
echo_ok() {
    python3 - "$1" <<'PY' || fail "echo on port $1 failed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"ping\n")
got = b""
while len(got) < 5:
    d = s.recv(100)
    if not d: break
    got += d
sys.exit(0 if got == b"ping\n" else 1)
PY
}

cat >"$T/d.ini" <<'INI'
[runtime]
workers = 2
shutdown_timeout = 5s
[admin]
listen = 127.0.0.1:0
[listener.one]
listen = 127.0.0.1:0
INI

# -t: ok, then two errors with their positions
out=$("$TESTD" -t -c "$T/d.ini") || fail "-t on a good config exited $?"
expect_eq "-t output" "$out" "$T/d.ini: syntax is ok"
printf '[runtime]\nworkers = many\n[listener.x]\n[bogus]\n' >"$T/bad.ini"
"$TESTD" -t -c "$T/bad.ini" 2>"$T/bad.err"
expect_eq "-t exit status" "$?" 78
expect_eq "-t errors" "$(cat "$T/bad.err")" "$T/bad.ini:2: [runtime] workers: not an integer
$T/bad.ini:4: [bogus]: unknown section
$T/bad.ini:3: [listener.x] listen: missing required key"
"$TESTD" -c "$T/bad.ini" 2>/dev/null
expect_eq "start with a bad config" "$?" 78

# the generated defaults are a valid config
"$TESTD" --dump-config >"$T/dump.ini" || fail "--dump-config exited $?"
"$TESTD" -t -c "$T/dump.ini" >/dev/null || fail "--dump-config output does not pass -t"
grep -q '^listen = 127.0.0.1:7777$' "$T/dump.ini" || fail "example listener missing from dump"

# systemd's notify socket, played by python: one line per datagram
python3 - "$T/notify" "$T/notify.log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        try:
            d = s.recv(4096)
        except socket.timeout:
            break
        log.write(d.decode().replace("\n", " ") + "\n")
        if b"STOPPING=1" in d:
            break
PY
track $!
for _ in $(seq 100); do [ -S "$T/notify" ] && break; sleep 0.05; done

NOTIFY_SOCKET=$T/notify "$TESTD" -c "$T/d.ini" 2>"$T/log" &
pid=$!
track $pid
wait_for "$T/notify.log" 'READY=1'
p1=$(port_of one)
admin=$(port_of admin)
[ -n "$p1" ] && [ -n "$admin" ] || fail "ports not logged: $(cat "$T/log")"
echo_ok "$p1"

# admin endpoint
expect_eq "/healthz" "$(curl -sS "http://127.0.0.1:$admin/healthz")" "ok"
curl -sS "http://127.0.0.1:$admin/metrics" >"$T/metrics" || fail "curl /metrics"
grep -qx 'testd_connections_total{listener="one"} 1' "$T/metrics" || fail "metrics: $(cat "$T/metrics")"
grep -q '^# TYPE coro_runtime_context_switches_total counter$' "$T/metrics" || fail "no runtime metrics"
expect_eq "404" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/nope")" 404
expect_eq "405" "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$admin/metrics")" 405
# keep-alive: two requests on one connection
curl -sS -v "http://127.0.0.1:$admin/healthz" "http://127.0.0.1:$admin/healthz" 2>"$T/curl.err" >/dev/null
grep -q 'Re-using existing connection' "$T/curl.err" || fail "no keep-alive: $(cat "$T/curl.err")"

# an established connection that must survive both reloads
python3 - "$p1" "$T/client" <<'PY' &
import os, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
def echo(m):
    s.sendall(m)
    got = b""
    while len(got) < len(m):
        d = s.recv(100)
        if not d: break
        got += d
    return got == m
ok = echo(b"first\n")
open(sys.argv[2] + ".ready", "w").write("1")
deadline = time.time() + 30
while not os.path.exists(sys.argv[2] + ".go") and time.time() < deadline:
    time.sleep(0.05)
ok = echo(b"second\n") and ok
open(sys.argv[2], "w").write("ok\n" if ok else "bad\n")
PY
client=$!
track $client
wait_for "$T/client.ready" 1

# SIGHUP with a valid change: listener "two" appears, "one" is kept
printf '[listener.two]\nlisten = 127.0.0.1:0\n' >>"$T/d.ini"
kill -HUP $pid
wait_for "$T/log" 'reloaded '
wait_for "$T/notify.log" 'RELOADING=1 MONOTONIC_USEC=[0-9]+'
p2=$(port_of two)
[ -n "$p2" ] || fail "listener two not logged"
expect_eq "listener one kept its port" "$(port_of one)" "$p1"
echo_ok "$p2"
echo_ok "$p1"

# SIGHUP with a broken file: logged with FILE:LINE, old config keeps serving
printf '[listener.three]\nlisten = 127.0.0.1:nope\n' >>"$T/d.ini"
kill -HUP $pid
wait_for "$T/log" 'reload failed'
grep -qF "<3>$T/d.ini:11: [listener.three] listen: bad port (not a number)" "$T/log" ||
    fail "reload error not logged: $(cat "$T/log")"
echo_ok "$p1"
echo_ok "$p2"
[ "$(grep -c 'READY=1' "$T/notify.log")" -ge 3 ] || fail "READY=1 not sent after reloads"

touch "$T/client.go"
wait $client
expect_eq "connection across reloads" "$(cat "$T/client")" "ok"

# SIGTERM: drain and exit 0
kill -TERM $pid
wait $pid
expect_eq "exit status after SIGTERM" "$?" 0
wait_for "$T/notify.log" 'STOPPING=1'
grep -q '<5>stopped' "$T/log" || fail "no 'stopped' log line: $(cat "$T/log")"
pass
