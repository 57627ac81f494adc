#!/bin/bash
# Test `gimp-package` of the `gimp` suite (needs root on the host):
#  1. tools/package.sh builds the two packages in the Debian 13 build chroot
#     (skipped when LDM_PACKAGE_DIR names a folder that holds them already);
#  2. in the build chroot: the packed binaries' dependencies against the
#     allow-list of libraries every GIMP 3 install has, and the highest GLIBC
#     symbol version they need (tests/gimp/package-deps.sh);
#  3. in a chroot with nothing but GIMP (chroot.sh <release>-runtime: no
#     compiler, no -dev package, no OpenBLAS), once per release of
#     `chroot.sh releases` -- Debian 13 with GIMP 3.0.x and Debian testing with
#     GIMP 3.2.x, the same package built once on Debian 13 -- as a normal
#     user: unpack, install.sh (and its refusal without a GIMP profile), the
#     registration and success checks of ldm_checks.py in GIMP from the
#     installed package, and install.sh --uninstall leaving the profile as it
#     was (tests/gimp/package-in-chroot.sh). Both releases at once on 2+
#     cores (LDM_GIMP_JOBS=1: one after the other), the logs printed in order.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${LDM_SOURCE_ROOT:-$(cd "$HERE/../.." && pwd)}
CH="$SRC/tests/gimp/chroot.sh"
t0=$SECONDS
log() { echo "package-test: $*" >&2; }

OUT=${LDM_PACKAGE_DIR:-}
if [ -z "$OUT" ]; then
  OUT=$(mktemp -d /tmp/gimp-ldm-package-test.XXXXXX)
  trap 'rm -rf "$OUT"' EXIT
  "$SRC/tools/package.sh" "$OUT" >&2
fi
version=$(sed -n "s/^ *version: '\([^']*\)'.*/\1/p" "$SRC/meson.build" | head -1)
PKG=$OUT/gimp-ldm-$version-linux-x86_64.tar.xz
MODELS=$OUT/gimp-ldm-demo-models-$version.tar.xz
[ -f "$PKG" ] && [ -f "$MODELS" ] || { log "missing $PKG or $MODELS"; exit 1; }

rc=0
size=$(stat -c %s "$PKG")
limit=$((15 * 1000 * 1000))
if [ "$size" -le "$limit" ]; then
  echo "ok - package size $size bytes (limit $limit, without models)"
else
  echo "not ok - package size $size bytes > $limit"; rc=1
fi
echo "# demo models package: $(stat -c %s "$MODELS") bytes"

# 2. allow-list + GLIBC version, in the build chroot (it has binutils)
R=$("$CH" trixie ensure | tail -1)   # where tools/package.sh builds
exec 7>"$R.package.lock"
flock 7
C=/var/tmp/gimp-ldm-package/check
rm -rf --one-file-system "$R$C"; mkdir -p "$R$C"
tar -C "$R$C" -xf "$PKG"
cp "$HERE/package-deps.sh" "$R$C/"
"$CH" trixie run bash "$C/package-deps.sh" "$C/gimp-ldm-$version-linux-x86_64" || rc=1
flock -u 7

# 3. the package on a GIMP-only system, per release
on_runtime() {   # $1 = release
  local rt=$1-runtime RR T=/var/tmp/gimp-ldm-pkgtest r t1=$SECONDS
  RR=$("$CH" "$rt" ensure | tail -1) || return 1
  (
    flock 6
    rm -rf --one-file-system "$RR$T"; mkdir -p "$RR$T"
    cp "$PKG" "$MODELS" "$HERE/ldm_checks.py" "$HERE/package-in-chroot.sh" "$RR$T/"
    chmod -R a+rX "$RR$T"
    "$CH" "$rt" run bash "$T/package-in-chroot.sh" "$version"
  ) 6>"$RR.test.lock" && r=0 || r=$?
  log "$rt: rc=$r in $((SECONDS - t1)) s"
  return $r
}
RELEASES=${LDM_GIMP_RELEASES:-$("$CH" releases)}
jobs=${LDM_GIMP_JOBS:-$(( $(nproc) >= 2 ? 2 : 1 ))}
if [ "$jobs" -le 1 ]; then
  for rel in $RELEASES; do on_runtime "$rel" || rc=1; done
else
  LOGS=$(mktemp -d)
  declare -A pid
  for rel in $RELEASES; do on_runtime "$rel" >"$LOGS/$rel.log" 2>&1 & pid[$rel]=$!; done
  for rel in $RELEASES; do
    wait "${pid[$rel]}" || rc=1
    echo "======== package on $rel-runtime ========"
    cat "$LOGS/$rel.log"
  done
  rm -rf "$LOGS"
fi
log "rc=$rc in $((SECONDS - t0)) s"
exit $rc
