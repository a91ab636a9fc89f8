"""The modality protocol and the registry of tokenizer implementations (DESIGN.md section 4).

A modality enters AnySeq like a new language (AnyGPT, section 3): a tokenizer that maps
media to codes [K, T] and back, plus a range of vocabulary. Implementations are listed
by name in `TOKENIZERS` and imported only when used, so adding one touches no `if` chain.
A saved tokenizer is a directory with `config.json` (holding its `kind`) and, when it
has weights, `model.safetensors`.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

# Boundary tokens and token-name prefix per modality, as AnyGPT names them.
BOUNDARY_TOKENS: dict[str, tuple[str, str, str]] = {
    "image": ("<soim>", "<eoim>", "img"),
    "speech": ("<sosp>", "<eosp>", "sp"),
    "music": ("<somu>", "<eomu>", "mu"),
}

# Implementation name -> "module:Class". Each class has `load(directory)` and a config.
TOKENIZERS: dict[str, str] = {
    "grid-image": "anyseq.modalities.simple:GridImageTokenizer",
    "band-audio": "anyseq.modalities.simple:BandEnergyAudioTokenizer",
    "vq-image": "anyseq.modalities.image_vq:VQImageTokenizer",
    "chameleon-image": "anyseq.modalities.hf_image:ChameleonImageTokenizer",
    "emu3-image": "anyseq.modalities.hf_image:Emu3ImageTokenizer",
    "janus-image": "anyseq.modalities.hf_image:JanusImageTokenizer",
    "codec-music": "anyseq.modalities.music:MusicTokenizer",
    "encodec": "anyseq.modalities.hf_audio:EncodecTokenizer",
    "dac": "anyseq.modalities.hf_audio:DacTokenizer",
    "mimi": "anyseq.modalities.hf_audio:MimiTokenizer",
    "codec-speech": "anyseq.modalities.speech:SpeechTokenizer",
}


@dataclass(frozen=True)
class ModalitySpec:
    """What the vocabulary and the generation engine need to know of a modality.

    A span is either fixed (`tokens_per_item`, images) or whole frames of K tokens up to
    `max_frames` (audio).
    """

    name: str
    num_codebooks: int  # K
    codebook_size: int
    tokens_per_item: int | None = None  # fixed span length in tokens
    max_frames: int | None = None  # upper bound of a variable-length span, in frames
    pattern: str = "frame-major"

    def __post_init__(self) -> None:
        if self.name not in BOUNDARY_TOKENS:
            raise ValueError(f"unknown modality {self.name!r}; known: {sorted(BOUNDARY_TOKENS)}")
        if (self.tokens_per_item is None) == (self.max_frames is None):
            raise ValueError(f"{self.name}: set exactly one of tokens_per_item and max_frames")
        if self.tokens_per_item is not None and self.tokens_per_item % self.num_codebooks:
            raise ValueError(f"{self.name}: tokens_per_item must be a multiple of K={self.num_codebooks}")

    @property
    def start_token(self) -> str:
        return BOUNDARY_TOKENS[self.name][0]

    @property
    def end_token(self) -> str:
        return BOUNDARY_TOKENS[self.name][1]

    @property
    def size(self) -> int:
        """Number of vocabulary ids the modality owns (K x codebook_size)."""
        return self.num_codebooks * self.codebook_size

    @property
    def max_span_tokens(self) -> int:
        return (
            self.tokens_per_item if self.tokens_per_item is not None else self.max_frames * self.num_codebooks
        )

    def token_name(self, local_id: int) -> str:
        """`<img_17>` for K = 1, `<mu2_511>` (level 2, code 511) for K > 1."""
        prefix = BOUNDARY_TOKENS[self.name][2]
        if self.num_codebooks == 1:
            return f"<{prefix}_{local_id}>"
        level, code = divmod(local_id, self.codebook_size)
        return f"<{prefix}{level}_{code}>"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class ModalityTokenizer(Protocol):
    """Turns media into codes [K, T] (local ids 0..codebook_size-1) and back."""

    name: str
    num_codebooks: int
    codebook_size: int

    @property
    def spec(self) -> ModalitySpec: ...

    def encode(self, media: Any) -> torch.LongTensor: ...

    def decode(self, codes: torch.LongTensor) -> Any: ...

    def save(self, directory: str | Path) -> None: ...


def code_vectors(tokenizer: ModalityTokenizer) -> torch.Tensor | None:
    """What each of the modality's vocabulary ids stands for inside its tokenizer: (spec.size, D),
    in local-id order (level-major for K > 1), e.g. an FSQ code's grid point or a VQ codebook
    row. Optional in the protocol (a tokenizer's `code_vectors()` method): None where the
    tokenizer has none. The language model's embeddings may start from them
    (`anyseq.training.init.embed_codes`)."""
    method = getattr(tokenizer, "code_vectors", None)
    return None if method is None else method().detach().float().cpu()


def _implementation(kind: str) -> type:
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; known: {sorted(TOKENIZERS)}")
    module, cls = TOKENIZERS[kind].split(":")
    return getattr(importlib.import_module(module), cls)


def build_tokenizer(kind: str, **config: Any) -> ModalityTokenizer:
    """A fresh tokenizer of a registered kind, e.g. `build_tokenizer("grid-image", grid=4)`."""
    return _implementation(kind).from_config(config)


def load_tokenizer(directory: str | Path) -> ModalityTokenizer:
    """Load a saved tokenizer directory; the kind comes from its `config.json`."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory}: not a tokenizer directory (no config.json)")
    config = json.loads(config_path.read_text())
    kind = config.pop("kind", None)
    if kind is None:
        raise ValueError(f"{config_path}: missing 'kind' (one of {sorted(TOKENIZERS)})")
    return _implementation(kind).load(directory)


def save_tokenizer(tokenizer: ModalityTokenizer, directory: str | Path) -> Path:
    """Write a tokenizer directory (config.json with its kind, weights if any)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(directory)
    return directory
