#!/bin/bash
# coro parallel --joblog in GNU parallel's format; --resume skips the jobs
# the log shows, --resume-failed reruns only the failed ones.
. "$(dirname "$0")/lib.sh"

log=$T/log
timeout 20 "$CORO" parallel --joblog "$log" 'echo {} >> '"$T"'/runs; exit $(({} % 2))' ::: 1 2 3 4
expect_eq "two failed" "$?" "2"
expect_eq "header" "$(head -1 "$log")" "$(printf 'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand')"
expect_eq "rows" "$(awk -F'\t' 'NR>1 {print $1, $7, $8}' "$log" | sort | tr '\n' ,)" "1 1 0,2 0 0,3 1 0,4 0 0,"
expect_eq "runs" "$(sort "$T/runs" | tr -d '\n')" "1234"

: > "$T/runs"
timeout 20 "$CORO" parallel --joblog "$log" --resume 'echo {} >> '"$T"'/runs' ::: 1 2 3 4 5
expect_eq "--resume runs only the new job" "$(cat "$T/runs" | tr -d '\n')" "5"

: > "$T/runs"
timeout 20 "$CORO" parallel --joblog "$log" --resume-failed 'echo {} >> '"$T"'/runs' ::: 1 2 3 4 5
expect_eq "--resume-failed reruns the failed" "$(sort "$T/runs" | tr -d '\n')" "13"
pass
