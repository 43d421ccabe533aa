#!/bin/bash
# 81-pipeline-keep-order: a 4-worker stage with uneven per-record cost
# reorders records; --keep-order restores the input order exactly.
. "$(dirname "$0")/lib.sh"
seq 1 3000 > "$T/in"
slow="mawk -W interactive '{ for (i = 0; i < (\$1 % 5) * 3000; i++); print \$1 }':4"
timeout 60 "$CORO" pipeline --stage cat --stage "$slow" --stage cat --keep-order \
    < "$T/in" > "$T/out" || fail "exit status $?"
expect_eq "ordered output" "$(sha256sum < "$T/out")" "$(sha256sum < "$T/in")"
# Without --keep-order the same pipeline does reorder (the case is not vacuous).
timeout 60 "$CORO" pipeline --stage cat --stage "$slow" --stage cat < "$T/in" > "$T/un" ||
    fail "unordered run: exit status $?"
cmp -s "$T/un" "$T/in" && fail "records came out in order without --keep-order"
expect_eq "same records" "$(sort -n "$T/un" | sha256sum)" "$(sha256sum < "$T/in")"
pass
