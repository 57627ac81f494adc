#!/usr/bin/env python3
"""A full-size SD1.5 ControlNet with random weights, for the controlnet_512
bench case only (never committed): diffusers ControlNetModel.from_unet on the
SD1.5 bench UNet of make_sd15.py (DIR/sd15/unet), with its zero-initialised
convolutions (the hint block's last one, the down/mid residual projections)
filled with small random weights so that every residual is non-zero, as a
trained ControlNet's are. Written as DIR/controlnet_sd15/ (config.json +
f16 diffusion_pytorch_model.safetensors: the same file for both sides) and a
512x512 scribble control image DIR/inputs/control_512.png.
Usage: make_controlnet_sd15.py DIR"""
import os
import sys

import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from PIL import Image, ImageDraw

out = sys.argv[1]
folder = os.path.join(out, "controlnet_sd15")
png = os.path.join(out, "inputs", "control_512.png")
os.makedirs(os.path.dirname(png), exist_ok=True)
if not os.path.isfile(png):
    img = Image.new("RGB", (512, 512), "black")
    d = ImageDraw.Draw(img)
    d.ellipse((60, 60, 260, 260), outline="white", width=6)
    d.line((300, 400, 480, 120), fill="white", width=6)
    d.rectangle((280, 300, 460, 470), outline="white", width=6)
    img.save(png)
if os.path.isfile(os.path.join(folder, "diffusion_pytorch_model.safetensors")):
    sys.exit(0)
torch.manual_seed(3)
with torch.no_grad():
    unet = UNet2DConditionModel.from_pretrained(os.path.join(out, "sd15", "unet"), torch_dtype=torch.float32)
    cn = ControlNetModel.from_unet(unet)
    del unet
    zero = [cn.controlnet_cond_embedding.conv_out, cn.controlnet_mid_block] + list(cn.controlnet_down_blocks)
    for m in zero:
        torch.nn.init.normal_(m.weight, std=0.02)
        torch.nn.init.normal_(m.bias, std=0.02)
    cn.half().save_pretrained(folder, safe_serialization=True)
print("wrote", folder)
