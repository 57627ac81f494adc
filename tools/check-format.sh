#!/usr/bin/env bash
# Formatting check of the C lines changed since the baseline commit in
# .clang-format-base: every line added or edited since then must be as
# clang-format (.clang-format; plugin/ and ui/ have their own) writes it.
# Lines nobody touched are left as they are, so no file is reformatted whole.
# Uses git-clang-format (Debian package clang-format, installed by
# tools/setup.sh); needs the git history back to the baseline (a full clone).
#   tools/check-format.sh         check (the `format` test runs this)
#   tools/check-format.sh --fix   rewrite the changed lines in place
set -uo pipefail
cd "${LDM_SOURCE_ROOT:-$(dirname "$0")/..}"
fix=0
[ "${1:-}" = "--fix" ] && fix=1
base=$(tr -d ' \n' < .clang-format-base 2>/dev/null)
if ! command -v git-clang-format >/dev/null || ! command -v clang-format >/dev/null; then
  echo "format: git-clang-format / clang-format not found (Debian package clang-format; tools/setup.sh installs it)"
  exit 1
fi
if [ -z "$base" ] || ! git rev-parse -q --verify "$base^{commit}" >/dev/null 2>&1; then
  echo "format: baseline commit '${base}' (.clang-format-base) is not in this checkout's history (needs a full clone)"
  exit 1
fi
# one run at a time per checkout: git clang-format works through a temporary
# index in the git directory (the default and sanitizer builds' tests may
# run it at once)
if command -v flock >/dev/null; then
  exec 9>"$(git rev-parse --git-dir)/ldm-check-format.lock" && flock 9
fi
if [ $fix = 1 ]; then
  git clang-format --force --extensions c,h "$base" -- .
  exit $?
fi
out=$(git clang-format --diff --extensions c,h "$base" -- . 2>&1)
rc=$?
case "$out" in
  "" | "no modified files to format"* | "clang-format did not modify any files"*)
    echo "format: lines changed since ${base:0:12}: 0 to reformat (tol 0)"
    exit $rc ;;
esac
echo "$out"
if ! printf '%s\n' "$out" | grep -q '^diff --git'; then
  echo "format: git clang-format failed (rc $rc)"
  exit 1
fi
n=$(printf '%s\n' "$out" | grep -c '^-[^-]')
echo "format: lines changed since ${base:0:12}: $n to reformat (tol 0); tools/check-format.sh --fix rewrites them"
exit 1
