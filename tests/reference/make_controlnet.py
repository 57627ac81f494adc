#!/usr/bin/env python3
"""Goldens for ControlNet (suite golden and e2e): tiny random-weight
ControlNetModels built with diffusers' own class (ControlNetModel.from_unet of
the tiny SD1 and SDXL UNets of make_pipeline.py, so they fit those pipelines),
saved in every layout people have, their down/mid residuals, and the images
diffusers' ControlNet pipelines make with them from torch.Generator('cpu')
seeds.

Layouts (tests/golden/controlnet/):
  sd1_a/                      diffusers ControlNetModel folder (config.json + weights)
  sd1_a.safetensors           the same weights as one diffusers-named file
  sd1_a_orig.safetensors      original layout (control_model.input_hint_block, zero_convs,
                              middle_block_out, ...), read back by diffusers' own
                              convert_controlnet_checkpoint into the same weights
  sd1_b_bare.safetensors      a second SD1 ControlNet, original layout without the
                              control_model. prefix (as the v1.1 fp16 files ship)
  sdxl_a/  sdxl_a.safetensors SDXL ControlNet (add embedding), diffusers layout
  sdxl_a_orig.safetensors     the same in the original layout (control_model. prefix, label_emb);
                              diffusers 0.31's convert_controlnet_checkpoint reads every key
                              back but the add embedding's four (it has no SDXL mapping), whose
                              names are make_unet's, checked against convert_ldm_unet_checkpoint
  *_io.safetensors            inputs and diffusers' residuals (down_0..down_N, mid)
  control.png control2.png    control images; cases.txt: name|command|model|cli args

Usage: /work/refvenv/bin/python tests/reference/make_controlnet.py [OUTDIR]
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from diffusers import (ControlNetModel, EulerDiscreteScheduler, StableDiffusionControlNetImg2ImgPipeline,
                       StableDiffusionControlNetInpaintPipeline, StableDiffusionControlNetPipeline,
                       StableDiffusionPipeline, StableDiffusionXLControlNetPipeline, StableDiffusionXLPipeline,
                       StableDiffusionInpaintPipeline)
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_unet  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
ROOT = os.path.dirname(os.path.dirname(HERE))
PIPE = os.path.join(ROOT, "tests", "golden", "pipeline")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "golden", "controlnet")
W, H = 64, 48
PROMPT = "a red circle on a blue background"
NEG = "blurry"
EMB = (4, 4, 8, 8)  # conditioning embedding widths (real ones: 16, 32, 96, 256): 3 stride-2 convs


def randomize(model, seed):
    """Random weights rounded to f16 (the stored dtype); the zero convs get
    random weights too, so every residual matters."""
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


def cn_ldm_key(k, cfg):
    """diffusers ControlNetModel key -> original key (the inverse of
    diffusers' convert_controlnet_checkpoint, checked against it)."""
    p = k.split(".")
    if p[0] == "controlnet_cond_embedding":
        if p[1] == "conv_in":
            return f"input_hint_block.0.{p[2]}"
        if p[1] == "conv_out":
            return f"input_hint_block.14.{p[2]}"
        return f"input_hint_block.{2 * (int(p[2]) + 1)}.{p[3]}"
    if p[0] == "controlnet_down_blocks":
        return f"zero_convs.{p[1]}.0.{p[2]}"
    if p[0] == "controlnet_mid_block":
        return f"middle_block_out.0.{p[1]}"
    return make_unet.ldm_key(k, cfg)


def save_layouts(cn, name, original=None):
    """Folder + single diffusers file (+ original layout with `original` prefix)."""
    folder = os.path.join(OUT, name)
    if os.path.exists(folder):
        shutil.rmtree(folder)
    cn.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    cn.to(torch.float32)
    cfgp = os.path.join(folder, "config.json")
    with open(cfgp) as f:
        c = json.load(f)
    c.pop("_name_or_path", None)
    with open(cfgp, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
    sd = {k: v.detach().half().contiguous() for k, v in cn.state_dict().items()}
    if original is None:
        save_file(sd, os.path.join(OUT, name + ".safetensors"))
        return
    ucfg = dict(make_unet.full_config(cn))
    ucfg["up_block_types"] = ["UpBlock2D"] * len(ucfg["down_block_types"])  # unused by the down path
    osd = {original + cn_ldm_key(k, ucfg): v for k, v in sd.items()}
    save_file(osd, os.path.join(OUT, name + ("_orig" if original else "_bare") + ".safetensors"))
    conv = convert_controlnet_checkpoint(osd, dict(cn.config))
    unread = set(sd) - set(conv)
    assert all(k.startswith("add_embedding.") for k in unread) and not set(conv) - set(sd), \
        sorted(set(conv) ^ set(sd))[:10]
    for k, ref in sd.items():
        assert k in unread or torch.equal(conv[k].float(), ref.float()), k


def residual_io(cn, seed, sdxl, scale):
    g = torch.Generator().manual_seed(seed)
    B, h, w = 2, H // 8, W // 8
    io = {"sample": torch.randn((B, 4, h, w), generator=g),
          "timestep": torch.tensor([801.0, 37.25]),
          "encoder_hidden_states": torch.randn((B, 77, cn.config.cross_attention_dim), generator=g),
          "controlnet_cond": torch.rand((B, 3, H, W), generator=g),
          "conditioning_scale": torch.tensor([scale])}
    kw = {}
    if sdxl:
        n_text = cn.config.projection_class_embeddings_input_dim - 6 * cn.config.addition_time_embed_dim
        io["text_embeds"] = torch.randn((B, n_text), generator=g)
        io["time_ids"] = torch.tensor([[48.0, 64.0, 0.0, 0.0, 48.0, 64.0], [96.0, 128.0, 8.0, 4.0, 48.0, 64.0]])
        kw["added_cond_kwargs"] = {"text_embeds": io["text_embeds"], "time_ids": io["time_ids"]}
    with torch.no_grad():
        down, mid = cn(io["sample"], io["timestep"], io["encoder_hidden_states"], controlnet_cond=io["controlnet_cond"],
                       conditioning_scale=scale, return_dict=False, **kw)
    for i, d in enumerate(down):
        io[f"down_{i}"] = d
    io["mid"] = mid
    return {k: v.contiguous() for k, v in io.items()}


def control_images():
    yy, xx = np.mgrid[0:H, 0:W]
    a = np.zeros((H, W, 3), np.uint8)  # white strokes on black: a circle and a bar
    a[((xx - 20) ** 2 + (yy - 16) ** 2 < 100) & ((xx - 20) ** 2 + (yy - 16) ** 2 > 49)] = 255
    a[30:34, 30:60] = 255
    b = np.stack([(xx * 4) % 256, (yy * 5) % 256, 255 - (xx * 3) % 256], -1).astype(np.uint8)  # a "depth" ramp
    return Image.fromarray(a), Image.fromarray(b)


def main():
    os.makedirs(OUT, exist_ok=True)
    base = StableDiffusionPipeline.from_pretrained(os.path.join(PIPE, "sd1"), torch_dtype=torch.float32,
                                                   safety_checker=None, requires_safety_checker=False)
    inp = StableDiffusionInpaintPipeline.from_pretrained(os.path.join(PIPE, "sd1_inpaint"), torch_dtype=torch.float32,
                                                         safety_checker=None, requires_safety_checker=False)
    xl = StableDiffusionXLPipeline.from_pretrained(os.path.join(PIPE, "sdxl"), torch_dtype=torch.float32)
    cn_a = randomize(ControlNetModel.from_unet(base.unet, conditioning_embedding_out_channels=EMB,
                                               load_weights_from_unet=False), 31)
    cn_b = randomize(ControlNetModel.from_unet(base.unet, conditioning_embedding_out_channels=EMB,
                                               load_weights_from_unet=False), 32)
    cn_x = randomize(ControlNetModel.from_unet(xl.unet, conditioning_embedding_out_channels=EMB,
                                               load_weights_from_unet=False), 33)
    save_layouts(cn_a, "sd1_a")
    save_layouts(cn_a, "sd1_a", original="control_model.")
    save_layouts(cn_b, "sd1_b", original="")
    shutil.rmtree(os.path.join(OUT, "sd1_b"))
    os.remove(os.path.join(OUT, "sd1_b.safetensors")) if os.path.exists(os.path.join(OUT, "sd1_b.safetensors")) else None
    save_layouts(cn_x, "sdxl_a")
    save_layouts(cn_x, "sdxl_a", original="control_model.")
    for name, cn, sdxl, scale in (("sd1_a", cn_a, False, 0.8), ("sd1_b", cn_b, False, 1.0), ("sdxl_a", cn_x, True, 0.6)):
        save_file(residual_io(cn, 41, sdxl, scale), os.path.join(OUT, name + "_io.safetensors"))

    ca, cb = control_images()
    ca.save(os.path.join(OUT, "control.png"))
    cb.save(os.path.join(OUT, "control2.png"))
    init = Image.open(os.path.join(PIPE, "init.png")).convert("RGB")
    mask = Image.open(os.path.join(PIPE, "mask.png"))
    cases = []
    common = dict(prompt=PROMPT, negative_prompt=NEG, num_inference_steps=8, guidance_scale=7.5)
    cli = f"--prompt|{PROMPT}|--negative-prompt|{NEG}|--steps|8|--cfg-scale|7.5|--sampler|euler"
    one = "|--controlnet|sd1_a|--control|control.png|--control-scale|0.9"
    two = (one + "|--controlnet|sd1_b_bare.safetensors|--control|control2.png|--control-scale|0.6"
           "|--control-start|0.25|--control-end|0.75")

    def sched(p):
        return EulerDiscreteScheduler.from_config(p.scheduler.config)

    for n, nets, imgs, kw, arg in (
            ("one", cn_a, ca, dict(controlnet_conditioning_scale=0.9), one),
            ("two", [cn_a, cn_b], [ca, cb], dict(controlnet_conditioning_scale=[0.9, 0.6],
                                                 control_guidance_start=[0.0, 0.25],
                                                 control_guidance_end=[1.0, 0.75]), two)):
        seed = 2000 + len(cases)
        p = StableDiffusionControlNetPipeline(**{**base.components, "controlnet": nets})
        p.scheduler = sched(base)
        img = p(**common, image=imgs, width=W, height=H, generator=torch.Generator("cpu").manual_seed(seed), **kw).images[0]
        img.save(os.path.join(OUT, f"cn_txt2img_{n}.png"))
        cases.append(f"cn_txt2img_{n}|txt2img|sd1|{cli}|--width|{W}|--height|{H}|--seed|{seed}{arg}")

        seed = 2000 + len(cases)
        p = StableDiffusionControlNetImg2ImgPipeline(**{**base.components, "controlnet": nets})
        p.scheduler = sched(base)
        img = p(**common, image=init, control_image=imgs, strength=0.75,
                generator=torch.Generator("cpu").manual_seed(seed), **kw).images[0]
        img.save(os.path.join(OUT, f"cn_img2img_{n}.png"))
        cases.append(f"cn_img2img_{n}|img2img|sd1|{cli}|--init|init.png|--strength|0.75|--seed|{seed}{arg}")

        for kind, comps, model in (("inpaint9", inp.components, "sd1_inpaint"), ("inpaint4", base.components, "sd1")):
            seed = 2000 + len(cases)
            p = StableDiffusionControlNetInpaintPipeline(**{**comps, "controlnet": nets})
            p.scheduler = sched(base)
            img = p(**common, image=init, mask_image=mask, control_image=imgs, width=W, height=H, strength=1.0,
                    generator=torch.Generator("cpu").manual_seed(seed), **kw).images[0]
            img.save(os.path.join(OUT, f"cn_{kind}_{n}.png"))
            cases.append(f"cn_{kind}_{n}|inpaint|{model}|{cli}|--init|init.png|--mask|mask.png|--mask-blur|0"
                         f"|--strength|1|--seed|{seed}{arg}")

    # The inpaint ControlNet convention: the init image with masked pixels -1.
    seed = 2000 + len(cases)
    cond = torch.from_numpy(np.array(init).astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    m = torch.from_numpy(np.array(mask).astype(np.float32) / 255.0)[None, None]
    cond = torch.where(m.expand_as(cond) > 0.5, torch.full_like(cond, -1.0), cond)
    p = StableDiffusionControlNetInpaintPipeline(**{**base.components, "controlnet": cn_a})
    p.scheduler = sched(base)
    img = p(**common, image=init, mask_image=mask, control_image=cond, width=W, height=H, strength=1.0,
            generator=torch.Generator("cpu").manual_seed(seed), controlnet_conditioning_scale=1.0).images[0]
    img.save(os.path.join(OUT, "cn_inpaint4_inpaintcond.png"))
    cases.append(f"cn_inpaint4_inpaintcond|inpaint|sd1|{cli}|--init|init.png|--mask|mask.png|--mask-blur|0"
                 f"|--strength|1|--seed|{seed}|--controlnet|sd1_a_orig.safetensors|--control|init.png"
                 f"|--preprocess|inpaint")

    # A control image of another size (diffusers resizes it with PIL's LANCZOS)
    # and one made by the canny preprocessor (OpenCV's, on the init image).
    import cv2
    seed = 2000 + len(cases)
    big = ca.resize((96, 72), Image.NEAREST)
    big.save(os.path.join(OUT, "control_96x72.png"))
    p = StableDiffusionControlNetPipeline(**{**base.components, "controlnet": cn_a})
    p.scheduler = sched(base)
    img = p(**common, image=big, width=W, height=H, controlnet_conditioning_scale=1.0,
            generator=torch.Generator("cpu").manual_seed(seed)).images[0]
    img.save(os.path.join(OUT, "cn_txt2img_resized.png"))
    cases.append(f"cn_txt2img_resized|txt2img|sd1|{cli}|--width|{W}|--height|{H}|--seed|{seed}"
                 f"|--controlnet|sd1_a|--control|control_96x72.png")
    seed = 2000 + len(cases)
    gray = cv2.cvtColor(np.array(init), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, 60, 140)
    canny = Image.fromarray(np.stack([edges] * 3, -1))
    p = StableDiffusionControlNetImg2ImgPipeline(**{**base.components, "controlnet": cn_a})
    p.scheduler = sched(base)
    img = p(**common, image=init, control_image=canny, strength=0.6, controlnet_conditioning_scale=1.1,
            generator=torch.Generator("cpu").manual_seed(seed)).images[0]
    img.save(os.path.join(OUT, "cn_img2img_canny.png"))
    cases.append(f"cn_img2img_canny|img2img|sd1|{cli}|--init|init.png|--strength|0.6|--seed|{seed}"
                 f"|--controlnet|sd1_a|--control|init.png|--control-scale|1.1|--preprocess|canny|--canny|60,140")

    # SDXL: the ControlNet gets the add embedding's text_embeds and time ids too.
    seed = 2000 + len(cases)
    p = StableDiffusionXLControlNetPipeline(**{**xl.components, "controlnet": cn_x})
    p.scheduler = sched(xl)
    img = p(**common, image=ca, width=W, height=H, controlnet_conditioning_scale=0.8,
            generator=torch.Generator("cpu").manual_seed(seed)).images[0]
    img.save(os.path.join(OUT, "cn_sdxl_txt2img_one.png"))
    cases.append(f"cn_sdxl_txt2img_one|txt2img|sdxl|{cli}|--width|{W}|--height|{H}|--seed|{seed}"
                 f"|--controlnet|sdxl_a.safetensors|--control|control.png|--control-scale|0.8")

    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(cases) + "\n")
    print(f"{len(cases)} cases written to {OUT}")


if __name__ == "__main__":
    main()
