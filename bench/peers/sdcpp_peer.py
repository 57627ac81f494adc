#!/usr/bin/env python3
"""Peer side of bench/run on stable-diffusion.cpp (PyPI
stable-diffusion-cpp-python, weights kept in the file's f16). One
generate_image per process; prints `PEER {json}`:
  s          generate_image wall time (model loading excluded)
  step_s     the last sampling step alone (the progress callback reports the
             running mean since sampling began: step k = k*mean_k - (k-1)*mean_(k-1)),
             i.e. one UNet evaluation, or two (cond + uncond) under CFG
  first_step_s, cond_s (text encoder), sampling_s, decode_s (VAE), from its log
Usage: sdcpp_peer.py MODEL SIZE STEPS CFG THREADS"""
import contextlib
import json
import os
import re
import resource
import sys
import tempfile
import time

from stable_diffusion_cpp import StableDiffusion

model, size, steps, cfg, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), \
    int(sys.argv[5])
log = tempfile.TemporaryFile(mode="w+b")
saved = os.dup(2)
os.dup2(log.fileno(), 2)  # the library logs through C stderr: keep it for parsing
try:
    t0 = time.perf_counter()
    sd = StableDiffusion(model_path=model, n_threads=threads, verbose=True)
    load = time.perf_counter() - t0
    means = {}

    def on_progress(step, total, mean_s):
        means[step] = mean_s

    t0 = time.perf_counter()
    sd.generate_image(prompt="a photo of a cat", negative_prompt="", width=size, height=size, cfg_scale=cfg,
                      sample_method="euler", sample_steps=steps, seed=1, progress_callback=on_progress)
    total = time.perf_counter() - t0
finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
log.seek(0)
text = log.read().decode("utf-8", "replace")


def taking(what):
    m = re.findall(what + r" completed, taking ([0-9.]+) ?s", text)
    return float(m[-1]) if m else None


k = max(means) if means else 0
step = k * means[k] - (k - 1) * means.get(k - 1, 0.0) if k else None
print("PEER " + json.dumps({
    "s": total, "load_s": load, "step_s": step, "first_step_s": means.get(1), "cond_s": taking("get_learned_condition"),
    "sampling_s": taking("sampling"), "decode_s": taking("decode_first_stage"),
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}), flush=True)
if os.environ.get("LDM_BENCH_VERBOSE"):
    sys.stderr.write(text)
