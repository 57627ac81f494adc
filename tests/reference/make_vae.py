#!/usr/bin/env python3
"""Goldens for the VAE (engine/models/vae): tiny random-weight diffusers
AutoencoderKL and AutoencoderTiny models, saved in the diffusers layout and in
the original single-file layout, plus inputs and the reference outputs.

The original-layout files are written with our diffusers->LDM key mapping and
then read back with diffusers' own `convert_ldm_vae_checkpoint`; the script
fails unless that gives back exactly the diffusers weights.

Writes tests/golden/vae/:
  kl4/                    diffusers folder (model_index.json, vae/), f16 weights
  kl4.safetensors         same weights, checkpoint keys 'first_stage_model.*', f16
  kl4_io.safetensors      enc_image [2,3,40,56] -> enc_mean, enc_logvar;
                          dec_latent [2,4,5,7] -> dec_image;
                          odd_image [1,3,37,53] -> odd_mean, odd_logvar
                          (reflect-padded bottom/right to 40x56 by torch, encoded)
  kl2.safetensors         a 2-level VAE (factor 2), layers_per_block 2,
                          prefixless original keys, f32 (a standalone VAE file)
  kl2/                    the same model as a diffusers folder, bf16 (the
                          weights are bf16-rounded, so both hold equal values)
  kl2_io.safetensors      enc_image/enc_mean/enc_logvar, dec_latent/dec_image
  taesd/                  diffusers AutoencoderTiny folder (vae/), f16
  taesd_encoder.safetensors, taesd_decoder.safetensors
                          original TAESD layout (nn.Sequential indices; the
                          decoder's are shifted by one for its leading Clamp), f16
  taesd_io.safetensors    enc_image -> enc_latent, dec_latent -> dec_image

Usage: /work/refvenv/bin/python tests/reference/make_vae.py [OUTDIR]
       make_vae.py --slow-sd15 DIR   full-size SD1.5 VAE for the slow suite
         (never committed): DIR/sd15-vae/ (diffusers, f16), DIR/sd15-vae.safetensors
         (first_stage_model.*, f16), DIR/sd15-vae_{enc,dec}_in.safetensors (image
         [1,3,128,128], latent [1,4,16,16]) and DIR/sd15-vae_io.safetensors
         (enc_mean, enc_logvar, dec_image); kept when already there.
"""
import json
import os
import shutil
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from diffusers import AutoencoderKL, AutoencoderTiny
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "golden", "vae")


def randomize(model, seed, dtype):
    """Random weights (not the default init: norms and biases get noise too so
    every parameter matters), rounded to the storage dtype."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("weight") and p.ndim == 1:  # norm gamma
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
            elif p.ndim == 1:
                v = 0.1 * torch.randn(p.shape, generator=g)
            else:
                fan_in = p[0].numel()
                v = torch.randn(p.shape, generator=g) * (1.2 / fan_in ** 0.5)
            p.copy_(v.to(dtype).float())
    model.eval()
    return model


def ldm_key(k):
    """diffusers AutoencoderKL key -> original LDM key (inverse of diffusers'
    convert_ldm_vae_checkpoint; verified against it below)."""
    n_up = ldm_key.n_levels
    p = k.split(".")
    if p[0] in ("quant_conv", "post_quant_conv"):
        return k
    side, rest = p[0], p[1:]
    r = ".".join(rest)
    if rest[0] == "conv_norm_out":
        r = "norm_out." + ".".join(rest[1:])
    elif rest[0] == "down_blocks":
        i = rest[1]
        if rest[2] == "resnets":
            r = f"down.{i}.block.{rest[3]}." + ".".join(rest[4:])
        else:  # downsamplers.0.conv.*
            r = f"down.{i}.downsample." + ".".join(rest[4:])
    elif rest[0] == "up_blocks":
        i = n_up - 1 - int(rest[1])
        if rest[2] == "resnets":
            r = f"up.{i}.block.{rest[3]}." + ".".join(rest[4:])
        else:
            r = f"up.{i}.upsample." + ".".join(rest[4:])
    elif rest[0] == "mid_block":
        if rest[1] == "resnets":
            r = f"mid.block_{int(rest[2]) + 1}." + ".".join(rest[3:])
        else:  # attentions.0.<x>
            sub = rest[3]
            tail = rest[-1]
            name = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}[sub]
            r = f"mid.attn_1.{name}.{tail}"
    r = r.replace("conv_shortcut", "nin_shortcut")
    return side + "." + r


def to_ldm(sd, n_levels, prefix, dtype):
    ldm_key.n_levels = n_levels
    out = {}
    for k, v in sd.items():
        nk = ldm_key(k)
        if ".mid.attn_1." in nk and nk.endswith("weight") and v.ndim == 2:
            v = v[:, :, None, None]  # original stores these as 1x1 convs
        out[prefix + nk] = v.detach().to(dtype).contiguous()
    return out


def check_roundtrip(ldm_sd, model):
    conv = convert_ldm_vae_checkpoint(ldm_sd, dict(model.config))
    ref = model.state_dict()
    assert set(conv) == set(ref), (set(conv) ^ set(ref))
    for k in ref:
        a, b = conv[k].float(), ref[k].float()
        assert a.shape == b.shape and torch.equal(a, b), k


def save_folder(path, model, dtype, cls):
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(os.path.join(path, "vae"))
    sd = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(path, "vae", "diffusion_pytorch_model.safetensors"))
    cfg = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
    cfg = {"_class_name": cls, "_diffusers_version": "0.31.0", **cfg}
    with open(os.path.join(path, "vae", "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    with open(os.path.join(path, "model_index.json"), "w") as f:
        json.dump({"_class_name": "DiffusionPipeline", "_diffusers_version": "0.31.0",
                   "vae": ["diffusers", cls]}, f, indent=2)


def kl_model(block_out, layers, groups, seed, dtype):
    torch.manual_seed(seed)
    n = len(block_out)
    m = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                      down_block_types=("DownEncoderBlock2D",) * n,
                      up_block_types=("UpDecoderBlock2D",) * n,
                      block_out_channels=block_out, layers_per_block=layers,
                      norm_num_groups=groups, sample_size=64)
    return randomize(m, seed, dtype)


def kl_io(m, seed, enc_shape, dec_shape, odd_shape=None):
    g = torch.Generator().manual_seed(seed)
    io = {}
    with torch.no_grad():
        x = torch.rand(enc_shape, generator=g) * 2 - 1
        d = m.encode(x).latent_dist
        io["enc_image"], io["enc_mean"], io["enc_logvar"] = x, d.mean, d.logvar
        z = torch.randn(dec_shape, generator=g) * 2.5
        io["dec_latent"], io["dec_image"] = z, m.decode(z).sample
        if odd_shape:
            x = torch.rand(odd_shape, generator=g) * 2 - 1
            f = 2 ** (len(m.config.block_out_channels) - 1)
            ph, pw = -odd_shape[2] % f, -odd_shape[3] % f
            xp = F.pad(x, (0, pw, 0, ph), mode="reflect")
            d = m.encode(xp).latent_dist
            io["odd_image"], io["odd_mean"], io["odd_logvar"] = x, d.mean, d.logvar
    return {k: v.contiguous().float() for k, v in io.items()}


def taesd_original(sd):
    enc, dec = {}, {}
    for k, v in sd.items():
        side, _, idx, *rest = k.split(".")
        if side == "encoder":
            enc[".".join([idx] + rest)] = v
        else:
            dec[".".join([str(int(idx) + 1)] + rest)] = v
    return enc, dec


def slow_sd15(d):
    io_path = os.path.join(d, "sd15-vae_io.safetensors")
    if os.path.exists(io_path):
        print(f"make_vae: {io_path} exists, kept")
        return
    os.makedirs(d, exist_ok=True)
    m = kl_model((128, 256, 512, 512), 2, 32, 1515, torch.float16)
    save_folder(os.path.join(d, "sd15-vae"), m, torch.float16, "AutoencoderKL")
    ldm = to_ldm(m.state_dict(), 4, "first_stage_model.", torch.float16)
    check_roundtrip(ldm, m)
    save_file(ldm, os.path.join(d, "sd15-vae.safetensors"))
    io = kl_io(m, 1516, (1, 3, 128, 128), (1, 4, 16, 16))
    save_file({"image": io["enc_image"]}, os.path.join(d, "sd15-vae_enc_in.safetensors"))
    save_file({"latent": io["dec_latent"]}, os.path.join(d, "sd15-vae_dec_in.safetensors"))
    save_file(io, io_path + ".tmp")
    os.replace(io_path + ".tmp", io_path)
    print(f"make_vae: wrote {d}/sd15-vae*")


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--slow-sd15":
        return slow_sd15(sys.argv[2])
    os.makedirs(OUT, exist_ok=True)

    # Main model: 4 levels (factor 8, as SD), channel changes at two levels,
    # 3 channels per group somewhere, f16 storage like real checkpoints.
    m = kl_model((16, 24, 32, 32), 1, 8, 1234, torch.float16)
    save_folder(os.path.join(OUT, "kl4"), m, torch.float16, "AutoencoderKL")
    ldm = to_ldm(m.state_dict(), 4, "first_stage_model.", torch.float16)
    check_roundtrip(ldm, m)
    save_file(ldm, os.path.join(OUT, "kl4.safetensors"))
    save_file(kl_io(m, 99, (2, 3, 40, 56), (2, 4, 5, 7), (1, 3, 37, 53)),
              os.path.join(OUT, "kl4_io.safetensors"))

    # Second model: 2 levels, layers_per_block 2, f32, standalone prefixless.
    m2 = kl_model((16, 32), 2, 8, 4321, torch.bfloat16)
    save_folder(os.path.join(OUT, "kl2"), m2, torch.bfloat16, "AutoencoderKL")
    ldm2 = to_ldm(m2.state_dict(), 2, "", torch.float32)
    check_roundtrip(ldm2, m2)
    save_file(ldm2, os.path.join(OUT, "kl2.safetensors"))
    save_file(kl_io(m2, 98, (1, 3, 24, 20), (1, 4, 7, 9)),
              os.path.join(OUT, "kl2_io.safetensors"))

    # TAESD: AutoencoderTiny with small channels and fewer blocks.
    torch.manual_seed(7)
    t = AutoencoderTiny(encoder_block_out_channels=(16, 16, 16, 16),
                        decoder_block_out_channels=(16, 16, 16, 16),
                        num_encoder_blocks=(1, 2, 2, 1),
                        num_decoder_blocks=(1, 2, 2, 1), latent_channels=4)
    t = randomize(t, 7, torch.float16)
    save_folder(os.path.join(OUT, "taesd"), t, torch.float16, "AutoencoderTiny")
    enc, dec = taesd_original(t.state_dict())
    save_file({k: v.half().contiguous() for k, v in enc.items()}, os.path.join(OUT, "taesd_encoder.safetensors"))
    save_file({k: v.half().contiguous() for k, v in dec.items()}, os.path.join(OUT, "taesd_decoder.safetensors"))
    g = torch.Generator().manual_seed(97)
    with torch.no_grad():
        x = torch.rand((2, 3, 40, 56), generator=g) * 2 - 1
        z = torch.randn((1, 4, 6, 5), generator=g) * 2
        io = {"enc_image": x, "enc_latent": t.encode(x).latents,
              "dec_latent": z, "dec_image": t.decode(z).sample}
    save_file({k: v.contiguous().float() for k, v in io.items()},
              os.path.join(OUT, "taesd_io.safetensors"))

    total = 0
    for d, _, files in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    print(f"make_vae: wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
