#!/bin/sh
# summary.sh BUILDDIR... - sum up the results of `make check` in one or more
# build directories: one line per test program, then "N passed, N failed".
#
# A Check suite counts its individual checks (its log says "NN%: Checks: N,
# Failures: F, Errors: E"); any other test (a script) counts as one, from the
# :test-result: line of its .trs file. A program that failed without a Check
# summary (crash, sanitizer report at exit, leak) counts as one failure.
# Exit status: 0 only if something ran and nothing failed.

[ $# -gt 0 ] || set -- .
total_pass=0
total_fail=0
for dir in "$@"; do
    for trs in $(find "$dir" -name '*.trs' | sort); do
        log=${trs%.trs}.log
        name=${trs%.trs}
        result=$(sed -n 's/^:test-result: *//p' "$trs" | head -n 1)
        checks=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$log" 2>/dev/null |
            awk -F'[:,] *' '{ n += $3; f += $5 + $7 } END { if (NR) print n, f }')
        if [ -n "$checks" ]; then
            read -r nchecks fail <<EOF
$checks
EOF
            pass=$((nchecks - fail))
            # The program failed although every check passed (e.g. ASan at exit).
            if [ "$fail" -eq 0 ] && [ "$result" != PASS ] && [ "$result" != SKIP ]; then
                fail=1
            fi
            detail="$nchecks checks, $fail failed"
        else
            case $result in
            PASS | XFAIL) pass=1 fail=0 ;;
            SKIP) pass=0 fail=0 ;;
            *) pass=0 fail=1 ;;
            esac
            detail="no check summary"
        fi
        printf '%-5s %s (%s)\n' "${result:-?}" "$name" "$detail"
        total_pass=$((total_pass + pass))
        total_fail=$((total_fail + fail))
    done
done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ] && [ "$total_pass" -gt 0 ]
