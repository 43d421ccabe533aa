# broker_lib.sh - sourced by tests/integration/2x-broker-*.sh after lib.sh:
# start coro-broker on a free loopback port with a config of the test's
# choosing, wait until it listens, and helpers shared by the broker tests.
BROKER=$BUILDDIR/daemons/broker/coro-broker
[ -x "$BROKER" ] || fail "$BROKER not built"
PY=/usr/bin/python3
need mosquitto_pub
need mosquitto_sub

free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for FILE REGEX: poll (bounded, 10 s) until a line of FILE matches.
wait_for() {
    for _ in $(seq 200); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    fail "timed out waiting for /$2/ in $1: $(tail -5 "$1" 2>/dev/null)"
}

# broker_conf PORT [EXTRA INI TEXT]: a config in $T/broker.ini.
broker_conf() {
    cat > "$T/broker.ini" <<INI
[runtime]
workers = 2
shutdown_timeout = 2s
[log]
level = debug
[broker]
sys_interval = 0
state_dir = $T/state
${2:-}
[listener.mqtt]
listen = 127.0.0.1:$1
INI
}

# start_broker: run it on $T/broker.ini, log in $T/log; sets BPID.
start_broker() {
    "$BROKER" -c "$T/broker.ini" >> "$T/log" 2>&1 &
    BPID=$!
    track $BPID
    wait_for "$T/log" "started with"
}
