#!/bin/bash
# coro passwd: create a file, add and change users from stdin and -b,
# delete one, and check passwords with --verify; the file is mode 0600 and
# holds user:$7$210000$salt$hash lines.
. "$(dirname "$0")/lib.sh"

F="$T/passwd"
"$CORO" passwd -c -b "$F" alice 'first pass' || fail "create: $?"
echo 'bob secret' | "$CORO" passwd "$F" bob || fail "add from stdin: $?"
expect_eq "mode" "$(stat -c %a "$F")" 600
expect_eq "users" "$(cut -d: -f1 "$F" | tr '\n' ' ')" "alice bob "
grep -Eq '^alice:\$7\$210000\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{86}==$' "$F" ||
    fail "line format: $(head -1 "$F")"

v() { printf '%s\n' "$2" | "$CORO" passwd --verify "$F" "$1"; echo $?; }
expect_eq "alice right" "$(v alice 'first pass')" 0
expect_eq "alice wrong" "$(v alice 'first')" 1
expect_eq "bob right" "$(v bob 'bob secret')" 0
expect_eq "nobody" "$(v carol 'x')" 1

"$CORO" passwd -b "$F" alice 'second pass' || fail "change: $?"
expect_eq "alice old" "$(v alice 'first pass')" 1
expect_eq "alice new" "$(v alice 'second pass')" 0

"$CORO" passwd -D "$F" bob || fail "delete: $?"
expect_eq "bob deleted" "$(v bob 'bob secret')" 1
expect_eq "users left" "$(cut -d: -f1 "$F" | tr '\n' ' ')" "alice "
"$CORO" passwd -D "$F" bob 2>/dev/null
expect_eq "delete missing user" "$?" 1
ls "$T" | grep -q tmp && fail "temp file left behind: $(ls "$T")"

echo 'garbage line' >"$T/bad"
"$CORO" passwd -b "$T/bad" x y 2>"$T/err"
expect_eq "malformed file" "$?" 65
grep -q ':1:' "$T/err" || fail "no line number: $(cat "$T/err")"
"$CORO" passwd -b "$F" 'a:b' pw 2>/dev/null
expect_eq "bad user name" "$?" 64
pass
