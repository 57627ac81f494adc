#!/bin/bash
# Debian chroots for building and testing the GIMP 3 plug-in, one per
# Debian release (= one GIMP minor version):
#   trixie  Debian 13       GIMP 3.0.x  (the default)
#   forky   Debian testing  GIMP 3.2.x
#
#   tests/gimp/chroot.sh [NAME] ensure          create (when missing) + mount; prints the chroot path
#   tests/gimp/chroot.sh [NAME] sync SRC [DIR]  copy the source tree SRC to <chroot>/src/gimp-ldm
#                                               (or <chroot>/src/DIR)
#   tests/gimp/chroot.sh [NAME] run CMD...      run CMD inside the chroot with a clean environment
#   tests/gimp/chroot.sh [NAME] umount          unmount proc/sys/dev (before deleting the chroot)
#   tests/gimp/chroot.sh releases               the releases the `gimp` suite runs on
#
# NAME is a release (GIMP with the build tools and -dev packages) or
# <release>-runtime (only GIMP: no compiler, no -dev packages, no OpenBLAS;
# where the portable package of tools/package.sh is installed and tested).
#
# NAME defaults to $LDM_GIMP_RELEASE, else trixie. Each chroot lives outside
# the checkout at /var/cache/gimp-ldm/<name> (${LDM_CHROOT_BASE:-/var/cache/gimp-ldm};
# LDM_CHROOT / LDM_RUNTIME_CHROOT override the path of trixie / trixie-runtime)
# and is cached between runs. Creation
# uses the host's Debian mirror (or $LDM_DEBIAN_MIRROR) and never touches the
# host's apt sources. Needs root and debootstrap on the host. Concurrent
# callers are serialised with flock, per chroot.
set -euo pipefail

RELEASES="trixie forky"
NAME=${LDM_GIMP_RELEASE:-trixie}
case "${1:-}" in
  trixie|forky|trixie-runtime|forky-runtime) NAME=$1; shift ;;
esac
REL=${NAME%-runtime}
BASE=${LDM_CHROOT_BASE:-/var/cache/gimp-ldm}
if [ "$NAME" != "$REL" ]; then
  R=$BASE/$NAME
  [ "$NAME" != trixie-runtime ] || R=${LDM_RUNTIME_CHROOT:-$R}
  PACKAGES="gimp xz-utils"
  LOCALES=""
else
  R=$BASE/$REL
  [ "$REL" != trixie ] || R=${LDM_CHROOT:-$R}
  # libopenblas-dev's static archive (openblas-pthread/libopenblas.a) and the
  # static libraries of the other -dev packages: tools/package.sh
  PACKAGES="gimp libgimp-3.0-dev meson ninja-build gcc pkg-config libopenblas-dev
    libjansson-dev libpng-dev nettle-dev gettext xvfb xauth imagemagick xdotool x11-apps x11-utils
    fonts-dejavu-core locales
    at-spi2-core libatk-adaptor python3-pyatspi gir1.2-atspi-2.0 dbus-x11"
  # (the last line: the accessibility bus the gimp-dialog test drives the
  # dialog through)
  LOCALES="de_DE fr_FR ja_JP"   # generated for the translation checks
fi
LOCK="$R.lock"
STAMP="$R/.gimp-ldm-ready"
PKG_ID=$(echo $PACKAGES $LOCALES | md5sum | cut -c1-12)

die() { echo "chroot.sh: $*" >&2; exit 1; }

host_mirror() {
  if [ -n "${LDM_DEBIAN_MIRROR:-}" ]; then echo "$LDM_DEBIAN_MIRROR"; return; fi
  # Active (uncommented) entries only: deb822 "URIs:" lines and one-line "deb" lines.
  local m
  m=$(grep -rhE '^[[:space:]]*(URIs:|deb[[:space:]])' /etc/apt/sources.list \
        /etc/apt/sources.list.d/ 2>/dev/null \
      | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -1 | tr -d ' ' || true)
  echo "${m:-http://deb.debian.org/debian}"
}

do_mount() {
  mountpoint -q "$R/proc"     || mount -t proc proc "$R/proc"
  mountpoint -q "$R/sys"      || mount -t sysfs sys "$R/sys"
  mountpoint -q "$R/dev"      || mount --bind /dev "$R/dev"
  mountpoint -q "$R/dev/pts"  || mount --bind /dev/pts "$R/dev/pts"
  mountpoint -q "$R/dev/shm"  || mount -t tmpfs shm "$R/dev/shm"
}

do_umount() {
  local m
  for m in dev/shm dev/pts dev sys proc; do
    if mountpoint -q "$R/$m"; then umount "$R/$m" || umount -l "$R/$m"; fi
  done
}

in_chroot() {
  chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

ensure() {
  [ "$(id -u)" = 0 ] || die "must run as root (chroot, mount, debootstrap)"
  mkdir -p "$(dirname "$R")"
  exec 9>"$LOCK"
  flock 9
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$PKG_ID" ]; then
    do_mount
    flock -u 9
    return 0
  fi
  local t0=$SECONDS
  if [ ! -x "$R/usr/bin/apt-get" ]; then
    command -v debootstrap >/dev/null || die "debootstrap missing on the host (apt-get install debootstrap)"
    local mirror; mirror=$(host_mirror)
    # a debootstrap older than the release has no script for it: testing's
    # is the same as sid's
    local script=/usr/share/debootstrap/scripts/$REL
    [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
    echo "chroot.sh: debootstrap $REL ($NAME) into $R from $mirror" >&2
    rm -rf --one-file-system "$R.partial"
    debootstrap --variant=minbase "$REL" "$R.partial" "$mirror" "$script" >"$R.debootstrap.log" 2>&1 \
      || { tail -20 "$R.debootstrap.log" >&2; die "debootstrap failed (log: $R.debootstrap.log)"; }
    mv "$R.partial" "$R"
  fi
  do_mount
  printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"; chmod +x "$R/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$R/etc/resolv.conf"
  # testing's Release carries a Valid-Until a week ahead; a mirror that is a
  # frozen snapshot serves it expired. The signature is still checked. Only
  # inside the chroot.
  echo 'Acquire::Check-Valid-Until "false";' >"$R/etc/apt/apt.conf.d/99gimp-ldm-valid-until"
  echo "chroot.sh: installing packages" >&2
  in_chroot bash -c "apt-get update -qq && apt-get install -y -q --no-install-recommends $(echo $PACKAGES) \
      && apt-get clean" >"$R.apt.log" 2>&1 \
    || { tail -20 "$R.apt.log" >&2; die "apt-get failed (log: $R.apt.log)"; }
  local l
  for l in $LOCALES; do
    in_chroot localedef -i "$l" -f UTF-8 "$l.UTF-8" || die "localedef $l failed"
  done
  echo "$PKG_ID" >"$STAMP"
  echo "chroot.sh: ready in $((SECONDS - t0)) s" >&2
  flock -u 9
}

sync_src() {
  local src=$1 dst=${2:-gimp-ldm}
  [ -f "$src/meson.build" ] || die "sync: $src is not the source root"
  case "$dst" in */*|.*|'') die "sync: bad folder name $dst" ;; esac
  mkdir -p "$R/src/$dst"
  # Copy the tree without VCS data or build dirs; delete what vanished.
  # Several checkouts share one chroot (and its build dir): a file is
  # rewritten, with the time of the copy, exactly when its content differs,
  # so the incremental build there redoes what changed even when the tree
  # copied now is older than the one copied before (keeping the files' own
  # times would leave that build stale).
  if command -v rsync >/dev/null; then
    rsync -rlp --checksum --delete --exclude=.git --exclude='/build*' "$src/" "$R/src/$dst/"
  else
    rm -rf --one-file-system "$R/src/$dst.new"
    mkdir -p "$R/src/$dst.new"
    (cd "$src" && tar --exclude=./.git --exclude='./build*' -cf - .) | tar -C "$R/src/$dst.new" -xmf -
    rm -rf --one-file-system "$R/src/$dst"
    mv "$R/src/$dst.new" "$R/src/$dst"
  fi
}

cmd=${1:-ensure}; shift || true
case "$cmd" in
  ensure) ensure; echo "$R" ;;
  sync)   sync_src "${1:?source dir}" "${2:-}" ;;
  run)    in_chroot "$@" ;;
  mount)  do_mount ;;
  umount) do_umount ;;
  path)   echo "$R" ;;
  releases) echo "${LDM_GIMP_RELEASES:-$RELEASES}" ;;
  *) die "unknown command $cmd" ;;
esac
