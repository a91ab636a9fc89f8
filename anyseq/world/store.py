"""How AnyWorld is stored: Parquet shards with media as encoded bytes, labels as JSON.

    DIR/config.json                                   the WorldConfig of the build
    DIR/manifest.json                                 counts per split, task and modality pair
    DIR/items/{image,speech,music}/{split}/{source}-{shard:05d}.parquet
    DIR/pretrain/{split}/pairs-{shard:05d}.parquet    stage-1 pairs, pointing at items by id
    DIR/instruct/{split}/{source}-{shard:05d}.parquet stage-2 dialogues, media inline
    DIR/progress/{task}.json                          one per finished build task (resume)

Images are PNG (user data keeps its JPEG/PNG bytes), audio FLAC (16-bit). Shards are
written whole to a temporary sibling and renamed, so a reader or a resumed build never
sees half a shard.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from anyseq.io import atomic_write_bytes
from anyseq.media import Audio

ITEM_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("modality", pa.string()),  # image | speech | music
        ("source", pa.string()),  # shapes, emoji, digits, photos, espeak, melody, chorale, folk, user
        ("split", pa.string()),
        ("text", pa.string()),  # caption or transcript
        ("media", pa.binary()),
        ("format", pa.string()),  # png | jpeg | flac | wav | ...
        ("labels", pa.string()),  # JSON object
    ]
)
PAIR_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("split", pa.string()),
        ("task", pa.string()),  # image_caption, image_generation, asr, tts, music_caption, music_generation
        ("instruction", pa.string()),
        ("item_id", pa.string()),
        ("modality", pa.string()),
        ("direction", pa.string()),  # "media->text" | "text->media"
    ]
)
DIALOGUE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("split", pa.string()),
        ("task", pa.string()),  # input -> output of the first exchange, e.g. "image->music"
        ("template", pa.string()),
        ("spoken", pa.bool_()),
        ("turn_pairs", pa.string()),  # JSON list, one "input->output" per exchange
        ("conversation", pa.string()),  # Conversation.to_dict() JSON; media parts hold descriptions
        ("media", pa.list_(pa.binary())),  # media parts in reading order, then voice prompts
        ("media_modalities", pa.list_(pa.string())),
        ("media_formats", pa.list_(pa.string())),
        ("media_labels", pa.list_(pa.string())),  # JSON objects; a spoken reply's has "voice_prompt": index
    ]
)


def encode_image(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def encode_audio(audio: Audio) -> bytes:
    return audio.to_bytes("FLAC")


def dumps(labels: Any) -> str:
    return json.dumps(labels, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def write_shard(path: Path, rows: list[dict[str, Any]], schema: pa.Schema) -> int:
    """Write `rows` as one Parquet file, atomically; returns the number of rows."""
    table = pa.Table.from_pylist(rows, schema=schema)
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, compression="zstd", row_group_size=max(1, len(rows)))
    atomic_write_bytes(path, buffer.getvalue().to_pybytes())
    return len(rows)


def shard_paths(directory: Path) -> list[Path]:
    """The shards under `directory` in a fixed order (temporaries excluded)."""
    return sorted(p for p in directory.glob("*.parquet") if not p.name.startswith("."))


def read_shard(path: Path, columns: list[str] | None = None) -> list[dict[str, Any]]:
    return pq.read_table(path, columns=columns).to_pylist()
