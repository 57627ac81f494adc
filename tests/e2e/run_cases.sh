#!/usr/bin/env bash
# e2e: every case of tests/golden/pipeline/cases.txt through the `ldm` CLI,
# on the model in both layouts (single file and diffusers folder; SDXL: the
# folder), compared
# with the image diffusers made from the same seed: PSNR >= 40 dB (over the
# mask for inpainting, whose unmasked pixels must equal the input exactly).
# Usage: run_cases.sh [NAME-FILTER]
set -u
ldm=${LDM_EXE:?}; cmp=${PNG_COMPARE:?}; g=${LDM_GOLDEN_DIR:?}/pipeline
filter=${1:-}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
while IFS= read -r line; do
  [ -z "$line" ] && continue
  IFS='|' read -r -a f <<< "$line"
  name=${f[0]} cmd=${f[1]} model=${f[2]}
  [ -n "$filter" ] && [[ $name != *$filter* ]] && continue
  args=("${f[@]:3}")
  for i in "${!args[@]}"; do case ${args[$i]} in *.png) args[$i]=$g/${args[$i]};; esac; done
  layouts="safetensors folder"  # SDXL's case exists as a diffusers folder only
  [ -f "$g/$model.safetensors" ] || layouts=folder
  for layout in $layouts; do
    m=$g/$model; [ $layout = safetensors ] && m=$g/$model.safetensors
    out=$tmp/$name-$layout.png
    if ! "$ldm" "$cmd" --model "$m" "${args[@]}" --threads 2 --out "$out" > "$tmp/log" 2>&1; then
      echo "FAIL $name ($layout): ldm exited $?: $(tail -1 "$tmp/log")"; fail=$((fail+1)); continue
    fi
    ok=1
    if [ "$cmd" = inpaint ]; then
      "$cmp" psnr "$out" "$g/$name.png" 40 "$g/mask.png" || ok=0
      "$cmp" same-outside "$out" "$g/init.png" "$g/mask.png" || ok=0
    else
      "$cmp" psnr "$out" "$g/$name.png" 40 || ok=0
    fi
    if [ $ok = 1 ]; then pass=$((pass+1)); echo "ok   $name ($layout)"; else fail=$((fail+1)); echo "FAIL $name ($layout)"; fi
  done
done < "$g/cases.txt"
echo "e2e cases: $pass passed, $fail failed"
[ $fail = 0 ] && [ $pass -gt 0 ]
