"""The batching queue: requests that arrive together are generated together by `chat_batch`.

One model, one worker thread. The first waiting request opens a batch and waits up to
`max_wait_s` for others with the same generation settings (token budget, sampling
overrides, voice); while a batch generates, new requests queue up and form the next
one, so under load batches fill without any waiting. `max_batch_size=1` turns batching
off. A request with a seed runs alone, so the same seed gives the same reply (the
reply `AnySeq.chat` gives with that seed).

A request whose client leaves is cancelled: dropped from the queue, or, if it is
generating, `should_stop` ends the batch's generation once every request of the batch
is cancelled (the others of a mixed batch run to their end, as the batch is one
forward pass).

Spoken replies (AnyGPT writes a spoken reply's text, then its speech): the reply's own
speech span when it has one, otherwise the reply's text spoken by the model's TTS task,
in the request's voice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from anyseq.api import AnySeq, MediaOutput, Reply
from anyseq.conversation import Conversation, Part, Text
from anyseq.sampling import SamplingConfig
from anyseq.serve.errors import ApiError

log = logging.getLogger(__name__)
SPEECH = "speech"


@dataclass(frozen=True)
class GenerationKey:
    """Requests are batched together only when all of these agree."""

    max_new_tokens: int
    temperature: float | None = None  # None: the checkpoint's text sampling
    top_p: float | None = None
    voice: str | None = None  # a voice prompt file for spoken replies
    seed: int | None = None

    def sampling(self, text: SamplingConfig) -> dict[str, SamplingConfig] | None:
        """The "text" sampling override, or None to keep the checkpoint's settings."""
        given = {"temperature": self.temperature, "top_p": self.top_p}
        overrides = {name: value for name, value in given.items() if value is not None}
        return {"text": replace(text, **overrides)} if overrides else None


@dataclass(eq=False)
class Job:
    """One reply to generate; `on_text` receives its text parts as they finish (in the event loop)."""

    conversation: Conversation
    key: GenerationKey
    respond_with: str | None = None
    speak: bool = False
    on_text: Callable[[str], None] | None = None
    cancelled: bool = False
    future: asyncio.Future[Generation] | None = None


@dataclass
class Generation:
    reply: Reply
    speech: MediaOutput | None  # the spoken reply, when the job asked for one and it was made
    completion_tokens: int


class Batcher:
    """Queue of jobs -> batches -> `AnySeq.chat_batch` on one worker thread."""

    def __init__(self, model: AnySeq, max_batch_size: int = 16, max_wait_s: float = 0.005) -> None:
        if max_batch_size < 1 or max_wait_s < 0:
            raise ValueError(
                f"max_batch_size must be >= 1 and max_wait_s >= 0, got {max_batch_size}, {max_wait_s}"
            )
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._pending: deque[Job] = deque()
        self._running: list[Job] = []
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="anyseq-generate")
        self._stopping = False
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.batches = self.generations = self.cancelled = self.largest_batch = 0

    @property
    def queued(self) -> int:
        return len(self._pending)

    # ---- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="anyseq-batcher")

    async def stop(self) -> None:
        """Stop generating (a running batch ends at its next step); unfinished jobs fail with 503."""
        self._stopping = True
        unfinished = [*self._running, *self._pending]
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
        for job in unfinished:
            if job.future is not None and not job.future.done():
                job.future.set_exception(ApiError(503, "the server is shutting down", "shutting_down"))
        self._pending.clear()

    # ---- jobs ------------------------------------------------------------------------------
    def submit(self, job: Job) -> asyncio.Future[Generation]:
        if self._wakeup is None or self._stopping:
            raise ApiError(503, "the generation queue is not running", "not_running")
        job.future = asyncio.get_running_loop().create_future()
        self._pending.append(job)
        self._wakeup.set()
        return job.future

    def cancel(self, job: Job) -> None:
        """The client left: drop the job if queued, else let its batch stop early."""
        if job.cancelled or (job.future is not None and job.future.done()):
            return
        job.cancelled = True
        self.cancelled += 1
        if job in self._pending:
            self._pending.remove(job)
        if job.future is not None:
            job.future.cancel()

    # ---- the loop --------------------------------------------------------------------------
    def _batchable(self, key: GenerationKey) -> int:
        return sum(job.key == key for job in self._pending)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            key = self._pending[0].key
            deadline = loop.time() + self.max_wait_s
            while key.seed is None and self._batchable(key) < self.max_batch_size:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take(key)
            if batch:
                await self._run(batch)

    def _take(self, key: GenerationKey) -> list[Job]:
        size = 1 if key.seed is not None else self.max_batch_size
        batch = [job for job in self._pending if job.key == key][:size]
        for job in batch:
            self._pending.remove(job)
        return batch

    async def _run(self, batch: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        self._running = batch
        try:
            results = await loop.run_in_executor(self._executor, self._generate, batch, loop)
        except Exception as error:  # a bug, not bad input (requests are checked before they queue)
            log.exception("a batch of %d failed", len(batch))
            results = [error] * len(batch)
        finally:
            self._running = []
        for job, result in zip(batch, results, strict=True):
            self.generations += 1
            if job.future is None or job.future.done():
                continue
            if isinstance(result, Exception):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)

    # ---- on the worker thread ------------------------------------------------------------------
    def _generate(self, batch: list[Job], loop: asyncio.AbstractEventLoop) -> list[Generation]:
        key = batch[0].key

        def on_part(index: int, part: Part) -> None:
            job = batch[index]
            if job.on_text is not None and isinstance(part, Text) and not job.cancelled:
                loop.call_soon_threadsafe(job.on_text, part.text)

        replies = self.model.chat_batch(
            [job.conversation for job in batch],
            respond_with=[job.respond_with for job in batch],
            voice=key.voice,
            max_new_tokens=key.max_new_tokens,
            seed=key.seed,
            sampling=key.sampling(self.model.checkpoint.sampling["text"]),
            on_part=on_part,
            should_stop=lambda: self._stopping or all(job.cancelled for job in batch),
        )
        return [self._finish(job, reply) for job, reply in zip(batch, replies, strict=True)]

    def _finish(self, job: Job, reply: Reply) -> Generation:
        tokens = len(reply.ids)
        if not job.speak or job.cancelled:
            return Generation(reply, None, tokens)
        spoken = [media for media in reply.media if media.modality == SPEECH]
        if spoken:
            return Generation(reply, spoken[0], tokens)
        try:
            speech = self.model.speak(
                reply.text,
                voice=job.key.voice,
                max_new_tokens=self.model.layout.spec(SPEECH).max_span_tokens + 1,
                seed=job.key.seed,
                should_stop=lambda: self._stopping or job.cancelled,
            )
        except RuntimeError as error:  # the speech span did not close within the context
            log.warning("no spoken reply: %s", error)
            return Generation(reply, None, tokens)
        return Generation(reply, speech, tokens + speech.codes.numel() + 2)
