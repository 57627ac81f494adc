#!/usr/bin/env bash
# ControlNet through the CLI: two ControlNets (one by path, one by name from
# --model-dir) store their units in the PNG the AUTOMATIC1111 way
# ("ControlNet N: \"Module: ..., Model: NAME [HASH], Weight: ..., Guidance
# Start: ..., Guidance End: ...\"") and --from-png makes the same image again;
# then every refusal: a wrong family, files that are no ControlNet, bad
# scale / start / end / thresholds / preprocessor, options out of their
# group, a task ControlNet does not steer -- each one line, exit 2 (a broken
# file: 1), no file.
set -u
ldm=${LDM_EXE:?}; cmp=${PNG_COMPARE:?}; gc=${LDM_GOLDEN_DIR:?}/controlnet; gp=$LDM_GOLDEN_DIR/pipeline
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
base=(--model "$gp/sd1.safetensors" --prompt "a red circle" --negative-prompt blurry --width 64 --height 48 --steps 4
      --sampler euler --cfg-scale 6 --seed 77 --threads 2)
mkdir -p "$tmp/models/controlnet"
cp "$gc/sd1_b_bare.safetensors" "$tmp/models/controlnet/lines.safetensors"

# 1. two ControlNets, the PNG recipe, --from-png
if "$ldm" txt2img "${base[@]}" --controlnet "$gc/sd1_a_orig.safetensors" --control "$gc/control.png" \
     --control-scale 0.7 --control-start 0.25 --control-end 1 --model-dir "$tmp/models" --controlnet lines \
     --control "$gc/control2.png" --control-end 0.5 --out "$tmp/a.png" > "$tmp/log" 2>&1; then
  ok "txt2img with two ControlNets"
else bad "txt2img with two ControlNets: $(tail -1 "$tmp/log")"; fi
"$ldm" info "$tmp/a.png" > "$tmp/info" 2>&1
for want in 'ControlNet 0: "Module: none, Model: sd1_a_orig [' 'Weight: 0.7, Resize Mode: Just Resize' \
            'Guidance Start: 0.25, Guidance End: 1, Control Mode: Balanced"' \
            'ControlNet 1: "Module: none, Model: lines [' 'Guidance Start: 0, Guidance End: 0.5,' \
            'ldm ControlNet 1 model: "'"$tmp/models/controlnet/lines.safetensors"'"'; do
  if grep -qF "$want" "$tmp/info"; then ok "stored: $want"; else bad "not stored: $want ($(cat "$tmp/info"))"; fi
done
if "$ldm" txt2img --from-png "$tmp/a.png" --model "$gp/sd1.safetensors" --threads 2 --out "$tmp/b.png" > "$tmp/log" 2>&1 &&
   "$cmp" psnr "$tmp/b.png" "$tmp/a.png" 99 > /dev/null; then
  ok "--from-png makes the same image"
else bad "--from-png: $(tail -1 "$tmp/log")"; fi
# the second unit's end read back: another end gives another image
if "$ldm" txt2img --from-png "$tmp/a.png" --model "$gp/sd1.safetensors" --threads 2 --controlnet "$gc/sd1_a_orig.safetensors" \
     --control "$gc/control.png" --control-scale 0.7 --control-start 0.25 --out "$tmp/c.png" > "$tmp/log" 2>&1 &&
   "$cmp" differs "$tmp/c.png" "$tmp/a.png" > /dev/null; then
  ok "--controlnet on the command line replaces the stored units (another image)"
else bad "--controlnet after --from-png: $(tail -1 "$tmp/log")"; fi

# `ldm info` describes a ControlNet file (family and layout from its tensors)
for spec in "sd1_a_orig.safetensors:sd1:original" "sd1_a:sd1:diffusers" "sdxl_a.safetensors:sdxl:diffusers"; do
  IFS=: read -r file fam lay <<< "$spec"
  "$ldm" info "$gc/$file" > "$tmp/info" 2>&1
  if grep -q "^kind: *ControlNet" "$tmp/info" && grep -q "^family: *$fam$" "$tmp/info" && grep -q "^layout: *$lay$" "$tmp/info"; then
    ok "ldm info $file: ControlNet, $fam, $lay"
  else bad "ldm info $file: $(cat "$tmp/info")"; fi
done

# 2. refusals: one line naming the thing, exit 2, no output
refuse() { # NAME EXPECTED-TEXT ldm-args...
  local name=$1 want=$2; shift 2
  rm -f "$tmp/x.png"
  "$ldm" "$@" --out "$tmp/x.png" > "$tmp/log" 2>&1; local rc=$?
  local lines; lines=$(wc -l < "$tmp/log")
  if [ $rc = "${RC:-2}" ] && [ ! -e "$tmp/x.png" ] && grep -qF -- "$want" "$tmp/log" && [ "$lines" -le 2 ]; then
    ok "$name: $(head -1 "$tmp/log")"
  else bad "$name: exit $rc, $(cat "$tmp/log") (expected '$want')"; fi
}
printf 'not a safetensors file' > "$tmp/junk.safetensors"
refuse "wrong family" "is an sdxl ControlNet, but the model" txt2img "${base[@]}" --controlnet "$gc/sdxl_a" --control "$gc/control.png"
refuse "checkpoint as ControlNet" "is not a ControlNet" txt2img "${base[@]}" --controlnet "$gp/sd1.safetensors" --control "$gc/control.png"
RC=1 refuse "junk file" "junk.safetensors: header length" txt2img "${base[@]}" --controlnet "$tmp/junk.safetensors" --control "$gc/control.png"
refuse "missing file" "--controlnet $tmp/none.safetensors: no such file" txt2img "${base[@]}" --controlnet "$tmp/none.safetensors" --control "$gc/control.png"
refuse "unknown name" "--controlnet nothing: no such file" txt2img "${base[@]}" --model-dir "$tmp/models" --controlnet nothing --control "$gc/control.png"
refuse "ControlNet as model" "is a ControlNet, not a checkpoint" txt2img --model "$gc/sd1_a" --prompt x --steps 1
refuse "scale too large" "--control-scale" txt2img "${base[@]}" --controlnet "$gc/sd1_a" --control "$gc/control.png" --control-scale 3
refuse "scale NaN" "--control-scale" txt2img "${base[@]}" --controlnet "$gc/sd1_a" --control "$gc/control.png" --control-scale nan
refuse "end past 1" "--control-end" txt2img "${base[@]}" --controlnet "$gc/sd1_a" --control "$gc/control.png" --control-end 1.5
refuse "start after end" "control 0: start 0.8 is not before end 0.2" txt2img "${base[@]}" --controlnet "$gc/sd1_a" --control "$gc/control.png" --control-start 0.8 --control-end 0.2
refuse "canny order" "--canny: low threshold 200 is above the high one 100" txt2img "${base[@]}" --controlnet "$gc/sd1_a" --control "$gc/control.png" --canny 200,100
refuse "canny range" "--canny" txt2img "${base[@]}" --controlnet "$gc/sd1_a" --control "$gc/control.png" --canny 10,300
refuse "preprocessor" "--preprocess: 'sobel' is not none" txt2img "${base[@]}" --controlnet "$gc/sd1_a" --control "$gc/control.png" --preprocess sobel
refuse "control first" "--control: give --controlnet MODEL first" txt2img "${base[@]}" --control "$gc/control.png"
refuse "no image" "no --control IMAGE given" txt2img "${base[@]}" --controlnet "$gc/sd1_a"
refuse "missing image" "none.png" txt2img "${base[@]}" --controlnet "$gc/sd1_a" --control "$tmp/none.png"
refuse "inpaint convention off inpaint" "the inpaint preprocessor needs an inpaint job" txt2img "${base[@]}" --controlnet "$gc/sd1_a" --preprocess inpaint
refuse "outpaint" "ControlNet steers txt2img, img2img and inpaint jobs, not outpaint" outpaint --model "$gp/sd1.safetensors" --init "$gp/init.png" --steps 1 --controlnet "$gc/sd1_a" --control "$gc/control.png"
echo "controlnet-cli: $pass passed, $fail failed"
[ $fail = 0 ]
