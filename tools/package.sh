#!/bin/bash
# Builds the portable packages, inside the Debian 13 chroot of
# tests/gimp/chroot.sh (created when missing; needs root):
#
#   tools/package.sh [OUTDIR]          (default OUTDIR: dist/ in the source tree)
#
#   OUTDIR/gimp-ldm-<version>-linux-x86_64.tar.xz   the plug-in folder (OpenBLAS,
#        jansson linked in statically), its translations, ldm, install.sh,
#        README.md and the licences of everything inside
#   OUTDIR/gimp-ldm-demo-models-<version>.tar.xz    the demo models, with the
#        same install.sh
#
# The plug-in needs only libraries every GIMP 3 install has; the `gimp-package`
# test (tests/gimp/package-test.sh) installs the package in a chroot that has
# nothing but GIMP. See docs/plugin.md, "The portable package".
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$SRC/dist}
CH="$SRC/tests/gimp/chroot.sh"

# always Debian 13: the oldest GIMP 3 system the suite has, so the lowest
# glibc and GIMP the binaries are linked against
R=$("$CH" trixie ensure | tail -1)
# one package build at a time; its own source copy and build folder, so the
# gimp suite's runs (/src/gimp-ldm) are not disturbed
exec 7>"$R.package.lock"
flock 7
"$CH" trixie sync "$SRC" gimp-ldm-package
names=$("$CH" trixie run bash /src/gimp-ldm-package/tools/package/build.sh | tail -1)
mkdir -p "$OUT"
W="$R/var/tmp/gimp-ldm-package/dist"
# reproducible archives: fixed owner, order and times (the last commit's
# date when this is a git checkout)
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$SRC" log -1 --format=%ct 2>/dev/null || stat -c %Y "$SRC/meson.build")}
for d in $names; do
  [ -d "$W/$d" ] || { echo "package.sh: $W/$d missing" >&2; exit 1; }
  tar -C "$W" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -cf - "$d" \
    | xz -9 -T1 >"$OUT/$d.tar.xz.part"
  mv "$OUT/$d.tar.xz.part" "$OUT/$d.tar.xz"
  echo "package.sh: $OUT/$d.tar.xz ($(stat -c %s "$OUT/$d.tar.xz") bytes)"
done
