#!/bin/bash
# bench/cli.sh - the `coro` CLI tools side by side with the tools people
# use for the same job, in one run, medians of RUNS (default 3), ratios.
#
#   bench/cli.sh              # every section
#   bench/cli.sh parallel     # one section
#   RUNS=5 CORO=./cli/coro bench/cli.sh
#
# Builds cli/coro out of tree in $BUILD (default /tmp/coro-build-bench)
# unless CORO names a binary. Each section is a function bench_<name>.
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
BUILD=${BUILD:-${TMPDIR:-/tmp}/coro-build-bench}
if [ -z "${CORO:-}" ]; then
    [ -x "$src/configure" ] ||
        (cd "$src" && flock /tmp/coro-autoreconf.lock sh -c 'test -f configure || autoreconf -fi')
    mkdir -p "$BUILD"
    [ -f "$BUILD/Makefile" ] || (cd "$BUILD" && "$src/configure" -q)
    make -C "$BUILD" -s -j"$(nproc)" cli/coro >&2
    CORO=$BUILD/cli/coro
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# median_of CMD: run CMD (through bash) RUNS times, print the median seconds.
median_of() {
    for _ in $(seq "$RUNS"); do
        s=$(date +%s%N)
        bash -c "$1" >/dev/null 2>&1 || true
        echo "$(( $(date +%s%N) - s ))"
    done | sort -n | awk '{v[NR]=$1} END {printf "%.3f\n", v[int((NR+1)/2)]/1e9}'
}

# ratio NAME A B TARGET: print A/B next to the target.
ratio() {
    awk -v n="$1" -v a="$2" -v b="$3" -v t="$4" \
        'BEGIN {printf "  %-22s %6.2fx   target %s\n", n, (b > 0 ? a / b : 0), t}'
}

# ---- parallel: 5,000 jobs of `true`, -j 8 ------------------------------------
# coro parallel vs xargs -P 8 vs GNU parallel -j 8, same input, medians of RUNS.
# Targets: coro <= 1.1x xargs' time, and >= 4x faster than GNU parallel.
bench_parallel() {
    n=${PARALLEL_JOBS:-5000}
    seq "$n" > "$tmp/parallel.in"
    echo "parallel: $n jobs of 'true', 8 at a time, median of $RUNS runs"
    c=$(median_of "$CORO parallel -j 8 true < $tmp/parallel.in")
    x=$(median_of "xargs -P 8 -n 1 true < $tmp/parallel.in")
    printf '  %-14s %8.3f s\n' "coro parallel" "$c" "xargs -P 8" "$x"
    if command -v parallel >/dev/null 2>&1 && parallel --version 2>/dev/null | grep -q GNU; then
        g=$(median_of "parallel -j 8 true < $tmp/parallel.in")
        printf '  %-14s %8.3f s\n' "GNU parallel" "$g"
    else
        g=
        echo "  GNU parallel: not installed (scripts/setup-deps.sh installs it)"
    fi
    ratio "coro/xargs" "$c" "$x" "<= 1.10"
    [ -n "$g" ] && ratio "GNU parallel/coro" "$g" "$c" ">= 4.00"
    return 0
}

# ---- limit: `coro limit --rate 1000/s` for 5 s -----------------------------------
# No Debian tool limits *lines* per second (pv -L limits bytes), so the
# figure stands against its target: achieved rate within 2% of 1000/s. The
# initial burst (coro limit's default, 20 ms worth = 20 lines) leaves at once
# and is not counted; the wall time includes process start-up.
bench_limit() {
    rate=1000 secs=5 burst=20
    n=$((rate * secs))
    seq "$n" > "$tmp/limit.in"
    echo "limit: $n lines at --rate ${rate}/s, median of $RUNS runs"
    for _ in $(seq "$RUNS"); do
        s=$(date +%s%N)
        timeout $((secs * 3)) "$CORO" limit --rate "$rate/s" < "$tmp/limit.in" > "$tmp/limit.out"
        e=$(date +%s%N)
        cmp -s "$tmp/limit.in" "$tmp/limit.out" || echo "  limit: output differs from input" >&2
        awk -v n=$((n - burst)) -v ns=$((e - s)) 'BEGIN {printf "%.2f\n", n / (ns / 1e9)}'
    done | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}' > "$tmp/limit.rate"
    r=$(cat "$tmp/limit.rate")
    awk -v r="$r" -v t="$rate" 'BEGIN {e = (r - t) / t * 100;
        printf "  %-22s %8.2f lines/s  error %+.2f%%   target within 2%% (%s)\n",
               "coro limit", r, e, (e <= 2 && e >= -2) ? "met" : "MISSED"}'
}

# ---- buffer: 1 GiB through coro buffer vs mbuffer vs pv -q ---------------------------
# From a file and from a pipe (head -c 1G /dev/zero |), to /dev/null. Target:
# coro's throughput >= 0.9x the best peer's (best peer time / coro time).
bench_buffer() {
    for p in mbuffer pv; do
        command -v $p >/dev/null 2>&1 ||
            { echo "buffer: $p not installed (scripts/setup-deps.sh installs it)"; return 0; }
    done
    head -c 1G /dev/zero > "$tmp/buffer.in"
    for src in file pipe; do
        if [ $src = file ]; then pre="" in="< $tmp/buffer.in"; else pre="head -c 1G /dev/zero |" in=""; fi
        echo "buffer: 1 GiB from a $src to /dev/null, median of $RUNS runs"
        c=$(median_of "$pre $CORO buffer $in > /dev/null")
        m=$(median_of "$pre mbuffer -q -m 64M $in > /dev/null")
        p=$(median_of "$pre pv -q $in > /dev/null")
        printf '  %-14s %8.3f s\n' "coro buffer" "$c" "mbuffer" "$m" "pv -q" "$p"
        best=$(printf '%s\n' "$m" "$p" | sort -g | head -1)
        ratio "best peer/coro" "$best" "$c" ">= 0.90"
    done
    rm -f "$tmp/buffer.in"
}

# ---- pipeline: 3 stages, the middle one 4x slower, N=4 for it ---------------------------
# coro pipeline vs the same commands as a shell pipe a | b | c. Two kinds of
# per-record cost: CPU (a mawk loop; `mawk -W interactive` answers line by
# line as the pipeline contract asks, the shell pipe gets plain mawk) and
# waiting (python sleeping per record: a lookup, a remote call). Target:
# >= 3x the shell pipe's throughput (shell time / coro time). CPU-bound
# stages cannot gain more than the CPUs allow: on 2 CPUs the shell pipe
# already runs a and c beside b (4 units a record), and 1 + 4 + 1 units over
# 2 CPUs is 3 units (at most 1.33x); see bench/README.md.
bench_pipeline() {
    k=2000
    seq 10000 > "$tmp/pl.cpu"
    a="{ for (i = 0; i < $k; i++); print }" b="{ for (i = 0; i < 4 * $k; i++); print }"
    echo "pipeline, CPU-bound: 10,000 records, mawk loop, middle 4x ($(nproc) CPUs), median of $RUNS runs"
    c=$(median_of "$CORO pipeline --stage \"mawk -W interactive '$a'\" \
        --stage \"mawk -W interactive '$b':4\" --stage \"mawk -W interactive '$a'\" < $tmp/pl.cpu")
    s=$(median_of "mawk '$a' < $tmp/pl.cpu | mawk '$b' | mawk '$a'")
    printf '  %-22s %8.3f s\n' "coro pipeline 1,4,1" "$c" "shell a | b | c" "$s"
    ratio "shell/coro" "$s" "$c" ">= 3.00 (at most 1.33 on 2 CPUs)"
    seq 1000 > "$tmp/pl.wait"
    # 2 / 8 / 2 ms rather than 1 / 4 / 1: a 1 ms sleep overshoots by a good
    # fraction of itself on a busy machine, which blurs the 4x ratio.
    w1="import sys, time
for l in sys.stdin: time.sleep(0.002); sys.stdout.write(l)"
    w4=${w1/0.002/0.008}
    echo "pipeline, wait-bound: 1,000 records, sleep 2 / 8 / 2 ms per record, median of $RUNS runs"
    c=$(median_of "$CORO pipeline --stage \"python3 -uc '$w1'\" --stage \"python3 -uc '$w4':4\" \
        --stage \"python3 -uc '$w1'\" < $tmp/pl.wait")
    s=$(median_of "python3 -uc '$w1' < $tmp/pl.wait | python3 -uc '$w4' | python3 -uc '$w1'")
    printf '  %-22s %8.3f s\n' "coro pipeline 1,4,1" "$c" "shell a | b | c" "$s"
    ratio "shell/coro" "$s" "$c" ">= 3.00"
}

# ---- main ------------------------------------------------------------------------
sections=${*:-$(declare -F | awk '$3 ~ /^bench_/ {sub(/^bench_/, "", $3); print $3}')}
for s in $sections; do
    "bench_$s"
done
