#!/usr/bin/env python3
"""Peer side of bench/vae: diffusers AutoencoderKL.decode on torch CPU (f32)
for one latent size. Prints one line: `diffusers decode SIZE: X.XX s, peak
RSS N MiB`. Usage: peer_diffusers.py MODEL_DIR LATENT_SIDE THREADS"""
import resource
import sys
import time

import torch
from diffusers import AutoencoderKL

model, side, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
vae = AutoencoderKL.from_pretrained(model, subfolder="vae", torch_dtype=torch.float32).eval()
z = torch.randn((1, 4, side, side), generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    t0 = time.perf_counter()
    img = vae.decode(z).sample
    dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"diffusers decode {side * 8}: {dt:.2f} s, peak RSS {peak:.0f} MiB, "
      f"out mean {img.mean().item():.4f}")
