"""Train the demo scribble ControlNet (models/demo/ldm-demo-control-scribble) on the CPU.

A diffusers ControlNetModel made with ControlNetModel.from_unet from the committed
text-to-image demo (models/demo/diffusers/ldm-demo: its UNet's down and middle
blocks copied, zero convolutions at zero), with a small hint block for 64x64
control images (conditioning_embedding_out_channels HINT: three stride-2 convs,
64 -> 8, the 8x8 latent). The UNet, VAE and text encoder stay frozen; only the
ControlNet trains, on the demo data set's scenes (dataset.py) with

* the control image: a scribble of the scene's shape, white strokes on black as
  `ldm --preprocess scribble` makes them from a dark sketch on white paper: the
  shape's outline, wobbled, with a jittered stroke width, sometimes left open
  (`scribble`);
* half of the scenes moved off the nine named positions (anywhere in 0.17..0.83
  of the side), so the shape must go where the strokes are, not to the nearest
  position the UNet knows;
* captions that mostly leave the position out (POSITION_SHARE of them name it,
  10 % are empty for classifier-free guidance): the position has to come from
  the control;
* the text-to-image stage's loss settings (train.py: v weighting, 30 % of the
  samples at t >= 500, half the batch pure noise at t >= 900 with the x0 target,
  the shape's cells weighted 1 + 4): the first sampler steps decide where the
  shape goes, and pure-noise inputs leave the ControlNet the only source of it.

Latents are computed once with the frozen VAE (work/control_data_N.pt). The loop
is train.py's (AdamW, no warm-up, cosine decay, gradient clipping, EMA 0.99,
checkpoint every 100 steps in work/control.pt, resumable, seeded per step; loss in
models/demo/training-log.txt).

  train_control.py train --minutes 38 [--steps N] [--batch 32] [--lr 5e-4]
  train_control.py probe [--ckpt]     centroid figures of the current weights
                                      (EMA of work/control.pt, or work/control_final)
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dataset as D  # noqa: E402
import models as M  # noqa: E402
import train as T  # noqa: E402  (sets the thread count from DEMO_THREADS)
from diffusers import (AutoencoderKL, ControlNetModel, DDIMScheduler,  # noqa: E402
                       StableDiffusionControlNetPipeline, UNet2DConditionModel)
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: E402

BASE = os.path.join(T.REPO, "models", "demo", "diffusers", "ldm-demo")
HINT = (8, 16, 32, 32)     # hint block widths (SD's: 16, 32, 96, 256): 64x64 control -> 8x8
POSITION_SHARE = 0.2       # captions that name the position
FREE_SHARE = 0.5           # scenes placed anywhere, not at a named position
SEED = M.SEED + 500


def load_base():
    kw = dict(torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(BASE, subfolder="vae", **kw)
    te = CLIPTextModel.from_pretrained(BASE, subfolder="text_encoder", **kw)
    unet = UNet2DConditionModel.from_pretrained(BASE, subfolder="unet", **kw)
    tok = CLIPTokenizer.from_pretrained(BASE, subfolder="tokenizer")
    for m in (vae, te, unet):
        m.requires_grad_(False).eval()
    return vae, te, unet, tok


# ------------------------------------------------------------------ data

def free_scene(rng):
    """A demo scene, half of the time moved anywhere in 0.17..0.83 of the side (the
    position word then the nearest named one)."""
    s = D.sample_scene(rng)
    if rng.random() < FREE_SHARE:
        cx, cy = (float(v) for v in rng.uniform(0.17, 0.83, size=2))
        names = list(D.POSITIONS)
        s["position"] = names[int(np.argmin([(D.POSITIONS[p][0] - cx) ** 2 + (D.POSITIONS[p][1] - cy) ** 2
                                             for p in names]))]
        s["centre"] = (cx, cy)
        s["radius"] = D.SIZES[s["size"]] * s["scale_jitter"]
    return s


def geometry(scene):
    """Centre and radius of the scene's shape, as fractions of the side (render's)."""
    if "centre" in scene:
        return scene["centre"][0], scene["centre"][1], scene["radius"]
    fx, fy = D.POSITIONS[scene["position"]]
    return fx + scene["jitter"][0], fy + scene["jitter"][1], D.SIZES[scene["size"]] * scene["scale_jitter"]


def outline(shape, cx, cy, r):
    """The shape's outline as a closed polygon (draw_shape's geometry), about 48 points."""
    if shape == "circle":
        a = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1)
    if shape == "square":
        h = 0.86 * r
        pts = [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    elif shape == "triangle":
        pts = [(cx + r * np.cos(a), cy + 1.1 * r * np.sin(a) + 0.15 * r)
               for a in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6)]
    else:
        pts = []
        for k in range(10):
            a = -np.pi / 2 + k * np.pi / 5
            rr = 1.1 * r if k % 2 == 0 else 0.45 * r
            pts.append((cx + rr * np.cos(a), cy + rr * np.sin(a) + 0.08 * r))
    pts = np.array(pts)
    per = 48 // len(pts)
    out = []
    for i in range(len(pts)):
        p, q = pts[i], pts[(i + 1) % len(pts)]
        for k in range(per):
            out.append(p + (q - p) * k / per)
    return np.array(out)


def scribble(scene, rng, size=64):
    """The control image: the shape's outline as a hand might draw it, white strokes
    on black, binary (as the engine's scribble preprocessor gives them), uint8
    [size, size, 3]. The outline is displaced along smooth random waves (up to
    about 15 % of the radius), shifted and scaled a little, drawn with a stroke
    of 1-3.5 pixels, and 20 % of the time left open by up to a sixth."""
    cx, cy, r = geometry(scene)
    big = size * D.SUPERSAMPLE
    cx += rng.normal(0, 0.01)
    cy += rng.normal(0, 0.01)
    r *= rng.uniform(0.9, 1.1)
    pts = outline(scene["shape"], cx, cy, r)
    n = len(pts)
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    wob = np.zeros((n, 2))
    for k in (1, 2, 3):
        amp = rng.uniform(0, 0.06) * r / k
        wob[:, 0] += amp * np.sin(k * th + rng.uniform(0, 2 * np.pi))
        wob[:, 1] += amp * np.sin(k * th + rng.uniform(0, 2 * np.pi))
    pts = (pts + wob) * big
    if rng.random() < 0.2:
        gap = int(rng.integers(1, n // 6 + 1))
        start = int(rng.integers(0, n))
        keep = [(start + gap + i) % n for i in range(n - gap + 1)]
        line = [tuple(pts[i]) for i in keep]
    else:
        line = [tuple(p) for p in pts] + [tuple(pts[0])]
    img = Image.new("L", (big, big), 0)
    w = int(round(rng.uniform(1.0, 3.5) * D.SUPERSAMPLE))
    ImageDraw.Draw(img).line(line, fill=255, width=w, joint="curve")
    a = np.asarray(img.resize((size, size), Image.BOX)) >= 128
    return np.repeat((a * 255).astype(np.uint8)[..., None], 3, axis=2)


def control_caption(scene, rng):
    """dataset.caption, with the position cut off unless rng says keep it."""
    text = D.caption(scene, rng)
    if rng.random() >= POSITION_SHARE:
        pos = scene["position"]
        for tail in (", " + pos, " in the " + pos, " at the " + pos):
            if text.endswith(tail):
                text = text[:-len(tail)]
                break
    return text


def control_data(vae, n):
    cache = os.path.join(T.WORK, "control_data_%d.pt" % n)
    if os.path.exists(cache):
        return torch.load(cache, weights_only=False)
    rng = np.random.default_rng([SEED, 1])
    scenes = [free_scene(rng) for _ in range(n)]
    imgs = np.stack([D.render(s, M.IMAGE_SIZE) for s in scenes])
    mu, sd = T.encode_all(vae, imgs, M.SD1_SCALE)
    data = {"mu": mu, "sd": sd, "scenes": scenes}
    os.makedirs(T.WORK, exist_ok=True)
    torch.save(data, cache)
    T.log("control: encoded %d scenes, latent std %.3f" % (n, mu.std().item()))
    return data


def make_controlnet(unet):
    torch.manual_seed(SEED)
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=HINT)


def stage_train(args):
    vae, te, unet, tok = load_base()
    data = control_data(vae, args.data)
    del vae
    tok = T.TokenCache(tok)
    cn = make_controlnet(unet)
    sched = T.t2i_scheduler()
    N = len(data["scenes"])
    cover = T.shape_cover(data["scenes"])
    T.log("control: ControlNet %d parameters (hint block %d), UNet %d frozen" % (
        M.nparams(cn), M.nparams(cn.controlnet_cond_embedding), M.nparams(unet)))

    def loss_fn(step):
        rng = np.random.default_rng([SEED, 2, step])
        idx = rng.integers(0, N, size=args.batch)
        caps = [control_caption(data["scenes"][i], rng) if rng.random() > 0.1 else "" for i in idx]
        ctrl = np.stack([scribble(data["scenes"][i], rng) for i in idx])
        ctrl = torch.from_numpy(ctrl).permute(0, 3, 1, 2).float() / 255.0   # 0..1 as the pipelines give it
        g = torch.Generator().manual_seed(SEED * 7 + step)
        it = torch.from_numpy(idx)
        z = data["mu"][it] + data["sd"][it] * torch.randn(data["mu"][it].shape, generator=g)
        noise = torch.randn(z.shape, generator=g)
        t = torch.randint(0, 1000, (args.batch,), generator=g)
        t = torch.where(torch.rand(args.batch, generator=g) < args.high_t,
                        torch.randint(500, 1000, (args.batch,), generator=g), t)
        noisy, target, t = T.pure_top(sched, z, noise, t, args.pure_top, g)
        with torch.no_grad():
            states = te(tok(caps))[0]
        down, mid = cn(noisy, t, states, controlnet_cond=ctrl, return_dict=False)
        pred = unet(noisy, t, states, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid).sample
        w = T.snr_weights(sched, t, False, "v")
        return (w * T.region_loss(pred, target, cover[it], args.region_weight)).mean()

    T.train_loop("control", [cn], list(cn.parameters()), loss_fn, args.steps, args.lr, warmup=1,
                 ema_decay=0.99, minutes=args.minutes)
    cn.save_pretrained(os.path.join(T.WORK, "control_final"))


# ------------------------------------------------------------------ probe

def probe_scribble(cx, cy, r=0.2, size=64):
    """A plain circle scribble (white on black) at (cx, cy) (fractions of the side)."""
    big = size * D.SUPERSAMPLE
    pts = outline("circle", cx, cy, r) * big
    img = Image.new("L", (big, big), 0)
    ImageDraw.Draw(img).line([tuple(p) for p in pts] + [tuple(pts[0])], fill=255, width=2 * D.SUPERSAMPLE)
    a = np.asarray(img.resize((size, size), Image.BOX)) >= 128
    return Image.fromarray(np.repeat((a * 255).astype(np.uint8)[..., None], 3, axis=2))


def centroid(img, colour):
    """Centroid (x, y in pixels) of the pixels nearest `colour` among the named colours,
    and their count."""
    a = np.asarray(img.convert("RGB"), dtype=np.float64)
    names = list(D.BACKGROUNDS)
    ref = np.array([D.BACKGROUNDS[n] for n in names], dtype=np.float64)
    d = ((a[:, :, None, :] - ref[None, None]) ** 2).sum(-1)
    sel = d.argmin(-1) == names.index(colour)
    if not sel.any():
        return None, 0
    ys, xs = np.nonzero(sel)
    return (xs.mean() + 0.5, ys.mean() + 0.5), int(sel.sum())


def stage_probe(args):
    vae, te, unet, tok = load_base()
    cn = make_controlnet(unet)
    final = os.path.join(T.WORK, "control_final")
    if args.folder:
        cn = ControlNetModel.from_pretrained(args.folder, torch_dtype=torch.float32)
        src = args.folder
    elif os.path.exists(os.path.join(T.WORK, "control.pt")) and not os.path.exists(final):
        st = torch.load(os.path.join(T.WORK, "control.pt"), weights_only=False)
        cn.load_state_dict(st["ema"][0])
        src = "work/control.pt step %d (EMA)" % st["step"]
    else:
        cn = ControlNetModel.from_pretrained(final)
        src = "work/control_final"
    sched = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                          beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                          steps_offset=1, prediction_type="epsilon")
    pipe = StableDiffusionControlNetPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, controlnet=cn,
                                             scheduler=sched, safety_checker=None, feature_extractor=None,
                                             requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    out = args.out
    if out:
        os.makedirs(out, exist_ok=True)
    print("probe of %s, prompt %r, %d seeds, guidance %g" % (src, args.prompt, args.seeds, args.cfg))
    colour = args.prompt.split()[1]
    res = {}
    for label, (fx, fy) in (("top-left", (0.27, 0.27)), ("bottom-right", (0.73, 0.73))):
        ctrl = probe_scribble(fx, fy)
        for use in (True, False):
            ds = []
            for k in range(args.seeds):
                g = torch.Generator().manual_seed(args.seed0 + k)
                kw = dict(prompt=args.prompt, num_inference_steps=20, guidance_scale=args.cfg, width=64, height=64,
                          generator=g, image=ctrl, controlnet_conditioning_scale=1.0 if use else 0.0)
                img = pipe(**kw).images[0]
                c, n = centroid(img, colour)
                d = float(np.hypot(c[0] - fx * 64, c[1] - fy * 64)) if c else 99.0
                ds.append(d)
                if out:
                    img.save(os.path.join(out, "%s-%s-%d.png" % (label, "cn" if use else "plain", k)))
            res[(label, use)] = ds
            print("  %-12s %-10s distances %s  mean %.1f  within 8 px: %d/%d" % (
                label, "control" if use else "no control", " ".join("%.1f" % d for d in ds),
                np.mean(ds), sum(d <= 8 for d in ds), len(ds)), flush=True)
    if out:
        probe_scribble(0.27, 0.27).save(os.path.join(out, "scribble-tl.png"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["train", "probe"])
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--minutes", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--data", type=int, default=3000, help="number of training scenes")
    ap.add_argument("--high-t", type=float, default=0.3)
    ap.add_argument("--pure-top", type=float, default=0.5)
    ap.add_argument("--region-weight", type=float, default=4.0)
    ap.add_argument("--prompt", default="a red circle")
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--seed0", type=int, default=100)
    ap.add_argument("--cfg", type=float, default=2.5)
    ap.add_argument("--folder", default="", help="probe: a ControlNet folder")
    ap.add_argument("--out", default="", help="probe: save the pictures here")
    args = ap.parse_args()
    if args.stage == "probe":
        stage_probe(args)
        return
    t0 = time.time()
    T.log("=== control: steps %d minutes %g batch %d lr %g data %d seed %d torch %s threads %d" % (
        args.steps, args.minutes, args.batch, args.lr, args.data, SEED, torch.__version__,
        torch.get_num_threads()))
    stage_train(args)
    T.log("=== control: finished, wall %.1f min, process CPU %.1f min" % (
        (time.time() - t0) / 60, time.process_time() / 60))


if __name__ == "__main__":
    main()
