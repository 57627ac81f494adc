#!/usr/bin/env python3
"""Goldens for the demo-model e2e test (tests/e2e/test_demo.sh), made with
diffusers from the committed demo models (models/demo/diffusers/*):
  t2i_<i>.png          StableDiffusionPipeline output, 64x64, seed 1234 + i
  inpaint.png          StableDiffusionInpaintPipeline: "a green square" into
                       the bottom-right box of inpaint_init.png (inpaint_mask.png)
  x4/<i>_hr.png        10 held-out scenes rendered at 256x256 by the demo data
  x4/<i>_lr.png        generator, box-downscaled to 64x64,
  x4/<i>_bicubic.png   and PIL's bicubic 4x of the 64x64 (the baseline)
  x4/captions.txt      the caption of each scene
  x4/0_diffusers.png   StableDiffusionUpscalePipeline on scene 0, seed 1234
  cases.txt            name|prompt|seed|steps|cfg for the t2i goldens
Usage: /work/refvenv/bin/python tests/reference/make_demo_golden.py"""
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "train-demo"))
import dataset as D  # noqa: E402
import models as M  # noqa: E402
from diffusers import (StableDiffusionInpaintPipeline, StableDiffusionPipeline,  # noqa: E402
                       StableDiffusionUpscalePipeline)

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
OUT = os.path.join(ROOT, "tests", "golden", "demo")
DEMO = os.path.join(ROOT, "models", "demo", "diffusers")
# the models' recommended guidance scales (MODEL_CARD.md; tools/train-demo/validate.py)
STEPS, CFG, INPAINT_CFG = 20, 2.5, 5.0
T2I = ["a big red circle on a white background, top left", "a green square on a black background",
       "a big yellow star on a purple background, center"]


def main():
    os.makedirs(os.path.join(OUT, "x4"), exist_ok=True)
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(DEMO, "ldm-demo"), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    cases = []
    for i, p in enumerate(T2I):
        img = pipe(p, height=64, width=64, num_inference_steps=STEPS, guidance_scale=CFG,
                   generator=torch.Generator().manual_seed(1234 + i)).images[0]
        img.save(os.path.join(OUT, "t2i_%d.png" % i))
        cases.append("t2i_%d|%s|%d|%d|%g" % (i, p, 1234 + i, STEPS, CFG))
    # inpainting: a rendered scene, the bottom-right 24x24 box repainted
    scene = dict(shape="circle", colour="red", size="big", position="top left", background="white",
                 jitter=(0.0, 0.0), scale_jitter=1.0, tint=(0, 0, 0))
    init = D.render(scene, 64)
    Image.fromarray(init).save(os.path.join(OUT, "inpaint_init.png"))
    mask = np.zeros((64, 64), np.uint8)
    mask[32:56, 32:56] = 255
    Image.fromarray(mask).save(os.path.join(OUT, "inpaint_mask.png"))
    inp = StableDiffusionInpaintPipeline.from_pretrained(os.path.join(DEMO, "ldm-demo-inpaint"),
                                                         torch_dtype=torch.float32)
    inp.set_progress_bar_config(disable=True)
    img = inp("a green square", image=Image.fromarray(init), mask_image=Image.fromarray(mask), height=64,
              width=64, num_inference_steps=STEPS, guidance_scale=INPAINT_CFG, strength=1.0,
              generator=torch.Generator().manual_seed(77)).images[0]
    img.save(os.path.join(OUT, "inpaint.png"))
    cases.append("inpaint|a green square|77|%d|%g" % (STEPS, INPAINT_CFG))
    rng = np.random.default_rng([M.SEED, 4242])  # held out: not a training seed
    caps = []
    for i in range(10):
        sc = D.sample_multi_scene(rng)
        caps.append(D.caption(sc[0], rng))
        hr = D.render(sc, 256)
        lr = D.downscale(hr, 4)
        Image.fromarray(hr).save(os.path.join(OUT, "x4", "%d_hr.png" % i))
        Image.fromarray(lr).save(os.path.join(OUT, "x4", "%d_lr.png" % i))
        Image.fromarray(lr).resize((256, 256), Image.BICUBIC).save(os.path.join(OUT, "x4", "%d_bicubic.png" % i))
    up = StableDiffusionUpscalePipeline.from_pretrained(os.path.join(DEMO, "ldm-demo-x4"), torch_dtype=torch.float32)
    up.set_progress_bar_config(disable=True)
    img = up(prompt=caps[0], image=Image.open(os.path.join(OUT, "x4", "0_lr.png")), num_inference_steps=STEPS,
             guidance_scale=1.0, noise_level=20, generator=torch.Generator().manual_seed(1234)).images[0]
    img.save(os.path.join(OUT, "x4", "0_diffusers.png"))
    with open(os.path.join(OUT, "x4", "captions.txt"), "w") as f:
        f.write("\n".join(caps) + "\n")
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(cases) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
