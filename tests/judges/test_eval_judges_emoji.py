"""Emoji retrieval: a rendered emoji finds itself, a corrupted or different picture does not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anyseq.judges.emoji import EmojiGallery, emoji_features
from anyseq.world.images import emoji_catalogue, render_emoji, render_shape_scene, scene_object

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
    with pytest.raises(ValueError, match="distinct names"):
        EmojiGallery.build(pictures[:2], ["same", "same"])
    with pytest.raises(ValueError, match="one name per emoji picture"):
        EmojiGallery.build(pictures[:2], names[:1])
