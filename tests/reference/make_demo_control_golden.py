#!/usr/bin/env python3
"""Goldens for the demo scribble ControlNet's e2e test (tests/e2e/test_demo_control.sh),
made with diffusers from the committed models (models/demo/diffusers/ldm-demo and
models/demo/diffusers/ldm-demo-control-scribble):
  scribble_tl.png  scribble_br.png   hand-drawn-looking circles, dark strokes on white
                   paper (what a user sketches; `ldm --preprocess scribble` turns
                   them into white strokes on black), centred at (0.27, 0.27) and
                   (0.73, 0.73) of the 64x64 side, radius 0.2 of the side
  cn_tl.png        StableDiffusionControlNetPipeline: "a red circle", scribble_tl.png
                   preprocessed as ControlNet's scribble demos do (white where
                   min(R, G, B) < 127), 20 DDIM steps, guidance 2.5, seed CN_SEED
  cases.txt        name|prompt|seed|steps|cfg|scribble
Usage: /work/refvenv/bin/python tests/reference/make_demo_control_golden.py"""
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
from diffusers import ControlNetModel, DDIMScheduler, StableDiffusionControlNetPipeline  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
OUT = os.path.join(ROOT, "tests", "golden", "demo", "control")
DEMO = os.path.join(ROOT, "models", "demo", "diffusers")
STEPS, CFG, CN_SEED = 20, 2.5, 4100
PROMPT = "a red circle"


def sketch(fx, fy, r=0.2, size=64, seed=0):
    """A circle as a hand draws it: a slightly wavy outline that does not quite close,
    2-pixel dark strokes on white, binary."""
    rng = np.random.default_rng(seed)
    big = size * 4
    a = np.linspace(0.15, 2 * np.pi + 0.05, 60)
    rr = r * (1 + 0.05 * np.sin(2 * a + rng.uniform(0, 6)) + 0.03 * np.sin(3 * a + rng.uniform(0, 6)))
    pts = [((fx + rv * np.cos(t)) * big, (fy + rv * np.sin(t)) * big) for t, rv in zip(a, rr)]
    img = Image.new("L", (big, big), 255)
    ImageDraw.Draw(img).line(pts, fill=0, width=8, joint="curve")
    g = np.asarray(img.resize((size, size), Image.BOX)) >= 128
    g = np.where(g, 255, 20).astype(np.uint8)
    return Image.fromarray(np.repeat(g[..., None], 3, axis=2))


def scribble_pre(img):
    """ControlNet's scribble preprocessing (the engine's --preprocess scribble)."""
    a = np.asarray(img.convert("RGB"))
    w = (a.min(axis=2) < 127).astype(np.uint8) * 255
    return Image.fromarray(np.repeat(w[..., None], 3, axis=2))


def main():
    os.makedirs(OUT, exist_ok=True)
    tl, br = sketch(0.27, 0.27, seed=1), sketch(0.73, 0.73, seed=2)
    tl.save(os.path.join(OUT, "scribble_tl.png"))
    br.save(os.path.join(OUT, "scribble_br.png"))
    cn = ControlNetModel.from_pretrained(os.path.join(DEMO, "ldm-demo-control-scribble"), torch_dtype=torch.float32)
    pipe = StableDiffusionControlNetPipeline.from_pretrained(os.path.join(DEMO, "ldm-demo"), controlnet=cn,
                                                             torch_dtype=torch.float32, safety_checker=None,
                                                             requires_safety_checker=False)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    img = pipe(PROMPT, image=scribble_pre(tl), height=64, width=64, num_inference_steps=STEPS, guidance_scale=CFG,
               generator=torch.Generator().manual_seed(CN_SEED)).images[0]
    img.save(os.path.join(OUT, "cn_tl.png"))
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("cn_tl|%s|%d|%d|%g|scribble_tl.png\n" % (PROMPT, CN_SEED, STEPS, CFG))
    print("wrote", OUT)


if __name__ == "__main__":
    sys.exit(main())
