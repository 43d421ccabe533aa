#!/bin/bash
# 84-pipeline-worker-dies: a worker that exits mid-stream makes the run fail
# with a message naming the stage and worker; the other workers are stopped.
. "$(dirname "$0")/lib.sh"
seq 1 10000 > "$T/in"
timeout 30 "$CORO" pipeline --stage cat --stage "mawk -W interactive 'NR == 100 { exit 3 } { print }'" \
    --stage "sleep 1084; cat" < "$T/in" > "$T/out" 2> "$T/err"
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "exit status $rc, want non-zero (not a timeout)"
grep -q 'stage 2 worker 1 (pid [0-9]*): ' "$T/err" || fail "message: $(cat "$T/err")"
pgrep -f 'sleep 1084' >/dev/null && fail "a worker survived"
# A worker that writes extra lines breaks the one-line contract.
seq 1 10 | timeout 30 "$CORO" pipeline --stage "sed -u p" > /dev/null 2> "$T/err2" &&
    fail "extra output lines accepted"
grep -q 'no record' "$T/err2" || fail "message: $(cat "$T/err2")"
pass
