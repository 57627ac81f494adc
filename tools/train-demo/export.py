"""Export the trained demo models in both layouts, fp16.

  models/demo/ldm-demo.safetensors            original LDM keys (SD1 layout)
  models/demo/ldm-demo-inpaint.safetensors    original LDM keys (SD1 inpainting, 9 channels)
  models/demo/ldm-demo-x4.safetensors         original LDM keys (SD x4 upscaler layout)
  models/demo/diffusers/ldm-demo{,-inpaint,-x4}/   diffusers pipeline folders
  models/demo/ldm-demo-control-scribble.safetensors  ControlNet, original v1.1 layout
                                              (control_model.*), from train_control.py
  models/demo/diffusers/ldm-demo-control-scribble/   the same as a ControlNetModel folder

The original-layout files are proven by loading them back with diffusers' own
single-file converters (diffusers.loaders.single_file_utils) and comparing every
weight with the diffusers folder (bit-equal in fp16). The inpainting folder
shares vae/ and tokenizer/ (and text_encoder/ when it was not trained on) with
ldm-demo through symbolic links; the x4 folder shares the BPE files.
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import models as M  # noqa: E402
import train_control as TC  # noqa: E402
import settings as S  # noqa: E402
from diffusers import (AutoencoderKL, ControlNetModel, DDIMScheduler, DDPMScheduler, StableDiffusionInpaintPipeline,  # noqa: E402
                       StableDiffusionPipeline, StableDiffusionUpscalePipeline, UNet2DConditionModel)
from diffusers.loaders import single_file_utils as SFU  # noqa: E402
from transformers import CLIPTextModel  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
WORK = os.environ.get("DEMO_WORK", os.path.join(HERE, "work"))
OUT = os.environ.get("DEMO_OUT", os.path.join(REPO, "models", "demo"))
LICENSE = "CC0-1.0"


# ------------------------------------------------------------ key mappings

def unet_to_ldm(sd, cfg):
    """diffusers UNet2DConditionModel state dict -> original openaimodel names."""
    L = cfg["layers_per_block"]
    nlev = len(cfg["block_out_channels"])
    res = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
           "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
    out = {}

    def resnet(src, dst):
        for k, v in sd.items():
            if k.startswith(src + "."):
                rest = k[len(src) + 1:]
                a, b = rest.split(".", 1)
                out[dst + "." + res[a] + "." + b] = v

    def attn(src, dst):
        for k, v in sd.items():
            if k.startswith(src + "."):
                out[dst + k[len(src):]] = v

    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    for src, dst in fixed.items():
        for p in ("weight", "bias"):
            if src + "." + p in sd:     # a ControlNet has no conv_norm_out / conv_out
                out[dst + "." + p] = sd[src + "." + p]
    if "class_embedding.weight" in sd:
        out["label_emb.weight"] = sd["class_embedding.weight"]
    for i in range(nlev):
        for j in range(L):
            n = 1 + i * (L + 1) + j
            resnet("down_blocks.%d.resnets.%d" % (i, j), "input_blocks.%d.0" % n)
            attn("down_blocks.%d.attentions.%d" % (i, j), "input_blocks.%d.1" % n)
        if i < nlev - 1:
            n = 1 + i * (L + 1) + L
            for p in ("weight", "bias"):
                out["input_blocks.%d.0.op.%s" % (n, p)] = sd["down_blocks.%d.downsamplers.0.conv.%s" % (i, p)]
    resnet("mid_block.resnets.0", "middle_block.0")
    attn("mid_block.attentions.0", "middle_block.1")
    resnet("mid_block.resnets.1", "middle_block.2")
    for i in range(nlev):
        has_attn = any(k.startswith("up_blocks.%d.attentions." % i) for k in sd)
        for j in range(L + 1):
            n = i * (L + 1) + j
            resnet("up_blocks.%d.resnets.%d" % (i, j), "output_blocks.%d.0" % n)
            attn("up_blocks.%d.attentions.%d" % (i, j), "output_blocks.%d.1" % n)
        if i < nlev - 1 and "up_blocks.%d.upsamplers.0.conv.weight" % i in sd:
            n = i * (L + 1) + L
            for p in ("weight", "bias"):
                out["output_blocks.%d.%d.conv.%s" % (n, 2 if has_attn else 1, p)] = \
                    sd["up_blocks.%d.upsamplers.0.conv.%s" % (i, p)]
    assert len(out) == len(sd), (len(out), len(sd))
    return {"model.diffusion_model." + k: v for k, v in out.items()}


def vae_to_ldm(sd, cfg):
    """diffusers AutoencoderKL state dict -> original first_stage_model names."""
    nlev = len(cfg["block_out_channels"])
    out = {}

    def resnet(src, dst):
        for k, v in sd.items():
            if k.startswith(src + "."):
                out[dst + k[len(src):].replace("conv_shortcut", "nin_shortcut")] = v

    def attn(src, dst):
        names = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
        for a, b in names.items():
            for p in ("weight", "bias"):
                v = sd["%s.%s.%s" % (src, a, p)]
                if p == "weight" and a != "group_norm":
                    v = v.reshape(v.shape[0], v.shape[1], 1, 1)
                out["%s.%s.%s" % (dst, b, p)] = v

    for side in ("encoder", "decoder"):
        for a, b in (("conv_in", "conv_in"), ("conv_out", "conv_out"), ("conv_norm_out", "norm_out")):
            for p in ("weight", "bias"):
                out["%s.%s.%s" % (side, b, p)] = sd["%s.%s.%s" % (side, a, p)]
        resnet(side + ".mid_block.resnets.0", side + ".mid.block_1")
        resnet(side + ".mid_block.resnets.1", side + ".mid.block_2")
        attn(side + ".mid_block.attentions.0", side + ".mid.attn_1")
    L = cfg["layers_per_block"]
    for i in range(nlev):
        for j in range(L):
            resnet("encoder.down_blocks.%d.resnets.%d" % (i, j), "encoder.down.%d.block.%d" % (i, j))
        if i < nlev - 1:
            for p in ("weight", "bias"):
                out["encoder.down.%d.downsample.conv.%s" % (i, p)] = \
                    sd["encoder.down_blocks.%d.downsamplers.0.conv.%s" % (i, p)]
    for i in range(nlev):
        li = nlev - 1 - i
        for j in range(L + 1):
            resnet("decoder.up_blocks.%d.resnets.%d" % (i, j), "decoder.up.%d.block.%d" % (li, j))
        if i < nlev - 1:
            for p in ("weight", "bias"):
                out["decoder.up.%d.upsample.conv.%s" % (li, p)] = \
                    sd["decoder.up_blocks.%d.upsamplers.0.conv.%s" % (i, p)]
    for k in ("quant_conv", "post_quant_conv"):
        for p in ("weight", "bias"):
            out["%s.%s" % (k, p)] = sd["%s.%s" % (k, p)]
    assert len(out) == len(sd), (len(out), len(sd))
    return {"first_stage_model." + k: v for k, v in out.items()}


def clip_to_ldm(sd):
    """transformers CLIPTextModel -> SD1's cond_stage_model.transformer.* (same inner names)."""
    return {"cond_stage_model.transformer." + k: v for k, v in sd.items()
            if not k.endswith("position_ids")}


def clip_to_openclip(sd, nlayers, dtype):
    """transformers CLIPTextModel (SD2 style) -> cond_stage_model.model.* (OpenCLIP names).

    As in SD2 / x4 files, the stored transformer has one block more than the
    diffusers text encoder uses (the 'penultimate layer' convention). Our extra
    block is all zeros, so running it or skipping it gives the same result."""
    p = "cond_stage_model.model."
    D = sd["text_model.embeddings.token_embedding.weight"].shape[1]
    out = {p + "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
           p + "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
           p + "ln_final.weight": sd["text_model.final_layer_norm.weight"],
           p + "ln_final.bias": sd["text_model.final_layer_norm.bias"],
           p + "text_projection": torch.eye(D, dtype=dtype)}
    for i in range(nlayers + 1):
        s = "text_model.encoder.layers.%d." % i
        d = p + "transformer.resblocks.%d." % i
        if i == nlayers:
            ref = "text_model.encoder.layers.0."
            z = {k[len(ref):]: torch.zeros_like(v) for k, v in sd.items() if k.startswith(ref)}
            get = z.__getitem__
        else:
            def get(k, s=s):
                return sd[s + k]
        out[d + "attn.in_proj_weight"] = torch.cat([get("self_attn.q_proj.weight"),
                                                    get("self_attn.k_proj.weight"),
                                                    get("self_attn.v_proj.weight")])
        out[d + "attn.in_proj_bias"] = torch.cat([get("self_attn.q_proj.bias"),
                                                  get("self_attn.k_proj.bias"),
                                                  get("self_attn.v_proj.bias")])
        for a, b in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"),
                     ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
            for q in ("weight", "bias"):
                out[d + b + "." + q] = get(a + "." + q)
    return out


def schedule_buffers(beta_start, beta_end, prefix=""):
    """The DDPM buffers LatentDiffusion registers (float32), LDM's 'linear' (= scaled_linear)."""
    betas = np.linspace(beta_start ** 0.5, beta_end ** 0.5, 1000, dtype=np.float64) ** 2
    alphas = 1.0 - betas
    ac = np.cumprod(alphas)
    prev = np.append(1.0, ac[:-1])
    pv = betas * (1.0 - prev) / (1.0 - ac)
    bufs = {
        "betas": betas, "alphas_cumprod": ac, "alphas_cumprod_prev": prev,
        "sqrt_alphas_cumprod": np.sqrt(ac), "sqrt_one_minus_alphas_cumprod": np.sqrt(1 - ac),
        "log_one_minus_alphas_cumprod": np.log(1 - ac), "sqrt_recip_alphas_cumprod": np.sqrt(1 / ac),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1 / ac - 1), "posterior_variance": pv,
        "posterior_log_variance_clipped": np.log(np.maximum(pv, 1e-20)),
        "posterior_mean_coef1": betas * np.sqrt(prev) / (1 - ac),
        "posterior_mean_coef2": (1 - prev) * np.sqrt(alphas) / (1 - ac),
    }
    return {prefix + k: torch.from_numpy(v.astype(np.float32)) for k, v in bufs.items()}


# ------------------------------------------------------------------ export

def half_sd(m):
    return {k: v.detach().to(torch.float16).contiguous() for k, v in m.state_dict().items()
            if not k.endswith("position_ids")}


def model_options(vae, unet=None):
    """`ldm.options` for GroupNorm groups that differ from SD's 32 (the VAEs' DEMO_VAE_GROUPS,
    the x4 UNet's X4_UNET_GROUPS): an original single file cannot say them, a yaml would;
    the engine reads them from here."""
    opts = []
    if unet is not None and unet.config.norm_num_groups != 32:
        opts.append("unet.groups=%d" % unet.config.norm_num_groups)
    if vae.config.norm_num_groups != 32:
        opts.append("vae.groups=%d" % vae.config.norm_num_groups)
    return {"ldm.options": ",".join(opts)} if opts else {}


def write_single(path, tensors, meta):
    tensors = {k: v.contiguous() for k, v in sorted(tensors.items())}
    save_file(tensors, path, metadata={k: str(v) for k, v in meta.items()})
    return os.path.getsize(path)


def base_meta(title, family, arch, pred, scale, res, extra):
    m = {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": arch,
        "modelspec.title": title,
        "modelspec.resolution": "%dx%d" % (res, res),
        "modelspec.prediction_type": pred,
        "modelspec.license": LICENSE,
        "modelspec.author": "gimp-ldm project (trained by tools/train-demo)",
        "modelspec.description": "Tiny demo latent diffusion model trained on synthetic coloured shapes "
                                 "(see models/demo/MODEL_CARD.md)",
        "ldm.family": family,
        "ldm.resolution": str(res),
        "ldm.prediction_type": pred,
        "ldm.scaling_factor": str(scale),
        "ldm.training_seed": str(M.SEED),
        "ldm.training_script": "tools/train-demo/train.py",
    }
    m.update(extra)
    return m


def final_vae(name):
    """The VAE with the fine-tuned decoder when that stage ran (same encoder, same latents)."""
    d = os.path.join(WORK, name + "dec_final")
    return AutoencoderKL.from_pretrained(d if os.path.exists(d) else os.path.join(WORK, name + "_final"))


def load_components():
    vae = final_vae("vae")
    te = CLIPTextModel.from_pretrained(os.path.join(WORK, "t2i_final", "text_encoder"))
    unet = UNet2DConditionModel.from_pretrained(os.path.join(WORK, "t2i_final", "unet"))
    return vae, te, unet


def sd1_scheduler():
    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                         steps_offset=1, prediction_type="epsilon")


def export_t2i(which):
    vae, te, unet = load_components()
    own_te = False
    if which == "inpaint":
        unet = UNet2DConditionModel.from_pretrained(os.path.join(WORK, "inpaint_final", "unet"))
        d = os.path.join(WORK, "inpaint_final", "text_encoder")
        if os.path.exists(d):       # trained on with the inpainting UNet
            te = CLIPTextModel.from_pretrained(d)
            own_te = True
    name = "ldm-demo" if which == "t2i" else "ldm-demo-inpaint"
    tok = M.make_tokenizer(WORK)
    folder = os.path.join(OUT, "diffusers", name)
    shutil.rmtree(folder, ignore_errors=True)
    cls = StableDiffusionPipeline if which == "t2i" else StableDiffusionInpaintPipeline
    pipe = cls(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sd1_scheduler(),
               safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16)
    save_folder(pipe, folder)
    if which == "inpaint":        # share the unchanged components with ldm-demo
        for sub in ("vae", "tokenizer") if own_te else ("vae", "text_encoder", "tokenizer"):
            shutil.rmtree(os.path.join(folder, sub))
            os.symlink(os.path.join("..", "ldm-demo", sub), os.path.join(folder, sub))
    t = {}
    t.update(unet_to_ldm(half_sd(unet), unet.config))
    t.update(vae_to_ldm(half_sd(vae), vae.config))
    t.update(clip_to_ldm(half_sd(te)))
    t.update(schedule_buffers(0.00085, 0.012))
    fam = "sd1" if which == "t2i" else "sd1-inpaint"
    arch = "stable-diffusion-v1" if which == "t2i" else "stable-diffusion-v1/inpaint"
    meta = base_meta("gimp-ldm demo" + ("" if which == "t2i" else " (inpainting)"), fam, arch,
                     "epsilon", M.SD1_SCALE, M.IMAGE_SIZE,
                     {"ldm.unet_in_channels": str(unet.config.in_channels),
                      "ldm.text_encoder": "clip (1 head of 64, 2 layers, quick_gelu), CLIP BPE vocabulary",
                      "ldm.schedule": "scaled_linear 0.00085..0.012, 1000 steps", **model_options(vae),
                      **S.metadata(name)})
    S.write_folder_settings(folder, name)
    path = os.path.join(OUT, name + ".safetensors")
    size = write_single(path, t, meta)
    print("%s: %d tensors, %.2f MB" % (path, len(t), size / 1e6))
    return path, folder


def save_folder(pipe, folder):
    """pipe.save_pretrained, without the '_name_or_path' (the local directory the
    component was read from) that diffusers and transformers write into each config."""
    pipe.save_pretrained(folder, safe_serialization=True)
    for sub in os.listdir(folder):
        cfg = os.path.join(folder, sub, "config.json")
        if os.path.isfile(cfg):
            with open(cfg) as f:
                c = json.load(f)
            if c.pop("_name_or_path", None) is not None:
                with open(cfg, "w") as f:
                    f.write(json.dumps(c, indent=2, sort_keys=True) + "\n")


def export_x4():
    vae = final_vae("x4vae")
    te = CLIPTextModel.from_pretrained(os.path.join(WORK, "x4_final", "text_encoder"))
    unet = UNet2DConditionModel.from_pretrained(os.path.join(WORK, "x4_final", "unet"))
    tok = M.make_tokenizer(WORK, sd2_style=True)
    folder = os.path.join(OUT, "diffusers", "ldm-demo-x4")
    shutil.rmtree(folder, ignore_errors=True)
    sched = DDIMScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02,
                          beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                          steps_offset=1, prediction_type="v_prediction")
    low = DDPMScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02,
                        beta_schedule="scaled_linear")
    pipe = StableDiffusionUpscalePipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet,
                                          low_res_scheduler=low, scheduler=sched,
                                          max_noise_level=350)
    pipe.to(torch.float16)
    save_folder(pipe, folder)
    for f in ("vocab.json", "merges.txt"):    # same BPE files as ldm-demo
        os.remove(os.path.join(folder, "tokenizer", f))
        os.symlink(os.path.join("..", "..", "ldm-demo", "tokenizer", f),
                   os.path.join(folder, "tokenizer", f))
    t = {}
    t.update(unet_to_ldm(half_sd(unet), unet.config))
    t.update(vae_to_ldm(half_sd(vae), vae.config))
    t.update(clip_to_openclip(half_sd(te), te.config.num_hidden_layers, torch.float16))
    t.update(schedule_buffers(0.0001, 0.02))
    t.update(schedule_buffers(0.0001, 0.02, "low_scale_model."))
    meta = base_meta("gimp-ldm demo x4 upscaler", "x4-upscaler", "stable-diffusion-x4-upscaler",
                     "v", M.X4_SCALE, M.X4_SIZE,
                     {"ldm.unet_in_channels": "7",
                      "ldm.max_noise_level": "350",
                      "ldm.text_encoder": "openclip (1 head of 64, 2 layers used + 1 zero block, gelu)",
                      "ldm.schedule": "scaled_linear 0.0001..0.02, 1000 steps (low-res noise: same)",
                      **model_options(vae, unet), **S.metadata("ldm-demo-x4")})
    S.write_folder_settings(folder, "ldm-demo-x4")
    path = os.path.join(OUT, "ldm-demo-x4.safetensors")
    size = write_single(path, t, meta)
    print("%s: %d tensors, %.2f MB" % (path, len(t), size / 1e6))
    return path, folder


def controlnet_to_ldm(sd, cfg, prefix="control_model."):
    """diffusers ControlNetModel state dict -> the original ControlNet layout of
    control_v11p_sd15_*: the copied UNet encoder under its openaimodel names,
    input_hint_block.{0,2,...,14}, zero_convs.N.0, middle_block_out.0."""
    out, rest = {}, {}
    for k, v in sd.items():
        p = k.split(".")
        if p[0] == "controlnet_cond_embedding":
            n = 0 if p[1] == "conv_in" else 14 if p[1] == "conv_out" else 2 * (int(p[2]) + 1)
            out["input_hint_block.%d.%s" % (n, p[-1])] = v
        elif p[0] == "controlnet_down_blocks":
            out["zero_convs.%s.0.%s" % (p[1], p[2])] = v
        elif p[0] == "controlnet_mid_block":
            out["middle_block_out.0.%s" % p[1]] = v
        else:
            rest[k] = v
    for k, v in unet_to_ldm(rest, cfg).items():
        out[k[len("model.diffusion_model."):]] = v
    assert len(out) == len(sd), (len(out), len(sd))
    return {prefix + k: v for k, v in out.items()}


def export_control():
    """The scribble ControlNet of train_control.py: diffusers folder + original single file."""
    cn = ControlNetModel.from_pretrained(os.path.join(WORK, "control_final"))
    name = "ldm-demo-control-scribble"
    folder = os.path.join(OUT, "diffusers", name)
    shutil.rmtree(folder, ignore_errors=True)
    cn.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    cfgp = os.path.join(folder, "config.json")
    with open(cfgp) as f:
        c = json.load(f)
    c.pop("_name_or_path", None)
    with open(cfgp, "w") as f:
        f.write(json.dumps(c, indent=2, sort_keys=True) + "\n")
    t = controlnet_to_ldm(half_sd(cn), cn.config)
    meta = {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-v1/controlnet",
        "modelspec.title": "gimp-ldm demo scribble ControlNet",
        "modelspec.resolution": "%dx%d" % (M.IMAGE_SIZE, M.IMAGE_SIZE),
        "modelspec.license": LICENSE,
        "modelspec.author": "gimp-ldm project (trained by tools/train-demo)",
        "modelspec.description": "Tiny scribble ControlNet for the gimp-ldm demo model ldm-demo.safetensors: "
                                 "puts the shape where the scribble is (see models/demo/MODEL_CARD.md)",
        "ldm.family": "sd1",
        "ldm.base_model": "ldm-demo.safetensors",
        "ldm.preprocess": "scribble",
        "ldm.resolution": str(M.IMAGE_SIZE),
        "ldm.hint_channels": ",".join(str(v) for v in TC.HINT),
        "ldm.training_seed": str(TC.SEED),
        "ldm.training_script": "tools/train-demo/train_control.py",
    }
    path = os.path.join(OUT, name + ".safetensors")
    size = write_single(path, t, meta)
    print("%s: %d tensors, %.2f MB" % (path, len(t), size / 1e6))
    return path, folder


# ------------------------------------------------------------------ proofs

def prove_control(path, folder):
    """diffusers' convert_controlnet_checkpoint reads the single file back into the folder's weights."""
    ck = load_file(path)
    cn = ControlNetModel.from_pretrained(folder)
    ref = cn.state_dict()
    conv = SFU.convert_controlnet_checkpoint(ck, dict(cn.config))
    missing, extra = set(ref) - set(conv), set(conv) - set(ref)
    diff = max(float((ref[k].float() - conv[k].float()).abs().max()) for k in ref if k in conv)
    print("  controlnet   %4d tensors, missing %d, unexpected %d, max |diff| %g" % (
        len(ref), len(missing), len(extra), diff))
    return not missing and not extra and diff == 0.0, "controlnet"


def prove(path, folder, kind):
    """Convert the single file back with diffusers' converters; compare with the folder."""
    ck = load_file(path)
    mtype = SFU.infer_diffusers_model_type(ck)
    ok = True
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    conv = SFU.convert_ldm_unet_checkpoint(ck, unet.config)
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae")
    convv = SFU.convert_ldm_vae_checkpoint(ck, vae.config)
    te = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder")
    if kind == "x4":
        convt = SFU.convert_open_clip_checkpoint(te, ck)
        convt = {k: v for k, v in convt.items() if not k.startswith("text_projection")
                 and not k.startswith("text_model.encoder.layers.%d." % te.config.num_hidden_layers)}
    else:
        convt = SFU.convert_ldm_clip_checkpoint(ck)
    for name, model, sd in (("unet", unet, conv), ("vae", vae, convv), ("text_encoder", te, convt)):
        ref = {k: v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
        sd = {k: v for k, v in sd.items() if not k.endswith("position_ids")}
        missing = set(ref) - set(sd)
        extra = set(sd) - set(ref)
        diff = max(float((ref[k].float() - sd[k].float().reshape(ref[k].shape)).abs().max())
                   for k in ref if k in sd)
        print("  %-12s %4d tensors, missing %d, unexpected %d, max |diff| %g" % (
            name, len(ref), len(missing), len(extra), diff))
        ok = ok and not missing and not extra and diff == 0.0
    print("  diffusers infers model type %r from the single file" % mtype)
    return ok, mtype


def main():
    which = sys.argv[1:] or ["t2i", "inpaint", "x4", "control"]
    os.makedirs(OUT, exist_ok=True)
    allok = True
    for w in which:
        if w == "control":
            path, folder = export_control()
            ok, mtype = prove_control(path, folder)
        else:
            path, folder = export_x4() if w == "x4" else export_t2i(w)
            ok, mtype = prove(path, folder, w)
        want = {"t2i": "v1", "inpaint": "inpainting", "x4": "upscale", "control": "controlnet"}[w]
        print("  round trip %s; model type %s (want %s)" % ("OK" if ok else "FAILED", mtype, want))
        allok = allok and ok and mtype == want
    sys.exit(0 if allok else 1)


if __name__ == "__main__":
    main()
