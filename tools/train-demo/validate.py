"""Validation of the demo models through the `ldm` CLI, on prompts and seeds that the
e2e test (tests/e2e/test_demo.sh) does not use: how the guidance scale and the
training recipe are chosen without looking at the test's own cases.

  validate.py t2i MODEL [--n 120] [--cfg 2,3,5] [--seed 5000]
      "a big <colour> <shape> on a <background> background, <position>" drawn from the
      data set's vocabulary; scored as the e2e test scores (png_compare colour: the
      nearest named colour of the mean in a square at the named position, and in the
      far corner). Prints, per guidance scale, how many have both right.
  validate.py inpaint MODEL [--n 60] [--cfg 2,5] [--seed 9000] [--shape square]
      a data-set scene, a random grid box of 2-4 cells a side, "a <colour> <shape>" in
      another colour than the background; prints the mean fraction of the box whose
      nearest named colour is the asked one and how often the box centre reads as it.

Needs numpy and Pillow (the reference virtualenv) and a build (LDM_BUILD, default
../../build). 20 DDIM steps, as the e2e test.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dataset as D  # noqa: E402

BUILD = os.environ.get("LDM_BUILD", os.path.join(HERE, "..", "..", "build"))
LDM = os.path.join(BUILD, "cli", "ldm")
CMP = os.path.join(BUILD, "tests", "e2e", "png_compare")
# the far corner the e2e test reads the background in, per position
CORNER = {"top left": (0.92, 0.92), "left": (0.92, 0.92), "top right": (0.08, 0.92), "top": (0.08, 0.92),
          "bottom left": (0.92, 0.08), "bottom": (0.92, 0.08), "bottom right": (0.08, 0.08),
          "center": (0.08, 0.08), "right": (0.08, 0.08)}


def ldm(*args):
    subprocess.run([LDM] + [str(a) for a in args], check=True, capture_output=True)


def compare(*args):
    return subprocess.run([CMP] + [str(a) for a in args], check=True, capture_output=True,
                          text=True).stdout.strip()


def colour_at(png, fx, fy, r):
    return compare("colour", png, fx, fy, r)


def t2i(args, tmp):
    rng = np.random.default_rng(args.seed)
    cases = []
    for _ in range(args.n):
        c = str(rng.choice(list(D.COLOURS)))
        bg = str(rng.choice([b for b in D.BACKGROUNDS if b != c]))
        cases.append((c, str(rng.choice(D.SHAPES)), bg, str(rng.choice(list(D.POSITIONS)))))
    for cfg in args.cfg.split(","):
        both = shape = back = 0
        for i, (c, s, bg, pos) in enumerate(cases):
            art = "an" if bg[0] in "aeiou" else "a"
            out = os.path.join(tmp, "t.png")
            ldm("txt2img", "--model", args.model, "--prompt", "a big %s %s on %s %s background, %s" % (c, s, art, bg, pos),
                "--width", 64, "--height", 64, "--steps", 20, "--cfg-scale", cfg, "--sampler", "ddim",
                "--seed", args.seed + i, "--threads", 1, "--out", out)
            got = colour_at(out, *D.POSITIONS[pos], 0.07)
            gotbg = colour_at(out, *CORNER[pos], 0.07)
            shape += got == c
            back += gotbg == bg
            both += got == c and gotbg == bg
            if args.verbose and not (got == c and gotbg == bg):
                print("  miss: %s %s on %s, %s -> %s on %s" % (c, s, bg, pos, got, gotbg))
        print("t2i %s guidance %s: both right %d/%d (shape colour %d, background %d)" % (
            args.model, cfg, both, args.n, shape, back), flush=True)


def inpaint(args, tmp):
    rng = np.random.default_rng(args.seed)
    cases = []
    for _ in range(args.n):
        sc = D.sample_scene(rng)
        w, h = (int(v) for v in rng.integers(2, 5, size=2))
        x0, y0 = int(rng.integers(0, 8 - w + 1)), int(rng.integers(0, 8 - h + 1))
        col = str(rng.choice([c for c in D.COLOURS if c != sc["background"]]))
        shape = str(rng.choice(D.SHAPES))
        cases.append((D.render(sc, 64), (x0, y0, w, h), col, args.shape or shape))
    img_p, mask_p, out = (os.path.join(tmp, n) for n in ("i.png", "m.png", "o.png"))
    for cfg in args.cfg.split(","):
        fracs, hits = [], 0
        for i, (img, (x0, y0, w, h), col, shape) in enumerate(cases):
            m = np.zeros((64, 64), np.uint8)
            m[y0 * 8:(y0 + h) * 8, x0 * 8:(x0 + w) * 8] = 255
            Image.fromarray(img).save(img_p)
            Image.fromarray(m).save(mask_p)
            ldm("inpaint", "--model", args.model, "--init", img_p, "--mask", mask_p,
                "--prompt", "a %s %s" % (col, shape), "--strength", 1, "--mask-blur", 0, "--steps", 20,
                "--cfg-scale", cfg, "--sampler", "ddim", "--seed", args.seed + i, "--threads", 1, "--out", out)
            fracs.append(float(compare("share", out, mask_p, col)))
            hits += colour_at(out, (x0 + w / 2) / 8, (y0 + h / 2) / 8, 0.04 * min(w, h)) == col
        print("inpaint %s guidance %s: mean box fraction %.3f, >= 0.5 in %d/%d, centre right %d/%d" % (
            args.model, cfg, np.mean(fracs), sum(f >= 0.5 for f in fracs), args.n,
            hits, args.n), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=["t2i", "inpaint"])
    ap.add_argument("model")
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--cfg", default="")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", default="", help="inpaint: ask for this shape every time")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    first = args.task == "t2i"
    args.n = args.n or (120 if first else 60)
    args.cfg = args.cfg or ("2,3,5" if first else "2,5")
    args.seed = args.seed or (5000 if first else 9000)
    with tempfile.TemporaryDirectory() as tmp:
        (t2i if first else inpaint)(args, tmp)


if __name__ == "__main__":
    main()
