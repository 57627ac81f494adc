#!/usr/bin/env bash
# tools/package/install.sh (the portable package's installer) on fake GIMP
# profiles, without GIMP: which profiles it finds (XDG 3.0 and 3.2, Flatpak,
# Snap, $GIMP3_DIRECTORY absolute and relative to HOME, --profile), that it
# refuses without a profile and over files it did not install, and that
# --uninstall restores every profile exactly (paths, modes, contents), keeping
# files of the user's own in shared folders. The real install in GIMP is the
# gimp suite's gimp-package test.
set -u
src=${LDM_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
fail=0; n=0
ok() { n=$((n+1)); echo "ok   $*"; }
bad() { n=$((n+1)); fail=$((fail+1)); echo "FAIL $*"; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# two fake packages laid out as tools/package/build.sh does
mk_pkg() { # dir name files...
  local d=$1 name=$2; shift 2
  mkdir -p "$d/profile"; cp "$src/tools/package/install.sh" "$d/"; echo "$name 9.9.9" >"$d/PACKAGE"
  local f; for f in "$@"; do mkdir -p "$d/profile/$(dirname "$f")"; echo "$name:$f" >"$d/profile/$f"; done
}
P=$tmp/pkg; M=$tmp/models
mk_pkg "$P" gimp-ldm plug-ins/gimp-ldm/gimp-ldm plug-ins/gimp-ldm/locale/de/LC_MESSAGES/gimp-ldm.mo
chmod 755 "$P/profile/plug-ins/gimp-ldm/gimp-ldm"
mk_pkg "$M" gimp-ldm-demo-models gimp-ldm/models/a.safetensors gimp-ldm/models/b.safetensors

H=$tmp/home
run() { env -i PATH=/usr/bin:/bin HOME="$H" "$@"; }
state() { (cd "$H" && find . -mindepth 1 -printf '%p %y %m ' -exec sh -c '[ -f "$1" ] && md5sum <"$1" || echo' _ {} \; | sort); }

mkdir -p "$H"
out=$(run "$P/install.sh" 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "no GIMP 3 profile found" && [ -z "$(ls -A "$H")" ] \
  && ok "no profile: refuses, creates nothing (${out%%$'\n'*})" || bad "no profile: rc $rc $out"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$H/.config/GIMP/3.0"
  out=$(run "$P/install.sh" 2>&1); rc=$?
  [ $rc = 1 ] && echo "$out" | grep -q "not as root" && ok "as root without --profile: refuses" || bad "root: rc $rc $out"
  rmdir "$H/.config/GIMP/3.0"
fi

# profiles of every kind; the 3.0 one with plug-ins/ and a model of the user's own
mkdir -p "$H/.config/GIMP/3.0/plug-ins" "$H/.config/GIMP/3.2" "$H/.config/GIMP/2.10" \
  "$H/.var/app/org.gimp.GIMP/config/GIMP/3.0" "$H/snap/gimp/current/.config/GIMP/3.0" \
  "$H/.config/GIMP/3.0/gimp-ldm/models"
echo mine >"$H/.config/GIMP/3.0/gimp-ldm/models/mine.safetensors"
echo rc >"$H/.config/GIMP/3.0/gimprc"
listed=$(run "$P/install.sh" --profile "$H/.config/GIMP/3.2" --list)
[ "$listed" = "$H/.config/GIMP/3.2" ] && ok "--profile names one profile" || bad "--profile: $listed"
all=$(run "$P/install.sh" --list 2>&1 | sed "s|$H/||" | tr '\n' ' ')
want=".config/GIMP/3.0 .config/GIMP/3.2 .var/app/org.gimp.GIMP/config/GIMP/3.0 snap/gimp/current/.config/GIMP/3.0 "
[ "$all" = "$want" ] && ok "found: $all(not 2.10)" || bad "profiles found: '$all', want '$want'"
rel=$(run env GIMP3_DIRECTORY=.config/GIMP/3.2 "$P/install.sh" --list)
[ "$rel" = "$H/.config/GIMP/3.2" ] && ok "relative \$GIMP3_DIRECTORY taken under HOME, as GIMP does" || bad "GIMP3_DIRECTORY: $rel"

if [ "$(id -u)" = 0 ]; then ask() { run "$@" --profile "$H/.config/GIMP/3.0" --profile "$H/.config/GIMP/3.2" \
  --profile "$H/.var/app/org.gimp.GIMP/config/GIMP/3.0" --profile "$H/snap/gimp/current/.config/GIMP/3.0"; }
else ask() { run "$@"; }; fi
before=$(state)
ask "$P/install.sh" >/dev/null && ask "$M/install.sh" >/dev/null || bad "install rc"
missing=
for p in .config/GIMP/3.0 .config/GIMP/3.2 .var/app/org.gimp.GIMP/config/GIMP/3.0 snap/gimp/current/.config/GIMP/3.0; do
  [ -x "$H/$p/plug-ins/gimp-ldm/gimp-ldm" ] && [ -f "$H/$p/gimp-ldm/models/b.safetensors" ] \
    && [ "$(cat "$H/$p/plug-ins/gimp-ldm/locale/de/LC_MESSAGES/gimp-ldm.mo")" = "gimp-ldm:plug-ins/gimp-ldm/locale/de/LC_MESSAGES/gimp-ldm.mo" ] \
    || missing="$missing $p"
done
[ -z "$missing" ] && ok "both packages installed into the 4 profiles (plug-in executable, translations, models)" \
  || bad "not installed in:$missing"
ask "$P/install.sh" >/dev/null && ok "install again (over its own files) works" || bad "reinstall refused"
ask "$P/install.sh" --uninstall >/dev/null && ask "$M/install.sh" --uninstall >/dev/null 2>&1
after=$(state)
[ "$before" = "$after" ] && ok "--uninstall of both: every profile as before ($(echo "$before" | wc -l) paths; the user's own model kept)" \
  || bad "uninstall differs: $(diff <(echo "$before") <(echo "$after") | head -5)"
# the other order of uninstalling, too
ask "$M/install.sh" >/dev/null && ask "$P/install.sh" >/dev/null && ask "$P/install.sh" --uninstall >/dev/null \
  && ask "$M/install.sh" --uninstall >/dev/null 2>&1
[ "$before" = "$(state)" ] && ok "install models first, uninstall plug-in first: as before" || bad "other order differs"

# a plug-in installed otherwise (from source) is not overwritten without --force
mkdir -p "$H/.config/GIMP/3.0/plug-ins/gimp-ldm"; echo built >"$H/.config/GIMP/3.0/plug-ins/gimp-ldm/gimp-ldm"
out=$(run "$P/install.sh" --profile "$H/.config/GIMP/3.0" 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q -- "--force" && [ "$(cat "$H/.config/GIMP/3.0/plug-ins/gimp-ldm/gimp-ldm")" = built ] \
  && ok "refuses to overwrite a plug-in it did not install (rc 1)" || bad "overwrite: rc $rc $out"
run "$P/install.sh" --profile "$H/.config/GIMP/3.0" --force >/dev/null \
  && [ "$(cat "$H/.config/GIMP/3.0/plug-ins/gimp-ldm/gimp-ldm")" = "gimp-ldm:plug-ins/gimp-ldm/gimp-ldm" ] \
  && ok "--force replaces it" || bad "--force"
out=$(run "$P/install.sh" --profile "$H/nonexistent" 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "no such GIMP profile" && ok "--profile of a missing folder: refused" || bad "missing profile: $out"

echo "install.sh: $((n - fail)) passed, $fail failed"
[ $fail = 0 ]
