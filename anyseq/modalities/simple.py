"""Weight-free, deterministic tokenizers for testing the whole pipe.

They follow the modality protocol exactly, so render, generation, checkpoints and the
chat can be tested before (and independently of) the learned tokenizers:
- `GridImageTokenizer`: an image as a G x G grid of mean colours, L levels per channel.
- `BandEnergyAudioTokenizer`: audio as K frequency bands' energies per frame, one
  codebook per band; decoded as band-shaped noise.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from anyseq.media import Audio, load_audio, load_image
from anyseq.modalities.base import ModalitySpec


def _write_config(directory: str | Path, kind: str, config: Any) -> None:
    path = Path(directory) / "config.json"
    path.write_text(json.dumps({"kind": kind, **asdict(config)}, indent=2))


def _read_config(directory: str | Path) -> dict[str, Any]:
    config = json.loads((Path(directory) / "config.json").read_text())
    config.pop("kind")
    return config


@dataclass
class GridImageConfig:
    modality: str = "image"
    grid: int = 4  # G: tokens per image = G * G
    levels: int = 8  # L per RGB channel: codebook = L ** 3
    output_size: int = 64  # decoded images are output_size px square


class GridImageTokenizer:
    """Image -> [1, G*G] codes of quantized mean colours (row-major cells)."""

    kind = "grid-image"
    num_codebooks = 1

    def __init__(self, config: GridImageConfig) -> None:
        self.config = config
        self.name = config.modality
        self.codebook_size = config.levels**3

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GridImageTokenizer:
        return cls(GridImageConfig(**config))

    @classmethod
    def load(cls, directory: str | Path) -> GridImageTokenizer:
        return cls.from_config(_read_config(directory))

    def save(self, directory: str | Path) -> None:
        _write_config(directory, self.kind, self.config)

    @property
    def spec(self) -> ModalitySpec:
        return ModalitySpec(self.name, 1, self.codebook_size, tokens_per_item=self.config.grid**2)

    def encode(self, media: Any) -> torch.LongTensor:
        grid, levels = self.config.grid, self.config.levels
        image = load_image(media).resize((grid, grid), Image.Resampling.BOX)
        rgb = np.asarray(image, dtype=np.int64)  # (G, G, 3)
        quantized = np.minimum(rgb * levels // 256, levels - 1)
        codes = (quantized[..., 0] * levels + quantized[..., 1]) * levels + quantized[..., 2]
        return torch.from_numpy(codes.reshape(1, -1))  # (1, G*G)

    def decode(self, codes: torch.LongTensor) -> Image.Image:
        grid, levels = self.config.grid, self.config.levels
        if codes.shape != (1, grid * grid):
            raise ValueError(
                f"{self.kind}: expected codes of shape [1, {grid * grid}], got {list(codes.shape)}"
            )
        flat = codes.reshape(grid, grid).numpy()
        channels = np.stack([flat // (levels * levels), (flat // levels) % levels, flat % levels], axis=-1)
        rgb = ((channels + 0.5) * 256 / levels).astype(np.uint8)
        size = self.config.output_size
        return Image.fromarray(rgb).resize((size, size), Image.Resampling.NEAREST)


@dataclass
class BandEnergyConfig:
    modality: str = "speech"
    sample_rate: int = 16000
    frame_rate: int = 25  # frames per second; hop = sample_rate / frame_rate
    num_codebooks: int = 2  # K frequency bands, one codebook each
    codebook_size: int = 32  # energy levels per band
    max_seconds: float = 10.0
    floor_db: float = -80.0


class BandEnergyAudioTokenizer:
    """Audio -> [K, T] codes: per frame, each band's energy quantized on a dB scale."""

    kind = "band-audio"

    def __init__(self, config: BandEnergyConfig) -> None:
        if config.sample_rate % config.frame_rate:
            raise ValueError(f"{self.kind}: sample_rate must be a multiple of frame_rate, got {config}")
        self.config = config
        self.name = config.modality
        self.num_codebooks = config.num_codebooks
        self.codebook_size = config.codebook_size
        self.hop = config.sample_rate // config.frame_rate
        self.n_fft = 2 * self.hop
        bins = self.n_fft // 2 + 1
        edges = np.unique(np.geomspace(1, bins, config.num_codebooks + 1).astype(int))
        edges[0] = 0
        if len(edges) != config.num_codebooks + 1:
            raise ValueError(f"{self.kind}: {config.num_codebooks} bands do not fit {bins} frequency bins")
        self.band_edges = edges

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BandEnergyAudioTokenizer:
        return cls(BandEnergyConfig(**config))

    @classmethod
    def load(cls, directory: str | Path) -> BandEnergyAudioTokenizer:
        return cls.from_config(_read_config(directory))

    def save(self, directory: str | Path) -> None:
        _write_config(directory, self.kind, self.config)

    @property
    def spec(self) -> ModalitySpec:
        max_frames = int(self.config.max_seconds * self.config.frame_rate)
        return ModalitySpec(self.name, self.num_codebooks, self.codebook_size, max_frames=max_frames)

    def _stft(self, samples: np.ndarray) -> np.ndarray:
        frames = len(samples) // self.hop
        padded = np.pad(samples, (self.hop // 2, self.n_fft))
        window = np.hanning(self.n_fft).astype(np.float32)
        starts = np.arange(frames) * self.hop
        windows = np.stack([padded[s : s + self.n_fft] * window for s in starts])  # (T, n_fft)
        return np.fft.rfft(windows, axis=1) / window.sum()  # (T, bins), a full-scale sine peaks near 0.5

    def encode(self, media: Any) -> torch.LongTensor:
        c = self.config
        audio = load_audio(media, c.sample_rate, max_seconds=c.max_seconds, min_seconds=1 / c.frame_rate)
        power = np.abs(self._stft(audio.samples)) ** 2  # (T, bins)
        bands = np.stack(
            [
                power[:, lo:hi].mean(axis=1)
                for lo, hi in zip(self.band_edges[:-1], self.band_edges[1:], strict=True)
            ]
        )  # (K, T)
        db = 10 * np.log10(bands + 1e-12)
        scaled = (db - c.floor_db) / -c.floor_db * (c.codebook_size - 1)
        return torch.from_numpy(np.clip(np.round(scaled), 0, c.codebook_size - 1).astype(np.int64))

    def decode(self, codes: torch.LongTensor) -> Audio:
        c = self.config
        if codes.ndim != 2 or codes.shape[0] != self.num_codebooks:
            raise ValueError(
                f"{self.kind}: expected codes [{self.num_codebooks}, T], got {list(codes.shape)}"
            )
        db = codes.numpy() / (c.codebook_size - 1) * -c.floor_db + c.floor_db  # (K, T)
        amplitude = np.sqrt(10 ** (db / 10))
        frames = codes.shape[1]
        rng = np.random.default_rng(0)
        noise = rng.standard_normal(frames * self.hop + self.n_fft).astype(np.float32)
        spectrum = self._stft(noise)[:frames]
        spectrum /= np.abs(spectrum) + 1e-8
        for k, (lo, hi) in enumerate(zip(self.band_edges[:-1], self.band_edges[1:], strict=True)):
            spectrum[:, lo:hi] *= amplitude[k, :, None]
        window = np.hanning(self.n_fft).astype(np.float32)
        out = np.zeros(frames * self.hop + self.n_fft, dtype=np.float32)
        for t, row in enumerate(np.fft.irfft(spectrum * window.sum(), n=self.n_fft, axis=1)):
            out[t * self.hop : t * self.hop + self.n_fft] += row * window
        samples = out[self.hop // 2 : self.hop // 2 + frames * self.hop]
        return Audio(samples=np.clip(samples, -1, 1).astype(np.float32), sample_rate=c.sample_rate)
