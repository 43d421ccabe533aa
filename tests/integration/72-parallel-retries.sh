#!/bin/bash
# coro parallel --retries: a job failing twice then succeeding (counter
# file) succeeds with 3 attempts and is reported once; too few attempts fail.
. "$(dirname "$0")/lib.sh"

cmd='n=$(cat '"$T"'/c.{} 2>/dev/null || echo 0); n=$((n+1)); echo $n > '"$T"'/c.{}; echo try$n; [ $n -ge 3 ]'
out=$(timeout 20 "$CORO" parallel --retries 3 --backoff 10ms..50ms "$cmd" ::: a) ||
    fail "job should succeed on the third attempt"
expect_eq "only the last attempt's output" "$out" "try3"
expect_eq "attempts" "$(cat "$T/c.a")" "3"

timeout 20 "$CORO" parallel --retries 2 --backoff 10ms..50ms "$cmd" ::: b >/dev/null
expect_eq "two attempts are not enough" "$?" "1"
expect_eq "attempts" "$(cat "$T/c.b")" "2"
pass
