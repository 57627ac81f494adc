#!/usr/bin/env python3
"""Goldens for the UNet (engine/models/unet): tiny random-weight diffusers
UNet2DConditionModel models in the block layouts of the real families (SD1.x,
9-channel inpainting, SD2.x, SDXL, the x4 upscaler, LCM), each saved as a
diffusers folder and (except LCM, which only exists in diffusers layout) as an
original single-file checkpoint, plus inputs and reference outputs.

The single files are written with our diffusers->LDM key mapping and read back
with diffusers' own `convert_ldm_unet_checkpoint`; the script fails unless that
gives back exactly the diffusers weights.

Writes tests/golden/unet/:
  <case>/                    diffusers folder (model_index.json, unet/, scheduler/), f16
  <case>.safetensors         same weights, keys 'model.diffusion_model.*', f16
                             (sd2: prefixless, as a UNet-only file; sd1 also
                             carries 3 'model_ema.*' tensors that must be ignored)
  sd1_odd_io.safetensors     the sd1 model on a 9x7 latent (odd sizes at every level)
  sd1_48x40_io.safetensors   the sd1 model on a 48x40 latent
  <case>_io.safetensors      sample [2,C,h,w], timestep [2], encoder_hidden_states
                             [2,T,D] (+ text_embeds, time_ids / class_labels /
                             timestep_cond) -> out
  layout_<fam>.stheader      header of a full-size f16 single file of each real
                             family (names/shapes of diffusers' own model with the
                             real config, mapped and verified as above); the test
                             extends it to a sparse file of the declared size.

Usage: /work/refvenv/bin/python tests/reference/make_unet.py [OUTDIR]
       /work/refvenv/bin/python tests/reference/make_unet.py --slow-sd15 DIR
         (full-size random SD1.5 UNet: DIR/sd15.safetensors, DIR/sd15/ folder,
          DIR/sd15_io.safetensors with a 64x64 latent batch of 2; reuses what exists)
"""
import json
import os
import shutil
import struct
import sys
import time

import torch
from safetensors.torch import save_file
from diffusers import UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CA, DN = "CrossAttnDownBlock2D", "DownBlock2D"
CU, UP = "CrossAttnUpBlock2D", "UpBlock2D"

# Tiny configs: the real block layouts, shrunk in width only (and layers_per_block
# where the file budget needs it). Comments give the real model's value.
TINY = {
    # SD1.5: 4 levels (CA, CA, CA, DN), layers_per_block 2, 8 heads, context 768
    "sd1": dict(block_out_channels=(8, 16, 16), layers_per_block=2,
                down_block_types=(CA, CA, DN), up_block_types=(UP, CU, CU),
                cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4),
    # SD1.5-inpainting: 9 input channels
    "sd1_inpaint": dict(in_channels=9, block_out_channels=(8, 16), layers_per_block=1,
                        down_block_types=(CA, DN), up_block_types=(UP, CU),
                        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4),
    # SD2.1: linear proj_in/out, head dim 64 (heads per level 5,10,20,20), context 1024
    "sd2": dict(block_out_channels=(8, 16), layers_per_block=1,
                down_block_types=(CA, CA), up_block_types=(CU, CU),
                cross_attention_dim=40, attention_head_dim=(1, 2), use_linear_projection=True,
                upcast_attention=True, norm_num_groups=4),
    # SDXL: (DN, CA, CA), transformer depth (1, 2, 10), head dim 64, context 2048,
    # add embedding of text_embeds (1280) + 6 time ids x 256
    "sdxl": dict(block_out_channels=(8, 16, 16), layers_per_block=1,
                 down_block_types=(DN, CA, CA), up_block_types=(CU, CU, UP),
                 transformer_layers_per_block=(1, 1, 2), attention_head_dim=(1, 2, 2),
                 cross_attention_dim=40, use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=24 + 6 * 8, norm_num_groups=4),
    # x4 upscaler: 7 input channels, 1000 noise-level classes, (DN, CA, CA, CA)
    # with only-cross-attention on all but the last level, 8 heads, linear proj
    "x4": dict(in_channels=7, block_out_channels=(8, 16, 16), layers_per_block=1,
               down_block_types=(DN, CA, CA), up_block_types=(CU, CU, UP),
               cross_attention_dim=40, attention_head_dim=8, only_cross_attention=(True, True, False),
               use_linear_projection=True, num_class_embeds=1000, norm_num_groups=4),
    # LCM (distilled SD1.5): guidance embedding through time_cond_proj_dim 256
    "lcm": dict(block_out_channels=(8, 16), layers_per_block=1,
                down_block_types=(CA, DN), up_block_types=(UP, CU),
                cross_attention_dim=16, attention_head_dim=2, time_cond_proj_dim=8,
                norm_num_groups=4),
}
PREDICTION = {"sd2": "v_prediction", "x4": "v_prediction"}

# Full-size configs of the real models (diffusers' published unet/config.json values).
FULL = {
    "sd15": dict(cross_attention_dim=768, attention_head_dim=8),
    "sd15_inpaint": dict(in_channels=9, cross_attention_dim=768, attention_head_dim=8),
    "sd21": dict(cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20),
                 use_linear_projection=True, upcast_attention=True),
    "sdxl": dict(block_out_channels=(320, 640, 1280), down_block_types=(DN, CA, CA),
                 up_block_types=(CU, CU, UP), transformer_layers_per_block=(1, 2, 10),
                 attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
                 use_linear_projection=True, addition_embed_type="text_time",
                 addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816),
    "x4": dict(in_channels=7, block_out_channels=(256, 512, 512, 1024),
               down_block_types=(DN, CA, CA, CA), up_block_types=(CU, CU, CU, UP),
               cross_attention_dim=1024, attention_head_dim=8,
               only_cross_attention=(True, True, True, False), use_linear_projection=True,
               num_class_embeds=1000),
}

RES = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
       "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
       "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
       "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
       "class_embedding": "label_emb"}


def ldm_key(k, cfg):
    """diffusers UNet2DConditionModel key -> original LDM key (the inverse of
    diffusers' convert_ldm_unet_checkpoint; verified against it below)."""
    lpb = cfg["layers_per_block"]
    has_attn = [t.startswith("CrossAttn") for t in cfg["up_block_types"]]
    p = k.split(".")
    for dk, lk in TOP.items():
        if k.startswith(dk + ".") and k.count(".") == dk.count(".") + 1:
            return lk + k[len(dk):]
    if p[0] == "down_blocks":
        lvl, kind = int(p[1]), p[2]
        if kind == "downsamplers":  # down_blocks.L.downsamplers.0.conv.X
            return f"input_blocks.{1 + lvl * (lpb + 1) + lpb}.0.op.{p[5]}"
        idx = 1 + lvl * (lpb + 1) + int(p[3])
        if kind == "resnets":
            return f"input_blocks.{idx}.0.{RES[p[4]]}.{p[5]}"
        return f"input_blocks.{idx}.1." + ".".join(p[4:])
    if p[0] == "mid_block":
        j = int(p[2])
        if p[1] == "resnets":
            return f"middle_block.{2 * j}.{RES[p[3]]}.{p[4]}"
        return "middle_block.1." + ".".join(p[3:])
    if p[0] == "up_blocks":
        lvl, kind = int(p[1]), p[2]
        if kind == "upsamplers":
            idx = lvl * (lpb + 1) + lpb
            return f"output_blocks.{idx}.{2 if has_attn[lvl] else 1}.conv.{p[5]}"
        idx = lvl * (lpb + 1) + int(p[3])
        if kind == "resnets":
            return f"output_blocks.{idx}.0.{RES[p[4]]}.{p[5]}"
        return f"output_blocks.{idx}.1." + ".".join(p[4:])
    raise KeyError(k)


def full_config(model):
    return {k: v for k, v in dict(model.config).items() if not k.startswith("_")}


def to_ldm(sd, cfg, prefix, dtype=None):
    out = {}
    for k, v in sd.items():
        out[prefix + ldm_key(k, cfg)] = v if dtype is None else v.detach().to(dtype).contiguous()
    return out


def check_roundtrip(ldm_sd, model_sd, cfg):
    """diffusers' own converter must give back exactly the diffusers weights."""
    ck = {k if k.startswith("model.") else "model.diffusion_model." + k: v for k, v in ldm_sd.items()}
    conv = convert_ldm_unet_checkpoint(ck, cfg)
    assert set(conv) == set(model_sd), sorted(set(conv) ^ set(model_sd))[:10]
    for k, ref in model_sd.items():
        a = conv[k]
        assert a.shape == ref.shape, (k, a.shape, ref.shape)
        if a.device.type != "meta":
            assert torch.equal(a.float(), ref.float()), k


def randomize(model, seed):
    """Random weights (norm gains and biases get noise too so every parameter
    matters), rounded to f16 so the stored f16 file holds the exact values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("weight") and p.ndim == 1:  # norm gain
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
            elif p.ndim == 1:
                v = 0.1 * torch.randn(p.shape, generator=g)
            elif "class_embedding" in name:
                v = torch.randn(p.shape, generator=g) * 0.5
            else:
                fan_in = p[0].numel()
                v = torch.randn(p.shape, generator=g) * (1.2 / fan_in ** 0.5)
            p.copy_(v.half().float())
    model.eval()
    return model


def save_folder(path, model, dtype, prediction):
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(os.path.join(path, "unet"))
    os.makedirs(os.path.join(path, "scheduler"))
    sd = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(path, "unet", "diffusion_pytorch_model.safetensors"))
    cfg = {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.31.0", **full_config(model)}
    with open(os.path.join(path, "unet", "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    sched = {"_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.31.0",
             "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
             "num_train_timesteps": 1000, "prediction_type": prediction}
    with open(os.path.join(path, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(sched, f, indent=2, sort_keys=True)
    with open(os.path.join(path, "model_index.json"), "w") as f:
        json.dump({"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.31.0",
                   "scheduler": ["diffusers", "EulerDiscreteScheduler"],
                   "unet": ["diffusers", "UNet2DConditionModel"]}, f, indent=2)


def make_io(model, seed, shape, T):
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    B, C, h, w = shape
    io = {"sample": torch.randn(shape, generator=g),
          "timestep": torch.tensor([801.0, 37.25]),
          "encoder_hidden_states": torch.randn((B, T, cfg.cross_attention_dim), generator=g)}
    kw = {}
    if cfg.addition_embed_type == "text_time":
        n_text = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        io["text_embeds"] = torch.randn((B, n_text), generator=g)
        io["time_ids"] = torch.tensor([[1024.0, 768.0, 0.0, 0.0, 1024.0, 768.0],
                                       [896.0, 1152.0, 64.0, 32.0, 1024.0, 1024.0]])
        kw["added_cond_kwargs"] = {"text_embeds": io["text_embeds"], "time_ids": io["time_ids"]}
    if cfg.num_class_embeds:
        io["class_labels"] = torch.tensor([20, 350], dtype=torch.int64)
        kw["class_labels"] = io["class_labels"]
    if cfg.time_cond_proj_dim:
        io["timestep_cond"] = torch.randn((B, cfg.time_cond_proj_dim), generator=g)
        kw["timestep_cond"] = io["timestep_cond"]
    with torch.no_grad():
        io["out"] = model(io["sample"], io["timestep"], io["encoder_hidden_states"], **kw).sample
    return {k: v.contiguous() for k, v in io.items()}


def write_header_only(path, ldm_shapes, dtype_bytes=2):
    """A safetensors header (f16 tensors laid out back to back) without data;
    __metadata__ 'ldm_layout_data_bytes' gives the data size the test restores."""
    hdr, off = {}, 0
    for k in sorted(ldm_shapes):
        shape = list(ldm_shapes[k])
        n = dtype_bytes
        for s in shape:
            n *= s
        hdr[k] = {"dtype": "F16", "shape": shape, "data_offsets": [off, off + n]}
        off += n
    hdr["__metadata__"] = {"ldm_layout_data_bytes": str(off)}
    js = json.dumps(hdr, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js)


def make_layouts(out):
    for name, c in FULL.items():
        with torch.device("meta"):
            m = UNet2DConditionModel(**c)
        cfg = full_config(m)
        sd = m.state_dict()
        ldm = to_ldm(sd, cfg, "model.diffusion_model.")
        check_roundtrip(ldm, sd, cfg)
        write_header_only(os.path.join(out, f"layout_{name}.stheader"),
                          {k: tuple(v.shape) for k, v in ldm.items()})
        print(f"layout_{name}: {len(ldm)} tensors, {sum(v.numel() for v in ldm.values())} params")


def main_tiny(out):
    os.makedirs(out, exist_ok=True)
    io_shapes = {"sd1": (2, 4, 12, 10), "sd1_inpaint": (2, 9, 10, 6), "sd2": (2, 4, 8, 14),
                 "sdxl": (2, 4, 12, 8), "x4": (2, 7, 10, 12), "lcm": (2, 4, 8, 6)}
    for i, (name, c) in enumerate(TINY.items()):
        torch.manual_seed(1000 + i)
        m = randomize(UNet2DConditionModel(**c), 2000 + i)
        cfg = full_config(m)
        sd = m.state_dict()
        save_folder(os.path.join(out, name), m, torch.float16, PREDICTION.get(name, "epsilon"))
        if name != "lcm":  # LCM's cond_proj has no original-layout name
            prefix = "" if name == "sd2" else "model.diffusion_model."
            ldm = to_ldm(sd, cfg, prefix, torch.float16)
            check_roundtrip(ldm, sd, cfg)
            if name == "sd1":  # EMA copies a trainer left behind: ignored by loaders
                g = torch.Generator().manual_seed(7)
                for k in ("model_ema.decay", "model_ema.num_updates", "model_ema.input_blocks00weight"):
                    ldm[k] = torch.randn((1,), generator=g).half()
            save_file(ldm, os.path.join(out, f"{name}.safetensors"))
        io = make_io(m, 3000 + i, io_shapes[name], 7)
        save_file(io, os.path.join(out, f"{name}_io.safetensors"))
        if name == "sd1":  # odd latent sizes: diffusers forwards the skip sizes
            save_file(make_io(m, 3100, (2, 4, 9, 7), 5), os.path.join(out, "sd1_odd_io.safetensors"))
            save_file(make_io(m, 3200, (2, 4, 48, 40), 7), os.path.join(out, "sd1_48x40_io.safetensors"))
        print(f"{name}: {sum(v.numel() for v in sd.values())} params, out max {io['out'].abs().max():.3f}")
    make_layouts(out)


def main_slow(d):
    """Full-size random SD1.5 UNet (fp16) in both layouts + one 64x64 batch-2 eval.
    Each file appears atomically (written beside, then renamed)."""
    os.makedirs(d, exist_ok=True)
    single, folder, iop = (os.path.join(d, "sd15.safetensors"), os.path.join(d, "sd15"),
                           os.path.join(d, "sd15_io.safetensors"))
    if os.path.exists(single) and os.path.exists(iop) and os.path.isdir(folder):
        print("reusing", d)
        return
    torch.manual_seed(1)
    m = randomize(UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8), 5)
    cfg = full_config(m)
    sd = m.state_dict()
    save_folder(folder + ".tmp", m, torch.float16, "epsilon")
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.rename(folder + ".tmp", folder)
    ldm = to_ldm(sd, cfg, "model.diffusion_model.", torch.float16)
    check_roundtrip(ldm, sd, cfg)
    save_file(ldm, single + ".tmp")
    os.replace(single + ".tmp", single)
    del ldm
    t0 = time.time()
    io = make_io(m, 77, (2, 4, 64, 64), 77)
    print(f"diffusers f32 forward (torch, 1 thread): {time.time() - t0:.1f} s")
    save_file(io, iop + ".tmp")
    os.replace(iop + ".tmp", iop)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--slow-sd15":
        main_slow(sys.argv[2])
    else:
        main_tiny(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "golden", "unet"))
