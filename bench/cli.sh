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

# ---- main ------------------------------------------------------------------------
sections=${*:-$(declare -F | awk '$3 ~ /^bench_/ {sub(/^bench_/, "", $3); print $3}')}
for s in $sections; do
    "bench_$s"
done
