#!/bin/sh
# bench/runtime.sh - run `coro bench runtime` RUNS times (default 3) and
# print, per figure, the median over runs of coro's value, the peer's value
# and the ratio coro/peer, next to the target. Rebuilds first if needed.
#
#   bench/runtime.sh                 # build in $BUILD (default /tmp/coro-build-bench)
#   RUNS=5 BUILD=/tmp/b bench/runtime.sh
#   QUICK=1 bench/runtime.sh         # pass --quick (skips 1,000,000 coroutines)
#   CORO=/path/to/coro bench/runtime.sh   # use an existing binary, no build
#
# Loopback only; each run is bounded (about a minute, 15 s with QUICK=1).
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
BUILD=${BUILD:-${TMPDIR:-/tmp}/coro-build-bench}
QUICK=${QUICK:-0}

if [ -z "${CORO:-}" ]; then
    if [ ! -x "$src/configure" ]; then
        (cd "$src" && flock /tmp/coro-autoreconf.lock sh -c 'test -f configure || autoreconf -fi')
    fi
    mkdir -p "$BUILD"
    if [ ! -f "$BUILD/Makefile" ]; then
        (cd "$BUILD" && "$src/configure" -q)
    fi
    make -C "$BUILD" -s -j"$(nproc)" cli/coro >&2
    CORO=$BUILD/cli/coro
fi

flags=--json
[ "$QUICK" = 1 ] && flags="$flags --quick"

out=$(mktemp)
trap 'rm -f "$out"' EXIT INT TERM
i=1
while [ "$i" -le "$RUNS" ]; do
    echo "run $i/$RUNS ..." >&2
    # shellcheck disable=SC2086 # flags is a word list
    "$CORO" bench runtime $flags >>"$out"
    i=$((i + 1))
done

# One JSON object per line and figure; key the figures by name + peer since
# switch_ns appears once per peer.
python3 - "$out" "$RUNS" <<'PY'
import json, statistics, sys
from collections import OrderedDict
figs = OrderedDict()
for line in open(sys.argv[1]):
    o = json.loads(line)
    figs.setdefault((o["name"], o.get("peer")), []).append(o)
print("medians over %s runs" % sys.argv[2])
print("%-28s %14s %-5s  %-24s %14s %9s  %s"
      % ("figure", "coro", "unit", "peer", "peer value", "ratio", "target"))
for (name, peer), runs in figs.items():
    med = lambda k: statistics.median(r[k] for r in runs)
    coro = med("coro")
    pv = "%14.1f" % med("peer_value") if peer else "%14s" % "-"
    ratio = "%9.3g" % med("ratio") if peer else "%9s" % "-"
    target = runs[0].get("target", "")
    if target:
        met = sum(r["met"] for r in runs)
        target += "  (met in %d/%d runs)" % (met, len(runs))
    print("%-28s %14.1f %-5s  %-24s %s %s  %s"
          % (name, coro, runs[0]["unit"], peer or "-", pv, ratio, target))
PY
