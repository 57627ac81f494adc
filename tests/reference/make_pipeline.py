#!/usr/bin/env python3
"""Goldens for the pipelines and the `ldm` CLI (suite e2e): tiny random-weight
Stable Diffusion pipelines built from diffusers' / transformers' own classes,
saved as diffusers folders and as original single-file checkpoints, and the
images diffusers' pipelines make from them with torch.Generator('cpu') seeds.

The single files use the original LDM key names (model.diffusion_model.*,
first_stage_model.*, cond_stage_model.transformer.text_model.*), written with
the UNet and VAE mappings of make_unet.py / make_vae.py, each verified there
against diffusers' own convert_ldm_* functions; here every component is read
back through those converters and compared with the folder's weights.

Writes tests/golden/pipeline/:
  sd1/ sd1.safetensors                 txt2img / img2img / 4-channel inpaint model
  sd1_inpaint/ sd1_inpaint.safetensors 9-channel inpainting model
  x4/ x4.safetensors                   x4 upscaler (7-channel UNet, 4x VAE)
  init.png mask.png lowres.png         inputs
  <case>.png                           diffusers' output for each case
  cases.txt                            one case per line: name|command|model|cli args

Usage: /work/refvenv/bin/python tests/reference/make_pipeline.py [OUTDIR]
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
from diffusers import (AutoencoderKL, DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
                       StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline,
                       StableDiffusionPipeline, StableDiffusionUpscalePipeline, StableDiffusionXLPipeline,
                       UNet2DConditionModel)
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_text  # noqa: E402  (vocab.json/merges.txt from open_clip's CLIP BPE)
import make_unet  # noqa: E402
import make_vae  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "golden", "pipeline")

SD15_SCHED = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                  beta_schedule="scaled_linear", steps_offset=1, clip_sample=False,
                  set_alpha_to_one=False, skip_prk_steps=True, prediction_type="epsilon")
CA, DN, CU, UP = "CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"
W, H = 64, 48                      # output size (latent 8 x 6): not square
PROMPT = "a red circle on a blue background"
NEG = "blurry"


def randomize(model, seed):
    """Random weights rounded to f16 (the stored dtype), norm gains included."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.ndim == 1:
                base = 1.0 if ("norm" in name and name.endswith("weight")) else 0.0
                v = base + 0.1 * torch.randn(p.shape, generator=g)
            else:
                fan_in = p[0].numel()
                v = torch.randn(p.shape, generator=g) * (1.0 / fan_in ** 0.5)
            p.copy_(v.half().float())
    return model.eval()


def text_encoder(seed):
    cfg = CLIPTextConfig(vocab_size=49408, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                         projection_dim=8)
    return randomize(CLIPTextModel(cfg), seed)


def sdxl_parts(seed):
    """SDXL's layout: CLIP-L-like + OpenCLIP-bigG-like (with projection)
    encoders concatenated to the UNet's context, pooled + 6 time ids into
    the add-embedding (diffusers folder only: the single-file text layout of
    SDXL is open_clip's and is covered by the text tests)."""
    c1 = CLIPTextConfig(vocab_size=49408, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu")
    c2 = CLIPTextConfig(vocab_size=49408, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu",
                        projection_dim=8)
    te1 = randomize(CLIPTextModel(c1), seed)
    te2 = randomize(CLIPTextModelWithProjection(c2), seed + 1)
    un = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                              block_out_channels=(8, 16), down_block_types=(DN, CA), up_block_types=(CU, UP),
                              transformer_layers_per_block=(1, 2), attention_head_dim=(1, 2),
                              cross_attention_dim=16, use_linear_projection=True,
                              addition_embed_type="text_time", addition_time_embed_dim=8,
                              projection_class_embeddings_input_dim=8 + 6 * 8, norm_num_groups=4)
    return te1, te2, randomize(un, seed + 2)


def unet(seed, in_channels=4, x4=False):
    if x4:
        m = UNet2DConditionModel(sample_size=16, in_channels=7, out_channels=4, layers_per_block=1,
                                 block_out_channels=(8, 16), down_block_types=(DN, CA),
                                 up_block_types=(CU, UP), cross_attention_dim=8, attention_head_dim=2,
                                 norm_num_groups=4, num_class_embeds=1000, use_linear_projection=True,
                                 only_cross_attention=(False, True))
    else:
        m = UNet2DConditionModel(sample_size=8, in_channels=in_channels, out_channels=4,
                                 layers_per_block=1, block_out_channels=(8, 16),
                                 down_block_types=(CA, DN), up_block_types=(UP, CU),
                                 cross_attention_dim=8, attention_head_dim=2, norm_num_groups=4)
    return randomize(m, seed)


def vae(seed, levels=4, scale=0.18215):
    ch = (8, 8, 16, 16)[:levels]
    m = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                      block_out_channels=ch, down_block_types=("DownEncoderBlock2D",) * levels,
                      up_block_types=("UpDecoderBlock2D",) * levels, norm_num_groups=4,
                      sample_size=64, scaling_factor=scale)
    return randomize(m, seed)


# What an original checkpoint's yaml would say about these tiny models; stored
# as the file's only metadata key (safetensors orders several keys randomly).
OPTIONS = "unet.heads=2,unet.groups=4,vae.groups=4,text.heads=2"


def single_file(path, te, un, va, levels):
    sd = {}
    for k, v in te.state_dict().items():
        if k.endswith("position_ids"):
            continue
        sd["cond_stage_model.transformer." + k] = v.detach().half().contiguous()
    ucfg = make_unet.full_config(un)
    sd.update(make_unet.to_ldm(un.state_dict(), ucfg, "model.diffusion_model.", torch.float16))
    sd.update(make_vae.to_ldm(va.state_dict(), levels, "first_stage_model.", torch.float16))
    save_file(sd, path, metadata={"ldm.options": OPTIONS})
    # Read back through diffusers' own converters: same weights as the folder.
    conv = convert_ldm_unet_checkpoint(sd, ucfg)
    for k, ref in un.state_dict().items():
        assert torch.equal(conv[k].float(), ref.float()), k
    vsd = {k[len("first_stage_model."):]: v for k, v in sd.items() if k.startswith("first_stage_model.")}
    conv = convert_ldm_vae_checkpoint(vsd, dict(va.config))
    for k, ref in va.state_dict().items():
        assert torch.equal(conv[k].float(), ref.float()), k
    for k, ref in te.state_dict().items():
        if not k.endswith("position_ids"):
            assert torch.equal(sd["cond_stage_model.transformer." + k].float(), ref.float()), k


def save_pipe(pipe, folder, share_from=None, shared=("tokenizer",)):
    if os.path.exists(folder):
        shutil.rmtree(folder)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    pipe.to(torch.float32)
    # Parts identical to another pipeline's (the 2 MB CLIP vocabulary, shared
    # text encoder / VAE) are symlinks to one copy.
    if share_from:
        for part in shared:
            shutil.rmtree(os.path.join(folder, part))
            os.symlink(os.path.join("..", share_from, part), os.path.join(folder, part))
    for name in os.listdir(folder):  # fixed, sorted JSON for bit-identical regeneration
        cfg = os.path.join(folder, name, "config.json")
        if not os.path.isfile(cfg):
            cfg = os.path.join(folder, name, "scheduler_config.json")
        if os.path.isfile(cfg) and not os.path.islink(os.path.join(folder, name)):
            with open(cfg) as f:
                c = json.load(f)
            c.pop("_name_or_path", None)
            # As in the real SD1.5 / x4 repositories, the scheduler configs do
            # not name a timestep_spacing: each scheduler class uses its own
            # default (what the in-memory pipelines above did too).
            if name.endswith("scheduler"):
                c.pop("timestep_spacing", None)
            with open(cfg, "w") as f:
                json.dump(c, f, indent=2, sort_keys=True)


def inputs():
    rng = np.random.RandomState(7)
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([(xx * 4) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256], -1).astype(np.uint8)
    img = np.clip(img.astype(int) + rng.randint(-20, 20, img.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((H, W), np.uint8)
    mask[12:36, 20:52] = 255
    low = np.array(Image.fromarray(img).resize((16, 12), Image.BICUBIC))
    return Image.fromarray(img), Image.fromarray(mask), Image.fromarray(low)


SAMPLERS = {
    "euler": lambda c: EulerDiscreteScheduler.from_config(c),
    "euler_a": lambda c: EulerAncestralDiscreteScheduler.from_config(c),
    "dpmpp_2m_karras": lambda c: DPMSolverMultistepScheduler.from_config(c, use_karras_sigmas=True),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    tok_dir = os.path.join(OUT, "_tok")
    tok = make_text.write_clip_files(tok_dir, make_text.N_MERGES, "<|endoftext|>")
    tok.model_max_length = 77
    sched = DDIMScheduler(**{k: v for k, v in SD15_SCHED.items() if k != "skip_prk_steps"})
    cases = []
    init, mask, low = inputs()
    init.save(os.path.join(OUT, "init.png"))
    mask.save(os.path.join(OUT, "mask.png"))
    low.save(os.path.join(OUT, "lowres.png"))

    te = text_encoder(1)
    base = StableDiffusionPipeline(vae=vae(2), text_encoder=te, tokenizer=tok, unet=unet(3),
                                   scheduler=sched, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    save_pipe(base, os.path.join(OUT, "sd1"))
    single_file(os.path.join(OUT, "sd1.safetensors"), te, base.unet, base.vae, 4)
    inp = StableDiffusionInpaintPipeline(vae=base.vae, text_encoder=te, tokenizer=tok,
                                         unet=unet(4, in_channels=9), scheduler=sched,
                                         safety_checker=None, feature_extractor=None,
                                         requires_safety_checker=False)
    save_pipe(inp, os.path.join(OUT, "sd1_inpaint"), "sd1", ("tokenizer", "text_encoder", "vae"))
    single_file(os.path.join(OUT, "sd1_inpaint.safetensors"), te, inp.unet, inp.vae, 4)

    common = dict(prompt=PROMPT, negative_prompt=NEG, num_inference_steps=8, guidance_scale=7.5,
                  output_type="pil")
    cli_common = f"--prompt|{PROMPT}|--negative-prompt|{NEG}|--steps|8|--cfg-scale|7.5"
    for sname, make in SAMPLERS.items():
        seed = 1000 + len(cases)
        p = StableDiffusionPipeline(**{**base.components, "scheduler": make(sched.config)})
        img = p(**common, width=W, height=H, generator=torch.Generator("cpu").manual_seed(seed)).images[0]
        name = f"txt2img_{sname}"
        img.save(os.path.join(OUT, name + ".png"))
        cases.append(f"{name}|txt2img|sd1|{cli_common}|--width|{W}|--height|{H}|--sampler|{sname}|--seed|{seed}")

        seed = 1000 + len(cases)
        p = StableDiffusionImg2ImgPipeline(**{**base.components, "scheduler": make(sched.config)})
        img = p(**common, image=init, strength=0.75, generator=torch.Generator("cpu").manual_seed(seed)).images[0]
        name = f"img2img_{sname}"
        img.save(os.path.join(OUT, name + ".png"))
        cases.append(f"{name}|img2img|sd1|{cli_common}|--init|init.png|--strength|0.75|--sampler|{sname}|--seed|{seed}")

        for kind, comps in (("inpaint9", inp.components), ("inpaint4", base.components)):
            seed = 1000 + len(cases)
            p = StableDiffusionInpaintPipeline(**{**comps, "scheduler": make(sched.config)})
            img = p(**common, image=init, mask_image=mask, width=W, height=H, strength=1.0,
                    generator=torch.Generator("cpu").manual_seed(seed)).images[0]
            name = f"{kind}_{sname}"
            img.save(os.path.join(OUT, name + ".png"))
            model = "sd1_inpaint" if kind == "inpaint9" else "sd1"
            cases.append(f"{name}|inpaint|{model}|{cli_common}|--init|init.png|--mask|mask.png|--mask-blur|0"
                         f"|--strength|1|--sampler|{sname}|--seed|{seed}")

    # x4 upscaler: 16x12 -> 64x48, prompt-guided, noise level 20.
    te4 = te
    up = StableDiffusionUpscalePipeline(vae=vae(6, levels=3, scale=0.08333), text_encoder=te4, tokenizer=tok,
                                        unet=unet(7, x4=True), low_res_scheduler=DDPMScheduler(
                                            num_train_timesteps=1000, beta_schedule="scaled_linear",
                                            beta_start=0.0001, beta_end=0.02),
                                        scheduler=EulerDiscreteScheduler(**{
                                            **{k: v for k, v in SD15_SCHED.items()
                                               if k not in ("skip_prk_steps", "clip_sample",
                                                            "set_alpha_to_one")},
                                            "beta_start": 0.0001, "beta_end": 0.02,
                                            "prediction_type": "v_prediction"}),
                                        max_noise_level=350)
    save_pipe(up, os.path.join(OUT, "x4"), "sd1", ("tokenizer", "text_encoder"))
    single_file(os.path.join(OUT, "x4.safetensors"), te4, up.unet, up.vae, 3)
    seed = 1000 + len(cases)
    img = up(prompt=PROMPT, negative_prompt=NEG, image=low, num_inference_steps=8, guidance_scale=7.5,
             noise_level=20, generator=torch.Generator("cpu").manual_seed(seed)).images[0]
    img.save(os.path.join(OUT, "upscale_euler.png"))
    cases.append(f"upscale_euler|upscale|x4|{cli_common}|--init|lowres.png|--noise-level|20"
                 f"|--sampler|euler|--seed|{seed}")

    # SDXL (diffusers folder): two encoders, pooled + time ids, a second
    # tokenizer padding with "!"; without a negative prompt its conditioning
    # is zeros (force_zeros_for_empty_prompt).
    te1, te2, unx = sdxl_parts(8)
    tok2 = make_text.write_clip_files(os.path.join(OUT, "_tok2"), make_text.N_MERGES, "!")
    tok2.model_max_length = 77
    xl = StableDiffusionXLPipeline(vae=base.vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok,
                                   tokenizer_2=tok2, unet=unx, scheduler=sched)
    save_pipe(xl, os.path.join(OUT, "sdxl"), "sd1", ("tokenizer", "vae"))
    for f in ("vocab.json", "merges.txt"):  # same files as the first tokenizer
        os.remove(os.path.join(OUT, "sdxl", "tokenizer_2", f))
        os.symlink(os.path.join("..", "tokenizer", f), os.path.join(OUT, "sdxl", "tokenizer_2", f))
    for neg in (NEG, None):  # None: no negative prompt (the CLI's default)
        seed = 1000 + len(cases)
        p = StableDiffusionXLPipeline(**{**xl.components, "scheduler": EulerDiscreteScheduler.from_config(sched.config)})
        img = p(prompt=PROMPT, negative_prompt=neg, num_inference_steps=8, guidance_scale=7.5, width=W, height=H,
                generator=torch.Generator("cpu").manual_seed(seed)).images[0]
        name = "sdxl_txt2img_euler" + ("" if neg else "_noneg")
        img.save(os.path.join(OUT, name + ".png"))
        negarg = f"|--negative-prompt|{neg}" if neg else ""
        cases.append(f"{name}|txt2img|sdxl|--prompt|{PROMPT}{negarg}|--steps|8|--cfg-scale|7.5"
                     f"|--width|{W}|--height|{H}|--sampler|euler|--seed|{seed}")
    shutil.rmtree(os.path.join(OUT, "_tok2"))

    shutil.rmtree(tok_dir)
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(cases) + "\n")
    print(f"{len(cases)} cases written to {OUT}")


if __name__ == "__main__":
    main()
