#!/bin/sh
# start.sh - the one command to get going: install what is missing
# (scripts/setup-deps.sh), build coro in build/, and run its main job.
# There are no daemons yet, so the main job is the runtime benchmark
# (`coro bench runtime --quick`, about 15 s); it will become starting the
# daemon suite once the daemons exist.
set -eu
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
scripts/build.sh build

cat <<MSG
start.sh: built. Where things are:
  build/cli/coro           the coro command (build/cli/coro --help)
  build/build.log          the build output
  scripts/test.sh          run the whole test suite
  bench/README.md          what the benchmark below measures, against which peers
  doc/ARCHITECTURE.md      how the runtime is put together
start.sh: running build/cli/coro bench runtime --quick
MSG
exec build/cli/coro bench runtime --quick
