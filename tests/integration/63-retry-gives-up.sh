#!/bin/bash
# coro retry gives up after N attempts with the last exit status, retries
# only on the --on-exit codes, and kills an attempt at --timeout (124).
. "$(dirname "$0")/lib.sh"

cat >"$T/fail" <<'SH'
#!/bin/sh
n=$(cat "$1" 2>/dev/null || echo 0); echo $((n + 1)) >"$1"; exit "$2"
SH
chmod +x "$T/fail"

timeout 20 "$CORO" retry -n 4 --backoff 5ms..10ms -q -- "$T/fail" "$T/c1" 7
expect_eq "status after giving up" "$?" 7
expect_eq "attempts" "$(cat "$T/c1")" 4

timeout 20 "$CORO" retry -n 4 --backoff 5ms..10ms -q --on-exit 3,5-6 -- "$T/fail" "$T/c2" 7
expect_eq "status, code not listed" "$?" 7
expect_eq "attempts, code not listed" "$(cat "$T/c2")" 1

timeout 20 "$CORO" retry -n 3 --backoff 5ms..10ms -q --on-exit 3,5-6 -- "$T/fail" "$T/c3" 5
expect_eq "status, code listed" "$?" 5
expect_eq "attempts, code listed" "$(cat "$T/c3")" 3

# --timeout kills the attempt and the children it started.
timeout 20 "$CORO" retry -n 2 --backoff 5ms..10ms -q --timeout 300ms \
    -- sh -c 'sleep 30 & echo $! >>"$1"; wait' sh "$T/pids"
expect_eq "status after timeouts" "$?" 124
expect_eq "attempts with timeout" "$(wc -l <"$T/pids")" 2
# Killed means gone or a zombie (an init that does not reap leaves those).
for p in $(cat "$T/pids"); do
    st=$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null)
    case "$st" in "" | Z*) ;; *) fail "grandchild $p survived the timeout ($st)" ;; esac
done

timeout 10 "$CORO" retry -n 3 -- /nonexistent/cmd 2>/dev/null
expect_eq "missing command" "$?" 127
"$CORO" retry --attempts 0 -- true 2>/dev/null
expect_eq "bad option" "$?" 64
pass
