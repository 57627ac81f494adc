"""Golden for the CLI's PNG reader (cli/png_io.c): every PNG of tests/data
that people's images stand for (grey, 16-bit grey, grey+alpha, 4-bit palette
with transparency, RGBA) decoded by Pillow to 8-bit RGBA. The 16-bit file is
reduced as libpng's png_set_strip_16 documents (the high byte of each
sample), since Pillow's own 16 -> 8 bit conversion clips instead.

Usage: python tests/reference/make_png.py
       (writes tests/golden/png/decoded.safetensors)
"""
import os

import numpy as np
import PIL
import torch
from PIL import Image
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
OUT = os.path.join(HERE, "..", "golden", "png")
os.makedirs(OUT, exist_ok=True)
T = {}
for name in ["grey", "grey16", "grey_alpha", "palette", "rgba", "mask40x48"]:
    im = Image.open(os.path.join(DATA, name + ".png"))
    if name == "grey16":
        g = (np.array(im).astype(np.uint16) >> 8).astype(np.uint8)
        rgba = np.stack([g, g, g, np.full_like(g, 255)], axis=-1)
    else:
        rgba = np.array(im.convert("RGBA"))
    T[name] = torch.from_numpy(rgba.copy())
save_file(T, os.path.join(OUT, "decoded.safetensors"), metadata={"pillow": PIL.__version__})
print(f"decoded.safetensors: {len(T)} images (Pillow {PIL.__version__})")
