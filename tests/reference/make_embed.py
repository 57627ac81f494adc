#!/usr/bin/env python3
"""Goldens for textual-inversion embeddings (engine/text/text.c): tiny random
AUTOMATIC1111-format embeddings (emb_params, string_to_param.* converted to
safetensors, SDXL clip_l + clip_g; one and several vectors) for the tiny SD1,
SD2 and SDXL models of make_pipeline.py / make_text.py, and the prompt
conditioning diffusers makes after load_textual_inversion (encode_prompt:
prompt and negative prompt, SDXL's pooled embeddings), plus one txt2img
image with an embedding and a LoRA (tests/golden/lora/sd1_kohya at 0.8,
fused as in make_lora.py).

Writes tests/golden/embed/:
  <name>.safetensors              the embeddings
  <family>_cond.safetensors       prompt_embeds, negative_prompt_embeds
                                  (+ pooled_prompt_embeds, negative_pooled_prompt_embeds)
  prompts.txt                     family|prompt|negative prompt
  txt2img_lora_embed.png          StableDiffusionPipeline (tests/golden/pipeline/sd1, Euler, 8 steps,
                                  CFG 7.5, 64x48, seed 1101)

Usage: /work/refvenv/bin/python tests/reference/make_embed.py [OUTDIR]
"""
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel, CLIPTokenizer
from diffusers import (AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, StableDiffusionPipeline,
                       StableDiffusionXLPipeline, UNet2DConditionModel)

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
G = os.path.join(ROOT, "tests", "golden")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(G, "embed")
f32 = torch.float32

PROMPTS = {
    "sd1": ("a sd1_style photo of a red circle, sd1_one", "blurry, sd1_one"),
    "sd2": ("a sd2_style photo of a red circle", "blurry sd2_style"),
    "sdxl": ("a sdxl_style photo of a red circle", "blurry, sdxl_style"),
}


def rand(seed, *shape, scale=0.5):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def sd1():
    return StableDiffusionPipeline.from_pretrained(os.path.join(G, "pipeline", "sd1"), torch_dtype=f32,
                                                   safety_checker=None, requires_safety_checker=False)


def sd2():
    unet = UNet2DConditionModel.from_pretrained(os.path.join(G, "unet", "sd2"), subfolder="unet", torch_dtype=f32)
    if unet.config.sample_size is None:
        unet.register_to_config(sample_size=64)
    te = CLIPTextModel.from_pretrained(os.path.join(G, "text", "sd2"), subfolder="text_encoder", torch_dtype=f32)
    tok = CLIPTokenizer.from_pretrained(os.path.join(G, "text", "sd2"), subfolder="tokenizer")
    vae = AutoencoderKL.from_pretrained(os.path.join(G, "pipeline", "sd1"), subfolder="vae")  # not run
    return StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=DDIMScheduler(),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def sdxl():
    return StableDiffusionXLPipeline.from_pretrained(os.path.join(G, "pipeline", "sdxl"), torch_dtype=f32)


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = []
    # SD1: a 3-vector emb_params (f32) and a 1-vector string_to_param (f16)
    p = sd1()
    d = p.text_encoder.config.hidden_size
    save_file({"emb_params": rand(1, 3, d)}, os.path.join(OUT, "sd1_style.safetensors"))
    save_file({"string_to_param.*": rand(2, 1, d).half()}, os.path.join(OUT, "sd1_one.safetensors"))
    for name in ("sd1_style", "sd1_one"):
        sd = load_file(os.path.join(OUT, name + ".safetensors"))
        p.load_textual_inversion(next(iter(sd.values())).float(), token=name)
    pr, ng = PROMPTS["sd1"]
    c, u = p.encode_prompt(pr, "cpu", 1, True, negative_prompt=ng)
    save_file({"prompt_embeds": c.contiguous(), "negative_prompt_embeds": u.contiguous()},
              os.path.join(OUT, "sd1_cond.safetensors"))
    lines.append(f"sd1|{pr}|{ng}")
    # SD2: 2 vectors, emb_params
    p = sd2()
    d = p.text_encoder.config.hidden_size
    save_file({"emb_params": rand(3, 2, d)}, os.path.join(OUT, "sd2_style.safetensors"))
    p.load_textual_inversion(rand(3, 2, d), token="sd2_style")
    pr, ng = PROMPTS["sd2"]
    c, u = p.encode_prompt(pr, "cpu", 1, True, negative_prompt=ng)
    save_file({"prompt_embeds": c.contiguous(), "negative_prompt_embeds": u.contiguous()},
              os.path.join(OUT, "sd2_cond.safetensors"))
    lines.append(f"sd2|{pr}|{ng}")
    # SDXL: clip_l + clip_g, 2 vectors
    p = sdxl()
    l, g = rand(4, 2, p.text_encoder.config.hidden_size), rand(5, 2, p.text_encoder_2.config.hidden_size)
    save_file({"clip_l": l.half(), "clip_g": g.half()}, os.path.join(OUT, "sdxl_style.safetensors"))
    p.load_textual_inversion(l.half().float(), token="sdxl_style", text_encoder=p.text_encoder, tokenizer=p.tokenizer)
    p.load_textual_inversion(g.half().float(), token="sdxl_style", text_encoder=p.text_encoder_2,
                             tokenizer=p.tokenizer_2)
    pr, ng = PROMPTS["sdxl"]
    c, u, pc, pu = p.encode_prompt(pr, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=True,
                                   negative_prompt=ng)
    save_file({"prompt_embeds": c.contiguous(), "negative_prompt_embeds": u.contiguous(),
               "pooled_prompt_embeds": pc.contiguous(), "negative_pooled_prompt_embeds": pu.contiguous()},
              os.path.join(OUT, "sdxl_cond.safetensors"))
    lines.append(f"sdxl|{pr}|{ng}")
    with open(os.path.join(OUT, "prompts.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    # txt2img with a LoRA and an embedding
    p = sd1()
    p.load_textual_inversion(load_file(os.path.join(OUT, "sd1_style.safetensors"))["emb_params"], token="sd1_style")
    p.load_lora_weights(os.path.join(G, "lora", "sd1_kohya.safetensors"), adapter_name="k")
    p.fuse_lora(lora_scale=0.8, adapter_names=["k"])
    p.unload_lora_weights()
    p.scheduler = EulerDiscreteScheduler.from_config(p.scheduler.config)
    img = p(prompt="a sd1_style photo of a red circle", negative_prompt="blurry", num_inference_steps=8,
            guidance_scale=7.5, width=64, height=48, generator=torch.Generator("cpu").manual_seed(1101)).images[0]
    img.save(os.path.join(OUT, "txt2img_lora_embed.png"))
    print("written", OUT)


if __name__ == "__main__":
    main()
