#!/usr/bin/env python3
"""Goldens for the ESRGAN-class upscalers (engine/models/esrgan): tiny
random-weight nets built with spandrel's own architecture classes (the
loader of chaiNNer and ComfyUI), saved as .safetensors in the key layouts
users' files have, plus inputs and the reference outputs.

Every file written is read back with spandrel's ModelLoader (its key
detection, its old/new-key conversion, its scale detection); the script fails
unless that gives the architecture, scale and weights it was built from, and
the reference outputs are those of the model spandrel loaded.

Writes tests/golden/esrgan/:
  rrdb_old_x4.safetensors   RRDBNet, original ESRGAN keys (model.1.sub.N.RDBr.convk.0),
                            32 features, 2 blocks, x4, f16
  rrdb_new_x4.safetensors   RRDBNet, Real-ESRGAN keys (body.N.rdbr.convk, conv_up1/2),
                            32 features, 1 block, x4, f16
  rrdb_new_x2.safetensors   Real-ESRGAN x2plus layout: pixel-unshuffle 2 (12 input
                            channels), 1 block, x2, f16
  rrdb_old_x1.safetensors   pixel-unshuffle 4 (48 input channels), old keys, 1 block, x1, f16
  compact_x4.safetensors    SRVGGNetCompact, 32 features, 4 body convs, PReLU, x4, f32
  compact_x2.safetensors    SRVGGNetCompact, 24 features, 2 body convs, x2, bf16
  esrgan_io.safetensors     <name>_in [1,3,H,W] (RGB 0..1) -> <name>_out [1,3,H*s,W*s];
                            big_in [1,3,44,60] -> rrdb_old_x4_big_out, compact_x4_big_out
                            (whole-image references for the tiled checks)
  rgba_in.png               a 44x60 RGBA picture with a soft-edged hole in its alpha
  rgba_compact_x4.png       compact_x4 on it as Real-ESRGAN's RealESRGANer.enhance treats
                            RGBA (alpha_upsampler 'realesrgan'): RGB through the net, alpha
                            replicated to RGB through the net and back to grey with
                            0.299 R + 0.587 G + 0.114 B, clamped, *255 rounded
  rgba_compact_x4_s2.png    the same resized to x2 with PIL's BILINEAR (antialiased
                            triangle filter), as `--scale 2`

Usage: /work/refvenv/bin/python tests/reference/make_esrgan.py [OUTDIR]
       make_esrgan.py --bench DIR   full-size nets for bench/ (never committed):
         DIR/esrgan-x4-23b.safetensors (RRDBNet 64 features, 23 blocks, Real-ESRGAN
         keys, f16, as RealESRGAN_x4plus), DIR/compact-x4.safetensors
         (SRVGGNetCompact 64 features, 32 convs, as realesr-general-x4v3, f16)
"""
import os
import sys

import torch
from safetensors.torch import save_file
import spandrel
from spandrel import ModelLoader
from spandrel.architectures.ESRGAN import ESRGAN
from spandrel.architectures.Compact import Compact

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "golden", "esrgan")
assert spandrel.__version__ == "0.4.2", spandrel.__version__


def randomize(model, seed, dtype):
    """Random weights with every parameter in play (PReLU slopes per channel,
    non-zero biases), rounded to the storage dtype."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.ndim == 1 and "body." in name and p.shape[0] == getattr(model, "num_feat", -1) \
                    and name.endswith("weight"):  # PReLU slopes
                v = 0.25 + 0.2 * torch.randn(p.shape, generator=g)
            elif p.ndim == 4:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                v = torch.randn(p.shape, generator=g) * (1.0 / fan_in) ** 0.5
            else:
                v = 0.05 * torch.randn(p.shape, generator=g)
            p.copy_(v.to(dtype).to(torch.float32))
    return model


def new_keys(sd, n_blocks, n_up):
    """Old ESRGAN keys -> Real-ESRGAN / basicsr RRDBNet keys."""
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if k.startswith("model.0."):
            out["conv_first." + parts[-1]] = v
        elif k.startswith("model.1.sub.") and ".RDB" in k:
            # model.1.sub.N.RDBr.convk.0.weight -> body.N.rdbr.convk.weight
            out["body.%s.rdb%s.%s.%s" % (parts[3], parts[4][3:], parts[5], parts[-1])] = v
        elif k.startswith("model.1.sub.%d." % n_blocks):
            out["conv_body." + parts[-1]] = v
        else:
            idx = int(parts[1])
            if idx % 3 == 0 and 3 <= idx <= 3 * n_up:
                out["conv_up%d.%s" % (idx // 3, parts[-1])] = v
            elif idx == 3 * n_up + 2:
                out["conv_hr." + parts[-1]] = v
            elif idx == 3 * n_up + 4:
                out["conv_last." + parts[-1]] = v
            else:
                raise SystemExit("unmapped key " + k)
    return out


def check_loaded(path, model, arch_id, scale):
    """spandrel reads the file back: same architecture, scale and weights."""
    desc = ModelLoader().load_from_file(path)
    assert desc.architecture.id == arch_id, (path, desc.architecture.id)
    assert desc.scale == scale, (path, desc.scale, scale)
    ref = model.state_dict()
    got = desc.model.state_dict()
    assert set(ref) == set(got), (path, set(ref) ^ set(got))
    for k in ref:
        assert torch.equal(ref[k], got[k].float()), (path, k)
    return desc.model.float().eval()


def save(path, sd, dtype):
    save_file({k: v.to(dtype).contiguous() for k, v in sd.items()}, path)


def run(model, x):
    with torch.no_grad():
        return model(x)


def make_rrdb(name, seed, nf, nb, arch_scale, shuffle, keys, dtype, scale):
    in_nc = 3 * shuffle * shuffle
    m = ESRGAN(in_nc=in_nc, out_nc=3, num_filters=nf, num_blocks=nb, scale=arch_scale,
               shuffle_factor=shuffle if shuffle > 1 else None)
    randomize(m, seed, dtype).eval()
    sd = m.state_dict()
    n_up = {1: 0, 2: 1, 4: 2, 8: 3}[arch_scale]
    if keys == "new":
        sd = new_keys(sd, nb, n_up)
    path = os.path.join(OUT, name + ".safetensors")
    save(path, sd, dtype)
    return check_loaded(path, m, "ESRGAN", scale)


def make_compact(name, seed, nf, nc, scale, dtype):
    m = Compact(num_in_ch=3, num_out_ch=3, num_feat=nf, num_conv=nc, upscale=scale)
    randomize(m, seed, dtype).eval()
    path = os.path.join(OUT, name + ".safetensors")
    save(path, m.state_dict(), dtype)
    return check_loaded(path, m, "Compact", scale)


def image(seed, h, w):
    """A test image with edges and texture in 0..1."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([0.5 + 0.4 * torch.sin(6 * xx + 2 * yy), (xx > 0.5).float() * 0.6 + 0.2,
                        0.5 + 0.3 * torch.cos(9 * yy)])
    return (0.7 * base + 0.3 * torch.rand((3, h, w), generator=g)).clamp(0, 1)[None]


def rgba(model):
    import numpy as np
    from PIL import Image
    h, w = 44, 60
    rgb = (image(77, h, w)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.clip((np.hypot(yy - 20, xx - 30) - 8) * 40, 0, 255).astype(np.uint8)  # a soft hole
    a[:, :6] = 255
    Image.fromarray(np.dstack([rgb, a]), "RGBA").save(os.path.join(OUT, "rgba_in.png"))
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    al = torch.from_numpy(a)[None, None].float().repeat(1, 3, 1, 1) / 255
    y = run(model, x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    ya = run(model, al).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    ya = np.clip(0.299 * ya[..., 0] + 0.587 * ya[..., 1] + 0.114 * ya[..., 2], 0, 1)
    out = np.dstack([y, ya[..., None]])
    Image.fromarray((out * 255).round().astype(np.uint8), "RGBA").save(os.path.join(OUT, "rgba_compact_x4.png"))
    planes = [Image.fromarray(out[..., c].astype(np.float32), "F").resize((2 * w, 2 * h), Image.BILINEAR)
              for c in range(4)]
    s2 = np.clip(np.dstack([np.asarray(p) for p in planes]), 0, 1)
    Image.fromarray((s2 * 255).round().astype(np.uint8), "RGBA").save(os.path.join(OUT, "rgba_compact_x4_s2.png"))


def bench(d):
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "esrgan-x4-23b.safetensors")
    if not os.path.exists(p):
        m = ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4)
        randomize(m, 100, torch.float16)
        save(p, new_keys(m.state_dict(), 23, 2), torch.float16)
        check_loaded(p, m, "ESRGAN", 4)
    p = os.path.join(d, "compact-x4.safetensors")
    if not os.path.exists(p):
        m = Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4)
        randomize(m, 101, torch.float16)
        save(p, m.state_dict(), torch.float16)
        check_loaded(p, m, "Compact", 4)
    print("bench nets in", d)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--bench":
        bench(sys.argv[2])
        return
    os.makedirs(OUT, exist_ok=True)
    io = {}
    nets = {
        "rrdb_old_x4": (make_rrdb("rrdb_old_x4", 1, 32, 2, 4, 1, "old", torch.float16, 4), 4, (20, 26)),
        "rrdb_new_x4": (make_rrdb("rrdb_new_x4", 2, 32, 1, 4, 1, "new", torch.float16, 4), 4, (18, 23)),
        "rrdb_new_x2": (make_rrdb("rrdb_new_x2", 3, 32, 1, 4, 2, "new", torch.float16, 2), 2, (21, 19)),
        "rrdb_old_x1": (make_rrdb("rrdb_old_x1", 4, 32, 1, 4, 4, "old", torch.float16, 1), 1, (23, 18)),
        "compact_x4": (make_compact("compact_x4", 5, 32, 4, 4, torch.float32), 4, (20, 26)),
        "compact_x2": (make_compact("compact_x2", 6, 24, 2, 2, torch.bfloat16), 2, (17, 22)),
    }
    for i, (name, (model, s, (h, w))) in enumerate(sorted(nets.items())):
        x = image(10 + i, h, w)
        y = run(model, x)
        assert y.shape == (1, 3, h * s, w * s), (name, y.shape)
        io[name + "_in"] = x
        io[name + "_out"] = y
        print("%s: in %s out %s |out| max %.3f" % (name, tuple(x.shape), tuple(y.shape), y.abs().max()))
    big = image(50, 44, 60)
    io["big_in"] = big
    io["rrdb_old_x4_big_out"] = run(nets["rrdb_old_x4"][0], big)
    io["compact_x4_big_out"] = run(nets["compact_x4"][0], big)
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(OUT, "esrgan_io.safetensors"))
    rgba(nets["compact_x4"][0])
    print("goldens in", OUT)


if __name__ == "__main__":
    main()
