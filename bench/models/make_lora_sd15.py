#!/usr/bin/env python3
"""A random rank-64 LoRA for full-size SD1.5, for benchmarks only (never
committed): kohya-ss naming (lora_unet_* on every attention projection,
proj_in/out and feed-forward layer of the UNet's transformers, lora_te_* on
every q/k/v/out_proj and fc1/fc2 of CLIP-L), f16 with alpha 32, as the
LoRAs people train with kohya's default network. Module shapes come from
diffusers' UNet2DConditionModel and transformers' CLIPTextModel with SD1.5's
configs, built on the meta device (no weights).
Usage: make_lora_sd15.py DIR  -> DIR/lora_sd15_r64.safetensors"""
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel
from diffusers import UNet2DConditionModel

ATTN = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2")
TEXT = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
RANK, ALPHA = 64, 32.0

out = os.path.join(sys.argv[1], "lora_sd15_r64.safetensors")
if os.path.exists(out):
    sys.exit(0)
with torch.device("meta"):
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                      num_hidden_layers=12, num_attention_heads=12, hidden_act="quick_gelu"))
g = torch.Generator().manual_seed(64)
sd = {}
for prefix, model, names in (("lora_unet_", unet, ATTN), ("lora_te_", te, TEXT)):
    for name, mod in model.named_modules():
        if not isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)) or not name.endswith(names):
            continue
        if prefix == "lora_unet_" and ".attentions." not in name:
            continue
        if isinstance(mod, torch.nn.Linear):
            i, o, k = mod.in_features, mod.out_features, ()
        else:
            i, o, k = mod.in_channels, mod.out_channels, mod.kernel_size
        key = prefix + name.replace(".", "_")
        sd[key + ".lora_down.weight"] = (torch.randn(RANK, i, *k, generator=g) / i ** 0.5).half()
        sd[key + ".lora_up.weight"] = (torch.randn(o, RANK, *(1,) * len(k), generator=g) * 0.01).half()
        sd[key + ".alpha"] = torch.tensor(ALPHA)
save_file(sd, out)
print(out, len(sd) // 3, "modules")
