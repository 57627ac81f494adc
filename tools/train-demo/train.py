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
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(int(os.environ.get("DEMO_THREADS", "1")))

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


def keep_copy(src, name):
    """work/<name>: a copy of the finished stage folder src, made once before a stage
    continues from it (the record of where a continuation started); its path."""
    keep = os.path.join(WORK, name)
    if not os.path.exists(keep):
        shutil.copytree(src, keep)
    return keep


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
    if trainable and isinstance(trainable[0], dict):     # param groups with an "lr_mult"
        groups = trainable
        trainable = [p for gr in groups for p in gr["params"]]
    else:
        groups = [{"params": trainable, "lr_mult": 1.0}]
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=1e-2, betas=(0.9, 0.99))
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
            g["lr"] = lr * g.get("lr_mult", 1.0) * max(f, 0.02)
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


def vae_batch(big, small, x4, full, step, batch, salt):
    """Training images for a VAE step: 32x32 crops, or whole-image sizes when full."""
    rng = np.random.default_rng([SEED, salt, step])
    crop, bs, use_big = 32, batch, None
    if full:
        use_big = x4 and step % 2 == 0
        crop = 128 if use_big else 64
        bs = max(1, batch // 4) if use_big else batch
    out = []
    for b in range(bs):
        pick_big = (big and rng.random() < 0.5) if use_big is None else use_big
        src = big[rng.integers(len(big))] if pick_big else small[rng.integers(len(small))]
        n = src.shape[0] - crop
        y, x = rng.integers(0, n + 1, size=2)
        out.append(src[y:y + crop, x:x + crop])
    return to_tensor(np.stack(out))


def stage_vae(args, x4=False, full=False):
    """Train a VAE on 32x32 crops, or (full=True) refine a trained one on whole images.

    GroupNorm with one channel per group normalises over the whole image, so a
    VAE trained on crops of flat scenes decodes whole images badly: the 'full'
    stages continue from <stage>_final on 64x64 images (8x VAE) or on 128x128
    crops of 256x256 scenes alternating with 64x64 images (4x VAE); with --round N
    a 'full' stage runs again from the previous round's result (same batch order)."""
    base = "x4vae" if x4 else "vae"
    stage = base + ("full" if full else "")
    if full and args.round:     # a further round from the previous round's <base>_final
        stage += "r%d" % args.round
    torch.manual_seed(SEED)
    vae = M.make_vae(x4)
    if full:
        src_dir = os.path.join(WORK, base + "_final")
        vae = AutoencoderKL.from_pretrained(src_dir)
        keep_copy(src_dir, base + "_crop_final")
    elif x4 and not os.path.exists(os.path.join(WORK, stage + ".pt")) and (
            os.path.exists(os.path.join(WORK, "vae_final")) or
            os.path.exists(os.path.join(WORK, "vae.pt"))):
        warm_start_x4_vae(vae)
    big, small = vae_data(x4)

    def batch(step):
        return vae_batch(big, small, x4, full, step, args.batch, 100 + x4 + 10 * full)

    def loss_fn(step):
        x = batch(step)
        post = vae.encode(x).latent_dist
        g = torch.Generator().manual_seed(SEED * 7 + step)
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        kl = post.kl().mean() / z[0].numel()
        return F.l1_loss(rec, x) + F.mse_loss(rec, x) + 1e-4 * kl

    train_loop(stage, [vae], list(vae.parameters()), loss_fn, args.steps, args.lr, minutes=args.minutes,
               warmup=20 if full else 100, ema_decay=0.99 if full else 0.995)
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
    vae.save_pretrained(os.path.join(WORK, base + "_final"))


def stage_decoder(args, x4=False):
    """Fine-tune only the decoder (and post_quant_conv) of a finished VAE.

    The encoder and so the latent space stay fixed, so this runs in parallel
    with the diffusion stage that uses the same latents."""
    src = "x4vae" if x4 else "vae"
    stage = src + "dec" + ("r%d" % args.round if args.round else "")
    start = os.path.join(WORK, src + "_final")
    if args.round:      # continue the decoder stage from (a copy of) its result
        start = keep_copy(os.path.join(WORK, src + "dec_final"), "%sdec_r%d_start" % (src, args.round))
    vae = AutoencoderKL.from_pretrained(start)
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    big, small = vae_data(x4)

    def loss_fn(step):
        x = vae_batch(big, small, x4, True, step, args.batch, 150 + x4 + 1000 * args.round)
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
    vae.save_pretrained(os.path.join(WORK, src + "dec_final"))


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


def pyramid_noise(shape, g, discount):
    """Gaussian noise plus coarser noise at 1/2, 1/4, ... resolution, renormalised.

    On 8x8 latents the plain noise hides almost none of a picture's low
    frequencies (its mean colour, where the shape is) even at t = 999, so a
    model trained on plain noise takes them from the noise instead of the
    prompt. Coarse noise in training makes it take them from the prompt; the
    sampler is unchanged (plain Gaussian noise, SD's schedule)."""
    B, C, H, W = shape
    n = torch.randn(shape, generator=g)
    if not discount:
        return n
    s, var, h = 1.0, 1.0, H
    while h > 1:
        h //= 2
        s *= discount
        low = torch.randn((B, C, h, h), generator=g)
        n = n + s * F.interpolate(low, size=(H, W), mode="nearest")
        var += s * s
    return n / math.sqrt(var)


def pure_top(sched, z, noise, t, frac, g, t_min=900):
    """Replace a fraction of the batch by examples at t >= t_min whose input is pure
    noise, unrelated to the picture, with the epsilon target that makes the
    sampler's x0 estimate, (x_t - sqrt(1 - ab) eps) / sqrt(ab), the true latent.

    SD's schedule keeps sqrt(ab) = 0.08 of the picture at t = 951 (its first DDIM
    step); on 8x8 latents that is enough of the shape's blob for a model to learn
    to find the shape where the noise happens to bump, and to ignore where the
    caption puts it. With these examples the first steps must take the layout from
    the caption; the sampler and schedule stay SD's. Returns (input, target, t)."""
    top = torch.rand(len(t), generator=g) < frac
    t = torch.where(top, torch.randint(t_min, 1000, (len(t),), generator=g), t)
    pure = torch.randn(z.shape, generator=g)
    ab = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    m = top.view(-1, 1, 1, 1)
    noisy = torch.where(m, pure, sched.add_noise(z, noise, t))
    target = torch.where(m, (pure - ab.sqrt() * z) / (1 - ab).sqrt(), noise)
    return noisy, target, t


def snr_weights(sched, t, v_pred, weighting="minsnr"):
    """Per-sample loss weights. "minsnr": min-SNR-5 (Hang et al.). "v": for an
    epsilon model, the weight 1/alpha_bar that makes its loss the v-prediction
    loss: at high t an epsilon error is the x0 error times sqrt(snr), so plain
    weights barely train what decides colour and layout (the first sampler
    steps); with 1/alpha_bar the x0 error there counts fully. "plain": weight 1,
    for a v-prediction model the v-loss itself (min-SNR's weight for v,
    min(snr, 5) / (snr + 1), is about snr at high t: near zero where the upscaler
    must take the whole picture from the low-resolution image)."""
    ac = sched.alphas_cumprod[t]
    if weighting == "plain":
        return torch.ones_like(ac)
    if weighting == "v":
        return 1.0 / ac
    snr = ac / (1 - ac)
    w = torch.clamp(snr, max=5.0)
    return w / (snr + 1) if v_pred else w / snr


def shape_cover(scenes, size=64, cell=8):
    """The fraction of each latent cell that the scene's shape covers: float [N, 1, 8, 8]
    (the shape alone, rendered white on black at the training size)."""
    out = np.empty((len(scenes), 1, size // cell, size // cell), np.float32)
    for i, sc in enumerate(scenes):
        solo = dict(sc, background="black", colour="white", tint=(0, 0, 0))
        a = D.render(solo, size)[..., 0].astype(np.float32)
        lo, hi = D.BACKGROUNDS["black"][0], D.COLOURS["white"][0]
        a = np.clip((a - lo) / (hi - lo), 0.0, 1.0)
        out[i, 0] = a.reshape(size // cell, cell, size // cell, cell).mean(axis=(1, 3))
    return torch.from_numpy(out)


def region_loss(pred, target, region, k):
    """Per-sample mean squared error with the cells of `region` ([B, 1, h, w], 0..1)
    weighted 1 + k: the shape a caption names covers 4-15 % of a 64-px picture, so
    with plain weights its colour counts for little against the background's (the
    model trained so had the backgrounds right in 120 of 120 validation pictures,
    validate.py, and the shapes' colours in 93; with k = 4: 114, MODEL_CARD.md)."""
    w = 1.0 + k * region
    return (w * (pred - target) ** 2).mean(dim=1, keepdim=True).sum(dim=(1, 2, 3)) / w.sum(dim=(1, 2, 3))


def t2i_data(vae, n=1000):
    cache = os.path.join(WORK, "t2i_data.pt" if n == 1000 else "t2i_data_%d.pt" % n)
    if os.path.exists(cache):
        return torch.load(cache, weights_only=False)
    imgs, _, scenes = D.make_dataset(nsz(n), 64, SEED + 2)
    mu, sd = encode_all(vae, imgs, M.SD1_SCALE)
    data = {"mu": mu, "sd": sd, "scenes": scenes}
    torch.save(data, cache)
    log("t2i: encoded %d images, latent std %.3f" % (len(imgs), mu.std().item()))
    return data


class AttributeHeads(torch.nn.Module):
    """Linear read-outs of a caption's attributes from the text encoder's states at
    the end-of-text token and at the last padding position (both see the whole
    caption; the UNet's cross-attention reads them). Training only, not exported:
    the diffusion loss alone left the position words almost indistinguishable in
    the text encoder (a linear probe of the position from the end-of-text state
    scored 19 % against 11 % chance, the shape's colour 79 %), so the UNet had
    nothing to place the shape by."""
    EOS = M.text_config().eos_token_id
    KINDS = (("colour", list(D.COLOURS)), ("shape", D.SHAPES), ("background", list(D.BACKGROUNDS)),
             ("position", list(D.POSITIONS)), ("size", list(D.SIZES)))

    def __init__(self, width):
        super().__init__()
        self.heads = torch.nn.ModuleList(torch.nn.Linear(width, len(v) + 1) for _, v in self.KINDS)

    @classmethod
    def labels(cls, scene, text):
        """Class per attribute; the last class = the caption does not name it."""
        named = {"colour": True, "shape": True, "background": "background" in text,
                 "position": scene["position"] in text,
                 "size": any(w in text.split() for w in sum(D.SIZE_WORDS.values(), []))}
        return [vals.index(scene[k]) if named[k] else len(vals) for k, vals in cls.KINDS]

    def loss(self, states, ids, labels):
        eos = (ids == self.EOS).int().argmax(1)
        picks = (states[torch.arange(len(ids)), eos], states[:, -1])
        return sum(F.cross_entropy(h(x), labels[:, k]) for x in picks
                   for k, h in enumerate(self.heads)) / (2 * len(self.heads))


def pretrain_text(te, heads, tok, steps, lr=3e-3, batch=64):
    """Teach a text encoder the captions' attributes (AttributeHeads) before the UNet
    reads it: a few hundred text-only steps, seconds of CPU. A fresh 2-layer encoder
    reads every attribute back without error after ~250 steps; one trained by the
    diffusion loss alone stayed near chance for positions even under this loss."""
    opt = torch.optim.AdamW(list(te.parameters()) + list(heads.parameters()), lr=lr)
    rng = np.random.default_rng([SEED, 77])
    for step in range(steps):
        scenes = [D.sample_scene(rng) for _ in range(batch)]
        caps = [D.caption(sc, rng) for sc in scenes]
        ids = tok(caps)
        lab = torch.tensor([heads.labels(sc, c) for sc, c in zip(scenes, caps)])
        loss = heads.loss(te(ids)[0], ids, lab)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 50 == 0:
            log("text pretraining step %4d attribute loss %.4f" % (step + 1, loss.item()))


def stage_t2i(args, cont=False):
    """Joint text encoder + UNet training; cont=True (stage t2i2) continues both
    from t2i_final (the inpainting stage then starts from the continued models)."""
    vae = AutoencoderKL.from_pretrained(os.path.join(WORK, "vae_final"))
    data = t2i_data(vae, args.data or 1000)
    del vae
    tok = TokenCache(M.make_tokenizer(WORK))
    torch.manual_seed(SEED + 3)
    te, unet = M.make_text_encoder(), M.make_unet()
    if cont:
        keep_copy(os.path.join(WORK, "t2i_final"), "t2i_first_final")
        te = CLIPTextModel.from_pretrained(os.path.join(WORK, "t2i_final", "text_encoder"))
        unet = UNet2DConditionModel.from_pretrained(os.path.join(WORK, "t2i_final", "unet"))
    sched = t2i_scheduler()
    N = len(data["scenes"])
    cover = shape_cover(data["scenes"]) if args.region_weight else None
    torch.manual_seed(SEED + 4)
    heads = AttributeHeads(M.TEXT_HIDDEN)
    name = "t2i" if not cont else "t2i2" + ("" if args.round == 0 else "r%d" % args.round)
    if args.te_pretrain and not os.path.exists(os.path.join(WORK, name + ".pt")):
        torch.manual_seed(SEED + 6)
        te = M.make_text_encoder()
        pretrain_text(te, heads, tok, args.te_pretrain)

    def loss_fn(step):
        rng = np.random.default_rng([SEED, 200 + 7 * cont + 13 * args.round, step])
        idx = rng.integers(0, N, size=args.batch)
        caps = [D.caption(data["scenes"][i], rng) if rng.random() > 0.1 else "" for i in idx]
        g = torch.Generator().manual_seed(SEED * 11 + step + 100000 * cont + 1000000 * args.round)
        it = torch.from_numpy(idx)
        z = data["mu"][it] + data["sd"][it] * torch.randn(data["mu"][it].shape, generator=g)
        noise = pyramid_noise(z.shape, g, args.pyramid)
        t = torch.randint(0, 1000, (args.batch,), generator=g)
        if args.high_t:     # more samples where colour and layout are decided
            t = torch.where(torch.rand(args.batch, generator=g) < args.high_t,
                            torch.randint(500, 1000, (args.batch,), generator=g), t)
        if args.pure_top:
            noisy, target, t = pure_top(sched, z, noise, t, args.pure_top, g, args.pure_top_min)
        else:
            noisy, target = sched.add_noise(z, noise, t), noise
        ids = tok(caps)
        states = te(ids)[0]
        pred = unet(noisy, t, states).sample
        w = snr_weights(sched, t, False, args.weighting)
        if args.region_weight:
            loss = (w * region_loss(pred, target, cover[it], args.region_weight)).mean()
        else:
            loss = (w * ((pred - target) ** 2).mean(dim=(1, 2, 3))).mean()
        if args.aux:
            named = [k for k, c in enumerate(caps) if c]
            lab = torch.tensor([heads.labels(data["scenes"][idx[k]], caps[k]) for k in named])
            loss = loss + args.aux * heads.loss(states[named], ids[named], lab)
        return loss

    te_params = list(te.parameters()) + (list(heads.parameters()) if args.aux else [])
    extra = [heads] if args.aux else []
    if cont:
        if args.freeze_te:
            te.requires_grad_(False)
            train_loop(name, [unet], list(unet.parameters()), loss_fn, args.steps, args.lr,
                       minutes=args.minutes, warmup=10, ema_decay=0.99)
        else:
            groups = [{"params": te_params, "lr_mult": args.te_lr_mult},
                      {"params": list(unet.parameters()), "lr_mult": 1.0}]
            train_loop(name, [te, unet] + extra, groups, loss_fn,
                       args.steps, args.lr, minutes=args.minutes, warmup=10, ema_decay=0.99)
    else:
        groups = [{"params": te_params, "lr_mult": args.te_lr_mult},
                  {"params": list(unet.parameters()), "lr_mult": 1.0}]
        train_loop(name, [te, unet] + extra, groups, loss_fn,
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


def inpaint_data(vae, n=1000):
    """The t2i images (same seed) with one random mask each; only the masked images
    are encoded here, the clean latents come from the t2i cache."""
    cache = os.path.join(WORK, "inpaint_data.pt" if n == 1000 else "inpaint_data_%d.pt" % n)
    if os.path.exists(cache):
        return torch.load(cache, weights_only=False)
    t2i_cache = os.path.join(WORK, "t2i_data.pt" if n == 1000 else "t2i_data_%d.pt" % n)
    while not os.path.exists(t2i_cache):
        time.sleep(10)
    t2i = torch.load(t2i_cache, weights_only=False)
    N = len(t2i["scenes"])
    imgs, _, scenes = D.make_dataset(N, 64, SEED + 2)
    rng = np.random.default_rng([SEED, 21])
    masks = np.stack([box_mask(rng, sc) for sc in scenes])
    x = to_tensor(imgs)
    mk = torch.from_numpy(masks)[:, None]
    with torch.no_grad():
        mmu = []
        for i in range(0, N, 32):
            mmu.append(vae.encode(x[i:i + 32] * (mk[i:i + 32] < 0.5)).latent_dist.mode() * M.SD1_SCALE)
        mmu = torch.cat(mmu)
    lat_mask = F.interpolate(mk, size=(8, 8))
    data = {"mu": t2i["mu"], "sd": t2i["sd"], "masked": mmu, "mask": lat_mask, "scenes": scenes}
    torch.save(data, cache)
    log("inpaint: encoded %d masked images (mean masked fraction %.2f)" % (N, masks.mean()))
    return data


def fitted_data(vae, n):
    """n inpainting examples whose masked box holds exactly the shape their
    caption names (dataset.sample_fitted): clean and masked latents, latent
    masks and the new shapes' scene dicts (their captions)."""
    cache = os.path.join(WORK, "inpaint_fit_data_%d.pt" % n)
    if os.path.exists(cache):
        return torch.load(cache, weights_only=False)
    rng = np.random.default_rng([SEED, 23])
    imgs, masks, scenes = [], [], []
    for _ in range(nsz(n)):
        sc, new, m = D.sample_fitted(rng)
        imgs.append(D.render(sc, 64))
        masks.append(m)
        scenes.append(new)
    imgs, masks = np.stack(imgs), np.stack(masks)
    mu, sd = encode_all(vae, imgs, M.SD1_SCALE)
    x = to_tensor(imgs)
    mk = torch.from_numpy(masks)[:, None]
    with torch.no_grad():
        mmu = torch.cat([vae.encode(x[i:i + 32] * (mk[i:i + 32] < 0.5)).latent_dist.mode() * M.SD1_SCALE
                         for i in range(0, len(x), 32)])
    data = {"mu": mu, "sd": sd, "masked": mmu, "mask": F.interpolate(mk, size=(8, 8)), "scenes": scenes}
    torch.save(data, cache)
    log("inpaint: encoded %d fitted-shape examples (mean masked fraction %.2f)" % (len(imgs), masks.mean()))
    return data


def stage_inpaint(args):
    vae = AutoencoderKL.from_pretrained(os.path.join(WORK, "vae_final"))
    n_scenes = args.data or 1000
    data = inpaint_data(vae, n_scenes)
    n_plain = len(data["scenes"])
    if args.fit:    # append the fitted-shape examples; drawn with probability args.fit
        fit = fitted_data(vae, n_scenes)
        data = {k: (data[k] + fit[k]) if k == "scenes" else torch.cat([data[k], fit[k]])
                for k in ("mu", "sd", "masked", "mask", "scenes")}
    del vae
    tok = TokenCache(M.make_tokenizer(WORK))
    while not os.path.exists(os.path.join(WORK, "t2i_final", "unet", "config.json")):
        time.sleep(15)      # data prepared beside t2i training; the UNet starts from its result
    time.sleep(5)
    te = CLIPTextModel.from_pretrained(os.path.join(WORK, "t2i_final", "text_encoder"))
    if args.freeze_te:
        te.requires_grad_(False)
    base = UNet2DConditionModel.from_pretrained(os.path.join(WORK, "t2i_final", "unet"))
    unet = M.make_unet(9)
    sd = base.state_dict()
    w = torch.zeros_like(unet.conv_in.weight)
    w[:, :4] = sd["conv_in.weight"]
    sd["conv_in.weight"] = w
    unet.load_state_dict(sd)
    if args.round and not args.from_t2i:   # continue a finished inpainting run (its own text encoder)
        keep = keep_copy(os.path.join(WORK, "inpaint_final"), "inpaint_r%d_start" % args.round)
        te = CLIPTextModel.from_pretrained(os.path.join(keep, "text_encoder"))
        unet = UNet2DConditionModel.from_pretrained(os.path.join(keep, "unet"))
    sched = t2i_scheduler()
    N = len(data["scenes"])

    def loss_fn(step):
        rng = np.random.default_rng([SEED, 300 + 13 * args.round, step])
        idx = rng.integers(0, n_plain, size=args.batch)
        if args.fit:
            idx = np.where(rng.random(args.batch) < args.fit, rng.integers(n_plain, N, size=args.batch), idx)
        caps = [D.caption(data["scenes"][i], rng) if rng.random() > 0.1 else "" for i in idx]
        g = torch.Generator().manual_seed(SEED * 13 + step + 1000000 * args.round)
        it = torch.from_numpy(idx)
        z = data["mu"][it] + data["sd"][it] * torch.randn(data["mu"][it].shape, generator=g)
        noise = pyramid_noise(z.shape, g, args.pyramid)
        t = torch.randint(0, 1000, (args.batch,), generator=g)
        if args.high_t:
            t = torch.where(torch.rand(args.batch, generator=g) < args.high_t,
                            torch.randint(500, 1000, (args.batch,), generator=g), t)
        noisy = sched.add_noise(z, noise, t)
        ctx = te(tok(caps))[0]
        inp = torch.cat([noisy, data["mask"][it], data["masked"][it]], dim=1)
        pred = unet(inp, t, ctx).sample
        w = snr_weights(sched, t, False, args.weighting)
        if args.region_weight:      # the masked box is what the model must invent
            return (w * region_loss(pred, noise, data["mask"][it], args.region_weight)).mean()
        return (w * ((pred - noise) ** 2).mean(dim=(1, 2, 3))).mean()

    if args.freeze_te:
        train_loop("inpaint", [unet], list(unet.parameters()), loss_fn, args.steps, args.lr,
                   minutes=args.minutes, warmup=50, ema_decay=0.99)
    else:   # the inpainting model gets its own text encoder
        groups = [{"params": list(te.parameters()), "lr_mult": args.te_lr_mult},
                  {"params": list(unet.parameters()), "lr_mult": 1.0}]
        train_loop("inpaint" + ("r%d" % args.round if args.round else ""), [te, unet], groups,
                   loss_fn, args.steps, args.lr, minutes=args.minutes, warmup=20, ema_decay=0.99)
        te.save_pretrained(os.path.join(WORK, "inpaint_final", "text_encoder"))
    unet.save_pretrained(os.path.join(WORK, "inpaint_final", "unet"))


def x4_pairs(n, seed, crop=32, big_only=False):
    """n (HR crop x crop, caption) pairs: half from 64-px scenes, half from 256-px scenes.

    Crops start on multiples of 4, so the box-downscaled crop is the crop of the
    box-downscaled image (the network is convolutional: trained on crops, run
    on whole images)."""
    rng = np.random.default_rng([seed])
    hr, caps = [], []
    big = small = None
    for i in range(n):
        if i % 2 == 0 and not big_only:
            if i % 4 == 0 or crop >= 64:
                s = D.sample_scene(rng)
                small = D.render(s, 64)
                smallcap = D.caption(s, rng)
            y, x = rng.integers(0, (64 - crop) // 4 + 1, size=2) * 4
            hr.append(small[y:y + crop, x:x + crop])
            caps.append(smallcap)
        else:
            if i % 8 == 1 or (big_only and i % 4 == 0):
                ms = D.sample_multi_scene(rng)
                big = D.render(ms, 256)
                bigcap = D.caption(ms[0], rng)
            y, x = rng.integers(0, (256 - crop) // 4 + 1, size=2) * 4
            hr.append(big[y:y + crop, x:x + crop])
            caps.append(bigcap)
    hr = np.stack(hr)
    lr = np.stack([D.downscale(h, 4) for h in hr])
    return hr, lr, caps


def x4_data(vae, n=400):
    """n HR 64x64 crops (latent 16x16) and n/5 HR 128x128 crops of 256-px scenes (latent
    32x32), so the UNet sees the image statistics of whole-image upscaling."""
    cache = os.path.join(WORK, "x4_data.pt" if n == 400 else "x4_data_%d.pt" % n)
    if os.path.exists(cache):
        return torch.load(cache, weights_only=False)
    data = {}
    for key, count, crop, seed in (("s", nsz(n), 64, SEED + 31), ("b", nsz(n // 5), 128, SEED + 32)):
        hr, lr, caps = x4_pairs(count, seed, crop, big_only=(crop == 128))
        mu, sd = encode_all(vae, hr, M.X4_SCALE, bs=16)
        data[key] = {"mu": mu, "sd": sd, "lr": to_tensor(lr), "caps": caps}
        log("x4: encoded %d HR %dx%d crops, latent std %.3f" % (len(hr), crop, crop, mu.std().item()))
    torch.save(data, cache)
    return data


def stage_x4(args):
    vae = AutoencoderKL.from_pretrained(os.path.join(WORK, "x4vae_final"))
    data = x4_data(vae, args.data or 400)
    del vae
    tok = TokenCache(M.make_tokenizer(WORK, sd2_style=True))
    torch.manual_seed(SEED + 5)
    te, unet = M.make_text_encoder(sd2_style=True), M.make_x4_unet()
    sched, lowres = x4_scheduler(), x4_low_res_scheduler()
    def loss_fn(step):
        # even steps: a batch of 64x64 crops; odd steps: a quarter batch of 128x128 crops
        d = data["s"] if step % 2 == 0 else data["b"]
        bs = args.batch if step % 2 == 0 else max(1, args.batch // 4)
        N = len(d["caps"])
        rng = np.random.default_rng([SEED, 500, step])
        idx = rng.integers(0, N, size=bs)
        caps = [d["caps"][i] if rng.random() < 0.5 else "" for i in idx]
        g = torch.Generator().manual_seed(SEED * 17 + step)
        it = torch.from_numpy(idx)
        z = d["mu"][it] + d["sd"][it] * torch.randn(d["mu"][it].shape, generator=g)
        noise = torch.randn(z.shape, generator=g)
        t = torch.randint(0, 1000, (bs,), generator=g)
        noisy = sched.add_noise(z, noise, t)
        lvl = torch.where(torch.rand(bs, generator=g) < 0.5,
                          torch.randint(0, 51, (bs,), generator=g),
                          torch.randint(0, 351, (bs,), generator=g))
        lr_img = d["lr"][it]
        lr_noisy = lowres.add_noise(lr_img, torch.randn(lr_img.shape, generator=g), lvl)
        pred = unet(torch.cat([noisy, lr_noisy], dim=1), t, te(tok(caps))[0],
                    class_labels=lvl).sample
        target = sched.get_velocity(z, noise, t)
        w = snr_weights(sched, t, True, args.weighting)
        return (w * ((pred - target) ** 2).mean(dim=(1, 2, 3))).mean()

    train_loop("x4", [te, unet], list(te.parameters()) + list(unet.parameters()), loss_fn,
               args.steps, args.lr, minutes=args.minutes, ema_decay=0.99)
    te.save_pretrained(os.path.join(WORK, "x4_final", "text_encoder"))
    unet.save_pretrained(os.path.join(WORK, "x4_final", "unet"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["vae", "t2i", "inpaint", "x4vae", "x4", "vaedec", "x4vaedec",
                                      "vaefull", "x4vaefull", "t2i2"])
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--minutes", type=float, default=0.0)
    ap.add_argument("--round", type=int, default=0,
                    help="t2i2/inpaint/vaedec: continuation round (new data order); "
                         "vaefull/x4vaefull: continue from the last round's result")
    ap.add_argument("--freeze-te", action="store_true", help="t2i2/inpaint: keep the text encoder fixed")
    ap.add_argument("--high-t", type=float, default=0.0,
                    help="t2i: fraction of samples with t drawn from 500..999")
    ap.add_argument("--te-lr-mult", type=float, default=1.0, help="t2i2: text encoder lr multiplier")
    ap.add_argument("--pyramid", type=float, default=0.0,
                    help="t2i/inpaint: coarse-noise discount (0 = plain Gaussian noise)")
    ap.add_argument("--weighting", choices=["minsnr", "v", "plain"], default="minsnr",
                    help="t2i/inpaint/x4 loss weights over t (see snr_weights)")
    ap.add_argument("--from-t2i", action="store_true",
                    help="inpaint --round N: start again from the current t2i models")
    ap.add_argument("--data", type=int, default=0,
                    help="t2i/inpaint: number of training scenes (default 1000); x4: number of 64-px crops "
                         "(default 400; a fifth as many 128-px crops)")
    ap.add_argument("--fit", type=float, default=0.0,
                    help="inpaint: fraction of examples whose mask holds exactly the named shape")
    ap.add_argument("--aux", type=float, default=0.0,
                    help="t2i2: weight of the caption-attribute loss on the text encoder")
    ap.add_argument("--te-pretrain", type=int, default=0,
                    help="t2i/t2i2: start from a fresh text encoder taught the caption attributes "
                         "for this many steps")
    ap.add_argument("--pure-top", type=float, default=0.0,
                    help="t2i: fraction of examples at high t with pure-noise input (see pure_top)")
    ap.add_argument("--pure-top-min", type=int, default=900, help="t2i: lowest t of those examples")
    ap.add_argument("--region-weight", type=float, default=0.0,
                    help="t2i: extra loss weight on the cells the shape covers; inpaint: on the "
                         "masked cells (see region_loss)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    t0 = time.time()
    log("=== %s: steps %d minutes %g batch %d lr %g seed %d torch %s threads %d" % (
        args.stage, args.steps, args.minutes, args.batch, args.lr, SEED, torch.__version__,
        torch.get_num_threads()))
    {"vae": lambda a: stage_vae(a, False), "x4vae": lambda a: stage_vae(a, True),
     "vaefull": lambda a: stage_vae(a, False, True), "x4vaefull": lambda a: stage_vae(a, True, True),
     "t2i": stage_t2i, "t2i2": lambda a: stage_t2i(a, True), "inpaint": stage_inpaint,
     "x4": stage_x4,
     "vaedec": lambda a: stage_decoder(a, False), "x4vaedec": lambda a: stage_decoder(a, True),
     }[args.stage](args)
    log("=== %s: finished, wall %.1f min, process CPU %.1f min" % (
        args.stage, (time.time() - t0) / 60, time.process_time() / 60))


if __name__ == "__main__":
    main()
