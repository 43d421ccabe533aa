#!/bin/bash
# 80-pipeline-checksum: 10,000 records through 3 stages (1, 3 and 2 workers)
# all come out, each transformed by every stage exactly once.
. "$(dirname "$0")/lib.sh"
seq 1 10000 > "$T/in"
timeout 60 "$CORO" pipeline --stage "mawk -W interactive '{print \$1 * 3}'" \
    --stage "sed -u 's/\$/-b/':3" --stage "mawk -W interactive '{print \"c\" \$0}':2" \
    < "$T/in" > "$T/out" || fail "exit status $?"
mawk '{print "c" $1 * 3 "-b"}' "$T/in" | sort > "$T/want"
expect_eq "records" "$(wc -l < "$T/out")" 10000
expect_eq "checksum" "$(sort "$T/out" | sha256sum)" "$(sha256sum < "$T/want")"
pass
