#!/usr/bin/env python3
"""Goldens for LoRA merging (engine/io/lora.c): tiny random LoRAs written in
the kohya-ss / AUTOMATIC1111 naming (lora_unet_*, lora_te_*, lora_te1_*,
lora_te2_*; .lora_down / .lora_up / .alpha; LoCon 3x3 down + 1x1 up on the
ResNet convolutions) and in the diffusers / PEFT naming (unet.*,
text_encoder*.*; .lora_A / .lora_B, no alpha), for the tiny SD1, SD2 and SDXL
models of make_pipeline.py / make_unet.py / make_text.py (and diffusers'
older attention-processor naming: unet.*.processor.to_q_lora.down.weight,
text_encoder.*.lora_linear_layer.down.weight), and the outputs of
the UNet and the text encoders after diffusers' own
load_lora_weights + fuse_lora(lora_scale=...) (PEFT backend), which also
converts the kohya names (loaders/lora_conversion_utils.py).

Every LoRA module must change exactly one weight of the fused model (the
script fails otherwise), so no module can be silently dropped by the
reference.

Writes tests/golden/lora/:
  <lora>.safetensors               the LoRA files (kohya in f16 with f32 alpha, PEFT in f32)
  <case>_unet_io.safetensors       sample, timestep, encoder_hidden_states (+ text_embeds,
                                   time_ids) -> out, after the case's LoRAs
  <case>_text<N>_io.safetensors    input_ids -> last_hidden_state, penultimate_hidden_state
                                   (+ pooled) of text encoder N after the case's LoRAs
  cases.txt                        case|family|lora:mult;lora:mult
  txt2img_lora.png                 diffusers' StableDiffusionPipeline (tests/golden/pipeline/sd1,
                                   Euler, 8 steps, CFG 7.5, 64x48, seed 1100) after fusing
                                   sd1_kohya at 0.8
  txt2img_lcm_lora.png             the same pipeline with sd1_locon fused at 1.0 and LCMScheduler,
                                   4 steps, guidance 1, seed 1102 (how an LCM-LoRA is used)

Usage: /work/refvenv/bin/python tests/reference/make_lora.py [OUTDIR]
"""
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
from diffusers import AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, LCMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
G = os.path.join(ROOT, "tests", "golden")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(G, "lora")

ATTN = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2")
CONV = ("conv1", "conv2", "conv_shortcut", "time_emb_proj", "downsamplers.0.conv", "upsamplers.0.conv")
TEXT = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


def targets(model, part, locon):
    """(part, module path, module) of the layers a LoRA trainer targets."""
    out = []
    for name, mod in model.named_modules():
        if not isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
            continue
        if part == "unet":
            if ".attentions." in name and name.endswith(ATTN):
                out.append((part, name, mod))
            elif locon and (".resnets." in name or "samplers" in name) and name.endswith(CONV):
                out.append((part, name, mod))
        elif name.startswith("text_model.encoder.layers.") and name.endswith(TEXT):
            out.append((part, name, mod))
    return out


def make_lora(path, mods, rank, seed, naming, alpha, sdxl):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    kohya = {"unet": "lora_unet_", "te1": "lora_te1_" if sdxl else "lora_te_", "te2": "lora_te2_"}
    peft = {"unet": "unet.", "te1": "text_encoder.", "te2": "text_encoder_2."}
    for part, name, mod in mods:
        if isinstance(mod, torch.nn.Linear):
            fan = mod.in_features
            down = torch.randn(rank, mod.in_features, generator=g)
            up = torch.randn(mod.out_features, rank, generator=g)
        else:
            kh, kw = mod.kernel_size
            fan = mod.in_channels * kh * kw
            down = torch.randn(rank, mod.in_channels, kh, kw, generator=g)
            up = torch.randn(mod.out_channels, rank, 1, 1, generator=g)
        down *= 0.5 / fan ** 0.5
        up *= 0.5 / rank ** 0.5
        if naming == "kohya":
            k = kohya[part] + name.replace(".", "_")
            sd[k + ".lora_down.weight"] = down.half()
            sd[k + ".lora_up.weight"] = up.half()
            sd[k + ".alpha"] = torch.tensor(float(alpha))
        elif naming == "old":  # diffusers' attention-processor / lora_linear_layer naming (before PEFT)
            if part == "unet":
                blk, _, proj = name.rpartition(".to_")
                proj = {"q": "to_q", "k": "to_k", "v": "to_v", "out.0": "to_out"}[proj]
                k = f"unet.{blk}.processor.{proj}_lora"
            else:
                k = peft[part] + name + ".lora_linear_layer"
            sd[k + ".down.weight"] = down.contiguous()
            sd[k + ".up.weight"] = up.contiguous()
        else:
            k = peft[part] + name
            sd[k + ".lora_A.weight"] = down.contiguous()
            sd[k + ".lora_B.weight"] = up.contiguous()
    save_file(sd, path)
    return len(mods)


def fuse(pipe, nets, path, scale, n_modules, label):
    before = {n: {k: v.clone() for k, v in net.state_dict().items()} for n, net in nets.items()}
    pipe.load_lora_weights(path, adapter_name=label)
    pipe.fuse_lora(lora_scale=scale, adapter_names=[label])
    pipe.unload_lora_weights()
    changed = 0
    for n, net in nets.items():
        after = net.state_dict()
        changed += sum(1 for k, v in before[n].items() if not torch.equal(v, after[k]))
    if changed != n_modules:
        sys.exit(f"{label}: {changed} weights changed, the LoRA has {n_modules} modules")


def unet_inputs(unet, seed, h=8, w=6):
    g = torch.Generator().manual_seed(seed)
    c = unet.config
    d = dict(sample=torch.randn(2, c.in_channels, h, w, generator=g),
             timestep=torch.tensor([901.0, 37.0]),
             encoder_hidden_states=torch.randn(2, 7, c.cross_attention_dim, generator=g))
    if c.addition_embed_type == "text_time":
        n_text = c.projection_class_embeddings_input_dim - 6 * c.addition_time_embed_dim
        d["text_embeds"] = torch.randn(2, n_text, generator=g)
        d["time_ids"] = torch.tensor([[48.0, 64.0, 0.0, 0.0, 48.0, 64.0], [64.0, 64.0, 8.0, 4.0, 32.0, 32.0]])
    return d


def unet_io(path, unet, inp):
    with torch.no_grad():
        added = None
        if "text_embeds" in inp:
            added = dict(text_embeds=inp["text_embeds"], time_ids=inp["time_ids"])
        out = unet(inp["sample"], inp["timestep"], inp["encoder_hidden_states"],
                   added_cond_kwargs=added).sample
    save_file({**{k: v.contiguous() for k, v in inp.items()}, "out": out.contiguous()}, path)


def text_ids(te, seed):
    g = torch.Generator().manual_seed(seed)
    c = te.config
    ids = torch.randint(0, min(c.vocab_size, 49406) - 2, (2, 77), generator=g)
    ids[:, 0] = c.bos_token_id if c.bos_token_id < c.vocab_size else 0
    ids[0, 9:] = c.eos_token_id
    ids[1, 30:] = c.eos_token_id
    return ids


def text_io(path, te, ids):
    with torch.no_grad():
        o = te(ids, output_hidden_states=True)
    d = {"input_ids": ids.to(torch.int64), "last_hidden_state": o.last_hidden_state.contiguous(),
         "penultimate_hidden_state": o.hidden_states[-2].contiguous()}
    if isinstance(te, CLIPTextModelWithProjection):
        d["pooled"] = o.text_embeds.contiguous()
    save_file(d, path)


def run_case(case, family, make_pipe, loras, cases, inputs):
    """loras: [(file, scale)]; applies them in order to a fresh pipeline."""
    pipe, nets = make_pipe()
    for f, scale in loras:
        fuse(pipe, nets, os.path.join(OUT, f + ".safetensors"), scale, MODULES[f], f"{case}_{f}")
    unet_io(os.path.join(OUT, f"{case}_unet_io.safetensors"), pipe.unet, inputs["unet"])
    for i, key in enumerate(("text_encoder", "text_encoder_2")):
        if key in nets:
            text_io(os.path.join(OUT, f"{case}_text{i + 1}_io.safetensors"), nets[key], inputs[key])
    cases.append(f"{case}|{family}|" + ";".join(f"{f}:{s:g}" for f, s in loras))
    print(case, "written")


MODULES = {}
PROMPT = "a red circle on a blue background"
NEG = "blurry"


def main():
    os.makedirs(OUT, exist_ok=True)
    f32 = torch.float32

    def sd1():
        p = StableDiffusionPipeline.from_pretrained(os.path.join(G, "pipeline", "sd1"), torch_dtype=f32,
                                                    safety_checker=None, requires_safety_checker=False)
        return p, {"unet": p.unet, "text_encoder": p.text_encoder}

    def sd2():
        unet = UNet2DConditionModel.from_pretrained(os.path.join(G, "unet", "sd2"), subfolder="unet", torch_dtype=f32)
        te = CLIPTextModel.from_pretrained(os.path.join(G, "text", "sd2"), subfolder="text_encoder", torch_dtype=f32)
        tok = CLIPTokenizer.from_pretrained(os.path.join(G, "text", "sd2"), subfolder="tokenizer")
        if unet.config.sample_size is None:  # read by the pipeline's constructor only
            unet.register_to_config(sample_size=64)
        vae = AutoencoderKL.from_pretrained(os.path.join(G, "pipeline", "sd1"), subfolder="vae")  # not run
        p = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=DDIMScheduler(),
                                    safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        return p, {"unet": unet, "text_encoder": te}

    def sdxl():
        p = StableDiffusionXLPipeline.from_pretrained(os.path.join(G, "pipeline", "sdxl"), torch_dtype=f32)
        return p, {"unet": p.unet, "text_encoder": p.text_encoder, "text_encoder_2": p.text_encoder_2}

    cases = []
    # LoRA files, from the modules of each family's base model
    for fam, make, sdxl_names in (("sd1", sd1, False), ("sd2", sd2, False), ("sdxl", sdxl, True)):
        pipe, nets = make()
        parts = [("unet", nets["unet"]), ("te1", nets["text_encoder"])]
        if "text_encoder_2" in nets:
            parts.append(("te2", nets["text_encoder_2"]))
        plain = [m for part, net in parts for m in targets(net, part, False)]
        locon = [m for part, net in parts for m in targets(net, part, True)]
        seed = {"sd1": 10, "sd2": 20, "sdxl": 30}[fam]
        # the older diffusers naming covers the attention projections only
        attn = [m for m in plain if m[0] != "unet" or m[1].rpartition(".")[2] in ("to_q", "to_k", "to_v")
                or m[1].endswith("to_out.0")]
        for name, mods, naming, rank, alpha in (
                (f"{fam}_kohya", plain, "kohya", 4, 2.0),
                (f"{fam}_locon", locon, "kohya", 3, 1.0),
                (f"{fam}_peft", plain, "peft", 2, None),
                (f"{fam}_old", attn, "old", 2, None)):
            MODULES[name] = make_lora(os.path.join(OUT, name + ".safetensors"), mods, rank, seed, naming, alpha,
                                      sdxl_names)
            seed += 1
        inputs = {"unet": unet_inputs(nets["unet"], seed)}
        for i, key in enumerate(("text_encoder", "text_encoder_2")):
            if key in nets:
                inputs[key] = text_ids(nets[key], seed + 1 + i)
        run_case(f"{fam}_base", fam, make, [], cases, inputs)
        run_case(f"{fam}_kohya", fam, make, [(f"{fam}_kohya", 0.8)], cases, inputs)
        run_case(f"{fam}_peft", fam, make, [(f"{fam}_peft", 1.0)], cases, inputs)
        run_case(f"{fam}_two", fam, make, [(f"{fam}_locon", 0.7), (f"{fam}_peft", -0.3)], cases, inputs)
        run_case(f"{fam}_old", fam, make, [(f"{fam}_old", 0.5)], cases, inputs)
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(cases) + "\n")
    # the whole pipeline with a LoRA (the CLI must match it within 40 dB)
    pipe, nets = sd1()
    fuse(pipe, nets, os.path.join(OUT, "sd1_kohya.safetensors"), 0.8, MODULES["sd1_kohya"], "e2e")
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    img = pipe(prompt=PROMPT, negative_prompt=NEG, num_inference_steps=8, guidance_scale=7.5, width=64, height=48,
               generator=torch.Generator("cpu").manual_seed(1100)).images[0]
    img.save(os.path.join(OUT, "txt2img_lora.png"))
    # LCM-LoRA shaped (every attention and ResNet layer, convolutions included): the
    # LoCon file at 1.0 with diffusers' LCMScheduler, 4 steps, guidance 1
    pipe, nets = sd1()
    fuse(pipe, nets, os.path.join(OUT, "sd1_locon.safetensors"), 1.0, MODULES["sd1_locon"], "lcm")
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    img = pipe(prompt=PROMPT, num_inference_steps=4, guidance_scale=1.0, width=64, height=48,
               generator=torch.Generator("cpu").manual_seed(1102)).images[0]
    img.save(os.path.join(OUT, "txt2img_lcm_lora.png"))


if __name__ == "__main__":
    main()
