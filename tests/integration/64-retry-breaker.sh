#!/bin/bash
# coro retry --breaker: the circuit opens after N failures across separate
# invocations, later invocations exit 75 without running the command while
# it is open, and once the cooldown has passed exactly one of two concurrent
# invocations gets the half-open probe; its success closes the circuit.
. "$(dirname "$0")/lib.sh"

B="$T/state"
cat >"$T/cmd" <<'SH'
#!/bin/sh
# count runs; fail unless $2 is "ok"; optionally linger ($3 seconds)
n=$(cat "$1" 2>/dev/null || echo 0); echo $((n + 1)) >"$1"
[ -n "${3:-}" ] && sleep "$3"
[ "$2" = ok ]
SH
chmod +x "$T/cmd"
run() { timeout 20 "$CORO" retry -n 1 --breaker "$B" --failures 3 --cooldown 1s -- "$T/cmd" "$@"; }

for i in 1 2 3; do
    run "$T/runs" fail 2>/dev/null
    expect_eq "failure $i status" "$?" 1
done
grep -q '^state open$' "$B" || fail "state file after 3 failures: $(cat "$B")"
opened=$(date +%s%N)
run "$T/runs" ok 2>"$T/err"
expect_eq "while open" "$?" 75
grep -q 'circuit open' "$T/err" || fail "no message: $(cat "$T/err")"
expect_eq "runs while open" "$(cat "$T/runs")" 3

# Wait out the 1 s cooldown (the breaker's clock is the wall clock).
while [ $((($(date +%s%N) - opened) / 1000000)) -lt 1100 ]; do sleep 0.05; done

# Two invocations at once: one probes (and lingers), the other is refused.
run "$T/probe" ok 0.5 2>/dev/null & p1=$!
run "$T/probe" ok 0.5 2>/dev/null & p2=$!
track $p1 $p2
wait $p1; s1=$?
wait $p2; s2=$?
expect_eq "statuses of the racing pair" "$(printf '%s\n' $s1 $s2 | sort -n | tr '\n' ' ')" "0 75 "
expect_eq "probes run" "$(cat "$T/probe")" 1
grep -q '^state closed$' "$B" || fail "state after a good probe: $(cat "$B")"
run "$T/runs" ok
expect_eq "closed again" "$?" 0
expect_eq "runs after closing" "$(cat "$T/runs")" 4
pass
