#!/bin/sh
# gen.sh TEMPLATE NAME SBINDIR SYSCONFDIR LIST - print TEMPLATE with the
# @NAME@, @NOFILE@, @DESC@, @SBINDIR@ and @SYSCONFDIR@ of daemon NAME, whose
# line in LIST (systemd/daemons.list) gives the per-daemon values. Used by
# systemd/Makefile.inc for the units and sysusers files, and by the packaging.
set -eu
[ $# -eq 5 ] || { echo "usage: gen.sh TEMPLATE NAME SBINDIR SYSCONFDIR LIST" >&2; exit 2; }
tmpl=$1 name=$2 sbindir=$3 sysconfdir=$4 list=$5
line=$(awk -v n="$name" '$1 == n { print; exit }' "$list")
[ -n "$line" ] || { echo "gen.sh: daemon '$name' is not in $list" >&2; exit 1; }
nofile=$(echo "$line" | awk '{ print $2 }')
desc=$(echo "$line" | awk '{ $1 = ""; $2 = ""; sub(/^ +/, ""); print }')
case $nofile in *[!0-9]* | '') echo "gen.sh: $name: bad LimitNOFILE '$nofile'" >&2; exit 1 ;; esac
# '|' cannot occur in the values (paths and one-line descriptions).
sed -e "s|@NAME@|$name|g" -e "s|@NOFILE@|$nofile|g" -e "s|@DESC@|$desc|g" \
    -e "s|@SBINDIR@|$sbindir|g" -e "s|@SYSCONFDIR@|$sysconfdir|g" "$tmpl"
