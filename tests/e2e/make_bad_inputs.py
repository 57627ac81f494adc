#!/usr/bin/env python3
"""Writes the bad inputs tests/e2e/test_bad_input.sh feeds to `ldm` into the
folder given (standard library only: no reference packages needed).

usage: make_bad_inputs.py OUT_DIR SD1_CHECKPOINT SD1_DIFFUSERS_FOLDER
"""
import json, os, shutil, struct, sys, zlib


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)


def png(path, w, h, rows=None, texts=(), color=2, depth=8, idat=None):
    """RGB (color 2) or RGBA (6) PNG; rows: bytes per row (filter byte added)."""
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
    for key, text in texts:
        out += chunk(b"tEXt", key.encode("latin-1") + b"\0" + text.encode("latin-1"))
    if idat is None:
        raw = b"".join(b"\0" + r for r in rows)
        idat = zlib.compress(raw, 1)
    out += chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


def recipe(settings):
    return "a red circle\nNegative prompt: blur\n" + settings


def st_read(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]


def st_write(path, header, data):
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def st_fill(src, dst, prefix, value):
    """A copy of a checkpoint with every float tensor under prefix set to value."""
    hdr, data = st_read(src)
    data = bytearray(data)
    pat = {"F32": struct.pack("<f", value), "F16": struct.pack("<e", value), "BF16": struct.pack("<f", value)[2:]}
    for name, t in hdr.items():
        if name == "__metadata__" or not name.startswith(prefix) or t["dtype"] not in pat:
            continue
        b0, b1 = t["data_offsets"]
        p = pat[t["dtype"]]
        data[b0:b1] = p * ((b1 - b0) // len(p))
    st_write(dst, hdr, bytes(data))


def main():
    out, ckpt, folder = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    j = lambda name: os.path.join(out, name)
    grey = [bytes([128, 128, 128]) * 16] * 16
    # --from-png recipes whose values are out of range or not numbers
    base = "Steps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 32x32, Model hash: 0, Model: sd1"
    bad = {
        "size-huge": base.replace("Size: 32x32", "Size: 32768x64"),
        "size-10g": base.replace("Size: 32x32", "Size: 100000x100000"),
        "cfg-nan": base.replace("CFG scale: 7", "CFG scale: nan"),
        "cfg-inf": base.replace("CFG scale: 7", "CFG scale: inf"),
        "strength-nan": base + ", Denoising strength: nan",
        "seed-huge": base.replace("Seed: 1", "Seed: 99999999999999999999999"),
        "seed-negative": base.replace("Seed: 1", "Seed: -5"),
        "steps-huge": base.replace("Steps: 2", "Steps: 99999999999"),
        "clip-skip-abc": base + ", Clip skip: abc",
    }
    for name, s in bad.items():
        png(j("recipe-%s.png" % name), 16, 16, grey, [("parameters", recipe(s))])
    # a valid recipe with a quoted value holding commas, and a seed past 2^63
    png(j("recipe-ok.png"), 16, 16, grey, [("parameters", recipe(
        base.replace("Seed: 1", "Seed: 18446744073709551615") + ', Lora hashes: "a: 1, b: 2", Clip skip: 1'))])
    # PNG sizes: a 69-byte file declaring 65536x65536 (its IDAT is empty),
    # and 20000x20000 1-bit grey (a valid file of a few KB)
    png(j("huge-header.png"), 65536, 65536, idat=zlib.compress(b""))
    row = b"\0" + b"\0" * (20000 // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(20000)) + z.flush()
    png(j("huge-1bit.png"), 20000, 20000, color=0, depth=1, idat=idat)
    # a mask drawn in the alpha channel only (black, alpha 255 where to paint)
    rows = []
    for y in range(16):
        rows.append(b"".join(bytes([0, 0, 0, 255 if 4 <= x < 12 and 4 <= y < 12 else 0]) for x in range(16)))
    png(j("mask-alpha-only.png"), 16, 16, rows, color=6)
    png(j("grey16.png"), 16, 16, grey)
    # a large noisy image (slow to write as PNG) and a small mask on it, for
    # interrupting `ldm` while it writes its output
    big = 2048
    rnd = os.urandom(big * big * 3)
    png(j("noise-big.png"), big, big, [rnd[y * big * 3:(y + 1) * big * 3] for y in range(big)])
    png(j("mask-big.png"), big, big, [(b"\xff" * 48 if 8 <= y < 24 else b"\0" * 48) + b"\0" * (big * 3 - 48)
                                      for y in range(big)])
    # files passed as models that are not safetensors
    shutil.copy(j("grey16.png"), j("model.png"))
    with open(j("model.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\0" * 64)
    with open(j("model.ckpt"), "wb") as f:
        f.write(b"PK\x03\x04" + b"\0" * 26 + b"archive/data.pkl" + b"\0" * 64)
    with open(j("model-pickle.ckpt"), "wb") as f:
        f.write(b"\x80\x02}q\x00(X\x05\x00\x00\x00state" + b"\0" * 64)
    with open(j("model.gguf"), "wb") as f:
        f.write(b"GGUF\x03\x00\x00\x00" + b"\0" * 64)
    # weights that are NaN: the UNet's, then the VAE decoder's
    st_fill(ckpt, j("nan-unet.safetensors"), "model.diffusion_model.", float("nan"))
    st_fill(ckpt, j("inf-vae.safetensors"), "first_stage_model.decoder.", float("inf"))
    # a VAE whose decoder lacks its last convolution
    hdr, data = st_read(ckpt)
    for k in [k for k in hdr if k.startswith("first_stage_model.decoder.conv_out.")]:
        del hdr[k]
    st_write(j("vae-no-decoder.safetensors"), hdr, data)
    # ldm ls: metadata with an escape sequence
    st_write(j("escape.safetensors"), {"__metadata__": {"note\x1b[31m": "red\x1b[0m\nline"},
                                      "t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)
    # ldm eval unet inputs: batch 0; an I64 timestep at an odd data offset; I8 sample
    st_write(j("unet-batch0.safetensors"), {
        "sample": {"dtype": "F32", "shape": [0, 4, 8, 8], "data_offsets": [0, 0]},
        "timestep": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
        "encoder_hidden_states": {"dtype": "F32", "shape": [0, 77, 8], "data_offsets": [4, 4]}}, b"\0" * 4)
    n = 4 * 8 * 8
    st_write(j("unet-odd-i64.safetensors"), {
        "pad": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
        "timestep": {"dtype": "I64", "shape": [1], "data_offsets": [1, 9]},
        "sample": {"dtype": "F32", "shape": [1, 4, 8, 8], "data_offsets": [9, 9 + 4 * n]},
        "encoder_hidden_states": {"dtype": "F32", "shape": [1, 4, 8], "data_offsets": [9 + 4 * n, 9 + 4 * n + 128]}},
        b"\0" + struct.pack("<q", 500) + b"\0" * (4 * n + 128))
    st_write(j("unet-i8.safetensors"), {
        "sample": {"dtype": "I8", "shape": [1, 4, 8, 8], "data_offsets": [0, n]},
        "timestep": {"dtype": "F32", "shape": [1], "data_offsets": [n, n + 4]},
        "encoder_hidden_states": {"dtype": "F32", "shape": [1, 4, 8], "data_offsets": [n + 4, n + 132]}},
        b"\0" * (n + 132))
    # diffusers folders with config values outside their meaningful range
    edits = {
        "groups0": ("unet", {"norm_num_groups": 0}),
        "groups2p32": ("unet", {"norm_num_groups": 2 ** 32}),
        "heads2p32": ("unet", {"attention_head_dim": 2 ** 32 + 2}),
        "unet-eps-neg": ("unet", {"norm_eps": -1}),
        "vae-scale0": ("vae", {"scaling_factor": 0}),
        "vae-groups-str": ("vae", {"norm_num_groups": "abc"}),
        "text-eps-neg": ("text_encoder", {"layer_norm_eps": -1}),
        "sched-beta": ("scheduler", {"beta_end": 2.0}),
    }
    for name, (part, kv) in edits.items():
        d = j("folder-" + name)
        shutil.copytree(folder, d, symlinks=False)
        cfg = os.path.join(d, part, "scheduler_config.json" if part == "scheduler" else "config.json")
        with open(cfg) as f:
            c = json.load(f)
        c.update(kv)
        with open(cfg, "w") as f:
            json.dump(c, f)


if __name__ == "__main__":
    main()
