"""The FastAPI app: AnyGPT's any-to-any chat behind the OpenAI chat completions API.

    POST /v1/chat/completions   text, images and audio in; text, images and speech out;
                                `stream: true` sends the text as server-sent events, each
                                text part as the engine finishes it (a spoken reply's text
                                arrives before its speech is generated)
    GET  /v1/models, /v1/models/{id}, /health, /openapi.json, /docs
    /ui                         the web chat (ui.py), when `settings.ui`

A request is admitted (or answered 429), read under the limits of limits.py, turned into
a conversation (messages.py), tokenized, checked against the context, and queued for
the batcher (batching.py), which generates requests that arrive together in one batch.
A client that disconnects cancels its generation: a streaming response notices when
the connection drops, a plain one polls for the disconnect while it waits.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.types import Receive, Scope, Send

from anyseq import __version__
from anyseq.api import AnySeq
from anyseq.serve.batching import SPEECH, Batcher, Generation, GenerationKey, Job
from anyseq.serve.errors import ApiError, error_body, install_error_handlers
from anyseq.serve.limits import Admission, BodyLimit, Slot, check_context
from anyseq.serve.messages import (
    IMAGE,
    AudioStore,
    ReadRequest,
    assistant_message,
    encode_media,
    placeholder_conversation,
    read_request,
    respond_with,
)
from anyseq.serve.remote import fetch
from anyseq.serve.schemas import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    ErrorResponse,
    Health,
    ModelCard,
    ModelList,
    Usage,
)
from anyseq.serve.settings import ServeSettings

# OpenAI's built-in voice names: clients send them by habit; they mean the model's default voice.
OPENAI_VOICES = frozenset(
    "alloy ash ballad coral echo fable nova onyx sage shimmer verse marin cedar".split()
)
# OpenAI output modality -> the AnySeq modality that writes it
WRITERS = {"audio": SPEECH, "image": IMAGE}
DISCONNECT_POLL_S = 0.05
FINISH_REASONS = {"eom": "stop", "eos": "stop", "length": "length"}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "invalid request (the message names the input and the limit)"),
        (404, "unknown model"),
        (413, "request body too large"),
        (429, "too many requests in flight"),
    )
}


@dataclass
class Prepared:
    """A checked, tokenized request, ready to queue."""

    read: ReadRequest
    key: GenerationKey
    respond_with: str | None
    speak: bool
    modalities: set[str]
    audio_format: str
    prompt_tokens: int


@dataclass
class Server:
    """What the routes and the web UI share: the model, the queue, the limits."""

    model: AnySeq
    settings: ServeSettings
    name: str
    batcher: Batcher
    admission: Admission
    audio_store: AudioStore
    voices: dict[str, Path] = field(default_factory=dict)
    started: int = field(default_factory=lambda: int(time.time()))

    # ---- requests -> jobs --------------------------------------------------------------------
    def voice(self, name: str) -> str | None:
        """A voice name -> the voice prompt file (None: the model's default voice)."""
        if name in self.voices:
            return str(self.voices[name])
        if name == "default" or name in OPENAI_VOICES:
            return None
        known = ", ".join(["default", *self.voices])
        raise ApiError(
            400, f"audio.voice: unknown voice {name!r}; known: {known}", "unknown_voice", "audio.voice"
        )

    def check_model(self, name: str, param: str | None = None) -> None:
        if name != self.name:
            raise ApiError(
                404, f"model {name!r} does not exist; this server has {self.name!r}", "model_not_found", param
            )

    async def prepare(self, body: ChatCompletionRequest) -> Prepared:
        self.check_model(body.model, "model")
        if body.n > self.settings.limits.max_choices:
            raise ApiError(
                400,
                f"n={body.n} exceeds the limit of {self.settings.limits.max_choices}",
                "too_many_choices",
                "n",
            )
        tokenizers = self.model.tokenizers
        wanted = body.output_modalities
        for name, modality in WRITERS.items():
            if name in wanted and modality not in tokenizers:
                raise ApiError(
                    400, f"modalities: this model writes no {modality}", "unsupported_modality", "modalities"
                )
        if body.stream and IMAGE in wanted:
            raise ApiError(
                400, "image replies are not streamed; send stream: false", "unsupported_stream", "stream"
            )
        audio_format = body.audio.format if body.audio else "wav"
        voice = self.voice(body.audio.voice if body.audio else "default")
        fetcher = (
            partial(
                fetch,
                max_bytes=self.settings.limits.max_request_bytes,
                timeout_s=self.settings.remote_timeout_s,
            )
            if self.settings.allow_remote_media
            else None
        )
        read = await read_request(
            body, tokenizers, self.settings.limits, self.audio_store, self.model.system, fetcher
        )
        respond = respond_with(read.conversation, wanted, set(tokenizers))
        prompt_tokens, max_tokens = await self.tokenize(read, respond, body.token_limit)
        key = GenerationKey(max_tokens, body.temperature, body.top_p, voice, body.seed)
        return Prepared(read, key, respond, "audio" in wanted, wanted, audio_format, prompt_tokens)

    async def tokenize(
        self, read: ReadRequest, respond: str | None, max_tokens: int | None
    ) -> tuple[int, int]:
        """Tokenize the media, checking the context before (a lower bound) and after (exactly).

        Returns the prompt's length and the reply's token budget: `max_tokens`, or the
        default cut to what the context leaves.
        """
        context = self.model.context_length
        try:
            placeholder = placeholder_conversation(read.conversation, self.model.layout)
            check_context(
                len(self.model.prompt_ids(placeholder, respond)), max_tokens or 1, context, exact=False
            )
            await encode_media(read.media, self.model.tokenizers)
            prompt_tokens = len(self.model.prompt_ids(read.conversation, respond))
        except ValueError as error:  # e.g. an assistant's media span longer than its modality allows
            raise ApiError(400, f"messages: {error}", "invalid_messages", "messages") from error
        if max_tokens is None:
            max_tokens = max(1, min(self.settings.default_max_tokens, context - prompt_tokens))
        check_context(prompt_tokens, max_tokens, context)
        return prompt_tokens, max_tokens

    def jobs(self, prepared: Prepared, n: int) -> list[Job]:
        """`n` choices; with a seed, choice i uses seed + i (the same seed would repeat one reply)."""
        key = prepared.key
        keys = [key if key.seed is None else replace(key, seed=key.seed + i) for i in range(n)]
        return [Job(prepared.read.conversation, k, prepared.respond_with, prepared.speak) for k in keys]

    async def generate(self, request: Request, jobs: list[Job]) -> list[Generation] | None:
        """Wait for the jobs; None when the client left first (the jobs are then cancelled)."""
        gathered = asyncio.gather(*(self.batcher.submit(job) for job in jobs))
        while True:
            done, _ = await asyncio.wait({gathered}, timeout=DISCONNECT_POLL_S)
            if done:
                return gathered.result()
            if await request.is_disconnected():
                for job in jobs:
                    self.batcher.cancel(job)
                await asyncio.gather(gathered, return_exceptions=True)
                return None

    # ---- jobs -> responses -------------------------------------------------------------------
    def completion(self, prepared: Prepared, generations: list[Generation]) -> ChatCompletion:
        choices = [
            Choice(
                index=index,
                message=assistant_message(
                    generation, prepared.modalities, prepared.audio_format, self.audio_store
                ),
                finish_reason=FINISH_REASONS[generation.reply.finish_reason],
            )
            for index, generation in enumerate(generations)
        ]
        usage = usage_of(prepared.prompt_tokens, sum(g.completion_tokens for g in generations))
        return ChatCompletion(
            id=completion_id(), created=int(time.time()), model=self.name, choices=choices, usage=usage
        )

    async def stream(
        self, body: ChatCompletionRequest, prepared: Prepared, jobs: list[Job], slot: Slot
    ) -> AsyncIterator[str]:
        """Server-sent events: a role chunk, text deltas, the audio, a finish chunk per choice."""
        events: asyncio.Queue[tuple[int, str | asyncio.Future]] = asyncio.Queue()
        chunk = partial(ChatCompletionChunk, id=completion_id(), created=int(time.time()), model=self.name)
        try:
            for index, job in enumerate(jobs):
                job.on_text = partial(lambda i, text: events.put_nowait((i, text)), index)
                self.batcher.submit(job).add_done_callback(
                    partial(lambda i, f: events.put_nowait((i, f)), index)
                )
            for index in range(len(jobs)):
                yield sse(
                    chunk(choices=[ChunkChoice(index=index, delta=Delta(role="assistant", content=""))])
                )
            remaining, completion_tokens = len(jobs), 0
            while remaining:
                index, event = await events.get()
                if isinstance(event, str):
                    yield sse(chunk(choices=[ChunkChoice(index=index, delta=Delta(content=event))]))
                    continue
                remaining -= 1
                generation: Generation = event.result()
                completion_tokens += generation.completion_tokens
                message = assistant_message(
                    generation, prepared.modalities, prepared.audio_format, self.audio_store
                )
                if message.audio is not None:
                    yield sse(chunk(choices=[ChunkChoice(index=index, delta=Delta(audio=message.audio))]))
                reason = FINISH_REASONS[generation.reply.finish_reason]
                yield sse(chunk(choices=[ChunkChoice(index=index, delta=Delta(), finish_reason=reason)]))
            if body.stream_options and body.stream_options.include_usage:
                yield sse(chunk(choices=[], usage=usage_of(prepared.prompt_tokens, completion_tokens)))
            yield "data: [DONE]\n\n"
        except ApiError as error:  # the server is stopping: tell the client in the stream
            yield f"data: {json.dumps(error_body(error.status, error.message, error.code))}\n\n"
        finally:
            for job in jobs:
                self.batcher.cancel(job)
            slot.release()

    def health(self) -> Health:
        b = self.batcher
        return Health(
            model=self.name,
            in_flight=self.admission.in_flight,
            queued=b.queued,
            batches=b.batches,
            generations=b.generations,
            cancelled=b.cancelled,
            largest_batch=b.largest_batch,
        )

    def card(self) -> ModelCard:
        return ModelCard(
            id=self.name,
            created=self.started,
            modalities=["text", *self.model.modalities],
            context_length=self.model.context_length,
        )


class ClosingStreamingResponse(StreamingResponse):
    """Closes its generator when the response ends, also when the client left mid-stream, so the
    generator's cleanup (cancelling the generation) runs at once rather than when it is collected."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()


def usage_of(prompt_tokens: int, completion_tokens: int) -> Usage:
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def sse(chunk: ChatCompletionChunk) -> str:
    return f"data: {chunk.model_dump_json()}\n\n"


def create_app(model: AnySeq | str | Path, settings: ServeSettings | None = None) -> FastAPI:
    """The server for a checkpoint directory (or a loaded model)."""
    settings = settings or ServeSettings()
    name = settings.model_name
    if not isinstance(model, AnySeq):
        name = name or Path(model).resolve().name
        model = AnySeq.from_pretrained(model)
    server = Server(
        model=model,
        settings=settings,
        name=name or "anyseq",
        batcher=Batcher(model, settings.max_batch_size, settings.batch_wait_ms / 1000),
        admission=Admission(settings.max_concurrency),
        audio_store=AudioStore(settings.audio_ttl_s),
        voices=settings.voices(),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        server.batcher.start()
        yield
        await server.batcher.stop()

    app = FastAPI(
        title="AnySeq",
        version=__version__,
        description="AnyGPT-style any-to-any chat (text, images, speech) with an OpenAI-compatible API.",
        lifespan=lifespan,
    )
    app.state.server = server
    app.add_middleware(BodyLimit, max_bytes=settings.limits.max_request_bytes)
    install_error_handlers(app)

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        return server.health()

    @app.get("/v1/models", response_model=ModelList)
    async def models() -> ModelList:
        return ModelList(data=[server.card()])

    @app.get("/v1/models/{model_id}", response_model=ModelCard, responses={404: ERRORS[404]})
    async def model_card(model_id: str) -> ModelCard:
        server.check_model(model_id)
        return server.card()

    @app.post(
        "/v1/chat/completions",
        response_model=ChatCompletion,
        responses={
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "the reply",
            },
            **ERRORS,
        },
    )
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        slot = server.admission.enter()
        try:
            prepared = await server.prepare(body)
        except BaseException:
            slot.release()
            raise
        jobs = server.jobs(prepared, body.n)
        if body.stream:
            return ClosingStreamingResponse(
                server.stream(body, prepared, jobs, slot),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
                background=BackgroundTask(slot.release),
            )
        try:
            generations = await server.generate(request, jobs)
        finally:
            slot.release()
        if generations is None:
            return Response(status_code=499)  # nobody is listening
        return server.completion(prepared, generations)

    if settings.ui:
        from anyseq.serve.ui import mount_ui

        mount_ui(app, server)
    return app
