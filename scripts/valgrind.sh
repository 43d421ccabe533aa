#!/bin/sh
# valgrind.sh - build with the assembly context switch (build-valgrind/) and
# run every unit suite under Valgrind's memcheck: any invalid access,
# uninitialised read or definite/possible leak fails the suite. Ends with
# tests/summary.sh's "N passed, N failed".
#
# Check's fork mode stays on (each test in its own child, which Valgrind
# follows across fork), so a test's memory error fails that test and the
# per-test timeouts still work; they are stretched because Valgrind is slow.
# Wall-clock bounds inside tests may still fail: Valgrind runs 20-50x slower.
# The runtime announces every coroutine stack (VALGRIND_STACK_REGISTER), so
# stack switches are not mistaken for stack overflows.
set -eu
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
dir=build-valgrind
find "$dir" \( -name '*.trs' -o -name '*.log' \) -path '*tests/*' -exec rm -f {} + 2>/dev/null || true
scripts/build.sh "$dir" --with-context=asm

vgflags="-q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,possible"
vgflags="$vgflags --suppressions=$(pwd)/tests/valgrind.supp --gen-suppressions=all"
echo "valgrind.sh: make check under valgrind in $dir"
vg_check() {
    CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-10} make -C "$dir" -j"${JOBS:-$(nproc)}" \
        check-TESTS TESTS="$1" LOG_COMPILER=valgrind LOG_FLAGS="$vgflags" \
        >>"$dir/check.log" 2>&1 || true
}
: >"$dir/check.log"
# test_stack's "scale" case measures RSS, which under Valgrind is
# Valgrind's own: run only its "overflow" case, after the other suites.
all=$(cd "$dir" && find tests/unit -type f -perm -u+x -name 'test_*' ! -name '*.*' ! -name test_stack |
    sort | tr '\n' ' ')
vg_check "$all"
CK_RUN_CASE=overflow vg_check tests/unit/test_stack
grep -E '^(PASS|FAIL|ERROR):' "$dir/check.log" || true
find "$dir/tests" -name '*.trs' -exec grep -lE '^:test-result: (FAIL|ERROR)' {} + |
    while read -r t; do
        echo "---- ${t%.trs}.log (first Valgrind reports)"
        grep -m 40 -E '^==[0-9]+==|:[EF]:' "${t%.trs}.log" || tail -n 40 "${t%.trs}.log"
    done
echo "---- results"
exec tests/summary.sh "$dir"
