"""The demo models' native size and recommended settings, as the engine reads
them (engine/include/ldm.h, "Model settings"): `ldm.native_size`, `ldm.steps`,
`ldm.cfg_scale`, `ldm.sampler` in a single file's __metadata__, and the same
in a diffusers folder's model_index.json as "_ldm" (diffusers ignores keys
that start with '_'). export.py writes them with the models; run alone, this
rewrites the committed files' headers and model_index.json in place, leaving
every tensor byte as it is (checked with SHA-256 of the data section).

Why these values (models/demo/MODEL_CARD.md, "Recommended settings"): the
models were trained on 64x64 pictures (8x8 latents) and draw the asked shape
only there; validate.py's txt2img counts peak at guidance 2-2.5 (7 overshoots
the colours), the inpainting model is best at 5-7, the upscaler all but ignores
the prompt (guidance 1 skips the unconditional pass); every check and test ran
20 DDIM steps.

Usage: python3 tools/train-demo/settings.py [MODELS_DIR]   (no third-party modules)
"""
import hashlib
import json
import os
import struct
import sys

SETTINGS = {
    "ldm-demo": {"native_size": 64, "steps": 20, "cfg_scale": 2.5, "sampler": "ddim"},
    "ldm-demo-inpaint": {"native_size": 64, "steps": 20, "cfg_scale": 7.0, "sampler": "ddim"},
    # native size: the high-resolution side of the 64x64 training crops (as modelspec.resolution says)
    "ldm-demo-x4": {"native_size": 64, "steps": 20, "cfg_scale": 1.0, "sampler": "ddim"},
}


def metadata(name):
    """The settings as single-file __metadata__ strings."""
    s = SETTINGS[name]
    return {"ldm.native_size": str(s["native_size"]), "ldm.steps": str(s["steps"]),
            "ldm.cfg_scale": "%g" % s["cfg_scale"], "ldm.sampler": s["sampler"]}


def write_folder_settings(folder, name):
    """Adds "_ldm" to the folder's model_index.json (keys kept in order)."""
    path = os.path.join(folder, "model_index.json")
    with open(path) as f:
        index = json.load(f)
    index["_ldm"] = SETTINGS[name]
    with open(path, "w") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")


def rewrite_header(path, extra):
    """Sets extra's keys in a safetensors file's __metadata__; the tensor data
    (everything after the header) is copied unchanged. Returns the SHA-256 of
    the data section before and after."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.setdefault("__metadata__", {}).update(extra)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(data)
    with open(tmp, "rb") as f:
        m = struct.unpack("<Q", f.read(8))[0]
        f.seek(8 + m)
        after = hashlib.sha256(f.read()).hexdigest()
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest(), after


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                             "models", "demo")
    ok = True
    for name in SETTINGS:
        before, after = rewrite_header(os.path.join(out, name + ".safetensors"), metadata(name))
        print("%s.safetensors: %s; data sha256 %s -> %s (%s)" % (name, metadata(name), before[:16], after[:16],
                                                                "unchanged" if before == after else "CHANGED"))
        ok = ok and before == after
        write_folder_settings(os.path.join(out, "diffusers", name), name)
        print("diffusers/%s/model_index.json: _ldm = %s" % (name, json.dumps(SETTINGS[name])))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
