"""The batching queue, the concurrency limit and disconnects, observed on a slowed-down model."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serve_helpers import MODEL, running, slow_model, wait_until

from anyseq.api import AnySeq
from anyseq.conversation import Conversation, Message, Text
from anyseq.sampling import SamplingConfig
from anyseq.serve.batching import Batcher, GenerationKey, Job

STEP_S = 0.02  # pause per forward pass of the slowed-down model


def request(max_tokens: int = 6, **body) -> dict:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hello!"}],
        "max_tokens": max_tokens,
        **body,
    }


def post_together(url: str, bodies: list[dict], stagger_s: float = 0.0) -> list[httpx.Response]:
    def post(item):
        index, body = item
        time.sleep(index * stagger_s)
        return httpx.post(url + "/v1/chat/completions", json=body, timeout=60)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, enumerate(bodies)))


def test_generation_key_sampling_overrides_only_what_is_given():
    text = SamplingConfig(temperature=1.0, top_p=0.9, top_k=5)
    assert GenerationKey(8).sampling(text) is None
    assert GenerationKey(8, temperature=0.0).sampling(text) == {"text": SamplingConfig(0.0, 0.9, 5)}
    assert GenerationKey(8, top_p=0.5).sampling(text) == {"text": SamplingConfig(1.0, 0.5, 5)}


def test_requests_arriving_together_share_a_batch(checkpoint):
    with running(slow_model(checkpoint, STEP_S)) as (url, app):
        # the first request occupies the model; the others queue meanwhile and form one batch
        responses = post_together(url, [request(max_tokens=12)] * 5, stagger_s=0.01)
        batcher = app.state.server.batcher
        assert [r.status_code for r in responses] == [200] * 5
        assert batcher.generations == 5
        assert batcher.batches <= 2 and batcher.largest_batch >= 3


def test_batching_off_and_seeded_requests_run_alone(checkpoint):
    with running(slow_model(checkpoint, STEP_S), max_batch_size=1) as (url, app):
        assert all(r.status_code == 200 for r in post_together(url, [request()] * 3))
        assert app.state.server.batcher.largest_batch == 1
    with running(slow_model(checkpoint, STEP_S)) as (url, app):
        responses = post_together(url, [request(seed=7)] * 3)
        assert app.state.server.batcher.largest_batch == 1
        texts = {r.json()["choices"][0]["message"]["content"] for r in responses}
        assert len(texts) == 1  # the same seed, the same reply


def test_different_settings_are_not_mixed(checkpoint):
    with running(slow_model(checkpoint, STEP_S)) as (url, app):
        bodies = [
            request(temperature=0.5),
            request(temperature=0.5),
            request(max_tokens=3),
            request(max_tokens=3),
        ]
        assert all(r.status_code == 200 for r in post_together(url, bodies))
        batcher = app.state.server.batcher
        assert batcher.generations == 4 and batcher.batches >= 2 and batcher.largest_batch <= 2


def test_beyond_the_concurrency_limit_requests_get_429(checkpoint):
    with running(slow_model(checkpoint, STEP_S), max_concurrency=2) as (url, app):
        responses = post_together(url, [request(max_tokens=20)] * 6)
        codes = sorted(r.status_code for r in responses)
        assert codes.count(200) >= 2 and set(codes) == {200, 429}
        limited = next(r for r in responses if r.status_code == 429)
        assert limited.json()["error"]["type"] == "rate_limit_error"
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
        assert limited.headers["retry-after"] == "1"
        assert app.state.server.admission.in_flight == 0


def test_a_client_that_leaves_stops_its_generation(checkpoint):
    """200 steps of 20 ms would take 4 s; leaving after the first event must end the work."""
    with running(slow_model(checkpoint, STEP_S)) as (url, app):
        server = app.state.server
        body = request(max_tokens=200, stream=True)
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as response:
            assert response.status_code == 200
            lines = response.iter_lines()  # kept: a dropped iterator closes the connection
            assert next(lines).startswith("data: ")
            assert wait_until(lambda: server.batcher.batches == 1)  # generating, not queued
            left = time.monotonic()
        assert wait_until(lambda: server.batcher.generations == 1, timeout=10)
        assert time.monotonic() - left < 3.0  # well before the 4 s a full generation takes
        assert server.batcher.cancelled == 1
        assert wait_until(lambda: server.admission.in_flight == 0)

        # a plain request: the server notices the closed connection while it waits
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/v1/chat/completions", json=request(max_tokens=200), timeout=0.5)
        left = time.monotonic()
        assert server.batcher.batches == 2
        assert wait_until(lambda: server.batcher.generations == 2, timeout=10)
        assert time.monotonic() - left < 3.0  # well before the 4 s a full generation takes
        assert server.batcher.cancelled == 2
        assert wait_until(lambda: server.admission.in_flight == 0)


def test_batcher_cancels_queued_jobs_and_fails_them_on_stop(checkpoint):
    model = slow_model(checkpoint, STEP_S)
    conversation = Conversation([Message("user", [Text("Hello!")])], model.system)

    async def scenario():
        batcher = Batcher(model, max_batch_size=1)
        batcher.start()
        running_job, queued, last = (Job(conversation, GenerationKey(30)) for _ in range(3))
        futures = [batcher.submit(job) for job in (running_job, queued, last)]
        await asyncio.sleep(0.1)
        batcher.cancel(queued)
        assert futures[1].cancelled() and batcher.queued == 1
        generation = await futures[0]
        assert generation.reply.ids and generation.speech is None
        await batcher.stop()
        return futures[2]

    stopped = asyncio.run(scenario())
    assert stopped.done() and "shutting down" in str(stopped.exception())


def test_spoken_reply_uses_the_reply_speech_or_speaks_the_text(checkpoint):
    model = AnySeq.from_pretrained(checkpoint)
    conversation = Conversation([Message("user", [Text("Would you kindly read this text out loud")])], None)

    async def scenario():
        batcher = Batcher(model)
        batcher.start()
        forced = batcher.submit(
            Job(conversation, GenerationKey(60, seed=0), respond_with="speech", speak=True)
        )
        spoken = batcher.submit(Job(conversation, GenerationKey(4, seed=0), speak=True))
        results = await asyncio.gather(forced, spoken)
        await batcher.stop()
        return results

    forced, spoken = asyncio.run(scenario())
    assert forced.speech is forced.reply.media[0]  # the reply's own speech span
    assert forced.completion_tokens == len(forced.reply.ids)
    assert not [m for m in spoken.reply.media if m.modality == "speech"]
    assert spoken.speech is not None and spoken.speech.modality == "speech"  # the text, spoken after
    assert spoken.completion_tokens == len(spoken.reply.ids) + spoken.speech.codes.numel() + 2
