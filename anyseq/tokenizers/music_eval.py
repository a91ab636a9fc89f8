"""What a music tokenizer keeps: `anyseq tokenizer eval music --out FILE.json`.

AnyGPT (Zhan et al., ACL 2024) relies on EnCodec's reconstructions being faithful enough
for a language model to read and write music. This measures it for any music tokenizer
on an AnyWorld split, comparing each clip with its encode -> decode reconstruction using
the judges of `anyseq.judges.music`, and scoring the judges on the originals too (their
ceiling against the generator's labels):

- tempo kept: the tempo judge's reading of the reconstruction is within 4% of its tempo on
  the original (octave errors folded and counted); also, over the clips whose original the
  judge gets right (against the label), the share whose reconstruction it gets right;
- pitch: pYIN against the MIDI notes of monophonic clips (generated melodies and folk
  songs), pooled over voiced frames, on the reconstruction and on the original (the
  judge's ceiling: pYIN makes octave errors on organ and reed sounds); `pitch_kept` is the
  share of the frames pYIN gets right on the original that it still gets right on the
  reconstruction;
- chroma similarity, multi-resolution STFT distance, key agreement;
- encode and decode speed as multiples of real time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from anyseq.io import atomic_write_json
from anyseq.judges import music as judge
from anyseq.media import load_audio
from anyseq.modalities import load_tokenizer
from anyseq.world.dataset import iter_items

MONOPHONIC_SOURCES = ("melody", "folk")  # one voice: pitch is defined for every sounding frame
KEY_NAMES = {
    "D flat": "C#",
    "E flat": "D#",
    "F sharp": "F#",
    "A flat": "G#",
    "B flat": "A#",
}  # AnyWorld -> judge


def _share(values: list[bool]) -> float | None:
    return float(np.mean(values)) if values else None


def evaluate_music_tokenizer(
    model_dir: Path,
    data_dir: Path,
    out: Path,
    split: str = "test",
    limit: int | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Reconstruct every music clip of `split` and measure what survives; writes JSON to `out`.

    Runs on `threads` torch threads (restored after): the codec's ops are small, and two
    threads spin on a shared machine (see `music_bench`), which would distort the speeds.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _evaluate(model_dir, data_dir, out, split, limit)
    finally:
        torch.set_num_threads(previous)


def _evaluate(model_dir: Path, data_dir: Path, out: Path, split: str, limit: int | None) -> dict[str, Any]:
    tokenizer = load_tokenizer(model_dir)
    rate = tokenizer.sample_rate
    rows = []
    encode_seconds = decode_seconds = audio_seconds = 0.0
    items = list(iter_items(data_dir, "music", split, limit))
    if not items:
        raise ValueError(f"{data_dir}: no music in split {split!r}")
    for item in tqdm(items, desc="music eval", unit="clip"):
        original = load_audio(
            item.media, rate, max_seconds=tokenizer.config.max_seconds, truncate=True
        ).samples
        started = time.perf_counter()
        codes = tokenizer.encode(original)
        encoded = time.perf_counter()
        reconstruction = tokenizer.decode(codes).samples[: len(original)]
        decode_seconds += time.perf_counter() - encoded
        encode_seconds += encoded - started
        audio_seconds += len(original) / rate
        tempo_original = judge.estimate_tempo(original, rate)
        tempo_reconstruction = judge.estimate_tempo(reconstruction, rate)
        kept = judge.compare_tempo(tempo_original, tempo_reconstruction)
        key_original = judge.estimate_key(original, rate)
        key_reconstruction = judge.estimate_key(reconstruction, rate)
        row: dict[str, Any] = {
            "id": item.id,
            "source": item.source,
            "frames": int(codes.shape[1]),
            "stft_distance": judge.multi_resolution_stft_distance(original, reconstruction),
            "chroma_similarity": judge.chroma_similarity(original, reconstruction, rate),
            "tempo_label": item.labels.get("tempo"),
            "tempo_original": tempo_original,
            "tempo_reconstruction": tempo_reconstruction,
            "tempo_kept": kept.folded,
            "tempo_kept_exact": kept.exact,
            "key_label": f"{KEY_NAMES.get(item.labels.get('key'), item.labels.get('key'))} {item.labels.get('mode')}",
            "key_original": f"{key_original.tonic} {key_original.mode}",
            "key_reconstruction": f"{key_reconstruction.tonic} {key_reconstruction.mode}",
        }
        if item.labels.get("tempo"):
            row["tempo_judge_original"] = judge.compare_tempo(item.labels["tempo"], tempo_original).folded
            row["tempo_judge_reconstruction"] = judge.compare_tempo(
                item.labels["tempo"], tempo_reconstruction
            ).folded
        if item.source in MONOPHONIC_SOURCES and item.labels.get("notes"):
            before = judge.track_pitch(original, rate, item.labels["notes"])
            after = judge.track_pitch(reconstruction, rate, item.labels["notes"])
            row["pitch"] = {
                "voiced": before.voiced_frames,
                "original": int(before.correct().sum()),
                "reconstruction": int(after.correct().sum()),
                "both": int((before.correct() & after.correct()).sum()),
                "original_octave_folded": int(before.correct(fold_octaves=True).sum()),
                "reconstruction_octave_folded": int(after.correct(fold_octaves=True).sum()),
            }
        rows.append(row)

    pitch = [r["pitch"] for r in rows if "pitch" in r]

    def pooled(name: str, over: str = "voiced") -> float | None:
        total = sum(p[over] for p in pitch)
        return sum(p[name] for p in pitch) / total if total else None

    judged_right = [r for r in rows if r.get("tempo_judge_original")]
    summary = {
        "split": split,
        "clips": len(rows),
        "tokens_per_second": tokenizer.frame_rate * tokenizer.num_codebooks,
        "tempo_kept": _share([r["tempo_kept"] for r in rows]),
        "tempo_kept_exact": _share([r["tempo_kept_exact"] for r in rows]),
        "tempo_octave_errors": sum(r["tempo_kept"] and not r["tempo_kept_exact"] for r in rows),
        "tempo_kept_where_judge_right": _share([r["tempo_judge_reconstruction"] for r in judged_right]),
        "pitch_reconstruction": pooled("reconstruction"),
        "pitch_original": pooled("original"),
        "pitch_kept": pooled("both", over="original"),
        "pitch_reconstruction_octave_folded": pooled("reconstruction_octave_folded"),
        "pitch_original_octave_folded": pooled("original_octave_folded"),
        "chroma_similarity": float(np.mean([r["chroma_similarity"] for r in rows])),
        "stft_distance": float(np.mean([r["stft_distance"] for r in rows])),
        "key_agreement": _share([r["key_original"] == r["key_reconstruction"] for r in rows]),
        "tempo_judge_ceiling": _share(
            [r["tempo_judge_original"] for r in rows if "tempo_judge_original" in r]
        ),
        "tempo_judge_on_reconstruction": _share(
            [r["tempo_judge_reconstruction"] for r in rows if "tempo_judge_reconstruction" in r]
        ),
        "key_judge_ceiling": _share([r["key_original"] == r["key_label"] for r in rows]),
        "encode_realtime": audio_seconds / encode_seconds,
        "decode_realtime": audio_seconds / decode_seconds,
        "by_source": {
            source: {
                "clips": len(chosen),
                "tempo_kept": _share([r["tempo_kept"] for r in chosen]),
                "chroma_similarity": float(np.mean([r["chroma_similarity"] for r in chosen])),
            }
            for source in sorted({r["source"] for r in rows})
            for chosen in [[r for r in rows if r["source"] == source]]
        },
    }
    atomic_write_json(out, {"summary": summary, "clips": rows})
    return summary
