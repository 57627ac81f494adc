"""Goldens for the edges of engine/ops that random inputs never reach:
group norm over flat (zero-variance) groups, whose right answer is 0 (or
beta) and never NaN, and over groups whose variance is as small as epsilon,
where epsilon itself moves the result (epsilon x10 moves it by > 10 %).
torch's F.group_norm evaluated in float64 on the float32 inputs, stored as
float32 (the engine keeps its statistics in double).

Usage: python tests/reference/make_ops_edges.py
       (writes tests/golden/ops/gn_edges.safetensors)
"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden", "ops")
os.makedirs(OUT, exist_ok=True)
T = {}


def rnd(seed, *shape):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def group_input(seed, B, C, H, W, G, kinds):
    """x [B, C, H, W] whose group g of image b is built as kinds[b][g]:
    ("flat", v): every element v; ("small", offset, std): offset + std * N(0, 1)."""
    x = torch.empty(B, C, H, W)
    cpg = C // G
    for b in range(B):
        for g in range(G):
            k = kinds[b][g]
            sl = x[b, g * cpg:(g + 1) * cpg]
            if k[0] == "flat":
                sl.fill_(k[1])
            else:
                sl.copy_(k[1] + k[2] * rnd(seed + 10 * b + g, cpg, H, W))
    return x


def make_gn():
    cases = [  # name, shape, groups, eps, kinds per image, affine
        # no affine: flat groups give exactly 0; small-variance groups with
        # var ~ eps (std 1e-3, eps 1e-6) and var ~ 10 eps. Their means stay
        # within a few std of 0: x * rstd + shift in float32 (torch's form as
        # well as ours) loses |mean| * rstd * 2^-24 to rounding.
        ("gn_flat", (2, 16, 5, 7), 4, 1e-6,
         [[("flat", 1.0), ("small", 2e-3, 1e-3), ("flat", -2.0), ("small", 0.0, 3e-3)],
          [("flat", 0.0), ("flat", 0.5), ("small", -1e-3, 1e-3), ("small", 0.0, 1e-3)]], None),
        # affine (+SiLU), eps 1e-5 as the VAE uses: a flat group at 0 gives
        # silu(beta); small-variance groups with var ~ eps
        ("gn_flat_affine_silu", (1, 24, 3, 5), 6, 1e-5,
         [[("flat", 0.0), ("small", 5e-3, 3e-3), ("small", 0.0, 1e-2), ("flat", 0.0),
           ("small", -4e-3, 2e-3), ("small", 0.0, 3e-3)]], "silu"),
    ]
    for i, (name, shape, G, eps, kinds, affine) in enumerate(cases):
        B, C, H, W = shape
        x = group_input(1100 + 100 * i, B, C, H, W, G, kinds)
        xd = x.double()
        if affine:
            g = 1 + 0.3 * rnd(1300 + i, C)
            b = 0.3 * rnd(1400 + i, C)
            y = F.group_norm(xd, G, g.double(), b.double(), eps)
            y = F.silu(y)
            T[name + ".gamma"], T[name + ".beta"] = g, b
        else:
            y = F.group_norm(xd, G, None, None, eps)
        T[name + ".x"], T[name + ".y"] = x, y.float()
        T[name + ".params"] = torch.tensor([B, C, H, W, G, int(affine == "silu")],
                                           dtype=torch.int64)
        T[name + ".eps"] = torch.tensor([eps], dtype=torch.float32)
        # how much epsilon matters here: the same with epsilon x10
        y10 = F.group_norm(xd, G, T[name + ".gamma"].double() if affine else None,
                           T[name + ".beta"].double() if affine else None, eps * 10)
        if affine:
            y10 = F.silu(y10)
        print(f"{name}: max |y(eps) - y(10 eps)| = {(y - y10).abs().max().item():.3g}")


make_gn()
save_file({k: v.contiguous() for k, v in T.items()},
          os.path.join(OUT, "gn_edges.safetensors"),
          metadata={"torch": torch.__version__})
print(f"gn_edges.safetensors: {len(T)} tensors")
