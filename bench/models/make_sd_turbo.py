#!/usr/bin/env python3
"""A full-size SD-Turbo-shaped model with random weights, for the live
painting bench only (never committed): SD 2.1's UNet (865 M parameters,
linear projections, heads of 64 channels), OpenCLIP ViT-H/14's text encoder
(24 layers of 1024, keys cond_stage_model.model.*) and SD's VAE, in the
original single-file layout, f16, as DIR/sd_turbo.safetensors; plus the
SD1/SD2 TAESD (diffusers AutoencoderTiny, random) in DIR/taesd/ when missing.
The file states what stabilityai/sd-turbo's model card says: 512 px, one
step, no guidance (ldm.native_size, ldm.steps, ldm.cfg_scale).
Usage: make_sd_turbo.py DIR"""
import os
import sys

import torch
from safetensors.torch import save_file
from diffusers import AutoencoderKL, UNet2DConditionModel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))
import make_text  # noqa: E402
import make_unet  # noqa: E402
import make_vae  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
single = os.path.join(out, "sd_turbo.safetensors")
taesd = os.path.join(out, "taesd")
if not os.path.isfile(os.path.join(taesd, "diffusion_pytorch_model.safetensors")):
    from diffusers import AutoencoderTiny
    torch.manual_seed(1)
    AutoencoderTiny().save_pretrained(taesd, safe_serialization=True)
if os.path.exists(single):
    sys.exit(0)
torch.manual_seed(0)
with torch.no_grad():
    sd = {}
    unet = UNet2DConditionModel(sample_size=64, block_out_channels=(320, 640, 1280, 1280),
                                layers_per_block=2, **make_unet.FULL["sd21"])
    for p in unet.parameters():  # keep activations in a sane range in f16
        p.mul_(0.5)
    sd.update(make_unet.to_ldm(unet.state_dict(), make_unet.full_config(unet),
                               "model.diffusion_model.", torch.float16))
    del unet
    make_text.VOCAB = 49408
    tt = make_text.new_openclip(402, torch.float16, 1024, 16, 24, 4096, 1024)
    sd.update({"cond_stage_model.model." + k: v.half().contiguous() for k, v in tt.state_dict().items()})
    del tt
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=512)
    for p in vae.parameters():
        p.mul_(0.5)
    sd.update(make_vae.to_ldm(vae.state_dict(), 4, "first_stage_model.", torch.float16))
    meta = {"format": "pt", "modelspec.title": "sd-turbo (random weights)",
            "ldm.native_size": "512", "ldm.steps": "1", "ldm.cfg_scale": "1",
            "ldm.sampler": "euler_a"}
    save_file(sd, single + ".tmp", metadata=meta)
    os.replace(single + ".tmp", single)
print("wrote", single)
