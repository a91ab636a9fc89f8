"""Request limits, enforced while the request is read and before any media is decoded.

A chat request can carry megabytes of base64 media; each limit is checked at the
cheapest point that can see it, so a bad request costs little:
- request size: while the body is read (`BodyLimit` stops reading at the limit);
- media per request: on the parsed JSON, before base64 decoding;
- image pixels: from the image header, before the pixels are decoded;
- audio duration and format: from the WAV/FLAC header, before the samples are read;
- prompt + max_tokens within the context: a lower bound before the media is
  tokenized, then exactly on the rendered prompt;
- concurrency: a request beyond `max_concurrency` in flight is answered 429 at once.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass

import soundfile
from PIL import Image, UnidentifiedImageError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anyseq.media import MAX_IMAGE_PIXELS
from anyseq.serve.errors import ApiError, error_response

DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,", re.ASCII)


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 16 * 2**20  # the whole HTTP body
    max_media_per_request: int = 8  # image_url + input_audio parts over all messages
    max_image_pixels: int = MAX_IMAGE_PIXELS  # width x height, read from the header
    max_audio_seconds: float = 30.0  # per input_audio part, read from the header
    max_choices: int = 4  # `n`

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {value}")


class BodyLimit:
    """ASGI middleware: reads the body of requests under `prefix`, answering 413 past `max_bytes`.

    The declared Content-Length is refused before reading; a chunked body is counted as
    it arrives and reading stops at the first byte over the limit. The body read is
    replayed to the app, then `receive` is handed through (so disconnects still arrive).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, prefix: str = "/v1/") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.prefix = prefix

    def _too_large(self, size: str) -> ApiError:
        return ApiError(
            413,
            f"request body of {size} exceeds the limit of {self.max_bytes} bytes",
            "request_too_large",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(self._too_large(f"{int(declared)} bytes"))(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left while sending
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await error_response(self._too_large(f"more than {size - 1} bytes"))(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)


class Admission:
    """Counts requests in flight; past `limit`, `enter` raises a 429 ApiError."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {limit}")
        self.limit = limit
        self.in_flight = 0

    def enter(self) -> Slot:
        if self.in_flight >= self.limit:
            raise ApiError(
                429,
                f"{self.in_flight} requests are in flight, the limit is {self.limit}; retry shortly",
                "rate_limit_exceeded",
            )
        self.in_flight += 1
        return Slot(self)


class Slot:
    """One admitted request; `release` may be called more than once (stream ends and disconnects)."""

    def __init__(self, admission: Admission) -> None:
        self._admission: Admission | None = admission

    def release(self) -> None:
        if self._admission is not None:
            self._admission.in_flight -= 1
            self._admission = None


def base64_bytes(data: str, param: str) -> bytes:
    """Decode base64 text (its size is already bounded by the request size)."""
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ApiError(400, f"{param}: not valid base64 ({error})", "invalid_base64", param) from error
    if not decoded:
        raise ApiError(400, f"{param}: the media is empty", "invalid_media", param)
    return decoded


def data_url_bytes(url: str, param: str, kind: str = "image") -> bytes:
    """`data:image/png;base64,...` -> bytes; the media type must be `kind/*`."""
    match = DATA_URL.match(url)
    if match is None:
        raise ApiError(
            400, f"{param}: expected a data URL 'data:{kind}/...;base64,...'", "invalid_data_url", param
        )
    mime = match["mime"] or ""
    if not mime.startswith(f"{kind}/"):
        raise ApiError(400, f"{param}: media type {mime!r} is not {kind}/*", "invalid_data_url", param)
    return base64_bytes(url[match.end() :], param)


def check_media_count(params: Iterable[str], limit: int) -> None:
    params = list(params)
    if len(params) > limit:
        raise ApiError(
            400,
            f"the request has {len(params)} media parts ({', '.join(params[:3])}, ...); the limit is {limit}",
            "too_many_media",
        )


def check_image_header(data: bytes, param: str, max_pixels: int) -> None:
    """Read only the header: refuse unreadable images and more than `max_pixels` pixels."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        reason = "unknown format" if isinstance(error, UnidentifiedImageError) else str(error)
        raise ApiError(400, f"{param}: not a readable image ({reason})", "invalid_image", param) from error
    if width * height > max_pixels:
        raise ApiError(
            400,
            f"{param}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}",
            "image_too_large",
            param,
        )


def check_audio_header(data: bytes, audio_format: str, param: str, max_seconds: float) -> None:
    """Read only the header: the container must be `audio_format` and at most `max_seconds` long."""
    try:
        info = soundfile.info(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise ApiError(
            400, f"{param}: not a readable {audio_format} file ({error})", "invalid_audio", param
        ) from error
    if info.format.lower() != audio_format:
        raise ApiError(
            400,
            f"{param}: the data is {info.format}, but format says {audio_format!r}",
            "invalid_audio",
            param,
        )
    if info.frames == 0 or info.samplerate <= 0:
        raise ApiError(400, f"{param}: the audio has no samples", "invalid_audio", param)
    if info.duration > max_seconds:
        raise ApiError(
            400,
            f"{param}: {info.duration:.2f} s of audio exceeds the limit of {max_seconds} s",
            "audio_too_long",
            param,
        )


def check_context(prompt_tokens: int, max_tokens: int, context: int, exact: bool = True) -> None:
    """prompt + max_tokens must fit the model's context (OpenAI's context_length_exceeded)."""
    if prompt_tokens + max_tokens > context:
        at_least = "" if exact else "at least "
        raise ApiError(
            400,
            f"this model's maximum context length is {context} tokens; the request needs {at_least}"
            f"{prompt_tokens + max_tokens} ({at_least}{prompt_tokens} in the messages, {max_tokens} "
            "in the completion); shorten the messages or lower max_tokens",
            "context_length_exceeded",
            "messages",
        )
