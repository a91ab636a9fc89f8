"""Conversations of typed parts, and AnyGPT's chat template (DESIGN.md sections 2-3).

    {system}\n[Human]: {parts}<eoh>\n[AnyGPT]: {parts}<eom>\n ...

A part is text or a media span `<soX> codes <eoX>`. `render` returns the ids with a loss
mask (assistant turns for instruction tuning, everything for pretraining); `parse`
inverts it. Each maximal run of text between special tokens is encoded in one piece, so
for text-only conversations the Jinja `CHAT_TEMPLATE` tokenized by a plain HF tokenizer
gives exactly the ids `render` gives.

The generation prompt ends with the `[AnyGPT]` token; the model writes ": " itself, so
the prompt never ends inside a text run whose tokenization could change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from anyseq.modalities.base import ModalitySpec, ModalityTokenizer
from anyseq.patterns import build_pattern
from anyseq.vocab import EOH, EOM, ROLE_TOKENS, VocabLayout

DEFAULT_SYSTEM = (
    "You are an AI assistant named AnyGPT who can understand and generate multimodal content, "
    "including text, speech, images and audio."
)
ROLE_END = {"user": EOH, "assistant": EOM}
ROLE_SEPARATOR = ": "

Role = Literal["user", "assistant"]
LossOn = Literal["assistant", "all"]


@dataclass
class Text:
    text: str


@dataclass
class Media:
    """A media item of one modality, given as codes [K, T], a source (path, bytes, PIL image,
    array, Audio) to encode, or, in a dialogue script, only a description to render later."""

    modality: str
    source: Any = None
    codes: torch.Tensor | None = None  # [K, T] local codes
    description: str | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Media) or other.modality != self.modality:
            return False
        if self.codes is None or other.codes is None:
            return self.codes is other.codes and self.source == other.source
        return self.codes.shape == other.codes.shape and bool((self.codes == other.codes).all())

    def resolve(self, tokenizers: Mapping[str, ModalityTokenizer]) -> torch.Tensor:
        """Codes [K, T], encoding the source with the modality's tokenizer when needed."""
        if self.codes is not None:
            return self.codes
        if self.source is None:
            what = (
                f"only a description ({self.description!r})"
                if self.description
                else "neither codes nor source"
            )
            raise ValueError(f"{self.modality} part has {what}; render it to media first")
        if self.modality not in tokenizers:
            raise ValueError(f"no tokenizer for modality {self.modality!r}; have {sorted(tokenizers)}")
        self.codes = tokenizers[self.modality].encode(self.source)
        return self.codes


Part = Text | Media


@dataclass
class Message:
    role: Role
    content: list[Part]

    def __post_init__(self) -> None:
        if self.role not in ROLE_END:
            raise ValueError(f"role must be one of {sorted(ROLE_END)}, got {self.role!r}")

    def normalized(self) -> Message:
        """Empty text dropped and adjacent text parts joined (what `parse` returns)."""
        parts: list[Part] = []
        for part in self.content:
            if isinstance(part, Text):
                if not part.text:
                    continue
                if parts and isinstance(parts[-1], Text):
                    parts[-1] = Text(parts[-1].text + part.text)
                    continue
            parts.append(part)
        return Message(self.role, parts)


@dataclass
class Conversation:
    messages: list[Message] = field(default_factory=list)
    system: str | None = DEFAULT_SYSTEM

    def normalized(self) -> Conversation:
        return Conversation([m.normalized() for m in self.messages], self.system or None)

    # JSON form: {"system": ..., "messages": [{"role": ..., "content": [{"type": "text", "text": ...},
    #   {"type": "image", "path": ...} | {"type": "image", "codes": [[...]]} | {..., "description": ...}]}]}
    def to_dict(self) -> dict[str, Any]:
        def part_dict(part: Part) -> dict[str, Any]:
            if isinstance(part, Text):
                return {"type": "text", "text": part.text}
            out: dict[str, Any] = {"type": part.modality}
            if part.codes is not None:
                out["codes"] = part.codes.tolist()
            if isinstance(part.source, str | Path):
                out["path"] = str(part.source)
            if part.description is not None:
                out["description"] = part.description
            return out

        return {
            "system": self.system,
            "messages": [
                {"role": m.role, "content": [part_dict(p) for p in m.content]} for m in self.messages
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Conversation:
        def part(item: Mapping[str, Any]) -> Part:
            kind = item.get("type")
            if kind == "text":
                return Text(item["text"])
            if not isinstance(kind, str):
                raise ValueError(f"a content part needs a 'type', got {dict(item)}")
            codes = torch.tensor(item["codes"], dtype=torch.long) if "codes" in item else None
            return Media(kind, source=item.get("path"), codes=codes, description=item.get("description"))

        messages = [Message(m["role"], [part(p) for p in m["content"]]) for m in data["messages"]]
        return cls(messages, data.get("system", DEFAULT_SYSTEM))


@dataclass
class Rendered:
    """ids (L,) and loss_mask (L,): True where a token is a training target."""

    ids: torch.Tensor
    loss_mask: torch.Tensor


class _Builder:
    """Collects ids, joining text into maximal runs before encoding them."""

    def __init__(self, layout: VocabLayout) -> None:
        self.layout = layout
        self.ids: list[int] = []
        self.mask: list[bool] = []
        self._text = ""
        self._text_trained = False

    def text(self, text: str, trained: bool) -> None:
        self._text += text
        self._text_trained = self._text_trained or trained

    def ids_(self, ids: Sequence[int], trained: bool) -> None:
        self.flush()
        self.ids.extend(ids)
        self.mask.extend([trained] * len(ids))

    def flush(self) -> None:
        if self._text:
            encoded = self.layout.encode_text(self._text)
            self.ids.extend(encoded)
            self.mask.extend([self._text_trained] * len(encoded))
        self._text, self._text_trained = "", False


def check_span_length(spec: ModalitySpec, length: int) -> None:
    """A span holds exactly `tokens_per_item` tokens, or 1..max_frames whole frames."""
    if spec.tokens_per_item is not None and length != spec.tokens_per_item:
        raise ValueError(f"{spec.name}: a span must have {spec.tokens_per_item} tokens, got {length}")
    if not 0 < length <= spec.max_span_tokens:
        raise ValueError(f"{spec.name}: a span must have 1..{spec.max_span_tokens} tokens, got {length}")


def media_ids(layout: VocabLayout, modality: str, codes: torch.Tensor) -> list[int]:
    """Codes [K, T] -> the span `<soX> ids <eoX>` of global ids, checking its length."""
    spec = layout.spec(modality)
    flat = build_pattern(spec.pattern, spec.num_codebooks, spec.codebook_size).flatten(codes)
    check_span_length(spec, flat.numel())
    return [layout.start_of(modality), *layout.to_global(modality, flat).tolist(), layout.end_of(modality)]


def render(
    conversation: Conversation,
    layout: VocabLayout,
    tokenizers: Mapping[str, ModalityTokenizer] | None = None,
    loss_on: LossOn = "assistant",
    add_generation_prompt: bool = False,
) -> Rendered:
    """Conversation -> (ids, loss_mask) with AnyGPT's template.

    loss_on="assistant" (instruction tuning) trains the assistant turns from the
    separator after `[AnyGPT]` through `<eom>`; "all" (pretraining) trains every token.
    """
    tokenizers = tokenizers or {}
    every = loss_on == "all"
    b = _Builder(layout)
    b.ids_([layout.bos_id], False)
    if conversation.system:
        b.text(conversation.system + "\n", every)
    for message in conversation.messages:
        trained = every or message.role == "assistant"
        b.ids_([layout.special(ROLE_TOKENS[message.role])], every)
        b.text(ROLE_SEPARATOR, trained)
        for part in message.content:
            if isinstance(part, Text):
                b.text(part.text, trained)
            else:
                b.ids_(media_ids(layout, part.modality, part.resolve(tokenizers)), trained)
        b.ids_([layout.special(ROLE_END[message.role])], trained)
        b.text("\n", every)
    if add_generation_prompt:
        b.ids_([layout.special(ROLE_TOKENS["assistant"])], False)
    b.flush()
    return Rendered(torch.tensor(b.ids, dtype=torch.long), torch.tensor(b.mask, dtype=torch.bool))


def parse_parts(ids: Sequence[int], layout: VocabLayout) -> list[Part]:
    """Ids of one turn's content (no role or end tokens) -> parts; media spans become codes."""
    parts: list[Part] = []
    text: list[int] = []
    position = 0
    ids = list(ids)

    def flush_text() -> None:
        if text:
            decoded = layout.decode_text(text)
            if decoded:
                parts.append(Text(decoded))
            text.clear()

    while position < len(ids):
        token = ids[position]
        if layout.is_text(token):
            text.append(token)
            position += 1
            continue
        modality = layout.modality_started_by(token)
        if modality is None:
            raise ValueError(f"unexpected token {token} at position {position} inside a turn")
        flush_text()
        end = layout.end_of(modality)
        try:
            close = ids.index(end, position + 1)
        except ValueError:
            raise ValueError(f"{modality} span opened at position {position} is never closed") from None
        span = torch.tensor(ids[position + 1 : close], dtype=torch.long)
        spec = layout.spec(modality)
        check_span_length(spec, span.numel())
        local = layout.to_local(modality, span)
        codes = build_pattern(spec.pattern, spec.num_codebooks, spec.codebook_size).unflatten(local)
        parts.append(Media(modality, codes=codes))
        position = close + 1
    flush_text()
    return parts


def _strip_separator(parts: list[Part]) -> list[Part]:
    """Drop the ": " after a role marker (the model may write only ":")."""
    if parts and isinstance(parts[0], Text):
        text = parts[0].text
        text = text[len(ROLE_SEPARATOR) :] if text.startswith(ROLE_SEPARATOR) else text.removeprefix(":")
        parts = ([Text(text)] if text else []) + parts[1:]
    return parts


def parse_reply(ids: Sequence[int], layout: VocabLayout) -> list[Part]:
    """A generated reply (the ids after `[AnyGPT]`, up to an optional `<eom>` or eos) -> parts."""
    ids = list(ids)
    for stop in (layout.special(EOM), layout.eos_id):
        if stop in ids:
            ids = ids[: ids.index(stop)]
    return _strip_separator(parse_parts(ids, layout))


def parse(ids: Sequence[int] | torch.Tensor, layout: VocabLayout) -> Conversation:
    """Rendered ids -> Conversation (normalized: adjacent text joined, empty text dropped)."""
    ids = [int(i) for i in ids]
    if ids and ids[0] == layout.bos_id:
        ids = ids[1:]
    role_of = {layout.special(token): role for role, token in ROLE_TOKENS.items()}
    starts = [i for i, token in enumerate(ids) if token in role_of]
    head = ids[: starts[0]] if starts else ids
    system = layout.decode_text(head).removesuffix("\n") if head else None
    messages = []
    for n, start in enumerate(starts):
        role = role_of[ids[start]]
        stop = starts[n + 1] if n + 1 < len(starts) else len(ids)
        body = ids[start + 1 : stop]
        end = layout.special(ROLE_END[role])
        if end not in body:
            raise ValueError(f"{role} turn at position {start + 1} has no {ROLE_END[role]}")
        close = body.index(end)
        trailer = body[close + 1 :]
        if trailer and layout.decode_text(trailer).strip():
            raise ValueError(f"unexpected content after {ROLE_END[role]} at position {start + 2 + close}")
        messages.append(Message(role, _strip_separator(parse_parts(body[:close], layout))))
    return Conversation(messages, system or None)


# Text-only users: the same template for `tokenizer.apply_chat_template`.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages and messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\\n' }}"
    "{% set messages = messages[1:] %}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[Human]: ' + message['content'] + '<eoh>\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '[AnyGPT]: ' + message['content'] + '<eom>\\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '[AnyGPT]' }}{% endif %}"
)
