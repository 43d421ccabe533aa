#!/bin/bash
# SIGINT to coro parallel kills the running jobs (their process groups,
# grandchildren included) and exits 130.
. "$(dirname "$0")/lib.sh"

"$CORO" parallel -j 3 'sleep 30 & echo $! > '"$T"'/pid.{}; wait' ::: 1 2 3 4 5 6 &
cp=$!
track $cp
for _ in $(seq 200); do [ "$(ls "$T" | grep -c pid)" -ge 3 ] && break; sleep 0.05; done
[ "$(ls "$T" | grep -c pid)" -ge 3 ] || fail "jobs did not start"
kill -INT $cp
timeout 10 tail --pid=$cp -f /dev/null || fail "coro parallel did not exit after SIGINT"
wait $cp
expect_eq "exit status" "$?" "130"
[ "$(ls "$T" | grep -c pid)" -eq 3 ] || fail "new jobs started after SIGINT"
for f in "$T"/pid.*; do
    pid=$(cat "$f")
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid")" != Z ]; then
        kill "$pid"; fail "grandchild $pid survived SIGINT"
    fi
done
pass
