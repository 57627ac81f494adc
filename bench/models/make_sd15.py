#!/usr/bin/env python3
"""A full-size SD1.5-shaped pipeline with random weights, for benchmarks only
(never committed): diffusers folder DIR/sd15/ and original single file
DIR/sd15.safetensors (f16), written with the key mappings of
tests/reference/make_unet.py and make_vae.py; and a random SD1-shaped TAESD
(diffusers AutoencoderTiny) in DIR/taesd/; with --taesd-only just the TAESD.
Usage: make_sd15.py DIR [--taesd-only]"""
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))
import make_text  # noqa: E402
import make_unet  # noqa: E402
import make_vae  # noqa: E402

torch.manual_seed(0)
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
folder, single = os.path.join(out, "sd15"), os.path.join(out, "sd15.safetensors")
taesd = os.path.join(out, "taesd")
if not os.path.isfile(os.path.join(taesd, "diffusion_pytorch_model.safetensors")):
    from diffusers import AutoencoderTiny   # SD1's TAESD shape, random weights
    AutoencoderTiny().save_pretrained(taesd, safe_serialization=True)
if "--taesd-only" in sys.argv[2:]:
    sys.exit(0)
if os.path.exists(single) and os.path.isdir(folder):
    sys.exit(0)
with torch.no_grad():
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=512)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                      num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                      hidden_act="quick_gelu", projection_dim=768))
    for m in (unet, vae, te):  # keep activations in a sane range in f16
        for p in m.parameters():
            p.mul_(0.5)
    tok = make_text.write_clip_files(os.path.join(out, "_tok"), make_text.N_MERGES, "<|endoftext|>")
    tok.model_max_length = 77
    sched = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                          skip_prk_steps=True, set_alpha_to_one=False)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    sd = {"cond_stage_model.transformer." + k: v.half().contiguous() for k, v in te.state_dict().items()
          if not k.endswith("position_ids")}
    sd.update(make_unet.to_ldm(unet.state_dict(), make_unet.full_config(unet), "model.diffusion_model.",
                               torch.float16))
    sd.update(make_vae.to_ldm(vae.state_dict(), 4, "first_stage_model.", torch.float16))
    save_file(sd, single + ".tmp", metadata={"format": "pt"})
    os.replace(single + ".tmp", single)
print("wrote", folder, single)
