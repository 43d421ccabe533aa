#!/bin/bash
# 89-buffer-epipe: a consumer that exits early ends coro buffer quietly by
# SIGPIPE (status 141, as for cat), and bad sizes are usage errors.
. "$(dirname "$0")/lib.sh"
timeout 30 bash -c 'yes | "$0" buffer 2> "$1/err" | head -1 > /dev/null; exit ${PIPESTATUS[1]}' \
    "$CORO" "$T"
expect_eq "exit status" "$?" 141
[ -s "$T/err" ] && fail "unexpected stderr: $(cat "$T/err")"
"$CORO" buffer -m 10x < /dev/null 2> /dev/null
expect_eq "bad size" "$?" 64
"$CORO" buffer -m 64k -s 64k < /dev/null 2> /dev/null
expect_eq "less than 2 blocks" "$?" 64
pass
