"""Train the music tokenizer on AnyWorld music: `anyseq tokenizer train music`.

AnyGPT (Zhan et al., ACL 2024) took EnCodec pretrained; AnySeq trains its own codec
(`anyseq.modalities.music`) on the world's melodies, chorales and folk songs with the
shared audio loop (`audio_train.py`: progress bar, TensorBoard, validation each epoch,
atomic safetensors checkpoints, resume). The `tiny` preset is sized to finish within
6 minutes on 2 CPU cores, data loading included.

`out_dir` ends up holding the tokenizer (`config.json` + `model.safetensors`, load it with
`anyseq.modalities.load_tokenizer`), `train_report.json`, `checkpoint/` (for resume) and
`tensorboard/`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anyseq.io import atomic_write_json
from anyseq.media import load_audio
from anyseq.modalities.music import MusicConfig, MusicTokenizer
from anyseq.tokenizers.audio_train import AudioTrainConfig, Clip, make_batch, train_codec
from anyseq.world.dataset import iter_items

TRAIN_PRESETS: dict[str, AudioTrainConfig] = {
    # Two threads: 438 steps a minute on the idle 2-core machine against 304 on one (measured
    # 2026-12-02), so 2300 steps fit about 5.5 minutes; max_minutes keeps a busy machine within
    # the 6-minute budget, and the cosine follows the time when it cuts the steps. Measured on
    # AnyWorld tiny's test music (`anyseq tokenizer eval music`): 1530 steps on one thread kept
    # pitch in 89.8% of the frames pYIN reads right on the originals and tempo in 92.9% of clips;
    # 2172 steps on two threads (stopped by the limit), 92.3% and 91.4%. bf16 autocast (2026-12-07,
    # a CPU where it measures faster, one run each on the same world): all 2,300 steps in 204 s
    # against fp32's 250 s, but every measure a little worse (pitch kept 92.2% / 92.4%, tempo
    # 91.4% / 92.9%, key agreement 64% / 73%, chroma similarity 0.893 / 0.904), so music stays fp32.
    "tiny": AudioTrainConfig(
        steps=2300,
        batch_size=8,
        crop_seconds=1.6,
        learning_rate=2e-3,
        epoch_steps=250,
        max_minutes=5.4,
        threads=2,
    ),
    "test": AudioTrainConfig(steps=4, batch_size=2, crop_seconds=0.5, epoch_steps=2, warmup_steps=1),
    "anygpt-7b": AudioTrainConfig(steps=200_000, batch_size=32, crop_seconds=2.0, learning_rate=5e-4),
}
STATISTICS_CLIPS = 64  # random training crops that set the codec's per-bin feature statistics


def read_clips(data_dir: str | Path, split: str, sample_rate: int, limit: int | None = None) -> list[Clip]:
    """AnyWorld music of `split` at `sample_rate`, labels kept (notes, tempo, key, source)."""
    return [
        Clip(
            load_audio(item.media, sample_rate).samples, {**item.labels, "id": item.id, "source": item.source}
        )
        for item in iter_items(data_dir, "music", split, limit)
    ]


def train_on_clips(
    train: list[Clip],
    validation: list[Clip],
    out_dir: str | Path,
    music_config: MusicConfig,
    train_config: AudioTrainConfig,
    resume: bool = True,
) -> dict[str, Any]:
    """Train a music tokenizer on `train` and write it to `out_dir`; returns the training report."""
    out_dir = Path(out_dir)
    started = time.monotonic()
    torch.manual_seed(train_config.seed)
    tokenizer = MusicTokenizer(music_config)
    rng = np.random.default_rng(train_config.seed)
    crop = int((train_config.crop_seconds or music_config.max_seconds) * music_config.codec.sample_rate)
    sample = make_batch([train[i] for i in rng.integers(0, len(train), STATISTICS_CLIPS)], crop, rng)
    tokenizer.codec.fit_feature_statistics(sample.audio)  # a resumed run restores its own from the checkpoint
    result = train_codec(tokenizer.codec, train, validation, out_dir, train_config, resume=resume)
    tokenizer.codec.eval()
    tokenizer.save(out_dir)
    report = {
        "seconds": time.monotonic() - started,
        "train_clips": len(train),
        "train_audio_seconds": sum(len(c.samples) for c in train) / music_config.codec.sample_rate,
        "tokens_per_second": music_config.codec.frame_rate * music_config.codec.num_codebooks,
        "codec": {k: v for k, v in result.to_dict().items() if k != "history"},
        "history": result.history,
        "config": music_config.to_dict(),
        "training": asdict(train_config),
    }
    atomic_write_json(out_dir / "train_report.json", report)
    return report


def train_music_tokenizer(
    data_dir: Path, out_dir: Path, preset: str = "tiny", resume: bool = True, max_minutes: float | None = None
) -> dict[str, Any]:
    """Train the `preset` music tokenizer on AnyWorld music in `data_dir`; the tokenizer goes to `out_dir`.

    `max_minutes` bounds the whole run (loading included); training stops early, validated
    and saved, when it runs out.
    """
    if preset not in TRAIN_PRESETS:
        raise ValueError(f"unknown music preset {preset!r}; known: {sorted(TRAIN_PRESETS)}")
    started = time.monotonic()
    music_config = MusicConfig.preset(preset)
    rate = music_config.codec.sample_rate
    train, validation = read_clips(data_dir, "train", rate), read_clips(data_dir, "validation", rate)
    if not train or not validation:
        raise ValueError(
            f"{data_dir}: no music to train on ({len(train)} train, {len(validation)} validation clips)"
        )
    train_config = TRAIN_PRESETS[preset]
    if max_minutes is not None:
        left = max_minutes - (time.monotonic() - started) / 60
        train_config = replace(train_config, max_minutes=max(0.05, left * 0.95))  # keep time to save
    return train_on_clips(train, validation, out_dir, music_config, train_config, resume)
