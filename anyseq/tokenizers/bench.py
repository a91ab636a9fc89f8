"""`anyseq bench tokenizers`: encode and decode speed of the image, speech and music
tokenizers in one JSON (each part is its own module's benchmark)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from anyseq.io import atomic_write_json
from anyseq.tokenizers import image_bench, music_bench, speech_bench

PARTS = {"image": image_bench.run_bench, "speech": speech_bench.run_bench, "music": music_bench.run_bench}


def run_bench(out: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"benchmark": "tokenizers"}
    with tempfile.TemporaryDirectory() as scratch:
        for name, bench in PARTS.items():
            results[name] = bench(Path(scratch) / f"{name}.json")
    atomic_write_json(out, results)
    return results
