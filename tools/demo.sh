#!/usr/bin/env bash
# The demo job: a picture from a prompt with the bundled demo model, then an
# inpainting of a box over its right side ("a green square"), with the `ldm`
# CLI built by tools/setup.sh.
# Writes demo.png and demo-inpaint.png into the current folder (or $1).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ldm=${LDM_EXE:-$root/build/cli/ldm}
out=${1:-.}
mkdir -p "$out"
model=$root/models/demo/ldm-demo.safetensors
inpaint_model=$root/models/demo/ldm-demo-inpaint.safetensors
size=(--width 64 --height 64)
if [ ! -f "$model" ]; then
  echo "demo: the trained demo model is not in this checkout; using the tiny random test pipeline"
  model=$root/tests/golden/pipeline/sd1.safetensors
  inpaint_model=$root/tests/golden/pipeline/sd1_inpaint.safetensors
fi
prompt="a red circle on a blue background"
# guidance 2.5: the demo model's recommended scale (models/demo/MODEL_CARD.md); the
# inpainting model is best at the default 7
"$ldm" txt2img --model "$model" --prompt "$prompt" "${size[@]}" --steps 20 --sampler euler_a \
  --cfg-scale 2.5 --seed 42 --progress --out "$out/demo.png"
"$ldm" inpaint --model "$inpaint_model" --init "$out/demo.png" --mask "$root/tools/demo-assets/mask-box-64.png" \
  --prompt "a green square" --steps 20 --seed 7 --progress --out "$out/demo-inpaint.png"
"$ldm" info "$out/demo-inpaint.png"
