#!/usr/bin/env python3
"""diffusers StableDiffusionPipeline on torch CPU (f32): txt2img, prints
'diffusers: T s total, S s/step, peak RSS M MiB'.
Usage: peer_diffusers.py FOLDER SIZE STEPS THREADS"""
import resource
import sys
import time

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

folder, size, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32, safety_checker=None)
pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
pipe.set_progress_bar_config(disable=True)
step_times = []
last = [0.0]


def on_step(p, i, t, kw):
    now = time.perf_counter()
    step_times.append(now - last[0])
    last[0] = now
    return kw


t0 = time.perf_counter()
last[0] = t0
with torch.inference_mode():
    pipe("a photo of a cat", negative_prompt="", num_inference_steps=steps, guidance_scale=7.0, width=size,
         height=size, generator=torch.Generator("cpu").manual_seed(1), callback_on_step_end=on_step)
total = time.perf_counter() - t0
per = sorted(step_times[1:])[len(step_times[1:]) // 2] if len(step_times) > 1 else step_times[0]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"diffusers: {total:.2f} s total, {per:.2f} s/step, peak RSS {rss:.0f} MiB")
