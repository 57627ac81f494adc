#!/usr/bin/env bash
# e2e: every case of tests/golden/controlnet/cases.txt (make_controlnet.py:
# txt2img, img2img, inpaint with a 9-channel and a 4-channel UNet, with one
# and with two ControlNets -- scale, start/end --, the inpaint ControlNet
# convention, SDXL) through the `ldm` CLI, on the checkpoint in both layouts
# (single file and diffusers folder; SDXL: the folder), compared with the
# image diffusers' ControlNet pipelines made from the same seed: PSNR >= 40 dB
# (over the mask for inpainting, whose unmasked pixels must equal the input).
# Then the same txt2img without its ControlNet must differ (< 30 dB): the
# control is not ignored.
set -u
ldm=${LDM_EXE:?}; cmp=${PNG_COMPARE:?}; gc=${LDM_GOLDEN_DIR:?}/controlnet; gp=$LDM_GOLDEN_DIR/pipeline
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
while IFS= read -r line; do
  [ -z "$line" ] && continue
  IFS='|' read -r -a f <<< "$line"
  name=${f[0]} cmd=${f[1]} model=${f[2]}
  args=("${f[@]:3}")
  for i in "${!args[@]}"; do
    case ${args[$i]} in *.png) if [ -f "$gc/${args[$i]}" ]; then args[$i]=$gc/${args[$i]}; else args[$i]=$gp/${args[$i]}; fi;; esac
    [ "$i" -gt 0 ] && [ "${args[$((i-1))]}" = --controlnet ] && args[$i]=$gc/${args[$i]}
  done
  layouts="safetensors folder"
  [ -f "$gp/$model.safetensors" ] || layouts=folder
  for layout in $layouts; do
    m=$gp/$model; [ $layout = safetensors ] && m=$gp/$model.safetensors
    out=$tmp/$name-$layout.png
    if ! "$ldm" "$cmd" --model "$m" "${args[@]}" --threads 2 --out "$out" > "$tmp/log" 2>&1; then
      echo "FAIL $name ($layout): ldm exited $?: $(tail -1 "$tmp/log")"; fail=$((fail+1)); continue
    fi
    ok=1
    if [ "$cmd" = inpaint ]; then
      "$cmp" psnr "$out" "$gc/$name.png" 40 "$gp/mask.png" || ok=0
      "$cmp" same-outside "$out" "$gp/init.png" "$gp/mask.png" || ok=0
    else
      "$cmp" psnr "$out" "$gc/$name.png" 40 || ok=0
    fi
    if [ $ok = 1 ]; then pass=$((pass+1)); echo "ok   $name ($layout)"; else fail=$((fail+1)); echo "FAIL $name ($layout)"; fi
  done
done < "$gc/cases.txt"
# without its ControlNet the txt2img case is another picture
line=$(grep '^cn_txt2img_one|' "$gc/cases.txt")
IFS='|' read -r -a f <<< "$line"
args=("${f[@]:3}")
plain=()
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[$i]} in --controlnet|--control|--control-scale) i=$((i+1));; *) plain+=("${args[$i]}");; esac
done
if "$ldm" txt2img --model "$gp/sd1" "${plain[@]}" --threads 2 --out "$tmp/plain.png" > "$tmp/log" 2>&1; then
  p=$("$cmp" psnr "$tmp/plain.png" "$gc/cn_txt2img_one.png" 0 | sed -n 's/.*: \([0-9.inf]*\) dB.*/\1/p')
  if awk -v p="$p" 'BEGIN { exit !(p + 0 < 30) }'; then pass=$((pass+1)); echo "ok   without the ControlNet: $p dB from its image (< 30)"
  else fail=$((fail+1)); echo "FAIL without the ControlNet: $p dB from its image (expected < 30)"; fi
else
  fail=$((fail+1)); echo "FAIL plain txt2img: $(tail -1 "$tmp/log")"
fi
echo "controlnet e2e cases: $pass passed, $fail failed"
[ $fail = 0 ] && [ $pass -gt 0 ]
