#!/bin/sh
# start.sh [--stop] - the one command to get going: install what is missing
# (scripts/setup-deps.sh), build coro in build/, then start the daemon suite
# in the background on loopback with demo configs written to build/demo/,
# and print how to try each daemon. Idempotent: a second run stops the
# daemons the first one started and starts them again (state in
# build/demo/ survives). --stop stops exactly the processes start.sh
# started (the PIDs in build/demo/*.pid) and builds nothing.
#
# One demo_NAME function per daemon: it writes build/demo/coro-NAME.ini,
# starts the daemon with run_daemon and prints how to use it. A new daemon
# adds its function and its name to DAEMONS.
set -eu
cd "$(dirname "$0")/.."
DAEMONS="broker"
demo=build/demo
top=$(pwd -P)

# pid_of NAME: the PID in build/demo/coro-NAME.pid if that process is still
# our build/daemons/NAME/coro-NAME (a stale file or a reused PID is not).
pid_of() {
    pid=$(cat "$demo/coro-$1.pid" 2>/dev/null) || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    [ "${exe% (deleted)}" = "$top/build/daemons/$1/coro-$1" ] && echo "$pid"
}

# stop_daemon NAME: SIGTERM, then wait for it to drain and exit (15 s).
stop_daemon() {
    if pid=$(pid_of "$1"); then
        kill -TERM "$pid"
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
        if kill -0 "$pid" 2>/dev/null; then
            echo "start.sh: coro-$1 (pid $pid) did not stop; see $demo/coro-$1.log" >&2
            return 1
        fi
        echo "start.sh: stopped coro-$1 (pid $pid)"
    fi
    rm -f "$demo/coro-$1.pid"
}

# free_port PORT: PORT if nothing listens on 127.0.0.1:PORT, else one the
# kernel picks.
free_port() {
    python3 - "$1" <<'EOF'
import socket, sys
for port in (int(sys.argv[1]), 0):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(s.getsockname()[1])
    break
EOF
}

# run_daemon NAME: start build/daemons/NAME/coro-NAME -c build/demo/coro-NAME.ini
# in the background, in its own session, and wait (10 s) for its "started"
# log line.
run_daemon() {
    log=$demo/coro-$1.log
    : >"$log"
    setsid "build/daemons/$1/coro-$1" -c "$top/$demo/coro-$1.ini" </dev/null >>"$log" 2>&1 &
    echo $! >"$demo/coro-$1.pid"
    i=0
    until grep -q "coro-$1 .* started" "$log"; do
        if ! kill -0 $! 2>/dev/null || [ $i -ge 100 ]; then
            kill -TERM $! 2>/dev/null || true
            tail -n 20 "$log" >&2
            echo "start.sh: coro-$1 did not start (log: $log)" >&2
            return 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
}

demo_broker() {
    port=$(free_port 1883)
    aport=$(free_port 9883)
    cat >"$demo/coro-broker.ini" <<EOF
# Written by scripts/start.sh on each run; every key: conf/coro-broker.ini.
[runtime]
workers = 2
shutdown_timeout = 2s
[admin]
listen = 127.0.0.1:$aport
[broker]
persistence = yes
state_dir = $top/$demo/coro-broker.state
[listener.mqtt]
listen = 127.0.0.1:$port
EOF
    mkdir -p "$demo/coro-broker.state"
    run_daemon broker
    [ "$port" = 1883 ] || note=" (1883 is taken: Debian's mosquitto?)"
    cat <<EOF

coro-broker, MQTT 3.1.1, pid $(cat "$demo/coro-broker.pid"), on 127.0.0.1:$port${note:-}
  config $demo/coro-broker.ini, log $demo/coro-broker.log, state $demo/coro-broker.state/
  mosquitto_sub -h 127.0.0.1 -p $port -t 'demo/#' -v &
  mosquitto_pub -h 127.0.0.1 -p $port -t demo/hello -m hello
  mosquitto_pub -h 127.0.0.1 -p $port -t demo/kept -r -q 1 -m kept   # retained, survives restarts
  curl -s http://127.0.0.1:$aport/metrics | grep ^broker_
  kill -HUP \$(cat $demo/coro-broker.pid)   # reload after editing the config
EOF
}

case ${1:-} in
--stop)
    for d in $DAEMONS; do stop_daemon "$d"; done
    exit 0
    ;;
'') ;;
*) echo "usage: scripts/start.sh [--stop]" >&2; exit 64 ;;
esac
scripts/setup-deps.sh
scripts/build.sh build
mkdir -p "$demo"
for d in $DAEMONS; do stop_daemon "$d"; done
for d in $DAEMONS; do "demo_$d"; done
cat <<EOF

the coro command (build/cli/coro --help):
  build/cli/coro parallel -k -j 3 'sleep 1; echo {}' ::: a b c
  build/cli/coro bench runtime --quick   # the runtime against ucontext, pthreads, libevent (15 s)
stop the daemons: scripts/start.sh --stop   (tests: scripts/test.sh; build output: build/build.log)
EOF
