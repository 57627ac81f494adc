#!/usr/bin/env bash
# Runs every default test suite (all but `slow` and `quality`) in ./build, then the unit
# fuzz and e2e suites again under AddressSanitizer + UBSan (leaks included)
# in ./build-asan, the libFuzzer targets with a small budget (tools/fuzz.sh), and
# prints one summary line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=${LDM_TEST_JOBS:-2}
summary() { # build dir -> "pass fail"
  python3 - "$1/meson-logs/testlog.json" <<'PY'
import json, sys
p = f = 0
try:
    for line in open(sys.argv[1]):
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"): p += 1
        elif r == "SKIP": f += 1   # a skipped test hides a check: count it as failed
        else: f += 1
except FileNotFoundError:
    f += 1
print(p, f)
PY
}
meson test -C build --no-suite slow --no-suite quality --num-processes "$jobs" --print-errorlogs
read p1 f1 < <(summary build)
if [ ! -d build-asan ]; then
  meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C build-asan >/dev/null
meson test -C build-asan --suite unit --suite fuzz --suite e2e --num-processes "$jobs" --print-errorlogs
read p2 f2 < <(summary build-asan)
# the libFuzzer targets from their seeds, a small budget each (tools/fuzz.sh
# with 1000000 runs is the developer's check)
p3=0; f3=0
while read -r line; do
  echo "$line"
  case $line in
    "fuzz exit: 0") ;;
    "fuzz exit: "*) f3=$((f3 + 1));;
    "fuzz "*": "*" executions, 0 crashes"*) p3=$((p3 + 1));;
    "fuzz "*) f3=$((f3 + 1));;
  esac
done < <(tools/fuzz.sh --runs "${LDM_CI_FUZZ_RUNS:-5000}" 2>&1; echo "fuzz exit: $?")
[ $p3 -gt 0 ] || f3=$((f3 + 1))
echo "default suites: $p1 passed, $f1 failed; sanitizer suites: $p2 passed, $f2 failed; fuzz targets: $p3 passed, $f3 failed"
echo "$((p1 + p2 + p3)) passed, $((f1 + f2 + f3)) failed"
[ $((f1 + f2 + f3)) = 0 ]
