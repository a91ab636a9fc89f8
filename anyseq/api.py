"""The Python API (the user's first contact): load a checkpoint, chat in any modality.

    model = AnySeq.from_pretrained("runs/demo/model")
    model.caption("cat.png")                    # image -> text
    model.draw("a red circle").save("c.png")    # text -> image
    model.transcribe("hello.wav")               # speech -> text
    model.speak("hello", voice="me.wav")        # text -> speech, in the prompt's voice
    model.describe_music("song.flac")           # music -> text
    model.compose("a slow cello melody")        # text -> music
    reply = model.chat(conversation)            # any-to-any, multi-turn

Every media argument accepts a path, bytes, a PIL image or an array; media outputs have
`.save(path)`. Task helpers use AnyGPT's pretraining template and instructions; `chat`
uses its chat template. Decoded speech goes through the speech tokenizer's acoustic
model, which takes the optional voice prompt (AnyGPT's SoundStorm role).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from anyseq.checkpoint import AnySeqCheckpoint, load_checkpoint
from anyseq.conversation import Conversation, Media, Message, Part, Text, render
from anyseq.generation import FinishReason, GenerationEngine
from anyseq.media import Audio
from anyseq.sampling import SamplingConfig
from anyseq.world.pretrain import INSTRUCTIONS, pair_conversation

DEFAULT_MAX_NEW_TOKENS = 512


@dataclass
class MediaOutput:
    """A generated media item: its codes and the decoded picture or sound."""

    modality: str
    codes: torch.Tensor  # [K, T]
    content: Image.Image | Audio

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.content.save(path)
        return path


@dataclass
class Reply:
    """The assistant's turn: text and decoded media, in order."""

    parts: list[str | MediaOutput]
    ids: list[int] = field(default_factory=list)
    finish_reason: FinishReason = "eom"

    @property
    def text(self) -> str:
        return "".join(p for p in self.parts if isinstance(p, str)).strip()

    @property
    def media(self) -> list[MediaOutput]:
        return [p for p in self.parts if isinstance(p, MediaOutput)]

    def to_message(self) -> Message:
        """The reply as a conversation message (media as codes), to continue the dialogue."""
        content: list[Part] = [
            Text(p) if isinstance(p, str) else Media(p.modality, codes=p.codes) for p in self.parts
        ]
        return Message("assistant", content)


class AnySeq:
    """A loaded AnySeq model: checkpoint + generation engine + modality decoders."""

    def __init__(self, checkpoint: AnySeqCheckpoint, system: str | None = None) -> None:
        self.checkpoint = checkpoint
        self.layout = checkpoint.layout
        self.tokenizers = checkpoint.tokenizers
        self.engine = GenerationEngine(checkpoint.model, checkpoint.layout, checkpoint.sampling)
        self.system = system if system is not None else checkpoint.metadata.get("system")

    @classmethod
    def from_pretrained(cls, directory: str | Path, dtype: torch.dtype | None = None) -> AnySeq:
        return cls(load_checkpoint(directory, dtype=dtype))

    @property
    def modalities(self) -> list[str]:
        return list(self.layout.ranges)

    @property
    def context_length(self) -> int:
        return self.engine.context_length

    # ---- any-to-any chat -----------------------------------------------------------------
    def prompt_ids(self, conversation: Conversation, respond_with: str | None = None) -> list[int]:
        """The rendered prompt; `respond_with` opens a span of that modality for the reply."""
        ids = render(conversation, self.layout, self.tokenizers, add_generation_prompt=True).ids.tolist()
        if respond_with is not None:
            ids += self.layout.encode_text(": ") + [self.layout.start_of(respond_with)]
        return ids

    def fit_to_context(self, conversation: Conversation, reserve: int) -> tuple[Conversation, int]:
        """Drop the oldest turns until the prompt leaves `reserve` tokens for the reply.

        Returns the trimmed conversation and how many messages were dropped; the last
        message is always kept (if it alone is too long, generation reports it).
        """
        messages = list(conversation.messages)
        dropped = 0
        while len(messages) > 1:
            trial = Conversation(messages, conversation.system)
            if len(self.prompt_ids(trial)) + reserve <= self.context_length:
                break
            messages, dropped = (
                messages[2:] if len(messages) > 2 else messages[1:],
                dropped + min(2, len(messages) - 1),
            )
        return Conversation(messages, conversation.system), dropped

    def chat_batch(
        self,
        conversations: Sequence[Conversation],
        respond_with: Sequence[str | None] | None = None,
        voice: Any = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        seed: int | None = None,
        sampling: Mapping[str, SamplingConfig] | None = None,
        on_part: Callable[[int, Part], None] | None = None,
        on_token: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Reply]:
        """One reply per conversation, generated together (left-padded batch)."""
        respond_with = respond_with or [None] * len(conversations)
        prompts = [self.prompt_ids(c, r) for c, r in zip(conversations, respond_with, strict=True)]
        engine = self.engine
        if sampling:
            engine = GenerationEngine(
                self.checkpoint.model, self.layout, {**self.checkpoint.sampling, **sampling}
            )
        results = engine.generate(
            prompts, max_new_tokens, seed=seed, on_token=on_token, on_part=on_part, should_stop=should_stop
        )
        return [Reply([self._decode(p, voice) for p in r.parts], r.ids, r.finish_reason) for r in results]

    def chat(self, conversation: Conversation | Sequence[Message], **options: Any) -> Reply:
        """The assistant's reply to a conversation (its last message is the user's)."""
        if not isinstance(conversation, Conversation):
            conversation = Conversation(list(conversation), self.system)
        respond_with = options.pop("respond_with", None)
        return self.chat_batch([conversation], [respond_with], **options)[0]

    def _decode(self, part: Part, voice: Any) -> str | MediaOutput:
        if isinstance(part, Text):
            return part.text
        tokenizer = self.tokenizers[part.modality]
        takes_voice = "voice" in inspect.signature(tokenizer.decode).parameters
        content = tokenizer.decode(part.codes, voice=voice) if takes_voice else tokenizer.decode(part.codes)
        return MediaOutput(part.modality, part.codes, content)

    # ---- the paper's tasks -----------------------------------------------------------------
    def _to_text(self, task: str, modality: str, media: Any, **options: Any) -> str:
        request = pair_conversation("media->text", INSTRUCTIONS[task][0], Media(modality, source=media), "")
        return self.chat(Conversation(request.messages[:1], None), **options).text

    def _to_media(self, task: str, modality: str, text: str, **options: Any) -> MediaOutput:
        request = pair_conversation("text->media", INSTRUCTIONS[task][0], Media(modality), text)
        reply = self.chat(Conversation(request.messages[:1], None), respond_with=modality, **options)
        if not reply.media:
            raise RuntimeError(f"the model produced no {modality} (finish reason: {reply.finish_reason})")
        return reply.media[0]

    def caption(self, image: Any, **options: Any) -> str:
        return self._to_text("image_caption", "image", image, **options)

    def draw(self, text: str, **options: Any) -> MediaOutput:
        return self._to_media("image_generation", "image", text, **options)

    def transcribe(self, audio: Any, **options: Any) -> str:
        return self._to_text("asr", "speech", audio, **options)

    def speak(self, text: str, voice: Any = None, **options: Any) -> MediaOutput:
        return self._to_media("tts", "speech", text, voice=voice, **options)

    def describe_music(self, audio: Any, **options: Any) -> str:
        return self._to_text("music_caption", "music", audio, **options)

    def compose(self, text: str, **options: Any) -> MediaOutput:
        return self._to_media("music_generation", "music", text, **options)
