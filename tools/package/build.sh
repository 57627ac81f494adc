#!/bin/bash
# Runs inside the Debian 13 build chroot (called by tools/package.sh): builds
# ldm and the plug-in with -Dstatic_deps=true and lays out the two packages
# in /var/tmp/gimp-ldm-package/dist (tools/package.sh packs
# them); prints the two folder names.
set -euo pipefail
SRC=${1:-/src/gimp-ldm-package}
W=/var/tmp/gimp-ldm-package
BUILD=$W/build
STAGE=$W/stage
DIST=$W/dist
log() { echo "package: $*" >&2; }

mkdir -p "$W"
# a fresh configuration each time: the options are part of what is shipped
rm -rf "$BUILD" "$STAGE" "$DIST"
meson setup "$BUILD" "$SRC" -Dplugin=enabled -Dtests=false -Dstatic_deps=true \
  -Dbuildtype=release -Dprefix=/usr -Dplugindir=/plug-ins >"$W/setup.log" 2>&1 \
  || { tail -30 "$W/setup.log" >&2; log "meson setup failed"; exit 1; }
nice ninja -C "$BUILD" >"$W/build.log" 2>&1 \
  || { grep -B2 -A10 -E "error|FAILED" "$W/build.log" | head -60 >&2; log "build failed"; exit 1; }
DESTDIR="$STAGE" meson install -C "$BUILD" --strip --quiet >"$W/install.log" 2>&1 \
  || { tail -20 "$W/install.log" >&2; log "install failed"; exit 1; }
VERSION=$(meson introspect "$BUILD" --projectinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
[ -n "$VERSION" ] || { log "no version"; exit 1; }

# ------------------------------------------------------------ plug-in package
NAME=gimp-ldm-$VERSION-linux-x86_64
P=$DIST/$NAME
mkdir -p "$P/profile/plug-ins" "$P/licenses"
cp -a "$STAGE/plug-ins/gimp-ldm" "$P/profile/plug-ins/"
install -m 755 "$STAGE/usr/bin/ldm" "$P/ldm"
install -m 755 "$SRC/tools/package/install.sh" "$P/install.sh"
echo "gimp-ldm $VERSION" >"$P/PACKAGE"
sed "s/@VERSION@/$VERSION/g" "$SRC/tools/package/README.md" >"$P/README.md"
# nothing but the binary and its catalogues in the plug-in folder
extra=$(cd "$P/profile/plug-ins/gimp-ldm" && find . -type f ! -name gimp-ldm ! -path './locale/*/LC_MESSAGES/gimp-ldm.mo')
[ -z "$extra" ] || { log "unexpected files in the plug-in folder: $extra"; exit 1; }
[ -n "$(find "$P/profile/plug-ins/gimp-ldm/locale" -name gimp-ldm.mo)" ] || { log "no translations"; exit 1; }

# Licences: gimp-ldm's own, the embedded CLIP BPE list, and the Debian
# copyright file of every static library linked in (found from the link
# lines), with the exact package versions the sources come from.
cp "$SRC/LICENSE" "$P/licenses/gimp-ldm.LICENSE"
cp "$SRC/engine/text/LICENSE-CLIP-BPE" "$P/licenses/CLIP-BPE.LICENSE"
links=$(ninja -C "$BUILD" -t commands cli/ldm plugin/gimp-ldm | grep -oE '/usr/lib/[^ ]+\.a' | sort -u)
{
  echo "Static libraries linked into ldm and plug-ins/gimp-ldm/gimp-ldm, with the"
  echo "Debian 13 (trixie) packages they come from. The source of each is the"
  echo "Debian source package of that name and version (apt-get source, or"
  echo "https://snapshot.debian.org/); gimp-ldm's own source is at its project"
  echo "page (GPL-3.0-or-later, licenses/gimp-ldm.LICENSE)."
  echo
} >"$P/licenses/SOURCES.txt"
for a in $links; do
  real=$(readlink -f "$a")
  pkg=$(dpkg -S "$real" | head -1 | cut -d: -f1)
  [ -n "$pkg" ] || { log "no Debian package owns $real"; exit 1; }
  srcpkg=$(dpkg-query -W -f='${source:Package} ${source:Version}' "$pkg")
  ver=$(dpkg-query -W -f='${Version}' "$pkg")
  printf '%-28s %-26s %-14s source: %s\n' "$(basename "$real")" "$pkg" "$ver" "$srcpkg" >>"$P/licenses/SOURCES.txt"
  cp "/usr/share/doc/$pkg/copyright" "$P/licenses/${srcpkg%% *}.copyright"
done
# licences the Debian copyright files refer to by name
for l in $(cat "$P"/licenses/*.copyright | grep -oE '/usr/share/common-licenses/[A-Za-z0-9.+-]+' \
           | sed 's/\.$//' | sort -u); do
  if [ -f "$l" ]; then cp -L "$l" "$P/licenses/common-$(basename "$l")"; fi
done
grep -q openblas "$P/licenses/SOURCES.txt" || { log "OpenBLAS is not linked statically?"; exit 1; }

# ------------------------------------------------------------ models package
MNAME=gimp-ldm-demo-models-$VERSION
M=$DIST/$MNAME
mkdir -p "$M/profile/gimp-ldm/models" "$M/licenses"
for f in ldm-demo.safetensors ldm-demo-inpaint.safetensors ldm-demo-x4.safetensors \
         ldm-demo-esrgan-x4.safetensors ldm-demo-control-scribble.safetensors; do
  [ -f "$SRC/models/demo/$f" ] || { log "models/demo/$f missing"; exit 1; }
  install -m 644 "$SRC/models/demo/$f" "$M/profile/gimp-ldm/models/$f"
done
cp "$SRC/models/demo/MODEL_CARD.md" "$M/MODEL_CARD.md"
install -m 755 "$SRC/tools/package/install.sh" "$M/install.sh"
echo "gimp-ldm-demo-models $VERSION" >"$M/PACKAGE"
sed "s/@VERSION@/$VERSION/g" "$SRC/tools/package/README-models.md" >"$M/README.md"

echo "$NAME $MNAME"
