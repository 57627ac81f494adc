#!/usr/bin/env bash
# LoRAs through the `ldm` CLI on the tiny SD1 pipeline (tests/golden/pipeline):
#  - --lora FILE:0.8 against diffusers' pipeline after fuse_lora(lora_scale=0.8)
#    (tests/reference/make_lora.py), PSNR >= 40 dB, in both model layouts; the
#    same run without the LoRA must fall below 40 dB (the LoRA is what matches);
#  - <lora:NAME:0.8> in the prompt (found through --model-dir, and through
#    LDM_MODEL_PATH as an A1111 root) gives the same pixels as --lora;
#  - the PNG text carries Lora hashes: "NAME: HASH", HASH = the first 12 hex
#    digits of the SHA-256 of the file after its safetensors header (computed
#    here with od / tail / sha256sum);
#  - --from-png reproduces both images bit for bit;
#  - a LoRA with a textual-inversion embedding (tests/reference/make_embed.py)
#    against diffusers, >= 40 dB (and below without the embedding);
#  - an LCM-LoRA-shaped LoRA (LoCon on every attention and ResNet layer) with the
#    LCM sampler, 4 steps, guidance 1, against diffusers' LCMScheduler, >= 40 dB;
#  - an SD1 LoRA on the SDXL model fails naming the module and the families.
set -u
ldm=${LDM_EXE:?}; cmp=${PNG_COMPARE:?}; g=${LDM_GOLDEN_DIR:?}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }
common=(--prompt "a red circle on a blue background" --negative-prompt blurry --steps 8 --cfg-scale 7.5
        --sampler euler --width 64 --height 48 --seed 1100 --threads 2)
lora=$g/lora/sd1_kohya.safetensors

for m in "$g/pipeline/sd1" "$g/pipeline/sd1.safetensors"; do
  out=$tmp/flag-$(basename "$m").png
  if "$ldm" txt2img --model "$m" "${common[@]}" --lora "$lora:0.8" --out "$out" > "$tmp/log" 2>&1 &&
     "$cmp" psnr "$out" "$g/lora/txt2img_lora.png" 40; then ok "--lora vs diffusers ($m)"
  else bad "--lora vs diffusers ($m): $(tail -1 "$tmp/log")"; fi
done
"$ldm" txt2img --model "$g/pipeline/sd1" "${common[@]}" --out "$tmp/none.png" > /dev/null 2>&1
if "$cmp" psnr "$tmp/none.png" "$g/lora/txt2img_lora.png" 40 > /dev/null; then bad "without the LoRA it matches too"
else ok "without the LoRA: below 40 dB"; fi

# the prompt tag, through --model-dir and through an A1111 root in LDM_MODEL_PATH
tagged=(--prompt "<lora:sd1_kohya:0.8>a red circle on a blue background" --negative-prompt blurry --steps 8
        --cfg-scale 7.5 --sampler euler --width 64 --height 48 --seed 1100 --threads 2)
"$ldm" txt2img --model "$g/pipeline/sd1" "${tagged[@]}" --model-dir "$g/lora" --out "$tmp/tag.png" > "$tmp/log" 2>&1 ||
  bad "prompt tag: $(tail -1 "$tmp/log")"
if "$cmp" psnr "$tmp/tag.png" "$tmp/flag-sd1.png" 99 > /dev/null; then ok "<lora:...> = --lora (same pixels)"
else bad "<lora:...> differs from --lora"; fi
mkdir -p "$tmp/webui/models/Lora/styles" "$tmp/webui/models/Stable-diffusion"
ln -s "$lora" "$tmp/webui/models/Lora/styles/sd1_kohya.safetensors"
LDM_MODEL_PATH=$tmp/webui "$ldm" txt2img --model "$g/pipeline/sd1" "${tagged[@]}" --out "$tmp/tag2.png" > "$tmp/log" 2>&1 ||
  bad "LDM_MODEL_PATH: $(tail -1 "$tmp/log")"
if "$cmp" psnr "$tmp/tag2.png" "$tmp/flag-sd1.png" 99 > /dev/null; then ok "<lora:...> via an A1111 root"
else bad "<lora:...> via an A1111 root"; fi

# the hash, computed independently
n=$(od -An -t u8 -N 8 "$lora" | tr -d ' ')
want=$(tail -c +$((n + 9)) "$lora" | sha256sum | cut -c1-12)
for f in flag-sd1.png tag.png; do
  if "$ldm" info "$tmp/$f" | grep -q "Lora hashes: \"sd1_kohya: $want\""; then ok "PNG text of $f has Lora hashes: \"sd1_kohya: $want\""
  else bad "PNG text of $f lacks the hash $want: $("$ldm" info "$tmp/$f" | tail -1)"; fi
done

# --from-png: bit for bit
"$ldm" txt2img --from-png "$tmp/flag-sd1.png" --model "$g/pipeline/sd1" --out "$tmp/again1.png" > /dev/null 2>&1
"$ldm" txt2img --from-png "$tmp/tag.png" --model "$g/pipeline/sd1" --model-dir "$g/lora" --out "$tmp/again2.png" > /dev/null 2>&1
if "$cmp" psnr "$tmp/again1.png" "$tmp/flag-sd1.png" 99 > /dev/null && cmp -s "$tmp/again1.png" "$tmp/flag-sd1.png"; then
  ok "--from-png of a --lora image: same file"; else bad "--from-png of a --lora image differs"; fi
if "$cmp" psnr "$tmp/again2.png" "$tmp/tag.png" 99 > /dev/null && cmp -s "$tmp/again2.png" "$tmp/tag.png"; then
  ok "--from-png of a <lora:...> image: same file"; else bad "--from-png of a <lora:...> image differs"; fi

# a LoRA and an embedding (found by its tensors in a plain folder) against diffusers
if "$ldm" txt2img --model "$g/pipeline/sd1" --prompt "a sd1_style photo of a red circle" --negative-prompt blurry \
     --steps 8 --cfg-scale 7.5 --sampler euler --width 64 --height 48 --seed 1101 --threads 2 \
     --lora "$lora:0.8" --model-dir "$g/embed" --out "$tmp/emb.png" > "$tmp/log" 2>&1 &&
   "$cmp" psnr "$tmp/emb.png" "$g/embed/txt2img_lora_embed.png" 40; then ok "LoRA + embedding vs diffusers"
else bad "LoRA + embedding vs diffusers: $(tail -1 "$tmp/log")"; fi
"$ldm" txt2img --model "$g/pipeline/sd1" --prompt "a sd1_style photo of a red circle" --negative-prompt blurry \
  --steps 8 --cfg-scale 7.5 --sampler euler --width 64 --height 48 --seed 1101 --threads 2 \
  --lora "$lora:0.8" --out "$tmp/noemb.png" > /dev/null 2>&1
if "$cmp" psnr "$tmp/noemb.png" "$g/embed/txt2img_lora_embed.png" 40 > /dev/null; then bad "without the embedding it matches too"
else ok "without the embedding folder: below 40 dB"; fi

# LCM-LoRA use: a LoRA on every attention and ResNet layer (LoCon convs) with the LCM sampler
if "$ldm" txt2img --model "$g/pipeline/sd1" --prompt "a red circle on a blue background" --steps 4 --cfg-scale 1 \
     --sampler lcm --width 64 --height 48 --seed 1102 --threads 2 --lora "$g/lora/sd1_locon.safetensors:1" \
     --out "$tmp/lcm.png" > "$tmp/log" 2>&1 && "$cmp" psnr "$tmp/lcm.png" "$g/lora/txt2img_lcm_lora.png" 40; then
  ok "LCM-LoRA-shaped LoRA + LCM sampler vs diffusers"
else bad "LCM-LoRA-shaped LoRA + LCM sampler: $(tail -1 "$tmp/log")"; fi

# an SD1 LoRA on SDXL
if "$ldm" txt2img --model "$g/pipeline/sdxl" --prompt x --steps 1 --width 64 --height 64 --lora "$lora" \
     --out "$tmp/x.png" > "$tmp/log" 2>&1; then bad "SD1 LoRA on SDXL accepted"
elif grep -q "LoRA module 'lora_unet_.*this sdxl model (the LoRA looks made for sd1" "$tmp/log"; then
  ok "SD1 LoRA on SDXL refused: $(tail -1 "$tmp/log")"
else bad "SD1 LoRA on SDXL: unexpected message: $(tail -1 "$tmp/log")"; fi
echo "lora cli: $pass passed, $fail failed"
[ $fail = 0 ] && [ $pass -gt 0 ]
