#!/bin/sh
# The training run behind models/demo, stage by stage, with the step counts the
# committed run used (log: models/demo/training-log.txt). Each process is niced and
# single-threaded unless DEMO_THREADS says otherwise; every stage resumes from
# work/<stage>.pt. Two lines of stages run side by side on the 2 cores (each stage
# waits for what it reads): the text-to-image line (8x VAE, text encoder + UNet, then
# the inpainting UNet) and the upscaler line (4x VAE, x4 UNet, then the 8x decoder).
# CPU time of the committed run: see MODEL_CARD.md, "How they were trained".
# The VAEs use 8 GroupNorm groups (models.py, DEMO_VAE_GROUPS): with SD's 32 their
# 32-channel levels normalise every channel alone and lose the colour of flat regions.
# Afterwards: $PY export.py && $PY check.py
set -e
cd "$(dirname "$0")"
PY=${PY:-/work/refvenv/bin/python}
run() { nice -n 10 "$PY" train.py "$@"; }
mkdir -p work
run vae       --steps 900 --batch 16 --lr 1.5e-3     # 32x32 crops
run vaefull   --steps 65  --batch 8  --lr 5e-4       # whole 64x64 images (GroupNorm statistics)
(
  # the upscaler line (the x4 VAE starts from the 8x VAE); the committed run's x4vae*
  # and x4 stages ran with DEMO_THREADS=2. The x4 UNet: GroupNorm with 8 groups
  # (models.py, X4_UNET_GROUPS) and the plain v loss (--weighting plain; min-SNR's
  # weights are near zero at the high t where the UNet must read the low-resolution image);
  # its full- and half-resolution levels 64 channels wide (X4_UNET_CHANNELS)
  run x4vae     --steps 187 --batch 16 --lr 1.5e-3   # 32x32 crops
  run x4vaefull --steps 59  --batch 8  --lr 5e-4     # 128x128 crops of 256-px scenes / 64x64 images
  run x4vaefull --round 1 --steps 600  --batch 8 --lr 5e-4
  run x4vaefull --round 2 --steps 1500 --batch 8 --lr 4e-4
  run x4vaefull --round 3 --steps 3000 --batch 8 --lr 3e-4
  run x4        --data 4000 --steps 6000 --batch 16 --lr 1.5e-3 --weighting plain
  run x4vaedec  --steps 1000 --batch 8 --lr 1e-4     # 4x decoder only: latents unchanged
  run x4vaedec  --round 1 --steps 2300 --batch 8 --lr 3e-4
  run vaedec    --steps 1000 --batch 8 --lr 3e-4     # 8x decoder only: latents unchanged
) &
x4line=$!
# Text encoder first taught the captions' attributes (AttributeHeads, kept up by --aux),
# loss weighted as v-prediction, 30 % of the samples at t >= 500, half of all samples
# moved to t >= 900 with pure-noise input (pure_top), and the latent cells the shape
# covers weighted 1 + 4 (region_loss): see the docstrings in train.py.
run t2i     --te-pretrain 300 --aux 0.1 --pure-top 0.5 --weighting v --high-t 0.3 --data 6000 \
            --region-weight 4 --steps 6000 --batch 64 --lr 1.5e-3
# The inpainting UNet from the text-to-image one, with its own text encoder; half of the
# examples have a mask box that holds exactly the shape their caption names; the masked
# cells weighted 1 + 4.
run inpaint --fit 0.5 --data 6000 --weighting v --high-t 0.3 --region-weight 4 --steps 2500 --batch 32 --lr 1e-3
wait $x4line     # fails the script if the upscaler line failed
# The scribble ControlNet, from the exported text-to-image model (models/demo/diffusers/ldm-demo;
# UNet, VAE and text encoder frozen); the committed run fixed its step count with --minutes 38.
"$PY" export.py t2i
nice -n 10 "$PY" train_control.py train --steps 5887 --batch 32 --lr 5e-4 --data 3000
