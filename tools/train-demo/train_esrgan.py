#!/usr/bin/env python3
"""Trains the bundled demo ESRGAN-class upscaler, models/demo/ldm-demo-esrgan-x4.safetensors:
an SRVGGNetCompact (spandrel 0.4.2's class, the realesr-general-x4v3 architecture at
32 features and 8 body convs, PReLU, x4) on the demo's own synthetic scenes plus
generated textures, on the CPU, with fixed seeds.

Data: 300 scenes of one to three shapes (dataset.sample_multi_scene) and 100
textures (stripes, checkers, rings, gradients, polygons; `texture`), rendered at
256x256 with 4x supersampling and a box filter like dataset.render; the low-resolution
input is the 4x box downscale (dataset.downscale), as for the demo x4 upscaler's
held-out test (tests/golden/demo/x4, seed [SEED, 4242], never a training seed here).
Batches of 16 24x24 low-resolution crops (96x96 high-resolution): the 16 of 64 random
crops with the most contrast (standard deviation), as the plain backgrounds teach nothing;
MSE loss (L1 drove the net's residual to zero: on mostly flat crops its optimum is the
nearest-neighbour base), Adam 2e-3 with cosine decay, STEPS steps. Every 250 steps: PSNR
against PIL's bicubic on 25 validation scenes and textures of their own seed; the best
validated weights are the ones written.

Usage: nice /work/refvenv/bin/python tools/train-demo/train_esrgan.py [--steps N] [--out FILE]
One thread, niced; the committed model: 1500 steps, the time and the validation table in
models/demo/training-log.txt.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset as D  # noqa: E402
import models as M  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NF, NCONV, SCALE = 32, 8, 4
HR, LR = 256, 64


def texture(rng, size=HR):
    """A generated texture at size x size (uint8 RGB), drawn at 4x and box-filtered."""
    big = size * D.SUPERSAMPLE
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float64) / big
    cols = [np.array(c, np.float64) for c in rng.choice(list(D.BACKGROUNDS.values()), size=2, replace=False)]
    kind = rng.integers(0, 5)
    a = rng.uniform(0, np.pi)
    u = np.cos(a) * xx + np.sin(a) * yy
    f = rng.uniform(3, 14)
    if kind == 0:    # stripes
        t = (np.floor(u * f * 2) % 2)
    elif kind == 1:  # checkers, rotated
        v = -np.sin(a) * xx + np.cos(a) * yy
        t = (np.floor(u * f) + np.floor(v * f)) % 2
    elif kind == 2:  # rings
        cx, cy = rng.uniform(0.2, 0.8, size=2)
        t = np.floor(np.hypot(xx - cx, yy - cy) * f * 2) % 2
    elif kind == 3:  # smooth gradient with a soft wave
        t = 0.5 + 0.5 * np.sin(u * f * 1.5) * np.clip(xx + yy, 0, 1)
    else:            # random polygon on a background
        img = Image.new("RGB", (big, big), tuple(int(c) for c in cols[0]))
        from PIL import ImageDraw
        d = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(2, 6))):
            pts = [tuple(int(v) for v in rng.uniform(0, big, size=2)) for _ in range(int(rng.integers(3, 7)))]
            d.polygon(pts, fill=tuple(int(c) for c in rng.choice(list(D.BACKGROUNDS.values()))))
        return np.asarray(img.resize((size, size), Image.BOX))
    img = cols[0][None, None] * (1 - t[..., None]) + cols[1][None, None] * t[..., None]
    img = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    return np.asarray(img.resize((size, size), Image.BOX))


def make_set(seed, n_scenes, n_textures):
    rng = np.random.default_rng(seed)
    hr = [D.render(D.sample_multi_scene(rng), HR) for _ in range(n_scenes)]
    hr += [texture(rng) for _ in range(n_textures)]
    lr = [D.downscale(h, SCALE) for h in hr]
    to = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255.0
    return to(hr), to(lr), lr


def psnr(a, b):
    mse = ((a - b) ** 2).mean().item()
    return 10 * np.log10(1.0 / mse) if mse > 0 else 99.0


def evaluate(model, hr, lr, lr_u8):
    with torch.no_grad():
        out = torch.cat([model(lr[i:i + 8]) for i in range(0, len(lr), 8)]).clamp(0, 1)
    out = (out * 255).round() / 255
    bic = torch.from_numpy(np.stack([np.asarray(Image.fromarray(x).resize((HR, HR), Image.BICUBIC))
                                     for x in lr_u8])).permute(0, 3, 1, 2).float() / 255.0
    ours = np.mean([psnr(out[i], hr[i]) for i in range(len(hr))])
    base = np.mean([psnr(bic[i], hr[i]) for i in range(len(hr))])
    return ours, base


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "demo", "ldm-demo-esrgan-x4.safetensors"))
    ap.add_argument("--log", default=os.path.join(ROOT, "models", "demo", "training-log.txt"))
    args = ap.parse_args()
    torch.set_num_threads(1)  # two OpenMP threads on a shared machine: 3x the CPU per step (spin-waits)
    torch.manual_seed(M.SEED)
    t0 = time.time()
    hr, lr, _ = make_set([M.SEED, 9101], 300, 100)
    vhr, vlr, vlr_u8 = make_set([M.SEED, 9102], 20, 5)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=NF, num_conv=NCONV, upscale=SCALE)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps, eta_min=1e-5)
    rng = np.random.default_rng([M.SEED, 9103])
    crop, batch = 24, 16
    best, best_sd = -1e9, None
    meta = {"ldm.family": "srvgg", "ldm.description": "gimp-ldm demo x4 upscaler (SRVGGNetCompact, synthetic scenes)"}
    lines = ["esrgan demo: SRVGGNetCompact nf=%d convs=%d x%d, %d params, data %.0f s" %
             (NF, NCONV, SCALE, sum(p.numel() for p in model.parameters()), time.time() - t0)]
    print(lines[-1], flush=True)
    for step in range(1, args.steps + 1):
        idx = rng.integers(0, len(hr), size=4 * batch)
        ys = rng.integers(0, LR - crop + 1, size=4 * batch)
        xs = rng.integers(0, LR - crop + 1, size=4 * batch)
        contrast = np.array([lr[i, :, y:y + crop, x:x + crop].std().item() for i, y, x in zip(idx, ys, xs)])
        keep = np.argsort(-contrast, kind="stable")[:batch]
        idx, ys, xs = idx[keep], ys[keep], xs[keep]
        xb = torch.stack([lr[i, :, y:y + crop, x:x + crop] for i, y, x in zip(idx, ys, xs)])
        yb = torch.stack([hr[i, :, 4 * y:4 * (y + crop), 4 * x:4 * (x + crop)] for i, y, x in zip(idx, ys, xs)])
        loss = F.mse_loss(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == args.steps:
            ours, base = evaluate(model, vhr, vlr, vlr_u8)
            lines.append("esrgan demo step %d loss %.5f validation %.2f dB (bicubic %.2f dB, %+.2f) %.0f s" %
                         (step, loss.item(), ours, base, ours - base, time.time() - t0))
            print(lines[-1], flush=True)
            if ours > best:  # the best validated weights so far, written at once
                best, best_step = ours, step
                best_sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
                save_file(best_sd, args.out, metadata=meta)
    lines.append("esrgan demo: wrote %s (step %d, validation %.2f dB) after %d steps, %.1f min wall" %
                 (args.out, best_step, best, args.steps, (time.time() - t0) / 60))
    print(lines[-1], flush=True)
    with open(args.log, "a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
