#!/usr/bin/env python3
"""Goldens for text conditioning (engine/text).

Tokenizer: the reference is transformers' CLIPTokenizer (the slow one, with
ftfy installed, as diffusers / AUTOMATIC1111 run it), built offline from
open_clip's bpe_simple_vocab_16e6.txt.gz (OpenAI's CLIP BPE) into
vocab.json + merges.txt. The script also reports how the fast tokenizer, the
slow one without ftfy and open_clip.tokenize differ on the same prompts.

Writes tests/golden/text/:
  prompts.txt           >= 1000 prompts, one per line (UTF-8, seeded mix)
  tokens_clip.txt       77 ids per prompt, pad = <|endoftext|> (CLIP-L)
  tiny_tokenizer/       a CLIPTokenizer with the first 2000 merges only
                        (vocab.json, merges.txt, special_tokens_map.json ...,
                        pad "!" as SD2/SDXL's second tokenizer)
  tokens_tiny.txt       ids of the first 300 prompts with that tokenizer

Usage: /work/refvenv/bin/python tests/reference/make_text.py [OUTDIR]
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


def ids_line(ids):
    return " ".join(str(i) for i in ids)


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
            f.write("\n".join(ids_line(r) for r in ref) + "\n")

        tiny_dir = os.path.join(OUT, "tiny_tokenizer")
        shutil.rmtree(tiny_dir, ignore_errors=True)
        tiny = write_clip_files(os.path.join(tmp, "tiny"), 2000, "!")
        tiny.save_pretrained(tiny_dir)
        tiny = CLIPTokenizer.from_pretrained(tiny_dir)
        assert tiny.pad_token_id == 0
        with open(os.path.join(OUT, "tokens_tiny.txt"), "w") as f:
            f.write("\n".join(ids_line(tiny(p, **kw).input_ids) for p in prompts[:300]) + "\n")
    finally:
        shutil.rmtree(tmp)
    return prompts


def main():
    os.makedirs(OUT, exist_ok=True)
    tokenizer_goldens()


if __name__ == "__main__":
    main()
