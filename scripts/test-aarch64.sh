#!/bin/sh
# test-aarch64.sh - cross-compile coro for aarch64 and run the runtime's
# unit suites (test_coro, test_chan, test_sync, test_stack) under
# qemu-aarch64, which exercises the aarch64 assembly context switch
# (ctx_aarch64.S) on an x86-64 machine. Of test_stack only the "overflow"
# case runs: "scale" measures RSS per parked coroutine, and under qemu
# that is qemu's own memory, not the guest's.
#
# Debian's libevent-dev and friends are not multi-arch co-installable with
# their amd64 versions, so instead of installing the :arm64 -dev packages we
# add the arm64 architecture to apt (dpkg --add-architecture: lists only,
# nothing arm64 gets installed), download those packages and their library
# dependencies with `apt-get download`, and unpack them into
# build-aarch64/sysroot. The cross gcc brings its own libc
# (/usr/aarch64-linux-gnu), which qemu uses as the guest's root.
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
dir=build-aarch64
sysroot=$src/$dir/sysroot
triplet=aarch64-linux-gnu
suites="test_coro test_chan test_sync test_stack"

scripts/setup-deps.sh --aarch64

# 1. The arm64 libraries, unpacked into a private sysroot (once).
if [ ! -f "$sysroot/.done" ]; then
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        dpkg --add-architecture arm64
        apt-get update -q
    fi
    devs="libevent-dev libssl-dev libcurl4-openssl-dev libinih-dev check libsystemd-dev"
    # Every arm64 package these need, except libc (the cross toolchain's).
    # shellcheck disable=SC2046 # one word per package
    pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances $(for d in $devs; do echo "$d:arm64"; done) |
        grep -E '^[a-z0-9].*:arm64$' | grep -vE '^(libc6|libc6-dev|gcc-12-base|mawk):' | sort -u)
    rm -rf "$sysroot" "$dir/debs"
    mkdir -p "$sysroot" "$dir/debs"
    # shellcheck disable=SC2086 # one word per package
    (cd "$dir/debs" && apt-get download -q -o APT::Sandbox::User=root $pkgs)
    for deb in "$dir"/debs/*.deb; do
        dpkg-deb -x "$deb" "$sysroot"
    done
    touch "$sysroot/.done"
fi

# 2. Cross-configure against the sysroot (once) and build.
libs="$sysroot/usr/lib/$triplet:$sysroot/lib/$triplet"
if [ ! -f "$dir/Makefile" ]; then
    [ -x configure ] || flock /tmp/coro-autoreconf.lock sh -c 'test -x configure || autoreconf -fi'
    echo "test-aarch64.sh: configuring $dir for $triplet"
    (cd "$dir" && "$src/configure" -q --host=$triplet PKG_CONFIG=pkg-config \
        PKG_CONFIG_LIBDIR="$sysroot/usr/lib/$triplet/pkgconfig:$sysroot/usr/share/pkgconfig" \
        PKG_CONFIG_SYSROOT_DIR="$sysroot" \
        CPPFLAGS="-isystem $sysroot/usr/include/$triplet -isystem $sysroot/usr/include" \
        LDFLAGS="-L$sysroot/usr/lib/$triplet -Wl,-rpath-link,$libs")
fi
tests=$(for s in $suites; do printf 'tests/unit/%s ' "$s"; done)
echo "test-aarch64.sh: building in $dir"
# shellcheck disable=SC2086 # one word per test program
make -C "$dir" -j"${JOBS:-$(nproc)}" $tests >"$dir/build.log" 2>&1 ||
    { grep -E 'error' "$dir/build.log" | head -n 20; echo "build failed: $dir/build.log"; exit 1; }
file "$dir/tests/unit/test_coro" | grep -q 'ARM aarch64' ||
    { echo "test-aarch64.sh: test_coro is not an aarch64 binary" >&2; exit 1; }

# 3. Run the suites under qemu (Check's fork mode and timeouts work there);
# check-TESTS, unlike check, builds nothing but the listed tests.
find "$dir/tests" \( -name '*.trs' -o -name '*.log' \) -exec rm -f {} +
echo "test-aarch64.sh: make check under qemu-aarch64: $suites"
qemu_check() {
    CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4} make -C "$dir" check-TESTS TESTS="$1" \
        LOG_COMPILER=qemu-aarch64 LOG_FLAGS="-L /usr/$triplet -E LD_LIBRARY_PATH=$libs" \
        >>"$dir/check.log" 2>&1 || true
}
: >"$dir/check.log"
qemu_check "$(echo "$tests" | sed 's|tests/unit/test_stack||')"
CK_RUN_CASE=overflow qemu_check tests/unit/test_stack
grep -E '^(PASS|FAIL|ERROR):' "$dir/check.log" || tail -n 20 "$dir/check.log"
echo "---- results"
exec tests/summary.sh "$dir"
