#!/usr/bin/env python3
"""Peer side of bench/run on diffusers + torch CPU (f32 compute, weights read
from the same f16 files as ours and upcast at load). One job per process;
prints `PEER {json}` with the timed seconds `s` (model loading excluded),
extra figures and the process's peak RSS in MiB.

  inputs DIR SIDE...                    seeded eval inputs, also read by ours
  unet FOLDER IN.safetensors THREADS    UNet2DConditionModel forward (warm: 2nd of 2)
  vae FOLDER IN.safetensors THREADS     AutoencoderKL.decode (one, cold)
  unet FOLDER IN THREADS                (SDXL: IN has text_embeds and time_ids)
  txt2img FOLDER SIZE STEPS CFG THREADS StableDiffusionPipeline (StableDiffusionXLPipeline for an
                                        SDXL folder), Euler, seed 1
  upscale FOLDER LOW.png STEPS CFG THREADS  StableDiffusionUpscalePipeline, Euler, noise 20
  controlnet FOLDER SIZE STEPS CFG CN_FOLDER CONTROL.png THREADS
                                        StableDiffusionControlNetPipeline (the txt2img pipeline's parts
                                        with ControlNetModel CN_FOLDER), Euler, seed 1
  live FOLDER TAESD SIZE STEPS STRENGTH THREADS
                                        bench/live/bench_live's job on diffusers: StableDiffusionImg2ImgPipeline
                                        with AutoencoderTiny TAESD as its VAE (encode and decode), Euler a, no
                                        guidance, STEPS at STRENGTH (2 at 0.5 = one denoising step), seed 1, on
                                        the same SIZE x SIZE canvas; one warm-up call, then 5 strokes (a disc
                                        painted before each call): s = median wall time of the 5 calls (prompt
                                        string to the output float array), call_cpu_s = their median CPU seconds
"""
import json
import os
import resource
import sys
import time

import torch


def done(**kw):
    kw["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print("PEER " + json.dumps(kw), flush=True)


def write_inputs(out, sides):
    from safetensors.torch import save_file
    os.makedirs(out, exist_ok=True)
    for side in sides:
        g = torch.Generator().manual_seed(side)
        u = {"sample": torch.randn((2, 4, side, side), generator=g),
             "timestep": torch.tensor([500.0]),
             "encoder_hidden_states": torch.randn((2, 77, 768), generator=g)}
        save_file(u, os.path.join(out, f"unet_{side}.safetensors"))
        save_file({"latent": torch.randn((1, 4, side, side), generator=g) * 5.0},
                  os.path.join(out, f"vae_{side}.safetensors"))
    from PIL import Image
    for px_side in (64, 256):  # x4 upscale inputs: 256 (quick) and 1024 outputs
        g = torch.Generator().manual_seed(px_side)
        px = (torch.rand((px_side, px_side, 3), generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(px).save(os.path.join(out, f"low_{px_side}.png"))


def live_canvas(size):
    """bench_live's canvas: a vertical gradient, RGB floats in 0..1, [H, W, 3]."""
    import numpy as np
    y = np.arange(size, dtype=np.float32)[:, None] / size
    c = np.empty((size, size, 3), np.float32)
    c[..., 0] = 0.55 + 0.2 * y
    c[..., 1] = 0.7
    c[..., 2] = 0.9 - 0.3 * y
    return c


def live_disc(c, i):
    """bench_live's stroke i (0-based): the same disc, centre, radius and colour."""
    import numpy as np
    size = c.shape[0]
    cx, cy, r = size * (i + 1) // 7, size // 2 + (size // 6 if i % 2 else -(size // 6)), size // 12
    yy, xx = np.mgrid[0:size, 0:size]
    m = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    c[m] = (0.9 * (i % 2), 0.3, 0.2 + 0.15 * i)


def live(folder, taesd, size, steps, strength):
    from diffusers import AutoencoderTiny, EulerAncestralDiscreteScheduler, StableDiffusionImg2ImgPipeline
    t0 = time.perf_counter()
    vae = AutoencoderTiny.from_pretrained(taesd, torch_dtype=torch.float32)
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(folder, vae=vae, torch_dtype=torch.float32,
                                                          safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    load = time.perf_counter() - t0
    prompt = "a watercolor landscape, hills and a lake"   # bench_live's
    canvas = live_canvas(size)
    evals = []

    def on_step(p, i, t, kw):
        evals.append(i)
        return kw

    def call():
        evals.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        out = pipe(prompt, image=canvas[None], strength=strength, num_inference_steps=steps, guidance_scale=1.0,
                   generator=torch.Generator("cpu").manual_seed(1), output_type="np",
                   callback_on_step_end=on_step).images
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        assert out.shape == (1, size, size, 3), out.shape
        return dt, dc

    with torch.inference_mode():
        warm, _ = call()
        ts, cs = [], []
        for i in range(5):
            live_disc(canvas, i)
            dt, dc = call()
            ts.append(dt)
            cs.append(dc)
        # what the prompt's encoding costs in each call (ours keeps it with the model between jobs)
        t0 = time.perf_counter()
        pipe.encode_prompt(prompt, "cpu", 1, False)
        text = time.perf_counter() - t0
    ts_sorted = sorted(ts)
    done(s=ts_sorted[2], min_s=ts_sorted[0], max_s=ts_sorted[-1], strokes_s=ts, call_cpu_s=sorted(cs)[2],
         warmup_s=warm, load_s=load, text_s=text, unet_evals=len(evals))


def main():
    job = sys.argv[1]
    if job == "inputs":
        write_inputs(sys.argv[2], [int(s) for s in sys.argv[3:]])
        return
    folder = sys.argv[2]
    torch.set_num_threads(int(sys.argv[-1]))
    from safetensors.torch import load_file
    if job == "unet":
        from diffusers import UNet2DConditionModel
        t0 = time.perf_counter()
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=torch.float32).eval()
        load = time.perf_counter() - t0
        x = load_file(sys.argv[3])
        ts = []
        with torch.inference_mode():
            for _ in range(2):
                t0 = time.perf_counter()
                unet(x["sample"], x["timestep"], encoder_hidden_states=x["encoder_hidden_states"],
                     added_cond_kwargs=({"text_embeds": x["text_embeds"], "time_ids": x["time_ids"]}
                                        if "text_embeds" in x else None))
                ts.append(time.perf_counter() - t0)
        done(s=ts[-1], cold_s=ts[0], load_s=load)
    elif job == "vae":
        from diffusers import AutoencoderKL
        t0 = time.perf_counter()
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32).eval()
        load = time.perf_counter() - t0
        x = load_file(sys.argv[3])
        with torch.inference_mode():
            t0 = time.perf_counter()
            vae.decode(x["latent"])
            dt = time.perf_counter() - t0
        done(s=dt, load_s=load)
    elif job == "live":
        live(folder, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
    elif job in ("txt2img", "upscale", "controlnet"):
        from diffusers import (EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionUpscalePipeline,
                               StableDiffusionXLPipeline)
        steps, cfg = int(sys.argv[4]), float(sys.argv[5])
        t0 = time.perf_counter()
        with open(os.path.join(folder, "model_index.json")) as f:
            xl = json.load(f)["_class_name"] == "StableDiffusionXLPipeline"
        cls = StableDiffusionUpscalePipeline if job == "upscale" else \
            StableDiffusionXLPipeline if xl else StableDiffusionPipeline
        pipe = cls.from_pretrained(folder, torch_dtype=torch.float32, **(
            {"safety_checker": None} if cls is StableDiffusionPipeline else {}))
        if job == "controlnet":
            from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
            from PIL import Image
            cn = ControlNetModel.from_pretrained(sys.argv[6], torch_dtype=torch.float32)
            pipe = StableDiffusionControlNetPipeline(**pipe.components, controlnet=cn)
            control = Image.open(sys.argv[7]).convert("RGB")
        if job == "txt2img" and len(sys.argv) == 8:     # ... cfg TAESD_FOLDER threads
            from diffusers import AutoencoderTiny
            pipe.vae = AutoencoderTiny.from_pretrained(sys.argv[6], torch_dtype=torch.float32)
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        load = time.perf_counter() - t0
        marks = []

        def on_step(p, i, t, kw):
            marks.append(time.perf_counter())
            return kw

        def on_step_old(i, t, latents):  # the upscale pipeline has only the older callback
            marks.append(time.perf_counter())

        args = dict(num_inference_steps=steps, guidance_scale=cfg, generator=torch.Generator("cpu").manual_seed(1))
        if job in ("txt2img", "controlnet"):
            args["callback_on_step_end"] = on_step
        else:
            args.update(callback=on_step_old, callback_steps=1)
        with torch.inference_mode():
            t0 = time.perf_counter()
            if job in ("txt2img", "controlnet"):
                size = int(sys.argv[3])
                if job == "controlnet":
                    args["image"] = control
                pipe("a photo of a cat", negative_prompt="" if cfg > 1 else None, width=size, height=size, **args)
            else:
                from PIL import Image
                pipe("a photo of a cat", image=Image.open(sys.argv[3]).convert("RGB"), noise_level=20, **args)
            total = time.perf_counter() - t0
        steps_s = [b - a for a, b in zip([t0] + marks[:-1], marks)]
        done(s=total, load_s=load, step_s=sorted(steps_s)[len(steps_s) // 2], first_step_s=steps_s[0],
             rest_s=total - (marks[-1] - t0))
    else:
        sys.exit(f"unknown job {job}")


if __name__ == "__main__":
    main()
