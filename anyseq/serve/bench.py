"""Serving benchmark (`anyseq bench serve`): caption requests over loopback HTTP at concurrency
1, 4 and 16, with batching on (up to 16 requests per batch) and off (one at a time);
both servers run side by side and each level measures them back to back.

The model is a random-weight checkpoint of the `tiny` backbone preset over the
weight-free tokenizers (testing.py): serving cost does not depend on the weights.
Requests are greedy (temperature 0), so both modes generate the same tokens for the
same request; each level sends the same requests. Reported per mode and level:
requests/s, p50/p95 latency, and the mean batch size the server formed.
"""

from __future__ import annotations

import asyncio
import base64
import io
import platform
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from anyseq.api import AnySeq
from anyseq.io import atomic_write_json
from anyseq.serve.app import create_app
from anyseq.serve.server import serve_in_thread
from anyseq.serve.settings import ServeSettings
from anyseq.testing import random_checkpoint

MODEL_NAME = "bench"
CAPTION = "Describe the scene in this picture."
MODES = {"on": None, "off": 1}  # batching mode -> max_batch_size (None: the highest concurrency)
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "black", "white")


def picture(index: int, size: int = 64) -> str:
    """A small shape picture as a data URL (a different one per index)."""
    image = Image.new("RGB", (size, size), COLOURS[index % len(COLOURS)])
    draw = ImageDraw.Draw(image)
    offset = (index * 7) % (size // 2)
    draw.ellipse(
        (offset, offset, offset + size // 2, offset + size // 2), fill=COLOURS[(index + 3) % len(COLOURS)]
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def caption_request(index: int, max_tokens: int) -> dict:
    content = [{"type": "text", "text": CAPTION}, {"type": "image_url", "image_url": {"url": picture(index)}}]
    return {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def load(base_url: str, concurrency: int, requests: int, max_tokens: int, label: str = "") -> dict:
    """`concurrency` clients send `requests` caption requests in all; latency per request."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = iter(range(requests))
    progress = tqdm(total=requests, desc=label or f"concurrency {concurrency}", unit="req", leave=False)

    async def client(http: httpx.AsyncClient) -> None:
        for index in next_index:
            start = time.perf_counter()
            response = await http.post("/v1/chat/completions", json=caption_request(index, max_tokens))
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                latencies.append(time.perf_counter() - start)
            progress.update()

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    progress.close()
    return {
        "concurrency": concurrency,
        "requests": requests,
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "p50_s": round(percentile(latencies, 0.5), 4) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 4) if latencies else None,
        "mean_latency_s": round(statistics.fmean(latencies), 4) if latencies else None,
    }


def run_bench(
    out: Path,
    concurrency: tuple[int, ...] = (1, 4, 16),
    requests_per_level: int = 48,
    max_tokens: int = 16,
    backbone: str = "tiny",
    threads: int = 1,
) -> dict:
    """Writes the JSON to `out`. `threads`: torch threads of the model; the clients and the HTTP
    server share the machine with it (on 2 cores, 1 thread measured better than 2)."""
    torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as servers:
        model = AnySeq.from_pretrained(random_checkpoint(Path(tmp) / "model", backbone=backbone))
        apps, urls = {}, {}
        for mode, batch_size in MODES.items():
            settings = ServeSettings(
                model_name=MODEL_NAME,
                max_batch_size=batch_size or max(concurrency),
                max_concurrency=4 * max(concurrency),
                ui=False,
            )
            apps[mode] = create_app(model, settings)
            urls[mode] = servers.enter_context(serve_in_thread(apps[mode]))
            asyncio.run(load(urls[mode], 1, 2, max_tokens, f"warm-up, batching {mode}"))
        # each level runs both modes back to back, so that both see the same machine load
        for level in concurrency:
            for mode in MODES:
                batcher = apps[mode].state.server.batcher
                batches, generations = batcher.batches, batcher.generations
                label = f"batching {mode}, concurrency {level}"
                row = asyncio.run(load(urls[mode], level, requests_per_level, max_tokens, label))
                row["mean_batch_size"] = round(
                    (batcher.generations - generations) / max(1, batcher.batches - batches), 2
                )
                rows.append({"batching": mode, **row})
    by = {(r["batching"], r["concurrency"]): r["requests_per_s"] for r in rows}
    result = {
        "benchmark": "serve",
        "request": f"caption: '{CAPTION}' + a 64 px PNG, greedy, max_tokens {max_tokens}",
        "model": backbone,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "results": rows,
        "batching_speedup": {
            f"concurrency_{c}": round(by[("on", c)] / by[("off", c)], 2) if by[("off", c)] else None
            for c in concurrency
        },
    }
    atomic_write_json(out, result)
    return result
