"""Golden for the inpaint mask blur (--mask-blur PX): AUTOMATIC1111's
convention, which our mask blur follows (engine/pipeline/imageproc.c). A1111
(modules/processing.py, StableDiffusionProcessingImg2Img.init) blurs the mask
per axis with OpenCV:
    kernel_size = 2 * int(2.5 * blur + 0.5) + 1
    cv2.GaussianBlur(mask, (kernel_size, 1), blur)   # then (1, kernel_size)
i.e. sigma = the pixel value, radius int(2.5 sigma + 0.5), OpenCV's default
border (BORDER_REFLECT_101). Computed here by OpenCV itself (opencv-python-
headless, pinned in requirements.txt) on float32 masks: A1111 hands OpenCV
8-bit masks, we keep masks in float, so the golden blurs floats.

Also the overlay that puts the result back over the original image, as
A1111's apply_overlay does: the original with alpha 255 - mask composited
over the generated image by Pillow's Image.alpha_composite (masks in k/255
steps, so Pillow's 8-bit alpha is our float mask exactly).

Usage: python tests/reference/make_mask_blur.py
       (writes tests/golden/pipeline/mask_blur.safetensors)
"""
import os

import cv2
import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden", "pipeline")
os.makedirs(OUT, exist_ok=True)


def a1111_blur(mask, blur):
    k = 2 * int(2.5 * blur + 0.5) + 1
    mask = cv2.GaussianBlur(mask, (k, 1), blur)
    return cv2.GaussianBlur(mask, (1, k), blur)


# 37x29: a hard rectangle touching the left and top edges, a single pixel, a
# soft ramp on the right edge, random grey specks
H, W = 29, 37
rng = np.random.default_rng(31)
mask = np.zeros((H, W), np.float32)
mask[0:12, 0:15] = 1.0
mask[20, 9] = 1.0
mask[8:25, 28:] = np.linspace(0.0, 1.0, W - 28, dtype=np.float32)[None, :]
mask[rng.integers(0, H, 25), rng.integers(0, W, 25)] = rng.random(25, dtype=np.float32)
T = {"mask": torch.from_numpy(mask.copy())}
# 0.5 -> 3 taps, 4 (A1111's and our default) -> 21, 12 -> 61 taps on a
# 29-pixel column (reflected more than once)
sigmas = [0.5, 1.0, 2.5, 4.0, 6.3, 12.0]
T["sigmas"] = torch.tensor(sigmas, dtype=torch.float32)
for i, s in enumerate(sigmas):
    T[f"blur{i}"] = torch.from_numpy(a1111_blur(mask, s).copy())
# overlay: 13x11, mask steps 0, 1..254, 255 in every pattern
h, w = 11, 13
orig = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
gen = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
k = rng.integers(0, 256, (h, w), dtype=np.uint8)
k[0, :4] = 0
k[1, :4] = 255
over = Image.fromarray(np.dstack([orig, 255 - k]), "RGBA")
base = Image.fromarray(np.dstack([gen, np.full((h, w), 255, np.uint8)]), "RGBA")
base.alpha_composite(over)
T["overlay.orig"] = torch.from_numpy(orig.copy())
T["overlay.gen"] = torch.from_numpy(gen.copy())
T["overlay.mask255"] = torch.from_numpy(k.copy())
T["overlay.out"] = torch.from_numpy(np.array(base)[:, :, :3].copy())
save_file(T, os.path.join(OUT, "mask_blur.safetensors"),
          metadata={"opencv": cv2.__version__})
print(f"mask_blur.safetensors: {len(T)} tensors (opencv {cv2.__version__})")
