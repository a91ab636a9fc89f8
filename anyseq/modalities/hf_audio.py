"""Pretrained neural audio codecs from transformers behind the modality protocol.

AnyGPT (Zhan et al., ACL 2024) tokenizes music with EnCodec (32 kHz, 4 levels x 2048 at
50 Hz) and speech with SpeechTokenizer. transformers provides three residual-VQ codecs;
each adapter here turns one into a `ModalityTokenizer` (codes [K, T] <-> `Audio`):

- `EncodecTokenizer` (kind "encodec"): `EncodecModel`, e.g. the 32 kHz music model
  AnyGPT used; K is chosen by bandwidth. Models that normalise or chunk their input
  (the 48 kHz one) need per-chunk scales that codes cannot carry, and are refused.
- `DacTokenizer` (kind "dac"): `DacModel`; any K up to its codebooks.
- `MimiTokenizer` (kind "mimi"): `MimiModel` (12.5 Hz), whose first level is semantic,
  the role SpeechTokenizer's first level plays in AnyGPT.

Weights load only from a local directory (`config.json` + `model.safetensors`, as
`save_pretrained` writes); nothing is ever downloaded. The modality name is a config
field, so one EnCodec can serve music or speech. A saved adapter is a directory with
`config.json` (kind, settings and the model's own config) and `model.safetensors`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import Tensor

from anyseq.io import atomic_write_bytes, atomic_write_json
from anyseq.media import Audio, load_audio
from anyseq.modalities.base import BOUNDARY_TOKENS, ModalitySpec


@dataclass
class HFCodecConfig:
    model_dir: str = ""  # local transformers directory; empty when the model comes from a saved adapter
    modality: str = "music"  # which modality this codec serves: "music" or "speech"
    num_codebooks: int | None = None  # K; None: EnCodec's smallest bandwidth, every level of DAC and Mimi
    max_seconds: float = 5.0  # longest input; longer is an error (music is cut by the caller, AnyGPT: 5 s)

    def __post_init__(self) -> None:
        if self.modality not in BOUNDARY_TOKENS:
            raise ValueError(f"unknown modality {self.modality!r}; known: {sorted(BOUNDARY_TOKENS)}")
        if self.num_codebooks is not None and self.num_codebooks < 1:
            raise ValueError(f"num_codebooks must be >= 1, got {self.num_codebooks}")


class HFAudioTokenizer:
    """Shared plumbing of the adapters: loading, saving, input checks, batching by equal length."""

    kind: ClassVar[str]
    model_type: ClassVar[str]  # transformers' `config.model_type`

    def __init__(self, config: HFCodecConfig, model: torch.nn.Module) -> None:
        self.config = config
        self.model = model.eval()
        self.name = config.modality
        self.sample_rate = int(model.config.sampling_rate)
        self.codebook_size = int(model.config.codebook_size)
        self.num_codebooks = self._choose_codebooks(config.num_codebooks)

    # -- what each codec defines -------------------------------------------------------------

    @classmethod
    def _classes(cls) -> tuple[type, type]:
        """(config class, model class) from transformers."""
        raise NotImplementedError

    @property
    def frame_rate(self) -> float:
        raise NotImplementedError

    def _choose_codebooks(self, requested: int | None) -> int:
        raise NotImplementedError

    def _encode(self, audio: Tensor) -> Tensor:
        """audio (B, 1, N) -> codes (B, K, T)."""
        raise NotImplementedError

    def _decode(self, codes: Tensor) -> Tensor:
        """codes (B, K, T) -> audio (B, C, N')."""
        raise NotImplementedError

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HFAudioTokenizer:
        """From `HFCodecConfig` fields; `model_dir` must be a local transformers directory."""
        known = {f.name for f in fields(HFCodecConfig)}
        if set(config) - known:
            raise ValueError(
                f"{cls.kind}: unknown settings {sorted(set(config) - known)}; known: {sorted(known)}"
            )
        settings = HFCodecConfig(**config)
        directory = Path(settings.model_dir)
        if not settings.model_dir or not (directory / "config.json").is_file():
            raise FileNotFoundError(
                f"{cls.kind}: {settings.model_dir or '(no model_dir)'} is not a local model directory "
                "with config.json; models are never downloaded"
            )
        model_type = json.loads((directory / "config.json").read_text()).get("model_type")
        if model_type != cls.model_type:
            raise ValueError(
                f"{cls.kind}: {directory} holds a {model_type!r} model, expected {cls.model_type!r}"
            )
        _, model_class = cls._classes()
        return cls(settings, model_class.from_pretrained(directory, local_files_only=True))

    @classmethod
    def load(cls, directory: str | Path) -> HFAudioTokenizer:
        directory = Path(directory)
        data = json.loads((directory / "config.json").read_text())
        kind = data.pop("kind", None)
        if kind != cls.kind:
            raise ValueError(f"{directory}: config.json has kind {kind!r}, expected {cls.kind!r}")
        config_class, model_class = cls._classes()
        model = model_class(config_class.from_dict(data.pop("model_config")))
        model.load_state_dict(load_file(directory / "model.safetensors"))
        return cls(HFCodecConfig(**data), model)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        state = {
            name: tensor.detach().contiguous().clone() for name, tensor in self.model.state_dict().items()
        }
        atomic_write_bytes(directory / "model.safetensors", save(state))
        settings = {**asdict(self.config), "model_dir": "", "num_codebooks": self.num_codebooks}
        atomic_write_json(
            directory / "config.json",
            {"kind": self.kind, **settings, "model_config": self.model.config.to_dict()},
        )

    # -- the protocol -------------------------------------------------------------------------

    @property
    def spec(self) -> ModalitySpec:
        max_frames = math.ceil(self.config.max_seconds * self.frame_rate)
        return ModalitySpec(self.name, self.num_codebooks, self.codebook_size, max_frames=max_frames)

    def encode(self, media: Any) -> torch.LongTensor:
        """media -> codes [K, T]."""
        return self.encode_batch([media])[0]

    def encode_batch(self, media: Sequence[Any]) -> list[torch.LongTensor]:
        """Inputs of equal length share one forward pass; none is padded, so batching never changes codes."""
        clips = [
            load_audio(
                m, self.sample_rate, max_seconds=self.config.max_seconds, min_seconds=1 / self.frame_rate
            )
            for m in media
        ]
        codes: list[torch.LongTensor] = [torch.empty(0, dtype=torch.long)] * len(clips)
        for rows in _groups([len(clip.samples) for clip in clips]):
            audio = torch.from_numpy(np.stack([clips[row].samples for row in rows]))[:, None]  # (B, 1, N)
            with torch.inference_mode():
                batch = self._encode(audio)
            for row, one in zip(rows, batch, strict=True):
                codes[row] = one.long().clone()
        return codes

    def decode(self, codes: torch.LongTensor) -> Audio:
        """codes [K, T] -> mono `Audio` at the codec's rate."""
        return self.decode_batch([codes])[0]

    def decode_batch(self, codes: Sequence[torch.LongTensor]) -> list[Audio]:
        for one in codes:
            if one.ndim != 2 or one.shape[0] != self.num_codebooks or one.shape[1] < 1:
                raise ValueError(
                    f"{self.kind}: expected codes [{self.num_codebooks}, T >= 1], got {list(one.shape)}"
                )
            if one.min() < 0 or one.max() >= self.codebook_size:
                raise ValueError(
                    f"{self.kind}: codes must lie in [0, {self.codebook_size}), "
                    f"got [{int(one.min())}, {int(one.max())}]"
                )
        audio: list[Audio] = [Audio(np.zeros(0, dtype=np.float32), self.sample_rate)] * len(codes)
        for rows in _groups([one.shape[1] for one in codes]):
            with torch.inference_mode():
                batch = self._decode(torch.stack([codes[row] for row in rows]).long())  # (B, C, N)
            samples = batch.mean(dim=1).clamp(-1.0, 1.0).float().numpy()
            for row, one in zip(rows, samples, strict=True):
                audio[row] = Audio(one.copy(), self.sample_rate)
        return audio


def _groups(lengths: Sequence[int]) -> list[list[int]]:
    """Indices grouped by equal length, in first-seen order."""
    groups: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        groups.setdefault(length, []).append(index)
    return list(groups.values())


class EncodecTokenizer(HFAudioTokenizer):
    """transformers' `EncodecModel`; K = the quantizers of one of its target bandwidths."""

    kind = "encodec"
    model_type = "encodec"

    def __init__(self, config: HFCodecConfig, model: torch.nn.Module) -> None:
        c = model.config
        if c.normalize or c.chunk_length_s is not None:
            raise ValueError(
                f"{self.kind}: {config.model_dir or 'model'} normalises or chunks its input (normalize="
                f"{c.normalize}, chunk_length_s={c.chunk_length_s}); its codes need per-chunk scales that "
                "[K, T] codes cannot carry. Use a 24 kHz or 32 kHz EnCodec"
            )
        super().__init__(config, model)

    @classmethod
    def _classes(cls) -> tuple[type, type]:
        from transformers import EncodecConfig, EncodecModel

        return EncodecConfig, EncodecModel

    @property
    def frame_rate(self) -> float:
        return float(self.model.config.frame_rate)

    def _bandwidths(self) -> dict[int, float]:
        """Quantizer count -> the target bandwidth (kbps) that gives it."""
        quantizer = self.model.quantizer
        return {quantizer.get_num_quantizers_for_bandwidth(b): b for b in self.model.config.target_bandwidths}

    def _choose_codebooks(self, requested: int | None) -> int:
        available = self._bandwidths()
        if requested is None:
            return min(available)
        if requested not in available:
            raise ValueError(
                f"{self.kind}: num_codebooks={requested} matches none of the model's bandwidths "
                f"{list(self.model.config.target_bandwidths)} kbps; possible: {sorted(available)}"
            )
        return requested

    def _encode(self, audio: Tensor) -> Tensor:
        channels = self.model.config.audio_channels
        output = self.model.encode(
            audio.expand(-1, channels, -1), bandwidth=self._bandwidths()[self.num_codebooks]
        )
        return output.audio_codes[0]  # (1 chunk, B, K, T) -> (B, K, T)

    def _decode(self, codes: Tensor) -> Tensor:
        return self.model.decode(codes[None], [None]).audio_values


class DacTokenizer(HFAudioTokenizer):
    """transformers' `DacModel`; K = its first K codebooks."""

    kind = "dac"
    model_type = "dac"

    @classmethod
    def _classes(cls) -> tuple[type, type]:
        from transformers import DacConfig, DacModel

        return DacConfig, DacModel

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.model.config.hop_length

    def _choose_codebooks(self, requested: int | None) -> int:
        available = self.model.config.n_codebooks
        if requested is not None and requested > available:
            raise ValueError(
                f"{self.kind}: num_codebooks={requested} exceeds the model's {available} codebooks"
            )
        return requested or available

    def _encode(self, audio: Tensor) -> Tensor:
        return self.model.encode(audio, n_quantizers=self.num_codebooks).audio_codes[:, : self.num_codebooks]

    def _decode(self, codes: Tensor) -> Tensor:
        return self.model.decode(audio_codes=codes).audio_values[:, None]  # (B, N) -> (B, 1, N)


class MimiTokenizer(HFAudioTokenizer):
    """transformers' `MimiModel`; level 1 is its semantic codebook, K at least its semantic levels."""

    kind = "mimi"
    model_type = "mimi"

    @classmethod
    def _classes(cls) -> tuple[type, type]:
        from transformers import MimiConfig, MimiModel

        return MimiConfig, MimiModel

    @property
    def frame_rate(self) -> float:
        return float(self.model.config.frame_rate)

    def _choose_codebooks(self, requested: int | None) -> int:
        c = self.model.config
        if requested is not None and not c.num_semantic_quantizers <= requested <= c.num_quantizers:
            raise ValueError(
                f"{self.kind}: num_codebooks={requested} must lie in "
                f"[{c.num_semantic_quantizers}, {c.num_quantizers}] (semantic levels .. all levels)"
            )
        return requested or c.num_quantizers

    def _encode(self, audio: Tensor) -> Tensor:
        return self.model.encode(audio, num_quantizers=self.num_codebooks).audio_codes

    def _decode(self, codes: Tensor) -> Tensor:
        return self.model.decode(codes).audio_values
