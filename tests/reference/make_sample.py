"""Goldens for engine/sample: torch.randn on the CPU, diffusers' randn_tensor
with per-image generators, and every sampler's final latent with a
closed-form stand-in denoiser (defined identically in tests/sample/).

Usage: python tests/reference/make_sample.py   (writes tests/golden/sample/)
"""
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden", "sample")
os.makedirs(OUT, exist_ok=True)


# ---------------------------------------------------------------- randn ----
def make_randn():
    # (seed, shape): odd sizes, numel < 16 (scalar double path), numel % 16
    # != 0 (torch redraws the tail), seeds >= 2**32 (only low 32 bits used).
    cases = [
        (0, [1]), (1, [5]), (2, [15]), (3, [16]), (4, [17]), (5, [31]),
        (6, [3, 5, 7]), (7, [2, 1, 3]), (8, [1, 4, 8, 8]), (9, [1, 4, 9, 7]),
        (42, [4, 64, 64]), (1234, [1, 4, 64, 64]), (2**31 - 1, [33]),
        (2**32 + 5, [33]), (2**63 - 1, [100]), (123456789, [1, 4, 13, 11]),
        (4294967295, [7, 3]), (77, [10000]), (78, [1, 4, 96, 64]),
        (31337, [2, 4, 8, 8]), (5, [3, 3]), (999, [47]),
    ]
    t = {}
    meta = []
    for i, (seed, shape) in enumerate(cases):
        torch.manual_seed(seed)
        t[f"randn_{i}"] = torch.randn(*shape)
        meta.append([seed if seed < 2**63 else seed - 2**64, int(np.prod(shape))])
    t["cases"] = torch.tensor(meta, dtype=torch.int64)
    # Several draws from one generator (the small path caches the second
    # Box-Muller value across calls): seed 11, numels 3, 3, 20, 7, 1, 16, 1.
    seq = [3, 3, 20, 7, 1, 16, 1]
    g = torch.Generator().manual_seed(11)
    t["sequence"] = torch.cat([torch.randn(n, generator=g) for n in seq])
    t["sequence_numels"] = torch.tensor(seq, dtype=torch.int64)
    # diffusers pipelines with a list of generators (seed + i per image).
    from diffusers.utils.torch_utils import randn_tensor
    gens = [torch.Generator().manual_seed(1000 + i) for i in range(3)]
    t["batch_seed1000_3x4x8x8"] = randn_tensor((3, 4, 8, 8), generator=gens)
    save_file({k: v.contiguous() for k, v in t.items()},
              os.path.join(OUT, "randn.safetensors"))
    print("randn: %d cases" % len(cases))


# --------------------------------------------------------------- philox ----
def make_philox():
    """AUTOMATIC1111's "NV" generator (its CPU imitation of
    torch.randn(device='cuda')): modules/rng_philox.py of
    AUTOMATIC1111/stable-diffusion-webui, commit ef1698fd. It is not part of
    this repository: set LDM_A1111_RNG_PHILOX to a local copy of that file to
    regenerate philox.safetensors; without it the committed file is kept."""
    path = os.environ.get("LDM_A1111_RNG_PHILOX")
    if not path:
        print("philox: LDM_A1111_RNG_PHILOX not set, keeping committed golden")
        return
    import importlib.util
    spec = importlib.util.spec_from_file_location("rng_philox", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cases = [(0, [3, 4]), (1, [1, 4, 8, 8]), (42, [4, 64, 64]),
             (2**32 - 1, [17]), (2**32 + 7, [5, 7]), (123456789, [1, 4, 13, 11])]
    t = {}
    meta = []
    for i, (seed, shape) in enumerate(cases):
        g = mod.Generator(seed)
        a = g.randn(shape)
        b = g.randn([5])  # the next draw (offset 1) of the same generator
        t[f"philox_{i}"] = torch.from_numpy(np.ascontiguousarray(a)).float()
        t[f"philox_{i}_next"] = torch.from_numpy(np.ascontiguousarray(b)).float()
        meta.append([seed, int(np.prod(shape))])
    t["cases"] = torch.tensor(meta, dtype=torch.int64)
    save_file(t, os.path.join(OUT, "philox.safetensors"))
    print("philox: %d cases" % len(cases))


if __name__ == "__main__":
    what = sys.argv[1:] or ["randn", "philox", "samplers"]
    if "randn" in what:
        make_randn()
    if "philox" in what:
        make_philox()
    if "samplers" in what and "make_samplers" in globals():
        make_samplers()
