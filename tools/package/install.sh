#!/bin/bash
# Installs the files of this package into your GIMP 3 profile, or removes
# them again. Runs as your own user; never needs root.
#
#   ./install.sh                    install into every GIMP 3 profile found
#   ./install.sh --profile DIR      install into this profile only
#   ./install.sh --uninstall        remove exactly what an earlier run installed
#   ./install.sh --force            replace files of an installation made
#                                   otherwise (e.g. built from source)
#   ./install.sh --list             print the profiles that would be used
#
# The profiles looked for, when neither --profile nor $GIMP3_DIRECTORY names
# one: ${XDG_CONFIG_HOME:-~/.config}/GIMP/3.* (GIMP 3.0 uses .../GIMP/3.0,
# GIMP 3.2 .../GIMP/3.2, also the Flatpak of 3.2), the Flatpak profile
# ~/.var/app/org.gimp.GIMP/config/GIMP/3.* and the Snap profile
# ~/snap/gimp/current/.config/GIMP/3.*.
#
# What is copied: the tree profile/ beside this script (the plug-in folder
# plug-ins/gimp-ldm/, or the demo models in gimp-ldm/models/). Every file and
# every folder the script creates is listed in a manifest in the package's
# own folder (plug-ins/gimp-ldm/.gimp-ldm-manifest,
# gimp-ldm/models/.gimp-ldm-manifest); --uninstall deletes those files, the
# manifest, and then those folders when they are empty.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROG=install.sh

die() { echo "$PROG: $*" >&2; exit 1; }

[ -f "$HERE/PACKAGE" ] && [ -d "$HERE/profile" ] \
  || die "PACKAGE or profile/ missing beside the script in $HERE: unpack the whole archive"
read -r PKG_NAME PKG_VERSION <"$HERE/PACKAGE"
case "$PKG_NAME" in ''|*/*|.*) die "bad package name in $HERE/PACKAGE" ;; esac

MODE=install FORCE= PROFILES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --uninstall) MODE=uninstall ;;
    --list) MODE=list ;;
    --force) FORCE=1 ;;
    --profile) [ $# -ge 2 ] || die "--profile needs a folder"; PROFILES+=("$2"); shift ;;
    --profile=*) PROFILES+=("${1#--profile=}") ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

# the manifest lives in the deepest folder holding all of the package's files
# (plug-ins/gimp-ldm, gimp-ldm/models), so packages never share folders
TOP=$(cd "$HERE/profile" && find . -type f -o -type l | sed -e 's|^\./||' -e 's|/[^/]*$||' \
      | awk 'NR == 1 { p = $0 } { while (p != "" && index($0 "/", p "/") != 1) sub("/?[^/]*$", "", p) } END { print p }')
[ -n "$TOP" ] || die "profile/ in $HERE holds no folder of files"
MANIFEST=$TOP/.gimp-ldm-manifest

# ----------------------------------------------------------------- profiles
find_profiles() {
  local home=${HOME:-}
  local bases=("${XDG_CONFIG_HOME:-$home/.config}/GIMP")
  if [ -n "$home" ]; then
    bases+=("$home/.var/app/org.gimp.GIMP/config/GIMP" "$home/snap/gimp/current/.config/GIMP")
  fi
  local b d seen=" " real
  for b in "${bases[@]}"; do
    for d in "$b"/3.*; do
      [ -d "$d" ] || continue
      case "${d##*/}" in 3.[0-9]|3.[0-9][0-9]) ;; *) continue ;; esac
      real=$(cd "$d" && pwd -P)
      case "$seen" in *" $real "*) continue ;; esac
      seen="$seen$real "
      echo "$d"
    done
  done
}

EXPLICIT=
if [ ${#PROFILES[@]} -gt 0 ]; then
  EXPLICIT=1
elif [ -n "${GIMP3_DIRECTORY:-}" ]; then
  EXPLICIT=1
  # as GIMP reads it: a relative path is taken under the home folder
  case "$GIMP3_DIRECTORY" in
    /*) PROFILES=("$GIMP3_DIRECTORY") ;;
    *) PROFILES=("${HOME:?HOME is not set}/$GIMP3_DIRECTORY") ;;
  esac
else
  while IFS= read -r p; do PROFILES+=("$p"); done < <(find_profiles)
fi

looked_in() {
  echo "\$GIMP3_DIRECTORY (unset), ${XDG_CONFIG_HOME:-~/.config}/GIMP/3.*," \
       "~/.var/app/org.gimp.GIMP/config/GIMP/3.* (Flatpak), ~/snap/gimp/current/.config/GIMP/3.* (Snap)"
}

if [ ${#PROFILES[@]} = 0 ]; then
  [ "$MODE" = uninstall ] && { echo "$PROG: no GIMP 3 profile found: nothing to uninstall"; exit 0; }
  die "no GIMP 3 profile found (looked in $(looked_in)).
Start GIMP 3 once so that it creates your profile, then run $PROG again,
or name the profile folder with --profile DIR (or \$GIMP3_DIRECTORY)."
fi
for p in "${PROFILES[@]}"; do
  [ -d "$p" ] || die "$p: no such GIMP profile folder (start GIMP 3 once so that it creates it)"
done

if [ "$MODE" = list ]; then
  printf '%s\n' "${PROFILES[@]}"
  exit 0
fi
if [ "$(id -u)" = 0 ] && [ -z "$EXPLICIT" ]; then
  die "run this as the user who runs GIMP, not as root (it installs into that user's GIMP profile; no root needed)"
fi

# ---------------------------------------------------------------- uninstall
# Deletes the files listed in <profile>/$MANIFEST, then the folders it lists
# (deepest first) when they are empty. Prints how many files went.
uninstall_one() {
  local prof=$1 m=$1/$MANIFEST kind rel n=0 dirs=()
  [ -f "$m" ] || return 1
  while IFS=' ' read -r kind rel; do
    case "$rel" in ''|/*|*..*) continue ;; esac    # never outside the profile
    case "$kind" in
      f) if [ -f "$prof/$rel" ] || [ -L "$prof/$rel" ]; then rm -f "$prof/$rel"; n=$((n + 1)); fi ;;
      d) dirs+=("$rel") ;;
    esac
  done <"$m"
  rm -f "$m"
  local i
  for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
    rmdir "$prof/${dirs[i]}" 2>/dev/null \
      || { [ -d "$prof/${dirs[i]}" ] && echo "$PROG: kept $prof/${dirs[i]} (it holds files of yours)" >&2; } || true
  done
  echo "$n"
}

if [ "$MODE" = uninstall ]; then
  found=
  for p in "${PROFILES[@]}"; do
    if n=$(uninstall_one "$p"); then
      found=1
      echo "$PROG: removed $PKG_NAME from $p ($n files)"
    fi
  done
  [ -n "$found" ] || echo "$PROG: $PKG_NAME is not installed (by $PROG) in: ${PROFILES[*]}"
  exit 0
fi

# ------------------------------------------------------------------ install
install_one() {
  local prof=$1 rel
  # an earlier installation by this script goes first (upgrade / reinstall)
  if [ -f "$prof/$MANIFEST" ]; then
    uninstall_one "$prof" >/dev/null
  fi
  # files in the way that this script did not install: refuse unless --force
  local clash=()
  while IFS= read -r rel; do
    [ -e "$prof/$rel" ] || [ -L "$prof/$rel" ] && clash+=("$prof/$rel")
  done < <(cd "$HERE/profile" && find . -type f -o -type l | sed 's|^\./||' | sort)
  if [ ${#clash[@]} -gt 0 ] && [ -z "$FORCE" ]; then
    echo "$PROG: files not installed by $PROG are in the way in $prof:" >&2
    printf '  %s\n' "${clash[@]:0:10}" >&2
    [ ${#clash[@]} -le 10 ] || echo "  ... (${#clash[@]} in all)" >&2
    echo "$PROG: remove them (e.g. an installation built from source) or run again with --force" >&2
    return 1
  fi
  # folders first (parents before children); only those created here are
  # listed. The manifest is written as soon as its folder exists and grows
  # with every file copied, so an interrupted run can be uninstalled too.
  local created=()
  while IFS= read -r rel; do
    if [ ! -d "$prof/$rel" ]; then
      mkdir "$prof/$rel" || return 1
      created+=("d $rel")
    fi
  done < <(cd "$HERE/profile" && find . -mindepth 1 -type d | sed 's|^\./||' \
            | awk -F/ '{ print NF "\t" $0 }' | sort -n -s -k1,1 | cut -f2-)
  local m=$prof/$MANIFEST
  if [ ${#created[@]} -gt 0 ]; then printf '%s\n' "${created[@]}" >"$m"; else : >"$m"; fi || return 1
  local n=0
  while IFS= read -r rel; do
    rm -f "$prof/$rel"
    cp -P "$HERE/profile/$rel" "$prof/$rel" || return 1
    [ -L "$prof/$rel" ] || chmod "$(stat -c %a "$HERE/profile/$rel")" "$prof/$rel"
    echo "f $rel" >>"$m"
    n=$((n + 1))
  done < <(cd "$HERE/profile" && find . -type f -o -type l | sed 's|^\./||' | sort)
  echo "$PROG: installed $PKG_NAME $PKG_VERSION into $prof ($n files)"
}

rc=0
for p in "${PROFILES[@]}"; do
  install_one "$p" || rc=1
done
[ $rc = 0 ] && echo "$PROG: restart GIMP to use it (GIMP looks for new plug-ins when it starts)"
exit $rc
