#!/bin/sh
# need.sh PACKAGE... - install the Debian packages among PACKAGE that are
# missing, with apt-get, as root; changes nothing when all are installed.
set -eu
missing=
for p in "$@"; do
    dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q ' installed$' ||
        missing="$missing $p"
done
[ -n "$missing" ] || exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "need.sh: missing packages:$missing; run as root to install them" >&2
    exit 1
fi
echo "need.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086 # one word per package
apt-get install -y -q --no-install-recommends $missing
