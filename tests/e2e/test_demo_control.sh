#!/usr/bin/env bash
# The demo scribble ControlNet (models/demo/ldm-demo-control-scribble) through the
# `ldm` CLI, on committed files only:
#  1. "a red circle" (no position in the prompt) with a sketched circle in the top
#     left and, separately, in the bottom right (tests/golden/demo/control/
#     scribble_*.png, dark strokes on white, --preprocess scribble), seeds
#     SEED0..SEED0+5, the demo's recommended 20 DDIM steps at guidance 2.5: the
#     centroid of the red pixels (nearest named colour red) must lie within
#     RADIUS px of the scribble's centroid for at least NEED of the 6 seeds, for
#     each scribble (so the shape follows the sketch, not a bias of the model);
#  2. the same seeds without --controlnet must not: at most FREE_MAX of 6 within
#     RADIUS of the top-left scribble, and the same for the bottom-right one; and
#     their mean distance to each scribble larger than the controlled runs' by at
#     least MARGIN px;
#  3. the ControlNet's diffusers folder gives the single file's image (PSNR >= 40
#     dB), and the single file diffusers' StableDiffusionControlNetPipeline's
#     (tests/reference/make_demo_control_golden.py; PSNR >= 40 dB);
#  4. `ldm info` calls the file an SD1 ControlNet in the original layout.
# Every distance is printed.
set -u
ldm=${LDM_EXE:?}; cmp=${PNG_COMPARE:?}; src=${LDM_SOURCE_ROOT:?}
demo=$src/models/demo; g=${LDM_GOLDEN_DIR:?}/demo/control
cn=$demo/ldm-demo-control-scribble.safetensors
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
RADIUS=10 NEED=5 FREE_MAX=3 MARGIN=8 SEED0=4200 PROMPT="a red circle"
run() { # out seed [control args...]
  local out=$1 seed=$2; shift 2
  "$ldm" txt2img --model "$demo/ldm-demo.safetensors" --prompt "$PROMPT" --width 64 --height 64 --steps 20 \
    --cfg-scale 2.5 --sampler ddim --seed "$seed" --threads 2 "$@" --out "$out" > "$tmp/log" 2>&1 ||
    { echo "  ldm failed: $(tail -1 "$tmp/log")" >&2; return 1; }
}
dist() { # image sx sy -> distance of the red centroid from (sx, sy); 99 when nothing is red
  read -r x y n <<< "$("$cmp" centroid "$1" red)"
  if [ "${n:-0}" = 0 ]; then echo 99; else awk -v x="$x" -v y="$y" -v a="$2" -v b="$3" \
    'BEGIN{printf "%.1f", sqrt((x-a)^2 + (y-b)^2)}'; fi
}
stats() { # distances... -> "mean within"
  printf '%s\n' "$@" | awk -v r="$RADIUS" '{s+=$1; n++; w+=($1<=r)} END{printf "%.1f %d", s/n, w}'
}

declare -A SX SY MEAN_CN
for which in tl br; do
  read -r sx sy n <<< "$("$cmp" centroid "$g/scribble_$which.png" black)"
  SX[$which]=$sx; SY[$which]=$sy
  echo "  scribble $which: centroid ($sx, $sy) of $n stroke pixels"
done

# 1. with the ControlNet
for which in tl br; do
  ds=()
  for k in 0 1 2 3 4 5; do
    s=$((SEED0 + k))
    run "$tmp/cn-$which-$k.png" "$s" --controlnet "$cn" --control "$g/scribble_$which.png" --preprocess scribble ||
      { ds+=(99); continue; }
    ds+=("$(dist "$tmp/cn-$which-$k.png" "${SX[$which]}" "${SY[$which]}")")
  done
  read -r mean within <<< "$(stats "${ds[@]}")"
  MEAN_CN[$which]=$mean
  echo "  control $which: red centroid distances ${ds[*]} px; mean $mean, $within of 6 within $RADIUS px"
  [ "$within" -ge "$NEED" ] && ok "scribble $which: the circle follows the sketch in $within of 6 seeds (>= $NEED needed)" ||
    bad "scribble $which: the circle is within $RADIUS px of the sketch in only $within of 6 seeds ($NEED needed)"
done

# 2. without it: the same seeds
for k in 0 1 2 3 4 5; do run "$tmp/plain-$k.png" $((SEED0 + k)) || cp /dev/null "$tmp/plain-$k.png"; done
for which in tl br; do
  ds=()
  for k in 0 1 2 3 4 5; do
    if [ -s "$tmp/plain-$k.png" ]; then ds+=("$(dist "$tmp/plain-$k.png" "${SX[$which]}" "${SY[$which]}")"); else ds+=(0); fi
  done
  read -r mean within <<< "$(stats "${ds[@]}")"
  echo "  no control, to scribble $which: red centroid distances ${ds[*]} px; mean $mean, $within of 6 within $RADIUS px"
  [ "$within" -le "$FREE_MAX" ] && ok "without the ControlNet $within of 6 are within $RADIUS px of scribble $which (<= $FREE_MAX allowed)" ||
    bad "without the ControlNet $within of 6 are within $RADIUS px of scribble $which: the check cannot tell"
  awk -v a="$mean" -v b="${MEAN_CN[$which]}" -v m="$MARGIN" 'BEGIN{exit !(a >= b + m)}' &&
    ok "scribble $which: mean distance $mean px without the ControlNet, ${MEAN_CN[$which]} with it (margin $MARGIN needed)" ||
    bad "scribble $which: mean distance $mean px without the ControlNet, ${MEAN_CN[$which]} with it (margin $MARGIN needed)"
done

# 3. the diffusers folder, and diffusers' own pipeline
IFS='|' read -r name prompt seed steps cfg scr < "$g/cases.txt"
base=(--model "$demo/ldm-demo.safetensors" --prompt "$prompt" --width 64 --height 64 --steps "$steps"
      --cfg-scale "$cfg" --sampler ddim --seed "$seed" --threads 2)
if "$ldm" txt2img "${base[@]}" --controlnet "$cn" --control "$g/$scr" --preprocess scribble \
     --out "$tmp/file.png" > "$tmp/log" 2>&1 &&
   "$ldm" txt2img "${base[@]}" --controlnet "$demo/diffusers/ldm-demo-control-scribble" --control "$g/$scr" \
     --preprocess scribble --out "$tmp/folder.png" > "$tmp/log" 2>&1; then
  p=$("$cmp" psnr "$tmp/folder.png" "$tmp/file.png" 40) && ok "diffusers folder = single file: $p" ||
    bad "diffusers folder differs from the single file: $p"
  p=$("$cmp" psnr "$tmp/file.png" "$g/$name.png" 40) && ok "equals diffusers' ControlNet pipeline: $p" ||
    bad "differs from diffusers' ControlNet pipeline: $p"
else bad "ldm txt2img with the ControlNet failed: $(tail -1 "$tmp/log")"; fi

# 4. what ldm info says
"$ldm" info "$cn" > "$tmp/info" 2>&1
if grep -q '^kind: *ControlNet' "$tmp/info" && grep -q '^family: *sd1$' "$tmp/info" && grep -q '^layout: *original' "$tmp/info"; then
  ok "ldm info: an SD1 ControlNet, original layout"
else bad "ldm info says: $(tr '\n' ' ' < "$tmp/info")"; fi
echo "demo-control: $pass passed, $fail failed"
[ $fail = 0 ]
