#!/bin/bash
# Test driver of the `gimp` suite (called by meson test, or by hand):
#   tests/gimp/run.sh errors      registration + bad inputs in headless GIMP 3
#   tests/gimp/run.sh procedures  success paths (red until the pipelines land)
#   tests/gimp/run.sh keys        access keys of every dialog in each language
#                                 (also part of `dialog`)
# Every mode runs once per Debian release of tests/gimp/chroot.sh, i.e. once
# per GIMP version: trixie (GIMP 3.0.x) and forky (GIMP 3.2.x). For each, it
# ensures the chroot, copies the source tree into it, builds + installs the
# plug-in there and runs GIMP; the mode passes when it passes on all. Needs root.
#   LDM_GIMP_RELEASES="forky"   only these releases (default: all)
#   LDM_GIMP_JOBS=1             one release after the other (default: 2 at
#                               once when the host has 2 or more cores)
set -uo pipefail
MODE=${1:-errors}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${LDM_SOURCE_ROOT:-$(cd "$HERE/../.." && pwd)}
CH="$SRC/tests/gimp/chroot.sh"
RELEASES=${LDM_GIMP_RELEASES:-$("$CH" releases)}

# one release: the whole cycle, output to stdout/stderr
run_one() {
  local rel=$1 R rc t0=$SECONDS
  R=$("$CH" "$rel" ensure | tail -1) || return 1
  (
    # one build + GIMP run at a time in this chroot
    t1=$SECONDS
    flock 8
    [ $((SECONDS - t1)) -lt 2 ] || echo "run.sh $MODE [$rel]: waited $((SECONDS - t1)) s for the chroot" >&2
    "$CH" "$rel" sync "$SRC" || exit 1
    "$CH" "$rel" run bash /src/gimp-ldm/tests/gimp/in-chroot.sh "$MODE" \
      ${LDM_GIMP_PLUGIN_ONLY:+plugin-only}
  ) 8>"$R.build.lock"
  rc=$?
  echo "run.sh $MODE [$rel]: rc=$rc in $((SECONDS - t0)) s" >&2
  return $rc
}

n=$(echo $RELEASES | wc -w)
jobs=${LDM_GIMP_JOBS:-$(( $(nproc) >= 2 ? 2 : 1 ))}
rc=0
if [ "$n" -le 1 ] || [ "$jobs" -le 1 ]; then
  for rel in $RELEASES; do run_one "$rel" || rc=1; done
else
  # all releases at once, each into its own log; the logs are printed in
  # release order afterwards so they do not interleave
  LOGS=$(mktemp -d)
  trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$LOGS"' EXIT
  declare -A pid
  for rel in $RELEASES; do
    run_one "$rel" >"$LOGS/$rel.log" 2>&1 &
    pid[$rel]=$!
  done
  for rel in $RELEASES; do
    wait "${pid[$rel]}" || rc=1
    echo "======== $MODE on $rel ========" >&2
    cat "$LOGS/$rel.log" >&2
  done
fi
echo "run.sh $MODE: $( [ $rc = 0 ] && echo passed || echo FAILED ) on: $RELEASES" >&2
exit $rc
