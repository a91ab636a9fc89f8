"""Speed of the image tokenizer: images per second encoded and decoded at batch 64.

AnyGPT's image tokenizer (SEED) runs on a GPU; AnySeq's must keep up with data
preparation and generation on 2 CPU cores, so the target for the `tiny` preset is 500
images/s encoded. The benchmark times, per preset, the whole path (PIL images in:
conversion, model, codes out; codes in: model, PIL images out) and the model alone, in
wall-clock and in CPU time: a machine shared with other jobs slows the first, hardly the
second. It also records the threads, the core count and the load average it ran under.

    run_bench(Path("image_tokenizer.json"))   # `anyseq bench tokenizers`
"""

from __future__ import annotations

import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from anyseq.io import atomic_write_json
from anyseq.modalities.image_vq import VQImageConfig, VQImageTokenizer, images_to_pixels
from anyseq.world.images import render_shape_scene, sample_scene

TARGET_ENCODE_PER_SECOND = 500.0  # `tiny` on 2 cores


def _rate(run: Callable[[], Any], items: int, rounds: int) -> dict[str, float]:
    """Best-of-`rounds` items per wall-clock second, and items per CPU second of this process."""
    run()  # warm-up: allocations, oneDNN kernels
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"per_second": items / min(walls), "per_cpu_second": items / min(cpus)}


def bench_tokenizer(tokenizer: VQImageTokenizer, batch_size: int = 64, rounds: int = 5) -> dict[str, Any]:
    """Encode and decode rates of one tokenizer on AnyWorld shape scenes at its size."""
    rng = random.Random(0)
    size = tokenizer.config.image_size
    images = [render_shape_scene(sample_scene(rng, frozenset(), False), size) for _ in range(batch_size)]
    codes = tokenizer.encode_batch(images)  # (B, 1, T)
    pixels = images_to_pixels(images)
    model = tokenizer.model
    with torch.inference_mode():
        rates = {
            "encode": _rate(lambda: tokenizer.encode_batch(images), batch_size, rounds),
            "decode": _rate(lambda: tokenizer.decode_batch(codes), batch_size, rounds),
            "encode_model_only": _rate(lambda: model.encode(pixels), batch_size, rounds),
            "decode_model_only": _rate(lambda: model.decode(codes[:, 0]), batch_size, rounds),
        }
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_per_image": tokenizer.spec.tokens_per_item,
        "codebook_size": tokenizer.codebook_size,
        **{f"{name}_images_per_s": rate["per_second"] for name, rate in rates.items()},
        **{f"{name}_images_per_cpu_s": rate["per_cpu_second"] for name, rate in rates.items()},
    }


def run_bench(
    out: Path,
    presets: tuple[str, ...] = ("tiny", "small"),
    batch_size: int = 64,
    rounds: int = 5,
    threads: int = 2,
) -> dict[str, Any]:
    """Time each preset's tokenizer (weights do not change the speed); writes and returns the JSON report."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        results = {
            name: bench_tokenizer(VQImageTokenizer(VQImageConfig.from_preset(name)), batch_size, rounds)
            for name in presets
        }
    finally:
        torch.set_num_threads(previous)
    report = {
        "benchmark": "image tokenizer encode/decode",
        "batch_size": batch_size,
        "rounds": rounds,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "results": results,
        "target_encode_images_per_s": TARGET_ENCODE_PER_SECOND,
        "tiny_meets_target": results["tiny"]["encode_images_per_s"] >= TARGET_ENCODE_PER_SECOND
        if "tiny" in results
        else None,
    }
    atomic_write_json(out, report)
    return report
