"""`anyseq bench data`: items per second of every AnyWorld generator, written as JSON.

Each generator makes a batch in this process, as a build makes a shard, after one
warm-up item (imports, catalogue reads), and reports wall and CPU time per item. The load average is recorded next to
the numbers: on a shared machine, wall time measures the neighbours as much as the code.
"""

from __future__ import annotations

import os
import platform
import random
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anyseq.io import atomic_write_json
from anyseq.world import dialogues, pretrain, speech
from anyseq.world.build import dialogue_emoji
from anyseq.world.config import WorldConfig
from anyseq.world.sampler import WorldSampler
from anyseq.world.sources import SOURCES

BATCHES = {
    "shapes": 300,
    "emoji": 100,
    "digits": 300,
    "photos": 19,
    "espeak": 100,
    "melody": 100,
    "chorale": 10,
    "folk": 30,
}  # items per generator
DIALOGUES = 30
PAIRS = 20000


def _cpu() -> float:
    own, programs = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + programs.ru_utime + programs.ru_stime


def _measure(make: Callable[[], int]) -> dict[str, float]:
    began, cpu = time.perf_counter(), _cpu()
    with speech.session():  # as a build makes a shard
        items = make()
    wall, cpu = time.perf_counter() - began, _cpu() - cpu
    return {
        "items": items,
        "seconds": round(wall, 3),
        "items_per_second": round(items / wall, 2),
        "cpu_ms_per_item": round(1000 * cpu / max(items, 1), 3),
    }


def _dialogues(config: WorldConfig, count: int) -> int:
    emoji = dialogue_emoji(config, "train")
    scripts = [
        dialogues.write_script(
            WorldSampler(config, "train", random.Random(i)), emoji, dialogues.PAIRS[i % 16]
        )
        for i in range(count)
    ]
    requests = [r for s in scripts for r in s.requests]
    dialogues.render_requests(requests, config.image_size, config.sample_rate, config.music.seconds)
    return count


def run_bench(out: Path) -> dict[str, Any]:
    """Time every generator of the tiny world; write and return the results."""
    config = WorldConfig.from_preset("tiny")
    results: dict[str, Any] = {}
    for name, count in BATCHES.items():
        source = SOURCES[name]
        source.make(config, "train", 0, 1)  # warm-up
        results[name] = _measure(lambda s=source, c=count: len(s.make(config, "train", 0, c)))
    _dialogues(config, 1)
    results["dialogues"] = _measure(lambda: _dialogues(config, DIALOGUES))
    items = {"image": [f"i{n}" for n in range(PAIRS)], "speech": [f"s{n}" for n in range(PAIRS)], "music": []}
    results["pretrain_pairs"] = _measure(lambda: len(pretrain.make_pairs(items, "train", config.pretrain, 0)))
    report = {
        "benchmark": "data",
        "preset": "tiny",
        "generators": results,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
        },
    }
    atomic_write_json(out, report)
    return report
