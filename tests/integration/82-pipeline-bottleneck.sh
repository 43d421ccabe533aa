#!/bin/bash
# 82-pipeline-bottleneck: with a slow middle stage, --json stats name it as
# the bottleneck and its busy % is the highest.
. "$(dirname "$0")/lib.sh"
need python3
seq 1 2000 > "$T/in"
timeout 60 "$CORO" pipeline --stage cat \
    --stage "mawk -W interactive '{ for (i = 0; i < 20000; i++); print }'" \
    --stage cat --json < "$T/in" > "$T/out" 2> "$T/stats" || fail "exit status $?"
expect_eq "records" "$(wc -l < "$T/out")" 2000
python3 - "$T/stats" <<'PY' || fail "stats: $(cat "$T/stats")"
import json, sys
o = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
busy = [s["busy_pct"] for s in o["stages"]]
assert o["bottleneck"] == 2, o
assert busy[1] == max(busy) and busy[1] > 80, busy
assert [s["bottleneck"] for s in o["stages"]] == [False, True, False], o
assert all(s["records"] == 2000 for s in o["stages"]), o
PY
# The text form marks it too.
seq 1 500 | timeout 60 "$CORO" pipeline --stage cat \
    --stage "mawk -W interactive '{ for (i = 0; i < 20000; i++); print }'" --stage cat \
    --stats 2>&1 >/dev/null | grep -q '^2 .*<- bottleneck' || fail "--stats does not mark stage 2"
pass
