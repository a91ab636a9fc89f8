"""AnySeq's trainable image tokenizer: pixels -> conv encoder -> FSQ codes -> conv decoder.

AnyGPT (Zhan et al., ACL 2024, section 3.1) turns an image into 32 tokens of SEED
(codebook 8192) and draws it back with a diffusion model. Neither can be downloaded
here, so AnySeq trains its own tokenizer on AnyWorld, on 2 CPU cores, in minutes.
An image of `image_size` px becomes a `grid` x `grid` map of codes (row-major, one
codebook, `tokens_per_item = grid ** 2`), quantized by finite scalar quantization
(FSQ: Mentzer et al., 2023), which needs no codebook loss, no EMA and no dead-code
restarts (chosen over VQ with an EMA codebook by measurement; see
`anyseq/tokenizers/image_train.py`).

Data flow for the `tiny` preset (64 px, 8 x 8 tokens, 1000 codes):

    image (B, 3, 64, 64) in [-1, 1]
      -> pixel-unshuffle 4: (B, 48, 16, 16) -> 1x1 conv -> 64 channels, 1 residual block
      -> 2x2 stride-2 conv -> (B, 128, 8, 8), 2 residual blocks -> 1x1 conv -> (B, 4, 8, 8)
      -> FSQ, levels (8, 5, 5, 5) -> codes (B, 8, 8) in [0, 1000)
      -> decoder, the mirror image: 3x3 conv, 2 blocks at 8 x 8, 2x2 transposed conv, 1 block
         at 16 x 16, then a per-position MLP to the 48 values of each 4 x 4 pixel block
      -> pixel-shuffle 4 -> (B, 3, 64, 64)

Residual blocks are pre-norm (GroupNorm, SiLU, 3x3 conv): without the norm the encoder's
outputs grow until FSQ's tanh saturates and only the extreme levels are used. The
16 x 16 stage matters: a decoder that works only at the token grid and maps each
feature straight to an 8 x 8 pixel block learns edges position by position and stayed
about 2 dB lower for the same CPU time (see `anyseq/tokenizers/image_train.py`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save
from torch import Tensor, nn
from vector_quantize_pytorch import FSQ

from anyseq.io import atomic_write_bytes, atomic_write_json
from anyseq.media import MAX_IMAGE_PIXELS, fit_image, load_image
from anyseq.modalities.base import ModalitySpec

Fit = Literal["crop", "pad", "stretch"]


@dataclass
class VQImageConfig:
    """Every dimension of the tokenizer; `VQImageConfig.from_preset("tiny")` for the 2-core default."""

    modality: str = "image"
    image_size: int = 64  # images are made square at this size (see `fit`)
    fit: Fit = "crop"  # how a non-square image becomes square: crop the centre, pad on white, or stretch
    max_pixels: int = MAX_IMAGE_PIXELS  # larger inputs are refused (decompression bombs)
    patch: int = 8  # pixels per token side: grid = image_size / patch
    levels: tuple[int, ...] = (8, 5, 5, 5)  # FSQ levels per latent channel; codebook = their product
    channels: tuple[int, ...] = (64, 128)  # widths of the stages, finest first; the last runs at the grid
    encoder_blocks: tuple[int, ...] = (1, 2)  # residual blocks per stage in the encoder
    decoder_blocks: tuple[int, ...] = (1, 2)  # residual blocks per stage in the decoder
    head: int = 256  # hidden width of the decoder's per-position output MLP
    seed: int = 0  # initialisation of a fresh model

    def __post_init__(self) -> None:
        self.levels = tuple(self.levels)
        self.channels = tuple(self.channels)
        self.encoder_blocks = tuple(self.encoder_blocks)
        self.decoder_blocks = tuple(self.decoder_blocks)
        stages = len(self.channels)
        if stages == 0 or len(self.encoder_blocks) != stages or len(self.decoder_blocks) != stages:
            raise ValueError(
                f"channels {self.channels}, encoder_blocks {self.encoder_blocks} and decoder_blocks "
                f"{self.decoder_blocks} need one entry per stage (at least one stage)"
            )
        if self.patch % 2 ** (stages - 1) or self.image_size % self.patch:
            raise ValueError(
                f"image_size {self.image_size} must be a multiple of patch {self.patch}, and patch a "
                f"multiple of 2 ** (stages - 1) = {2 ** (stages - 1)}"
            )
        if not self.levels or min(self.levels) < 3:
            raise ValueError(f"FSQ levels must be at least 3 each, got {self.levels}")
        if self.fit not in ("crop", "pad", "stretch"):
            raise ValueError(f"fit must be 'crop', 'pad' or 'stretch', got {self.fit!r}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch

    @property
    def tokens_per_image(self) -> int:
        return self.grid**2

    @property
    def codebook_size(self) -> int:
        return int(np.prod(self.levels))

    @property
    def unshuffle(self) -> int:
        """Pixel-unshuffle factor in front of the first stage."""
        return self.patch // 2 ** (len(self.channels) - 1)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> VQImageConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown image tokenizer preset {name!r}; known: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VQImageConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"VQImageConfig: unknown settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


PRESETS: dict[str, dict[str, Any]] = {
    # 64 px -> 64 tokens of 1000 codes; stages at 16 x 16 and 8 x 8; trains in minutes on 2 cores.
    "tiny": {},
    # Same token layout with AnyGPT's SEED-sized codebook (8000 codes) and a wider, deeper network.
    "small": {
        "levels": (8, 8, 5, 5, 5),
        "channels": (96, 192),
        "encoder_blocks": (1, 2),
        "decoder_blocks": (2, 3),
        "head": 384,
    },
}


class ResidualBlock(nn.Module):
    """x + conv3x3(silu(norm(x))): pre-norm keeps the FSQ inputs in tanh's useful range."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W)
        return x + self.conv(nn.functional.silu(self.norm(x)))


class Encoder(nn.Module):
    def __init__(self, config: VQImageConfig) -> None:
        super().__init__()
        u, channels = config.unshuffle, config.channels
        layers: list[nn.Module] = [nn.PixelUnshuffle(u), nn.Conv2d(3 * u * u, channels[0], 1)]
        for stage, width in enumerate(channels):
            layers += [ResidualBlock(width) for _ in range(config.encoder_blocks[stage])]
            if stage + 1 < len(channels):
                layers.append(nn.Conv2d(width, channels[stage + 1], 2, stride=2))
        layers += [nn.GroupNorm(1, channels[-1]), nn.SiLU(), nn.Conv2d(channels[-1], len(config.levels), 1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, pixels: Tensor) -> Tensor:  # (B, 3, S, S) -> (B, len(levels), G, G)
        return self.layers(pixels)


class Decoder(nn.Module):
    def __init__(self, config: VQImageConfig) -> None:
        super().__init__()
        u, channels = config.unshuffle, config.channels
        layers: list[nn.Module] = [nn.Conv2d(len(config.levels), channels[-1], 3, padding=1)]
        for stage in reversed(range(len(channels))):
            layers += [ResidualBlock(channels[stage]) for _ in range(config.decoder_blocks[stage])]
            if stage > 0:
                layers.append(nn.ConvTranspose2d(channels[stage], channels[stage - 1], 2, stride=2))
        layers += [
            nn.GroupNorm(1, channels[0]),
            nn.SiLU(),
            nn.Conv2d(channels[0], config.head, 1),
            nn.SiLU(),
            nn.Conv2d(config.head, 3 * u * u, 1),
            nn.PixelShuffle(u),
        ]
        self.layers = nn.Sequential(*layers)
        # start from a flat grey image: the first steps learn colours, not to undo random output
        nn.init.zeros_(layers[-2].weight)
        nn.init.zeros_(layers[-2].bias)

    def forward(self, latents: Tensor) -> Tensor:  # (B, len(levels), G, G) -> (B, 3, S, S)
        return self.layers(latents)


@dataclass
class VQImageOutput:
    reconstruction: Tensor  # (B, 3, S, S), unclamped, in about [-1, 1]
    codes: Tensor  # (B, G * G) int64, row-major


class VQImageModel(nn.Module):
    """Encoder -> FSQ -> decoder. Pixels are in [-1, 1]; codes are row-major over the grid."""

    def __init__(self, config: VQImageConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = FSQ(list(config.levels))
        self.decoder = Decoder(config)

    def forward(self, pixels: Tensor) -> VQImageOutput:  # (B, 3, S, S)
        quantized, indices = self.quantizer(self.encoder(pixels))  # (B, D, G, G), (B, G, G)
        return VQImageOutput(self.decoder(quantized), indices.flatten(1).long())

    def encode(self, pixels: Tensor) -> Tensor:  # (B, 3, S, S) -> (B, G * G)
        _, indices = self.quantizer(self.encoder(pixels))
        return indices.flatten(1).long()

    def decode(self, codes: Tensor) -> Tensor:  # (B, G * G) -> (B, 3, S, S)
        grid = self.config.grid
        latents = self.quantizer.indices_to_codes(codes.reshape(-1, grid, grid))  # (B, D, G, G)
        return self.decoder(latents)


def uint8_to_pixels(images: Tensor) -> Tensor:
    """uint8 (B, 3, H, W) -> float32 (B, 3, H, W) in [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def pixels_to_uint8(pixels: Tensor) -> Tensor:
    """(B, 3, H, W) in [-1, 1] -> uint8 (B, 3, H, W), rounded; values outside are clipped."""
    return pixels.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def images_to_pixels(images: Sequence[Image.Image]) -> Tensor:
    """Same-size RGB images -> (B, 3, H, W) float32 in [-1, 1]."""
    array = np.stack([np.asarray(image, dtype=np.uint8) for image in images])  # (B, H, W, 3)
    return uint8_to_pixels(torch.from_numpy(array).permute(0, 3, 1, 2))


def pixels_to_images(pixels: Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] -> RGB images."""
    return [Image.fromarray(image) for image in pixels_to_uint8(pixels).permute(0, 2, 3, 1).numpy()]


def check_codes(codes: Tensor, batched: bool, tokens: int, codebook_size: int, kind: str) -> Tensor:
    """`codes` [1, T] (or [B, 1, T] when `batched`) of integers in [0, codebook_size) -> (B, T) int64."""
    form = "[B, 1, T]" if batched else "[1, T]"
    if not isinstance(codes, Tensor):
        raise ValueError(f"{kind}: expected a tensor of codes {form}, got {type(codes).__name__}")
    shape = list(codes.shape)
    if len(shape) != (3 if batched else 2) or shape[-2:] != [1, tokens] or codes.numel() == 0:
        raise ValueError(f"{kind}: expected codes of shape {form} with T = {tokens}, got {shape}")
    if codes.dtype.is_floating_point or codes.dtype == torch.bool or codes.is_complex():
        raise ValueError(f"{kind}: codes must be integers, got {codes.dtype}")
    if int(codes.min()) < 0 or int(codes.max()) >= codebook_size:
        raise ValueError(
            f"{kind}: codes must lie in [0, {codebook_size}), got [{int(codes.min())}, {int(codes.max())}]"
        )
    return codes.reshape(-1, tokens).long()


class VQImageTokenizer:
    """The modality protocol over `VQImageModel`: media -> codes [1, T] -> PIL image."""

    kind = "vq-image"
    num_codebooks = 1

    def __init__(self, config: VQImageConfig, model: VQImageModel | None = None) -> None:
        self.config = config
        self.name = config.modality
        self.codebook_size = config.codebook_size
        if model is None:
            with torch.random.fork_rng():
                torch.manual_seed(config.seed)
                model = VQImageModel(config)
        self.model = model.eval()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> VQImageTokenizer:
        """A fresh (untrained) tokenizer; `{"preset": "tiny", ...}` starts from a preset."""
        config = dict(config)
        preset = config.pop("preset", None)
        return cls(VQImageConfig.from_preset(preset, **config) if preset else VQImageConfig.from_dict(config))

    @classmethod
    def load(cls, directory: str | Path) -> VQImageTokenizer:
        directory = Path(directory)
        config_path, weights_path = directory / "config.json", directory / "model.safetensors"
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"{directory}: not a {cls.kind} tokenizer directory (no {path.name})")
        data = json.loads(config_path.read_text())
        kind = data.pop("kind", None)
        if kind != cls.kind:
            raise ValueError(f"{config_path}: kind is {kind!r}, expected {cls.kind!r}")
        tokenizer = cls(VQImageConfig.from_dict(data))
        tokenizer.model.load_state_dict(load_file(weights_path))
        return tokenizer

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        state = {name: tensor.detach().contiguous() for name, tensor in self.model.state_dict().items()}
        atomic_write_bytes(directory / "model.safetensors", save(state))
        atomic_write_json(directory / "config.json", {"kind": self.kind, **self.config.to_dict()})

    @property
    def spec(self) -> ModalitySpec:
        return ModalitySpec(self.name, 1, self.codebook_size, tokens_per_item=self.config.tokens_per_image)

    def code_vectors(self) -> Tensor:
        """Each code's FSQ grid point, (codebook_size, len(levels)): what the decoder reads for it."""
        return self.model.quantizer.implicit_codebook

    def prepare(self, media: Any) -> Image.Image:
        """Any accepted input (path, bytes, PIL, uint8 array) -> RGB `image_size` px square."""
        image = load_image(media, max_pixels=self.config.max_pixels)
        return fit_image(image, self.config.image_size, self.config.fit)

    @torch.inference_mode()
    def encode_batch(self, images: Sequence[Any]) -> Tensor:
        """B images (any accepted input) -> codes [B, 1, T] int64."""
        if not images:
            raise ValueError(f"{self.kind}: encode_batch needs at least one image")
        pixels = images_to_pixels([self.prepare(media) for media in images])
        return self.model.encode(pixels).unsqueeze(1)

    def encode(self, media: Any) -> Tensor:
        """One image -> codes [1, T] int64 (T = grid ** 2, row-major)."""
        return self.encode_batch([media])[0]

    @torch.inference_mode()
    def _decode(self, codes: Tensor, batched: bool) -> list[Image.Image]:
        flat = check_codes(codes, batched, self.config.tokens_per_image, self.codebook_size, self.kind)
        return pixels_to_images(self.model.decode(flat))

    def decode_batch(self, codes: Tensor) -> list[Image.Image]:
        """Codes [B, 1, T] -> B RGB images of `image_size` px."""
        return self._decode(codes, batched=True)

    def decode(self, codes: Tensor) -> Image.Image:
        """Codes [1, T] -> one RGB image of `image_size` px."""
        return self._decode(codes, batched=False)[0]
