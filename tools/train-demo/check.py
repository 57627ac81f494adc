"""Check that diffusers loads and runs the demo models and that they draw what they are asked.

  1. txt2img: StableDiffusionPipeline from the diffusers folder AND from the
     single file (from_single_file with the folder as local config); same seed ->
     same image. For 12 prompts, the mean colour of the region where the prompt
     puts the shape, and of the opposite corner (background), must be the
     named colours (nearest of the 9 named colours). A random-weight UNet is
     scored the same way and must fail.
  2. inpainting: "a green square" into a grid-aligned box of a rendered scene;
     the box must become mostly green, the rest must stay (mean |diff| small).
  3. x4: 10 held-out scenes rendered at 256x256 and box-downscaled to 64x64;
     the upscaler's PSNR against the 256x256 original vs bicubic's.

Usage: check.py [t2i] [inpaint] [x4] [--steps N] [--out DIR]   (prints tables)
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dataset as D  # noqa: E402
import models as M  # noqa: E402
from diffusers import (StableDiffusionInpaintPipeline, StableDiffusionPipeline,  # noqa: E402
                       StableDiffusionUpscalePipeline, UNet2DConditionModel)
from diffusers.utils import logging as dlogging  # noqa: E402

dlogging.set_verbosity_error()
REPO = os.path.dirname(os.path.dirname(HERE))
DEMO = os.environ.get("DEMO_OUT", os.path.join(REPO, "models", "demo"))
SEED = 1234

PROMPTS = [
    ("red", "circle", "white", "top left"),
    ("green", "square", "black", "bottom right"),
    ("blue", "circle", "yellow", "center"),
    ("yellow", "star", "purple", "top right"),
    ("white", "square", "blue", "bottom left"),
    ("black", "circle", "orange", "right"),
    ("orange", "triangle", "gray", "left"),
    ("purple", "square", "green", "top"),
    ("red", "square", "blue", "bottom"),
    ("yellow", "circle", "black", "top"),
    ("green", "circle", "white", "center"),
    ("blue", "square", "orange", "bottom left"),
]
OPPOSITE = {"top left": "bottom right", "top right": "bottom left", "bottom left": "top right",
            "bottom right": "top left", "center": "top left", "left": "bottom right",
            "right": "top left", "top": "bottom left", "bottom": "top right"}


def prompt_text(c, s, bg, pos):
    art = "an" if bg[0] in "aeiou" else "a"
    return "a big %s %s on %s %s background, %s" % (c, s, art, bg, pos)


def region_mean(img, pos, half=0.07, corner=False):
    """Mean RGB of a box around a named position (corner=True: the image corner instead)."""
    h = img.shape[0]
    fx, fy = D.POSITIONS[pos]
    if corner:   # push towards the corner, away from any shape
        fx = 0.08 if fx < 0.5 else (0.92 if fx > 0.5 else 0.5)
        fy = 0.08 if fy < 0.5 else (0.92 if fy > 0.5 else 0.5)
    x0, x1 = int((fx - half) * h), int(math.ceil((fx + half) * h))
    y0, y1 = int((fy - half) * h), int(math.ceil((fy + half) * h))
    return img[y0:y1, x0:x1].reshape(-1, 3).mean(0)


def to_u8(pil):
    return np.asarray(pil.convert("RGB"), dtype=np.uint8)


def score_t2i(pipe, steps, guidance, label, out_dir=None):
    ok_shape = ok_bg = ok_both = 0
    rows = []
    for i, (c, s, bg, pos) in enumerate(PROMPTS):
        p = prompt_text(c, s, bg, pos)
        g = torch.Generator().manual_seed(SEED + i)
        img = to_u8(pipe(p, height=64, width=64, num_inference_steps=steps, guidance_scale=guidance,
                         generator=g).images[0])
        if out_dir:
            Image.fromarray(img).save(os.path.join(out_dir, "%s_%02d.png" % (label, i)))
        m = region_mean(img, pos)
        b = region_mean(img, OPPOSITE[pos], corner=True)
        got, gotbg = D.nearest_colour(m), D.nearest_colour(b)
        ok_shape += got == c
        ok_bg += gotbg == bg
        ok_both += got == c and gotbg == bg
        rows.append((p, c, got, tuple(int(v) for v in m), bg, gotbg))
    print("\n[%s] txt2img %dx%d, %d DDIM steps, guidance %.1f, seeds %d.." % (
        label, 64, 64, steps, guidance, SEED))
    print("%-58s %-7s %-7s %-15s %-7s %-7s" % ("prompt", "want", "got", "region RGB", "bg want", "bg got"))
    for r in rows:
        print("%-58s %-7s %-7s %-15s %-7s %-7s %s" % (r[0], r[1], r[2], r[3], r[4], r[5],
                                                    "ok" if r[1] == r[2] and r[4] == r[5] else "MISS"))
    print("[%s] shape colour %d/%d, background %d/%d, both %d/%d" % (
        label, ok_shape, len(PROMPTS), ok_bg, len(PROMPTS), ok_both, len(PROMPTS)))
    return ok_both


def check_t2i(args):
    folder = os.path.join(DEMO, "diffusers", "ldm-demo")
    single = os.path.join(DEMO, "ldm-demo.safetensors")
    t = time.time()
    pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    print("loaded diffusers folder %s (%.1fs)" % (folder, time.time() - t))
    pipe1 = StableDiffusionPipeline.from_single_file(single, config=folder, torch_dtype=torch.float32,
                                                     local_files_only=True)
    pipe1.set_progress_bar_config(disable=True)
    p = prompt_text(*PROMPTS[0])
    a = np.asarray(pipe(p, height=64, width=64, num_inference_steps=args.steps, guidance_scale=args.guidance,
                        generator=torch.Generator().manual_seed(SEED), output_type="np").images[0])
    b = np.asarray(pipe1(p, height=64, width=64, num_inference_steps=args.steps,
                         guidance_scale=args.guidance, generator=torch.Generator().manual_seed(SEED),
                         output_type="np").images[0])
    print("from_single_file(%s): image max |diff| vs folder = %g" % (
        os.path.basename(single), float(np.abs(a - b).max())))
    ok = score_t2i(pipe, args.steps, args.guidance, "demo", args.out)
    rnd = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    torch.manual_seed(0)
    rnd.unet = UNet2DConditionModel.from_config(pipe.unet.config)
    rnd.set_progress_bar_config(disable=True)
    rok = score_t2i(rnd, args.steps, args.guidance, "random-unet", None)
    return ok >= 10 and rok <= 3      # both colours right, as tests/e2e/test_demo.sh counts


def check_inpaint(args):
    folder = os.path.join(DEMO, "diffusers", "ldm-demo-inpaint")
    single = os.path.join(DEMO, "ldm-demo-inpaint.safetensors")
    pipe = StableDiffusionInpaintPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe1 = StableDiffusionInpaintPipeline.from_single_file(single, config=folder, torch_dtype=torch.float32,
                                                            local_files_only=True)
    pipe1.set_progress_bar_config(disable=True)
    cases = [
        ({"shape": "circle", "colour": "yellow", "size": "big", "position": "top left",
          "background": "blue"}, (32, 32, 64, 64)),
        ({"shape": "star", "colour": "red", "size": "big", "position": "bottom left",
          "background": "white"}, (32, 0, 64, 32)),
        ({"shape": "square", "colour": "purple", "size": "big", "position": "right",
          "background": "gray"}, (0, 8, 32, 40)),
        ({"shape": "circle", "colour": "white", "size": "small", "position": "center",
          "background": "black"}, (40, 40, 64, 64)),
    ]
    print("\n[inpaint] prompt 'a green square', 64x64, %d DDIM steps, guidance %.1f" % (
        args.steps, args.inpaint_guidance))
    print("%-44s %-16s %-10s %-12s %s" % ("scene", "box x0,y0,x1,y1", "green in", "|diff| out", ""))
    allok = True
    for i, (sc, box) in enumerate(cases):
        sc = dict(sc, jitter=(0.0, 0.0), scale_jitter=1.0, tint=(0, 0, 0))
        img = D.render(sc, 64)
        mask = np.zeros((64, 64), np.uint8)
        x0, y0, x1, y1 = box
        mask[y0:y1, x0:x1] = 255
        res = []
        for pp in (pipe, pipe1):
            out = pp("a green square", image=Image.fromarray(img), mask_image=Image.fromarray(mask),
                     height=64, width=64, num_inference_steps=args.steps, guidance_scale=args.inpaint_guidance,
                     generator=torch.Generator().manual_seed(SEED + i)).images[0]
            res.append(to_u8(out))
        out = res[0]
        if args.out:
            Image.fromarray(np.concatenate([img, np.repeat(mask[..., None], 3, 2), out], 1)).save(
                os.path.join(args.out, "inpaint_%d.png" % i))
        inside = out[y0:y1, x0:x1].reshape(-1, 3)
        green = np.mean([D.nearest_colour(p) == "green" for p in inside])
        m = mask == 0
        diff = float(np.abs(out[m].astype(float) - img[m].astype(float)).mean())
        same = int(np.abs(res[0].astype(int) - res[1].astype(int)).max())
        ok = green >= 0.5
        allok = allok and ok
        print("%-44s %-16s %-10.2f %-12.1f %s (single-file max |diff| %d)" % (
            "%s %s %s on %s, %s" % (sc["size"], sc["colour"], sc["shape"], sc["background"],
                                    sc["position"]), "%d,%d,%d,%d" % box, green, diff,
            "ok" if ok else "MISS", same))
    return allok


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0 ** 2 / max(mse, 1e-10))


def check_x4(args):
    folder = os.path.join(DEMO, "diffusers", "ldm-demo-x4")
    single = os.path.join(DEMO, "ldm-demo-x4.safetensors")
    pipe = StableDiffusionUpscalePipeline.from_pretrained(folder, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe1 = StableDiffusionUpscalePipeline.from_single_file(single, config=folder, torch_dtype=torch.float32,
                                                            local_files_only=True)
    pipe1.set_progress_bar_config(disable=True)
    rng = np.random.default_rng([M.SEED, 999])      # held out: not a training seed
    print("\n[x4] 10 held-out scenes, 256x256 -> box 64x64 -> x4; %d DDIM steps, noise_level %d, "
          "guidance %.1f" % (args.x4_steps, args.noise_level, args.x4_guidance))
    print("%-4s %-50s %-10s %-10s" % ("#", "caption", "bicubic", "x4 demo"))
    pb, px = [], []
    for i in range(10):
        sc = D.sample_multi_scene(rng)
        cap = D.caption(sc[0], rng)
        hr = D.render(sc, 256)
        lr = D.downscale(hr, 4)
        bic = np.asarray(Image.fromarray(lr).resize((256, 256), Image.BICUBIC))
        kw = dict(prompt=cap, image=Image.fromarray(lr), num_inference_steps=args.x4_steps,
                  guidance_scale=args.x4_guidance, noise_level=args.noise_level)
        up = to_u8(pipe(generator=torch.Generator().manual_seed(SEED + i), **kw).images[0])
        if i == 0:
            up1 = to_u8(pipe1(generator=torch.Generator().manual_seed(SEED + i), **kw).images[0])
            print("from_single_file: image max |diff| vs folder = %d" % int(np.abs(
                up.astype(int) - up1.astype(int)).max()))
        if args.out:
            Image.fromarray(np.concatenate([hr, bic, up], 1)).save(os.path.join(args.out, "x4_%d.png" % i))
        pb.append(psnr(bic, hr))
        px.append(psnr(up, hr))
        print("%-4d %-50s %-10.2f %-10.2f" % (i, cap, pb[-1], px[-1]))
    print("[x4] mean PSNR: bicubic %.2f dB, demo x4 %.2f dB, gain %+.2f dB" % (
        np.mean(pb), np.mean(px), np.mean(px) - np.mean(pb)))
    return np.mean(px) - np.mean(pb) >= 1.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="*", default=["t2i", "inpaint", "x4"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=2.5)
    ap.add_argument("--inpaint-guidance", type=float, default=5.0)
    ap.add_argument("--x4-steps", type=int, default=20)
    ap.add_argument("--x4-guidance", type=float, default=1.0)
    ap.add_argument("--noise-level", type=int, default=20)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    results = {}
    for w in args.what:
        results[w] = {"t2i": check_t2i, "inpaint": check_inpaint, "x4": check_x4}[w](args)
    print("\nsummary: " + ", ".join("%s %s" % (k, "PASS" if v else "FAIL") for k, v in results.items()))
    sys.exit(0 if all(results.values()) else 1)


if __name__ == "__main__":
    main()
