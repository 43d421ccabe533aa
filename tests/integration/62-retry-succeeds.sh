#!/bin/bash
# coro retry runs a failing command again until it succeeds: a command that
# fails twice then succeeds ends with status 0 after exactly 3 runs.
. "$(dirname "$0")/lib.sh"

cat >"$T/flaky" <<'SH'
#!/bin/sh
n=$(cat "$1" 2>/dev/null || echo 0); n=$((n + 1)); echo $n >"$1"
[ "$n" -ge 3 ] || exit 9
echo "ok on try $n"
SH
chmod +x "$T/flaky"
out=$(timeout 20 "$CORO" retry --attempts 5 --backoff 10ms..40ms --jitter none \
    -- "$T/flaky" "$T/count" 2>"$T/err")
expect_eq "exit status" "$?" 0
expect_eq "runs" "$(cat "$T/count")" 3
expect_eq "output" "$out" "ok on try 3"
expect_eq "messages" "$(grep -c 'exited with 9' "$T/err")" 2
grep -q 'next in 0.010 s' "$T/err" || fail "first wait is not MIN: $(cat "$T/err")"
grep -q 'next in 0.020 s' "$T/err" || fail "second wait is not 2*MIN: $(cat "$T/err")"
pass
