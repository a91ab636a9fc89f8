"""A bounded load test on loopback: 16 clients, 320 requests, no error but 429, nothing stuck."""

import asyncio
import time
from collections import Counter

import httpx
import pytest
from serve_helpers import MODEL, data_url, png, running

CLIENTS, REQUESTS = 16, 320


def body(index: int) -> dict:
    """Text chats and captions with two sampling settings, some streamed."""
    content = "Hello! How are you today?"
    if index % 3 == 0:
        image = {"type": "image_url", "image_url": {"url": data_url(png((index * 37 % 256, 90, 200)))}}
        content = [{"type": "text", "text": "Describe the scene in this picture."}, image]
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 6,
        "temperature": [None, 0.7][index % 2],
        "stream": index % 4 == 1,
    }


async def hammer(url: str) -> tuple[Counter, list[float]]:
    statuses: Counter = Counter()
    latencies: list[float] = []
    indices = iter(range(REQUESTS))

    async def client(http: httpx.AsyncClient) -> None:
        for index in indices:
            start = time.perf_counter()
            response = await http.post("/v1/chat/completions", json=body(index))
            text = response.text
            statuses[response.status_code] += 1
            latencies.append(time.perf_counter() - start)
            if response.status_code == 200 and body(index)["stream"]:
                assert text.rstrip().endswith("data: [DONE]")
            elif response.status_code == 429:
                assert response.json()["error"]["code"] == "rate_limit_exceeded"
                await asyncio.sleep(0.1)  # back off (the server asks for 1 s; this is a stress test)

    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        await asyncio.wait_for(asyncio.gather(*(client(http) for _ in range(CLIENTS))), timeout=240)
    return statuses, latencies


@pytest.mark.slow
def test_load_ends_with_no_errors_but_429_and_nothing_stuck(checkpoint):
    with running(checkpoint, max_concurrency=8) as (url, app):
        statuses, latencies = asyncio.run(hammer(url))
        server = app.state.server
        assert sum(statuses.values()) == REQUESTS
        assert set(statuses) <= {200, 429}, statuses
        assert statuses[200] >= REQUESTS // 8 and statuses[429] > 0  # 16 clients against a limit of 8
        assert max(latencies) < 30
        health = httpx.get(url + "/health").json()
        assert health["in_flight"] == 0 and health["queued"] == 0
        assert server.batcher.generations == statuses[200]
        assert server.batcher.largest_batch > 1
