#!/bin/bash
# 87-buffer-stalled-consumer: while the consumer does not read, coro buffer
# takes in about -m bytes and then blocks the producer: its peak RSS
# (VmHWM) reaches the limit and stays under limit + slack; afterwards every
# byte arrives.
. "$(dirname "$0")/lib.sh"
mkfifo "$T/fifo"
limit_kb=$((32 * 1024))
# The consumer opens the fifo at once (so coro can open it) but reads only
# once coro has filled its buffer.
(exec 3< "$T/fifo"; while [ ! -e "$T/go" ]; do sleep 0.05; done; exec wc -c <&3 > "$T/count") &
consumer=$!
track $consumer
head -c 200M /dev/zero | "$CORO" buffer -m 32M > "$T/fifo" &
pid=$!
track $pid
hwm=0
for i in $(seq 200); do  # at most 20 s for the buffer to fill
    hwm=$(awk '/^VmHWM/ { print $2 }' /proc/$pid/status)
    [ "$hwm" -ge $limit_kb ] && break
    sleep 0.1
done
[ "$hwm" -ge $limit_kb ] || fail "buffer did not fill: VmHWM ${hwm} kB"
# Full now: nothing moves, RSS stays put.
sleep 0.5
hwm=$(awk '/^VmHWM/ { print $2 }' /proc/$pid/status)
echo "stalled: VmHWM ${hwm} kB (limit ${limit_kb} kB)"
slack_kb=$((8 * 1024))
# ASan adds shadow memory (1/8 of the buffer) and its own allocator's state.
nm -D "$CORO" 2>/dev/null | grep -q __asan_init && slack_kb=$((24 * 1024))
[ "$hwm" -le $((limit_kb + slack_kb)) ] || fail "VmHWM ${hwm} kB above the limit + $slack_kb kB"
touch "$T/go"
wait $pid || fail "coro buffer: exit status $?"
wait $consumer
expect_eq "bytes delivered" "$(cat "$T/count")" $((200 * 1024 * 1024))
pass
