#!/usr/bin/env python3
"""Golden for ldm_image_resize (tests/pipeline/test_pixels.c):
torch.nn.functional.interpolate(mode="bilinear", antialias=True,
align_corners=False) -- the same triangle filter as PIL's BILINEAR resize,
widened when shrinking, taps outside the image dropped -- on a random
37x29 RGBA float image, to larger, smaller, mixed and the same size.
Writes tests/golden/pipeline/resize.safetensors: src [29, 37, 4] and one
[h, w, 4] tensor per target, named <kind>_<w>x<h>.
Usage: /work/refvenv/bin/python tests/reference/make_resize_golden.py"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden", "pipeline", "resize.safetensors")

g = torch.Generator().manual_seed(20261207)
src = torch.rand(29, 37, 4, generator=g, dtype=torch.float64).to(torch.float32)
out = {"src": src}
for kind, w, h in (("up", 64, 48), ("down", 13, 11), ("mixed", 23, 57), ("same", 37, 29)):
    x = src.permute(2, 0, 1)[None].to(torch.float64)  # NCHW, in double: the reference
    y = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    out["%s_%dx%d" % (kind, w, h)] = y[0].permute(1, 2, 0).to(torch.float32).contiguous()
save_file(out, OUT, metadata={"reference": "torch %s F.interpolate bilinear antialias=True" % torch.__version__})
print(OUT, {k: tuple(v.shape) for k, v in out.items()})
