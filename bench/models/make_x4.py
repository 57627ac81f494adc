#!/usr/bin/env python3
"""A full-size x4-upscaler-shaped pipeline with random weights, for benchmarks
only (never committed): the UNet, VAE and text-encoder configs of the public
SD x4 upscaler (7-channel UNet 256/512/512/1024, cross-attention-only blocks,
class-embedded noise level; 3-level VAE, scaling 0.08333; 23-layer 1024-wide
CLIP text encoder), seeded, saved in f16 as a diffusers folder DIR/x4/.
Usage: make_x4.py DIR"""
import os
import sys

import torch
from transformers import CLIPTextConfig, CLIPTextModel
from diffusers import (AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionUpscalePipeline,
                       UNet2DConditionModel)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))
import make_text  # noqa: E402

torch.manual_seed(0)
out = sys.argv[1]
folder = os.path.join(out, "x4")
if os.path.isfile(os.path.join(folder, "model_index.json")):
    sys.exit(0)
os.makedirs(out, exist_ok=True)
CA, DN, CU, UP = "CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"
with torch.no_grad():
    unet = UNet2DConditionModel(sample_size=128, in_channels=7, out_channels=4, layers_per_block=2,
                                block_out_channels=(256, 512, 512, 1024), down_block_types=(DN, CA, CA, CA),
                                up_block_types=(CU, CU, CU, UP), cross_attention_dim=1024, attention_head_dim=8,
                                num_class_embeds=1000, use_linear_projection=True,
                                only_cross_attention=(True, True, True, False))
    vae = AutoencoderKL(block_out_channels=(128, 256, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                        sample_size=256, scaling_factor=0.08333)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=1024, intermediate_size=4096,
                                      num_hidden_layers=23, num_attention_heads=16, max_position_embeddings=77,
                                      hidden_act="gelu", projection_dim=512))
    for m in (unet, vae, te):  # keep activations in a sane range in f16
        for p in m.parameters():
            p.mul_(0.5)
    tok = make_text.write_clip_files(os.path.join(out, "_tok"), make_text.N_MERGES, "!")
    tok.model_max_length = 77
    sched = DDIMScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02,
                          beta_schedule="scaled_linear", prediction_type="v_prediction", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    low = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.0001,
                        beta_end=0.02)
    pipe = StableDiffusionUpscalePipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet,
                                          low_res_scheduler=low, scheduler=sched, max_noise_level=350)
    pipe.to(torch.float16).save_pretrained(folder + ".tmp", safe_serialization=True)
    os.replace(folder + ".tmp", folder)
print("wrote", folder)
