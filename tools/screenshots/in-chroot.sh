#!/bin/bash
# Inside the chroot: build + install (as the gimp suite does, build only),
# start Xvfb and GIMP, photograph each dialog as it opens, press Escape.
set -uo pipefail
SRC=/src/gimp-ldm
W=/var/tmp/gimp-ldm
SHOTS=$W/shots
bash "$SRC/tests/gimp/in-chroot.sh" build "$@" || exit 1
export HOME=$W/home XDG_CACHE_HOME=$W/home/.cache LANG=C.UTF-8
# the trained demo models when present, else the tiny test models under
# their names (set up by tests/gimp/in-chroot.sh)
export GIMP3_DIRECTORY=$W/profile LDM_MODEL_PATH=$SRC/models/demo:$W/models
# the Control section's ControlNet: the demo one when present, else the tiny
# test ControlNet of tests/golden/controlnet under a readable name
CN=$SRC/models/demo/ldm-demo-control-scribble.safetensors
if [ ! -f "$CN" ]; then
  mkdir -p "$W/shot-models"
  ln -sfn "$SRC/tests/golden/controlnet/sd1_a_orig.safetensors" "$W/shot-models/control-scribble.safetensors"
  CN=$W/shot-models/control-scribble.safetensors
  LDM_MODEL_PATH=$LDM_MODEL_PATH:$W/shot-models
fi
export LDM_SHOT_CONTROLNET=$CN
rm -rf "$SHOTS"; mkdir -p "$SHOTS"
rm -f "$GIMP3_DIRECTORY/parasiterc"   # no remembered speed from earlier runs
# the dialogs with their defaults, not with the values of an earlier OK
rm -f "$GIMP3_DIRECTORY"/plug-in-settings/GimpProcedureConfigRun-plug-in-ldm-{generate,refine,inpaint,upscale,outpaint,regenerate}.last
D=:93
Xvfb $D -screen 0 1400x1050x24 -nolisten tcp >"$SHOTS/xvfb.log" 2>&1 & XPID=$!
export DISPLAY=$D
for i in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.2; done
gimp-3.0 -n -s --batch-interpreter=python-fu-eval \
  -b "exec(open('$SRC/tools/screenshots/dialogs.py').read())" --quit >"$SHOTS/gimp.log" 2>&1 & GPID=$!

shoot() {   # $1 window title, $2 file name
  local wid="" i
  for i in $(seq 240); do
    wid=$(xdotool search --onlyvisible --name "^$1\$" 2>/dev/null | head -1)
    [ -n "$wid" ] && break
    kill -0 $GPID 2>/dev/null || break
    sleep 0.25
  done
  if [ -z "$wid" ]; then echo "no window '$1'" >&2; return 1; fi
  sleep 1.5
  xdotool windowraise "$wid"; sleep 0.3
  import -window "$wid" "$SHOTS/tmp.png"
  convert "$SHOTS/tmp.png" -strip -colors 192 PNG8:"$SHOTS/$2.png"
  rm -f "$SHOTS/tmp.png"
  xdotool windowfocus --sync "$wid"; xdotool key --clearmodifiers Escape
  for i in $(seq 40); do xdotool search --onlyvisible --name "^$1\$" >/dev/null 2>&1 || break; sleep 0.25; done
  echo "shot $2 ($(identify -format %wx%h "$SHOTS/$2.png"))" >&2
}

rc=0
shoot "Inpaint Selection" plug-in-ldm-inpaint || rc=1
shoot "Generate Layer" plug-in-ldm-generate || rc=1
shoot "Refine Layer" plug-in-ldm-refine || rc=1
shoot "Upscale Layer" plug-in-ldm-upscale || rc=1
shoot "Expand Canvas" plug-in-ldm-outpaint || rc=1
shoot "Regenerate Layer" plug-in-ldm-regenerate || rc=1
shoot "Generate Layer" plug-in-ldm-generate-control || rc=1
for i in $(seq 60); do kill -0 $GPID 2>/dev/null || break; sleep 0.25; done
kill $GPID 2>/dev/null; wait $GPID 2>/dev/null
kill $XPID 2>/dev/null; wait $XPID 2>/dev/null
grep -E "SHOT|CRITICAL|mnemonic" "$SHOTS/gimp.log" >&2
rm -f "$SHOTS/xvfb.log" "$SHOTS/gimp.log"
exit $rc
