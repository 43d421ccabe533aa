#!/bin/bash
# 88-buffer-stats: --stats prints the total, the duration, the throughput
# and the buffer's peak fill on stderr; stdout carries only the data.
. "$(dirname "$0")/lib.sh"
head -c 10M /dev/zero | timeout 30 "$CORO" buffer --stats -m 4M > "$T/out" 2> "$T/err" ||
    fail "exit status $?"
expect_eq "bytes out" "$(wc -c < "$T/out")" 10485760
grep -Eq '^coro buffer: 10\.0 MiB in [0-9.]+ s, [0-9.]+ [KMG]?i?B/s; buffer 4\.00 MiB in 64 blocks of 64\.0 KiB, peak fill [0-9]+%' "$T/err" ||
    fail "stats line: $(cat "$T/err")"
# Without --stats (and stderr not a TTY) nothing is printed.
head -c 1M /dev/zero | "$CORO" buffer > /dev/null 2> "$T/err2"
[ -s "$T/err2" ] && fail "unexpected stderr: $(cat "$T/err2")"
pass
