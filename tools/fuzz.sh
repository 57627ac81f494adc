#!/usr/bin/env bash
# Runs the libFuzzer targets (tests/fuzz/fuzz_*.c) with a budget.
#   tools/fuzz.sh [--runs N | --time SECONDS] [TARGET...]
# TARGET: png prompt recipe config safetensors (default: all). Builds them
# with clang, AddressSanitizer, UBSan and -fsanitize=fuzzer in ./build-fuzz,
# starts each from its seed corpus (tests/fuzz/corpus/TARGET, copied: the
# repository's corpus is not changed) and prints one line per target:
#   fuzz TARGET: N executions, K crashes (S s)
# Findings (crash-*, timeout-*, leak-*, oom-*) land in
# build-fuzz/fuzz-findings/TARGET/ (emptied at each run). Exit status 1 when any target found
# one. Default budget --runs 1000000 (a developer's run); CI runs a small one.
set -uo pipefail
cd "$(dirname "$0")/.."
budget=(-runs=1000000); targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --runs) budget=(-runs="$2"); shift 2;;
    --time) budget=(-max_total_time="$2"); shift 2;;
    -h|--help) sed -n '2,13p' "$0"; exit 0;;
    *) targets+=("$1"); shift;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(png prompt recipe config safetensors)
if ! command -v clang >/dev/null; then echo "fuzz: clang is not installed (tools/setup.sh installs it)"; exit 2; fi
# every object gets libFuzzer's coverage instrumentation (fuzzer-no-link),
# the library's as much as the targets': the guidance sees the code fuzzed
if [ ! -d build-fuzz ]; then
  CC=clang meson setup build-fuzz -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized \
    -Dplugin=disabled -Dc_args=-fsanitize=fuzzer-no-link >/dev/null || exit 2
fi
names=(); for t in "${targets[@]}"; do names+=("tests/fuzz/fuzz_${t}_libfuzzer"); done
ninja -C build-fuzz "${names[@]}" >/dev/null || { echo "fuzz: build failed"; exit 2; }
declare -A max_len=([png]=65536 [prompt]=16384 [recipe]=8192 [config]=8192 [safetensors]=65536)
found=0
for t in "${targets[@]}"; do
  work=build-fuzz/fuzz-corpus/$t; out=build-fuzz/fuzz-findings/$t
  rm -rf "$work" "$out"; mkdir -p "$work" "$out"
  seeds=tests/fuzz/corpus/$t
  [ -d "$seeds" ] && cp "$seeds"/* "$work"/
  log=build-fuzz/fuzz-findings/$t.log
  start=$(date +%s)
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:quarantine_size_mb=64 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "build-fuzz/tests/fuzz/fuzz_${t}_libfuzzer" "${budget[@]}" -max_len="${max_len[$t]:-65536}" -timeout=20 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/" "$work" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(find "$out" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'leak-*' -o -name 'oom-*' \) | wc -l)
  [ $rc != 0 ] && [ "$crashes" = 0 ] && crashes="?(rc $rc, see $log)"
  echo "fuzz $t: ${execs:-0} executions, $crashes crashes ($(( $(date +%s) - start )) s)"
  [ "$crashes" = 0 ] || found=1
done
exit $found
