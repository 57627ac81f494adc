#!/usr/bin/env bash
# The `ldm` job commands beyond the diffusers comparisons: inputs people have
# (grey, grey+alpha, palette, 16-bit, RGBA PNGs), "only masked" inpainting
# keeping every unmasked pixel, outpainting, the A1111 parameters chunk read
# back by `ldm info` and reused by --from-png (same image), the speed options
# (--decoder taesd, --weight-cache, --precision), the model-hash cache, and one-line
# errors with exit code 2 that leave no output file behind.
set -u
ldm=${LDM_EXE:?}; cmp=${PNG_COMPARE:?}
g=${LDM_GOLDEN_DIR:?}/pipeline; d=${LDM_SOURCE_ROOT:?}/tests/data
m=$g/sd1.safetensors; mi=$g/sd1_inpaint.safetensors
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
run() { "$ldm" "$@" --steps 3 --threads 2 >"$tmp/out.log" 2>&1; }

for f in grey grey16 grey_alpha palette rgba; do
  if run img2img --model "$m" --init "$d/$f.png" --prompt test --seed 1 --out "$tmp/$f-out.png" &&
     "$cmp" differs "$tmp/$f-out.png" "$d/rgba.png" >/dev/null; then ok "img2img accepts $f.png"
  else bad "img2img on $f.png: $(cat "$tmp/out.log")"; fi
done

for model in "$mi" "$m"; do
  name=$(basename "$model")
  if run inpaint --model "$model" --init "$d/rgba.png" --mask "$d/mask40x48.png" --only-masked --padding 4 \
       --width 32 --height 32 --prompt "green" --seed 3 --out "$tmp/om.png" &&
     "$cmp" same-outside "$tmp/om.png" "$d/rgba.png" "$d/mask40x48.png" &&
     "$cmp" differs "$tmp/om.png" "$d/rgba.png" >/dev/null; then ok "only-masked inpaint ($name) keeps unmasked pixels"
  else bad "only-masked inpaint ($name): $(tail -1 "$tmp/out.log")"; fi
done
if run inpaint --model "$mi" --init "$d/rgba.png" --mask "$d/mask40x48.png" --mask-blur 6 --prompt x --seed 4 \
     --out "$tmp/blur.png" && run inpaint --model "$mi" --init "$d/rgba.png" --mask "$d/mask40x48.png" --mask-blur 0 \
     --prompt x --seed 4 --out "$tmp/sharp.png" &&
   "$cmp" same-outside "$tmp/blur.png" "$d/rgba.png" "$d/mask40x48.png" &&
   "$cmp" differs "$tmp/blur.png" "$tmp/sharp.png" >/dev/null; then
  ok "mask blur feathers inside the mask and keeps every unmasked pixel"
else bad "mask blur: $(tail -1 "$tmp/out.log")"; fi

if run outpaint --model "$m" --init "$d/rgba.png" --left 8 --right 8 --top 0 --bottom 8 --prompt sky --seed 5 \
     --out "$tmp/op.png" && "$ldm" info "$tmp/op.png" | grep -q "Size: 64x48"; then ok "outpaint grows 48x40 to 64x48"
else bad "outpaint: $(tail -1 "$tmp/out.log")"; fi

if run txt2img --model "$m" --prompt "a (red:1.2) circle" --negative-prompt "blur" --width 32 --height 24 \
     --seed 9 --sampler dpmpp_2m_karras --cfg-scale 5 --out "$tmp/a.png" &&
   "$ldm" info "$tmp/a.png" > "$tmp/info.txt" && grep -q "Sampler: DPM++ 2M Karras, CFG scale: 5, Seed: 9, Size: 32x24" "$tmp/info.txt" &&
   grep -q "Negative prompt: blur" "$tmp/info.txt"; then ok "parameters chunk: $(tail -1 "$tmp/info.txt" | cut -c1-80)..."
else bad "parameters chunk: $(cat "$tmp/out.log" "$tmp/info.txt" 2>/dev/null)"; fi
if "$ldm" txt2img --model "$m" --from-png "$tmp/a.png" --out "$tmp/b.png" >"$tmp/out.log" 2>&1 &&
   "$cmp" psnr "$tmp/b.png" "$tmp/a.png" 99 >/dev/null; then ok "--from-png reproduces the image exactly"
else bad "--from-png: $(tail -1 "$tmp/out.log")"; fi

# speed options: a TAESD as final decoder (recorded in the parameters chunk),
# the weight cache (the same image, bit for bit)
taesd=${LDM_GOLDEN_DIR}/vae/taesd_decoder.safetensors
if run txt2img --model "$m" --prompt "a red circle" --width 32 --height 24 --seed 4 --out "$tmp/v.png" &&
   run txt2img --model "$m" --prompt "a red circle" --width 32 --height 24 --seed 4 --taesd "$taesd" \
     --decoder taesd --out "$tmp/t.png" && "$ldm" info "$tmp/t.png" | grep -q "Decoder: TAESD" &&
   "$cmp" differs "$tmp/t.png" "$tmp/v.png" >/dev/null; then ok "--decoder taesd: another image, recorded as Decoder: TAESD"
else bad "--decoder taesd: $(tail -1 "$tmp/out.log")"; fi
if run txt2img --model "$m" --prompt "a red circle" --width 32 --height 24 --seed 4 --weight-cache -1 \
     --out "$tmp/c.png" && "$cmp" psnr "$tmp/c.png" "$tmp/v.png" 99 >/dev/null; then ok "--weight-cache -1: the same image"
else bad "--weight-cache: $(tail -1 "$tmp/out.log")"; fi
# --precision bf16-emulated (bf16 operands on any CPU): the demo model's
# 256x256 DDIM image moves, but little (PSNR >= 35 dB against f32)
dm=$LDM_SOURCE_ROOT/models/demo/ldm-demo.safetensors
dp=(txt2img --model "$dm" --prompt "a red circle on a blue background, top left" --width 256 --height 256
    --steps 20 --sampler ddim --seed 3 --threads 2)
if "$ldm" "${dp[@]}" --out "$tmp/p32.png" >"$tmp/out.log" 2>&1 &&
   "$ldm" "${dp[@]}" --precision bf16-emulated --out "$tmp/p16.png" >"$tmp/out.log" 2>&1 &&
   "$cmp" differs "$tmp/p16.png" "$tmp/p32.png" >/dev/null &&
   "$cmp" psnr "$tmp/p16.png" "$tmp/p32.png" 35; then ok "--precision bf16-emulated: the demo image within 35 dB of f32"
else bad "--precision bf16-emulated: $(tail -1 "$tmp/out.log")"; fi

# --precision bf16 where it runs natively (AMX or AVX512-BF16; f32 with a
# note elsewhere): >= 30 dB against f32. --precision auto: the choice and its
# reason printed, the peaks measured once into $XDG_CACHE_HOME/gimp-ldm/cpu-peaks
# and read back by the next run, a bf16 choice stored as "Precision: bf16" and
# repeated by --from-png (the same image).
if "$ldm" "${dp[@]}" --precision bf16 --out "$tmp/pb.png" >"$tmp/out.log" 2>&1 &&
   "$cmp" psnr "$tmp/pb.png" "$tmp/p32.png" 30; then ok "--precision bf16: $(grep -h '^ldm: precision' "$tmp/out.log" || echo 'f32 here')"
else bad "--precision bf16: $(tail -1 "$tmp/out.log")"; fi
xc=$tmp/xdg
if XDG_CACHE_HOME=$xc "$ldm" "${dp[@]}" --steps 4 --precision auto --out "$tmp/pa.png" >"$tmp/out.log" 2>&1 &&
   grep -q "^ldm: precision \(f32\|bf16\) (auto: " "$tmp/out.log" && [ -s "$xc/gimp-ldm/cpu-peaks" ] &&
   XDG_CACHE_HOME=$xc "$ldm" "${dp[@]}" --steps 4 --precision auto --out "$tmp/pa2.png" >"$tmp/out2.log" 2>&1 &&
   grep -q "peaks from the cache" "$tmp/out2.log"; then ok "--precision auto: $(grep -h '^ldm: precision' "$tmp/out.log")"
else bad "--precision auto: $(cat "$tmp/out.log" "$tmp/out2.log" 2>/dev/null | tail -2)"; fi
if grep -q "^ldm: precision bf16" "$tmp/out.log"; then
  if "$ldm" info "$tmp/pa.png" | grep -q "Precision: bf16" &&
     "$ldm" txt2img --model "$dm" --from-png "$tmp/pa.png" --threads 2 --out "$tmp/pr.png" >"$tmp/out.log" 2>&1 &&
     grep -q "^ldm: precision bf16" "$tmp/out.log" && "$cmp" psnr "$tmp/pr.png" "$tmp/pa.png" 99 >/dev/null; then
    ok "auto's bf16 stored as Precision: bf16 and repeated by --from-png"
  else bad "Precision in the PNG / --from-png: $(tail -1 "$tmp/out.log")"; fi
elif "$ldm" info "$tmp/pa.png" | grep -q "Precision:"; then bad "an f32 run wrote a Precision entry"
else ok "auto's f32 leaves the parameters as an f32 run writes them"; fi

expect_usage() { # desc, expected text, args...
  local desc=$1 text=$2; shift 2
  "$ldm" "$@" --out "$tmp/never.png" >"$tmp/out.log" 2>&1; local rc=$?
  local lines; lines=$(wc -l < "$tmp/out.log")
  if [ $rc = 2 ] && grep -q "^ldm: .*$text" "$tmp/out.log" && [ ! -e "$tmp/never.png" ] && [ "$lines" -le 40 ]; then
    ok "$desc -> $(grep '^ldm:' "$tmp/out.log")"
  else bad "$desc: rc=$rc $(cat "$tmp/out.log")"; fi
}
expect_usage "mask of another size" "mask8.png: mask is 8x8" inpaint --model "$m" --init "$d/rgba.png" --mask "$d/mask8.png" --prompt x
expect_usage "not a PNG" "not-a-png.png: not a PNG" img2img --model "$m" --init "$d/not-a-png.png" --prompt x
expect_usage "missing init" "nope.png: cannot open" img2img --model "$m" --init "$tmp/nope.png" --prompt x
expect_usage "upscale with a txt2img model" "cannot upscale" upscale --model "$m" --init "$d/rgba.png" --prompt x
expect_usage "txt2img with an upscaler" "x4 upscaler" txt2img --model "$g/x4.safetensors" --prompt x --width 32 --height 32
expect_usage "size not a multiple of 8" "multiples of 8" txt2img --model "$m" --width 30 --height 32
expect_usage "unknown sampler" "unknown sampler 'bogus'" txt2img --model "$m" --sampler bogus
expect_usage "strength out of range" "strength" img2img --model "$m" --init "$d/rgba.png" --strength 1.5
expect_usage "bad rng" "rng" txt2img --model "$m" --rng gpu
expect_usage "bad decoder" "decoder: 'fast'" txt2img --model "$m" --decoder fast
expect_usage "TAESD decode without a TAESD" "TAESD decode" txt2img --model "$m" --decoder taesd
expect_usage "bad weight cache" "weight-cache" txt2img --model "$m" --weight-cache -5
expect_usage "bad precision" "precision: 'fp8' is not auto, f32" txt2img --model "$m" --precision fp8
"$ldm" txt2img --model "$tmp/missing.safetensors" --prompt x --out "$tmp/never.png" >"$tmp/out.log" 2>&1
if [ $? = 1 ] && grep -q "missing.safetensors: cannot open" "$tmp/out.log" && [ ! -e "$tmp/never.png" ]; then
  ok "missing model -> $(cat "$tmp/out.log")"; else bad "missing model: $(cat "$tmp/out.log")"; fi
# Model hash (AUTOMATIC1111's: SHA-256 of the file, 10 hex digits) cached by
# path, size and mtime: a second run reads it from the cache, a changed file
# is hashed again.
mc=$tmp/model-copy.safetensors; cp "$m" "$mc"
want=$(sha256sum "$mc" | cut -c1-10)
hrun() { XDG_CACHE_HOME=$tmp/cache run txt2img --model "$mc" --width 32 --height 32 --prompt x --seed 1 --out "$tmp/h.png" &&
         "$ldm" info "$tmp/h.png" | sed -n 's/.*Model hash: \([0-9a-z]*\).*/\1/p'; }
got=$(hrun); line=$(grep -c " $(realpath "$mc")\$" "$tmp/cache/gimp-ldm/model-hashes" 2>/dev/null)
if [ "$got" = "$want" ] && [ "$line" = 1 ]; then ok "model hash $got = sha256sum's, cached"
else bad "model hash '$got' (sha256sum: $want), cache lines: $line"; fi
sed -i "s/^$want /0123456789 /" "$tmp/cache/gimp-ldm/model-hashes"   # a cached value is used as it stands
got=$(hrun)
[ "$got" = 0123456789 ] && ok "model hash read from the cache" || bad "model hash not from the cache: '$got'"
touch -d '2001-01-01' "$mc"                                           # changed mtime: hashed again
got=$(hrun)
[ "$got" = "$want" ] && ok "model hash recomputed for a changed file" || bad "stale model hash after touch: '$got'"
left=$(ls "$tmp" | grep -c tmp || true)
[ "$left" = 0 ] && ok "no temporary files left" || bad "temporary files left: $(ls "$tmp")"
echo "cli jobs: $pass passed, $fail failed"
[ $fail = 0 ]
