#!/bin/sh
# tests/fuzz/run.sh [SECONDS] - build every fuzz target and run each for
# SECONDS (default 30) over its seed corpus, tests/fuzz/corpus/<parser>/.
#
# New inputs libFuzzer finds go to a scratch corpus, never into the
# source tree; a crash, leak, sanitizer report or timeout fails the run and
# leaves the reproducer in $FUZZ_ARTIFACTS (default: a directory under
# the build tree) to replay with `tests/fuzz/fuzz_<parser> FILE`.
# Exit 0 all clean, 1 a target failed, 77 clang missing (skip).
set -u
SECONDS_EACH=${1:-30}
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILDDIR=${BUILDDIR:-$(pwd)}
OUT=$BUILDDIR/tests/fuzz
ARTIFACTS=${FUZZ_ARTIFACTS:-$OUT/artifacts}

SRCDIR=$SRCDIR BUILDDIR=$BUILDDIR sh "$SRCDIR/tests/fuzz/build.sh" "$OUT"
rc=$?
[ $rc -eq 0 ] || exit $rc
mkdir -p "$ARTIFACTS"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/coro-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
failed=""
for src in "$SRCDIR"/tests/fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    parser=${t#fuzz_}
    corpus=$SRCDIR/tests/fuzz/corpus/$parser
    [ -d "$corpus" ] || { echo "fuzz: $t: no seed corpus $corpus" >&2; failed="$failed $t"; continue; }
    mkdir -p "$scratch/$parser"
    echo "fuzz: $t for ${SECONDS_EACH}s over $corpus"
    if "$OUT/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$t-" \
        "$scratch/$parser" "$corpus" >"$scratch/$t.log" 2>&1; then
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|DONE' "$scratch/$t.log" |
            sed "s/^/fuzz: $t: /"
    else
        echo "fuzz: $t FAILED; last lines of its log:" >&2
        tail -40 "$scratch/$t.log" >&2
        echo "fuzz: reproducer(s) in $ARTIFACTS/" >&2
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed" >&2
    exit 1
fi
echo "fuzz: all targets clean"
