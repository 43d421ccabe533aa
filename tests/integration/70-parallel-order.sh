#!/bin/bash
# coro parallel: --keep-order prints in input order although later jobs end
# first; placeholders {} {.} {/} {//} {/.} {#} {N}; exit status = failed count.
. "$(dirname "$0")/lib.sh"

out=$(seq 6 | timeout 20 "$CORO" parallel -j 6 -k 'sleep 0.$((7 - {})); echo {}') ||
    fail "keep-order run failed"
expect_eq "keep-order" "$(echo $out)" "1 2 3 4 5 6"

out=$(timeout 20 "$CORO" parallel -k 'echo {#} {} {.} {/} {//} {/.}' ::: /d/x.tar.gz y.txt)
expect_eq "placeholders" "$out" "1 /d/x.tar.gz /d/x.tar x.tar.gz /d x.tar
2 y.txt y y.txt . y"

out=$(timeout 20 "$CORO" parallel -k echo {2}-{1} ::: a b ::: 1 2)
expect_eq "cartesian product" "$(echo $out)" "1-a 2-a 1-b 2-b"

out=$(timeout 20 "$CORO" parallel -k echo ::: 'a b' "c'd" '$HOME')
expect_eq "values quoted, {} appended" "$out" "a b
c'd
\$HOME"

timeout 20 "$CORO" parallel 'exit {}' ::: 0 1 0 2 3
expect_eq "exit status = failed jobs" "$?" "3"
timeout 60 "$CORO" parallel -j 50 false ::: $(seq 120)
expect_eq "exit status capped" "$?" "101"
timeout 20 "$CORO" parallel true ::: 1 2 3 || fail "all ok must exit 0"
pass
