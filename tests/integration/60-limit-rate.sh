#!/bin/bash
# coro limit --rate 200/s passes 600 lines in 3 s: the achieved rate is
# within 2% of the target, and every line comes through unchanged.
. "$(dirname "$0")/lib.sh"

# --burst 40 (200 ms worth) absorbs wake-ups delayed by a loaded machine (a
# sanitizer build next door); without it each delay beyond the default
# burst's 15 ms is lost for good, as a token bucket defines it.
seq 600 >"$T/in"
start=$(date +%s%N)
timeout 20 "$CORO" limit --rate 200/s --burst 40 --stats --json <"$T/in" >"$T/out" 2>"$T/stats" ||
    fail "coro limit exited with $?"
wall=$(($(date +%s%N) - start))
cmp -s "$T/in" "$T/out" || fail "output differs from input"
grep -q '"lines":600' "$T/stats" || fail "stats: $(cat "$T/stats")"

# The rate over the run as coro timed it (from its start to its last line,
# without process start-up, which under ASan and load costs tens of ms):
# the initial burst goes at once, the other 560 lines take 560/200 s.
secs=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' "$T/stats")
rate=$(awk -v s="$secs" 'BEGIN { printf "%.1f", 560 / s }')
err=$(awk -v r="$rate" 'BEGIN { e = (r - 200) / 200 * 100; printf "%.2f", e < 0 ? -e : e }')
echo "achieved $rate lines/s, error $err% (wall clock of the whole command: $((wall / 1000000)) ms)"
awk -v e="$err" 'BEGIN { exit !(e <= 2) }' || fail "rate $rate/s is more than 2% off 200/s"
# The wall clock agrees (start-up included, so a looser bound).
[ $((wall / 1000000)) -ge 2750 ] && [ $((wall / 1000000)) -le 3400 ] ||
    fail "the whole command took $((wall / 1000000)) ms, want about 2800"
pass
