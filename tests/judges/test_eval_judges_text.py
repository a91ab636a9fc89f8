"""The caption and text-reply judge: right on the world's own captions, wrong on corrupted ones."""

from __future__ import annotations

import random
import shutil

import pytest

from anyseq.judges.text import (
    caption_checks,
    content_words,
    music_checks,
    ngram_scores,
    parse_music,
    parse_scene,
    replies_agree,
    scene_checks,
)
from anyseq.world import images, music
from anyseq.world.config import WorldConfig
from anyseq.world.sampler import WorldSampler, shard_rng


def scenes(count: int, two_objects: bool | None = None) -> list[dict]:
    sampler = WorldSampler(WorldConfig(), "train", shard_rng(0, "judge-test"))
    return [sampler.scene(two_objects) for _ in range(count)]


def melodies(count: int) -> list[dict]:
    sampler = WorldSampler(WorldConfig(), "train", shard_rng(0, "judge-test-music"))
    return [sampler.melody() for _ in range(count)]


def test_every_template_of_a_scene_caption_passes_every_check():
    rng = random.Random(0)
    for labels in scenes(40):
        for _ in range(3):  # the three word orders of the caption grammar
            caption = images.shape_caption(labels, rng)
            checks = scene_checks(caption, labels)
            assert all(ok for _, ok in checks), (caption, checks)
            assert len(checks) == (5 if len(labels["objects"]) == 1 else 8)


def test_corrupted_scene_captions_fail_the_changed_attribute():
    rng = random.Random(1)
    for labels in scenes(20, two_objects=False):
        caption = images.shape_caption(labels, rng)
        obj = labels["objects"][0]
        other_colour = next(c for c in images.COLOURS if c != obj["colour"])
        other_shape = next(s for s in images.SHAPES if s != obj["shape"])
        other_background = next(b for b in images.BACKGROUNDS if b != labels["background"])
        for wrong, attribute in (
            (caption.replace(f"{obj['colour']} {obj['shape']}", f"{other_colour} {obj['shape']}"), "colour"),
            (caption.replace(f"{obj['colour']} {obj['shape']}", f"{obj['colour']} {other_shape}"), "shape"),
            (
                caption.replace(f"{labels['background']} background", f"{other_background} background"),
                "background",
            ),
        ):
            verdict = dict(scene_checks(wrong, labels))
            assert verdict[attribute] is False, (wrong, verdict)
            assert sum(not ok for ok in verdict.values()) == 1
        assert not any(ok for _, ok in scene_checks("a picture", labels))


def test_two_objects_named_the_other_way_round_with_the_inverse_relation_pass():
    labels = {
        "background": "white",
        "relation": "to the left of",
        "objects": [
            {"colour": "red", "shape": "circle", "size": "small"},
            {"colour": "blue", "shape": "square", "size": "medium"},
        ],
    }
    assert all(
        ok
        for _, ok in scene_checks(
            "a medium blue square to the right of a small red circle on a white background", labels
        )
    )
    swapped = dict(
        scene_checks("a medium blue square to the left of a small red circle on a white background", labels)
    )
    assert swapped["relation"] is False
    assert parse_scene("there is a large green star in the top left corner on a gray background") == {
        "background": "gray",
        "objects": [{"size": "large", "colour": "green", "shape": "star"}],
        "relation": None,
        "position": "top left",
    }


def test_music_captions_pass_and_corrupted_ones_fail():
    rng = random.Random(2)
    for labels in melodies(30):
        caption = music.music_caption(labels, rng)
        assert all(ok for _, ok in music_checks(caption, labels)), caption
        other = "minor" if labels["mode"] == "major" else "major"
        assert dict(music_checks(caption.replace(labels["mode"], other), labels))["mode"] is False
        assert (
            dict(music_checks(caption.replace(labels["instrument"], "choir"), labels))["instrument"] is False
        )
    assert parse_music("a slow Bach chorale played by a string ensemble in F sharp minor") == {
        "instrument": "strings",
        "tempo_word": "slow",
        "key": "F sharp",
        "mode": "minor",
    }
    # "D flat" is read as one key, not as D
    assert parse_music("a fast piano melody in D flat major")["key"] == "D flat"


def test_caption_checks_by_source():
    assert caption_checks("an emoji of a grinning face", "emoji", {"name": "grinning face"}) == [
        ("name", True)
    ]
    assert caption_checks("an emoji of a face", "emoji", {"name": "grinning face"}) == [("name", False)]
    assert caption_checks("a hand-drawn seven", "digits", {"digit": 7}) == [("digit", True)]
    assert caption_checks("a hand-drawn one", "digits", {"digit": 7}) == [("digit", False)]
    assert caption_checks("a photo of a ginger cat", "photos", {"photo": "chelsea"}) == []


def test_text_replies_agree_on_facts_not_on_wording():
    assert content_words("A slow tempo is between 60 and 84 beats per minute.") == ["slow", "60", "84"]
    assert content_words("It is in F sharp major.") == ["key:f sharp major"]
    assert replies_agree("The background was white.", "the background was white")
    assert not replies_agree("The background was white.", "The background was black.")
    assert replies_agree("It is a Scottish woman.", "it was a scottish woman")
    assert not replies_agree("It is a Scottish woman.", "It is a Scottish man.")
    assert replies_agree("Here it is.", "here it is")
    assert not replies_agree("Here it is.", "Here is the picture.")


def test_ngram_scores_without_meteor_golden_values():
    references = ["a small red circle on the left on a white background", "a blue square at the top"]
    perfect, notes = ngram_scores(references, references, meteor=False)
    assert perfect["bleu4"] == pytest.approx(100.0, abs=1e-3)
    assert perfect["meteor"] is None and any("METEOR is null" in n for n in notes)
    assert any("SPICE" in n for n in notes)
    wrong, _ = ngram_scores(references, ["a dog", ""], meteor=False)
    assert wrong["cider"] == pytest.approx(0.0) and wrong["bleu4"] < 1e-3 < perfect["cider"]
    with pytest.raises(ValueError, match="one hypothesis per reference"):
        ngram_scores(references, ["one"], meteor=False)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR runs Java")
def test_meteor_tells_right_captions_from_wrong_ones():
    references = ["a small red circle on the left on a white background", "a blue square at the top"]
    right, _ = ngram_scores(references, references)
    wrong, _ = ngram_scores(references, ["a green heart", ""])
    assert right["meteor"] > 90 and wrong["meteor"] < 30
