"""Request and response models of the OpenAI-compatible API; FastAPI derives the OpenAPI schema.

They follow OpenAI's chat completions API: messages whose content is a string or a list
of `text`, `image_url` and `input_audio` parts; `modalities` and `audio: {voice,
format}` ask for spoken replies; the reply's audio is `message.audio` (base64) and its
images are `image_url` parts with data URLs. Two extensions, both optional:
`input_audio.modality` ("speech", the default, or "music"), and "image" in
`modalities` (a reply may then contain images). Unknown fields are ignored, as OpenAI
clients send fields a server may not know.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

OutputModality = Literal["text", "audio", "image"]
AudioFormat = Literal["wav", "flac"]
FinishReason = Literal["stop", "length"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---- content parts --------------------------------------------------------------------------
class TextPart(_Model):
    type: Literal["text"]
    text: str


class ImageURL(_Model):
    url: str = Field(description="a data: URL (data:image/png;base64,...); http(s) only when enabled")
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Model):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(_Model):
    data: str = Field(description="base64 of a WAV or FLAC file")
    format: AudioFormat
    modality: Literal["speech", "music"] = Field("speech", description="AnySeq extension")


class AudioPart(_Model):
    type: Literal["input_audio"]
    input_audio: InputAudio


ContentPart = Annotated[TextPart | ImagePart | AudioPart, Field(discriminator="type")]
OutputPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


# ---- request -----------------------------------------------------------------------------------
class AudioReference(_Model):
    id: str = Field(description="the id of an earlier reply's audio")


class ChatMessage(_Model):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    audio: AudioReference | None = None  # an assistant turn that was spoken


class AudioOptions(_Model):
    voice: str = Field("default", description="'default', an OpenAI voice name, or a voice of --voices")
    format: AudioFormat = "wav"


class StreamOptions(_Model):
    include_usage: bool = False


class ChatCompletionRequest(_Model):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    modalities: list[OutputModality] | None = None
    audio: AudioOptions | None = None
    seed: int | None = Field(None, ge=0, lt=2**63)

    @property
    def output_modalities(self) -> set[str]:
        return set(self.modalities or ["text"]) | ({"audio"} if self.audio is not None else set())

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


# ---- response ----------------------------------------------------------------------------------
class ReplyAudio(_Model):
    id: str
    data: str = Field(description="base64 audio in the requested format")
    expires_at: int = Field(description="unix time after which the id can no longer be sent back")
    transcript: str


class AssistantMessage(_Model):
    role: Literal["assistant"] = "assistant"
    content: str | list[OutputPart] | None = None
    audio: ReplyAudio | None = None
    refusal: None = None


class Choice(_Model):
    index: int
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class Usage(_Model):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(_Model):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class Delta(_Model):
    role: Literal["assistant"] | None = None
    content: str | None = None
    audio: ReplyAudio | None = None


class ChunkChoice(_Model):
    index: int
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(_Model):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ModelCard(_Model):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "anyseq"
    modalities: list[str] = Field(description="AnySeq extension: the modalities the model reads and writes")
    context_length: int


class ModelList(_Model):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(_Model):
    status: Literal["ok"] = "ok"
    model: str
    in_flight: int = Field(description="requests admitted and not yet answered")
    queued: int = Field(description="generations waiting for the model")
    batches: int = Field(description="batches generated since start")
    generations: int = Field(description="generations finished since start")
    cancelled: int = Field(description="generations dropped because their client left")
    largest_batch: int


class ErrorDetail(_Model):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorResponse(_Model):
    error: ErrorDetail
