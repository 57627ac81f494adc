#!/bin/bash
# Runs inside the GIMP-only chroot (chroot.sh trixie-runtime), called by
# package-test.sh with the packages and ldm_checks.py beside it.
#   package-in-chroot.sh VERSION         as root: checks the system has
#                                        nothing but GIMP, makes a fresh user,
#                                        runs the rest as that user
#   package-in-chroot.sh VERSION user    the checks, as the normal user
# Prints TAP-like "ok - ..." / "not ok - ..." lines.
set -uo pipefail
VERSION=${1:?version}
T=$(cd "$(dirname "$0")" && pwd)
U=ldmuser
rc=0
# GIMP's binaries and profile folder carry its minor version (gimp-console-3.0,
# ~/.config/GIMP/3.0; gimp-console-3.2, ~/.config/GIMP/3.2)
GIMP_CONSOLE=$(ls /usr/bin/gimp-console-3.* 2>/dev/null | sort -V | tail -1)
GIMP_MINOR=${GIMP_CONSOLE##*-}
ok() { echo "ok - $*"; }
fail() { echo "not ok - $*"; rc=1; }

if [ "${2:-}" != user ]; then
  # --------------------------------------------- the system: GIMP, nothing else
  pkgs=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" {print $2}')
  dev=$(echo "$pkgs" | grep -E -- '-dev$' | tr '\n' ' ')
  blas=$(echo "$pkgs" | grep -iE 'openblas' | tr '\n' ' ')
  ccs=$(for c in cc gcc clang tcc ld; do command -v $c; done | tr '\n' ' ')
  [ -z "$dev" ] && ok "no -dev package installed" || fail "-dev packages installed: $dev"
  [ -z "$blas" ] && ok "no OpenBLAS installed" || fail "OpenBLAS installed: $blas"
  [ -z "$ccs" ] && ok "no compiler or linker installed" || fail "compiler/linker found: $ccs"
  [ -x "$GIMP_CONSOLE" ] && ok "GIMP $(dpkg-query -W -f='${Version}' gimp) installed ($(basename "$GIMP_CONSOLE"), $(. /etc/os-release; echo "$PRETTY_NAME"))" \
    || fail "no gimp-console-3.x in /usr/bin"
  # a fresh normal user, every run
  if id "$U" >/dev/null 2>&1; then userdel "$U" 2>/dev/null; fi
  rm -rf --one-file-system "/home/$U"
  useradd -m -s /bin/bash "$U" || { fail "useradd $U"; exit 1; }
  [ "$(id -u "$U")" != 0 ] && ok "checks run as user $U (uid $(id -u "$U"))"
  runuser -u "$U" -- env -i HOME="/home/$U" USER="$U" LOGNAME="$U" PATH=/usr/bin:/bin \
    LANG=C.UTF-8 bash "$T/package-in-chroot.sh" "$VERSION" user || rc=1
  exit $rc
fi

# ------------------------------------------------------------------ as the user
cd "$HOME"
PROFILE=$HOME/.config/GIMP/$GIMP_MINOR
NAME=gimp-ldm-$VERSION-linux-x86_64
MNAME=gimp-ldm-demo-models-$VERSION
mkdir -p Downloads tmp
tar -C Downloads -xf "$T/$NAME.tar.xz" && tar -C Downloads -xf "$T/$MNAME.tar.xz" \
  && ok "packages unpacked" || { fail "unpacking"; exit 1; }
P=$HOME/Downloads/$NAME
M=$HOME/Downloads/$MNAME
BIN=$P/profile/plug-ins/gimp-ldm/gimp-ldm

# every library resolves on this system
for b in "$BIN" "$P/ldm"; do
  missing=$(ldd "$b" 2>&1 | grep -E 'not found|version .* not found')
  [ -z "$missing" ] && ok "ldd $(basename "$b"): every library found ($(ldd "$b" | wc -l) entries)" \
    || fail "ldd $(basename "$b"): $missing"
done

# OpenBLAS inside picks this CPU's kernels; a user's OPENBLAS_CORETYPE is kept
weak='^(Unknown|Katmai|Coppermine|Northwood|Prescott|Banias|Atom|Core2|Penryn|Dunnington|Nehalem|Sandybridge|Athlon|Opteron|Opteron_SSE3|Barcelona|Bobcat)$'
blas=$("$P/ldm" --help | sed -n 's/^blas: //p')
core=$(echo "$blas" | sed -n 's/^OpenBLAS [^,]*, \([A-Za-z0-9_]*\) kernels.*/\1/p')
cpu=$("$P/ldm" --help | sed -n 's/.*cpu: \(.*\), default threads.*/\1/p')
if [ -n "$core" ] && { ! echo "$core" | grep -qE "$weak" || ! echo "$cpu" | grep -q avx2; }; then
  ok "ldm --help from the package: blas: $blas (cpu: $cpu)"
else
  fail "ldm --help BLAS line: '$blas' (cpu: $cpu)"
fi
forced=$(OPENBLAS_CORETYPE=Haswell "$P/ldm" --help | sed -n 's/^blas: //p')
case "$forced" in
  *", Haswell kernels (OPENBLAS_CORETYPE=Haswell)") ok "dynamic-arch OpenBLAS: OPENBLAS_CORETYPE=Haswell gives $forced" ;;
  *) fail "OPENBLAS_CORETYPE=Haswell: $forced" ;;
esac

# no GIMP profile yet: install.sh refuses, clearly, and changes nothing
out=$("$P/install.sh" 2>&1); r=$?
if [ $r != 0 ] && echo "$out" | grep -q "no GIMP 3 profile found" && [ ! -e "$HOME/.config/GIMP" ]; then
  ok "install.sh without a GIMP profile refuses (rc $r): $(echo "$out" | head -1)"
else
  fail "install.sh without a profile: rc $r, $out"
fi

gimp_batch() {   # $1 = log file, rest: env for the checks
  local logf=$1; shift
  env "$@" timeout 600 "$GIMP_CONSOLE" -i -n -d -f --batch-interpreter=python-fu-eval \
    -b "${GIMP_BATCH:-exec(open('$T/ldm_checks.py').read())}" --quit >"$logf" 2>&1
}
# GIMP's first start creates the profile
GIMP_BATCH=pass gimp_batch "$HOME/tmp/gimp-first.log" && [ -d "$PROFILE/plug-ins" ] \
  && ok "GIMP's first start made the profile $PROFILE" || { fail "first GIMP start"; tail "$HOME/tmp/gimp-first.log"; exit 1; }
found=$("$P/install.sh" --list 2>&1)
[ "$found" = "$PROFILE" ] && ok "install.sh --list finds exactly that profile" \
  || fail "install.sh --list: '$found', want $PROFILE"

snapshot() {   # every path under the profile with its type, size and content hash
  (cd "$PROFILE" && find . -mindepth 1 \( -type f -printf '%p f %s ' -exec sha1sum {} \; \) -o \( ! -type f -printf '%p %y\n' \) \
    | awk '{print $1, $2, $3, $4}' | sort)
}
paths() { (cd "$PROFILE" && find . -mindepth 1 | sort); }

snapshot >"$HOME/tmp/before.txt"
"$P/install.sh" >"$HOME/tmp/install.log" 2>&1 && "$M/install.sh" >>"$HOME/tmp/install.log" 2>&1 \
  && ok "install.sh of both packages: $(grep -c installed "$HOME/tmp/install.log") installs" \
  || { fail "install.sh"; cat "$HOME/tmp/install.log"; }
[ -x "$PROFILE/plug-ins/gimp-ldm/gimp-ldm" ] && [ -f "$PROFILE/plug-ins/gimp-ldm/locale/de/LC_MESSAGES/gimp-ldm.mo" ] \
  && [ -f "$PROFILE/gimp-ldm/models/ldm-demo-x4.safetensors" ] \
  && ok "plug-in folder, its translations and the demo models are in the profile" \
  || fail "installed files missing: $(cd "$PROFILE" && find plug-ins/gimp-ldm gimp-ldm 2>&1 | tr '\n' ' ')"
# install -> uninstall at once: the profile exactly as before (paths, sizes, contents)
"$P/install.sh" --uninstall >/dev/null && "$M/install.sh" --uninstall >/dev/null
snapshot >"$HOME/tmp/after-uninstall.txt"
if diff -u "$HOME/tmp/before.txt" "$HOME/tmp/after-uninstall.txt" >"$HOME/tmp/uninstall.diff"; then
  ok "install.sh --uninstall right after installing: profile identical to before ($(wc -l <"$HOME/tmp/before.txt") paths, contents compared)"
else
  fail "install + uninstall changed the profile:"; cat "$HOME/tmp/uninstall.diff"
fi

# installed for real: GIMP finds and runs the plug-in from the package
"$P/install.sh" >/dev/null && "$M/install.sh" >/dev/null || fail "second install"
paths >"$HOME/tmp/paths-before-gimp.txt"
for mode in errors procedures; do
  gimp_batch "$HOME/tmp/gimp-$mode.log" LDM_CHECKS=$mode LDM_TMP="$HOME/tmp" OPENBLAS_VERBOSE=2
  r=$?
  grep -E "^(ok|not ok) - " "$HOME/tmp/gimp-$mode.log" | grep -v "^ok - " | head -20
  summary=$(grep "^SUMMARY $mode:" "$HOME/tmp/gimp-$mode.log")
  if [ $r = 0 ] && echo "$summary" | grep -q " 0 failed"; then
    ok "ldm_checks.py $mode in GIMP from the installed package: $summary"
  else
    fail "ldm_checks.py $mode: rc $r, ${summary:-no summary}"
    grep -E "Traceback|Error|gimp-ldm" "$HOME/tmp/gimp-$mode.log" | head -20
  fi
done
# OPENBLAS_VERBOSE=2: OpenBLAS names the kernel set it took inside the plug-in
pcore=$(grep -ohE '^Core: [A-Za-z0-9_]+' "$HOME/tmp/gimp-procedures.log" | sort -u | tr '\n' ' ')
if [ -n "$pcore" ] && ! echo "$pcore" | sed 's/Core: //g' | tr ' ' '\n' | grep -qE "$weak"; then
  ok "OpenBLAS inside the plug-in process chose: $pcore"
elif [ -n "$pcore" ] && ! echo "$cpu" | grep -q avx2; then
  ok "OpenBLAS inside the plug-in process chose: $pcore (CPU without AVX2)"
else
  fail "OpenBLAS kernels inside the plug-in: '${pcore:-none reported}'"
fi

# uninstall after GIMP used the plug-in: nothing of the packages is left and
# the profile has the paths it had before installing, except files GIMP
# itself writes while it runs (printed)
"$P/install.sh" --uninstall && "$M/install.sh" --uninstall || fail "uninstall"
(cd "$PROFILE" && find . -mindepth 1 | sort) >"$HOME/tmp/paths-after.txt"
awk '{print $1}' "$HOME/tmp/before.txt" >"$HOME/tmp/paths-before.txt"
left=$(cd "$PROFILE" && find plug-ins/gimp-ldm gimp-ldm 2>/dev/null)
added=$(comm -13 "$HOME/tmp/paths-before.txt" "$HOME/tmp/paths-after.txt")
removed=$(comm -23 "$HOME/tmp/paths-before.txt" "$HOME/tmp/paths-after.txt")
if [ -z "$left" ] && [ -z "$removed" ] && [ -z "$added" ]; then
  ok "install.sh --uninstall after GIMP ran the plug-in: same file list as before installing ($(wc -l <"$HOME/tmp/paths-after.txt") paths)"
else
  fail "after uninstall: left: ${left:-none}; added: ${added:-none}; removed: ${removed:-none}"
fi
exit $rc
