"""Goldens for the ControlNet control-image preprocessors and resize
(engine/pipeline/control_pre.c), computed by the libraries the field uses:

- canny: OpenCV's cv2.Canny(gray, low, high) (apertureSize 3, L2gradient
  False) on cv2.cvtColor(rgb, COLOR_RGB2GRAY), as ControlNet's canny
  annotator calls it, on three test images and several threshold pairs;
- scribble: the threshold of ControlNet's scribble demos
  (detected_map[np.min(img, axis=2) < 127] = 255) and cv2.dilate with a
  (2r+1) x (2r+1) square of ones;
- resize: diffusers' ControlNet control_image_processor (VaeImageProcessor,
  do_convert_rgb=True, do_normalize=False), i.e. PIL's resize(LANCZOS) then
  / 255, taken from the processor itself.

Usage: python tests/reference/make_control_pre.py
       (writes tests/golden/pipeline/control_pre.safetensors)
"""
import os

import cv2
import numpy as np
import torch
from diffusers.image_processor import VaeImageProcessor
from PIL import Image, ImageDraw, ImageFilter
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden", "pipeline")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(25)


def shapes(w=192, h=160):
    """Antialiased shapes at many angles on a gradient, with mild noise."""
    big = Image.new("RGB", (w * 4, h * 4))
    d = ImageDraw.Draw(big)
    for y in range(h * 4):
        d.line([(0, y), (w * 4, y)], fill=(40 + y * 100 // (h * 4), 90, 160 - y * 90 // (h * 4)))
    d.ellipse([40, 30, 300, 260], fill=(230, 200, 40))
    d.polygon([(420, 40), (740, 120), (520, 380)], fill=(20, 160, 70))
    d.rectangle([100, 360, 360, 600], fill=(250, 250, 250), outline=(0, 0, 0), width=12)
    for i in range(9):
        a = i * np.pi / 9
        cx, cy = 580, 500
        d.line([(cx, cy), (cx + 150 * np.cos(a), cy - 150 * np.sin(a))], fill=(10, 10, 10), width=6)
    img = np.asarray(big.resize((w, h), Image.LANCZOS)).astype(np.int16)
    img = img + rng.integers(-6, 7, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def field(w=160, h=128):
    """Smoothed colour noise: many weak edges, where hysteresis decides."""
    n = rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)
    img = Image.fromarray(n).resize((w, h), Image.BICUBIC).filter(ImageFilter.GaussianBlur(1.2))
    return np.asarray(img).copy()


def zone_plate(w=160, h=160):
    """A zone plate (edges in every direction and frequency) over a sketch."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r2 = (x - w * 0.4) ** 2 + (y - h * 0.55) ** 2
    z = 0.5 + 0.5 * np.cos(r2 / 90.0)
    img = np.stack([z * 220 + 20, (1 - z) * 200 + 30, 128 + 90 * np.sin(x / 7.0)], -1)
    sketch = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(sketch)
    d.line([(5, 150), (60, 20), (150, 90), (110, 150)], fill=(0, 0, 0), width=3)
    d.arc([90, 5, 155, 70], 20, 300, fill=(255, 255, 255), width=2)
    return np.asarray(sketch).copy()


T = {}
images = {"shapes": shapes(), "field": field(), "zone": zone_plate()}
thresholds = [(100, 200), (50, 100), (20, 60), (100.7, 150.2), (0, 0)]
T["canny.thresholds"] = torch.tensor(thresholds, dtype=torch.float32)
for name, img in images.items():
    T[f"canny.{name}.image"] = torch.from_numpy(img)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    for i, (lo, hi) in enumerate(thresholds):
        e = cv2.Canny(gray, lo, hi, apertureSize=3, L2gradient=False)
        T[f"canny.{name}.edges{i}"] = torch.from_numpy(e.copy())
        print(f"canny {name} {lo},{hi}: {int((e > 0).sum())} edge pixels of {e.size}")

# scribble: a drawing with dark and mid-grey strokes, antialiased edges
sk = Image.new("RGB", (96, 80), (255, 255, 255))
d = ImageDraw.Draw(sk)
d.ellipse([8, 8, 50, 46], outline=(0, 0, 0), width=3)
d.line([(60, 70), (90, 10)], fill=(126, 126, 126), width=2)
d.line([(55, 10), (85, 40)], fill=(127, 127, 127), width=2)
d.line([(10, 70), (40, 60)], fill=(200, 30, 30), width=4)
sk = np.asarray(sk.filter(ImageFilter.GaussianBlur(0.7))).copy()
T["scribble.image"] = torch.from_numpy(sk)
for r in (0, 1, 3):
    m = np.zeros(sk.shape[:2], np.uint8)
    m[np.min(sk, axis=2) < 127] = 255
    if r:
        m = cv2.dilate(m, np.ones((2 * r + 1, 2 * r + 1), np.uint8))
    T[f"scribble.dilate{r}"] = torch.from_numpy(m)

# resize: diffusers' control image processor on a PIL image
proc = VaeImageProcessor(vae_scale_factor=8, do_convert_rgb=True, do_normalize=False)
src = images["shapes"]
for i, (w, h) in enumerate([(64, 48), (224, 176), (96, 160), (192, 160)]):
    t = proc.preprocess(Image.fromarray(src), height=h, width=w)  # [1, 3, h, w] in 0..1
    # the processor's values are PIL's 8-bit results / 255: kept as 8 bits
    T[f"resize{i}.out"] = (t[0].permute(1, 2, 0) * 255).round().to(torch.uint8).contiguous()
# float images: PIL mode "F" per channel (float weights, no rounding)
srcf = (images["field"].astype(np.float32) / 255.0)
# (the input is canny.field.image / 255 in float32)
ch = [np.asarray(Image.fromarray(srcf[:, :, c], "F").resize((72, 40), Image.LANCZOS)) for c in range(3)]
T["resizef.out"] = torch.from_numpy(np.clip(np.stack(ch, -1), 0, 1).astype(np.float32))

save_file(T, os.path.join(OUT, "control_pre.safetensors"), metadata={"opencv": cv2.__version__})
print(f"control_pre.safetensors: {len(T)} tensors (opencv {cv2.__version__})")
