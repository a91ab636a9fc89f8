"""The tokenized view: every conversation of the corpora rendered once, stored beside the data.

AnyGPT tokenizes its corpora offline (media -> codes) so training only reads ids. Here
`tokenize_data` renders each (task, conversation) of the pretraining and instruction
corpora with a checkpoint's tokenizers into ids and a loss mask (the assistant's turns: a
pair's reply, a dialogue's answers; the trainer widens a pair's mask to every token where its
`pair_loss` says so, as AnyGPT trains), and writes Parquet shards:

    DATA/tokenized/{fingerprint}/
      manifest.json                     # counts per corpus, split and task; fingerprint
      {pretrain,instruct}/{split}/part-00000.parquet   # task: str, ids: list<int32>, loss_mask: list<bool>

The fingerprint hashes the vocabulary layout and every modality tokenizer's files, so a
model with other tokenizers gets its own view and a view is never read with the wrong
vocabulary. The view is written atomically; an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from anyseq.checkpoint import read_layout
from anyseq.conversation import Conversation, render
from anyseq.io import atomic_directory, atomic_write_json
from anyseq.media import MediaError
from anyseq.modalities.base import ModalityTokenizer, load_tokenizer
from anyseq.vocab import VocabLayout

log = logging.getLogger(__name__)

VIEW_KIND = "anyseq-tokenized"
VIEW_VERSION = 2  # 1 stored every token of a pair as a target
VIEW_ROOT = "tokenized"
MANIFEST = "manifest.json"
# Both corpora keep the assistant's turns as targets; the trainer makes "every token" from them.
CORPORA = ("pretrain", "instruct")
DEFAULT_SPLITS = ("train", "validation")
SHARD_EXAMPLES = 4096
MAX_REPORTED_SKIPS = 20

Sources = Mapping[str, Mapping[str, Iterable[tuple[str, Conversation]]]]  # corpus -> split -> items


@dataclass
class Counts:
    examples: int = 0
    tokens: int = 0
    target_tokens: int = 0
    max_length: int = 0

    def add(self, length: int, targets: int) -> None:
        self.examples += 1
        self.tokens += length
        self.target_tokens += targets
        self.max_length = max(self.max_length, length)


@dataclass
class SplitCounts(Counts):
    shards: list[str] = field(default_factory=list)
    tasks: dict[str, Counts] = field(default_factory=dict)
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)  # the first few, with the reason


def model_fingerprint(model_dir: str | Path) -> str:
    """A hash of what tokenization depends on: the vocabulary layout and the modality tokenizers' files."""
    model_dir = Path(model_dir)
    layout, meta = read_layout(model_dir)
    digest = hashlib.sha256(json.dumps(layout.to_dict(), sort_keys=True).encode())
    for name, sub in sorted(meta["modalities"].items()):
        for path in sorted((model_dir / sub).rglob("*")):
            if path.is_file():
                digest.update(f"{name}/{path.relative_to(model_dir / sub)}".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def view_path(data_dir: str | Path, model_dir: str | Path) -> Path:
    return Path(data_dir) / VIEW_ROOT / model_fingerprint(model_dir)


def _write_shard(path: Path, tasks: list[str], ids: list[np.ndarray], masks: list[np.ndarray]) -> None:
    offsets = pa.array(np.concatenate([[0], np.cumsum([len(i) for i in ids])]).astype(np.int32))
    table = pa.table(
        {
            "task": pa.array(tasks, type=pa.string()),
            "ids": pa.ListArray.from_arrays(offsets, pa.array(np.concatenate(ids).astype(np.int32))),
            "loss_mask": pa.ListArray.from_arrays(offsets, pa.array(np.concatenate(masks).astype(bool))),
        }
    )
    pq.write_table(table, path)


def _write_split(
    directory: Path,
    items: Iterable[tuple[str, Conversation]],
    layout: VocabLayout,
    tokenizers: Mapping[str, ModalityTokenizer],
    label: str,
    shard_examples: int,
) -> SplitCounts:
    directory.mkdir(parents=True)
    counts = SplitCounts()
    tasks: list[str] = []
    ids: list[np.ndarray] = []
    masks: list[np.ndarray] = []

    def flush() -> None:
        if tasks:
            name = f"part-{len(counts.shards):05d}.parquet"
            _write_shard(directory / name, tasks, ids, masks)
            counts.shards.append(name)
            tasks.clear()
            ids.clear()
            masks.clear()

    for number, (task, conversation) in enumerate(tqdm(items, desc=f"tokenize {label}", unit="conv")):
        try:
            rendered = render(conversation, layout, tokenizers, loss_on="assistant")
        except (MediaError, ValueError) as error:
            counts.skipped += 1
            if len(counts.skipped_examples) < MAX_REPORTED_SKIPS:
                counts.skipped_examples.append(f"{label} #{number} ({task}): {error}")
            log.warning("%s #%d (%s) skipped: %s", label, number, task, error)
            continue
        length, targets = len(rendered.ids), int(rendered.loss_mask.sum())
        counts.add(length, targets)
        counts.tasks.setdefault(task, Counts()).add(length, targets)
        tasks.append(task)
        ids.append(rendered.ids.numpy())
        masks.append(rendered.loss_mask.numpy())
        if len(tasks) == shard_examples:
            flush()
    flush()
    return counts


def write_view(
    out: str | Path,
    sources: Sources,
    layout: VocabLayout,
    tokenizers: Mapping[str, ModalityTokenizer],
    fingerprint: str,
    origin: Mapping[str, str] | None = None,
    shard_examples: int = SHARD_EXAMPLES,
) -> dict[str, Any]:
    """Render every (task, conversation) of `sources` and write the view atomically; returns its manifest."""
    out = Path(out)
    unknown = set(sources) - set(CORPORA)
    if unknown:
        raise ValueError(f"unknown corpora {sorted(unknown)}; known: {sorted(CORPORA)}")
    manifest: dict[str, Any] = {
        "kind": VIEW_KIND,
        "version": VIEW_VERSION,
        "fingerprint": fingerprint,
        "vocab_size": layout.vocab_size,
        **dict(origin or {}),
        "corpora": {},
    }
    with atomic_directory(out) as temp:
        for corpus, splits in sources.items():
            manifest["corpora"][corpus] = {}
            for split, items in splits.items():
                counts = _write_split(
                    temp / corpus / split,
                    items,
                    layout,
                    tokenizers,
                    f"{corpus}/{split}",
                    shard_examples,
                )
                manifest["corpora"][corpus][split] = asdict(counts)
        atomic_write_json(temp / MANIFEST, manifest)
    return manifest


def is_view(directory: str | Path) -> bool:
    """True when `directory` is a tokenized view itself (not a data directory holding views)."""
    path = Path(directory) / MANIFEST
    return path.is_file() and json.loads(path.read_text()).get("kind") == VIEW_KIND


def read_view_manifest(view_dir: str | Path) -> dict[str, Any]:
    path = Path(view_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{view_dir}: not a tokenized view (no {MANIFEST})")
    manifest = json.loads(path.read_text())
    if manifest.get("kind") != VIEW_KIND or manifest.get("version") != VIEW_VERSION:
        raise ValueError(f"{path}: not a version-{VIEW_VERSION} tokenized view")
    return manifest


def tokenize_data(
    data_dir: str | Path,
    model_dir: str | Path,
    splits: Iterable[str] = DEFAULT_SPLITS,
    corpora: Iterable[str] = CORPORA,
    overwrite: bool = False,
) -> Path:
    """Tokenize AnyWorld's corpora in `data_dir` with `model_dir`'s tokenizers, once.

    Returns the view directory; an existing view for the same fingerprint is reused
    unless `overwrite` or it was written by an older version of this code.
    """
    data_dir, model_dir = Path(data_dir), Path(model_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no such data directory")
    out = view_path(data_dir, model_dir)
    if (out / MANIFEST).is_file() and not overwrite:
        try:
            read_view_manifest(out)
            log.info("%s: already tokenized for this model", out)
            return out
        except ValueError as stale:  # written by older code
            log.info("%s; tokenizing again", stale)
    from anyseq.world.dataset import iter_conversations

    layout, meta = read_layout(model_dir)
    tokenizers = {name: load_tokenizer(model_dir / sub) for name, sub in meta["modalities"].items()}
    splits = tuple(splits)
    sources = {
        corpus: {split: iter_conversations(data_dir, corpus, split) for split in splits} for corpus in corpora
    }
    write_view(out, sources, layout, tokenizers, out.name, origin={"model": str(model_dir.resolve())})
    return out
