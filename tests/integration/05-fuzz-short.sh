#!/bin/bash
# Every libFuzzer target (tests/fuzz/fuzz_*.c) runs for 20 s over its seed
# corpus without a crash, leak, sanitizer report or invariant failure.
# Skips without clang (the targets need libFuzzer).
. "$(dirname "$0")/lib.sh"

need clang
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# Reproducers land in the build tree, where they outlive this test's $T.
SRCDIR=$SRCDIR BUILDDIR=$BUILDDIR TMPDIR=$T sh "$SRCDIR/tests/fuzz/run.sh" 20
rc=$?
[ $rc -eq 77 ] && skip "clang cannot build the fuzz targets"
[ $rc -eq 0 ] || fail "a fuzz target failed (see above)"
pass
