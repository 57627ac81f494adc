"""Synthetic captioned scenes for the gimp-ldm demo models.

Plain shapes (circle, square, triangle, star) in named colours and sizes at
named positions on named backgrounds, rendered with PIL at 4x and box-filtered
down (anti-aliased). Everything is driven by a numpy Generator, so a seed gives
the same images and captions on every machine.
"""
import numpy as np
from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (245, 215, 30),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "orange": (245, 140, 20),
    "purple": (140, 40, 180),
}
BACKGROUNDS = dict(COLOURS, gray=(128, 128, 128))
SHAPES = ["circle", "square", "triangle", "star"]
SIZES = {"small": 0.12, "big": 0.22}
SIZE_WORDS = {"small": ["small", "little"], "big": ["big", "large"]}
# centre of each named position, as fractions of the image side (x, y)
POSITIONS = {
    "top left": (0.27, 0.27), "top": (0.5, 0.27), "top right": (0.73, 0.27),
    "left": (0.27, 0.5), "center": (0.5, 0.5), "right": (0.73, 0.5),
    "bottom left": (0.27, 0.73), "bottom": (0.5, 0.73), "bottom right": (0.73, 0.73),
}
SUPERSAMPLE = 4


def sample_scene(rng):
    """One shape on a background: a dict of named attributes plus jitter."""
    colour = str(rng.choice(list(COLOURS)))
    bg = str(rng.choice([b for b in BACKGROUNDS if b != colour]))
    jx, jy = rng.uniform(-0.035, 0.035, size=2)
    return {
        "shape": str(rng.choice(SHAPES)),
        "colour": colour,
        "size": str(rng.choice(list(SIZES))),
        "position": str(rng.choice(list(POSITIONS))),
        "background": bg,
        "jitter": (float(jx), float(jy)),
        "scale_jitter": float(rng.uniform(0.9, 1.1)),
        "tint": tuple(int(t) for t in rng.integers(-8, 9, size=3)),
    }


def caption(scene, rng):
    """A caption naming the colour and shape, and sometimes size/background/position."""
    words = []
    if rng.random() < 0.6:
        words.append(str(rng.choice(SIZE_WORDS[scene["size"]])))
    words += [scene["colour"], scene["shape"]]
    text = ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)
    if rng.random() < 0.6:
        text += " on a %s background" % scene["background"]
    if rng.random() < 0.75:
        pos = scene["position"]
        form = rng.integers(0, 3)
        if form == 0:
            text += ", " + pos
        elif form == 1:
            text += " in the " + pos if pos != "center" else " in the center"
        else:
            text += " at the " + pos
    return text


def _clip(c):
    return tuple(int(min(255, max(0, v))) for v in c)


def draw_shape(draw, shape, cx, cy, r, colour):
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "square":
        h = 0.86 * r
        draw.rectangle([cx - h, cy - h, cx + h, cy + h], fill=colour)
    elif shape == "triangle":
        pts = [(cx + r * np.cos(a), cy + 1.1 * r * np.sin(a) + 0.15 * r)
               for a in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6)]
        draw.polygon(pts, fill=colour)
    elif shape == "star":
        pts = []
        for k in range(10):
            a = -np.pi / 2 + k * np.pi / 5
            rr = 1.1 * r if k % 2 == 0 else 0.45 * r
            pts.append((cx + rr * np.cos(a), cy + rr * np.sin(a) + 0.08 * r))
        draw.polygon(pts, fill=colour)
    else:
        raise ValueError(shape)


def render(scenes, size, background=None):
    """Render one or more scenes (the first one's background) at size x size.

    Returns uint8 [size, size, 3]."""
    if isinstance(scenes, dict):
        scenes = [scenes]
    big = size * SUPERSAMPLE
    bgname = background or scenes[0]["background"]
    bgc = np.array(BACKGROUNDS[bgname]) + np.array(scenes[0]["tint"]) // 2
    img = Image.new("RGB", (big, big), _clip(bgc))
    draw = ImageDraw.Draw(img)
    for s in scenes:
        if "centre" in s:       # placed explicitly (fractions of the side)
            cx, cy, r = s["centre"][0] * big, s["centre"][1] * big, s["radius"] * big
        else:
            fx, fy = POSITIONS[s["position"]]
            cx = (fx + s["jitter"][0]) * big
            cy = (fy + s["jitter"][1]) * big
            r = SIZES[s["size"]] * s["scale_jitter"] * big
        col = np.array(COLOURS[s["colour"]]) + np.array(s["tint"])
        draw_shape(draw, s["shape"], cx, cy, r, _clip(col))
    img = img.resize((size, size), Image.BOX)
    return np.asarray(img, dtype=np.uint8)


def make_dataset(n, size, seed):
    """n images [n, size, size, 3] uint8 and their captions, reproducible from seed."""
    rng = np.random.default_rng(seed)
    imgs = np.empty((n, size, size, 3), dtype=np.uint8)
    caps, scenes = [], []
    for i in range(n):
        s = sample_scene(rng)
        imgs[i] = render(s, size)
        caps.append(caption(s, rng))
        scenes.append(s)
    return imgs, caps, scenes


# how far each shape reaches from its centre, in units of r (draw_shape)
REACH = {"circle": 1.0, "square": 0.86, "triangle": 1.1, "star": 1.1}


def sample_fitted(rng, size=64, cell=8):
    """An inpainting example whose masked box holds exactly the named shape.

    A scene (background + one shape), a grid-aligned box of 2-5 cells a side,
    and a new shape of another colour than the background that fills the box
    (85-100 % of its smaller side). Returns (scenes to render, the new
    shape's scene dict for its caption, mask [size, size] float32 1 = box)."""
    base = sample_scene(rng)
    n = size // cell
    w, h = (int(v) for v in rng.integers(2, 6, size=2))
    x0, y0 = int(rng.integers(0, n - w + 1)), int(rng.integers(0, n - h + 1))
    shape = str(rng.choice(SHAPES))
    colour = str(rng.choice([c for c in COLOURS if c != base["background"]]))
    cx, cy = (x0 + w / 2) / n, (y0 + h / 2) / n
    radius = min(w, h) / (2 * n) * float(rng.uniform(0.85, 1.0)) / REACH[shape]
    names = list(POSITIONS)
    pos = names[int(np.argmin([(POSITIONS[p][0] - cx) ** 2 + (POSITIONS[p][1] - cy) ** 2
                               for p in names]))]
    new = {"shape": shape, "colour": colour, "size": "big" if radius > 0.17 else "small",
           "position": pos, "background": base["background"], "jitter": (0.0, 0.0),
           "scale_jitter": 1.0, "tint": base["tint"], "centre": (cx, cy), "radius": radius}
    mask = np.zeros((size, size), np.float32)
    mask[y0 * cell:(y0 + h) * cell, x0 * cell:(x0 + w) * cell] = 1.0
    return [base, new], new, mask


def sample_multi_scene(rng, max_shapes=3):
    """Up to max_shapes shapes on one background, for the upscaler."""
    k = int(rng.integers(1, max_shapes + 1))
    first = sample_scene(rng)
    out = [first]
    for _ in range(k - 1):
        s = sample_scene(rng)
        if s["colour"] == first["background"]:
            continue
        s["background"] = first["background"]
        out.append(s)
    return out


def downscale(img_u8, factor):
    """Area (box) downscale of a uint8 [H, W, 3] image by an integer factor."""
    h, w = img_u8.shape[:2]
    return np.asarray(Image.fromarray(img_u8).resize((w // factor, h // factor), Image.BOX))


def nearest_colour(rgb, names=None):
    """The named colour closest (Euclidean in sRGB) to rgb."""
    names = names or list(BACKGROUNDS)
    rgb = np.asarray(rgb, dtype=np.float64)
    d = [np.sum((rgb - np.array(BACKGROUNDS[n])) ** 2) for n in names]
    return names[int(np.argmin(d))]


if __name__ == "__main__":
    import sys
    imgs, caps, _ = make_dataset(16, 64, 0)
    grid = imgs.reshape(4, 4, 64, 64, 3).transpose(0, 2, 1, 3, 4).reshape(256, 256, 3)
    Image.fromarray(grid).save(sys.argv[1] if len(sys.argv) > 1 else "/tmp/demo_grid.png")
    for c in caps:
        print(c)
