"""A user's own data, as JSONL files, read into the same shards as AnyWorld.

AnyGPT's training data came as JSONL files of text and media paths; the same form lets
COCO-, LibriSpeech- or MusicCaps-style folders plug in unchanged. One JSON object per
line, paths relative to the JSONL file:

    {"image": "coco/000123.jpg", "text": "a man riding a horse"}             an image and its caption
    {"speech": "libri/84-121123-0000.flac", "text": "go do you hear"}       speech, transcript
    {"audio": "clip.wav", "text": "..."}                                     same as "speech"
    {"music": "musiccaps/clip.wav", "text": "a calm piano piece"}            music, caption
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                               {"type": "image", "path": "cat.png"}]},
                  {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]}]}
                                                                             a conversation, in the
                                                                             Conversation.to_dict form

Optional keys: "split" ("train" by default; "validation", "test" or "heldout_<kind>"),
"id", "labels" (an object, items only), "system" (conversations). Items become pretraining
pairs (both directions) next to the world's; conversations join the instruction corpus.

A media file that is missing, empty, corrupt, larger than `max_file_bytes`, over the
pixel limit or longer than `max_audio_seconds` is skipped: the line is counted, named in
the log and in the manifest (`user_data.skipped`), and the build goes on. So is a line
that is not valid JSON or has no usable media key.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import soundfile
from PIL import Image

from anyseq.conversation import Conversation, Media
from anyseq.media import MediaError, load_audio, load_image
from anyseq.world.config import BASE_SPLITS, HELDOUT_PREFIX, UserDataConfig
from anyseq.world.dialogues import exchange_pairs
from anyseq.world.store import dumps

log = logging.getLogger("anyseq.world")
MEDIA_KEYS = {"image": "image", "speech": "speech", "audio": "speech", "music": "music"}


@dataclass
class Skipped:
    file: str
    line: int
    path: str | None
    reason: str


class _LineError(ValueError):
    def __init__(self, reason: str, path: str | None = None) -> None:
        super().__init__(reason)
        self.path = path


@dataclass
class UserChunk:
    """What one range of lines gave: item rows per (modality, split), conversation rows per split."""

    items: dict[tuple[str, str], list[dict[str, Any]]]
    conversations: dict[str, list[dict[str, Any]]]
    skipped: list[Skipped]
    lines: int


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def _media(
    path_text: Any, modality: str, base: Path, limits: UserDataConfig, sample_rate: int
) -> tuple[bytes, str]:
    """Validated original bytes of a media file and their format name."""
    if not isinstance(path_text, str) or not path_text:
        raise _LineError(f"{modality} path must be a non-empty string, got {path_text!r}")
    path = base / path_text
    if path.is_file() and path.stat().st_size > limits.max_file_bytes:
        raise _LineError(
            f"{path.stat().st_size} bytes exceeds the limit of {limits.max_file_bytes}", path_text
        )
    try:
        if modality == "image":
            load_image(path)
            with Image.open(path) as image:
                return path.read_bytes(), (image.format or "png").lower()
        load_audio(path, sample_rate, max_seconds=limits.max_audio_seconds)
        return path.read_bytes(), soundfile.info(str(path)).format.lower()
    except MediaError as error:
        reason = re.sub(r" at 0x[0-9a-f]+", "", str(error).removeprefix(f"{path}: "))  # no memory addresses
        raise _LineError(reason, path_text) from error


def _split(record: dict[str, Any]) -> str:
    split = record.get("split", "train")
    if split not in BASE_SPLITS and not (isinstance(split, str) and split.startswith(HELDOUT_PREFIX)):
        raise _LineError(f"split {split!r} is not one of {BASE_SPLITS} or {HELDOUT_PREFIX}<kind>")
    return split


def _item(
    record: dict[str, Any], key: str, ident: str, base: Path, limits: UserDataConfig, rate: int
) -> dict:
    modality = MEDIA_KEYS[key]
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _LineError(f"an item needs a non-empty 'text' next to its {key!r}")
    labels = record.get("labels", {})
    if not isinstance(labels, dict):
        raise _LineError("'labels' must be an object")
    media, fmt = _media(record[key], modality if modality == "image" else "audio", base, limits, rate)
    split = _split(record)
    return {
        "id": str(record.get("id", ident)),
        "modality": modality,
        "source": "user",
        "split": split,
        "text": text,
        "media": media,
        "format": fmt,
        "labels": dumps(labels),
    }


def _conversation(record: dict[str, Any], ident: str, base: Path, limits: UserDataConfig, rate: int) -> dict:
    try:
        conversation = Conversation.from_dict(record)
    except (KeyError, TypeError, ValueError) as error:
        raise _LineError(f"not a conversation ({error})") from error
    media, modalities, formats = [], [], []
    for message in conversation.messages:
        for part in message.content:
            if not isinstance(part, Media):
                continue
            if part.source is None:
                raise _LineError(f"a {part.modality} part needs a 'path'")
            if part.modality not in ("image", "speech", "music"):
                raise _LineError(f"unknown media type {part.modality!r}; use image, speech or music")
            data, fmt = _media(
                part.source, "image" if part.modality == "image" else "audio", base, limits, rate
            )
            media.append(data)
            modalities.append(part.modality)
            formats.append(fmt)
    pairs = exchange_pairs(conversation)
    if not pairs:
        raise _LineError("a conversation needs a user turn followed by an assistant turn")
    return {
        "id": str(record.get("id", ident)),
        "split": _split(record),
        "task": pairs[0],
        "template": "user",
        "spoken": False,
        "turn_pairs": json.dumps(pairs),
        "conversation": json.dumps(conversation.to_dict(), ensure_ascii=False),
        "media": media,
        "media_modalities": modalities,
        "media_formats": formats,
        "media_labels": ["{}"] * len(media),
    }


def read_chunk(
    path: Path, prefix: str, start: int, count: int, limits: UserDataConfig, sample_rate: int
) -> UserChunk:
    """Lines start+1 .. start+count of a JSONL file (1-based line numbers in reports)."""
    chunk = UserChunk({}, {}, [], 0)
    base = path.parent
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if number <= start:
                continue
            if number > start + count:
                break
            chunk.lines += 1
            if not line.strip():
                continue
            ident = f"{prefix}-{number:06d}"
            try:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise _LineError(f"not valid JSON ({error.msg})") from error
                if not isinstance(record, dict):
                    raise _LineError("a line must be a JSON object")
                if "messages" in record:
                    row = _conversation(record, ident, base, limits, sample_rate)
                    chunk.conversations.setdefault(row["split"], []).append(row)
                    continue
                keys = [key for key in MEDIA_KEYS if key in record]
                if len(keys) != 1:
                    raise _LineError(
                        f"an item needs exactly one of {list(MEDIA_KEYS)} (or 'messages'), got {keys}"
                    )
                row = _item(record, keys[0], ident, base, limits, sample_rate)
                chunk.items.setdefault((row["modality"], row["split"]), []).append(row)
            except _LineError as error:
                log.warning("%s line %d: skipped %s: %s", path, number, error.path or "the line", error)
                chunk.skipped.append(Skipped(str(path), number, error.path, str(error)))
    return chunk


def skipped_dicts(chunk: UserChunk) -> list[dict[str, Any]]:
    return [asdict(s) for s in chunk.skipped]
