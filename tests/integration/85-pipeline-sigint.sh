#!/bin/bash
# 85-pipeline-sigint: SIGINT kills the workers and exits with 130.
. "$(dirname "$0")/lib.sh"
mkfifo "$T/fifo"
"$CORO" pipeline --stage "cat" --stage "sleep 1085:3" < "$T/fifo" > /dev/null 2>&1 &
pid=$!
track $pid
exec 3> "$T/fifo"
echo hello >&3
kids=
for _ in $(seq 100); do
    kids=$(pgrep -P $pid | tr '\n' ' ')
    [ "$(echo $kids | wc -w)" -ge 4 ] && break
    sleep 0.05
done
[ "$(echo $kids | wc -w)" -ge 4 ] || fail "workers did not start: '$kids'"
kill -INT $pid
wait $pid
expect_eq "exit status" "$?" 130
exec 3>&-
for k in $kids; do
    kill -0 "$k" 2>/dev/null && fail "worker $k survived SIGINT"
done
pass
