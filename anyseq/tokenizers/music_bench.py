"""Music tokenizer speed as multiples of real time: the music part of `anyseq bench tokenizers`.

AnyGPT (Zhan et al., ACL 2024) encodes every music clip of its corpus and decodes every
generated one with EnCodec, so codec speed bounds data preparation and replies. This
times the `tiny` music tokenizer (or a trained one) on a 5 s clip, alone and in batches
of 8, encode and decode separately. Speed does not depend on the weights, so a fresh
model serves when no trained one is given. Target on 2 CPU cores: >= 20x both ways.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anyseq.io import atomic_write_json
from anyseq.media import Audio
from anyseq.modalities import load_tokenizer
from anyseq.modalities.music import MusicTokenizer

CLIP_SECONDS = 5.0
BATCH = 8


def test_melody(sample_rate: int, seconds: float = CLIP_SECONDS) -> Audio:
    """Eight harmonic notes with decaying envelopes: a stand-in for a rendered melody."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    note = (t * 8 / seconds).astype(int)
    pitch = 60 + np.array([0, 2, 4, 5, 7, 9, 11, 12])[note]
    frequency = 440.0 * 2 ** ((pitch - 69) / 12)
    phase = 2 * np.pi * np.cumsum(frequency) / sample_rate
    envelope = np.exp(-4 * (t % (seconds / 8)))
    samples = sum(np.sin(h * phase) / h for h in range(1, 6)) * envelope * 0.3
    return Audio(samples.astype(np.float32), sample_rate)


def _median_seconds(run: Callable[[], Any], repeats: int) -> float:
    run()  # warm-up: allocations, and the codebooks' first-call initialisation of a fresh model
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _speeds(tokenizer: Any, clip: Audio, codes: torch.Tensor, repeats: int) -> dict[str, float]:
    clips, batch_codes = [clip] * BATCH, [codes] * BATCH
    return {
        "encode_realtime": CLIP_SECONDS / _median_seconds(lambda: tokenizer.encode(clip), repeats),
        "decode_realtime": CLIP_SECONDS / _median_seconds(lambda: tokenizer.decode(codes), repeats),
        f"encode_realtime_batch{BATCH}": BATCH
        * CLIP_SECONDS
        / _median_seconds(lambda: tokenizer.encode_batch(clips), repeats),
        f"decode_realtime_batch{BATCH}": BATCH
        * CLIP_SECONDS
        / _median_seconds(lambda: tokenizer.decode_batch(batch_codes), repeats),
    }


def run_bench(
    out: Path, model_dir: Path | None = None, repeats: int = 5, threads: tuple[int, ...] = (1, 2)
) -> dict[str, Any]:
    """Time encode and decode of the music tokenizer with each torch thread count; writes JSON to `out`.

    The tokenizer's ops are small: one thread is often as fast as two, and on a shared
    machine two threads spin, so both are reported.
    """
    tokenizer = load_tokenizer(model_dir) if model_dir else MusicTokenizer.from_config({"preset": "tiny"})
    clip = test_melody(tokenizer.sample_rate)
    codes = tokenizer.encode(clip)
    previous = torch.get_num_threads()
    runs = {}
    try:
        for count in threads:
            torch.set_num_threads(count)
            runs[f"threads_{count}"] = _speeds(tokenizer, clip, codes, repeats)
    finally:
        torch.set_num_threads(previous)
    result = {
        "tokenizer": str(model_dir) if model_dir else "tiny (fresh weights)",
        "clip_seconds": CLIP_SECONDS,
        "frames": int(codes.shape[1]),
        "tokens": int(codes.numel()),
        "target_realtime": 20.0,
        "machine": platform.processor() or platform.machine(),
        **runs,
    }
    atomic_write_json(out, result)
    return result
