#!/bin/sh
# rpm.sh TARBALL SPEC OUTDIR - rpmbuild -ba the spec with the `make dist`
# tarball as Source0 in a private _topdir under OUTDIR, then rpmlint the
# results (errors fail). Installs rpm and rpmlint with apt-get when missing.
# BuildRequires name Fedora packages that dpkg cannot see, so on Debian the
# build runs with --nodeps (the Debian build dependencies are checked by
# configure instead). `make rpm` runs it.
set -eu
[ $# -eq 3 ] || { echo "usage: rpm.sh TARBALL SPEC OUTDIR" >&2; exit 2; }
tarball=$(realpath "$1")
spec=$(realpath "$2")
out=$(realpath -m "$3")
here=$(dirname "$(realpath "$0")")
"$here/need.sh" rpm rpmlint

version=$(basename "$tarball" .tar.gz)
version=${version#coro-}
rm -rf "$out" && mkdir -p "$out/SOURCES" "$out/SPECS"
cp "$tarball" "$out/SOURCES/"
cp "$spec" "$out/SPECS/"
nodeps=
[ -e /etc/debian_version ] && nodeps=--nodeps
rpmbuild -ba $nodeps --define "_topdir $out" --define "coro_version $version" \
    "$out/SPECS/coro.spec"
# rpmlint exits 64 on errors and 66 on badness over the threshold; warnings
# kept are listed with reasons in packaging/README.md.
rpmlint -r "$here/rpm/rpmlintrc" "$out/SPECS/coro.spec" "$out"/RPMS/*/*.rpm "$out"/SRPMS/*.rpm |
    tee "$out/rpmlint.log"
status=$(grep -c ' E: ' "$out/rpmlint.log" || true)
[ "$status" -eq 0 ] || { echo "rpm.sh: rpmlint reported $status errors" >&2; exit 1; }
echo "rpm.sh: packages in $out/RPMS and $out/SRPMS"
