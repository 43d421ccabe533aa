#!/bin/bash
# 86-buffer-integrity: 200 MB of random data through `coro buffer` come out
# byte for byte (sha256), from a pipe and from a file, with the default
# blocks and with small blocks behind a slower consumer (the block path,
# not only splice).
. "$(dirname "$0")/lib.sh"
head -c 200M /dev/urandom > "$T/in"
want=$(sha256sum < "$T/in")
got=$(cat "$T/in" | timeout 60 "$CORO" buffer | sha256sum)
expect_eq "pipe in, pipe out" "$got" "$want"
got=$(timeout 60 "$CORO" buffer < "$T/in" | sha256sum)
expect_eq "file in" "$got" "$want"
got=$(cat "$T/in" | timeout 60 "$CORO" buffer -m 1M -s 4k | dd bs=512 status=none | sha256sum)
expect_eq "small blocks, slow consumer" "$got" "$want"
timeout 60 "$CORO" buffer -m 8M < "$T/in" > "$T/out" || fail "to a file: exit status $?"
expect_eq "file out" "$(sha256sum < "$T/out")" "$want"
pass
