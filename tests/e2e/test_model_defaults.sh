#!/usr/bin/env bash
# What a model states about itself, through `ldm`: `ldm info` prints the
# native size and the recommended steps / guidance / sampler (or "not
# stated"); a job leaves to them what the user did not give (the demo
# model's 64x64, 20 DDIM steps, guidance 2.5), explicit options and the
# values --from-png reads win, and a malformed value is a one-line error
# naming the file, the key and the value.
set -u
ldm=${LDM_EXE:?}; cmp=${PNG_COMPARE:?}
demo=${LDM_SOURCE_ROOT:?}/models/demo; g=${LDM_GOLDEN_DIR:?}/pipeline
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
has() { grep -qF -- "$2" "$1" || { echo "  missing: '$2'"; return 1; }; }

"$ldm" info "$demo/ldm-demo.safetensors" > "$tmp/info.txt" 2>&1
if has "$tmp/info.txt" "native size: 64 px (stated by the model)" && has "$tmp/info.txt" "steps:       20 (recommended)" &&
   has "$tmp/info.txt" "cfg scale:   2.5 (recommended)" && has "$tmp/info.txt" "sampler:     ddim (recommended)"
then ok "ldm info: the demo model's native size and recommended settings"
else bad "ldm info on the demo model: $(cat "$tmp/info.txt")"; fi
"$ldm" info "$demo/diffusers/ldm-demo-inpaint" > "$tmp/info.txt" 2>&1
if has "$tmp/info.txt" "native size: 64 px (stated by the model)" && has "$tmp/info.txt" "cfg scale:   7 (recommended)" &&
   has "$tmp/info.txt" "sampler:     ddim (recommended)"
then ok "ldm info: the same from the diffusers folder's model_index.json"
else bad "ldm info on the demo folder: $(cat "$tmp/info.txt")"; fi
"$ldm" info "$g/sd1.safetensors" > "$tmp/info.txt" 2>&1
if has "$tmp/info.txt" "native size: 512 px (the family's default; not stated by the model)" &&
   [ "$(grep -c "not stated$" "$tmp/info.txt")" = 3 ]
then ok "ldm info: a model that states nothing: the family's size, three times \"not stated\""
else bad "ldm info on a model without settings: $(cat "$tmp/info.txt")"; fi

# defaults from the model: the same picture as with the values spelled out
if "$ldm" txt2img --model "$demo/ldm-demo.safetensors" --prompt "a red circle" --seed 8 --threads 2 \
     --out "$tmp/d.png" > "$tmp/out.log" 2>&1 &&
   "$ldm" info "$tmp/d.png" > "$tmp/pinfo.txt" &&
   has "$tmp/pinfo.txt" "Steps: 20, Sampler: DDIM, CFG scale: 2.5, Seed: 8, Size: 64x64" &&
   "$ldm" txt2img --model "$demo/ldm-demo.safetensors" --prompt "a red circle" --seed 8 --threads 2 --width 64 \
     --height 64 --steps 20 --cfg-scale 2.5 --sampler ddim --out "$tmp/e.png" >> "$tmp/out.log" 2>&1 &&
   "$cmp" psnr "$tmp/d.png" "$tmp/e.png" 99 > /dev/null
then ok "txt2img without --width/--height/--steps/--cfg-scale/--sampler: the model's 64x64, 20 DDIM steps at 2.5"
else bad "model defaults: $(tail -2 "$tmp/out.log") $(cat "$tmp/pinfo.txt" 2>/dev/null)"; fi
# explicit options win over the model's
if "$ldm" txt2img --model "$demo/ldm-demo.safetensors" --prompt "a red circle" --seed 8 --threads 2 --width 32 \
     --height 48 --steps 3 --cfg-scale 5 --sampler euler --out "$tmp/f.png" > "$tmp/out.log" 2>&1 &&
   "$ldm" info "$tmp/f.png" | grep -qF "Steps: 3, Sampler: Euler, CFG scale: 5, Seed: 8, Size: 32x48"
then ok "explicit --steps/--cfg-scale/--sampler/--width/--height override the model's"
else bad "explicit options: $(tail -1 "$tmp/out.log")"; fi
# values from --from-png count as the user's: 7 / euler_a / 4 steps stay
if "$ldm" txt2img --model "$demo/ldm-demo.safetensors" --prompt "a blue square" --seed 2 --threads 2 --width 64 \
     --height 64 --steps 4 --cfg-scale 7 --sampler euler_a --out "$tmp/r.png" > "$tmp/out.log" 2>&1 &&
   "$ldm" txt2img --model "$demo/ldm-demo.safetensors" --from-png "$tmp/r.png" --threads 2 --out "$tmp/s.png" \
     >> "$tmp/out.log" 2>&1 &&
   "$ldm" info "$tmp/s.png" | grep -qF "Steps: 4, Sampler: Euler a, CFG scale: 7, Seed: 2, Size: 64x64" &&
   "$cmp" psnr "$tmp/s.png" "$tmp/r.png" 99 > /dev/null
then ok "--from-png keeps the recipe's values over the model's and reproduces the image"
else bad "--from-png with a model that states settings: $(tail -1 "$tmp/out.log")"; fi

# a malformed value: one line naming the file, key and value; no image
# (the header rewritten as tools/train-demo/settings.py does, tensors unchanged)
for kv in "ldm.cfg_scale=lots" "ldm.native_size=100" "ldm.sampler=warp_drive" "modelspec.resolution=512"; do
  k=${kv%%=*}; v=${kv#*=}; f=$tmp/bad.safetensors
  cp "$g/sd1.safetensors" "$f"
  python3 -c "import sys; sys.path.insert(0, sys.argv[1]); import settings; settings.rewrite_header(sys.argv[2], {sys.argv[3]: sys.argv[4]})" \
    "$LDM_SOURCE_ROOT/tools/train-demo" "$f" "$k" "$v"
  "$ldm" txt2img --model "$f" --prompt x --out "$tmp/never.png" > "$tmp/out.log" 2>&1; rc=$?
  msg=$(cat "$tmp/out.log")
  if [ $rc = 1 ] && [ "$(wc -l < "$tmp/out.log")" = 1 ] && [[ $msg == *"$f"* && $msg == *"$k"* && $msg == *"'$v'"* ]] &&
     [ ! -e "$tmp/never.png" ]; then ok "$k = '$v': $msg"
  else bad "$k = '$v': rc $rc, '$msg'"; fi
done
echo "model defaults: $pass passed, $fail failed"
[ $fail = 0 ]
