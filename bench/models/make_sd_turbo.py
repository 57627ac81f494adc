#!/usr/bin/env python3
"""A full-size SD-Turbo-shaped model with random weights, for the live
painting bench only (never committed): SD 2.1's UNet (865 M parameters,
linear projections, heads of 64 channels), OpenCLIP ViT-H/14's text encoder
(24 layers of 1024, keys cond_stage_model.model.*) and SD's VAE, in the
original single-file layout, f16, as DIR/sd_turbo.safetensors; plus the
SD1/SD2 TAESD (diffusers AutoencoderTiny, random) in DIR/taesd/ when missing;
plus the same weights as a diffusers folder DIR/sd_turbo/ (the diffusers
peer of the live bench), made from the single file's tensors by diffusers'
own converters (convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
convert_open_clip_checkpoint: SD 2's 23-layer CLIPTextModel, as
stabilityai/sd-turbo's folder), saved f16 and checked to map back onto the
file's tensors bit for bit; CLIP's BPE tokenizer (pad "!", as SD 2's) and
sd-turbo's scheduler settings (Euler a, trailing timesteps).
The file states what stabilityai/sd-turbo's model card says: 512 px, one
step, no guidance (ldm.native_size, ldm.steps, ldm.cfg_scale).
Each part is made only when missing.
Usage: make_sd_turbo.py DIR"""
import os
import shutil
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
single, folder = os.path.join(out, "sd_turbo.safetensors"), os.path.join(out, "sd_turbo")
taesd = os.path.join(out, "taesd")
if not os.path.isfile(os.path.join(taesd, "diffusion_pytorch_model.safetensors")):
    from diffusers import AutoencoderTiny
    torch.manual_seed(1)
    AutoencoderTiny().save_pretrained(taesd, safe_serialization=True)


def new_unet():
    return UNet2DConditionModel(sample_size=64, block_out_channels=(320, 640, 1280, 1280),
                                layers_per_block=2, **make_unet.FULL["sd21"])


def new_vae():
    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         sample_size=512)


def write_single():
    torch.manual_seed(0)
    sd = {}
    unet = new_unet()
    for p in unet.parameters():  # keep activations in a sane range in f16
        p.mul_(0.5)
    sd.update(make_unet.to_ldm(unet.state_dict(), make_unet.full_config(unet),
                               "model.diffusion_model.", torch.float16))
    del unet
    make_text.VOCAB = 49408
    tt = make_text.new_openclip(402, torch.float16, 1024, 16, 24, 4096, 1024)
    sd.update({"cond_stage_model.model." + k: v.half().contiguous() for k, v in tt.state_dict().items()})
    del tt
    vae = new_vae()
    for p in vae.parameters():
        p.mul_(0.5)
    sd.update(make_vae.to_ldm(vae.state_dict(), 4, "first_stage_model.", torch.float16))
    meta = {"format": "pt", "modelspec.title": "sd-turbo (random weights)",
            "ldm.native_size": "512", "ldm.steps": "1", "ldm.cfg_scale": "1",
            "ldm.sampler": "euler_a"}
    save_file(sd, single + ".tmp", metadata=meta)
    os.replace(single + ".tmp", single)
    print("wrote", single)


def write_folder():
    """DIR/sd_turbo/ from the single file's tensors, through diffusers' converters."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline
    from diffusers.loaders.single_file_utils import (convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
                                                     convert_open_clip_checkpoint)
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel

    ckpt = load_file(single)
    unet, vae = new_unet(), new_vae()
    unet.load_state_dict(convert_ldm_unet_checkpoint(ckpt, dict(unet.config)), strict=True)
    vae.load_state_dict(convert_ldm_vae_checkpoint(ckpt, dict(vae.config)), strict=True)
    # SD 2 uses the penultimate layer: diffusers' text encoder has 23 of the 24 (the last is ignored)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=1024, intermediate_size=4096,
                                      num_hidden_layers=23, num_attention_heads=16, max_position_embeddings=77,
                                      hidden_act="gelu", projection_dim=1024, layer_norm_eps=1e-5,
                                      bos_token_id=49406, eos_token_id=49407, pad_token_id=0))
    tsd = convert_open_clip_checkpoint(te, ckpt)
    tsd.pop("text_projection.weight", None)
    missing, unexpected = te.load_state_dict(tsd, strict=False)
    assert not [k for k in missing if "position_ids" not in k] and not unexpected, (missing, unexpected)
    # identical weights: the folder's UNet and VAE map back onto the file's tensors, every text tensor came from it
    for name, back in (("unet", make_unet.to_ldm(unet.state_dict(), make_unet.full_config(unet),
                                                  "model.diffusion_model.", torch.float16)),
                       ("vae", make_vae.to_ldm(vae.state_dict(), 4, "first_stage_model.", torch.float16))):
        for k, v in back.items():
            assert torch.equal(v, ckpt[k]), f"{name}: {k} differs from the single file"
    prefix = "cond_stage_model.model."
    n_text = len([k for k in ckpt if k.startswith(prefix) and ".resblocks.23." not in k
                  and not k.endswith(("text_projection", "logit_scale"))])
    assert len(tsd) >= n_text, (len(tsd), n_text)
    tok = make_text.write_clip_files(os.path.join(out, "_tok"), make_text.N_MERGES, "!")
    tok.model_max_length = 77
    sched = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                            steps_offset=1, timestep_spacing="trailing")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    tmp = folder + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    print("wrote", folder)


with torch.no_grad():
    if not os.path.exists(single):
        write_single()
    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        write_folder()
