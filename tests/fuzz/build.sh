#!/bin/sh
# tests/fuzz/build.sh [OUTDIR] - build every libFuzzer target with clang.
#
# One target per tests/fuzz/fuzz_<parser>.c (which includes the parser's
# sources itself), so adding a parser's fuzzer needs no build change: drop
# in fuzz_<parser>.c and corpus/<parser>/. Clang is called explicitly since
# CC may be gcc, which has no libFuzzer. Exit 77 (skip) without clang.
set -eu
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILDDIR=${BUILDDIR:-$(pwd)}
OUT=${1:-$BUILDDIR/tests/fuzz}
FUZZ_CC=${FUZZ_CC:-clang}

if ! command -v "$FUZZ_CC" >/dev/null 2>&1; then
    echo "fuzz: $FUZZ_CC not found; install clang to build the fuzz targets (skipped)" >&2
    exit 77
fi
mkdir -p "$OUT"
for src in "$SRCDIR"/tests/fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    echo "  FUZZ     $OUT/$t"
    # config.h, if a parser wants it, is in the build tree.
    "$FUZZ_CC" -std=gnu11 -g -O1 -Wall -Wextra -Wno-unused-parameter \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I"$SRCDIR" -I"$SRCDIR/libcommon/include" -I"$SRCDIR/libcommon" -I"$BUILDDIR" \
        "$src" -o "$OUT/$t"
done
