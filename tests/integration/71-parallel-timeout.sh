#!/bin/bash
# coro parallel --timeout kills the job's whole process group: the
# background grandchild (pid written to a file) is gone afterwards.
. "$(dirname "$0")/lib.sh"

start=$(date +%s%N)
timeout 20 "$CORO" parallel --timeout 300ms --joblog "$T/log" \
    'sleep 30 & echo $! > '"$T"'/pid.{}; wait' ::: 1 2 2>"$T/err"
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
expect_eq "both timed-out jobs failed" "$rc" "2"
[ "$ms" -lt 5000 ] || fail "took ${ms} ms: the jobs were not killed at the timeout"
grep -q "timed out" "$T/err" || fail "no timeout warning"
for i in 1 2; do
    pid=$(cat "$T/pid.$i") || fail "no pidfile"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid")" != Z ]; then
        kill "$pid"; fail "grandchild $pid survived the timeout"
    fi
done
expect_eq "joblog exitval -1 (timeout)" "$(awk 'NR>1 {print $7}' "$T/log" | sort -u)" "-1"
pass
