"""Emoji retrieval: a rendered emoji finds itself, a corrupted or different picture does not."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from anyseq.judges.emoji import EmojiGallery, emoji_features
from anyseq.world.images import (
    EMOJI_GALLERY_VARIATIONS,
    emoji_catalogue,
    emoji_variation,
    render_emoji,
    render_shape_scene,
    scene_object,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def gallery() -> tuple[EmojiGallery, list, list[str]]:
    picked = emoji_catalogue()[100:112]
    pictures = [render_emoji(e.char, 64) for e in picked]
    names = [e.name for e in picked]
    return EmojiGallery.build(pictures, names), pictures, names


def noisy(image: Image.Image, std: float, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image, dtype=np.float64) + rng.normal(0, std, (64, 64, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def test_ground_truth_and_lightly_noisy_renders_retrieve_themselves(gallery):
    judge, pictures, names = gallery
    assert judge.accuracy(pictures, names) == 1.0
    assert judge.accuracy([noisy(p, 12.0, i) for i, p in enumerate(pictures)], names) == 1.0
    assert emoji_features(pictures[0]).shape == (16 * 16 * 3,)


def test_corrupted_pictures_do_not(gallery):
    judge, pictures, names = gallery
    wrong_emoji = pictures[1:] + pictures[:1]  # each name paired with another emoji's picture
    assert judge.accuracy(wrong_emoji, names) == 0.0
    scene = {
        "background": "black",
        "objects": [scene_object("star", "red", "large", "center")],
        "relation": None,
    }
    blanks = [render_shape_scene(scene, 64)] * len(names)
    assert judge.accuracy(blanks, names) <= 1 / len(names)
    scrambled = [Image.fromarray(np.random.default_rng(0).permutation(np.asarray(p).reshape(-1, 3)).reshape(64, 64, 3))
                 for p in pictures]  # fmt: skip
    assert judge.accuracy(scrambled, names) <= 2 / len(names)


def test_save_load_round_trip_and_errors(gallery, tmp_path):
    judge, pictures, names = gallery
    loaded = EmojiGallery.load(judge.save(tmp_path / "gallery"))
    assert loaded.names == names and np.array_equal(loaded.features, judge.features)
    assert loaded.nearest(pictures[:3]) == names[:3]
    with pytest.raises(ValueError, match="not in the gallery"):
        judge.accuracy(pictures[:1], ["no such emoji"])
    with pytest.raises(ValueError, match="one name per emoji picture"):
        EmojiGallery.build(pictures[:2], names[:1])


def test_new_renderings_retrieve_their_emoji_from_a_gallery_of_renderings():
    """The world draws each emoji at its own scale and place: a gallery of the renderings that
    span that variation names new ones, where one centred picture per emoji often does not."""
    picked = emoji_catalogue()[::5][:240]
    names = [e.name for e in picked]
    rng = random.Random(0)
    queries = [render_emoji(e.char, 64, **emoji_variation(rng)) for e in picked]
    spanning = EmojiGallery.build(
        [render_emoji(e.char, 64, v["scale"], v["shift"]) for e in picked for v in EMOJI_GALLERY_VARIATIONS],
        [e.name for e in picked for _ in EMOJI_GALLERY_VARIATIONS],
    )
    centred = EmojiGallery.build([render_emoji(e.char, 64) for e in picked], names)
    assert spanning.accuracy(queries, names) >= 0.97
    assert centred.accuracy(queries, names) < spanning.accuracy(queries, names) - 0.05


def test_a_render_keeps_its_scale_and_place():
    char = emoji_catalogue()[100].char
    assert np.array_equal(
        np.asarray(render_emoji(char, 64, 1.0, (1, -1))), np.asarray(render_emoji(char, 64))
    )
    small = np.asarray(render_emoji(char, 64, 0.5, (1, 1)))  # bottom-right quarter
    assert (small[:32] == 255).all() and (small[:, :32] == 255).all() and (small[32:, 32:] < 250).any()
    with pytest.raises(ValueError, match="emoji scale 1.5"):
        render_emoji(char, 64, 1.5)
