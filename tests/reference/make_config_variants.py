#!/usr/bin/env python3
"""Goldens for the config options the engine implements beyond the released
checkpoints' values: tiny random-weight diffusers UNet2DConditionModel models
with center_input_sample=True and with mid_block_scale_factor=1.7, and a tiny
transformers CLIPTextModel with hidden_act="gelu_pytorch_tanh" (the
tanh-approximated GELU). Models and reference outputs come from the pinned
diffusers / transformers classes themselves.

Writes tests/golden/config/:
  unet_center/, unet_center_io.safetensors      center_input_sample=True
  unet_midscale/, unet_midscale_io.safetensors  mid_block_scale_factor=1.7
  text_gelu_tanh/, text_gelu_tanh_io.safetensors
(the io files as tests/golden/unet/*_io and tests/golden/text/*_io).
Usage: /work/refvenv/bin/python tests/reference/make_config_variants.py [OUTDIR]
"""
import json
import os
import shutil
import sys

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_unet  # noqa: E402  (randomize, save_folder, make_io)

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CA, DN, CU, UP = make_unet.CA, make_unet.DN, make_unet.CU, make_unet.UP
BASE = dict(block_out_channels=(8, 16), layers_per_block=1, down_block_types=(CA, DN),
            up_block_types=(UP, CU), cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4)
UNETS = {"unet_center": dict(center_input_sample=True),
         "unet_midscale": dict(mid_block_scale_factor=1.7)}


def unet_goldens(out):
    for i, (name, extra) in enumerate(UNETS.items()):
        torch.manual_seed(500 + i)
        m = make_unet.randomize(UNet2DConditionModel(**BASE, **extra), 500 + i)
        make_unet.save_folder(os.path.join(out, name), m, torch.float16, "epsilon")
        io = make_unet.make_io(m, 600 + i, (2, 4, 8, 6), 5)
        save_file(io, os.path.join(out, name + "_io.safetensors"))
        print(name, "out", tuple(io["out"].shape), "max", io["out"].abs().max().item())


def text_golden(out):
    vocab, bos, eos = 1000, 998, 999
    cfg = CLIPTextConfig(vocab_size=vocab, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu_pytorch_tanh",
                         layer_norm_eps=1e-5, bos_token_id=bos, eos_token_id=eos, pad_token_id=1)
    torch.manual_seed(700)
    m = make_unet.randomize(CLIPTextModel(cfg).eval(), 700)
    g = torch.Generator().manual_seed(701)
    folder = os.path.join(out, "text_gelu_tanh")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    m.half().save_pretrained(os.path.join(folder, "text_encoder"), safe_serialization=True)
    m.float()
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump({"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.31.0",
                   "text_encoder": ["transformers", "CLIPTextModel"]}, f, indent=2, sort_keys=True)
    ids = torch.full((2, 77), eos, dtype=torch.int64)
    ids[:, 0] = bos
    ids[0, 1:8] = torch.randint(0, 998, (7,), generator=g)
    ids[1, 1:60] = torch.randint(0, 998, (59,), generator=g)
    with torch.no_grad():
        o = m(ids, output_hidden_states=True)
        # the same model with plain GELU: how far apart the two activations put the outputs
        from transformers.activations import ACT2FN
        for layer in m.text_model.encoder.layers:
            layer.mlp.activation_fn = ACT2FN["gelu"]
        o2 = m(ids)
    print("text_gelu_tanh: |tanh GELU - exact GELU| on last_hidden_state",
          (o.last_hidden_state - o2.last_hidden_state).abs().max().item())
    save_file({"input_ids": ids, "last_hidden_state": o.last_hidden_state.contiguous(),
               "penultimate_hidden_state": o.hidden_states[-2].contiguous()},
              os.path.join(out, "text_gelu_tanh_io.safetensors"))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "golden", "config")
    os.makedirs(out, exist_ok=True)
    unet_goldens(out)
    text_golden(out)


if __name__ == "__main__":
    main()
