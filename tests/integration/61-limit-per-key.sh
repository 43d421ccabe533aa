#!/bin/bash
# coro limit --key-field: each key gets its own rate and a throttled key does
# not hold back the others; order is kept within a key. A sliding window
# lets exactly N through at once and the next one only after the interval.
. "$(dirname "$0")/lib.sh"

# 20 lines of key a, then 20 of key b, at 10/s each (burst 2): about 2 s in
# all when keys are independent, 4 s if b had to wait behind a.
{ for i in $(seq 20); do echo "a $i"; done; for i in $(seq 20); do echo "b $i"; done; } >"$T/in"
start=$(date +%s%N)
timeout 20 "$CORO" limit --rate 10/s --key-field 1 <"$T/in" >"$T/out" || fail "exit $?"
ms=$((($(date +%s%N) - start) / 1000000))
echo "40 lines over 2 keys in $ms ms"
[ "$ms" -ge 1600 ] && [ "$ms" -le 2800 ] || fail "took $ms ms, want about 1900"
expect_eq "key a in order" "$(grep '^a' "$T/out" | tr '\n' ' ')" "$(grep '^a' "$T/in" | tr '\n' ' ')"
expect_eq "key b in order" "$(grep '^b' "$T/out" | tr '\n' ' ')" "$(grep '^b' "$T/in" | tr '\n' ' ')"
first_b=$(grep -n '^b' "$T/out" | head -1 | cut -d: -f1)
[ "$first_b" -lt 10 ] || fail "key b started at line $first_b: it waited behind key a"

# --delimiter: field 2 of comma-separated lines.
printf 'x,k1\ny,k2\nz,k1\n' | timeout 10 "$CORO" limit --rate 100/s -k 2 -d , >"$T/out2"
expect_eq "delimited lines" "$(sort "$T/out2" | tr '\n' ' ')" "x,k1 y,k2 z,k1 "

# Sliding window, 5 per second: 5 at once, the 6th after 1 s.
start=$(date +%s%N)
seq 6 | timeout 10 "$CORO" limit --rate 5/s --algorithm sliding-window >/dev/null
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -ge 990 ] && [ "$ms" -le 1500 ] || fail "sliding window: 6 lines took $ms ms"
start=$(date +%s%N)
seq 5 | timeout 10 "$CORO" limit --rate 5/s --algorithm sliding-window >/dev/null
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -le 500 ] || fail "sliding window: 5 lines took $ms ms, want at once"

"$CORO" limit --rate 5/fortnight </dev/null 2>/dev/null
expect_eq "bad rate exit" "$?" 64
pass
