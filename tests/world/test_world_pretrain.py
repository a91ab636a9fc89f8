"""Stage-1 pairs (task mix, instructions, template) and the world config (presets, checks)."""

from __future__ import annotations

import pytest

from anyseq.world import pretrain
from anyseq.world.config import ANYGPT_RATIOS, PRESETS, WorldConfig


def test_task_counts_follow_the_ratios_exactly():
    counts = pretrain.task_counts(1000, ANYGPT_RATIOS, {"image", "speech", "music"})
    assert counts == {
        "image_caption": 200,
        "image_generation": 220,
        "asr": 150,
        "tts": 150,
        "music_caption": 140,
        "music_generation": 140,
    }
    counts = pretrain.task_counts(7, ANYGPT_RATIOS, {"image"})  # only the modalities a split has
    assert counts == {"image_caption": 3, "image_generation": 4}
    assert sum(pretrain.task_counts(997, ANYGPT_RATIOS, {"speech", "music"}).values()) == 997


def test_pairs_use_every_item_evenly_with_paraphrased_instructions():
    items = {"image": [f"img-{i}" for i in range(10)], "speech": [f"sp-{i}" for i in range(10)], "music": []}
    config = WorldConfig.from_preset("tiny").pretrain
    rows = pretrain.make_pairs(items, "train", config, seed=0)
    assert len(rows) == round(config.pairs_per_item * 20) == 8
    assert rows == pretrain.make_pairs(items, "train", config, seed=0)  # deterministic
    assert [r["id"] for r in rows] == [f"pretrain-train-{n:06d}" for n in range(8)]
    for row in rows:
        modality, direction = pretrain.TASKS[row["task"]]
        assert row["modality"] == modality and row["direction"] == direction
        assert row["item_id"] in items[modality] and row["instruction"] in pretrain.INSTRUCTIONS[row["task"]]
    many = pretrain.make_pairs(
        items, "train", WorldConfig.from_preset("tiny", pretrain={"pairs_per_item": 4}).pretrain, 0
    )
    for task in ("image_caption", "tts"):
        uses = [
            sum(r["task"] == task and r["item_id"] == item for r in many)
            for item in items[pretrain.TASKS[task][0]]
        ]
        assert max(uses) - min(uses) <= 1 and min(uses) >= 1  # each task walks its items in turn
    assert all(len(set(lines)) == len(lines) >= 8 for lines in pretrain.INSTRUCTIONS.values())


def test_pair_conversation_is_anygpts_template():
    from anyseq.conversation import Media, Text

    media = Media("speech", description="hello world")
    asr = pretrain.pair_conversation("media->text", "Transcribe the following audio.", media, "hello world")
    assert asr.system is None
    assert [m.role for m in asr.messages] == ["user", "assistant"]
    assert asr.messages[0].content == [Text("Transcribe the following audio. "), media]
    assert asr.messages[1].content == [Text("hello world")]
    tts = pretrain.pair_conversation("text->media", "Say this out loud.", media, "hello world")
    assert tts.messages[0].content == [Text("Say this out loud. This is input: hello world")]
    assert tts.messages[1].content == [media]
    with pytest.raises(ValueError, match="direction must be"):
        pretrain.pair_conversation("both", "x", media, "y")


def test_presets_round_trip_and_bad_settings_are_named():
    for name in PRESETS:
        config = WorldConfig.from_preset(name)
        assert WorldConfig.from_dict(config.to_dict()) == config
        assert config.preset == name
    assert WorldConfig.from_preset("tiny", seed=3).seed == 3
    with pytest.raises(ValueError, match="unknown world preset 'huge'"):
        WorldConfig.from_preset("huge")
    with pytest.raises(ValueError, match=r"unknown settings \['colour'\]"):
        WorldConfig.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match=r"held-out pair \(teal, circle\)"):
        WorldConfig.from_dict({"heldout": {"colour_shape": [["teal", "circle"]]}})
    with pytest.raises(ValueError, match="held-out voices"):
        WorldConfig.from_dict({"heldout": {"voices": ["robot"]}})
    with pytest.raises(ValueError, match="must leave some for train"):
        WorldConfig.from_dict({"emoji": {"fractions": {"validation": 0.5, "test": 0.5}}})
    with pytest.raises(ValueError, match="speech: counts must map"):
        WorldConfig.from_dict({"speech": {"counts": {"train": -1}}})
    with pytest.raises(ValueError, match="pretrain ratios"):
        WorldConfig.from_dict({"pretrain": {"ratios": {"asr": 1.0}}})
