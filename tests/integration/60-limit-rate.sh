#!/bin/bash
# coro limit --rate 200/s passes 600 lines in 3 s: the achieved rate is
# within 2% of the target, and every line comes through unchanged.
. "$(dirname "$0")/lib.sh"

seq 600 >"$T/in"
start=$(date +%s%N)
timeout 20 "$CORO" limit --rate 200/s --stats --json <"$T/in" >"$T/out" 2>"$T/stats" ||
    fail "coro limit exited with $?"
end=$(date +%s%N)
cmp -s "$T/in" "$T/out" || fail "output differs from input"
# The initial burst (4 lines at 200/s) goes at once: the rest takes 596/200 s.
rate=$(awk -v ns=$((end - start)) 'BEGIN { printf "%.1f", 596 / (ns / 1e9) }')
err=$(awk -v r="$rate" 'BEGIN { e = (r - 200) / 200 * 100; printf "%.2f", e < 0 ? -e : e }')
echo "achieved $rate lines/s, error $err%"
awk -v e="$err" 'BEGIN { exit !(e <= 2) }' || fail "rate $rate/s is more than 2% off 200/s"
grep -q '"lines":600' "$T/stats" || fail "stats: $(cat "$T/stats")"
pass
