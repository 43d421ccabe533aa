#!/bin/bash
# Output is never interleaved mid-line: many jobs writing long lines at
# once, grouped (default) and with --line-buffer; every line stays whole.
. "$(dirname "$0")/lib.sh"

# Each job writes 200 lines of 3000 copies of its own letter, in pieces.
job='for i in $(seq 200); do printf "%03000d\n" 0 | tr 0 {}; done'
for mode in "" --line-buffer; do
    timeout 60 "$CORO" parallel -j 8 $mode "$job" ::: a b c d e f g h i j k l > "$T/out" ||
        fail "run failed ($mode)"
    expect_eq "lines ($mode)" "$(wc -l < "$T/out")" "2400"
    bad=$(grep -cvE '^(a{3000}|b{3000}|c{3000}|d{3000}|e{3000}|f{3000}|g{3000}|h{3000}|i{3000}|j{3000}|k{3000}|l{3000})$' "$T/out")
    expect_eq "mixed lines ($mode)" "$bad" "0"
done
# Grouped: each job's lines are contiguous.
timeout 60 "$CORO" parallel -j 8 "$job" ::: a b c d e f > "$T/out"
expect_eq "groups" "$(cut -c1 "$T/out" | uniq | wc -l)" "6"
pass
