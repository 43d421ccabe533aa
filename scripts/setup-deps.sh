#!/bin/sh
# setup-deps.sh [--aarch64] - install the Debian 12 packages coro needs to
# build and test, with apt-get, as root. Idempotent: when everything is
# already installed it changes nothing and touches no network.
# --aarch64 adds the cross compiler and qemu for scripts/test-aarch64.sh.
set -eu

pkgs="build-essential autoconf automake libtool pkg-config libevent-dev libssl-dev
libcurl4-openssl-dev libinih-dev check libsystemd-dev valgrind clang
curl python3 parallel mbuffer pv mawk mosquitto mosquitto-clients python3-paho-mqtt openssl"
if [ "${1:-}" = --aarch64 ]; then
    pkgs="$pkgs gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user file"
fi

# shellcheck disable=SC2086 # word splitting of the package list is intended
exec "$(dirname "$0")/../packaging/need.sh" $pkgs
