"""Train the gimp-ldm demo models on synthetic shapes, on the CPU, in stages.

Stages (each resumable from work/<stage>.pt, each seeded per step so a resumed
run follows the same data):
  vae      AutoencoderKL, 8x down, 4 latent channels; latents rescaled to SD1's 0.18215
  t2i      CLIP text encoder + SD1-style UNet, epsilon, scaled_linear 0.00085..0.012
  inpaint  9-channel UNet initialised from t2i (text encoder frozen), random masks
  x4vae    AutoencoderKL, 4x down; latents rescaled to the x4 upscaler's 0.08333
  x4       x4-upscaler UNet (7 channels, class-embedded noise level), v-prediction,
           with its own SD2-style (gelu) text encoder
  vaedec, x4vaedec   decoder-only fine-tuning of a finished VAE (latent space
           unchanged, so it runs beside the diffusion stage using it)

Usage: train.py STAGE --steps N [--batch B] [--lr LR]
Loss curves go to models/demo/training-log.txt.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dataset as D  # noqa: E402
import models as M  # noqa: E402
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextModel  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
WORK = os.environ.get("DEMO_WORK", os.path.join(HERE, "work"))
LOG = os.environ.get("DEMO_LOG", os.path.join(REPO, "models", "demo", "training-log.txt"))
SEED = M.SEED
SMOKE = int(os.environ.get("DEMO_SMOKE", "0"))  # >0: tiny data sets for a quick try


def nsz(n):
    return min(n, SMOKE) if SMOKE else n


def log(msg):
    line = time.strftime("%H:%M:%S ") + msg
    print(line, flush=True)
    with open(LOG, "a") as f:
        f.write(line + "\n")


def t2i_scheduler():
    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", prediction_type="epsilon",
                         clip_sample=False)


def x4_scheduler():
    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02,
                         beta_schedule="scaled_linear", prediction_type="v_prediction",
                         clip_sample=False)


def x4_low_res_scheduler():
    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02,
                         beta_schedule="scaled_linear")


def to_tensor(imgs_u8):
    """uint8 [N, H, W, 3] -> float [-1, 1] [N, 3, H, W]."""
    return torch.from_numpy(imgs_u8).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class Ema:
    def __init__(self, modules, decay):
        self.decay = decay
        self.shadow = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]

    @torch.no_grad()
    def update(self, modules, step):
        d = min(self.decay, (1 + step) / (10 + step))
        for sh, m in zip(self.shadow, modules):
            for k, v in m.state_dict().items():
                if v.dtype.is_floating_point:
                    sh[k].mul_(d).add_(v.detach(), alpha=1 - d)
                else:
                    sh[k].copy_(v)


def train_loop(stage, modules, trainable, loss_fn, steps, lr, warmup=100, ema_decay=0.999,
               ckpt_every=100, log_every=25, minutes=0.0):
    """Generic resumable AdamW loop with warmup + cosine decay and EMA of `modules`.

    With minutes > 0 the step count is fixed after 20 timed steps so that the
    stage fits the time budget; the count is logged (rerun with --steps N to
    reproduce the same run)."""
    os.makedirs(WORK, exist_ok=True)
    ckpt = os.path.join(WORK, stage + ".pt")
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=1e-2, betas=(0.9, 0.99))
    ema = Ema(modules, ema_decay)
    start = 0
    if os.path.exists(ckpt):
        st = torch.load(ckpt, weights_only=False)
        for m, sd in zip(modules, st["models"]):
            m.load_state_dict(sd)
        opt.load_state_dict(st["opt"])
        ema.shadow = st["ema"]
        start = st["step"]
        steps = st.get("steps", steps)
        minutes = 0.0
        log("%s: resumed at step %d of %d" % (stage, start, steps))
    else:
        log("%s: start, %d steps, lr %g, params %s" % (
            stage, steps, lr, ", ".join(str(M.nparams(m)) for m in modules)))
    t0 = time.time()
    acc, nacc = 0.0, 0
    step = start
    while step < steps:
        if minutes and step == start + 20:
            rate = (time.time() - t0) / 20
            steps = max(step + 1, int(minutes * 60 / rate))
            log("%s: %.2f s/step, step count fixed at %d for %.0f min" % (stage, rate, steps, minutes))
        f = (step + 1) / warmup if step < warmup else \
            0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
        for g in opt.param_groups:
            g["lr"] = lr * max(f, 0.02)
        loss = loss_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        ema.update(modules, step)
        acc += loss.item()
        nacc += 1
        if (step + 1) % log_every == 0 or step + 1 == steps:
            log("%s step %5d loss %.5f lr %.2e %.2fs/step" % (
                stage, step + 1, acc / nacc, opt.param_groups[0]["lr"],
                (time.time() - t0) / (step + 1 - start)))
            acc, nacc = 0.0, 0
        if (step + 1) % ckpt_every == 0 or step + 1 == steps:
            torch.save({"models": [m.state_dict() for m in modules], "opt": opt.state_dict(),
                        "ema": ema.shadow, "step": step + 1, "steps": steps}, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
        step += 1
    log("%s: done in %.1f min this run" % (stage, (time.time() - t0) / 60))
    for m, sd in zip(modules, ema.shadow):
        m.load_state_dict(sd)
    return modules


# ---------------------------------------------------------------- VAE stages

def rescale_vae(vae, latents_std, target_std):
    """Reparametrise the latent space z' = k z so that its std is target_std.

    quant_conv's mean rows scale by k, its log-variance rows shift by 2 ln k;
    post_quant_conv's input weights divide by k: the decoder's output is unchanged."""
    k = target_std / latents_std
    with torch.no_grad():
        qc = vae.quant_conv
        C = qc.weight.shape[0] // 2
        qc.weight[:C] *= k
        qc.bias[:C] *= k
        qc.bias[C:] += 2 * math.log(k)
        vae.post_quant_conv.weight *= 1.0 / k
    return k


def warm_start_x4_vae(vae):
    """Initialise the 4x VAE from the trained 8x one, level by level (one level less).

    Encoder levels 0-2 and the decoder's last three levels have the same shapes;
    only a starting point, the stage trains everything."""
    if os.path.exists(os.path.join(WORK, "vae_final")):
        src = AutoencoderKL.from_pretrained(os.path.join(WORK, "vae_final")).state_dict()
    else:       # the 8x VAE is still training: start from its latest EMA weights
        src = torch.load(os.path.join(WORK, "vae.pt"), weights_only=False)["ema"][0]
    dst = vae.state_dict()
    n = 0
    for k in dst:
        sk = k
        if k.startswith("decoder.up_blocks."):
            i = int(k.split(".")[2])
            sk = "decoder.up_blocks.%d.%s" % (i + 1, k.split(".", 3)[3])
        if sk in src and src[sk].shape == dst[k].shape:
            dst[k] = src[sk].clone()
            n += 1
    vae.load_state_dict(dst)
    log("x4vae: %d of %d tensors initialised from the 8x VAE" % (n, len(dst)))


def vae_data(x4):
    if x4:
        rng = np.random.default_rng([SEED, 11])
        big = [D.render(D.sample_multi_scene(rng), 256) for _ in range(300)]
        small, _, _ = D.make_dataset(1500, 64, SEED + 12)
        return big, list(small)
    imgs, _, _ = D.make_dataset(3000, 64, SEED + 1)
    return [], list(imgs)


def stage_vae(args, x4=False):
    stage = "x4vae" if x4 else "vae"
    torch.manual_seed(SEED)
    vae = M.make_vae(x4)
    if x4 and not os.path.exists(os.path.join(WORK, stage + ".pt")) and (
            os.path.exists(os.path.join(WORK, "vae_final")) or
            os.path.exists(os.path.join(WORK, "vae.pt"))):
        warm_start_x4_vae(vae)
    big, small = vae_data(x4)
    crop = 32

    def batch(step):
        rng = np.random.default_rng([SEED, 100 + x4, step])
        out = []
        for b in range(args.batch):
            src = big[rng.integers(len(big))] if (big and rng.random() < 0.5) else \
                small[rng.integers(len(small))]
            n = src.shape[0] - crop
            y, x = rng.integers(0, n + 1, size=2)
            out.append(src[y:y + crop, x:x + crop])
        return to_tensor(np.stack(out))

    def loss_fn(step):
        x = batch(step)
        post = vae.encode(x).latent_dist
        g = torch.Generator().manual_seed(SEED * 7 + step)
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        kl = post.kl().mean() / z[0].numel()
        return F.l1_loss(rec, x) + F.mse_loss(rec, x) + 1e-4 * kl

    train_loop(stage, [vae], list(vae.parameters()), loss_fn, args.steps, args.lr, minutes=args.minutes,
               ema_decay=0.995)
    # measure latent std on full images and rescale to the family's scaling factor
    eval_imgs = small[:256] if not x4 else [b[:64, :64] for b in big[:128]] + small[:128]
    with torch.no_grad():
        x = to_tensor(np.stack(eval_imgs))
        z = torch.cat([vae.encode(x[i:i + 32]).latent_dist.mean for i in range(0, len(x), 32)])
        rec = torch.cat([vae.decode(z[i:i + 32]).sample for i in range(0, len(z), 32)])
        psnr = 10 * math.log10(4.0 / F.mse_loss(rec.clamp(-1, 1), x).item())
    scale = M.X4_SCALE if x4 else M.SD1_SCALE
    k = rescale_vae(vae, z.std().item(), 1.0 / scale)
    log("%s: reconstruction PSNR %.2f dB on %d images; latent std %.4f, rescaled by %.4f to std %.3f "
        "(scaling_factor %g)" % (stage, psnr, len(x), z.std().item(), k, 1 / scale, scale))
    vae.save_pretrained(os.path.join(WORK, stage + "_final"))


def stage_decoder(args, x4=False):
    """Fine-tune only the decoder (and post_quant_conv) of a finished VAE.

    The encoder and so the latent space stay fixed, so this runs in parallel
    with the diffusion stage that uses the same latents."""
    src = "x4vae" if x4 else "vae"
    stage = src + "dec"
    vae = AutoencoderKL.from_pretrained(os.path.join(WORK, src + "_final"))
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    big, small = vae_data(x4)
    crop = 32

    def loss_fn(step):
        rng = np.random.default_rng([SEED, 150 + x4, step])
        out = []
        for b in range(args.batch):
            s = big[rng.integers(len(big))] if (big and rng.random() < 0.5) else \
                small[rng.integers(len(small))]
            y, x = rng.integers(0, s.shape[0] - crop + 1, size=2)
            out.append(s[y:y + crop, x:x + crop])
        x = to_tensor(np.stack(out))
        with torch.no_grad():
            post = vae.encode(x).latent_dist
            g = torch.Generator().manual_seed(SEED * 19 + step)
            z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        return F.l1_loss(rec, x) + F.mse_loss(rec, x)

    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    train_loop(stage, [vae], params, loss_fn, args.steps, args.lr, minutes=args.minutes,
               warmup=20, ema_decay=0.99)
    eval_imgs = small[:256] if not x4 else [b[:64, :64] for b in big[:128]] + small[:128]
    with torch.no_grad():
        x = to_tensor(np.stack(eval_imgs))
        rec = torch.cat([vae.decode(vae.encode(x[i:i + 32]).latent_dist.mean).sample
                         for i in range(0, len(x), 32)])
        psnr = 10 * math.log10(4.0 / F.mse_loss(rec.clamp(-1, 1), x).item())
    log("%s: reconstruction PSNR %.2f dB on %d images after decoder fine-tuning" % (
        stage, psnr, len(x)))
    vae.save_pretrained(os.path.join(WORK, stage + "_final"))


# ---------------------------------------------------------- diffusion stages

class TokenCache:
    def __init__(self, tok):
        self.tok, self.cache = tok, {}

    def __call__(self, caps):
        out = []
        for c in caps:
            if c not in self.cache:
                self.cache[c] = self.tok(c, padding="max_length", max_length=77,
                                         truncation=True).input_ids
            out.append(self.cache[c])
        return torch.tensor(out)


def encode_all(vae, imgs, scale, bs=32):
    with torch.no_grad():
        mu, sd = [], []
        for i in range(0, len(imgs), bs):
            post = vae.encode(to_tensor(imgs[i:i + bs])).latent_dist
            mu.append(post.mean * scale)
            sd.append(post.std * scale)
    return torch.cat(mu), torch.cat(sd)


def snr_weights(sched, t, v_pred):
    ac = sched.alphas_cumprod[t]
    snr = ac / (1 - ac)
    w = torch.clamp(snr, max=5.0)
    return w / (snr + 1) if v_pred else w / snr


def t2i_data(vae):
    cache = os.path.join(WORK, "t2i_data.pt")
    if os.path.exists(cache):
        return torch.load(cache, weights_only=False)
    imgs, _, scenes = D.make_dataset(nsz(6000), 64, SEED + 2)
    mu, sd = encode_all(vae, imgs, M.SD1_SCALE)
    data = {"mu": mu, "sd": sd, "scenes": scenes}
    torch.save(data, cache)
    log("t2i: encoded %d images, latent std %.3f" % (len(imgs), mu.std().item()))
    return data


def stage_t2i(args):
    vae = AutoencoderKL.from_pretrained(os.path.join(WORK, "vae_final"))
    data = t2i_data(vae)
    del vae
    tok = TokenCache(M.make_tokenizer(WORK))
    torch.manual_seed(SEED + 3)
    te, unet = M.make_text_encoder(), M.make_unet()
    sched = t2i_scheduler()
    N = len(data["scenes"])

    def loss_fn(step):
        rng = np.random.default_rng([SEED, 200, step])
        idx = rng.integers(0, N, size=args.batch)
        caps = [D.caption(data["scenes"][i], rng) if rng.random() > 0.1 else "" for i in idx]
        g = torch.Generator().manual_seed(SEED * 11 + step)
        it = torch.from_numpy(idx)
        z = data["mu"][it] + data["sd"][it] * torch.randn(data["mu"][it].shape, generator=g)
        noise = torch.randn(z.shape, generator=g)
        t = torch.randint(0, 1000, (args.batch,), generator=g)
        noisy = sched.add_noise(z, noise, t)
        pred = unet(noisy, t, te(tok(caps))[0]).sample
        w = snr_weights(sched, t, False)
        return (w * ((pred - noise) ** 2).mean(dim=(1, 2, 3))).mean()

    train_loop("t2i", [te, unet], list(te.parameters()) + list(unet.parameters()), loss_fn,
               args.steps, args.lr, minutes=args.minutes, ema_decay=0.99)
    te.save_pretrained(os.path.join(WORK, "t2i_final", "text_encoder"))
    unet.save_pretrained(os.path.join(WORK, "t2i_final", "unet"))


def box_mask(rng, scene, size=64, cell=8):
    """A grid-aligned rectangular mask (1 = repaint): around the shape, random, or all."""
    r = rng.random()
    n = size // cell
    m = np.zeros((size, size), np.float32)
    if r < 0.6 and scene is not None:
        fx, fy = D.POSITIONS[scene["position"]]
        rad = D.SIZES[scene["size"]] * 1.25
        x0 = int(np.floor((fx - rad) * n - rng.integers(0, 2)))
        x1 = int(np.ceil((fx + rad) * n + rng.integers(0, 2)))
        y0 = int(np.floor((fy - rad) * n - rng.integers(0, 2)))
        y1 = int(np.ceil((fy + rad) * n + rng.integers(0, 2)))
    elif r < 0.88:
        w, h = rng.integers(2, n, size=2)
        x0, y0 = rng.integers(0, n - w + 1), rng.integers(0, n - h + 1)
        x1, y1 = x0 + w, y0 + h
    else:
        x0, y0, x1, y1 = 0, 0, n, n
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(n, x1), min(n, y1)
    m[y0 * cell:y1 * cell, x0 * cell:x1 * cell] = 1.0
    return m


def inpaint_data(vae):
    cache = os.path.join(WORK, "inpaint_data.pt")
    if os.path.exists(cache):
        return torch.load(cache, weights_only=False)
    rng = np.random.default_rng([SEED, 21])
    N = nsz(4000)
    imgs = np.empty((N, 64, 64, 3), np.uint8)
    masks = np.empty((N, 64, 64), np.float32)
    scenes = []
    for i in range(N):
        s = D.sample_scene(rng)
        m = box_mask(rng, s)
        extra = []
        if rng.random() < 0.35:        # a distractor outside the mask, not in the caption
            e = D.sample_scene(rng)
            fx, fy = D.POSITIONS[e["position"]]
            if m[int(fy * 64), int(fx * 64)] < 0.5 and e["colour"] != s["background"]:
                e["background"] = s["background"]
                extra = [e]
        imgs[i] = D.render([s] + extra, 64)
        masks[i] = m
        scenes.append(s)
    x = to_tensor(imgs)
    mk = torch.from_numpy(masks)[:, None]
    with torch.no_grad():
        mu, sd = encode_all(vae, imgs, M.SD1_SCALE)
        mmu = []
        for i in range(0, N, 32):
            mmu.append(vae.encode(x[i:i + 32] * (mk[i:i + 32] < 0.5)).latent_dist.mode() * M.SD1_SCALE)
        mmu = torch.cat(mmu)
    lat_mask = F.interpolate(mk, size=(8, 8))
    data = {"mu": mu, "sd": sd, "masked": mmu, "mask": lat_mask, "scenes": scenes}
    torch.save(data, cache)
    log("inpaint: encoded %d images with masks (mean masked fraction %.2f)" % (N, masks.mean()))
    return data


def stage_inpaint(args):
    vae = AutoencoderKL.from_pretrained(os.path.join(WORK, "vae_final"))
    data = inpaint_data(vae)
    del vae
    tok = TokenCache(M.make_tokenizer(WORK))
    te = CLIPTextModel.from_pretrained(os.path.join(WORK, "t2i_final", "text_encoder"))
    te.requires_grad_(False)
    base = UNet2DConditionModel.from_pretrained(os.path.join(WORK, "t2i_final", "unet"))
    unet = M.make_unet(9)
    sd = base.state_dict()
    w = torch.zeros_like(unet.conv_in.weight)
    w[:, :4] = sd["conv_in.weight"]
    sd["conv_in.weight"] = w
    unet.load_state_dict(sd)
    sched = t2i_scheduler()
    N = len(data["scenes"])

    def loss_fn(step):
        rng = np.random.default_rng([SEED, 300, step])
        idx = rng.integers(0, N, size=args.batch)
        caps = [D.caption(data["scenes"][i], rng) if rng.random() > 0.1 else "" for i in idx]
        g = torch.Generator().manual_seed(SEED * 13 + step)
        it = torch.from_numpy(idx)
        z = data["mu"][it] + data["sd"][it] * torch.randn(data["mu"][it].shape, generator=g)
        noise = torch.randn(z.shape, generator=g)
        t = torch.randint(0, 1000, (args.batch,), generator=g)
        noisy = sched.add_noise(z, noise, t)
        with torch.no_grad():
            ctx = te(tok(caps))[0]
        inp = torch.cat([noisy, data["mask"][it], data["masked"][it]], dim=1)
        pred = unet(inp, t, ctx).sample
        w = snr_weights(sched, t, False)
        return (w * ((pred - noise) ** 2).mean(dim=(1, 2, 3))).mean()

    train_loop("inpaint", [unet], list(unet.parameters()), loss_fn, args.steps, args.lr, minutes=args.minutes,
               warmup=50, ema_decay=0.99)
    unet.save_pretrained(os.path.join(WORK, "inpaint_final", "unet"))


def x4_pairs(n, seed, crop=32):
    """n (HR crop x crop, caption) pairs: half from 64-px scenes, half from 256-px scenes.

    Crops start on multiples of 4, so the box-downscaled crop is the crop of the
    box-downscaled image (the network is convolutional: trained on crops, run
    on whole images)."""
    rng = np.random.default_rng([seed])
    hr, caps = [], []
    big = small = None
    for i in range(n):
        if i % 2 == 0:
            if i % 4 == 0:
                s = D.sample_scene(rng)
                small = D.render(s, 64)
                smallcap = D.caption(s, rng)
            y, x = rng.integers(0, (64 - crop) // 4 + 1, size=2) * 4
            hr.append(small[y:y + crop, x:x + crop])
            caps.append(smallcap)
        else:
            if i % 8 == 1:
                ms = D.sample_multi_scene(rng)
                big = D.render(ms, 256)
                bigcap = D.caption(ms[0], rng)
            y, x = rng.integers(0, (256 - crop) // 4 + 1, size=2) * 4
            hr.append(big[y:y + crop, x:x + crop])
            caps.append(bigcap)
    hr = np.stack(hr)
    lr = np.stack([D.downscale(h, 4) for h in hr])
    return hr, lr, caps


def x4_data(vae):
    cache = os.path.join(WORK, "x4_data.pt")
    if os.path.exists(cache):
        return torch.load(cache, weights_only=False)
    hr, lr, caps = x4_pairs(nsz(8000), SEED + 31)
    mu, sd = encode_all(vae, hr, M.X4_SCALE)
    data = {"mu": mu, "sd": sd, "lr": to_tensor(lr), "caps": caps}
    torch.save(data, cache)
    log("x4: encoded %d HR crops, latent std %.3f" % (len(hr), mu.std().item()))
    return data


def stage_x4(args):
    vae = AutoencoderKL.from_pretrained(os.path.join(WORK, "x4vae_final"))
    data = x4_data(vae)
    del vae
    tok = TokenCache(M.make_tokenizer(WORK, sd2_style=True))
    torch.manual_seed(SEED + 5)
    te, unet = M.make_text_encoder(sd2_style=True), M.make_x4_unet()
    sched, lowres = x4_scheduler(), x4_low_res_scheduler()
    N = len(data["caps"])

    def loss_fn(step):
        rng = np.random.default_rng([SEED, 500, step])
        idx = rng.integers(0, N, size=args.batch)
        caps = [data["caps"][i] if rng.random() < 0.5 else "" for i in idx]
        g = torch.Generator().manual_seed(SEED * 17 + step)
        it = torch.from_numpy(idx)
        z = data["mu"][it] + data["sd"][it] * torch.randn(data["mu"][it].shape, generator=g)
        noise = torch.randn(z.shape, generator=g)
        t = torch.randint(0, 1000, (args.batch,), generator=g)
        noisy = sched.add_noise(z, noise, t)
        lvl = torch.where(torch.rand(args.batch, generator=g) < 0.5,
                          torch.randint(0, 51, (args.batch,), generator=g),
                          torch.randint(0, 351, (args.batch,), generator=g))
        lr_img = data["lr"][it]
        lr_noisy = lowres.add_noise(lr_img, torch.randn(lr_img.shape, generator=g), lvl)
        pred = unet(torch.cat([noisy, lr_noisy], dim=1), t, te(tok(caps))[0],
                    class_labels=lvl).sample
        target = sched.get_velocity(z, noise, t)
        w = snr_weights(sched, t, True)
        return (w * ((pred - target) ** 2).mean(dim=(1, 2, 3))).mean()

    train_loop("x4", [te, unet], list(te.parameters()) + list(unet.parameters()), loss_fn,
               args.steps, args.lr, minutes=args.minutes, ema_decay=0.99)
    te.save_pretrained(os.path.join(WORK, "x4_final", "text_encoder"))
    unet.save_pretrained(os.path.join(WORK, "x4_final", "unet"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["vae", "t2i", "inpaint", "x4vae", "x4", "vaedec", "x4vaedec"])
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--minutes", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    t0 = time.time()
    log("=== %s: steps %d minutes %g batch %d lr %g seed %d torch %s threads %d" % (
        args.stage, args.steps, args.minutes, args.batch, args.lr, SEED, torch.__version__,
        torch.get_num_threads()))
    {"vae": lambda a: stage_vae(a, False), "x4vae": lambda a: stage_vae(a, True),
     "t2i": stage_t2i, "inpaint": stage_inpaint, "x4": stage_x4,
     "vaedec": lambda a: stage_decoder(a, False), "x4vaedec": lambda a: stage_decoder(a, True),
     }[args.stage](args)
    log("=== %s: finished, wall %.1f min" % (args.stage, (time.time() - t0) / 60))


if __name__ == "__main__":
    main()
