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
# integer options take both ends of their range (a missing model is then the
# error, exit 1) and refuse one past them (usage, exit 2)
check "threads 1024 (largest) accepted" 1 "$ldm" eval unet --model "$tmp/none.safetensors" --in i --out o --threads 1024
check "threads 1025 refused" 2 "$ldm" eval unet --model "$tmp/none.safetensors" --in i --out o --threads 1025
check "threads 0 (smallest) accepted" 1 "$ldm" eval unet --model "$tmp/none.safetensors" --in i --out o --threads 0
check "clip-skip 12 (largest) accepted" 1 "$ldm" txt2img --model "$tmp/none.safetensors" --prompt x --clip-skip 12 --out "$tmp/x.png"
check "clip-skip 13 refused" 2 "$ldm" txt2img --model "$tmp/none.safetensors" --prompt x --clip-skip 13 --out "$tmp/x.png"
check "eval unknown component" 2 "$ldm" eval nope --model m --in i --out o
check "info missing file" 1 "$ldm" info "$tmp/none.safetensors"
printf 'garbage' > "$tmp/bad.safetensors"
check "info malformed file" 1 "$ldm" info "$tmp/bad.safetensors"
msg=$("$ldm" info "$tmp/bad.safetensors" 2>&1)
n=$((n+1)); case "$msg" in *"$tmp/bad.safetensors"*) echo "ok   message names the file";; *) echo "FAIL message: $msg"; fail=$((fail+1));; esac
check "ls malformed file" 1 "$ldm" ls "$tmp/bad.safetensors"
n=$((n+1)); if [ -n "$(ls "$tmp" | grep -v bad.safetensors)" ]; then echo "FAIL files left behind"; fail=$((fail+1)); else echo "ok   no files left behind"; fi
# BLAS kernels: OpenBLAS must not run kernels below this CPU's instruction set
# (ldm_blas_tune restarts ldm with OPENBLAS_CORETYPE when the library took a
# newer CPU for an old one), and a user's OPENBLAS_CORETYPE is kept.
help=$(env -u OPENBLAS_CORETYPE -u LDM_BLAS_REEXEC "$ldm" --help)
blas=$(printf '%s\n' "$help" | sed -n 's/^blas: //p'); cpu=$(printf '%s\n' "$help" | sed -n 's/.*cpu: \([^,]*\),.*/\1/p')
n=$((n+1))
case "$blas" in
  OpenBLAS*) kern=$(printf '%s' "$blas" | sed -n 's/.*, \([A-Za-z0-9_]*\) kernels.*/\1/p')
    case " $cpu " in
      *" avx2 "*) case "$kern" in
          Haswell|Zen|SkylakeX|Cooperlake|SapphireRapids) echo "ok   blas kernels for this CPU ($cpu): $blas";;
          *) echo "FAIL blas kernels '$kern' below this CPU ($cpu): $blas"; fail=$((fail+1));; esac;;
      *) echo "ok   blas: $blas (CPU without AVX2: nothing to choose)";; esac;;
  "") echo "FAIL no blas line in ldm --help"; fail=$((fail+1));;
  *) echo "ok   blas: $blas";;
esac
n=$((n+1))
forced=$(OPENBLAS_CORETYPE=Prescott "$ldm" --help | sed -n 's/^blas: //p')
case "$forced" in
  OpenBLAS*", Prescott kernels (OPENBLAS_CORETYPE=Prescott)"|"not OpenBLAS"*) echo "ok   user's OPENBLAS_CORETYPE kept: $forced";;
  *) echo "FAIL user's OPENBLAS_CORETYPE=Prescott not kept: $forced"; fail=$((fail+1));;
esac
echo "cli: $n checks, $fail failed"
[ $fail = 0 ]
