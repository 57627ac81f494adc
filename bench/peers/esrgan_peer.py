#!/usr/bin/env python3
"""Peer side of bench/esrgan/run: one ESRGAN-class upscale per process.

  torch MODEL.safetensors LOW.png THREADS   spandrel 0.4.2 (chaiNNer's / ComfyUI's loader)
                                            on torch CPU, f32 (weights upcast at load), one
                                            forward of the whole image, as ours runs it
  sdcpp MODEL.safetensors LOW.png THREADS   stable-diffusion.cpp's ESRGAN upscaler through
                                            stable-diffusion-cpp-python's upscale()
  sdcpp-cli SD_CLI MODEL LOW THREADS TILE   the same through sd.cpp's own command line:
                                            `sd-cli -M upscale --upscale-model MODEL -i LOW
                                            -o OUT -t THREADS --upscale-tile-size TILE`; timed: its
                                            "input_image_tensor upscaled, taking X s" (the upscale
                                            alone); cpu_s: the whole sd-cli process's CPU seconds
                                            (loading a 33 MB file is a small part of them)
Prints `PEER {json}`: the timed seconds `s` (model loading excluded), the CPU seconds of the
timed part `cpu_s` and the process's peak RSS in MiB.
"""
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def done(**kw):
    kw["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print("PEER " + json.dumps(kw), flush=True)


def sdcpp_cli(exe, model, low, threads, tile):
    out = tempfile.mktemp(prefix="ldm-bench-sdcpp-", suffix=".png")
    argv = [exe, "-M", "upscale", "--upscale-model", model, "-i", low, "-o", out, "-t", str(threads),
            "--upscale-tile-size", str(tile)]
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    log = p.stdout + p.stderr
    m = re.findall(r"upscaled, taking ([0-9.]+) ?s", log)
    size = None
    try:  # the PNG's IHDR width and height (this job runs without PIL)
        with open(out, "rb") as fh:
            head = fh.read(24)
        if head[:8] == b"\x89PNG\r\n\x1a\n":
            size = [int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")]
        os.unlink(out)
    except OSError:
        pass
    if p.returncode != 0 or not m:
        sys.stderr.write(log[-3000:])
        sys.exit(f"sd-cli exit {p.returncode}" + ("" if m else ", no 'upscaled, taking' line"))
    print("PEER " + json.dumps({"s": float(m[-1]), "cpu_s": ru.ru_utime + ru.ru_stime, "process_s": wall,
                                "rss_mb": ru.ru_maxrss // 1024, "out": size, "tile": tile,
                                "argv": " ".join(argv[1:])}), flush=True)


def main():
    if sys.argv[1] == "sdcpp-cli":
        sdcpp_cli(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
        return
    job, model, low, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    from PIL import Image
    img = Image.open(low).convert("RGB")
    if job == "torch":
        import numpy as np
        import torch
        from spandrel import ModelLoader
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        desc = ModelLoader().load_from_file(model)
        net = desc.model.float().eval()
        load = time.perf_counter() - t0
        x = torch.from_numpy(np.asarray(img)).permute(2, 0, 1)[None].float() / 255
        t0, c0 = time.perf_counter(), cpu()
        with torch.inference_mode():
            y = net(x).clamp(0, 1)
        s, c = time.perf_counter() - t0, cpu() - c0
        done(s=s, cpu_s=c, load_s=load, out=list(y.shape))
    elif job == "sdcpp":
        from stable_diffusion_cpp import StableDiffusion  # noqa: F401
        import stable_diffusion_cpp as sdc
        t0 = time.perf_counter()
        up = sdc.StableDiffusion(upscaler_path=model, n_threads=threads, verbose=False)
        load = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), cpu()
        out = up.upscale(images=[img], upscale_factor=4)
        s, c = time.perf_counter() - t0, cpu() - c0
        done(s=s, cpu_s=c, load_s=load, out=list(out[0].size))
    else:
        raise SystemExit("unknown job " + job)


if __name__ == "__main__":
    main()
