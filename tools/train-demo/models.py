"""Configurations of the demo models, built with the reference libraries' classes.

Every hyper-parameter the engine cannot read from tensor shapes follows the real
family: GroupNorm with 32 groups in the text-to-image UNets (the VAEs and the
x4 UNet: 8, see make_vae and make_x4_unet, which the single files state in their
metadata), SD1 UNet with 8 heads and conv proj_in, CLIP with head size 64, x4
upscaler with 8 heads, linear proj_in, class-embedded noise level and an
SD2-style (OpenCLIP, gelu) text encoder.
"""
import gzip
import json
import os

from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

IMAGE_SIZE = 64            # txt2img / inpaint native size (latent 8x8)
X4_SIZE = 64               # x4 native output size used in training (latent 16x16)
SD1_SCALE = 0.18215        # latent scaling of SD1 (the VAE is rescaled to it)
X4_SCALE = 0.08333         # latent scaling of the SD x4 upscaler
SEED = 20261125

TEXT_HIDDEN = 64
X4_UNET_GROUPS = 8         # GroupNorm groups of the x4 UNet (make_x4_unet)
X4_UNET_CHANNELS = (64, 64, 32, 48)   # channels of the x4 UNet's levels (make_x4_unet)


def text_config(sd2_style=False):
    return CLIPTextConfig(
        vocab_size=49408, hidden_size=TEXT_HIDDEN, intermediate_size=4 * TEXT_HIDDEN,
        num_hidden_layers=2, num_attention_heads=TEXT_HIDDEN // 64,
        max_position_embeddings=77, hidden_act="gelu" if sd2_style else "quick_gelu",
        layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407,
        pad_token_id=1, projection_dim=TEXT_HIDDEN, torch_dtype="float32")


def make_text_encoder(sd2_style=False):
    return CLIPTextModel(text_config(sd2_style))


def make_vae(x4=False):
    """GroupNorm with 8 groups (DEMO_VAE_GROUPS; the committed models): with SD's 32 the
    32-channel levels normalise every channel alone over the picture, which erases absolute
    colour in flat regions; 8 groups of 4 channels keep it (MODEL_CARD.md). The single
    files say so in their metadata (ldm.options = vae.groups=8, export.py)."""
    levels = 3 if x4 else 4        # 4x down for the upscaler, 8x as SD
    chans = (32, 32, 64) if x4 else (32, 32, 64, 64)
    return AutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=chans, layers_per_block=1, act_fn="silu",
        latent_channels=4, norm_num_groups=int(os.environ.get("DEMO_VAE_GROUPS", "8")),
        sample_size=X4_SIZE if x4 else IMAGE_SIZE,
        scaling_factor=X4_SCALE if x4 else SD1_SCALE)


def make_unet(in_channels=4):
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 8, in_channels=in_channels, out_channels=4,
        # SDXL's pattern (no attention at the full-resolution level), SD1's conventions
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 64), layers_per_block=2,
        cross_attention_dim=TEXT_HIDDEN, attention_head_dim=8,
        norm_num_groups=32, norm_eps=1e-5, use_linear_projection=False,
        flip_sin_to_cos=True, freq_shift=0)


def make_x4_unet():
    """Same block pattern as stabilityai/stable-diffusion-x4-upscaler, scaled down:
    4 levels, 2 layers each, channel change into level 3 (input_blocks.10.0 has
    a skip connection, which is how single-file loaders recognise it).

    GroupNorm with 8 groups (X4_UNET_GROUPS): with SD's 32 every 32-channel level
    normalises each channel alone over the picture, so the network loses the absolute
    colour of flat regions and paints them from the noise (a green haze on black
    backgrounds, orange drawn yellow): 800 training steps gave 14.7 dB with 32 groups
    and 27.2 dB with 8 on check.py's scenes (MODEL_CARD.md, "How they were trained").

    Channels (64, 64, 32, 48) (X4_UNET_CHANNELS): the two full- and half-resolution
    levels, where the upscaling happens, twice as wide as the deep ones. A short GPU
    search (MODEL_CARD.md) had 64 channels everywhere 1.1 dB ahead of (32, 32, 32, 64)
    at the same steps; the deep levels stay narrow to keep the file under 15 MB (the
    text encoder's token table alone takes 6.3 MB of it)."""
    return UNet2DConditionModel(
        sample_size=X4_SIZE // 4, in_channels=7, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                          "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                        "UpBlock2D"),
        block_out_channels=X4_UNET_CHANNELS, layers_per_block=2,
        cross_attention_dim=TEXT_HIDDEN, attention_head_dim=8,
        only_cross_attention=[True, True, True, False],
        num_class_embeds=1000, norm_num_groups=X4_UNET_GROUPS, norm_eps=1e-5,
        use_linear_projection=True, flip_sin_to_cos=True, freq_shift=0,
        mid_block_scale_factor=1, downsample_padding=1)


def bytes_to_unicode():
    """The byte -> printable character table of GPT-2/CLIP BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) \
        + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build_tokenizer_files(out_dir):
    """vocab.json + merges.txt of the CLIP tokenizer, from open_clip's bundled BPE list."""
    import open_clip
    src = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.open(src).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return out_dir


def make_tokenizer(work_dir, sd2_style=False):
    d = os.path.join(work_dir, "clip-tokenizer")
    if not os.path.exists(os.path.join(d, "merges.txt")):
        build_tokenizer_files(d)
    return CLIPTokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"),
                         pad_token="!" if sd2_style else "<|endoftext|>", model_max_length=77)


def nparams(m):
    return sum(p.numel() for p in m.parameters())
