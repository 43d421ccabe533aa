#!/bin/bash
# tests/e2e/run.sh [--generic-only] - the packages under a real systemd:
# builds the .debs (make deb), boots a cached minimal Debian 12 root with
# systemd-nspawn -b in a private network namespace (loopback only), and in
# it installs the packages with apt, then for each daemon: service active,
# a real client through the installed config, reload adding a listener
# with a client kept connected across it, a bad edit refused by reload
# while the service keeps running and the journal shows FILE:LINE, restart
# keeping persisted state, stop with exit status 0, systemd-analyze security
# (exposure <= 2.0), purge leaving nothing running or on disk.
# --generic-only skips the per-daemon client checks (check_NAME below).
#
# As root on Debian 12; installs debootstrap, systemd-container and the
# build tools with apt-get; does not need systemd on the host (commands
# enter the container with nsenter). The root lives in $CORO_E2E_CACHE
# (default /var/cache/coro-e2e), built once by debootstrap from the host's
# Debian mirror; each run boots it with --volatile=overlay, so runs never
# change it. Environment: BUILDDIR (configured build tree, default
# build-e2e/ next to the sources), DEBDIR (use these .debs, skip building).
# Duration: about 1 minute with a warm cache, plus about 1 minute once for
# debootstrap.
set -euo pipefail
SRCDIR=$(cd "$(dirname "$0")/../.." && pwd)
BUILDDIR=${BUILDDIR:-$SRCDIR/build-e2e}
CACHE=${CORO_E2E_CACHE:-/var/cache/coro-e2e}
MACHINE=coro-e2e-$$
GENERIC_ONLY=no
[ "${1:-}" = --generic-only ] && GENERIC_ONLY=yes
START=$(date +%s)

say() { echo "e2e: $*"; }
fail() { echo "e2e: FAIL: $*" >&2; exit 1; }
trap 'echo "e2e: FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR
[ "$(id -u)" -eq 0 ] || fail "must run as root (debootstrap, systemd-nspawn)"
"$SRCDIR/packaging/need.sh" debootstrap systemd-container

# ---- 1. the packages ----
if [ -z "${DEBDIR:-}" ]; then
    if [ ! -f "$BUILDDIR/Makefile" ]; then
        (cd "$SRCDIR" && flock /tmp/coro-autoreconf.lock sh -c 'test -f configure || autoreconf -fi')
        mkdir -p "$BUILDDIR" && (cd "$BUILDDIR" && "$SRCDIR/configure" -q)
    fi
    make -C "$BUILDDIR" -s deb >"$BUILDDIR/e2e-deb.log" 2>&1 ||
        { tail -30 "$BUILDDIR/e2e-deb.log"; fail "make deb failed (log: $BUILDDIR/e2e-deb.log)"; }
    DEBDIR=$BUILDDIR/dist/deb
fi
DEBDIR=$(realpath "$DEBDIR")
debs=$(ls "$DEBDIR"/coro-*_*.deb | grep -v -- -dbgsym_) || fail "no .deb in $DEBDIR"
pkgs=$(for d in $debs; do dpkg-deb -f "$d" Package; done)
daemons=$(echo "$pkgs" | sed -n 's/^coro-//p' | grep -vx tools || true)
say "packages: $(echo $pkgs); daemons: $(echo $daemons)"

# ---- 2. the cached root ----
mirror=$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p; s/^deb \([^ ]*debian\) bookworm .*/\1/p' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
    2>/dev/null | head -1) || true
mirror=${mirror:-http://deb.debian.org/debian}
base="systemd,systemd-sysv,dbus,procps,mosquitto-clients,curl,ca-certificates"
root=$CACHE/bookworm-$(echo "$base" | md5sum | cut -c1-8)
if [ ! -x "$root/usr/lib/systemd/systemd" ]; then
    say "creating $root with debootstrap from $mirror (once)"
    rm -rf "$root.tmp" && mkdir -p "$CACHE"
    debootstrap --variant=minbase --include="$base" bookworm "$root.tmp" "$mirror" \
        >"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log"; fail "debootstrap"; }
    mv "$root.tmp" "$root"
fi
# The packages' dependencies go into the cached root up front: the booted
# container has no network. Alternatives: the first one.
deps=$(for d in $debs; do dpkg-deb -f "$d" Depends; done | tr ',' '\n' |
    sed 's/|.*//; s/(.*)//; s/ //g' | grep -v '^$' | grep -vx "$(echo "$pkgs")" | sort -u)
missing=$(for p in $deps; do
    chroot "$root" dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q ' installed$' ||
        echo "$p"; done)
if [ -n "$missing" ]; then
    say "adding to the cached root: $(echo $missing)"
    systemd-nspawn -q -D "$root" --register=no --keep-unit --resolv-conf=copy-host \
        sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends $(echo $missing) && apt-get clean" >"$CACHE/apt.log" 2>&1 ||
        { tail -20 "$CACHE/apt.log"; fail "installing dependencies into the root"; }
fi

# ---- 3. boot ----
nspawn_pid= leader=
cleanup() {
    status=$?
    if [ "$status" -ne 0 ] && [ -n "${leader:-}" ]; then
        for d in $daemons; do
            echo "e2e: journal of coro-$d:" >&2
            ct "journalctl -u coro-$d --no-pager | tail -n 25" >&2 || true
        done
    fi
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" # the container halts; --volatile drops its changes
        for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
    fi
    [ "$status" -eq 0 ] && say "PASS in $(($(date +%s) - START)) s" ||
        echo "e2e: FAILED (console log: $CACHE/console-$MACHINE.log)" >&2
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
systemd-nspawn -q -b -D "$root" --machine="$MACHINE" --register=no --keep-unit \
    --private-network --volatile=overlay --console=passive --bind-ro="$DEBDIR:/debs" \
    >"$CACHE/console-$MACHINE.log" 2>&1 &
nspawn_pid=$!
leader=
for _ in $(seq 100); do
    for p in /proc/[0-9]*; do
        [ "$(awk '/^PPid:/ { print $2 }' "$p/status" 2>/dev/null)" = "$nspawn_pid" ] &&
            [ "$(cat "$p/comm" 2>/dev/null)" = systemd ] && leader=${p#/proc/} && break
    done
    [ -n "$leader" ] && break
    kill -0 "$nspawn_pid" 2>/dev/null || fail "systemd-nspawn exited: $(tail -5 "$CACHE/console-$MACHINE.log")"
    sleep 0.1
done
[ -n "$leader" ] || fail "no init process in the container"
# ct CMD...: run a shell command line in the container, as root, clean env.
ct() {
    nsenter -t "$leader" -a -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        SYSTEMD_PAGER= SYSTEMD_COLORS=0 /bin/sh -c "$*"
}
# Right after exec, systemd may not listen on its private bus yet and
# systemctl fails at once ("Failed to connect to bus"): retry until it answers.
state=
for _ in $(seq 100); do
    state=$(ct timeout 60 systemctl is-system-running --wait 2>/dev/null) || true
    [ -n "$state" ] && break
    sleep 0.1
done
[ "$state" = running ] || [ "$state" = degraded ] || fail "container did not boot: '$state'"
say "container up ($state) in $(($(date +%s) - START)) s"

# ---- 4. install ----
ct "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    $(for d in $debs; do printf '/debs/%s ' "$(basename "$d")"; done)" >"$CACHE/install.log" 2>&1 ||
    { tail -20 "$CACHE/install.log"; fail "apt-get install of the packages"; }
ct "coro --version" >/dev/null 2>&1 || ct "coro -h" >/dev/null 2>&1 || fail "coro does not run"
say "installed: $(echo $pkgs)"

# ---- 5. per daemon ----
# wait_ct CMD: poll a command in the container until it succeeds (10 s).
wait_ct() {
    for _ in $(seq 50); do ct "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
}
mainpid() { ct "systemctl show -p MainPID --value coro-$1"; }
. "$SRCDIR/tests/e2e/daemons.sh"

for d in $daemons; do
    u=coro-$d
    ini=/etc/coro/$u.ini
    ct "systemctl is-active $u" >/dev/null || fail "$u not active after install: $(ct "systemctl status $u" || true)"
    ct "systemctl is-enabled $u" >/dev/null || fail "$u not enabled"
    [ "$(ct "ps -o user:32= -p $(mainpid "$d")")" = "$u" ] || fail "$u does not run as user $u"
    say "$u: active, enabled, runs as $u"
    [ "$GENERIC_ONLY" = yes ] || "check_$d" use

    # reload adding a listener (the daemon's own check), then a bad edit
    pid=$(mainpid "$d")
    ct "cp $ini /root/$u.ini.good"
    [ "$GENERIC_ONLY" = yes ] || "check_$d" reload
    [ "$(mainpid "$d")" = "$pid" ] || fail "$u: reload changed MainPID"
    ct "printf '\n[listener.e2e_bad]\nlisten = not-an-address\n' >>$ini"
    line=$(ct "grep -n '^listen = not-an-address' $ini | cut -d: -f1")
    since=$(ct "date +%s")
    ct "systemctl reload $u" 2>/dev/null && fail "$u: reload accepted a broken config"
    ct "systemctl is-active $u" >/dev/null || fail "$u: not active after a refused reload"
    [ "$(mainpid "$d")" = "$pid" ] || fail "$u: a refused reload changed MainPID"
    ct "journalctl -u $u --since @$since --no-pager" | grep -F "$ini:$line:" ||
        fail "$u: journal has no '$ini:$line:' error: $(ct "journalctl -u $u --since @$since --no-pager" | tail -5)"
    ct "cp /root/$u.ini.good $ini"
    ct "systemctl reload $u" || fail "$u: reload of the restored config"
    say "$u: reload adds, a broken edit is refused (journal shows $ini:$line) and keeps it running"

    [ "$GENERIC_ONLY" = yes ] || "check_$d" before-restart
    ct "systemctl restart $u" || fail "$u: restart"
    [ "$GENERIC_ONLY" = yes ] || "check_$d" after-restart

    ct "systemctl stop $u"
    [ "$(ct "systemctl show -p ExecMainStatus --value $u")" = 0 ] ||
        fail "$u: exit status $(ct "systemctl show -p ExecMainStatus --value $u") on stop"
    [ "$(ct "systemctl show -p Result --value $u")" = success ] || fail "$u: stop result not success"
    say "$u: stop: exit status 0"
    ct "systemctl start $u" || fail "$u: start after stop"

    ct "systemd-analyze security --no-pager $u.service" | tee "$CACHE/security-$u.txt" | tail -1
    exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$CACHE/security-$u.txt")
    awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }' ||
        fail "$u: systemd-analyze security exposure '$exposure' > 2.0"
done

# ---- 6. purge ----
ct "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $(echo $pkgs)" >"$CACHE/purge.log" 2>&1 ||
    { tail -20 "$CACHE/purge.log"; fail "apt-get purge"; }
for d in $daemons; do
    u=coro-$d
    ct "pgrep -x $u" && fail "$u still running after purge"
    ct "test -e /var/lib/$u || test -e /etc/coro/$u.ini || test -e /lib/systemd/system/$u.service" &&
        fail "$u: files left after purge"
    ct "systemctl is-active $u" >/dev/null && fail "$u: unit active after purge"
done
ct "test -e /etc/coro" && fail "/etc/coro left after purge"
say "purged: nothing running, no state, config or unit left"
