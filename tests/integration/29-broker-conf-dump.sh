#!/bin/bash
# The shipped conf/coro-broker.ini is exactly `coro-broker --dump-config`
# (generated from the schema, so it cannot drift) and passes -t; the key
# list of coro-broker.ini(5) covers every key of the dump.
. "$(dirname "$0")/lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BROKER=$BUILDDIR/daemons/broker/coro-broker
[ -x "$BROKER" ] || fail "$BROKER not built"
"$BROKER" --dump-config > "$T/dump.ini" || fail "--dump-config failed"
cmp -s "$T/dump.ini" "$SRC/conf/coro-broker.ini" ||
    fail "conf/coro-broker.ini differs from --dump-config (make regen-broker-conf)"
"$BROKER" -t -c "$SRC/conf/coro-broker.ini" >/dev/null || fail "shipped conf fails -t"
grep -q '^listen = 127.0.0.1:1883$' "$SRC/conf/coro-broker.ini" ||
    fail "shipped conf does not listen on 127.0.0.1:1883"
for k in $(sed -n 's/^#* *\([a-z_]*\) = .*/\1/p' "$T/dump.ini" | sort -u); do
    grep -q "^\.B $k\$" "$SRC/man/coro-broker.ini.5" || fail "key $k missing from coro-broker.ini.5"
done
pass
