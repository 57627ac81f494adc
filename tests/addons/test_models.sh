#!/usr/bin/env bash
# `ldm models` on an AUTOMATIC1111 root, a ComfyUI root and a plain folder
# built from the tiny goldens with symbolic links: kind and family come from
# the tensors (a LoRA in the checkpoint folder is listed as a LoRA), sub-folders
# are searched, a symlink loop is entered once, a dangling link and a pickle
# are listed with the reason, --kind filters, a missing root is an error.
set -u
ldm=${LDM_EXE:?}; g=${LDM_GOLDEN_DIR:?}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
check() { # label, pattern, file
  if grep -qE -- "$2" "$3"; then pass=$((pass+1)); echo "ok   $1"; else fail=$((fail+1)); echo "FAIL $1: no line like '$2' in:"; cat "$3"; fi
}
# a safetensors file of zeros: mkst FILE HEADER-JSON DATA-BYTES
mkst() {
  local n=${#2}
  printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x\\x00\\x00\\x00\\x00' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24)))" > "$1"
  printf '%s' "$2" >> "$1"
  head -c "$3" /dev/zero >> "$1"
}
a=$tmp/webui; c=$tmp/comfy; p=$tmp/plain
mkdir -p "$a/models/Stable-diffusion/sub" "$a/models/Lora/styles" "$a/embeddings" "$a/models/VAE" "$a/models/ESRGAN"
ln -s "$g/pipeline/sd1.safetensors" "$a/models/Stable-diffusion/sub/tiny-sd1.safetensors"
ln -s "$g/pipeline/sdxl" "$a/models/Stable-diffusion/tiny-sdxl"
ln -s "$g/lora/sd1_kohya.safetensors" "$a/models/Stable-diffusion/not-a-checkpoint.safetensors"
ln -s "$g/lora/sdxl_peft.safetensors" "$a/models/Lora/styles/xl.safetensors"
ln -s "$a/models/Lora" "$a/models/Lora/styles/loop"
ln -s "$tmp/nowhere.safetensors" "$a/models/Lora/gone.safetensors"
printf 'not a pickle really' > "$a/models/Lora/old.pt"
# embeddings of the real widths: SD1 768, SDXL 768 + 1280, SD2 1024
mkst "$a/embeddings/style.safetensors" '{"emb_params":{"dtype":"F16","shape":[2,768],"data_offsets":[0,3072]}}' 3072
mkst "$a/embeddings/xlstyle.safetensors" '{"clip_g":{"dtype":"F16","shape":[1,1280],"data_offsets":[0,2560]},"clip_l":{"dtype":"F16","shape":[1,768],"data_offsets":[2560,4096]}}' 4096
ln -s "$g/vae/kl4.safetensors" "$a/models/VAE/kl4.safetensors"
mkdir -p "$c/models/checkpoints" "$c/models/loras" "$c/models/embeddings"
ln -s "$g/pipeline/sd1" "$c/models/checkpoints/tiny-folder"
ln -s "$g/lora/sd2_locon.safetensors" "$c/models/loras/locon.safetensors"
mkdir -p "$p"
ln -s "$g/lora/sd1_peft.safetensors" "$p/peft.safetensors"
mkst "$p/sd2emb.safetensors" '{"string_to_param.*":{"dtype":"F32","shape":[1,1024],"data_offsets":[0,4096]}}' 4096

"$ldm" models --model-dir "$a" > "$tmp/a.txt" 2> "$tmp/a.err" || { fail=$((fail+1)); echo "FAIL ldm models (A1111) exited $?"; }
check "A1111: checkpoint in a sub-folder, family from tensors" "^checkpoint +sd1 .*sub/tiny-sd1.safetensors$" "$tmp/a.txt"
check "A1111: diffusers folder as a checkpoint" "^checkpoint +sdxl .*tiny-sdxl$" "$tmp/a.txt"
check "A1111: a LoRA in the checkpoint folder is a LoRA" "^lora .*not-a-checkpoint.safetensors$" "$tmp/a.txt"
check "A1111: SDXL LoRA in a sub-folder" "^lora +sdxl .*styles/xl.safetensors$" "$tmp/a.txt"
check "A1111: dangling link listed with the reason" "gone.safetensors +\(error: .*No such file" "$tmp/a.txt"
check "A1111: pickle listed with the reason" "old.pt +\(error: a pickled PyTorch file" "$tmp/a.txt"
check "A1111: SD1 embedding" "^embedding +sd1 .*style.safetensors$" "$tmp/a.txt"
check "A1111: SDXL embedding" "^embedding +sdxl .*xlstyle.safetensors$" "$tmp/a.txt"
check "A1111: VAE" "^vae .*kl4.safetensors$" "$tmp/a.txt"
n=$(grep -c "xl.safetensors$" "$tmp/a.txt")
if [ "$n" = 1 ]; then pass=$((pass+1)); echo "ok   the symlink loop is entered once"; else fail=$((fail+1)); echo "FAIL loop: xl.safetensors listed $n times"; fi
"$ldm" models --kind lora --model-dir "$c:$p" > "$tmp/c.txt" 2>&1 || { fail=$((fail+1)); echo "FAIL ldm models (ComfyUI) exited $?"; }
check "ComfyUI + plain, --kind lora: LoCon" "^lora .*locon.safetensors$" "$tmp/c.txt"
check "ComfyUI + plain, --kind lora: PEFT LoRA in a plain folder" "^lora .*peft.safetensors$" "$tmp/c.txt"
if grep -qE "^(checkpoint|embedding)" "$tmp/c.txt"; then fail=$((fail+1)); echo "FAIL --kind lora lists other kinds"; cat "$tmp/c.txt"
else pass=$((pass+1)); echo "ok   --kind lora lists LoRAs only"; fi
LDM_MODEL_PATH=$c "$ldm" models --kind checkpoint > "$tmp/d.txt" 2>&1
check "LDM_MODEL_PATH: ComfyUI diffusers-folder checkpoint" "^checkpoint +sd1 .*tiny-folder$" "$tmp/d.txt"
"$ldm" models --model-dir "$p" --kind embedding > "$tmp/e.txt" 2>&1
check "plain folder: SD2 embedding" "^embedding +sd2 .*sd2emb.safetensors$" "$tmp/e.txt"
# ControlNets: the family as a job's fit check tells it, also for the demo's
# small one whose context width (64) names no family
"$ldm" models --model-dir "${LDM_SOURCE_ROOT:?}/models/demo:$g/controlnet" --kind controlnet > "$tmp/g.txt" 2>&1
check "demo ControlNet (original layout): sd1" "^controlnet +sd1 .*ldm-demo-control-scribble.safetensors$" "$tmp/g.txt"
check "tiny SDXL ControlNet: sdxl" "^controlnet +sdxl .*sdxl_a.safetensors$" "$tmp/g.txt"
if "$ldm" models --model-dir "$tmp/missing" > "$tmp/f.txt" 2>&1; then fail=$((fail+1)); echo "FAIL missing root accepted"
else check "missing root: error naming it" "ldm: model folder .*missing" "$tmp/f.txt"; fi
echo "models: $pass passed, $fail failed"
[ $fail = 0 ] && [ $pass -gt 0 ]
