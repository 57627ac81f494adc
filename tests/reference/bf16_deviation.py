#!/usr/bin/env python3
"""What bf16 arithmetic alone does to the UNet goldens: diffusers' own UNet on
each tests/golden/unet/<case>_io.safetensors input, once in f32 and once with
every conv2d / linear operand (input and weight) rounded to bf16 by torch and
the products summed in f32 -- the arithmetic of libldm's bf16 precision. The
printed max abs deviation is the scale test_unet's bf16 tolerance is set from
(the tiny random-weight models amplify rounding far more than trained ones).

Usage: /work/refvenv/bin/python tests/reference/bf16_deviation.py [GOLDEN_DIR]
"""
import os
import sys

import torch
import torch.nn.modules.conv as tconv
import torch.nn.modules.linear as tlinear
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file

CASES = [("sd1", "sd1_io"), ("sd1", "sd1_odd_io"), ("sd1", "sd1_48x40_io"),
         ("sd1_inpaint", "sd1_inpaint_io"), ("sd2", "sd2_io"), ("sdxl", "sdxl_io"),
         ("x4", "x4_io"), ("lcm", "lcm_io")]
conv2d, linear = tconv.F.conv2d, tlinear.F.linear


def bf16(x):
    return x.to(torch.bfloat16).float()


def rounded(on):
    tconv.F.conv2d = (lambda x, w, b=None, *a, **k: conv2d(bf16(x), bf16(w), b, *a, **k)) if on else conv2d
    tlinear.F.linear = (lambda x, w, b=None: linear(bf16(x), bf16(w), b)) if on else linear


def main():
    gold = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "golden", "unet")
    for model, io in CASES:
        u = UNet2DConditionModel.from_pretrained(os.path.join(gold, model), subfolder="unet").float().eval()
        d = load_file(os.path.join(gold, io + ".safetensors"))
        kw = {k: d[k] for k in ("class_labels", "timestep_cond") if k in d}
        if "text_embeds" in d:
            kw["added_cond_kwargs"] = {"text_embeds": d["text_embeds"], "time_ids": d["time_ids"]}
        if "class_labels" in kw:
            kw["class_labels"] = kw["class_labels"].long()
        outs = []
        for on in (False, True):
            rounded(on)
            with torch.no_grad():
                outs.append(u(d["sample"], d["timestep"], d["encoder_hidden_states"], **kw).sample)
        rounded(False)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            auto = u(d["sample"], d["timestep"], d["encoder_hidden_states"], **kw).sample.float()
        print(f"{io}: latent {tuple(d['sample'].shape)}, max|out| {outs[0].abs().max().item():.3f}, "
              f"bf16 operands vs f32: max abs {(outs[1] - outs[0]).abs().max().item():.4f}, "
              f"torch.autocast bf16 vs f32: max abs {(auto - outs[0]).abs().max().item():.4f}")


if __name__ == "__main__":
    main()
