# lib.sh - sourced by tests/integration/*.sh.
#
# Gives every test: $CORO (the built `coro` binary), $BUILDDIR, a private
# temp dir $T removed on exit, pass/fail/skip helpers using automake's exit
# codes (0 pass, 1 fail, 77 skip), and cleanup of the PIDs a test started
# (register them with `track PID`).
set -u
BUILDDIR=${BUILDDIR:-$(pwd)}
CORO=${CORO:-$BUILDDIR/cli/coro}
T=$(mktemp -d "${TMPDIR:-/tmp}/coro-it.XXXXXX")
TRACKED=""

track() { TRACKED="$TRACKED $*"; }

cleanup() {
    for p in $TRACKED; do kill "$p" 2>/dev/null; done
    for p in $TRACKED; do wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
pass() { echo "PASS: ${*:-$(basename "$0")}"; exit 0; }

# expect_eq WHAT GOT WANT
expect_eq() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; }

# A command must exist (tests install their peers through scripts/setup-deps.sh).
need() { command -v "$1" >/dev/null 2>&1 || skip "$1 not installed"; }
