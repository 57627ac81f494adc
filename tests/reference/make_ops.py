"""Goldens for engine/ops: every op computed by torch / diffusers on seeded
random inputs, at odd sizes (H, W not multiples of 8, C not multiples of 16,
batch 2, stride 2) and with f32 / f16 / bf16 weights. Image tensors are NCHW
as in torch; the C test converts them to channels-last with the engine's own
layout helpers. Each case also stores its integer/float parameters.

Usage: python tests/reference/make_ops.py   (writes tests/golden/ops/ops.safetensors)
"""
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.activations import GEGLU

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "golden", "ops")
os.makedirs(OUT, exist_ok=True)

T = {}
DT = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def rnd(seed, *shape, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale


def params(name, *vals, dtype=torch.int64):
    T[name + ".params"] = torch.tensor(vals, dtype=dtype)


# ------------------------------------------------------------- linear ----
def make_linear():
    cases = [  # name, rows shape, K, N, weight dtype, bias
        ("linear_f32", (2, 7), 36, 20, "f32", True),
        ("linear_f16", (3,), 20, 36, "f16", True),
        ("linear_bf16", (5,), 36, 20, "bf16", False),
        ("linear_f16_nobias", (2, 9), 64, 40, "f16", False),
    ]
    for i, (name, rows, K, N, wd, bias) in enumerate(cases):
        lin = torch.nn.Linear(K, N, bias=bias)
        torch.manual_seed(100 + i)
        torch.nn.init.normal_(lin.weight, std=1 / math.sqrt(K))
        if bias:
            torch.nn.init.normal_(lin.bias, std=0.5)
        lin = lin.to(DT[wd]).float()  # weights rounded to the stored dtype
        x = rnd(200 + i, *rows, K)
        with torch.no_grad():
            y = lin(x)
        T[name + ".x"] = x
        T[name + ".w"] = lin.weight.detach().to(DT[wd])
        if bias:
            T[name + ".b"] = lin.bias.detach().to(DT[wd])
        T[name + ".y"] = y
        params(name, int(x.numel() // K), K, N)


# ------------------------------------------------------------- conv2d ----
def make_conv():
    cases = [  # name, B, Cin, H, W, Cout, k, stride, pad, wdtype, bias
        ("conv_3x3_s1", 2, 20, 13, 7, 36, 3, 1, 1, "f32", True),
        ("conv_3x3_s2_f16", 2, 36, 13, 7, 20, 3, 2, 1, "f16", True),
        ("conv_1x1_bf16", 1, 20, 9, 11, 36, 1, 1, 0, "bf16", True),
        ("conv_in_nobias", 2, 4, 8, 8, 20, 3, 1, 1, "f32", False),
        ("conv_3x3_s2_even", 1, 20, 12, 10, 20, 3, 2, 1, "bf16", True),
        ("conv_1x1_b2", 2, 36, 13, 7, 20, 1, 1, 0, "f16", False),
        ("conv_3x3_wide", 1, 8, 5, 37, 12, 3, 1, 1, "f32", True),
        ("conv_3x3_c40", 2, 40, 11, 9, 48, 3, 1, 1, "f16", True),
        ("conv_out_rgb", 2, 24, 19, 13, 3, 3, 1, 1, "f16", True),   # few output channels
        ("conv_out_s2", 1, 16, 11, 9, 4, 3, 2, 1, "f32", False),
        ("conv_3x3_tiles", 1, 32, 45, 38, 32, 3, 1, 1, "f16", True),  # several Winograd tile blocks
    ]
    for i, (name, B, Cin, H, W, Cout, k, s, p, wd, bias) in enumerate(cases):
        conv = torch.nn.Conv2d(Cin, Cout, k, stride=s, padding=p, bias=bias)
        torch.manual_seed(300 + i)
        torch.nn.init.normal_(conv.weight, std=1 / math.sqrt(Cin * k * k))
        if bias:
            torch.nn.init.normal_(conv.bias, std=0.5)
        conv = conv.to(DT[wd]).float()
        x = rnd(400 + i, B, Cin, H, W)
        with torch.no_grad():
            y = conv(x)
        T[name + ".x"] = x
        T[name + ".w"] = conv.weight.detach().to(DT[wd])
        if bias:
            T[name + ".b"] = conv.bias.detach().to(DT[wd])
        T[name + ".y"] = y
        params(name, B, Cin, H, W, Cout, k, s, p)


# -------------------------------------------------------------- norms ----
def make_norms():
    gn = [  # name, shape, groups, eps, affine dtype or None, silu, offset
        ("gn_f32", (2, 64, 13, 7), 32, 1e-6, "f32", False, 0.0),
        ("gn_f16_silu", (2, 96, 5, 9), 32, 1e-5, "f16", True, 0.0),
        ("gn_noaffine_offset", (1, 20, 7, 13), 4, 1e-6, None, False, 5.0),
        ("gn_bf16_silu", (2, 40, 3, 3), 8, 1e-6, "bf16", True, -2.0),
    ]
    for i, (name, shape, G, eps, wd, silu, off) in enumerate(gn):
        C = shape[1]
        x = rnd(500 + i, *shape, scale=2.0) + off
        if wd:
            g = (1 + rnd(600 + i, C, scale=0.3)).to(DT[wd])
            b = rnd(700 + i, C, scale=0.3).to(DT[wd])
            y = F.group_norm(x, G, g.float(), b.float(), eps)
            T[name + ".gamma"], T[name + ".beta"] = g, b
        else:
            y = F.group_norm(x, G, None, None, eps)
        if silu:
            y = F.silu(y)
        T[name + ".x"], T[name + ".y"] = x, y
        params(name, shape[0], C, shape[2], shape[3], G, int(silu))
        T[name + ".eps"] = torch.tensor([eps], dtype=torch.float32)
    ln = [  # name, shape, eps, affine dtype
        ("ln_f32", (2, 11, 36), 1e-5, "f32"),
        ("ln_bf16", (7, 20), 1e-6, "bf16"),
        ("ln_f16_offset", (3, 5, 77), 1e-5, "f16"),
    ]
    for i, (name, shape, eps, wd) in enumerate(ln):
        C = shape[-1]
        x = rnd(800 + i, *shape, scale=1.5) + (3.0 if "offset" in name else 0.0)
        g = (1 + rnd(900 + i, C, scale=0.3)).to(DT[wd])
        b = rnd(1000 + i, C, scale=0.3).to(DT[wd])
        y = F.layer_norm(x, (C,), g.float(), b.float(), eps)
        T[name + ".x"], T[name + ".gamma"], T[name + ".beta"] = x, g, b
        T[name + ".y"] = y
        params(name, int(x.numel() // C), C)
        T[name + ".eps"] = torch.tensor([eps], dtype=torch.float32)


# -------------------------------------------------------- activations ----
def make_activations():
    x = rnd(1100, 1003, scale=4.0)
    x[:5] = torch.tensor([0.0, -0.0, 30.0, -30.0, -100.0])
    T["act.x"] = x
    T["act.silu"] = F.silu(x)
    T["act.gelu"] = F.gelu(x)
    T["act.gelu_tanh"] = F.gelu(x, approximate="tanh")
    T["act.quick_gelu"] = x * torch.sigmoid(1.702 * x)  # transformers QuickGELU
    # diffusers GEGLU = proj (Linear dim_in -> 2*dim_out) then hidden*gelu(gate)
    torch.manual_seed(1200)
    geglu = GEGLU(20, 36)
    xg = rnd(1201, 2, 5, 20)
    with torch.no_grad():
        T["geglu.proj"] = geglu.proj(xg)
        T["geglu.y"] = geglu(xg)
    T["geglu.x"] = xg
    T["geglu.w"] = geglu.proj.weight.detach().clone()
    T["geglu.b"] = geglu.proj.bias.detach().clone()
    params("geglu", 10, 20, 36)
    xs = rnd(1300, 7, 37, scale=5.0)
    T["softmax_a.x"], T["softmax_a.y"] = xs, F.softmax(xs, dim=-1)
    xs = rnd(1301, 3, 1000, scale=3.0)
    T["softmax_b.x"], T["softmax_b.y"] = xs, F.softmax(xs, dim=-1)


# ---------------------------------------------------------- attention ----
def make_attention():
    cases = [  # name, B, heads, dh, Tq, Tk, causal
        ("attn_self", 2, 2, 20, 13, 13, False),
        ("attn_cross", 2, 2, 20, 13, 9, False),
        ("attn_causal", 2, 3, 8, 11, 11, True),
        ("attn_long", 1, 1, 16, 300, 77, False),
        ("attn_dh40", 1, 2, 40, 37, 37, False),
        ("attn_keyblocks", 1, 1, 16, 40, 2100, False),  # key blocks (bounded scratch)
    ]
    for i, (name, B, h, dh, Tq, Tk, causal) in enumerate(cases):
        q = rnd(1400 + i, B, Tq, h * dh)
        k = rnd(1500 + i, B, Tk, h * dh)
        v = rnd(1600 + i, B, Tk, h * dh)

        def heads(t):
            return t.view(B, t.shape[1], h, dh).transpose(1, 2)

        o = F.scaled_dot_product_attention(heads(q), heads(k), heads(v),
                                           is_causal=causal)
        o = o.transpose(1, 2).reshape(B, Tq, h * dh)
        T[name + ".q"], T[name + ".k"], T[name + ".v"] = q, k, v
        T[name + ".out"] = o
        params(name, B, h, dh, Tq, Tk, int(causal))


# ------------------------------------------------ resampling and misc ----
def make_misc():
    x = rnd(1700, 2, 20, 5, 7)
    T["upsample.x"] = x
    T["upsample.y"] = F.interpolate(x, scale_factor=2.0, mode="nearest")
    params("upsample", 2, 20, 5, 7)
    a, b = rnd(1701, 2, 20, 5, 3), rnd(1702, 2, 12, 5, 3)
    T["concat.a"], T["concat.b"], T["concat.y"] = a, b, torch.cat([a, b], 1)
    params("concat", 2, 20, 12, 5, 3)
    a, b = rnd(1703, 3, 37), rnd(1704, 3, 37)
    T["add.a"], T["add.b"], T["add.y"] = a, b, a + b
    bias = rnd(1705, 37).to(torch.float16)
    T["add_bias.bias"], T["add_bias.y"] = bias, a + bias.float()


def make_timestep():
    t = torch.tensor([0.0, 1.0, 999.0, 500.5, 261.0, 47.0])
    cases = [  # name, dim, flip_sin_to_cos, downscale_freq_shift, scale, max_period
        ("temb_sd", 320, True, 0.0, 1.0, 10000),
        ("temb_shift1", 256, False, 1.0, 1.0, 10000),
        ("temb_odd", 33, True, 1.0, 2.5, 5000),
    ]
    T["temb.t"] = t
    for name, dim, flip, shift, scale, mp in cases:
        T[name + ".y"] = get_timestep_embedding(
            t, dim, flip_sin_to_cos=flip, downscale_freq_shift=shift,
            scale=scale, max_period=mp)
        T[name + ".params"] = torch.tensor([dim, float(flip), shift, scale, mp],
                                           dtype=torch.float32)


# ----------------------------------------------- half-float conversion ----
def make_half():
    special = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 1e5, -1e5,
               2.0 ** -24, 2.0 ** -25, 1.5 * 2.0 ** -25, 2.0 ** -26, 3 * 2.0 ** -25,
               6.1e-5, 6.0e-5, 1e-8, 1.0 / 3.0, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11,
               1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 3.0e38, -3.0e38, 3.3895e38,
               1e-39, -1e-39, 1e-45, float("inf"), float("-inf"), float("nan")]
    x = torch.cat([torch.tensor(special, dtype=torch.float32),
                   rnd(1800, 500, scale=100.0), rnd(1801, 500, scale=1e-4),
                   rnd(1802, 500) * torch.exp(rnd(1803, 500, scale=20.0))])
    T["half.x"] = x
    T["half.f16"] = x.half()
    T["half.bf16"] = x.bfloat16()
    T["half.f16_to_f32"] = x.half().float()
    T["half.bf16_to_f32"] = x.bfloat16().float()


make_linear()
make_conv()
make_norms()
make_activations()
make_attention()
make_misc()
make_timestep()
make_half()
save_file({k: v.contiguous() for k, v in T.items()},
          os.path.join(OUT, "ops.safetensors"),
          metadata={"torch": torch.__version__})
print(f"ops.safetensors: {len(T)} tensors")
