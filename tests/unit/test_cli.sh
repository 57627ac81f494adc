#!/usr/bin/env bash
# CLI contract: --help works, usage errors exit 2 with one "ldm: ..." line,
# runtime errors exit 1 naming the file; nothing is written on failure.
set -u
ldm=${LDM_EXE:?}
fail=0; n=0
check() { # desc expected_rc cmd...
  local desc=$1 want=$2; shift 2
  n=$((n+1))
  local err; err=$("$@" 2>&1 >/dev/null); local rc=$?
  if [ "$rc" != "$want" ]; then echo "FAIL $desc: rc=$rc want $want ($err)"; fail=$((fail+1));
  else echo "ok   $desc: rc=$rc ${err%%$'\n'*}"; fi
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
check "help" 0 "$ldm" --help
check "no command" 2 "$ldm"
check "unknown command" 2 "$ldm" frobnicate
check "eval help" 0 "$ldm" eval --help
check "eval missing args" 2 "$ldm" eval unet --model x
check "eval unknown option" 2 "$ldm" eval unet --bogus 1
check "eval bad threads" 2 "$ldm" eval unet --model m --in i --out o --threads -3
check "eval unknown component" 2 "$ldm" eval nope --model m --in i --out o
check "info missing file" 1 "$ldm" info "$tmp/none.safetensors"
printf 'garbage' > "$tmp/bad.safetensors"
check "info malformed file" 1 "$ldm" info "$tmp/bad.safetensors"
msg=$("$ldm" info "$tmp/bad.safetensors" 2>&1)
n=$((n+1)); case "$msg" in *"$tmp/bad.safetensors"*) echo "ok   message names the file";; *) echo "FAIL message: $msg"; fail=$((fail+1));; esac
check "ls malformed file" 1 "$ldm" ls "$tmp/bad.safetensors"
n=$((n+1)); if [ -n "$(ls "$tmp" | grep -v bad.safetensors)" ]; then echo "FAIL files left behind"; fail=$((fail+1)); else echo "ok   no files left behind"; fi
echo "cli: $n checks, $fail failed"
[ $fail = 0 ]
