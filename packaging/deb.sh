#!/bin/sh
# deb.sh TARBALL OUTDIR - build the .deb packages from a `make dist` tarball:
# unpack it under OUTDIR, put packaging/debian in place as debian/, run
# dpkg-buildpackage -us -uc -b and lintian. The .debs, .changes and
# lintian.log end up in OUTDIR. Installs what it needs with apt-get (as
# root) when it is missing. `make deb` runs it. The test suite is not run
# again (DEB_BUILD_OPTIONS=nocheck) unless DEB_BUILD_OPTIONS says otherwise.
set -eu
[ $# -eq 2 ] || { echo "usage: deb.sh TARBALL OUTDIR" >&2; exit 2; }
tarball=$(realpath "$1")
out=$(realpath -m "$2")
here=$(dirname "$(realpath "$0")")

need="debhelper dpkg-dev fakeroot lintian"
"$here/need.sh" $need

# dpkg-buildpackage writes next to the source tree: unpack it in OUTDIR.
rm -rf "$out" && mkdir -p "$out"
tar -C "$out" -xzf "$tarball"
src=$(echo "$out"/*/)
cp -r "$src/packaging/debian" "$src/debian"
# The build dependencies named in debian/control.
missing=$(cd "$src" && dpkg-checkbuilddeps 2>&1 |
    sed -n 's/.*Unmet build dependencies: //p' | sed 's/([^)]*)//g; s/|[^ ]*//g') || true
[ -z "$missing" ] || "$here/need.sh" $missing

cd "$src"
DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-nocheck} dpkg-buildpackage -us -uc -b -j"$(nproc)"
cd "$out"
rm -rf "$src"
changes=$(ls "$out"/*.changes)
# Errors fail the build; the warnings kept are listed with reasons in
# packaging/README.md.
lintian --fail-on error "$changes" |
    tee "$out/lintian.log"
echo "deb.sh: packages in $out:"
ls "$out"/*.deb
