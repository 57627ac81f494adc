#!/usr/bin/env python3
"""Goldens for text conditioning (engine/text).

Tokenizer: the reference is transformers' CLIPTokenizer (the slow one, with
ftfy installed, as diffusers / AUTOMATIC1111 run it), built offline from
open_clip's bpe_simple_vocab_16e6.txt.gz (OpenAI's CLIP BPE) into
vocab.json + merges.txt. The script also reports how the fast tokenizer, the
slow one without ftfy and open_clip.tokenize differ on the same prompts.

Writes tests/golden/text/:
  prompts.txt           >= 1000 prompts, one per line (UTF-8, seeded mix)
  tokens_clip.txt       the 77 ids of each prompt, pad = <|endoftext|> (CLIP-L),
                        written through the first end-of-text (the rest is
                        padding: the tests fill it in)
  tokens_joined.txt     ids of prompts 3k, 3k+1, 3k+2 joined by "\n" (k even) or
                        "\r\n" (k odd), for k < 134: multi-line text
  tokens_tiny.txt       ids of the first 300 prompts with a CLIPTokenizer that
                        has the first 2000 merges only and pad "!" (as SD2 /
                        SDXL's second tokenizer); its files are the tiny
                        models' tokenizer folders (sd2/tokenizer/ ...)

Text encoders: tiny random-weight models (vocabulary = the tiny tokenizer's
2514 ids), each in the original single-file layout and as a diffusers folder
(model_index.json, text_encoder[_2]/, tokenizer[_2]/). The single files are
read back with diffusers' own converters (convert_ldm_clip_checkpoint,
convert_open_clip_checkpoint), which must give the diffusers weights (CLIP-L)
or a CLIPTextModel whose outputs equal open_clip's (OpenCLIP).
  sd1.safetensors, sd1/   CLIP-L style: transformers CLIPTextModel, quick_gelu,
                          keys cond_stage_model.transformer.text_model.*, f16
  sd2.safetensors, sd2/   OpenCLIP style: open_clip TextTransformer (GELU,
                          text_projection), keys cond_stage_model.model.*, f16;
                          the folder holds diffusers' conversion (no projection)
  sdxl.safetensors, sdxl/ conditioner.embedders.0.transformer.text_model.*
                          (CLIP-L style, f16) + conditioner.embedders.1.model.*
                          (OpenCLIP style with projection 24, bf16); folder:
                          text_encoder/ + text_encoder_2/ (WithProjection)
  <name>_io.safetensors   input_ids [2,77] i64 -> last_hidden_state,
                          penultimate_hidden_state (hidden_states[-2], no final
                          norm) and pooled (where a projection exists), f32;
                          sdxl_io holds the second encoder's as *_2
  cond_io.safetensors     diffusers' own encode_prompt (StableDiffusionPipeline /
                          StableDiffusionXLPipeline.encode_prompt on the folders'
                          tokenizers and encoders) for COND_PROMPTS:
                          <model>.p<i>.cs<clip_skip> [1, 77, D] and, for sdxl,
                          <model>.p<i>.cs<clip_skip>.pooled [1, P]; clip_skip
                          in A1111 units (1 = default = diffusers' None)

Usage: /work/refvenv/bin/python tests/reference/make_text.py [OUTDIR]
       /work/refvenv/bin/python tests/reference/make_text.py --slow DIR
         (full-size random CLIP-L as an SD1 single file, clipl.safetensors,
         and OpenCLIP-H as an SD2 single file, openclip_h.safetensors (24
         layers) plus diffusers' conversion openclip_h/ (23 layers: diffusers
         drops resblocks.23 as SD2 uses the penultimate layer), f16, with
         *_io.safetensors; for the slow suite, never committed)
"""
import gzip
import json
import os
import random
import shutil
import sys
import tempfile

import ftfy
import open_clip
import torch
from safetensors.torch import save_file
from transformers import CLIPTokenizer, CLIPTokenizerFast
from transformers.models.bert.tokenization_bert import BasicTokenizer

torch.set_num_threads(1)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "golden", "text")
BPE = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
N_MERGES = 49152 - 256 - 2


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_clip_files(folder, n_merges, pad):
    """vocab.json + merges.txt exactly as CLIP's SimpleTokenizer builds them."""
    lines = gzip.open(BPE).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:N_MERGES + 1]][:n_merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.write("\n".join(" ".join(m) for m in merges) + "\n")
    tok = CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"),
                        pad_token=pad)
    return tok


# ---- prompts -----------------------------------------------------------------
WORDS = ("a photo of an astronaut riding horse on mars portrait woman man cat dog castle "
         "forest river mountain sunset city night street rain neon cyberpunk fantasy dragon "
         "knight oil painting watercolor sketch highly detailed sharp focus cinematic lighting "
         "volumetric fog octane render unreal engine trending artstation by greg rutkowski "
         "alphonse mucha studio ghibli anime girl boy red blue green golden hour bokeh 8k hdr "
         "masterpiece best quality ultra realistic intricate elegant smooth illustration "
         "concept art beautiful landscape ocean waves flowers garden old wooden house snow "
         "winter summer autumn spring glowing eyes long hair short dress armor sword magic "
         "ancient ruins temple spaceship robot mech steampunk victorian baroque surreal "
         "minimalist abstract geometric isometric pixel art low poly vaporwave noir").split()
A1111_TAGS = ["masterpiece", "best quality", "1girl", "solo", "looking at viewer", "smile",
              "blue sky", "detailed background", "depth of field", "highres", "absurdres",
              "extremely detailed CG unity 8k wallpaper", "lowres", "bad anatomy", "bad hands",
              "text", "error", "missing fingers", "cropped", "worst quality", "jpeg artifacts",
              "signature", "watermark", "blurry", "red eyes", "silver hair", "hat", "kimono"]
JAPANESE = ["桜の木の下で微笑む少女", "富士山と夕焼け、美しい風景", "猫がこたつで寝ている",
            "東京の夜景、ネオン、雨", "アニメ風のイラスト、高品質", "ｶﾀｶﾅ ﾃｽﾄ ﾊﾟﾝﾀﾞ",
            "ガンダム", "ひらがなとカタカナと漢字", "侍の肖像画、油絵", "ラーメン🍜を食べる"]
CHINESE = ["一只在竹林里吃竹子的熊猫", "山水画，水墨风格", "中国古代宫殿，金色屋顶",
           "龍與鳳凰，傳統藝術", "春天的花园里有很多花", "赛博朋克城市夜景"]
OTHER_SCRIPTS = ["Ελληνικός ΝΑΟΣ ΣΤΟ ΦΩΣ", "ΟΔΟΣ", "Σίσυφος", "красивый ЗАМОК в горах",
                 "Москва ночью", "قطة جميلة في الحديقة", "सुंदर पहाड़ और नदी", "ภูเขาและทะเล",
                 "한국의 전통 한옥 마을", "Straße", "İstanbul", "ŞEHİR IŞIKLARI", "Ǆemal ǅ ǆ",
                 "אור בחושך", "Ꭰ cherokee", "ǅungla"]
EMOJI = ["🐱", "👍🏽", "👨‍👩‍👧‍👦", "🇯🇵", "🏴󠁧󠁢󠁥󠁮󠁧󠁿", "❤️", "✨", "🔥🔥🔥", "🌸", "😀😃😄",
         "🧑🏻‍🚀", "☕", "🎨", "🦄", "1️⃣", "©️", "™"]
ACCENTS = ["café", "naïve", "façade", "über", "crème brûlée", "Ångström", "São Paulo",
           "piñata", "Zürich", "Øresund", "Łódź", "Dvořák", "Ñandú", "CAFÉ",
           "cafe\u0301", "Ame\u0301lie", "n\u0303", "A\u030a", "o\u0308\u0304",
           "e\u0323\u0302", "\u1e0b\u0323", "q\u0307\u0323", "\u1100\u1161\u11a8"]
PUNCT = ["!!!", "???", "...", "…", "---", "—", "–", "~~~", "***", "###", "@@", "$$$", "%%",
         "^^", "&&", "||", "\\\\", "//", "::", ";;", ",,,", "''", '""', "``", "<<>>", "[]{}",
         "(((", ")))", "-_-", "o_O", ":)", ":-(", "<3", "(╯°□°）╯︵ ┻━┻", "¯\\_(ツ)_/¯", "«»",
         "¿¡", "§¶", "†‡", "•", "°", "±", "×÷", "→←↑↓", "★☆", "♪♫", "™®©"]
SPECIAL = ["&amp;", "&lt;tag&gt;", "&quot;hi&quot;", "&#65;&#x42;&#X43;", "&#12345;", "&#128;",
           "&#0;", "&#59;", "&#xD800;", "&#99999999;", "&nbsp;", "&eacute;", "P&EACUTE;REZ",
           "&notanentity;", "&amp;lt;", "AT&T", "&copy; 2024", "&hellip;", "&#1;", "&#x;",
           "&#12ab;", "&Jscr;", "&amp", "\u201cquoted\u201d", "\u2018single\u2019", "don\u2019t",
           "\u201ehalf\u201f", "\u02bcmodifier", "\ufb01ne \ufb02ow \ufb03", "\u0132\u0133",
           "\uff21\uff22\uff23\uff11\uff12\uff13", "\uff08\uff41\uff1a\uff11\uff0e\uff12\uff09",
           "\u3000ideographic\u3000space", "\t tab\tseparated \t", "a\u000bb\u000cc", "x\ry",
           "ctrl\x01\x02\x03chars", "del\x7fete", "c1\x80\x85\x9fchars", "\u200bzero\u200bwidth",
           "\ufeffbom", "\u2028line\u2029sep", "\x1b[31mred\x1b[0m", "soft\u00adhyphen",
           "nb\u00a0sp", "\u2060wj", "\ufff9ann\ufffb", "\x1c\x1d\x1e\x1f", "\x85", "a\u2003b",
           "<lora:add_detail:0.8> &amp; more", "<b>bold</b> &amp;", "\u212a kelvin", "\u017f long s"]
NUMBERS = ["1", "42", "3.14159", "1,000,000", "2024-01-31", "12:30pm", "4k", "8K UHD",
           "50mm f/1.8", "1girl", "v1.5", "0.5", "-7", "+15%", "1e-5", "0x1F", "①②③", "٣٤٥",
           "Ⅻ", "½ ¾", "²³", "१२३", "一二三"]
URLS = ["https://example.com/path?a=1&b=2", "http://www.test.org", "www.artstation.com/artwork/abc",
        "user@example.com", "ftp://files.example.net/a_b-c.png", "C:\\Users\\me\\img.png",
        "/home/user/pic.jpg", "#hashtag @mention", "https://civitai.com/models/4201?modelVersionId=130072"]
CONTRACTIONS = ["don't", "I'LL", "it's", "we're", "they've", "I'm", "you'd", "DON'T STOP",
                "rock'n'roll", "'s", "''s", "o'clock", "'tis", "y'all", "isn't it"]


def a1111_prompt(r):
    parts = []
    for _ in range(r.randint(2, 9)):
        t = r.choice(A1111_TAGS + WORDS)
        k = r.random()
        if k < 0.15:
            t = "(%s)" % t
        elif k < 0.25:
            t = "((%s))" % t
        elif k < 0.35:
            t = "[%s]" % t
        elif k < 0.5:
            t = "(%s:%.1f)" % (t, r.uniform(0.3, 1.8))
        elif k < 0.55:
            t = "\\(%s\\)" % t
        elif k < 0.6:
            t = "(%s:abc)" % t
        elif k < 0.64:
            t = "BREAK"
        elif k < 0.67:
            t = "<lora:%s:%.2f>" % (r.choice(WORDS), r.uniform(0, 1))
        elif k < 0.7:
            t = "(%s" % t
        parts.append(t)
    return r.choice([", ", ",", " ", " , "]).join(parts)


def make_prompts():
    r = random.Random(20241125)
    out = ["", " ", "   ", "\t", "a", "A", "."]
    for lst in (JAPANESE, CHINESE, OTHER_SCRIPTS, EMOJI, ACCENTS, PUNCT, SPECIAL, NUMBERS, URLS,
                CONTRACTIONS):
        out += lst
    pools = [JAPANESE, CHINESE, OTHER_SCRIPTS, EMOJI, ACCENTS, PUNCT, SPECIAL, NUMBERS, URLS,
             CONTRACTIONS]
    while len(out) < 1200:
        k = r.random()
        if k < 0.25:
            n = r.randint(1, 20)
            s = " ".join(r.choice(WORDS) for _ in range(n))
            if r.random() < 0.3:
                s = s.capitalize() + r.choice([".", "!", "?", ""])
            if r.random() < 0.1:
                s = s.upper()
        elif k < 0.5:
            s = a1111_prompt(r)
        elif k < 0.6:  # long: well over 77 tokens
            s = ", ".join(r.choice(WORDS + A1111_TAGS) for _ in range(r.randint(60, 160)))
        else:  # mixtures of everything
            bits = []
            for _ in range(r.randint(1, 6)):
                if r.random() < 0.5:
                    bits.append(r.choice(WORDS))
                else:
                    bits.append(r.choice(r.choice(pools)))
            s = r.choice([" ", "", ", ", "  "]).join(bits)
            if r.random() < 0.1:
                s = "  " + s + "   "
        out.append(s)
    for s in out:
        assert "\n" not in s and "\x00" not in s
    return out


JOINERS = ["\n", "\r\n"]


def ids_line(ids, eos):
    """ids through the first end-of-text (the rest is padding), as text."""
    ids = list(ids)
    return " ".join(str(i) for i in ids[:ids.index(eos, 1) + 1])


def tokenizer_goldens():
    prompts = make_prompts()
    tmp = tempfile.mkdtemp()
    try:
        slow = write_clip_files(os.path.join(tmp, "full"), N_MERGES, "<|endoftext|>")
        fast = CLIPTokenizerFast.from_pretrained(os.path.join(tmp, "full"), from_slow=True,
                                                 pad_token="<|endoftext|>")
        assert slow.fix_text is ftfy.fix_text
        kw = dict(padding="max_length", max_length=77, truncation=True)
        ref = [slow(p, **kw).input_ids for p in prompts]
        n_long = sum(len(slow(p).input_ids) > 77 for p in prompts)
        n_fast = sum(fast(p, **kw).input_ids != r for p, r in zip(prompts, ref))
        # slow without ftfy (transformers' fallback: BERT BasicTokenizer)
        slow.fix_text = None
        slow.nlp = BasicTokenizer(strip_accents=False, do_split_on_punc=False)
        slow.cache = {}
        n_noftfy = sum(slow(p, **kw).input_ids != r for p, r in zip(prompts, ref))
        oc = open_clip.tokenize(prompts).tolist()
        n_oc = sum([(x if x else 49407) for x in o] != r for o, r in zip(oc, ref))
        # ftfy's mojibake repair (fix_encoding) is not reproduced: count it
        n_moji = sum(ftfy.fix_text(p) != ftfy.fix_text(p, fix_encoding=False) for p in prompts)
        print("tokenizer: %d prompts (%d truncated); differ from slow+ftfy: fast %d, "
              "slow without ftfy %d, open_clip.tokenize %d; mojibake-sensitive %d"
              % (len(prompts), n_long, n_fast, n_noftfy, n_oc, n_moji))
        assert n_moji == 0

        with open(os.path.join(OUT, "prompts.txt"), "wb") as f:
            f.write(("\n".join(prompts) + "\n").encode("utf-8"))
        with open(os.path.join(OUT, "tokens_clip.txt"), "w") as f:
            f.write("\n".join(ids_line(r, 49407) for r in ref) + "\n")
        # multi-line prompts: ftfy works line by line and a "<" turns HTML
        # unescaping off for the rest of the text
        slow.fix_text = ftfy.fix_text
        slow.cache = {}
        joined = [JOINERS[(i // 3) % 2].join(prompts[i:i + 3]) for i in range(0, 402, 3)]
        with open(os.path.join(OUT, "tokens_joined.txt"), "w") as f:
            f.write("\n".join(ids_line(slow(p, **kw).input_ids, 49407) for p in joined) + "\n")

        tiny = write_clip_files(TINY_DIR, 2000, "!")
        tiny.save_pretrained(os.path.join(tmp, "tiny_saved"))
        tiny = CLIPTokenizer.from_pretrained(os.path.join(tmp, "tiny_saved"))
        assert tiny.pad_token_id == 0
        with open(os.path.join(OUT, "tokens_tiny.txt"), "w") as f:
            f.write("\n".join(ids_line(tiny(p, **kw).input_ids, EOS) for p in prompts[:300])
                    + "\n")
    finally:
        shutil.rmtree(tmp)
    return prompts


TINY_DIR = tempfile.mkdtemp()


# ---- text encoders -------------------------------------------------------------
VOCAB = 2514          # the tiny tokenizer: 512 bytes + 2000 merges + 2 specials
BOS, EOS = 2512, 2513


def randomize(model, seed, dtype):
    """Random weights with norms and biases perturbed too, rounded to dtype."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.ndim == 1 and ("ln" in name or "norm" in name) and name.endswith("weight"):
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
            elif p.ndim == 1:
                v = 0.1 * torch.randn(p.shape, generator=g)
            elif "embedding" in name:
                v = 0.5 * torch.randn(p.shape, generator=g)
            else:
                v = torch.randn(p.shape, generator=g) * (1.0 / p.shape[-1] ** 0.5)
            p.copy_(v.to(dtype).float())


def make_ids(pad, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((2, 77), pad, dtype=torch.int64)
    n = [9, 75]
    for b in range(2):
        ids[b, 0] = BOS
        ids[b, 1:1 + n[b]] = torch.randint(0, 2512, (n[b],), generator=g)
        ids[b, 1 + n[b]] = EOS
    return ids


def clip_config(hidden, heads, layers, ff, act, proj=None):
    from transformers import CLIPTextConfig
    kw = dict(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=ff,
              num_hidden_layers=layers, num_attention_heads=heads,
              max_position_embeddings=77, hidden_act=act, layer_norm_eps=1e-5,
              bos_token_id=BOS, eos_token_id=EOS, pad_token_id=1)
    if proj:
        kw["projection_dim"] = proj
    return CLIPTextConfig(**kw)


def hf_outputs(model, ids, suffix=""):
    with torch.no_grad():
        o = model(ids, output_hidden_states=True)
    out = {"last_hidden_state" + suffix: o.last_hidden_state,
           "penultimate_hidden_state" + suffix: o.hidden_states[-2]}
    if hasattr(o, "text_embeds"):
        out["pooled" + suffix] = o.text_embeds
    return out


def openclip_outputs(tt, ids, suffix=""):
    """last / penultimate / pooled straight from open_clip's TextTransformer."""
    seen = {}
    hooks = [blk.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o))
             for k, blk in enumerate(tt.transformer.resblocks)]
    hooks.append(tt.ln_final.register_forward_hook(lambda m, i, o: seen.__setitem__("ln", o)))
    with torch.no_grad():
        pooled = tt(ids)
    for h in hooks:
        h.remove()
    n = len(tt.transformer.resblocks)
    return {"last_hidden_state" + suffix: seen["ln"],
            "penultimate_hidden_state" + suffix: seen[n - 2],
            "pooled" + suffix: pooled}


def new_clip_l(seed, dtype):
    from transformers import CLIPTextModel
    torch.manual_seed(seed)
    m = CLIPTextModel(clip_config(32, 2, 3, 37, "quick_gelu")).eval()
    randomize(m, seed, dtype)
    return m


def new_openclip(seed, dtype, width, heads, layers, ff, proj):
    from open_clip.transformer import TextTransformer
    torch.manual_seed(seed)
    tt = TextTransformer(context_length=77, vocab_size=VOCAB, width=width, heads=heads,
                         layers=layers, mlp_ratio=ff / width, output_dim=proj,
                         act_layer=torch.nn.GELU).eval()
    assert tt.transformer.resblocks[0].mlp.c_fc.out_features == ff
    randomize(tt, seed, dtype)
    return tt


def openclip_to_diffusers(tt, ckpt, prefix, with_proj):
    """diffusers' own conversion of the original keys into a CLIPTextModel."""
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextModel, CLIPTextModelWithProjection
    width = tt.width
    cfg = clip_config(width, tt.heads, len(tt.transformer.resblocks),
                      tt.transformer.resblocks[0].mlp.c_fc.out_features, "gelu",
                      proj=tt.output_dim if with_proj else None)
    model = (CLIPTextModelWithProjection if with_proj else CLIPTextModel)(cfg).eval()
    sd = convert_open_clip_checkpoint(model, ckpt, prefix=prefix)
    if not with_proj:
        sd.pop("text_projection.weight", None)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    assert not missing and not unexpected, (missing, unexpected)
    return model


def save_st(tensors, path, dtype=None):
    out = {}
    for k, v in tensors.items():
        v = v.detach().contiguous()
        out[k] = v.to(dtype) if dtype is not None and v.is_floating_point() else v
    save_file(out, path)


def save_folder(folder, parts, tokenizers, pipeline):
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    index = {"_class_name": pipeline, "_diffusers_version": "0.31.0"}
    for name, (model, dtype) in parts.items():
        model.to(dtype).save_pretrained(os.path.join(folder, name), safe_serialization=True)
        model.float()
        index[name] = ["transformers", type(model).__name__]
    for name, pad in tokenizers.items():
        tok = CLIPTokenizer(os.path.join(TINY_DIR, "vocab.json"),
                            os.path.join(TINY_DIR, "merges.txt"), pad_token=pad,
                            model_max_length=77)
        tok.save_pretrained(os.path.join(folder, name))
        index[name] = ["transformers", "CLIPTokenizer"]
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)


def close(a, b, what, tol=1e-5):
    d = (a - b).abs().max().item()
    assert d <= tol, "%s: max diff %g" % (what, d)


def encoder_goldens():
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint

    # SD1: CLIP-L style
    clip_l = new_clip_l(301, torch.float16)
    ckpt = {"cond_stage_model.transformer." + k: v for k, v in clip_l.state_dict().items()
            if "position_ids" not in k}
    back = convert_ldm_clip_checkpoint(ckpt)
    for k, v in clip_l.state_dict().items():
        if "position_ids" not in k:
            assert torch.equal(back[k], v), k
    ids = make_ids(EOS, 11)
    io = {"input_ids": ids, **hf_outputs(clip_l, ids)}
    save_st(ckpt, os.path.join(OUT, "sd1.safetensors"), torch.float16)
    save_folder(os.path.join(OUT, "sd1"), {"text_encoder": (clip_l, torch.float16)},
                {"tokenizer": "<|endoftext|>"}, "StableDiffusionPipeline")
    save_st(io, os.path.join(OUT, "sd1_io.safetensors"))

    # SD2: OpenCLIP style (24 layers in SD2; 3 here, so nothing is dropped)
    tt = new_openclip(302, torch.float16, 32, 2, 3, 53, 24)
    ckpt = {"cond_stage_model.model." + k: v for k, v in tt.state_dict().items()}
    hf = openclip_to_diffusers(tt, ckpt, "cond_stage_model.model.", with_proj=False)
    ids = make_ids(0, 12)
    ref = openclip_outputs(tt, ids)
    conv = hf_outputs(hf, ids)
    for k in ("last_hidden_state", "penultimate_hidden_state"):
        close(conv[k], ref[k], "sd2 " + k)
    io = {"input_ids": ids, **ref}
    save_st(ckpt, os.path.join(OUT, "sd2.safetensors"), torch.float16)
    save_folder(os.path.join(OUT, "sd2"), {"text_encoder": (hf, torch.float16)},
                {"tokenizer": "!"}, "StableDiffusionPipeline")
    save_st(io, os.path.join(OUT, "sd2_io.safetensors"))

    # SDXL: CLIP-L style + OpenCLIP bigG style with projection (bf16)
    clip_l = new_clip_l(303, torch.float16)
    tt = new_openclip(304, torch.bfloat16, 40, 2, 3, 53, 24)
    ckpt = {"conditioner.embedders.0.transformer." + k: v
            for k, v in clip_l.state_dict().items() if "position_ids" not in k}
    ck2 = {"conditioner.embedders.1.model." + k: v for k, v in tt.state_dict().items()}
    back = convert_ldm_clip_checkpoint(ckpt)
    for k, v in clip_l.state_dict().items():
        if "position_ids" not in k:
            assert torch.equal(back[k], v), k
    hf2 = openclip_to_diffusers(tt, ck2, "conditioner.embedders.1.model.", with_proj=True)
    ids = make_ids(EOS, 13)
    ids2 = ids.clone()
    ids2[ids2 == EOS] = 0
    ids2[torch.arange(2), ids.argmax(-1)] = EOS
    ref2 = openclip_outputs(tt, ids2, "_2")
    conv2 = hf_outputs(hf2, ids2, "_2")
    for k in ref2:
        close(conv2[k], ref2[k], "sdxl " + k)
    io = {"input_ids": ids, **hf_outputs(clip_l, ids), "input_ids_2": ids2, **ref2}
    st = {k: v.to(torch.float16) for k, v in ckpt.items()}
    st.update({k: v.to(torch.bfloat16) for k, v in ck2.items()})
    save_st(st, os.path.join(OUT, "sdxl.safetensors"))
    save_folder(os.path.join(OUT, "sdxl"), {"text_encoder": (clip_l, torch.float16),
                                            "text_encoder_2": (hf2, torch.bfloat16)},
                {"tokenizer": "<|endoftext|>", "tokenizer_2": "!"},
                "StableDiffusionXLPipeline")
    save_st(io, os.path.join(OUT, "sdxl_io.safetensors"))
    print("encoders: sd1, sd2, sdxl written (conversions verified)")


COND_PROMPTS = ["a photo of a cat", "", "sunset over the mountains, highly detailed, 8k",
                "HELLO World!! caf\u00e9 \u65e5\u672c"]


def cond_goldens():
    import types
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection
    cpu = torch.device("cpu")
    out = {}
    for name in ("sd1", "sd2"):
        d = os.path.join(OUT, name)
        ns = types.SimpleNamespace(
            tokenizer=CLIPTokenizer.from_pretrained(os.path.join(d, "tokenizer")),
            text_encoder=CLIPTextModel.from_pretrained(os.path.join(d, "text_encoder")).float())
        for i, p in enumerate(COND_PROMPTS):
            for cs in ((1, 2) if i == 3 else (1,)):
                with torch.no_grad():
                    pe, _ = StableDiffusionPipeline.encode_prompt(
                        ns, p, cpu, 1, False, clip_skip=None if cs == 1 else cs - 1)
                out["%s.p%d.cs%d" % (name, i, cs)] = pe
    d = os.path.join(OUT, "sdxl")
    ns = types.SimpleNamespace(
        tokenizer=CLIPTokenizer.from_pretrained(os.path.join(d, "tokenizer")),
        tokenizer_2=CLIPTokenizer.from_pretrained(os.path.join(d, "tokenizer_2")),
        text_encoder=CLIPTextModel.from_pretrained(os.path.join(d, "text_encoder")).float(),
        text_encoder_2=CLIPTextModelWithProjection.from_pretrained(
            os.path.join(d, "text_encoder_2")).float(),
        config=types.SimpleNamespace(force_zeros_for_empty_prompt=True))
    for i, p in enumerate(COND_PROMPTS):
        for cs in ((1, 2) if i == 3 else (1,)):
            with torch.no_grad():
                pe, _, pooled, _ = StableDiffusionXLPipeline.encode_prompt(
                    ns, p, device=cpu, num_images_per_prompt=1, do_classifier_free_guidance=False,
                    clip_skip=None if cs == 1 else cs - 1)
            out["sdxl.p%d.cs%d" % (i, cs)] = pe
            out["sdxl.p%d.cs%d.pooled" % (i, cs)] = pooled
    save_st(out, os.path.join(OUT, "cond_io.safetensors"))
    print("conditioning: %d tensors from diffusers encode_prompt" % len(out))


def main():
    os.makedirs(OUT, exist_ok=True)
    try:
        tokenizer_goldens()
        encoder_goldens()
        cond_goldens()
    finally:
        shutil.rmtree(TINY_DIR)


def main_slow(d):
    """Full-size text encoders for the slow suite (cached: rebuilt only when
    missing)."""
    os.makedirs(d, exist_ok=True)
    global VOCAB
    VOCAB = 49408
    prompt_ids = torch.tensor([[49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 7496,
                                49407] + [49407] * 65,
                               [49406] + list(range(1000, 1075)) + [49407]])
    if not os.path.exists(os.path.join(d, "clipl_io.safetensors")):
        from transformers import CLIPTextConfig, CLIPTextModel
        torch.manual_seed(401)
        cfg = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                             num_hidden_layers=12, num_attention_heads=12,
                             max_position_embeddings=77, hidden_act="quick_gelu")
        m = CLIPTextModel(cfg).eval()
        randomize(m, 401, torch.float16)
        ckpt = {"cond_stage_model.transformer." + k: v for k, v in m.state_dict().items()
                if "position_ids" not in k}
        save_st(ckpt, os.path.join(d, "clipl.safetensors"), torch.float16)
        save_st({"input_ids": prompt_ids, **hf_outputs(m, prompt_ids)},
                os.path.join(d, "clipl_io.safetensors"))
        del m, ckpt
    if not os.path.exists(os.path.join(d, "openclip_h_io.safetensors")):
        tt = new_openclip(402, torch.float16, 1024, 16, 24, 4096, 1024)
        ckpt = {"cond_stage_model.model." + k: v for k, v in tt.state_dict().items()}
        hf = openclip_to_diffusers_n(tt, ckpt, 23)
        ids = prompt_ids.clone()
        ids[0, 12:] = 0
        ref = openclip_outputs(tt, ids)
        conv = hf_outputs(hf, ids, "_folder")
        # SD2's conditioning: ln_final(hidden_states[23]) is the folder's last state
        close(conv["last_hidden_state_folder"],
              tt.ln_final(ref["penultimate_hidden_state"]), "sd2 penultimate", 1e-4)
        save_st(ckpt, os.path.join(d, "openclip_h.safetensors"), torch.float16)
        save_folder(os.path.join(d, "openclip_h"), {"text_encoder": (hf, torch.float16)}, {},
                    "StableDiffusionPipeline")
        save_st({"input_ids": ids, **ref, **conv}, os.path.join(d, "openclip_h_io.safetensors"))
    print("slow text models in", d)


def openclip_to_diffusers_n(tt, ckpt, n_layers):
    """As openclip_to_diffusers, but a CLIPTextModel of n_layers (SD2's 23)."""
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextModel
    cfg = clip_config(tt.width, tt.heads, n_layers,
                      tt.transformer.resblocks[0].mlp.c_fc.out_features, "gelu")
    cfg.vocab_size = VOCAB
    cfg.bos_token_id, cfg.eos_token_id = 49406, 49407
    model = CLIPTextModel(cfg).eval()
    sd = convert_open_clip_checkpoint(model, ckpt, prefix="cond_stage_model.model.")
    sd.pop("text_projection.weight", None)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    assert not missing and not unexpected, (missing, unexpected)
    return model


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--slow":
        main_slow(sys.argv[2])
    else:
        main()
