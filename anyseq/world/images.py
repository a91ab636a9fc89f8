"""AnyWorld's images: shape scenes, emoji, handwritten digits and a few real photos.

AnyGPT pretrained its image tokens on LAION/COCO-style caption pairs and rendered
AnyInstruct's pictures with DALL-E 3 (paper, sections 4.1-4.2). Here every picture is
drawn by a known program, so its caption is exact and its attributes are kept as labels:

- shape scenes (PIL): one or two objects, `COLOURS` x `SHAPES` x positions x sizes on a
  plain background, captioned by a small grammar. Labels hold fractional geometry, so a
  scene renders at any size and a judge can check pixels against them;
- emoji from Noto Color Emoji, captioned with their Unicode names (an open vocabulary);
- scikit-learn's 1,797 handwritten digits;
- scikit-image's sample photos (few, but real).
"""

from __future__ import annotations

import math
import random
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from anyseq.world.engines import emoji_font

# Object colours (chromatic) and background colours (achromatic), far apart in RGB so a
# pixel judge can name any pixel by its nearest palette entry.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 30),
    "green": (40, 170, 60),
    "blue": (30, 80, 220),
    "purple": (140, 60, 190),
    "pink": (245, 130, 200),
    "brown": (120, 70, 30),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "diamond", "cross", "heart")
SIDES = {"square": 4, "triangle": 3, "hexagon": 6, "diamond": 4, "star": 10, "cross": 12}
SIZES: dict[str, float] = {"small": 0.14, "medium": 0.21, "large": 0.30}  # radius / image side
# Single-object positions: (column, row) offsets in {-1, 0, 1} from the centre.
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (-1, -1),
    "top": (0, -1),
    "top right": (1, -1),
    "left": (-1, 0),
    "center": (0, 0),
    "right": (1, 0),
    "bottom left": (-1, 1),
    "bottom": (0, 1),
    "bottom right": (1, 1),
}
POSITION_PHRASES = {
    "top left": "in the top left corner",
    "top": "at the top",
    "top right": "in the top right corner",
    "left": "on the left",
    "center": "in the center",
    "right": "on the right",
    "bottom left": "in the bottom left corner",
    "bottom": "at the bottom",
    "bottom right": "in the bottom right corner",
}
# Two-object scenes: the first object's relation to the second, and where each one sits.
RELATIONS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "to the left of": ((0.27, 0.5), (0.73, 0.5)),
    "to the right of": ((0.73, 0.5), (0.27, 0.5)),
    "above": ((0.5, 0.27), (0.5, 0.73)),
    "below": ((0.5, 0.73), (0.5, 0.27)),
}
SUPERSAMPLE = 4  # shapes are drawn at 4x and box-filtered down: smooth edges, exact colours inside
JITTER = 0.02  # random shift of a centre, as a fraction of the side


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def sample_scene(
    rng: random.Random,
    heldout_pairs: frozenset[tuple[str, str]],
    heldout: bool,
    two_object_fraction: float = 0.35,
) -> dict[str, Any]:
    """Labels of a random scene. With `heldout`, at least one object is a held-out
    (colour, shape) pair; without, none is."""
    if heldout and not heldout_pairs:
        raise ValueError("held-out scenes need at least one held-out (colour, shape) pair")
    while True:
        labels = _random_scene(rng, two_object_fraction)
        pairs = {(o["colour"], o["shape"]) for o in labels["objects"]}
        if bool(pairs & heldout_pairs) == heldout:
            return labels


def _random_scene(rng: random.Random, two_object_fraction: float) -> dict[str, Any]:
    background = rng.choice(list(BACKGROUNDS))
    if rng.random() < two_object_fraction:
        relation = rng.choice(list(RELATIONS))
        colours = rng.sample(list(COLOURS), 2)
        objects = [
            scene_object(rng.choice(SHAPES), colour, rng.choice(("small", "medium")), center, rng)
            for colour, center in zip(colours, RELATIONS[relation], strict=True)
        ]
        return {"background": background, "objects": objects, "relation": relation}
    size = rng.choice(list(SIZES))
    position = rng.choice(list(POSITIONS))
    obj = scene_object(rng.choice(SHAPES), rng.choice(list(COLOURS)), size, position, rng)
    return {"background": background, "objects": [obj], "relation": None}


def scene_object(
    shape: str, colour: str, size: str, where: str | tuple[float, float], rng: random.Random | None = None
) -> dict[str, Any]:
    """One object's labels; `where` is a `POSITIONS` name or a centre (fractions of the side)."""
    radius = SIZES[size]
    if isinstance(where, str):
        column, row = POSITIONS[where]
        reach = 0.5 - radius - 0.04
        center = (0.5 + column * reach, 0.5 + row * reach)
        position = where
    else:
        center, position = where, None
    if rng is not None:
        center = tuple(c + rng.uniform(-JITTER, JITTER) for c in center)
    return {
        "shape": shape,
        "colour": colour,
        "size": size,
        "position": position,
        "center": [round(c, 4) for c in center],
        "radius": radius,
    }


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    def ring(count: int, radii: tuple[float, ...], phase: float = -math.pi / 2) -> list[tuple[float, float]]:
        points = []
        for k in range(count * len(radii)):
            angle = phase + 2 * math.pi * k / (count * len(radii))
            radius = radii[k % len(radii)]
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points

    if shape == "square":
        h = r * 0.85
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "triangle":
        return ring(3, (r,), phase=-math.pi / 2)
    if shape == "star":
        return ring(5, (r, 0.45 * r))
    if shape == "hexagon":
        return ring(6, (r,), phase=0.0)
    if shape == "diamond":
        return [(cx, cy - r), (cx + 0.7 * r, cy), (cx, cy + r), (cx - 0.7 * r, cy)]
    if shape == "cross":
        a, w = r * 0.9, r * 0.3
        # a plus sign: the twelve corners, clockwise from the top arm's left edge
        x = (-w, w, w, a, a, w, w, -w, -w, -a, -a, -w)
        y = (-a, -a, -w, -w, w, w, a, a, w, w, -w, -w)
        return [(cx + dx, cy + dy) for dx, dy in zip(x, y, strict=True)]
    if shape == "heart":
        scale = r / 16.5
        return [
            (
                cx + scale * 16 * math.sin(t) ** 3,
                cy
                - scale
                * (13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t) + 2),
            )
            for t in np.linspace(0, 2 * math.pi, 48, endpoint=False)
        ]
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


def render_shape_scene(labels: dict[str, Any], size: int = 64) -> Image.Image:
    """Draw a scene from its labels (`sample_scene`): RGB, `size` x `size` px."""
    if size < 16:
        raise ValueError(f"shape scenes need at least 16 px, got size={size}")
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), BACKGROUNDS[labels["background"]])
    draw = ImageDraw.Draw(image)
    for obj in labels["objects"]:
        cx, cy = (c * big for c in obj["center"])
        r = obj["radius"] * big
        fill = COLOURS[obj["colour"]]
        if obj["shape"] == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        else:
            draw.polygon(_polygon(obj["shape"], cx, cy, r), fill=fill)
    return image.resize((size, size), Image.Resampling.BOX)


def _object_phrase(obj: dict[str, Any], with_size: bool = True) -> str:
    words = [obj["size"]] if with_size else []
    words += [obj["colour"], obj["shape"]]
    return f"{article(words[0])} {' '.join(words)}"


def scene_phrase(labels: dict[str, Any]) -> str:
    """The canonical description of a scene: "a small red circle on the left on a white background"."""
    objects = labels["objects"]
    if len(objects) == 1:
        thing = f"{_object_phrase(objects[0])} {POSITION_PHRASES[objects[0]['position']]}"
    else:
        thing = f"{_object_phrase(objects[0])} {labels['relation']} {_object_phrase(objects[1])}"
    return f"{thing} on a {labels['background']} background"


def shape_caption(labels: dict[str, Any], rng: random.Random) -> str:
    """A caption naming every attribute, in one of three word orders; the colour always
    directly precedes the shape."""
    phrase = scene_phrase(labels)
    template = rng.randrange(3)
    if template == 0:
        return phrase
    if template == 1:
        thing, background = phrase.rsplit(" on a ", 1)
        return f"a {background} with {thing}"
    return f"there is {phrase}"


# Emoji: single code points of the font with a Unicode name; modifiers, joiners and flag
# letters are parts of sequences, not pictures.
_NOT_PICTURES = ("REGIONAL INDICATOR", "EMOJI MODIFIER", "COMBINING", "VARIATION SELECTOR", "TAG ")
EMOJI_FONT_SIZE = 109  # the only size Noto Color Emoji's bitmaps come in


@dataclass(frozen=True)
class Emoji:
    char: str
    name: str  # lower-case Unicode name, e.g. "grinning face"

    @property
    def codepoint(self) -> str:
        return f"U+{ord(self.char):04X}"


@cache
def emoji_catalogue() -> tuple[Emoji, ...]:
    """Every single-code-point picture of the emoji font, in code point order."""
    from fontTools.ttLib import TTFont

    cmap = TTFont(str(emoji_font()), lazy=True).getBestCmap()
    out = []
    for codepoint in sorted(cmap):
        char = chr(codepoint)
        name = unicodedata.name(char, None)
        if codepoint < 0x2000 or name is None or unicodedata.category(char) not in ("So", "Sm"):
            continue
        if name.startswith(_NOT_PICTURES):
            continue
        out.append(Emoji(char, name.lower()))
    return tuple(out)


@cache
def _emoji_font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(emoji_font()), EMOJI_FONT_SIZE)


EMOJI_SCALES = (0.88, 1.0)  # an emoji fills this share of the picture's side, drawn anew for each render


def emoji_variation(rng: random.Random) -> dict[str, Any]:
    """A random rendering of an emoji: its scale, and where it sits in the margin that leaves
    (shift -1..1 on each axis, 0 is centred). Each render of an emoji draws its own, so the
    in-distribution test split can show training emoji in renderings training never saw."""
    return {
        "scale": round(rng.uniform(*EMOJI_SCALES), 3),
        "shift": [round(rng.uniform(-1, 1), 3), round(rng.uniform(-1, 1), 3)],
    }


def emoji_labels(emoji: Emoji, rng: random.Random) -> dict[str, Any]:
    """The labels of one render of `emoji`: what it is, and its scale and place (`emoji_variation`)."""
    return {"char": emoji.char, "name": emoji.name, "codepoint": emoji.codepoint, **emoji_variation(rng)}


def render_emoji_labels(labels: dict[str, Any], size: int = 64) -> Image.Image:
    """The render `emoji_labels` describe (as `render_shape_scene` draws a scene's labels)."""
    return render_emoji(labels["char"], size, labels["scale"], labels["shift"])


EMOJI_GALLERY_VARIATIONS = tuple(
    {"scale": scale, "shift": list(shift)}
    for scale, shift in (
        (1.0, (0, 0)),
        (EMOJI_SCALES[0], (0, 0)),
        (sum(EMOJI_SCALES) / 2, (-1, -1)),
        (sum(EMOJI_SCALES) / 2, (1, 1)),
        (EMOJI_SCALES[0], (-1, 1)),
        (EMOJI_SCALES[0], (1, -1)),
    )
)  # renderings spanning `emoji_variation`, for judges that compare pictures with every emoji


def render_emoji(char: str, size: int = 64, scale: float = 1.0, shift: Any = (0.0, 0.0)) -> Image.Image:
    """An emoji on white, `size` x `size` px, filling `scale` of the side, placed by `shift`
    (-1..1 per axis across the margin; (0, 0) is centred)."""
    if not 0 < scale <= 1:
        raise ValueError(f"emoji scale {scale}: must be in (0, 1]")
    font = _emoji_font()
    left, top, right, bottom = font.getbbox(char)
    side = max(right - left, bottom - top)
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text(
        ((side - (right - left)) / 2 - left, (side - (bottom - top)) / 2 - top),
        char,
        font=font,
        embedded_color=True,
    )
    inner = max(1, round(size * scale))
    drawn = canvas.convert("RGB").resize((inner, inner), Image.Resampling.LANCZOS)
    if inner == size:
        return drawn
    picture = Image.new("RGB", (size, size), (255, 255, 255))
    margin = (size - inner) / 2
    picture.paste(drawn, tuple(round(margin * (1 + max(-1.0, min(1.0, float(d))))) for d in shift))
    return picture


def emoji_caption(emoji: Emoji, rng: random.Random) -> str:
    name = emoji.name
    return rng.choice(
        (f"an emoji of {article(name)} {name}", f"the {name} emoji", f"{article(name)} {name} emoji")
    )


DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@cache
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits: images (1797, 8, 8) in 0..16, labels (1797,)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images, data.target


def render_digit(pixels: np.ndarray, size: int = 64) -> Image.Image:
    """An 8 x 8 digit (ink 0..16) as dark ink on white, `size` px."""
    gray = (255 - pixels.astype(np.float64) * 255 / 16).round().astype(np.uint8)
    return Image.fromarray(gray).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)


def digit_caption(digit: int, rng: random.Random) -> str:
    name = DIGIT_NAMES[digit]
    return rng.choice(
        (f"a handwritten digit {name}", f"the number {name} written by hand", f"a hand-drawn {name}")
    )


# scikit-image's bundled sample images (loaded without download) and what they show.
PHOTOS: dict[str, str] = {
    "astronaut": "a photo of an astronaut in a white spacesuit in front of a flag",
    "camera": "a black and white photo of a man with a camera on a tripod",
    "coffee": "a photo of a cup of coffee on a saucer",
    "chelsea": "a photo of a ginger cat",
    "rocket": "a photo of a rocket on a launch pad",
    "horse": "a black silhouette of a horse on a white background",
    "coins": "a grayscale photo of old coins",
    "moon": "a grayscale photo of the surface of the moon",
    "hubble_deep_field": "a photo of galaxies in deep space",
    "retina": "a photo of the retina of an eye",
    "page": "a scanned page of printed text",
    "brick": "a grayscale photo of a brick wall",
    "grass": "a grayscale photo of grass",
    "gravel": "a grayscale photo of gravel",
    "cell": "a microscope image of a cell",
    "immunohistochemistry": "a microscope image of stained tissue",
    "clock": "a blurred photo of a clock on a wall",
    "colorwheel": "a colour wheel",
    "logo": "the scikit-image logo",
}


def render_photo(name: str, size: int = 64) -> Image.Image:
    """A scikit-image sample photo, centre-cropped to a square and resized to `size` px."""
    import skimage.data

    array = np.asarray(getattr(skimage.data, name)())
    if array.dtype == bool:
        array = np.where(array, 255, 0).astype(np.uint8)  # the horse: False is the silhouette
    image = Image.fromarray(array)
    if image.mode in ("RGBA", "LA"):
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    image = image.convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
