"""Speed of the speech tokenizer as multiples of real time, with librosa's Griffin-Lim as the reference.

AnyGPT (Zhan et al., ACL 2024) encodes the user's speech with SpeechTokenizer and speaks
its replies through SoundStorm and the codec decoder; both sit in the chat's latency.
This benchmark times, on real espeak-ng sentences at the `tiny` size:

- encode: audio -> all K levels (the language model reads level 1);
- acoustic: level 1 + a voice prompt -> levels 2..K (the refinement steps of the config);
- vocoder: all levels -> waveform (codec decoder + Griffin-Lim);
- decode = acoustic + vocoder, what `SpeechTokenizer.decode` costs;
- griffin_lim_librosa: librosa's Griffin-Lim on the clips' true magnitudes, same STFT
  and iterations: the reference waveform method.

Speed does not depend on the weights, so a fresh model is timed unless `model_dir` is given.
Targets (issue): encode >= 50x and decode >= 5x real time on 2 CPU cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import torch

from anyseq.io import atomic_write_json
from anyseq.media import Audio
from anyseq.modalities.base import load_tokenizer
from anyseq.modalities.speech import SpeechConfig, SpeechTokenizer

SENTENCES = (
    "draw a small red circle on white",
    "play a slow cello melody in d minor",
    "how many sides does a hexagon have",
    "the yellow star is in the top left corner",
    "make it bigger",
    "what key is this melody in",
)
VOICES = ("us-male", "gb-female", "caribbean-male")
TARGETS = {"encode": 50.0, "decode": 5.0}


def _best_of(repeats: int, work: Callable[[], Any]) -> tuple[float, float]:
    """The fastest of `repeats` runs: (wall seconds, process CPU seconds).

    CPU seconds are reported beside wall seconds because on a shared machine the wall
    time counts other people's work; with one thread, CPU time is the idle wall time.
    """
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def benchmark_speech(tokenizer: SpeechTokenizer, clips: list[Audio], repeats: int = 3) -> dict[str, Any]:
    """Seconds and multiples of real time for each stage over `clips` (one at a time, as in chat)."""
    seconds = sum(c.duration for c in clips)
    codes = [tokenizer.encode_levels(c) for c in clips]
    prompt = tokenizer.voice_prompt(clips[-1])
    core = tokenizer.codec.core.config

    def griffin_lim_reference() -> None:
        for clip in clips:
            magnitude = np.abs(librosa.stft(clip.samples, n_fft=core.n_fft, hop_length=core.stft_hop))
            librosa.griffinlim(
                magnitude, n_iter=core.griffin_lim_iters, hop_length=core.stft_hop, n_fft=core.n_fft
            )

    timings = {
        "encode": _best_of(repeats, lambda: [tokenizer.encode_levels(c) for c in clips]),
        "acoustic": _best_of(repeats, lambda: [tokenizer.complete_batch([k[:1]], [prompt]) for k in codes]),
        "vocoder": _best_of(repeats, lambda: [tokenizer.decode_levels(k) for k in codes]),
        "decode": _best_of(repeats, lambda: [tokenizer.decode(k[:1], voice=None) for k in codes]),
        "griffin_lim_librosa": _best_of(repeats, griffin_lim_reference),
    }
    wall = {name: value[0] for name, value in timings.items()}
    return {
        "audio_seconds": seconds,
        "clips": len(clips),
        "wall_seconds": wall,
        "cpu_seconds": {name: value[1] for name, value in timings.items()},
        "x_realtime": {name: seconds / value for name, value in wall.items()},
        "targets_x_realtime": TARGETS,
        "met": {name: seconds / wall[name] >= target for name, target in TARGETS.items()},
    }


def run_bench(
    out: Path, model_dir: Path | None = None, preset: str = "tiny", threads: tuple[int, ...] = (1, 2)
) -> dict:
    """Time the speech tokenizer on real espeak-ng sentences with each torch thread count; writes JSON to `out`.

    The speech path is many small operations (FFTs of one clip, a small Transformer):
    one thread is often as fast as two, and on a busy machine two threads spin.
    """
    from anyseq.world.speech import synthesize

    torch.manual_seed(0)
    if model_dir is not None:
        tokenizer = load_tokenizer(model_dir)
    else:
        tokenizer = SpeechTokenizer(SpeechConfig.preset(preset, phonemes="abcdefghijklmnopqrstuvwxyz@:"))
    clips = [synthesize(text, VOICES[i % len(VOICES)]).audio for i, text in enumerate(SENTENCES)]
    previous = torch.get_num_threads()
    runs = {}
    for count in threads:
        torch.set_num_threads(count)
        runs[f"threads_{count}"] = benchmark_speech(tokenizer, clips)
    torch.set_num_threads(previous)
    fresh = f"fresh {preset} (speed does not depend on weights)"
    report = {
        "speech": {
            "model": str(model_dir) if model_dir is not None else fresh,
            "config": {
                "frame_rate": tokenizer.config.frame_rate,
                "num_levels": tokenizer.config.num_levels,
                "codebook_size": tokenizer.config.codebook_size,
                "refinement_steps": tokenizer.config.refinement_steps,
                "griffin_lim_iters": tokenizer.config.griffin_lim_iters,
            },
            **runs,
        }
    }
    atomic_write_json(out, report)
    return report
