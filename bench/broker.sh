#!/bin/bash
# bench/broker.sh - coro-broker side by side with Debian's mosquitto, in one
# run, driven by the same load generator (bench/mqtt_load, coroutines, one
# worker thread by default). Per case it prints the median over RUNS of each
# broker's figure and the ratio coro/mosquitto.
#
#   bench/broker.sh                     # build in $BUILD, all cases, 3 runs
#   RUNS=5 CASES="qos0 fanout" bench/broker.sh
#   BUILD=/work/build bench/broker.sh   # reuse a build dir (make bench + broker)
#   ONLY=mosquitto bench/broker.sh      # one broker only (no ratios)
#
# Cases (64-byte payloads; publishers publish for DUR seconds, then the
# subscribers drain; deliveries/s = messages received / time to the last):
#   qos0      1 publisher -> 1 subscriber, QoS 0
#   qos1      the same at QoS 1, 64 PUBLISH in flight, every count exact
#   fanout    1 publisher -> FAN_SUBS (100) subscribers, QoS 0
#   manypubs  MANY_PUBS (1,000) concurrent publishers -> 1 subscriber, QoS 0
#   idle      IDLE_CONNS (10,000) idle clients: broker RSS growth per client
# Brokers: mosquitto with the anchors' config (persistence false, default
# queue limits, max_connections -1) and coro-broker with [runtime] workers =
# WORKERS (2) and persistence = no, each on its own free 127.0.0.1 port and
# temp dir, one at a time on this machine; every run is bounded by `timeout`,
# and only the PID started here is stopped.
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
CASES=${CASES:-"qos0 qos1 fanout manypubs idle"}
DUR=${DUR:-5}
FAN_SUBS=${FAN_SUBS:-100}
MANY_PUBS=${MANY_PUBS:-1000}
IDLE_CONNS=${IDLE_CONNS:-10000}
WORKERS=${WORKERS:-2}            # coro-broker [runtime] workers
LOAD_WORKERS=${LOAD_WORKERS:-1}  # mqtt_load worker threads
ONLY=${ONLY:-}                   # mosquitto | coro: run one broker only
BUILD=${BUILD:-${TMPDIR:-/tmp}/coro-build-bench}
RES=${RES:-${TMPDIR:-/tmp}/coro-bench-broker}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}

die() { echo "broker.sh: $*" >&2; exit 1; }

build() {
    if [ -z "${LOAD:-}" ] || { [ -z "${CORO_BROKER:-}" ] && [ "$ONLY" != mosquitto ]; }; then
        if [ ! -x "$src/configure" ]; then
            (cd "$src" && flock /tmp/coro-autoreconf.lock sh -c 'test -f configure || autoreconf -fi')
        fi
        mkdir -p "$BUILD"
        [ -f "$BUILD/Makefile" ] || (cd "$BUILD" && "$src/configure" -q)
        make -C "$BUILD" -s -j"$(nproc)" bench >&2
        if [ "$ONLY" != mosquitto ]; then
            make -C "$BUILD" -s -j"$(nproc)" daemons/broker/coro-broker >&2 ||
                die "coro-broker does not build (ONLY=mosquitto runs the peer alone)"
        fi
    fi
    LOAD=${LOAD:-$BUILD/bench/mqtt_load}
    CORO_BROKER=${CORO_BROKER:-$BUILD/daemons/broker/coro-broker}
    [ -x "$MOSQUITTO" ] || die "no $MOSQUITTO: run scripts/setup-deps.sh (installs mosquitto)"
}

# ---- brokers ------------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/coro-bench-broker.XXXXXX")
CUR= # the broker running now (one at a time); stopped PIDs are forgotten
cleanup() {
    [ -n "$CUR" ] && stop_broker "$CUR"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # port pid
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# start_broker NAME -> sets PID and PORT
start_broker() {
    PORT=$(free_port)
    local dir=$TMP/$1.$PORT
    mkdir -p "$dir"
    if [ "$1" = mosquitto ]; then
        cat >"$dir/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
max_connections -1
log_dest stderr
log_type error
log_type warning
EOF
        "$MOSQUITTO" -c "$dir/mosquitto.conf" >"$dir/out" 2>&1 &
    else
        cat >"$dir/coro-broker.ini" <<EOF
[runtime]
workers = $WORKERS
[log]
level = warning
[broker]
persistence = no
[listener.bench]
listen = 127.0.0.1:$PORT
EOF
        "$CORO_BROKER" -c "$dir/coro-broker.ini" >"$dir/out" 2>&1 &
    fi
    PID=$!
    CUR=$PID
    wait_port "$PORT" "$PID" || { cat "$dir/out" >&2; die "$1 did not listen on $PORT"; }
}

stop_broker() { # pid
    CUR=
    kill "$1" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# ---- cases --------------------------------------------------------------------

case_args() {
    case $1 in
    qos0) echo "pubsub -q 0 -d $DUR" ;;
    qos1) echo "pubsub -q 1 -d $DUR -i 64" ;;
    fanout) echo "fanout -q 0 -S $FAN_SUBS -d $DUR -w 2000" ;;
    manypubs) echo "many-pubs -q 0 -P $MANY_PUBS -d $DUR" ;;
    idle) echo "conns -c $IDLE_CONNS --hold 2" ;;
    *) die "unknown case $1" ;;
    esac
}

# field NAME LINE: the value of NAME=... in a result line
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR ? a[int((NR+1)/2)] : "NA")}'; }

# run_one CASE BROKER: appends the figure to FIG_<broker>, trouble to NOTES
run_one() {
    local cs=$1 who=$2 line key v lost errs
    start_broker "$who"
    # shellcheck disable=SC2046 # case_args is a word list
    line=$(timeout 300 "$LOAD" $(case_args "$cs") -a "127.0.0.1:$PORT" -p "$PID" \
        -W "$LOAD_WORKERS" -t 60 -l "case=$cs broker=$who " 2>&1 | tail -1) || true
    stop_broker "$PID"
    echo "$line" >>"$RES/lines.txt"
    echo "  $line" >&2
    key=deliveries_s
    [ "$cs" = idle ] && key=bytes_per_client
    v=$(field "$key" "$line")
    case $v in '' | *[!0-9.-]*) v=NA ;; esac
    eval "FIG_$who+=(\"$v\")"
    if [ "$cs" = idle ]; then
        lost=$(field dropped "$line")
        errs=$(($(field conns "$line") - $(field connected "$line"))) 2>/dev/null || errs='?'
    else
        lost=$(field lost "$line")
        errs=$(field errors "$line")
        eval "GEN_$who+=\"\$(field gen_cpu \"\$line\"),\""
    fi
    if [ "${lost:-?}" != 0 ] || [ "${errs:-?}" != 0 ]; then
        NOTES+="$who:lost=${lost:-?},errors=${errs:-?} "
    fi
}

run_case() {
    local cs=$1 i order m c ratio target
    FIG_mosquitto=() FIG_coro=() NOTES="" GEN_mosquitto="" GEN_coro=""
    for i in $(seq 1 "$RUNS"); do
        # alternate who goes first so that drift hits both
        order="mosquitto coro"
        [ $((i % 2)) = 0 ] && order="coro mosquitto"
        for who in $order; do
            [ -n "$ONLY" ] && [ "$ONLY" != "$who" ] && continue
            run_one "$cs" "$who"
        done
    done
    m=$(median "${FIG_mosquitto[@]}")
    c=$(median "${FIG_coro[@]}")
    ratio=$(awk -v c="$c" -v m="$m" 'BEGIN{ if (c+0 > 0 && m+0 > 0) printf "%.2f", c/m; else print "NA" }')
    target=">= 1.5"
    [ "$cs" = idle ] && target="<= 1.0"
    # gen_cpu: the generator's CPU / wall time (1 worker: near 1.0 = it was the bottleneck)
    local gen=
    [ -n "$GEN_mosquitto$GEN_coro" ] && gen=" gen_cpu m=${GEN_mosquitto%,} c=${GEN_coro%,}"
    printf '%-9s %-13s %10s %10s %6s  %-7s m=%s c=%s%s%s\n' "$cs" \
        "$([ "$cs" = idle ] && echo bytes/client || echo deliveries/s)" "$m" "$c" "$ratio" \
        "$target" "$(IFS=,; echo "${FIG_mosquitto[*]}")" "$(IFS=,; echo "${FIG_coro[*]}")" \
        "$gen" "${NOTES:+ ($NOTES)}" |
        tee -a "$RES/summary.txt"
}

build
mkdir -p "$RES"
: >"$RES/lines.txt"
# 10,000 idle clients: one fd each in the load generator and in the broker
ulimit -n $((IDLE_CONNS + MANY_PUBS + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

mv=$("$MOSQUITTO" -h 2>/dev/null | sed -n '1s/.*version \([0-9.]*\).*/\1/p')
{
    echo "broker bench $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, RUNS=$RUNS, DUR=${DUR}s," \
        "load: mqtt_load workers=$LOAD_WORKERS"
    echo "mosquitto ${mv:-?} (Debian, single-threaded): persistence false," \
        "max_queued_messages 1000 (default), max_connections -1"
    echo "coro-broker: [runtime] workers = $WORKERS, [broker] persistence = no, other limits default"
    echo "fanout 1->$FAN_SUBS, manypubs $MANY_PUBS->1, idle $IDLE_CONNS clients; payload 64 B"
    printf '%-9s %-13s %10s %10s %6s  %-7s %s\n' case figure mosquitto coro ratio target runs
} | tee "$RES/summary.txt"
for cs in $CASES; do
    run_case "$cs"
done
echo "lines: $RES/lines.txt" >&2
