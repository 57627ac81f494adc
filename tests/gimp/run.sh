#!/bin/bash
# Test driver of the `gimp` suite (called by meson test, or by hand):
#   tests/gimp/run.sh errors      registration + bad inputs in headless GIMP 3
#   tests/gimp/run.sh procedures  success paths (red until the pipelines land)
# Ensures the Debian 13 chroot (tests/gimp/chroot.sh), copies the source tree
# into it, builds + installs the plug-in there and runs GIMP. Needs root.
set -euo pipefail
MODE=${1:-errors}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${LDM_SOURCE_ROOT:-$(cd "$HERE/../.." && pwd)}
CH="$SRC/tests/gimp/chroot.sh"

R=$("$CH" ensure | tail -1)
# one build + GIMP run at a time in this chroot
exec 8>"$R.build.lock"
flock 8
"$CH" sync "$SRC"
t0=$SECONDS
set +e
"$CH" run bash /src/gimp-ldm/tests/gimp/in-chroot.sh "$MODE" \
  ${LDM_GIMP_PLUGIN_ONLY:+plugin-only}
rc=$?
echo "run.sh $MODE: rc=$rc in $((SECONDS - t0)) s" >&2
exit $rc
