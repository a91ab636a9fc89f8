"""OpenAI chat messages <-> AnySeq conversations, and the policy for what a reply contains.

In: system and developer messages become the conversation's system line; user and
assistant content parts become `Text` and `Media` parts (`image_url` -> image,
`input_audio` -> speech, or music with the `modality` extension); an assistant turn that
sends back an earlier reply's `audio.id` gets that reply's speech codes again (AnyGPT's
spoken turn: text, then speech). Media is read in two steps: `read_request` decodes
base64 and checks headers (no pixel or sample is decoded), `encode_media` tokenizes.

Reply policy (what the model is asked to write):
- `modalities` has "audio": the model replies as it likes, and the reply is spoken;
  the speech is the reply's own speech span when it wrote one, else its text spoken by
  the TTS task (see batching.py). `message.audio.transcript` and `content` both hold
  the text.
- `modalities` has "image" and the last user message asks for a picture (DRAW_REQUEST):
  the reply is opened as an image span (`respond_with="image"`).
- Media the request did not ask for (images without "image", speech without "audio",
  music always: OpenAI has no slot for it) is left out of the reply.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import torch
from PIL import Image

from anyseq.conversation import Conversation, Media, Message, Part, Text
from anyseq.media import MediaError
from anyseq.modalities.base import ModalityTokenizer
from anyseq.serve.batching import SPEECH, Generation
from anyseq.serve.errors import ApiError
from anyseq.serve.limits import (
    Limits,
    base64_bytes,
    check_audio_header,
    check_image_header,
    check_media_count,
    data_url_bytes,
)
from anyseq.serve.schemas import (
    AssistantMessage,
    AudioPart,
    ChatCompletionRequest,
    ImagePart,
    ImageURL,
    ReplyAudio,
    TextPart,
)
from anyseq.vocab import VocabLayout

IMAGE = "image"
DRAW_REQUEST = re.compile(
    r"\b(draw|paint|sketch|illustrate|(generate|create|make|render) (an? |the )?(image|picture|drawing))\b",
    re.IGNORECASE,
)
IMAGE_MIME = "image/png"
Fetch = Callable[[str, str], Awaitable[bytes]]  # (url, param) -> bytes


@dataclass
class StoredAudio:
    expires_at: int
    transcript: str
    codes: torch.Tensor  # [K, T] speech codes


class AudioStore:
    """Spoken replies by id, so that a later turn can send `{"audio": {"id": ...}}` back."""

    def __init__(self, ttl_s: int, capacity: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.capacity = capacity
        self._items: OrderedDict[str, StoredAudio] = OrderedDict()

    def put(self, transcript: str, codes: torch.Tensor) -> tuple[str, int]:
        audio_id = "audio_" + secrets.token_hex(12)
        expires_at = int(time.time()) + self.ttl_s
        self._items[audio_id] = StoredAudio(expires_at, transcript, codes)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return audio_id, expires_at

    def get(self, audio_id: str) -> StoredAudio | None:
        item = self._items.get(audio_id)
        if item is not None and item.expires_at < time.time():
            del self._items[audio_id]
            return None
        return item


@dataclass
class ReadRequest:
    conversation: Conversation
    media: list[tuple[str, Media]]  # (param, media whose source still has to be tokenized)


def _media_params(request: ChatCompletionRequest) -> list[str]:
    return [
        f"messages[{m}].content[{p}]"
        for m, message in enumerate(request.messages)
        if isinstance(message.content, list)
        for p, part in enumerate(message.content)
        if not isinstance(part, TextPart)
    ]


def _require(modality: str, tokenizers: Mapping[str, ModalityTokenizer], param: str) -> None:
    if modality not in tokenizers:
        raise ApiError(
            400,
            f"{param}: this model reads no {modality} (it has {sorted(tokenizers)})",
            "unsupported_modality",
            param,
        )


async def _image_bytes(url: str, param: str, fetch: Fetch | None) -> bytes:
    if url.startswith("data:"):
        return data_url_bytes(url, param)
    if url.startswith(("http://", "https://")):
        if fetch is None:
            raise ApiError(
                400,
                f"{param}: remote image URLs are disabled on this server; send a data: URL",
                "remote_media_disabled",
                param,
            )
        return await fetch(url, param)
    raise ApiError(400, f"{param}: expected a data: or http(s) URL", "invalid_image_url", param)


def image_media(data: bytes, param: str, limits: Limits) -> Media:
    """An image part from its bytes, its header checked (the pixels are decoded when tokenized)."""
    check_image_header(data, param, limits.max_image_pixels)
    return Media(IMAGE, source=data)


def audio_media(data: bytes, audio_format: str, modality: str, param: str, limits: Limits) -> Media:
    """A speech or music part from WAV/FLAC bytes, its header checked."""
    check_audio_header(data, audio_format, param, limits.max_audio_seconds)
    return Media(modality, source=data)


async def read_request(
    request: ChatCompletionRequest,
    tokenizers: Mapping[str, ModalityTokenizer],
    limits: Limits,
    audio_store: AudioStore,
    default_system: str | None,
    fetch: Fetch | None = None,
) -> ReadRequest:
    """The request as a conversation whose media are checked bytes (not yet decoded)."""
    check_media_count(_media_params(request), limits.max_media_per_request)
    system: list[str] = []
    messages: list[Message] = []
    media: list[tuple[str, Media]] = []
    for m, message in enumerate(request.messages):
        content = message.content or []
        if isinstance(content, str):
            content = [TextPart(type="text", text=content)]
        if message.role in ("system", "developer"):
            if any(not isinstance(part, TextPart) for part in content):
                raise ApiError(
                    400,
                    f"messages[{m}]: a {message.role} message holds text only",
                    "invalid_content",
                    f"messages[{m}]",
                )
            system.append("".join(part.text for part in content))
            continue
        parts: list[Part] = []
        for p, part in enumerate(content):
            param = f"messages[{m}].content[{p}]"
            if isinstance(part, TextPart):
                parts.append(Text(part.text))
            elif isinstance(part, ImagePart):
                _require(IMAGE, tokenizers, param)
                data = await _image_bytes(part.image_url.url, param, fetch)
                media.append((param, image_media(data, param, limits)))
                parts.append(media[-1][1])
            elif isinstance(part, AudioPart):
                audio = part.input_audio
                _require(audio.modality, tokenizers, param)
                data = base64_bytes(audio.data, param + ".input_audio.data")
                media.append((param, audio_media(data, audio.format, audio.modality, param, limits)))
                parts.append(media[-1][1])
        if message.role == "assistant" and message.audio is not None:
            parts += _spoken_turn(message.audio.id, audio_store, f"messages[{m}].audio.id", bool(parts))
        if not parts:
            raise ApiError(400, f"messages[{m}]: the message is empty", "empty_message", f"messages[{m}]")
        messages.append(Message(message.role, parts))
    if not messages or messages[-1].role != "user":
        raise ApiError(400, "the last message must be the user's", "invalid_messages", "messages")
    return ReadRequest(Conversation(messages, "\n".join(system) if system else default_system), media)


def _spoken_turn(audio_id: str, store: AudioStore, param: str, has_text: bool) -> list[Part]:
    stored = store.get(audio_id)
    if stored is None:
        raise ApiError(
            400, f"{param}: audio {audio_id!r} is unknown or has expired", "audio_not_found", param
        )
    return ([] if has_text else [Text(stored.transcript)]) + [Media(SPEECH, codes=stored.codes)]


def placeholder_conversation(conversation: Conversation, layout: VocabLayout) -> Conversation:
    """Media not yet tokenized replaced by its shortest span: renders to a lower bound of the prompt."""

    def shortest(part: Part) -> Part:
        if not isinstance(part, Media) or part.codes is not None:
            return part
        spec = layout.spec(part.modality)
        frames = spec.tokens_per_item // spec.num_codebooks if spec.tokens_per_item else 1
        return Media(part.modality, codes=torch.zeros(spec.num_codebooks, frames, dtype=torch.long))

    messages = [Message(m.role, [shortest(p) for p in m.content]) for m in conversation.messages]
    return Conversation(messages, conversation.system)


async def encode_media(media: list[tuple[str, Media]], tokenizers: Mapping[str, ModalityTokenizer]) -> None:
    """Tokenize every media source (off the event loop); bad media is a 400 naming its part."""

    def encode() -> None:
        for param, part in media:
            try:
                part.resolve(tokenizers)
            except (MediaError, ValueError) as error:
                raise ApiError(400, f"{param}: {error}", "invalid_media", param) from error

    await asyncio.to_thread(encode)


def respond_with(conversation: Conversation, wanted: set[str], available: set[str]) -> str | None:
    """The modality the reply is opened with (see the module docstring), or None."""
    last = " ".join(p.text for p in conversation.messages[-1].content if isinstance(p, Text))
    return IMAGE if IMAGE in wanted and IMAGE in available and DRAW_REQUEST.search(last) else None


def image_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return f"data:{IMAGE_MIME};base64," + base64.b64encode(buffer.getvalue()).decode()


def assistant_message(
    generation: Generation, modalities: set[str], audio_format: str, store: AudioStore
) -> AssistantMessage:
    """The reply as OpenAI's assistant message: text, images as data-URL parts, audio."""
    parts: list[TextPart | ImagePart] = []
    for part in generation.reply.parts:
        if isinstance(part, str):
            if part.strip():
                parts.append(TextPart(type="text", text=part.strip()))
        elif part.modality == IMAGE and IMAGE in modalities:
            parts.append(ImagePart(type="image_url", image_url=ImageURL(url=image_data_url(part.content))))
    text = generation.reply.text
    audio = None
    if generation.speech is not None:
        audio_id, expires_at = store.put(text, generation.speech.codes)
        data = generation.speech.content.to_bytes(audio_format.upper())
        audio = ReplyAudio(
            id=audio_id, data=base64.b64encode(data).decode(), expires_at=expires_at, transcript=text
        )
    has_images = any(isinstance(part, ImagePart) for part in parts)
    return AssistantMessage(content=parts if has_images else text or None, audio=audio)
