#!/bin/bash
# coro parallel --halt now,fail=1 stops at the first failure: later jobs
# never start and running ones are killed; the exit status is the failed
# job's. --halt soon lets running jobs finish.
. "$(dirname "$0")/lib.sh"

start=$(date +%s%N)
timeout 20 "$CORO" parallel -j 2 --halt now,fail=1 \
    'if [ {} = 1 ]; then exit 4; fi; sleep 20; touch '"$T"'/ran.{}' ::: $(seq 10)
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
expect_eq "halt exit status" "$rc" "4"
[ "$ms" -lt 5000 ] || fail "halt now did not kill the running job (${ms} ms)"
[ -z "$(ls "$T" | grep ran)" ] || fail "jobs ran after the halt: $(ls "$T")"

out=$(timeout 20 "$CORO" parallel -j 2 -k --halt soon,fail=1 \
    'if [ {} = 1 ]; then exit 3; fi; sleep 0.3; echo {}' ::: 1 2 3 4 5 6)
expect_eq "soon: the running job finishes, no new ones" "$(echo $out)" "2"

timeout 20 "$CORO" parallel -j 1 --halt now,success=1 'exit {}' ::: 1 0 1 1
expect_eq "success=1 halts with 0" "$?" "0"
pass
