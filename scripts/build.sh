#!/bin/sh
# build.sh DIR [CONFIGURE-ARGS...] - build coro out of tree in DIR (relative
# to the source tree): generate ./configure if this is a fresh clone, run
# configure once per DIR, then build the programs and the test programs.
# The output goes to DIR/build.log; on failure its tail is printed.
# Used by start.sh, test.sh and valgrind.sh; the dependencies must already
# be installed (scripts/setup-deps.sh).
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
dir=$1
shift

# autoreconf only when configure is missing: re-running it would force a
# full rebuild; the generated Makefiles regenerate themselves afterwards.
if [ ! -x configure ]; then
    echo "build.sh: autoreconf -fi"
    flock /tmp/coro-autoreconf.lock sh -c 'test -x configure || autoreconf -fi' ||
        { echo "build.sh: autoreconf failed" >&2; exit 1; }
fi

mkdir -p "$dir"
cd "$dir"
log=$(pwd)/build.log
: >"$log"
if [ ! -f Makefile ]; then
    echo "build.sh: configuring $dir: configure $*"
    if ! "$src/configure" -q "$@" >>"$log" 2>&1; then
        tail -n 30 "$log"
        echo "build.sh: configure failed in $dir (see $log)" >&2
        exit 1
    fi
fi
echo "build.sh: building in $dir"
jobs=${JOBS:-$(nproc)}
# TESTS= builds the test programs without running them.
if ! { make -j"$jobs" all && make -j"$jobs" check TESTS=; } >>"$log" 2>&1; then
    grep -E 'error|Error' "$log" | sort -u | head -n 20
    echo "build.sh: build failed in $dir (see $log)" >&2
    exit 1
fi
