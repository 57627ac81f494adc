#!/bin/bash
# Runs inside a test chroot (see run.sh; Debian 13 with GIMP 3.0.x or Debian
# testing with GIMP 3.2.x): builds the whole project with the plug-in,
# installs it into a scratch GIMP profile and runs the python-fu checks in
# headless GIMP 3.
# Usage: in-chroot.sh errors|procedures|build [plugin-only]
set -uo pipefail
MODE=${1:-errors}
PLUGIN_ONLY=
for flag in "${@:2}"; do
  case "$flag" in
    plugin-only) PLUGIN_ONLY=1 ;;                 # build + install only the binary
  esac
done
SRC=/src/gimp-ldm
W=/var/tmp/gimp-ldm
BUILD=$W/build
PROFILE=$W/profile
export HOME=$W/home XDG_CACHE_HOME=$W/home/.cache LANG=C.UTF-8
export GIMP3_DIRECTORY=$PROFILE LDM_TMP=$W/tmp
# the tiny test models of tests/golden/pipeline under the demo models' names
mkdir -p "$HOME" "$PROFILE" "$LDM_TMP" "$W/models"
ln -sfn "$SRC/tests/golden/pipeline/sd1.safetensors" "$W/models/ldm-demo.safetensors"
ln -sfn "$SRC/tests/golden/pipeline/sd1_inpaint.safetensors" "$W/models/ldm-demo-inpaint.safetensors"
ln -sfn "$SRC/tests/golden/pipeline/x4.safetensors" "$W/models/ldm-demo-x4.safetensors"
# the fast upscaler: the trained demo one (0.4 MB; a random-weight net could
# not show that alpha survives)
ln -sfn "$SRC/models/demo/ldm-demo-esrgan-x4.safetensors" "$W/models/ldm-demo-esrgan-x4.safetensors"
# LoRAs and embeddings of the add-on goldens for the LoRA checks
export LDM_MODEL_PATH=$W/models:$SRC/tests/golden/lora:$SRC/tests/golden/embed

log() { echo "in-chroot: $*" >&2; }

# GIMP's binaries carry its minor version (gimp-3.0, gimp-console-3.2):
# the newest 3.x installed
GIMP_CONSOLE=$(ls /usr/bin/gimp-console-3.* 2>/dev/null | sort -V | tail -1)
GIMP_GUI=$(ls /usr/bin/gimp-3.* 2>/dev/null | sort -V | tail -1)
[ -x "$GIMP_CONSOLE" ] && [ -x "$GIMP_GUI" ] || { log "no gimp-console-3.x / gimp-3.x in /usr/bin"; exit 1; }
GIMP_VERSION=$("$GIMP_CONSOLE" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)
log "GIMP $GIMP_VERSION ($(basename "$GIMP_CONSOLE"), $(. /etc/os-release; echo "$PRETTY_NAME"))"

setup() {
  rm -rf "$BUILD"
  meson setup "$BUILD" "$SRC" -Dplugin=enabled -Dtests=false \
    --prefix="$W/prefix" -Dplugindir="$PROFILE/plug-ins" >"$W/setup.log" 2>&1 \
    || { tail -30 "$W/setup.log"; log "meson setup failed"; exit 1; }
}
[ -f "$BUILD/build.ninja" ] || setup
# the copied tree keeps its files' times: when an older tree replaced a newer
# one, the build dir may be stale -> one fresh setup before giving up
build() {
  ninja -C "$BUILD" "$@" >"$W/build.log" 2>&1 && return 0
  log "build failed, retrying from a fresh build dir"
  setup
  ninja -C "$BUILD" "$@" >"$W/build.log" 2>&1
}
if [ -n "$PLUGIN_ONLY" ]; then
  # development shortcut (LDM_GIMP_PLUGIN_ONLY=1): only the plug-in binary
  build plugin/gimp-ldm || { grep -B2 -A8 -E "error|FAILED" "$W/build.log" | head -60; log "build failed"; exit 1; }
  install -D -m 755 "$BUILD/plugin/gimp-ldm" "$PROFILE/plug-ins/gimp-ldm/gimp-ldm"
else
  build || { grep -B2 -A8 -E "error|FAILED" "$W/build.log" | head -60; log "build failed"; exit 1; }
  meson install -C "$BUILD" --quiet >"$W/install.log" 2>&1 || { tail -20 "$W/install.log"; log "install failed"; exit 1; }
fi
grep -E "warning:" "$W/build.log" | grep -E "plugin/|ui/" && log "plug-in warnings above"
[ -x "$PROFILE/plug-ins/gimp-ldm/gimp-ldm" ] || { log "plug-in not installed"; exit 1; }

run_batch() {   # $1 = checks mode, $2 = LANG (default C.UTF-8)
  LANG=${2:-C.UTF-8} LDM_CHECKS=$1 timeout 240 "$GIMP_CONSOLE" -i -n -d -f \
    --batch-interpreter=python-fu-eval \
    -b "exec(open('$SRC/tests/gimp/ldm_checks.py').read())" --quit >"$W/gimp-$1.log" 2>&1
  local rc=$?
  grep -E "^(ok|not ok) - |^    message:|^SUMMARY|^GIMP [0-9]|^# |Traceback|Error|gimp-ldm" "$W/gimp-$1.log" \
    | grep -v "LibGimpBase-WARNING\|script-fu" >&2
  grep -q "^SUMMARY $1: .* 0 failed" "$W/gimp-$1.log" && [ $rc = 0 ]
}

# An X server on a free display: the chroots of both releases share the
# host's abstract X sockets, so two runs at once must not both take :91.
# Sets XPID and XDISP (":N").
start_xvfb() {   # $1 = log file
  local fd_file; fd_file=$(mktemp)
  Xvfb -displayfd 1 -screen 0 1280x1024x24 -nolisten tcp >"$fd_file" 2>"$1" &
  XPID=$!
  for i in $(seq 100); do [ -s "$fd_file" ] && break; sleep 0.1; done
  XDISP=":$(head -1 "$fd_file")"
  rm -f "$fd_file"
}

# one undo step removes the plug-in's work: GUI GIMP under Xvfb, ctrl+z
gui_undo() {
  local d out=$W/undo
  rm -rf "$out"; mkdir -p "$out"
  start_xvfb "$out/xvfb.log"; d=$XDISP; local xpid=$XPID
  export DISPLAY=$d
  for i in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.2; done
  LDM_UNDO_DIR=$out "$GIMP_GUI" -n -s -d -f --batch-interpreter=python-fu-eval \
    -b "exec(open('$SRC/tests/gimp/ldm_undo.py').read())" --quit >"$out/gimp.log" 2>&1 & local gpid=$!
  for i in $(seq 240); do [ -f "$out/ran" ] && break; kill -0 $gpid 2>/dev/null || break; sleep 0.25; done
  if [ -f "$out/ran" ] && grep -q SUCCESS "$out/ran"; then
    local iw; iw=$(xdotool search --name 'Untitled' | head -1)
    xdotool windowraise "$iw"; xdotool windowfocus --sync "$iw"
    xdotool key --clearmodifiers ctrl+z
    sleep 1
  fi
  touch "$out/undone"
  for i in $(seq 80); do kill -0 $gpid 2>/dev/null || break; sleep 0.25; done
  kill $gpid 2>/dev/null; wait $gpid 2>/dev/null
  kill $xpid 2>/dev/null; wait $xpid 2>/dev/null
  unset DISPLAY
  grep -E "^(ok|not ok) - |^UNDO|^GIMP [0-9]" "$out/gimp.log" >&2
  grep -q "^ok - one undo step removes the new layer" "$out/gimp.log"
}

# the plug-in's sources compile without a warning against this GIMP's headers
# (and this gcc): each one compiled again, syntax only, with the build's own
# flags, so the check does not depend on what the incremental build redid
check_warnings() {
  local out=$W/warnings.log
  python3 - "$BUILD/compile_commands.json" >"$out" 2>&1 <<'PY'
import json, shlex, subprocess, sys
n = 0
for e in json.load(open(sys.argv[1])):
    f = e['file']
    if '/plugin/' not in f and '/ui/' not in f:
        continue
    args, keep = shlex.split(e['command']), []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in ('-o', '-MQ', '-MF'):
            skip = True
        elif a not in ('-MD', '-c', f):
            keep.append(a)
    r = subprocess.run(keep + ['-fsyntax-only', '-fdiagnostics-color=never', '-c', f],
                       cwd=e['directory'], capture_output=True, text=True)
    sys.stdout.write(r.stdout + r.stderr)
    n += 1
print('compiled %d files' % n)
PY
  local cc; cc=$(cc --version | head -1)
  if [ "$(grep -c "warning:\|error:" "$out")" != 0 ] || ! grep -q "^compiled [1-9]" "$out"; then
    grep -E "warning:|error:|compiled" "$out" | head -40 >&2
    echo "not ok - plug-in compiles without warnings against GIMP $GIMP_VERSION ($cc)" >&2
    return 1
  fi
  echo "ok - plug-in compiles without warnings against GIMP $GIMP_VERSION ($cc, $(tail -1 "$out" | cut -d' ' -f2) files)" >&2
}

# the dialog as a user meets it: real GIMP window under Xvfb, the dialog
# worked through the accessibility bus (AT-SPI) and real mouse clicks
# (tests/gimp/dialog_driver.py), with the bundled demo models
gui_dialog() {
  local d out=$W/dialog rc
  rm -rf "$out"; mkdir -p "$out"
  # the Control section's run: a ControlNet that fits the model, the tiny
  # test pair of tests/golden (SD1 checkpoint + ControlNet made from it)
  # unless the demo models bring their own ControlNet
  local cm=$W/control-models
  # every dialog opens with the procedures' defaults, not with the values
  # of an earlier run's OK (GIMP's last values of the profile)
  rm -f "$PROFILE"/plug-in-settings/GimpProcedureConfigRun-plug-in-ldm-{generate,refine,inpaint,upscale,outpaint,regenerate}.last
  mkdir -p "$cm"
  ln -sfn "$SRC/tests/golden/pipeline/sd1.safetensors" "$cm/ldm-test-sd1.safetensors"
  ln -sfn "$SRC/tests/golden/controlnet/sd1_a_orig.safetensors" "$cm/ldm-test-control.safetensors"
  # a damaged copy of the demo model (cut short), outside the model folders:
  # picked through the file chooser, its run must fail with a clear message
  mkdir -p "$W/damaged"
  head -c 300000 "$SRC/models/demo/ldm-demo.safetensors" >"$W/damaged/ldm-demo-cut.safetensors"
  start_xvfb "$out/xvfb.log"; d=$XDISP; local xpid=$XPID
  for i in $(seq 50); do DISPLAY=$d xdpyinfo >/dev/null 2>&1 && break; sleep 0.2; done
  DISPLAY=$d LDM_DIALOG_DIR=$out LDM_MODEL_PATH=$SRC/models/demo:$cm \
    LDM_DIALOG_BROKEN_MODEL=$W/damaged/ldm-demo-cut.safetensors timeout 560 dbus-run-session -- bash -c '
      /usr/libexec/at-spi-bus-launcher --launch-immediately >/dev/null 2>&1 &
      sleep 1
      # the registry up before any application registers (on a loaded host
      # its activation on demand can outlast a client'"'"'s registration call)
      /usr/libexec/at-spi2-registryd >/dev/null 2>&1 &
      sleep 2
      '"$GIMP_GUI"' -n -s -d -f --batch-interpreter=python-fu-eval \
        -b "exec(open(\"'"$SRC"'/tests/gimp/ldm_dialog.py\").read())" --quit \
        >"$LDM_DIALOG_DIR/gimp.log" 2>&1 & g=$!
      python3 '"$SRC"'/tests/gimp/dialog_driver.py >"$LDM_DIALOG_DIR/driver.log" 2>&1; r=$?
      for i in $(seq 240); do kill -0 $g 2>/dev/null || break; sleep 0.25; done
      kill $g 2>/dev/null; exit $r' >"$out/session.log" 2>&1
  rc=$?
  kill $xpid 2>/dev/null; wait $xpid 2>/dev/null
  grep -E "^(ok|not ok) - |^# " "$out/driver.log" "$out/gimp.log" >&2
  tail -5 "$out/driver.log" | grep -E "Traceback|Error" >&2
  echo "in-chroot: dialog screenshots and logs in $out" >&2
  [ $rc = 0 ] && ! grep -q "^not ok" "$out/gimp.log" && [ -f "$out/checks-done" ]
}

# access keys of every dialog, in English and each translation: the dialogs
# report what is on screen with each section open and cancel themselves
# (tests/gimp/ldm_keys.py); no driver needed
gui_keys() {
  local out=$W/keys rc=0 lang d
  rm -rf "$out"; mkdir -p "$out"
  start_xvfb "$out/xvfb.log"; d=$XDISP; local xpid=$XPID
  for i in $(seq 50); do DISPLAY=$d xdpyinfo >/dev/null 2>&1 && break; sleep 0.2; done
  for lang in ${LDM_KEYS_LANGS:-C.UTF-8 de_DE.UTF-8 fr_FR.UTF-8 ja_JP.UTF-8}; do
    rm -f "$PROFILE"/plug-in-settings/GimpProcedureConfigRun-plug-in-ldm-*.last
    DISPLAY=$d LANG=$lang LANGUAGE= LDM_DIALOG_ACCESS_KEYS=$out/keys-$lang.txt \
      timeout 240 dbus-run-session -- "$GIMP_GUI" -n -s -d -f --batch-interpreter=python-fu-eval \
      -b "exec(open('$SRC/tests/gimp/ldm_keys.py').read())" --quit >"$out/gimp-$lang.log" 2>&1
    grep -E "^(ok|not ok) - |Traceback|Error" "$out/gimp-$lang.log" >&2
    grep -q "^SUMMARY keys $lang: 0 failed" "$out/gimp-$lang.log" || rc=1
  done
  kill $xpid 2>/dev/null; wait $xpid 2>/dev/null
  return $rc
}

# live painting (plug-in-ldm-live) as a user meets it: real GIMP window under
# Xvfb, the procedure opened from GIMP's menu and its dialog worked through
# the accessibility bus and real clicks (tests/gimp/live_driver.py), strokes
# painted through the PDB (tests/gimp/ldm_live.py), the bundled demo model.
# GIMP runs with its data here (-d would leave it without brushes).
gui_live() {
  local d out=$W/live rc
  rm -rf "$out"; mkdir -p "$out"
  start_xvfb "$out/xvfb.log"; d=$XDISP; local xpid=$XPID
  for i in $(seq 50); do DISPLAY=$d xdpyinfo >/dev/null 2>&1 && break; sleep 0.2; done
  DISPLAY=$d LDM_LIVE_DIR=$out LDM_MODEL_PATH=$SRC/models/demo \
    timeout 600 dbus-run-session -- bash -c '
      /usr/libexec/at-spi-bus-launcher --launch-immediately >/dev/null 2>&1 &
      sleep 1
      /usr/libexec/at-spi2-registryd >/dev/null 2>&1 &
      sleep 2
      '"$GIMP_GUI"' -n -s -f --batch-interpreter=python-fu-eval \
        -b "exec(open(\"'"$SRC"'/tests/gimp/ldm_live.py\").read())" --quit \
        >"$LDM_LIVE_DIR/gimp.log" 2>&1 & g=$!
      python3 '"$SRC"'/tests/gimp/live_driver.py >"$LDM_LIVE_DIR/driver.log" 2>&1; r=$?
      for i in $(seq 240); do kill -0 $g 2>/dev/null || break; sleep 0.25; done
      kill $g 2>/dev/null; exit $r' >"$out/session.log" 2>&1
  rc=$?
  kill $xpid 2>/dev/null; wait $xpid 2>/dev/null
  grep -E "^(ok|not ok) - |^# |^SUMMARY" "$out/driver.log" "$out/gimp.log" | sed 's/^[^:]*\///' >&2
  grep -iE "crash|Traceback|CRITICAL" "$out/gimp.log" | head -10 >&2
  echo "in-chroot: live painting screenshots and logs in $out" >&2
  [ $rc = 0 ] && grep -q "^SUMMARY live: 0 failed" "$out/gimp.log" \
    && ! grep -qi "crash" "$out/gimp.log"
}

# every catalogue complete: no untranslated or fuzzy message against the
# strings now in the sources
check_po() {
  local pot=$W/gimp-ldm.pot ok=0 l stats
  (cd "$SRC" && xgettext --from-code=UTF-8 --add-comments=TRANSLATORS: --keyword=_ \
     --keyword=N_ -o "$pot" $(cat po/POTFILES)) || return 1
  for l in $(cat "$SRC/po/LINGUAS"); do
    stats=$(msgmerge -q -o - "$SRC/po/$l.po" "$pot" | msgfmt -c --statistics -o /dev/null - 2>&1)
    if echo "$stats" | grep -qE "fuzzy|untranslated|error"; then
      echo "not ok - po/$l.po complete  # $stats" >&2; ok=1
    else
      echo "ok - po/$l.po complete ($stats)" >&2
    fi
  done
  return $ok
}

case "$MODE" in
  build)
    exit 0 ;;
  errors)
    rc=0
    check_warnings || rc=1
    check_po || rc=1
    run_batch errors || rc=1
    run_batch i18n-de de_DE.UTF-8 || rc=1
    exit $rc ;;
  dialog)
    rc=0
    gui_dialog || rc=1
    gui_keys || rc=1
    exit $rc ;;
  keys)
    gui_keys ;;
  live)
    gui_live ;;
  procedures)
    rc=0
    run_batch procedures || rc=1
    gui_undo || rc=1
    exit $rc ;;
  *) log "unknown mode $MODE"; exit 2 ;;
esac
