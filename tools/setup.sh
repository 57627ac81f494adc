#!/usr/bin/env bash
# Installs the build dependencies (Debian packages, by name) and builds
# gimp-ldm into ./build. Safe to run again. Usage: tools/setup.sh [meson args]
set -euo pipefail
cd "$(dirname "$0")/.."
# clang and its compiler-rt (libFuzzer): the fuzz targets (tools/fuzz.sh);
# clang-format (git-clang-format): the format test (tools/check-format.sh)
pkgs=(gcc python3 meson ninja-build pkg-config libopenblas-dev libjansson-dev libpng-dev zlib1g-dev nettle-dev debootstrap
      clang libclang-rt-dev clang-format)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ -d build ]; then
  meson setup --reconfigure build "$@" >/dev/null
else
  meson setup build "$@" >/dev/null
fi
ninja -C build >/dev/null
echo "setup: built ./build/cli/ldm ($(./build/cli/ldm --version))"
