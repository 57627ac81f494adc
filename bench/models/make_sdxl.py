#!/usr/bin/env python3
"""A full-size SDXL-shaped pipeline with random weights, for benchmarks only
(never committed), written once under DIR:
  DIR/sdxl.safetensors  one f16 file in the original (SGM / AUTOMATIC1111) layout:
                        model.diffusion_model.* (tests/reference/make_unet.py's key map),
                        conditioner.embedders.0.transformer.* (CLIP-L, HF keys),
                        conditioner.embedders.1.model.* (OpenCLIP bigG, open_clip keys),
                        first_stage_model.* (make_vae.py's key map)
  DIR/sdxl/             the same weights as a diffusers StableDiffusionXLPipeline folder
  DIR/inputs/unet_sdxl_{8,64,128}.safetensors  seeded batch-2 UNet inputs (sample,
                        timestep, encoder_hidden_states [2,77,2048], text_embeds [2,1280],
                        time_ids [2,6]) read by `ldm eval unet` and the diffusers peer
The UNet is diffusers' UNet2DConditionModel with SDXL's published config
(make_unet.FULL["sdxl"]), the encoders transformers' CLIPTextModel and
open_clip's TextTransformer (converted to CLIPTextModelWithProjection by diffusers'
own convert_open_clip_checkpoint), the VAE AutoencoderKL with SDXL's config.
Memory: built in f16 (the UNet allocated empty, then filled), tensors streamed to
disk one by one: 10.5 GB peak RSS, under 2 minutes. Usage: make_sdxl.py DIR"""
import json
import os
import shutil
import struct
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))
import make_text  # noqa: E402
import make_unet  # noqa: E402
import make_vae  # noqa: E402

torch.set_num_threads(1)
out = os.path.abspath(sys.argv[1])
single, folder, inputs = (os.path.join(out, "sdxl.safetensors"), os.path.join(out, "sdxl"),
                          os.path.join(out, "inputs"))
LATENTS = (8, 64, 128)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_st(path, tensors, metadata=None):
    """safetensors file written tensor by tensor (no second copy of the data in memory)."""
    names = list(tensors)
    header, off = {}, 0
    for n in names:
        t = tensors[n]
        assert t.dtype == torch.float16 or t.dtype == torch.float32, (n, t.dtype)
        size = t.numel() * t.element_size()
        header[n] = {"dtype": "F16" if t.dtype == torch.float16 else "F32", "shape": list(t.shape),
                     "data_offsets": [off, off + size]}
        off += size
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for n in names:
            f.write(tensors[n].detach().contiguous().numpy().tobytes())
    os.replace(path + ".tmp", path)


def fill(model, seed, gain=1.0):
    """Random weights in place (f16 storage): weights N(0, gain^2/fan_in), norm gains
    1 + N(0, 0.1^2), biases N(0, 0.05^2); finite activations through SDXL's depth."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                base = 1.0 if ("norm" in name or "ln_" in name or ".ln" in name) and name.endswith("weight") else 0.0
                v = base + (0.1 if base else 0.05) * torch.randn(p.shape, generator=g)
            elif "embedding" in name and p.ndim == 2 and "linear" not in name:
                v = 0.5 * torch.randn(p.shape, generator=g)
            else:
                fan_in = p[0].numel()
                v = torch.randn(p.shape, generator=g) * (gain / fan_in ** 0.5)
            p.copy_(v.to(p.dtype))
    return model.eval()


def main():
    if os.path.isfile(single) and os.path.isfile(os.path.join(folder, "model_index.json")) and \
            all(os.path.isfile(os.path.join(inputs, f"unet_sdxl_{s}.safetensors")) for s in LATENTS):
        return
    os.makedirs(out, exist_ok=True)
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from open_clip.transformer import TextTransformer
    from transformers import CLIPTextConfig, CLIPTextModel

    if os.path.exists(folder):
        shutil.rmtree(folder)
    tmp = folder + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    for d in ("unet", "vae", "text_encoder", "text_encoder_2"):
        os.makedirs(os.path.join(tmp, d))
    ldm = {}   # the single file's tensors (views of the models' f16 weights)

    log("unet: SDXL config, empty f16, filled")
    torch.set_default_dtype(torch.float16)
    with init_empty_weights():
        unet = UNet2DConditionModel(sample_size=128, **make_unet.FULL["sdxl"])
    torch.set_default_dtype(torch.float32)
    assert not list(unet.buffers()), "to_empty would leave buffers unset"
    unet = fill(unet.to_empty(device="cpu"), 11)
    usd = unet.state_dict()
    log(f"unet: {sum(v.numel() for v in usd.values()) / 1e9:.3f} G parameters")
    write_st(os.path.join(tmp, "unet", "diffusion_pytorch_model.safetensors"), usd)
    unet.save_config(os.path.join(tmp, "unet"))
    ldm.update(make_unet.to_ldm(usd, make_unet.full_config(unet), "model.diffusion_model.", torch.float16))

    log("vae")
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=1024, scaling_factor=0.13025, force_upcast=True)
    vae = fill(vae, 12).half()
    write_st(os.path.join(tmp, "vae", "diffusion_pytorch_model.safetensors"), vae.state_dict())
    vae.save_config(os.path.join(tmp, "vae"))
    ldm.update(make_vae.to_ldm(vae.state_dict(), 4, "first_stage_model.", torch.float16))

    log("text encoders: CLIP-L, OpenCLIP bigG")
    make_text.VOCAB, make_text.BOS, make_text.EOS = 49408, 49406, 49407
    te1 = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                       num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                       hidden_act="quick_gelu", projection_dim=768))
    te1 = fill(te1, 13).half()
    sd1 = {k: v for k, v in te1.state_dict().items() if not k.endswith("position_ids")}
    write_st(os.path.join(tmp, "text_encoder", "model.safetensors"), sd1, {"format": "pt"})
    te1.config.save_pretrained(os.path.join(tmp, "text_encoder"))
    ldm.update({"conditioner.embedders.0.transformer." + k: v for k, v in sd1.items()})
    tt = TextTransformer(context_length=77, vocab_size=49408, width=1280, heads=20, layers=32, mlp_ratio=4.0,
                         output_dim=1280, act_layer=torch.nn.GELU)
    tt = fill(tt, 14).half()
    ck2 = {"conditioner.embedders.1.model." + k: v for k, v in tt.state_dict().items()}
    te2 = make_text.openclip_to_diffusers(tt, ck2, "conditioner.embedders.1.model.", with_proj=True).half()
    del tt
    sd2 = {k: v for k, v in te2.state_dict().items() if not k.endswith("position_ids")}
    write_st(os.path.join(tmp, "text_encoder_2", "model.safetensors"), sd2, {"format": "pt"})
    te2.config.save_pretrained(os.path.join(tmp, "text_encoder_2"))
    ldm.update(ck2)

    log("tokenizers, scheduler, model_index.json")
    tok = make_text.write_clip_files(os.path.join(out, "_tok_xl"), make_text.N_MERGES, "<|endoftext|>")
    tok2 = make_text.write_clip_files(os.path.join(out, "_tok_xl2"), make_text.N_MERGES, "!")
    for t in (tok, tok2):
        t.model_max_length = 77
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok2,
                                     unet=unet, scheduler=sched, add_watermarker=False)
    pipe.save_config(tmp)
    tok.save_pretrained(os.path.join(tmp, "tokenizer"))
    tok2.save_pretrained(os.path.join(tmp, "tokenizer_2"))
    sched.save_pretrained(os.path.join(tmp, "scheduler"))
    shutil.rmtree(os.path.join(out, "_tok_xl"))
    shutil.rmtree(os.path.join(out, "_tok_xl2"))
    os.rename(tmp, folder)
    del pipe

    log(f"single file: {len(ldm)} tensors")
    write_st(single, ldm, {"format": "pt"})
    del ldm, usd, sd1, sd2, ck2, unet, vae, te1, te2

    os.makedirs(inputs, exist_ok=True)
    for side in LATENTS:
        g = torch.Generator().manual_seed(1000 + side)
        px = side * 8
        x = {"sample": torch.randn((2, 4, side, side), generator=g),
             "timestep": torch.tensor([500.0]),
             "encoder_hidden_states": torch.randn((2, 77, 2048), generator=g),
             "text_embeds": torch.randn((2, 1280), generator=g),
             "time_ids": torch.tensor([[px, px, 0, 0, px, px]] * 2, dtype=torch.float32)}
        write_st(os.path.join(inputs, f"unet_sdxl_{side}.safetensors"), x)
    log(f"wrote {folder}, {single} ({os.path.getsize(single) >> 20} MiB), inputs in {inputs}")


if __name__ == "__main__":
    main()
