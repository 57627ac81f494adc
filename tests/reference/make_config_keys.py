#!/usr/bin/env python3
"""The config keys of the reference classes the engine loads, with their
defaults: every argument of diffusers' UNet2DConditionModel and AutoencoderKL
(their config.json keys) and every key of transformers' CLIPTextConfig
(its own arguments and the PretrainedConfig ones its config.json carries).
tests/unit/test_config_keys.c checks that the engine classifies each of them
(implemented, read from the weights' shapes, no effect on the numbers, or
refused unless at the default), so a key that a new diffusers/transformers
release adds shows up as a failing test when this list is regenerated.

Writes tests/golden/config/keys.txt: "<component> <key> <default as JSON>".
Usage: /work/refvenv/bin/python tests/reference/make_config_keys.py [OUTDIR]
"""
import inspect
import json
import os
import sys

import diffusers
import transformers
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def init_defaults(cls):
    out = {}
    for k, p in inspect.signature(cls.__init__).parameters.items():
        if k == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        out[k] = p.default
    return out


def as_json(v):
    if isinstance(v, tuple):
        v = list(v)
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "golden", "config")
    os.makedirs(outdir, exist_ok=True)
    rows = []
    # config.json of a diffusers model also carries these two
    for comp, cls in (("unet", UNet2DConditionModel), ("vae", AutoencoderKL)):
        keys = {"_class_name": cls.__name__, "_diffusers_version": diffusers.__version__}
        keys.update(init_defaults(cls))
        rows += [(comp, k, v) for k, v in keys.items()]
    text = CLIPTextConfig().to_dict()
    text.update({k: v for k, v in init_defaults(CLIPTextConfig).items() if k not in text})
    text.setdefault("architectures", None)
    text.setdefault("_attn_implementation", None)
    rows += [("text", k, v) for k, v in text.items()]
    path = os.path.join(outdir, "keys.txt")
    with open(path, "w") as f:
        f.write(f"# diffusers {diffusers.__version__}, transformers {transformers.__version__}: "
                "component, config key, default (JSON)\n")
        for comp, k, v in sorted(rows, key=lambda r: (r[0], r[1])):
            f.write(f"{comp} {k} {as_json(v)}\n")
    print(f"{path}: {len(rows)} keys")


if __name__ == "__main__":
    main()
