#!/bin/bash
# coro parallel --results DIR: DIR/<seq>/stdout, stderr, exitval per job;
# --json gives one record per job; --dry-run runs nothing.
. "$(dirname "$0")/lib.sh"

timeout 20 "$CORO" parallel --results "$T/r" 'echo out{}; echo err{} >&2; exit {}' ::: 0 3 \
    >/dev/null 2>&1
expect_eq "exit" "$?" "1"
expect_eq "1/stdout" "$(cat "$T/r/1/stdout")" "out0"
expect_eq "1/stderr" "$(cat "$T/r/1/stderr")" "err0"
expect_eq "1/exitval" "$(cat "$T/r/1/exitval")" "0"
expect_eq "2/stdout" "$(cat "$T/r/2/stdout")" "out3"
expect_eq "2/exitval" "$(cat "$T/r/2/exitval")" "3"

out=$(timeout 20 "$CORO" parallel -k --json 'echo "x{}"' ::: 1 2)
expect_eq "json lines" "$(echo "$out" | wc -l)" "2"
echo "$out" | head -1 | grep -q '"seq":1,.*"exitval":0,.*"stdout":"x1\\n"' || fail "json: $out"

out=$(timeout 20 "$CORO" parallel --dry-run 'touch '"$T"'/no.{}' ::: 1 2)
[ ! -e "$T/no.1" ] || fail "--dry-run ran a job"
expect_eq "dry-run prints" "$(echo "$out" | wc -l)" "2"
pass
