"""Reading AnyWorld (and imported user data): items, stage-1 pairs and dialogues.

    iter_items(dir, "image", "train")             -> Item(id, modality, media, text, labels, source, split)
    iter_conversations(dir, "pretrain", "train")  -> (task, Conversation)  AnyGPT's stage-1 template
    iter_conversations(dir, "instruct", "train")  -> (task, Conversation)  AnyInstruct-style dialogues
    iter_texts(dir, "train")                      -> every text of a split (to train a text tokenizer)
    read_manifest(dir)                            -> counts, splits, held-out sets

Splits are "train", "validation", "test" and held-out ones named "heldout_<kind>"
(colour_shape, emoji, voice, melody, attributes); "heldout" reads all of them.

Media come decoded: PIL RGB images, `anyseq.media.Audio` at the build's sample rate.
In conversations every media part is a `LabeledMedia` (a `Media` whose `source` is the
decoded media) that also carries the generator's `labels`, its `description` (the
caption, transcript or script description), the `item_id`, and for a spoken reply the
`voice_prompt` (a clip in the same voice, for the acoustic model). The task is the
stage-1 task name ("image_caption", "tts", ...) or the dialogue's first exchange
("image->music", ...).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from anyseq.conversation import Conversation, Media, Message, Text
from anyseq.media import Audio, load_audio, load_image
from anyseq.world.config import HELDOUT_PREFIX
from anyseq.world.pretrain import INPUT_MARKER, pair_conversation
from anyseq.world.store import read_shard, shard_paths

ITEM_MODALITIES = ("image", "speech", "music")
Corpus = Literal["pretrain", "instruct"]


@dataclass
class Item:
    id: str
    modality: str  # "image" | "speech" | "music"
    media: Image.Image | Audio
    text: str  # caption or transcript
    labels: dict[str, Any]
    source: str  # shapes, emoji, digits, photos, espeak, melody, chorale, folk, user
    split: str = ""


@dataclass(eq=False)
class LabeledMedia(Media):
    """A conversation's media part as stored: decoded `source`, plus what made it."""

    labels: dict[str, Any] = field(default_factory=dict)
    item_id: str | None = None
    voice_prompt: Audio | None = None


def read_manifest(data_dir: str | Path) -> dict[str, Any]:
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{data_dir}: no manifest.json; build it with `anyseq data build --out {data_dir}`"
        )
    return json.loads(path.read_text())


def _sample_rate(data_dir: Path) -> int:
    return int(read_manifest(data_dir)["sample_rate"])


def decode_media(modality: str, data: bytes, sample_rate: int) -> Image.Image | Audio:
    return load_image(data) if modality == "image" else load_audio(data, sample_rate)


def _split_dirs(data_dir: Path, corpus_dir: Path, split: str) -> list[Path]:
    """The directories of `split` under `corpus_dir`; "heldout" means every held-out split."""
    known = read_manifest(data_dir)["splits"]
    if split != "heldout" and split not in known:
        raise ValueError(
            f"{data_dir}: no split {split!r}; it has {known} (and 'heldout' for all held-out ones)"
        )
    if split == "heldout":
        return sorted(p for p in corpus_dir.glob(HELDOUT_PREFIX + "*") if p.is_dir())
    return [corpus_dir / split] if (corpus_dir / split).is_dir() else []


def _rows(data_dir: Path, corpus_dir: Path, split: str) -> Iterator[dict[str, Any]]:
    for directory in _split_dirs(data_dir, corpus_dir, split):
        for path in shard_paths(directory):
            yield from read_shard(path)


def _limited(iterator: Iterator[Any], limit: int | None) -> Iterator[Any]:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    for count, value in enumerate(iterator):
        if limit is not None and count >= limit:
            return
        yield value


def _item(row: dict[str, Any], sample_rate: int) -> Item:
    return Item(
        id=row["id"],
        modality=row["modality"],
        media=decode_media(row["modality"], row["media"], sample_rate),
        text=row["text"],
        labels=json.loads(row["labels"]),
        source=row["source"],
        split=row["split"],
    )


def iter_items(data_dir: str | Path, modality: str, split: str, limit: int | None = None) -> Iterator[Item]:
    """Items of one modality and split, in storage order (deterministic)."""
    data_dir = Path(data_dir)
    if modality not in ITEM_MODALITIES:
        raise ValueError(f"modality must be one of {ITEM_MODALITIES}, got {modality!r}")
    rate = _sample_rate(data_dir)
    rows = _rows(data_dir, data_dir / "items" / modality, split)
    yield from _limited((_item(row, rate) for row in rows), limit)


class _ItemIndex:
    """Item rows by id, loading each item shard once, when first needed."""

    def __init__(self, data_dir: Path, split: str) -> None:
        self.sample_rate = _sample_rate(data_dir)
        self.where: dict[str, tuple[Path, int]] = {}
        self.shards: dict[Path, list[dict[str, Any]]] = {}
        for modality in ITEM_MODALITIES:
            for directory in _split_dirs(data_dir, data_dir / "items" / modality, split):
                for path in shard_paths(directory):
                    for row, item in enumerate(read_shard(path, ["id"])):
                        self.where[item["id"]] = (path, row)

    def __getitem__(self, item_id: str) -> Item:
        if item_id not in self.where:
            raise KeyError(f"item {item_id!r} is referenced by a pair but not stored")
        path, row = self.where[item_id]
        if path not in self.shards:
            self.shards[path] = read_shard(path)
        return _item(self.shards[path][row], self.sample_rate)


def _pretrain(data_dir: Path, split: str) -> Iterator[tuple[str, Conversation]]:
    index = _ItemIndex(data_dir, split)
    for row in _rows(data_dir, data_dir / "pretrain", split):
        item = index[row["item_id"]]
        media = LabeledMedia(
            item.modality, source=item.media, description=item.text, labels=item.labels, item_id=item.id
        )
        yield row["task"], pair_conversation(row["direction"], row["instruction"], media, item.text)


def _dialogue(row: dict[str, Any], sample_rate: int) -> Conversation:
    decoded = [
        decode_media(m, data, sample_rate)
        for m, data in zip(row["media_modalities"], row["media"], strict=True)
    ]
    labels = [json.loads(text) for text in row["media_labels"]]
    conversation = Conversation.from_dict(json.loads(row["conversation"]))
    position = 0
    messages = []
    for message in conversation.messages:
        parts = []
        for part in message.content:
            if isinstance(part, Media):
                prompt = labels[position].get("voice_prompt")
                part = LabeledMedia(
                    part.modality,
                    source=decoded[position],
                    description=part.description,
                    labels=labels[position],
                    item_id=f"{row['id']}/{position}",
                    voice_prompt=decoded[prompt] if prompt is not None else None,
                )
                position += 1
            parts.append(part)
        messages.append(Message(message.role, parts))
    return Conversation(messages, conversation.system)


def iter_conversations(
    data_dir: str | Path, corpus: Corpus, split: str, limit: int | None = None
) -> Iterator[tuple[str, Conversation]]:
    """(task, Conversation) of the stage-1 pairs ("pretrain") or the dialogues ("instruct")."""
    data_dir = Path(data_dir)
    if corpus == "pretrain":
        yield from _limited(_pretrain(data_dir, split), limit)
    elif corpus == "instruct":
        rate = _sample_rate(data_dir)
        rows = _rows(data_dir, data_dir / "instruct", split)
        yield from _limited(((row["task"], _dialogue(row, rate)) for row in rows), limit)
    else:
        raise ValueError(f"corpus must be 'pretrain' or 'instruct', got {corpus!r}")


def iter_texts(data_dir: str | Path, split: str) -> Iterator[str]:
    """Every text of a split: captions, transcripts, instructions, dialogue turns (media not decoded)."""
    data_dir = Path(data_dir)
    for modality in ITEM_MODALITIES:
        for row in _rows(data_dir, data_dir / "items" / modality, split):
            yield row["text"]
    instructions = sorted({row["instruction"] for row in _rows(data_dir, data_dir / "pretrain", split)})
    yield from (f"{instruction} {INPUT_MARKER}" for instruction in instructions)
    for row in _rows(data_dir, data_dir / "instruct", split):
        conversation = Conversation.from_dict(json.loads(row["conversation"]))
        for message in conversation.messages:
            yield from (part.text for part in message.content if isinstance(part, Text))
        yield from (json.loads(labels).get("caption", "") for labels in row["media_labels"])
