#!/usr/bin/env bash
# Bad input never crashes `ldm`, never takes the machine, never draws a
# silent black picture: each class of issue 30 with inputs made by
# make_bad_inputs.py. Every refusal is one "ldm: ..." line naming the file,
# key or option at fault, with exit 2 (usage) or 1 (runtime), and leaves no
# file behind. Run in the sanitizer build too (suite e2e): a crash, leak or
# undefined behaviour there fails it.
set -u
ldm=${LDM_EXE:?}
g=${LDM_GOLDEN_DIR:?}/pipeline; m=$g/sd1.safetensors; mi=$g/sd1_inpaint.safetensors
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
F=$tmp/in; out=$tmp/out; mkdir -p "$out"
python3 "${LDM_SOURCE_ROOT:?}/tests/e2e/make_bad_inputs.py" "$F" "$m" "$g/sd1" || { echo "FAIL fixtures"; exit 1; }
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
# expect DESC RC TEXT cmd...: exit code RC, a first stderr line "ldm: ...TEXT...",
# at most 3 lines, no output file and nothing else in $out
expect() {
  local desc=$1 want=$2 text=$3; shift 3
  rm -rf "$out"; mkdir -p "$out"
  "$@" >"$tmp/stdout" 2>"$tmp/err"; local rc=$?
  local first; first=$(head -1 "$tmp/err")
  if [ "$rc" = "$want" ] && [[ "$first" == "ldm: "*"$text"* ]] && [ "$(wc -l < "$tmp/err")" -le 3 ] &&
     [ -z "$(ls -A "$out")" ]; then ok "$desc -> $first"
  else bad "$desc: rc=$rc (want $want, '$text'): $(head -c 600 "$tmp/err") files: $(ls "$out")"; fi
}
gen() { "$ldm" "$@" --threads 2 --out "$out/o.png"; }

echo "# memory safety"
expect "eval unet, batch 0" 1 "unet-batch0.safetensors: tensor 'sample' has shape [0, 4, 8, 8]" \
  "$ldm" eval unet --model "$g/sd1" --in "$F/unet-batch0.safetensors" --out "$out/o.safetensors"
rm -rf "$out"; mkdir -p "$out"
if "$ldm" eval unet --model "$g/sd1" --in "$F/unet-odd-i64.safetensors" --out "$out/o.safetensors" 2>"$tmp/err" &&
   [ -s "$out/o.safetensors" ]; then ok "eval unet: an I64 timestep at an odd data offset is read (no misaligned load)"
else bad "eval unet, odd I64: $(cat "$tmp/err")"; fi
expect "eval unet, I8 sample names the file" 1 "unet-i8.safetensors: tensor 'sample' has dtype I8" \
  "$ldm" eval unet --model "$g/sd1" --in "$F/unet-i8.safetensors" --out "$out/o.safetensors"

echo "# seeds: unsigned 64-bit end to end"
rm -rf "$out"; mkdir -p "$out"
if gen txt2img --model "$m" --prompt x --width 32 --height 32 --steps 1 --seed 9223372036854775807 \
     --batch-count 2 >"$tmp/stdout" 2>"$tmp/err" &&
   "$ldm" info "$out/o-1.png" | grep -q "Seed: 9223372036854775808," &&
   grep -q "o-1.png (seed 9223372036854775808)" "$tmp/stdout"; then ok "seed 2^63-1 + 1 = 9223372036854775808 (stored)"
else bad "seed past 2^63: $(cat "$tmp/err" "$tmp/stdout")"; fi
rm -rf "$out"; mkdir -p "$out"
if gen txt2img --model "$m" --prompt x --width 32 --height 32 --steps 1 --seed 18446744073709551615 \
     --batch-count 2 >"$tmp/stdout" 2>"$tmp/err" && "$ldm" info "$out/o-1.png" | grep -q "Seed: 0," &&
   "$ldm" info "$out/o-0.png" | grep -q "Seed: 18446744073709551615,"; then ok "seed 2^64-1 + 1 wraps to 0"
else bad "seed 2^64-1: $(cat "$tmp/err" "$tmp/stdout")"; fi
# the stored recipe with the largest seed (and a quoted value holding commas) is read back
rm -rf "$out"; mkdir -p "$out"
if gen img2img --model "$m" --from-png "$F/recipe-ok.png" --init "$F/grey16.png" >"$tmp/stdout" 2>"$tmp/err" &&
   "$ldm" info "$out/o.png" | grep -q "Seed: 18446744073709551615, Size: 32x32"; then ok "--from-png: seed 2^64-1 read back"
else bad "--from-png seed 2^64-1: $(cat "$tmp/err")"; fi
expect "--seed past 2^64" 2 "--seed: '18446744073709551616' is not -1 (random) or an integer" \
  gen txt2img --model "$m" --seed 18446744073709551616

echo "# files and signals"
mkfifo "$tmp/fifo"
expect "--out onto a FIFO" 2 "fifo: exists and is not a regular file (a FIFO): refusing" \
  "$ldm" txt2img --model "$m" --width 32 --height 32 --steps 1 --out "$tmp/fifo"
[ -p "$tmp/fifo" ] && ok "the FIFO is still a FIFO" || bad "--out replaced the FIFO"
expect "--out onto a folder" 2 "exists and is not a regular file (a folder)" \
  "$ldm" txt2img --model "$m" --width 32 --height 32 --steps 1 --out "$out"
# a signal while the PNG is written: the temporary file goes, exit 128+signal
for sig in INT TERM; do
  caught=0
  for try in 1 2 3 4 5; do
    rm -rf "$out"; mkdir -p "$out"
    "$ldm" inpaint --model "$mi" --init "$F/noise-big.png" --mask "$F/mask-big.png" --only-masked --width 32 \
      --height 32 --steps 1 --threads 2 --seed 1 --out "$out/sig.png" >/dev/null 2>"$tmp/err" & pid=$!
    while kill -0 $pid 2>/dev/null; do
      t=("$out"/sig.png.tmp*)
      if [ -e "${t[0]}" ]; then kill -$sig $pid; caught=1; break; fi
      sleep 0.005
    done
    wait $pid; rc=$?
    [ $caught = 1 ] && break
  done
  want=$([ $sig = INT ] && echo 130 || echo 143)
  if [ $caught = 0 ]; then bad "SIG$sig: the write was never caught in 5 runs"
  elif [ $rc = "$want" ] && [ -z "$(ls -A "$out")" ] && grep -q "^ldm: .*SIG$sig" "$tmp/err"; then
    ok "SIG$sig while writing the PNG: exit $rc, no file left, '$(grep '^ldm:' "$tmp/err")'"
  else bad "SIG$sig while writing: rc=$rc (want $want), left: $(ls "$out") $(cat "$tmp/err")"; fi
done

echo "# every value through one check, named by its source"
expect "--from-png Size: 32768x64" 2 "recipe-size-huge.png: stored 'Size': '32768' is not an integer in 8..16384" \
  gen txt2img --model "$m" --from-png "$F/recipe-size-huge.png"
expect "--from-png Size: 100000x100000" 2 "recipe-size-10g.png: stored 'Size'" \
  gen txt2img --model "$m" --from-png "$F/recipe-size-10g.png"
expect "--from-png CFG scale: nan" 2 "recipe-cfg-nan.png: stored 'CFG scale': 'nan' is not a finite number" \
  gen txt2img --model "$m" --from-png "$F/recipe-cfg-nan.png"
expect "--from-png CFG scale: inf" 2 "recipe-cfg-inf.png: stored 'CFG scale': 'inf'" \
  gen txt2img --model "$m" --from-png "$F/recipe-cfg-inf.png"
expect "--from-png Denoising strength: nan" 2 "recipe-strength-nan.png: stored 'Denoising strength': 'nan'" \
  gen img2img --model "$m" --init "$F/grey16.png" --from-png "$F/recipe-strength-nan.png"
expect "--from-png huge seed" 2 "recipe-seed-huge.png: stored 'Seed': '99999999999999999999999'" \
  gen txt2img --model "$m" --from-png "$F/recipe-seed-huge.png"
expect "--from-png negative seed" 2 "recipe-seed-negative.png: stored 'Seed': '-5'" \
  gen txt2img --model "$m" --from-png "$F/recipe-seed-negative.png"
expect "--from-png huge Steps" 2 "recipe-steps-huge.png: stored 'Steps': '99999999999' is not an integer in 1..1000" \
  gen txt2img --model "$m" --from-png "$F/recipe-steps-huge.png"
expect "--from-png Clip skip: abc" 2 "recipe-clip-skip-abc.png: stored 'Clip skip': 'abc'" \
  gen txt2img --model "$m" --from-png "$F/recipe-clip-skip-abc.png"
expect "--cfg-scale nan" 2 "--cfg-scale: 'nan' is not a finite number" gen txt2img --model "$m" --cfg-scale nan
expect "--strength inf" 2 "--strength: 'inf' is not a finite number" gen img2img --model "$m" --init "$F/grey16.png" --strength inf
expect "--mask-blur nan" 2 "--mask-blur: 'nan'" gen inpaint --model "$m" --init "$F/grey16.png" --mask "$F/grey16.png" --mask-blur nan
expect "--cfg-scale 1e999" 2 "--cfg-scale: '1e999'" gen txt2img --model "$m" --cfg-scale 1e999
expect "--options heads=abc" 2 "eval unet --options heads: 'abc' is not an integer in 0..4096" \
  "$ldm" eval unet --model "$g/sd1" --in "$F/unet-odd-i64.safetensors" --out "$out/o.safetensors" --options heads=abc
expect "--options groups=2^32" 2 "eval unet --options groups: '4294967296'" \
  "$ldm" eval unet --model "$g/sd1" --in "$F/unet-odd-i64.safetensors" --out "$out/o.safetensors" --options groups=4294967296
expect "--options repeat=1x" 2 "eval unet --options repeat: '1x'" \
  "$ldm" eval unet --model "$g/sd1" --in "$F/unet-odd-i64.safetensors" --out "$out/o.safetensors" --options repeat=1x
expect "vae --options groups=nan" 2 "eval vae-decode --options groups: 'nan'" \
  "$ldm" eval vae-decode --model "$g/sd1" --options groups=nan --in "$F/unet-odd-i64.safetensors" --out "$out/o.safetensors"
for c in "groups0:unet/config.json: norm_num_groups = 0," "groups2p32:unet/config.json: norm_num_groups = 4294967296," \
         "heads2p32:unet/config.json: attention_head_dim = 4294967298," "unet-eps-neg:unet/config.json: norm_eps = -1," \
         "vae-scale0:vae/config.json: scaling_factor = 0," "vae-groups-str:vae/config.json: norm_num_groups = \"abc\"" \
         "text-eps-neg:text_encoder/config.json: layer_norm_eps = -1," "sched-beta:scheduler/scheduler_config.json: beta_end = 2.0,"; do
  expect "config ${c%%:*}" 1 "folder-${c%%:*}: ${c#*:}" gen txt2img --model "$F/folder-${c%%:*}" --width 32 --height 32 --steps 1
done

echo "# resources admitted before they are spent"
expect "img2img on a 69-byte PNG of 65536x65536" 2 "huge-header.png: the image is 65536x65536 pixels: ldm takes 1 to 16384" \
  gen img2img --model "$m" --init "$F/huge-header.png"
expect "img2img on a 20000x20000 1-bit PNG" 2 "huge-1bit.png: the image is 20000x20000 pixels" \
  gen img2img --model "$m" --init "$F/huge-1bit.png"
"$ldm" info "$F/huge-header.png" >"$tmp/stdout" 2>"$tmp/err"; rc=$?
if [ $rc = 1 ] && grep -q "(65536x65536)" "$tmp/stdout" && grep -q "no generation parameters" "$tmp/err"; then
  ok "ldm info on the 65536x65536 header: size read, no pixel decoded"
else bad "ldm info huge header: rc=$rc $(cat "$tmp/stdout" "$tmp/err")"; fi
expect "decode beyond --max-memory" 2 "noise-big.png: decoding its 2048x2048 pixels needs 16 MiB, more than the 10 MiB allowed" \
  gen img2img --model "$m" --init "$F/noise-big.png" --max-memory 10
expect "txt2img 512x512 in 10 MiB" 1 "this job needs an estimated" gen txt2img --model "$m" --width 512 --height 512 --max-memory 10
expect "outpaint 16x16 by 8192 on every side" 2 "the canvas would pass 16384 pixels a side" \
  gen outpaint --model "$m" --init "$F/grey16.png" --left 8192 --right 8192 --top 8192 --bottom 8192
expect "outpaint 16x16 by 2048 on every side in 1 GiB" 1 "this job needs an estimated" \
  gen outpaint --model "$m" --init "$F/grey16.png" --left 2048 --right 2048 --top 2048 --bottom 2048 --max-memory 1024
expect "--max-memory -2" 2 "--max-memory: '-2'" gen txt2img --model "$m" --max-memory -2

echo "# no silent black picture"
expect "all-NaN UNet" 1 "step 1 of 2: the latent holds NaN or Inf values (likely cause: NaN/Inf weights in $F/nan-unet.safetensors" \
  gen txt2img --model "$F/nan-unet.safetensors" --width 32 --height 32 --steps 2
expect "Inf VAE decoder" 1 "the decoded image holds NaN or Inf values (likely cause: NaN/Inf weights or a bad scaling factor in the VAE of $F/inf-vae.safetensors" \
  gen txt2img --model "$F/inf-vae.safetensors" --width 32 --height 32 --steps 2

echo "# messages that name things"
expect "PNG as --model" 1 "model.png: this is a PNG image, not a model" gen txt2img --model "$F/model.png"
expect "JPEG as --model" 1 "model.jpg: this is a JPEG image" gen txt2img --model "$F/model.jpg"
expect "zip .ckpt as --model" 1 "model.ckpt: a PyTorch pickle (.pth/.ckpt), not safetensors; convert it" gen txt2img --model "$F/model.ckpt"
expect "pickle .ckpt as --model" 1 "model-pickle.ckpt: a PyTorch pickle (.pth/.ckpt), not safetensors; convert it" gen txt2img --model "$F/model-pickle.ckpt"
expect "GGUF as --model" 1 "model.gguf: this is a GGUF file" gen txt2img --model "$F/model.gguf"
expect "VAE without a decoder names the file and tensor" 1 \
  "vae-no-decoder.safetensors: this VAE has no decoder (no tensor 'decoder.conv_in.weight' or 'decoder.conv_out.weight')" \
  gen txt2img --model "$F/vae-no-decoder.safetensors" --width 32 --height 32 --steps 1
expect "alpha-only mask" 2 "mask-alpha-only.png: the mask is empty" \
  gen inpaint --model "$mi" --init "$F/grey16.png" --mask "$F/mask-alpha-only.png"
expect "--tile 8, before the model loads" 2 "--tile: '8' is not 0 (automatic) or a tile of 32..16384" \
  gen txt2img --model "$tmp/no-such-model.safetensors" --tile 8
expect "--tile 4" 2 "--tile: '4'" gen txt2img --model "$m" --tile 4
rm -rf "$out"; mkdir -p "$out"
gen txt2img --model "$m" --family sdxl --width 32 --height 32 --steps 1 >/dev/null 2>"$tmp/err"
grep -q "^ldm: note: --family sdxl overrides the family detected in $m (sd1)" "$tmp/err" &&
  ok "--family sdxl on an SD1 model: $(head -1 "$tmp/err")" || bad "--family sdxl on sd1: $(cat "$tmp/err")"
"$ldm" ls "$F/escape.safetensors" >"$tmp/stdout" 2>&1
if grep -qF 'metadata note\x1b[31m = red\x1b[0m\x0aline' "$tmp/stdout" && ! grep -q $'\e' "$tmp/stdout"; then
  ok "ldm ls escapes control characters: $(grep metadata "$tmp/stdout")"
else bad "ldm ls escaping: $(cat -v "$tmp/stdout")"; fi
"$ldm" frobnicate >/dev/null 2>"$tmp/err"; rc=$?
if [ $rc = 2 ] && [ "$(head -1 "$tmp/err")" = "ldm: unknown command 'frobnicate'" ] && [ "$(wc -l < "$tmp/err")" -le 2 ]; then
  ok "unknown command: $(tr '\n' ' ' < "$tmp/err")"
else bad "unknown command: rc=$rc $(cat "$tmp/err")"; fi
echo "bad input: $pass passed, $fail failed"
[ $fail = 0 ]
