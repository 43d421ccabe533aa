#!/bin/bash
# bench/broker.sh - coro-broker (2 workers) side by side with Debian's
# mosquitto in one run, same loopback, same load generators:
#   qos0, qos1   1 publisher -> 1 subscriber, 64-byte messages (paho, mqtt_bench.py)
#   fanout       1 publisher -> 100 subscribers, QoS 0 (paho)
#   pubs         1,000 concurrent QoS 0 publishers -> 1 subscriber (mqtt_raw.py, raw)
#   idle         RSS per idle client with 10,000 connected clients
# Medians of RUNS (3) runs; the last lines are the ratios coro/mosquitto.
# Env: BUILDDIR (default .), RUNS, N (200000), FAN_N (5000), CASES.
set -u
BUILDDIR=${BUILDDIR:-.}
SRC=$(cd "$(dirname "$0")" && pwd)
BROKER=$BUILDDIR/daemons/broker/coro-broker
PY=/usr/bin/python3
RUNS=${RUNS:-3}; N=${N:-200000}; FAN_N=${FAN_N:-5000}; IDLE=${IDLE:-10000}
CASES=${CASES:-"qos0 qos1 fanout pubs idle"}
[ -x "$BROKER" ] || { echo "broker.sh: $BROKER not built" >&2; exit 1; }
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] ||
    { echo "broker.sh: mosquitto not installed (scripts/setup-deps.sh)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
T=$(mktemp -d /tmp/coro-bench-broker.XXXXXX)
PIDS=""
trap 'for p in $PIDS; do kill $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"' EXIT

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do $PY -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return; sleep 0.05; done; }
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

start() { # start NAME -> PID in SPID, port in SPORT
    SPORT=$(free_port)
    if [ "$1" = coro ]; then
        printf '[runtime]\nworkers = 2\n[log]\nlevel = warning\n[broker]\nsys_interval = 0\n[listener.b]\nlisten = 127.0.0.1:%s\n' "$SPORT" > "$T/coro.ini"
        "$BROKER" -c "$T/coro.ini" 2>>"$T/coro.log" &
    else
        printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nlog_dest none\n' "$SPORT" > "$T/mq.conf"
        /usr/sbin/mosquitto -c "$T/mq.conf" 2>>"$T/mq.log" &
    fi
    SPID=$!
    PIDS="$PIDS $SPID"
    wait_port "$SPORT"
}
stop() { kill "$1"; wait "$1" 2>/dev/null; }

run_case() { # run_case BROKER CASE -> prints the median figure
    local rates=() line
    for _ in $(seq "$RUNS"); do
        start "$1"
        case $2 in
        qos0) line=$($PY "$SRC/mqtt_bench.py" --port "$SPORT" --qos 0 -n "$N" --subs 1 2>&1 | tail -1) ;;
        qos1) line=$($PY "$SRC/mqtt_bench.py" --port "$SPORT" --qos 1 -n "$N" --subs 1 --inflight 100 2>&1 | tail -1) ;;
        fanout) line=$($PY "$SRC/mqtt_bench.py" --port "$SPORT" --qos 0 -n "$FAN_N" --subs 100 --sub-procs 2 2>&1 | tail -1) ;;
        pubs) line=$($PY "$SRC/mqtt_raw.py" pubs --port "$SPORT" --pubs 1000 -n 50 2>&1 | tail -1) ;;
        esac
        echo "  $1 $2: $line" >&2
        rates+=("$(echo "$line" | sed -n 's/.*deliveries_s=\([0-9]*\).*/\1/p')")
        stop "$SPID"
    done
    median "${rates[@]}"
}

idle_case() { # bytes of RSS per idle client
    start "$1"
    local base; base=$(rss_kb "$SPID")
    mkfifo "$T/hold.$1"
    $PY "$SRC/mqtt_raw.py" idle --port "$SPORT" --clients "$IDLE" < "$T/hold.$1" > "$T/idle.$1" &
    local lp=$!
    exec 9>"$T/hold.$1"
    for _ in $(seq 600); do grep -q connected "$T/idle.$1" && break; sleep 0.1; done
    sleep 1
    local after; after=$(rss_kb "$SPID")
    exec 9>&-
    wait $lp
    stop "$SPID"
    echo "  $1 idle: rss ${base} KiB -> ${after} KiB with $IDLE clients" >&2
    echo $(( (after - base) * 1024 / IDLE ))
}

for c in $CASES; do
    if [ "$c" = idle ]; then
        m=$(idle_case mosquitto); k=$(idle_case coro)
        printf 'case=idle mosquitto_bytes_per_client=%s coro_bytes_per_client=%s ratio=%s\n' "$m" "$k" \
            "$(awk -v a="$k" -v b="$m" 'BEGIN {printf "%.2f", b ? a / b : 0}')"
        continue
    fi
    m=$(run_case mosquitto "$c"); k=$(run_case coro "$c")
    printf 'case=%s mosquitto_msgs_s=%s coro_msgs_s=%s ratio=%s\n' "$c" "$m" "$k" \
        "$(awk -v a="$k" -v b="$m" 'BEGIN {printf "%.2f", b ? a / b : 0}')"
done
