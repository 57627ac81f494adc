#!/usr/bin/env bash
# `ldm upscale` / `ldm info` with ESRGAN-class models (goldens of
# tests/reference/make_esrgan.py, spandrel 0.4.2): the path picked by the
# file's tensors, an RGBA picture against spandrel + Real-ESRGAN's alpha rule
# (PSNR >= 45 dB on RGB and on alpha: only 8-bit rounding may differ), --scale 2
# from a x4 model against PIL's resize of the reference (>= 40 dB), tiles
# against one piece, progress per tile, .pth and misuse refused with one line.
set -u
ldm=${LDM_EXE:?}; cmp=${PNG_COMPARE:?}
g=${LDM_GOLDEN_DIR:?}/esrgan; d=${LDM_SOURCE_ROOT:?}/tests/data
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }

"$ldm" info "$g/rrdb_old_x4.safetensors" >"$tmp/info" 2>&1
grep -q '^family: *esrgan' "$tmp/info" && grep -q '^scale: *x4' "$tmp/info" && grep -q 'old ESRGAN keys' "$tmp/info" &&
  ok "info names RRDBNet (old keys) x4" || bad "info: $(cat "$tmp/info")"
"$ldm" info "$g/rrdb_new_x2.safetensors" >"$tmp/info" 2>&1
grep -q '^scale: *x2' "$tmp/info" && grep -q 'Real-ESRGAN keys.*pixel-unshuffle' "$tmp/info" &&
  ok "info names RRDBNet (Real-ESRGAN keys, unshuffle) x2" || bad "info: $(cat "$tmp/info")"
"$ldm" info "$g/compact_x4.safetensors" >"$tmp/info" 2>&1
grep -q '^family: *srvgg' "$tmp/info" && grep -q 'SRVGGNetCompact' "$tmp/info" &&
  ok "info names SRVGGNetCompact" || bad "info: $(cat "$tmp/info")"

if "$ldm" upscale --model "$g/compact_x4.safetensors" --init "$g/rgba_in.png" --threads 2 --progress \
     --out "$tmp/rgba.png" >"$tmp/log" 2>&1 &&
   "$cmp" psnr "$tmp/rgba.png" "$g/rgba_compact_x4.png" 45 && "$cmp" psnr-alpha "$tmp/rgba.png" "$g/rgba_compact_x4.png" 45; then
  ok "RGBA upscale (RGB and alpha) equals spandrel + Real-ESRGAN's alpha rule"
else bad "RGBA upscale: $(tail -2 "$tmp/log")"; fi
grep -q '2/2' "$tmp/log" && ok "progress counts the RGB and the alpha pass" || bad "progress: $(cat "$tmp/log")"

if "$ldm" upscale --model "$g/compact_x4.safetensors" --init "$g/rgba_in.png" --scale 2 --threads 2 \
     --out "$tmp/s2.png" >"$tmp/log" 2>&1 && "$cmp" psnr "$tmp/s2.png" "$g/rgba_compact_x4_s2.png" 40 &&
   "$cmp" psnr-alpha "$tmp/s2.png" "$g/rgba_compact_x4_s2.png" 40; then ok "--scale 2 from a x4 model"
else bad "--scale 2: $(tail -2 "$tmp/log")"; fi

if "$ldm" upscale --model "$g/rrdb_old_x4.safetensors" --init "$g/rgba_in.png" --threads 2 --out "$tmp/whole.png" \
     >"$tmp/log" 2>&1 &&
   "$ldm" upscale --model "$g/rrdb_old_x4.safetensors" --init "$g/rgba_in.png" --threads 2 --tile 128 --progress \
     --out "$tmp/tiles.png" >"$tmp/log2" 2>&1 && "$cmp" psnr "$tmp/tiles.png" "$tmp/whole.png" 45; then
  ok "RRDBNet in tiles of 128 output pixels (32 in) matches one piece"
else bad "tiles: $(tail -2 "$tmp/log") $(tail -2 "$tmp/log2")"; fi
grep -q '/12 ' "$tmp/log2" && ok "progress per tile (6 tiles x 2 passes)" || bad "tile progress: $(tr '\r' '\n' < "$tmp/log2" | tail -3)"

for f in grey grey_alpha palette grey16; do
  if "$ldm" upscale --model "$g/rrdb_new_x2.safetensors" --init "$d/$f.png" --threads 2 --out "$tmp/$f.png" \
       >"$tmp/log" 2>&1 && "$ldm" info "$tmp/$f.png" | grep -q '(96x80)'; then ok "x2 upscale of $f.png"
  else bad "x2 upscale of $f.png: $(tail -1 "$tmp/log")"; fi
done

# refine: img2img tiles of 64 over the 120x88 upscale (3 x 2 tiles), 2 steps at strength 0.5 each
sd1=${LDM_GOLDEN_DIR:?}/pipeline/sd1.safetensors
if "$ldm" upscale --model "$g/rrdb_new_x2.safetensors" --init "$g/rgba_in.png" --threads 2 --out "$tmp/plain.png" \
     >"$tmp/log" 2>&1 &&
   "$ldm" upscale --model "$g/rrdb_new_x2.safetensors" --init "$g/rgba_in.png" --threads 2 --refine-model "$sd1" \
     --refine-tile 64 --refine-overlap 16 --refine-strength 0.5 --steps 4 --prompt "a red circle" --seed 3 --progress \
     --out "$tmp/refined.png" >"$tmp/log2" 2>&1 && "$ldm" info "$tmp/refined.png" | grep -q '(120x88)' &&
   "$cmp" differs "$tmp/refined.png" "$tmp/plain.png" >/dev/null && "$cmp" psnr-alpha "$tmp/refined.png" "$tmp/plain.png" 99; then
  ok "refine stage redraws the upscale (alpha kept)"
else bad "refine: $(tail -2 "$tmp/log") $(tr '\r' '\n' < "$tmp/log2" | tail -2)"; fi
grep -q '/14 ' "$tmp/log2" && ok "progress: 2 upscale passes + 6 tiles x 2 steps" || bad "refine progress: $(tr '\r' '\n' < "$tmp/log2" | tail -3)"

# the model folders' scan tells ESRGAN-class files by their tensors (a plain folder: no folder name helps)
mkdir -p "$tmp/plain"; cp "$g/compact_x4.safetensors" "$g/rrdb_new_x2.safetensors" "$tmp/plain/"
"$ldm" models --model-dir "$tmp/plain" >"$tmp/log" 2>&1
grep -q '^upscaler *srvgg .*compact_x4' "$tmp/log" && grep -q '^upscaler *esrgan .*rrdb_new_x2' "$tmp/log" &&
  ok "ldm models: ESRGAN-class files are upscalers (srvgg, esrgan)" || bad "ldm models: $(cat "$tmp/log")"

printf 'PK\003\004not-a-real-archive-but-a-zip-header' >"$tmp/model.pth"
"$ldm" upscale --model "$tmp/model.pth" --init "$d/grey.png" --out "$tmp/no.png" >"$tmp/log" 2>&1; rc=$?
[ "$rc" = 1 ] && grep -q 'PyTorch pickle.*convert' "$tmp/log" && [ "$(wc -l < "$tmp/log")" = 1 ] && [ ! -e "$tmp/no.png" ] &&
  ok ".pth refused with how to convert" || bad ".pth: rc=$rc $(cat "$tmp/log")"
"$ldm" txt2img --model "$g/compact_x4.safetensors" --out "$tmp/no.png" >"$tmp/log" 2>&1; rc=$?
[ "$rc" = 2 ] && grep -q 'ldm upscale' "$tmp/log" && ok "txt2img with an upscaler: usage error" || bad "txt2img: rc=$rc $(cat "$tmp/log")"
"$ldm" upscale --model "$g/compact_x4.safetensors" --init "$d/grey.png" --scale 8 --out "$tmp/no.png" >"$tmp/log" 2>&1; rc=$?
[ "$rc" = 2 ] && grep -q 'upscale factor = 8' "$tmp/log" && ok "--scale above the model's: usage error" || bad "--scale 8: rc=$rc $(cat "$tmp/log")"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
