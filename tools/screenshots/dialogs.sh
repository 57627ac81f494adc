#!/bin/bash
# Screenshots of every gimp-ldm dialog in a real GIMP 3 (full GUI under Xvfb,
# interactive run mode) -> docs/screenshots/<procedure>.png.
# Runs in the Debian 13 chroot of tests/gimp/chroot.sh (root needed); builds
# and installs the plug-in there first (tests/gimp/in-chroot.sh).
#   tools/screenshots/dialogs.sh [output dir]
set -euo pipefail
SRC=${LDM_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
OUT=${1:-$SRC/docs/screenshots}
CH="$SRC/tests/gimp/chroot.sh"
R=$("$CH" ensure | tail -1)
exec 8>"$R.build.lock"
flock 8
"$CH" sync "$SRC"
"$CH" run bash /src/gimp-ldm/tools/screenshots/in-chroot.sh ${LDM_GIMP_PLUGIN_ONLY:+plugin-only}
mkdir -p "$OUT"
for f in "$R"/var/tmp/gimp-ldm/shots/*.png; do
  cp "$f" "$OUT/"
  echo "wrote $OUT/$(basename "$f") ($(stat -c %s "$f") bytes)"
done
