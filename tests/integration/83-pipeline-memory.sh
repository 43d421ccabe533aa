#!/bin/bash
# 83-pipeline-memory: 1,000,000 records of 100 bytes (100 MB) behind a slow
# stage: coro's peak RSS (VmHWM) stays bounded by the queues, not the input.
. "$(dirname "$0")/lib.sh"
mawk 'BEGIN { s = sprintf("%099d", 0); for (i = 0; i < 1000000; i++) print s }' > "$T/in"
"$CORO" pipeline --stage cat --stage "mawk -W interactive '{ print }'" \
    --stage cat --buffer 1024 < "$T/in" > "$T/out" &
pid=$!
track $pid
hwm=0
for i in $(seq 1200); do  # at most 120 s
    kill -0 $pid 2>/dev/null || break
    v=$(awk '/^VmHWM/ { print $2 }' /proc/$pid/status 2>/dev/null) && [ -n "$v" ] && hwm=$v
    sleep 0.1
done
[ "$i" -lt 1200 ] || fail "still running after 120 s"
wait $pid || fail "exit status $?"
expect_eq "records" "$(wc -l < "$T/out")" 1000000
echo "peak RSS ${hwm} kB"
# ASan keeps freed memory in quarantine and adds shadow memory: no bound there.
nm -D "$CORO" 2>/dev/null | grep -q __asan_init && skip "RSS bound not checked under ASan"
[ "$hwm" -gt 0 ] && [ "$hwm" -lt 51200 ] || fail "peak RSS ${hwm} kB, want < 50 MB"
pass
