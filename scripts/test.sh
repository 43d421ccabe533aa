#!/bin/sh
# test.sh [--sanitizers] [--ucontext] - install what is missing, build and
# run the whole test suite, then print one line per test program and the
# total, "N passed, N failed" (tests/summary.sh), as the last line.
#
# Always runs the plain build (in build/). --sanitizers adds a build with
# ASan+UBSan (build-san/), also implied when CI=true; --ucontext adds one
# with the portable ucontext context switch instead of assembly
# (build-ucontext/). Exit status 0 only if every test in every build passed.
set -u
cd "$(dirname "$0")/.." || exit 1

usage() {
    sed -n '2,3p' "$0" | sed 's/^# //'
}
builds="build"
[ "${CI:-}" = true ] && builds="$builds build-san"
for arg in "$@"; do
    case $arg in
    --sanitizers) builds="$builds build-san" ;;
    --ucontext) builds="$builds build-ucontext" ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
builds=$(echo "$builds" | tr ' ' '\n' | awk '!seen[$0]++' | tr '\n' ' ')

scripts/setup-deps.sh || exit 1

for b in $builds; do
    case $b in
    build-san) args=--enable-sanitizers ;;
    build-ucontext) args=--with-context=ucontext ;;
    *) args= ;;
    esac
    mkdir -p "$b"
    # Results of an earlier run must not be counted again.
    find "$b" \( -name '*.trs' -o -name '*.log' \) -path '*tests/*' -exec rm -f {} +
    rm -f "$b/build.trs"
    # shellcheck disable=SC2086 # $args is empty or one word
    if ! scripts/build.sh "$b" $args; then
        # Count a failed build as one failed test, under the name "build".
        echo ":test-result: FAIL" >"$b/build.trs"
        continue
    fi
    echo "test.sh: make check in $b"
    make -C "$b" -j"${JOBS:-$(nproc)}" check >"$b/check.log" 2>&1
    grep -E '^(PASS|FAIL|ERROR|XPASS|XFAIL|SKIP):' "$b/check.log"
    # Show what failed, so a CI log alone is enough to start debugging.
    find "$b/tests" -name '*.trs' -exec grep -lE '^:test-result: (FAIL|ERROR|XPASS)' {} + |
        while read -r t; do
            echo "---- ${t%.trs}.log (last 40 lines)"
            tail -n 40 "${t%.trs}.log"
        done
done

echo "---- results"
# shellcheck disable=SC2086 # one word per build directory
exec tests/summary.sh $builds
