#!/usr/bin/env python3
"""Full-size random-weight SD1.5 VAE for bench/vae (never committed): the
diffusers AutoencoderKL config of SD1.5 (block_out_channels 128, 256, 512,
512; layers_per_block 2; 32 groups; 4 latent channels), seeded weights
rounded to fp16 and saved as a diffusers folder (vae/ with config.json and
fp16 safetensors). Usage: make_sd_vae.py OUTDIR"""
import json
import os
import sys

import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

out = sys.argv[1]
torch.manual_seed(0)
m = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                  down_block_types=("DownEncoderBlock2D",) * 4,
                  up_block_types=("UpDecoderBlock2D",) * 4,
                  block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                  norm_num_groups=32, sample_size=512)
os.makedirs(os.path.join(out, "vae"), exist_ok=True)
sd = {k: v.detach().half().contiguous() for k, v in m.state_dict().items()}
save_file(sd, os.path.join(out, "vae", "diffusion_pytorch_model.safetensors"))
cfg = {k: v for k, v in dict(m.config).items() if not k.startswith("_")}
cfg.update({"_class_name": "AutoencoderKL", "_diffusers_version": "0.31.0"})
with open(os.path.join(out, "vae", "config.json"), "w") as f:
    json.dump(cfg, f, indent=2, sort_keys=True)
with open(os.path.join(out, "model_index.json"), "w") as f:
    json.dump({"_class_name": "StableDiffusionPipeline", "vae": ["diffusers", "AutoencoderKL"]}, f)
print(f"make_sd_vae: wrote {out}")
