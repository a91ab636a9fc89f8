"""The build: same seed same bytes, resume after an interruption, the manifest, held-out sets
kept out of training, and the reading API."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from anyseq.conversation import Media, Text
from anyseq.media import Audio
from anyseq.world import build, dialogues, pretrain
from anyseq.world.build import build_world
from anyseq.world.config import WorldConfig
from anyseq.world.dataset import LabeledMedia, iter_conversations, iter_items, iter_texts, read_manifest
from anyseq.world.sources import SOURCES

SEEN = ("train", "validation", "test")


def stored_files(out: Path) -> dict[str, bytes]:
    """Every file of a build except the progress records (which hold timings)."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and "progress" not in p.relative_to(out).parts
    }


@pytest.fixture(scope="module")
def reference(small_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "world"
    build_world(small_config, out, workers=1, progress=False)
    return out


@pytest.mark.slow
def test_same_seed_same_bytes_with_any_number_of_workers(small_config, reference, tmp_path):
    files = stored_files(reference)
    assert sum(name.endswith(".parquet") for name in files) > 15
    build_world(small_config, tmp_path / "two", workers=2, progress=False)
    assert stored_files(tmp_path / "two") == files
    # ... and another seed, other bytes
    other = WorldConfig.from_dict({**small_config.to_dict(), "seed": 8})
    for name, source in SOURCES.items():
        if source.sizes(small_config).get("train", 0) >= 2:
            assert source.make(other, "train", 0, 2) != source.make(small_config, "train", 0, 2), name


@pytest.mark.slow
def test_a_killed_build_resumes_to_the_same_bytes(small_config, reference, tmp_path):
    out = tmp_path / "killed"
    script = (
        "from anyseq.world.build import build_world; from anyseq.world.config import WorldConfig; "
        f"build_world(WorldConfig.from_dict({small_config.to_dict()!r}), {str(out)!r}, workers=1, progress=False)"
    )
    process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    records = out / "progress"
    while process.poll() is None and len(list(records.glob("*.json"))) < 4:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the build, its fork server and its worker
    process.wait()
    done = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert 4 <= len(done) < len(build.plan(small_config)), "the build must be killed half-way"
    assert not (out / "manifest.json").exists()
    for shard in out.rglob("*.parquet"):  # whatever exists is whole
        pq.read_table(shard)
    # a shard being written when the process died leaves only a temporary file
    stale = out / "items" / "image" / "train" / ".tmp-shapes-00009.parquetq1w2e3"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a shard")

    build_world(small_config, out, workers=1, progress=False)
    assert not stale.exists()
    assert stored_files(out) == stored_files(reference)
    assert {name: (records / name).stat().st_mtime_ns for name in done} == done  # finished tasks were skipped


def test_a_directory_keeps_one_config(small_config, reference):
    other = WorldConfig.from_dict({**small_config.to_dict(), "seed": 8})
    with pytest.raises(ValueError, match="holds a build of a different config"):
        build_world(other, reference, workers=1, progress=False)


def test_manifest_shows_every_task_every_pair_and_the_heldout_sets(micro_world):
    manifest = read_manifest(micro_world)
    assert set(manifest["pretrain"]["train"]) == set(pretrain.TASKS)
    assert all(n > 0 for n in manifest["pretrain"]["train"].values())
    assert manifest["instruct_pairs"]["missing"] == []
    assert sorted(manifest["instruct_pairs"]["covered"]) == sorted(dialogues.PAIRS)
    assert len(manifest["instruct"]["train"]["pairs"]) >= 12
    assert manifest["instruct"]["train"]["spoken"] > 0 and manifest["instruct"]["train"]["follow_ups"] > 0
    for split in (
        "heldout_colour_shape",
        "heldout_emoji",
        "heldout_voice",
        "heldout_melody",
        "heldout_attributes",
    ):
        assert split in manifest["splits"]
    held = manifest["heldout"]
    assert held["colour_shape"] and held["voices"] and held["instrument_mode"] and held["emoji"]
    assert held["pieces"]["chorale"] and held["pieces"]["folk"]
    # counts are what the shards hold
    images = manifest["items"]["image"]["train"]
    assert sum(images.values()) == sum(1 for _ in iter_items(micro_world, "image", "train"))
    pairs = sum(manifest["pretrain"]["train"].values())
    assert pairs == sum(1 for _ in iter_conversations(micro_world, "pretrain", "train"))


def _mentions(text: str, pairs: set[tuple[str, str]]) -> list[tuple[str, str]]:
    return [pair for pair in pairs if re.search(rf"\b{pair[0]} {pair[1]}\b", text, re.IGNORECASE)]


def test_no_heldout_combination_is_seen_in_training(micro_world):
    manifest = read_manifest(micro_world)
    colour_shape = {tuple(p) for p in manifest["heldout"]["colour_shape"]}
    instrument_mode = {tuple(p) for p in manifest["heldout"]["instrument_mode"]}
    voices, emoji = set(manifest["heldout"]["voices"]), set(manifest["heldout"]["emoji"])
    pieces = {title for titles in manifest["heldout"]["pieces"].values() for title in titles}

    def check(labels: dict, text: str, where: str) -> None:
        for obj in labels.get("objects", []):
            assert (obj["colour"], obj["shape"]) not in colour_shape, where
        assert labels.get("voice") not in voices, where
        assert labels.get("name") not in emoji, where
        assert labels.get("title") not in pieces, where
        if labels.get("source", "melody") == "melody" and "instrument" in labels:
            assert (labels["instrument"], labels["mode"]) not in instrument_mode, where
        assert not _mentions(text, colour_shape), (where, text)

    checked = 0
    for split in SEEN:
        for modality in ("image", "speech", "music"):
            for item in iter_items(micro_world, modality, split):
                check(item.labels, item.text, item.id)
                checked += 1
        for _, conversation in iter_conversations(micro_world, "pretrain", split):
            for message in conversation.messages:
                for part in message.content:
                    if isinstance(part, LabeledMedia):
                        assert part.item_id.split("-")[1] == split  # pairs only use items of their split
                    else:
                        assert not _mentions(part.text, colour_shape)
        for _, conversation in iter_conversations(micro_world, "instruct", split):
            for message in conversation.messages:
                for part in message.content:
                    text = part.text if isinstance(part, Text) else part.description
                    check(part.labels if isinstance(part, LabeledMedia) else {}, text, split)
                    checked += 1
    assert checked > 150
    # ... and the held-out splits do hold them
    scenes = [i.labels for i in iter_items(micro_world, "image", "heldout_colour_shape")]
    assert scenes and all({(o["colour"], o["shape"]) for o in s["objects"]} & colour_shape for s in scenes)
    assert {i.labels["voice"] for i in iter_items(micro_world, "speech", "heldout_voice")} <= voices
    melodies = [i.labels for i in iter_items(micro_world, "music", "heldout_melody") if i.source == "melody"]
    assert melodies and all((m["instrument"], m["mode"]) in instrument_mode for m in melodies)
    assert {i.labels["name"] for i in iter_items(micro_world, "image", "heldout_emoji")} == emoji


def test_emoji_test_splits_show_training_emoji_anew_and_heldout_shows_unseen_ones(micro_world):
    """One picture per emoji: the in-distribution splits hold training emoji in new renderings."""
    by_split = {
        split: {i.labels["name"]: i for i in iter_items(micro_world, "image", split) if i.source == "emoji"}
        for split in ("train", "validation", "test", "heldout_emoji")
    }
    train = by_split["train"]
    for split in ("validation", "test"):
        assert by_split[split] and set(by_split[split]) <= set(train), split
        for name, item in by_split[split].items():
            assert (item.labels["scale"], item.labels["shift"]) != (
                train[name].labels["scale"],
                train[name].labels["shift"],
            )
            assert not np.array_equal(np.asarray(item.media), np.asarray(train[name].media)), (split, name)
    assert by_split["heldout_emoji"] and not set(by_split["heldout_emoji"]) & set(train)


def test_items_decode_to_media_that_match_their_labels(micro_world):
    manifest = read_manifest(micro_world)
    images = list(iter_items(micro_world, "image", "train", limit=5))
    assert len(images) == 5
    assert all(isinstance(i.media, Image.Image) and i.media.size == (64, 64) for i in images)
    for item in iter_items(micro_world, "speech", "validation"):
        assert isinstance(item.media, Audio) and item.media.sample_rate == 16000
        assert item.labels["duration"] == pytest.approx(item.media.duration, abs=1e-3)
        assert item.text and item.labels["phonemes"]
    for item in iter_items(micro_world, "music", "test"):
        assert item.media.duration == manifest["music_seconds"]
        assert np.abs(item.media.samples).max() == pytest.approx(0.8, abs=0.01)
    heldout = {i.split for m in ("image", "speech", "music") for i in iter_items(micro_world, m, "heldout")}
    assert heldout == {"heldout_colour_shape", "heldout_emoji", "heldout_voice", "heldout_melody"}
    with pytest.raises(ValueError, match="no split 'dev'"):
        next(iter_items(micro_world, "image", "dev"))
    with pytest.raises(ValueError, match="modality must be one of"):
        next(iter_items(micro_world, "video", "train"))


def test_pretrain_conversations_follow_anygpts_template(micro_world):
    seen = set()
    for task, conversation in iter_conversations(micro_world, "pretrain", "train"):
        modality, direction = pretrain.TASKS[task]
        user, reply = conversation.messages
        assert conversation.system is None and user.role == "user" and reply.role == "assistant"
        if direction == "media->text":
            (instruction, media), (answer,) = user.content, reply.content
            assert instruction.text.rstrip() in pretrain.INSTRUCTIONS[task]
            assert answer.text == media.description
        else:
            (instruction,), (media,) = user.content, reply.content
            assert instruction.text.endswith(f"{pretrain.INPUT_MARKER} {media.description}")
        assert isinstance(media, LabeledMedia) and media.modality == modality and media.source is not None
        seen.add(task)
    assert seen == set(pretrain.TASKS)


def test_instruct_conversations_carry_decoded_media_and_voice_prompts(micro_world):
    dialogues_seen = prompts = 0
    for task, conversation in iter_conversations(micro_world, "instruct", "train"):
        assert task in dialogues.PAIRS
        assert [m.role for m in conversation.messages][:2] == ["user", "assistant"]
        assert 4 <= len(conversation.messages) <= 10
        for message in conversation.messages:
            for part in message.content:
                if isinstance(part, Media):
                    assert isinstance(part, LabeledMedia) and part.description and part.source is not None
                    if part.voice_prompt is not None:
                        assert message.role == "assistant" and part.modality == "speech"
                        assert isinstance(part.voice_prompt, Audio) and part.voice_prompt.duration > 0.3
                        prompts += 1
        dialogues_seen += 1
    assert dialogues_seen == read_manifest(micro_world)["instruct"]["train"]["dialogues"] and prompts > 0
    texts = list(iter_texts(micro_world, "train"))
    assert len(texts) > 100 and any(pretrain.INPUT_MARKER in t for t in texts)


def test_progress_records_are_json_and_name_their_shards(micro_world):
    for record in (micro_world / "progress").glob("*.json"):
        data = json.loads(record.read_text())
        assert all((micro_world / output["path"]).is_file() for output in data["outputs"])
