"""Images: rendered shape scenes agree with their labels (judged from pixels), captions name
every attribute, emoji/digits/photos render."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from anyseq.world import engines, images
from anyseq.world.images import BACKGROUNDS, COLOURS, SHAPES

PALETTE = {**COLOURS, **BACKGROUNDS}
NAMES = list(PALETTE)
RGB = np.array([PALETTE[name] for name in NAMES], dtype=np.float64)  # (P, 3)


def nearest_colours(image) -> np.ndarray:
    """Each pixel's nearest palette name index: (H, W)."""
    pixels = np.asarray(image, dtype=np.float64)  # (H, W, 3)
    distances = ((pixels[:, :, None, :] - RGB[None, None]) ** 2).sum(-1)  # (H, W, P)
    return distances.argmin(-1)


def dominant_object_colour(image, region: tuple[slice, slice] | None = None) -> str:
    """The commonest chromatic colour (an object colour, never a background one) in `region`."""
    names = nearest_colours(image)
    if region is not None:
        names = names[region]
    counts = np.bincount(names.ravel(), minlength=len(NAMES))
    chromatic = [NAMES.index(c) for c in COLOURS]
    return NAMES[max(chromatic, key=lambda i: counts[i])]


def object_pixels(image, background: str) -> np.ndarray:
    """(N, 2) row, column of pixels whose nearest palette colour is not the background."""
    return np.argwhere(nearest_colours(image) != NAMES.index(background))


def test_palette_and_vocabulary_sizes():
    assert len(COLOURS) >= 8 and len(SHAPES) >= 5 and len(BACKGROUNDS) >= 3
    assert len(images.POSITIONS) == 9 and len(images.SIZES) == 3
    # the palette is far apart: a pixel judge cannot confuse two entries
    rgb = np.array(list(PALETTE.values()), dtype=float)
    gaps = np.sqrt(((rgb[:, None] - rgb[None]) ** 2).sum(-1)) + np.eye(len(rgb)) * 1e9
    assert gaps.min() > 60


def test_dominant_colour_of_a_rendered_shape_is_its_label():
    rng = random.Random(0)
    for _ in range(60):
        labels = images.sample_scene(rng, frozenset(), heldout=False, two_object_fraction=0.0)
        image = images.render_shape_scene(labels, 64)
        assert image.size == (64, 64) and image.mode == "RGB"
        assert dominant_object_colour(image) == labels["objects"][0]["colour"], labels
        # the background is the commonest colour at the corners
        corner = nearest_colours(image)[0, 0] if labels["objects"][0]["position"] != "top left" else None
        if corner is not None:
            assert NAMES[corner] == labels["background"]


def test_position_and_size_of_a_rendered_shape_match_labels():
    rng = random.Random(1)
    for _ in range(40):
        labels = images.sample_scene(rng, frozenset(), heldout=False, two_object_fraction=0.0)
        obj = labels["objects"][0]
        image = images.render_shape_scene(labels, 64)
        pixels = object_pixels(image, labels["background"])
        centroid = pixels.mean(axis=0)[::-1] / 64  # (x, y) as fractions
        # shapes are not all symmetric about their centre (triangle, heart): allow a few pixels
        assert np.abs(centroid - np.array(obj["center"])).max() < 0.08, (obj, centroid)
        # the third of the image it falls in (left/centre/right, top/middle/bottom) is the label's
        assert tuple(np.digitize(centroid, [0.42, 0.58]) - 1) == images.POSITIONS[obj["position"]]
        extent = (pixels.max(axis=0) - pixels.min(axis=0) + 1).max() / 64
        assert 1.0 * obj["radius"] < extent < 2.2 * obj["radius"], (obj, extent)


def test_two_object_scenes_show_each_colour_where_its_label_says():
    rng = random.Random(2)
    for _ in range(30):
        labels = images.sample_scene(rng, frozenset(), heldout=False, two_object_fraction=1.0)
        image = images.render_shape_scene(labels, 64)
        first, second = labels["objects"]
        assert first["colour"] != second["colour"]
        for obj in labels["objects"]:
            cx, cy, r = (int(v * 64) for v in (*obj["center"], obj["radius"]))
            region = (slice(max(cy - r, 0), cy + r), slice(max(cx - r, 0), cx + r))
            assert dominant_object_colour(image, region) == obj["colour"]


def test_heldout_sampling_contains_exactly_the_heldout_pairs():
    held = frozenset({("green", "triangle"), ("red", "circle")})
    rng = random.Random(3)
    for heldout in (False, True):
        for _ in range(100):
            pairs = {(o["colour"], o["shape"]) for o in images.sample_scene(rng, held, heldout)["objects"]}
            assert bool(pairs & held) == heldout
    with pytest.raises(ValueError, match="at least one held-out"):
        images.sample_scene(rng, frozenset(), heldout=True)


def test_captions_name_every_attribute_with_colour_before_shape():
    rng = random.Random(4)
    for _ in range(50):
        labels = images.sample_scene(rng, frozenset(), heldout=False)
        caption = images.shape_caption(labels, rng)
        assert f"{labels['background']} background" in caption
        for obj in labels["objects"]:
            assert re.search(rf"\b{obj['size']} {obj['colour']} {obj['shape']}\b", caption), caption
        if labels["relation"]:
            assert labels["relation"] in caption
        else:
            assert images.POSITION_PHRASES[labels["objects"][0]["position"]] in caption
    assert images.scene_phrase(labels) in {images.shape_caption(labels, random.Random(s)) for s in range(20)}


def test_render_errors_name_the_limit():
    labels = images.sample_scene(random.Random(0), frozenset(), heldout=False)
    with pytest.raises(ValueError, match="at least 16 px, got size=8"):
        images.render_shape_scene(labels, 8)


def test_emoji_catalogue_is_an_open_vocabulary_of_real_drawings():
    catalogue = images.emoji_catalogue()
    assert len(catalogue) > 1000
    names = {e.name for e in catalogue}
    assert "grinning face" in names and "dog face" in names
    assert not any(
        n.startswith(("regional indicator", "emoji modifier", "variation selector")) for n in names
    )
    image = images.render_emoji("\N{DOG FACE}", 64)
    colours = np.asarray(image).reshape(-1, 3)
    assert image.size == (64, 64) and len(np.unique(colours, axis=0)) > 50  # a colour drawing, not a box


def test_a_missing_emoji_font_names_its_package(monkeypatch, tmp_path):
    monkeypatch.setattr(engines, "EMOJI_FONT", tmp_path / "NotoColorEmoji.ttf")
    with pytest.raises(engines.EngineMissing, match="apt-get install -y fonts-noto-color-emoji"):
        engines.emoji_font()


def test_digits_and_photos_render_at_the_requested_size():
    pixels, targets = images.digits()
    assert pixels.shape == (1797, 8, 8) and set(targets) == set(range(10))
    digit = np.asarray(images.render_digit(pixels[0], 48))
    assert digit.shape == (48, 48, 3) and digit.min() < 60 and digit.max() == 255  # dark ink on white
    photo = images.render_photo("chelsea", 64)
    assert photo.size == (64, 64) and np.asarray(photo).std() > 20
    assert len(images.PHOTOS) >= 15
