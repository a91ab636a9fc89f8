"""Pretrained image VQ models from transformers behind the modality protocol.

AnyGPT (Zhan et al., ACL 2024) tokenizes images with a pretrained model (SEED); a user
with real weights can do the same in AnySeq with the image tokenizers of Chameleon,
Emu3 or Janus, which transformers ships as `ChameleonVQVAE`, `Emu3VQVAE` and
`JanusVQVAE`. Weights are read only from a local directory, never downloaded:

- a VQ model's own directory (what `save_pretrained` of one of those classes writes), or
- a whole model's directory (e.g. Janus-Pro or Emu3-Gen converted to transformers):
  its `config.json` holds a `vq_config`, and the tensors under `...vqmodel.` are taken.

An image becomes a `grid` x `grid` map of codes (row-major, one codebook): the image is
made square at `image_size` (`fit`: crop, pad or stretch) and normalised with the
model's `mean` and `std` ([-1, 1] for all three by default). transformers' Chameleon
port keeps only the encoder and codebook (Chameleon's image decoder was not released),
so `ChameleonImageTokenizer.decode` raises `NotImplementedError`.

A saved adapter is self-contained: `config.json` (kind, settings and the VQ model's
config) and `model.safetensors` (the VQ model's weights).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save
from torch import Tensor, nn
from transformers import (
    ChameleonVQVAE,
    ChameleonVQVAEConfig,
    Emu3VQVAE,
    Emu3VQVAEConfig,
    JanusVQVAE,
    JanusVQVAEConfig,
)

from anyseq.io import atomic_write_bytes, atomic_write_json
from anyseq.media import MAX_IMAGE_PIXELS, fit_image, load_image
from anyseq.modalities.base import ModalitySpec
from anyseq.modalities.image_vq import check_codes, images_to_pixels, pixels_to_images

WEIGHT_PREFIX = "vqmodel."  # where a whole model keeps its VQ model's tensors (after any outer prefix)


@dataclass
class HFImageConfig:
    model_dir: str | None = None  # a local VQ model or whole-model directory; None when `vq_config` is given
    vq_config: dict[str, Any] | None = None  # the VQ model's transformers config (filled in on loading)
    image_size: int | None = None  # None: the model's native size (see each family)
    fit: Literal["crop", "pad", "stretch"] = "crop"
    max_pixels: int = MAX_IMAGE_PIXELS
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # pixel = (rgb / 255 - mean) / std
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    modality: str = "image"

    def __post_init__(self) -> None:
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        if (self.model_dir is None) == (self.vq_config is None):
            raise ValueError("give exactly one of model_dir (a local directory) and vq_config")
        if self.fit not in ("crop", "pad", "stretch"):
            raise ValueError(f"fit must be 'crop', 'pad' or 'stretch', got {self.fit!r}")


def _local_directory(model_dir: str) -> Path:
    path = Path(model_dir).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{model_dir}: not a local model directory (no config.json); image VQ models are loaded "
            "only from local directories, never downloaded"
        )
    return path


def _weight_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [directory / name for name in names]
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    raise FileNotFoundError(
        f"{directory}: no model.safetensors (or sharded index); only safetensors are read"
    )


def _vq_weights(directory: Path) -> dict[str, Tensor]:
    """The tensors under `...vqmodel.` of a whole model's safetensors files, prefix removed."""
    weights = {}
    for path in _weight_files(directory):
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                if WEIGHT_PREFIX in key:
                    weights[key.split(WEIGHT_PREFIX, 1)[1]] = handle.get_tensor(key)
    if not weights:
        raise ValueError(f"{directory}: no tensors named '*{WEIGHT_PREFIX}*' in its safetensors files")
    return weights


class HFImageTokenizer:
    """Common part of the adapters: loading, saving, pixels in and out, code checks.

    A family sets `kind`, `vq_model_type` (the `model_type` of its VQ model's config),
    `model_class` and `config_class`, and overrides what differs among `_native_size`,
    `_grid`, `_codebook_size`, `_encode` and `_decode`.
    """

    kind: ClassVar[str]
    vq_model_type: ClassVar[str]
    model_class: ClassVar[type[nn.Module]]
    config_class: ClassVar[type]
    num_codebooks = 1

    def __init__(self, config: HFImageConfig, model: nn.Module) -> None:
        self.config = config
        self.model = model.eval()
        self.name = config.modality
        self.image_size = config.image_size or self._native_size()
        self.grid = self._grid(self.image_size)
        self.codebook_size = self._codebook_size()
        mean, std = torch.tensor(config.mean), torch.tensor(config.std)
        self._mean, self._std = mean.view(1, 3, 1, 1), std.view(1, 3, 1, 1)

    # ---- loading and saving ------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HFImageTokenizer:
        """`{"model_dir": "/local/dir", ...}` loads pretrained weights; `{"vq_config": {...}}` builds a random model."""
        settings = HFImageConfig(**config)
        if settings.vq_config is not None:
            return cls(settings, cls.model_class(cls.config_class.from_dict(settings.vq_config)))
        directory = _local_directory(settings.model_dir)
        data = json.loads((directory / "config.json").read_text())
        if data.get("model_type") == cls.vq_model_type:
            model = cls.model_class.from_pretrained(
                str(directory), local_files_only=True, dtype=torch.float32
            )
        elif isinstance(data.get("vq_config"), dict):
            weights = _vq_weights(directory)
            model = cls.model_class(cls.config_class.from_dict(data["vq_config"]))
            model.load_state_dict(weights)
        else:
            raise ValueError(
                f"{directory}/config.json: model_type {data.get('model_type')!r} is neither "
                f"{cls.vq_model_type!r} nor a model with a 'vq_config'"
            )
        settings.vq_config = model.config.to_diff_dict()
        settings.model_dir = None
        return cls(settings, model)

    @classmethod
    def load(cls, directory: str | Path) -> HFImageTokenizer:
        directory = Path(directory)
        config_path, weights_path = directory / "config.json", directory / "model.safetensors"
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"{directory}: not a {cls.kind} tokenizer directory (no {path.name})")
        data = json.loads(config_path.read_text())
        kind = data.pop("kind", None)
        if kind != cls.kind:
            raise ValueError(f"{config_path}: kind is {kind!r}, expected {cls.kind!r}")
        known = {f.name for f in fields(HFImageConfig)}
        tokenizer = cls.from_config({k: v for k, v in data.items() if k in known})
        tokenizer.model.load_state_dict(load_file(weights_path))
        return tokenizer

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        settings = asdict(self.config) | {"model_dir": None, "vq_config": self.model.config.to_diff_dict()}
        state = {name: tensor.detach().contiguous() for name, tensor in self.model.state_dict().items()}
        atomic_write_bytes(directory / "model.safetensors", save(state))
        atomic_write_json(directory / "config.json", {"kind": self.kind, **json.loads(json.dumps(settings))})

    # ---- the protocol ------------------------------------------------------------------
    @property
    def spec(self) -> ModalitySpec:
        return ModalitySpec(self.name, 1, self.codebook_size, tokens_per_item=self.grid**2)

    def prepare(self, media: Any) -> Image.Image:
        """Any accepted input (path, bytes, PIL, uint8 array) -> RGB `image_size` px square."""
        return fit_image(
            load_image(media, max_pixels=self.config.max_pixels), self.image_size, self.config.fit
        )

    @torch.inference_mode()
    def encode_batch(self, images: Sequence[Any]) -> Tensor:
        """B images -> codes [B, 1, T] int64 (T = grid ** 2, row-major)."""
        if not images:
            raise ValueError(f"{self.kind}: encode_batch needs at least one image")
        unit = (images_to_pixels([self.prepare(media) for media in images]) + 1) / 2  # (B, 3, S, S) in [0, 1]
        codes = self._encode((unit - self._mean) / self._std)  # (B, G, G)
        return codes.reshape(len(images), 1, -1).long()

    def encode(self, media: Any) -> Tensor:
        return self.encode_batch([media])[0]

    @torch.inference_mode()
    def _decode_images(self, codes: Tensor, batched: bool) -> list[Image.Image]:
        flat = check_codes(codes, batched, self.grid**2, self.codebook_size, self.kind)
        pixels = self._decode(flat.reshape(-1, self.grid, self.grid))  # (B, 3, S, S), normalised
        return pixels_to_images((pixels * self._std + self._mean) * 2 - 1)

    def decode_batch(self, codes: Tensor) -> list[Image.Image]:
        """Codes [B, 1, T] -> B RGB images."""
        return self._decode_images(codes, batched=True)

    def decode(self, codes: Tensor) -> Image.Image:
        """Codes [1, T] -> one RGB image."""
        return self._decode_images(codes, batched=False)[0]

    # ---- per family --------------------------------------------------------------------
    def _downsampling(self) -> int:
        return 2 ** (len(self.model.config.channel_multiplier) - 1)

    def _native_size(self) -> int:
        raise NotImplementedError

    def _grid(self, image_size: int) -> int:
        factor = self._downsampling()
        if image_size % factor:
            raise ValueError(f"{self.kind}: image_size {image_size} must be a multiple of {factor}")
        return image_size // factor

    def _codebook_size(self) -> int:
        return int(self.model.config.num_embeddings)

    def _encode(self, pixels: Tensor) -> Tensor:  # (B, 3, S, S) normalised -> (B, G, G)
        return self.model.encode(pixels).image_tokens.reshape(len(pixels), self.grid, self.grid)

    def _decode(self, codes: Tensor) -> Tensor:  # (B, G, G) -> (B, 3, S, S) normalised
        raise NotImplementedError


class ChameleonImageTokenizer(HFImageTokenizer):
    """Chameleon's VQ-VAE (Make-a-Scene style; 512 px -> 32 x 32 codes of 8192); encoder only."""

    kind = "chameleon-image"
    vq_model_type = "chameleon_vqgan"
    model_class, config_class = ChameleonVQVAE, ChameleonVQVAEConfig

    def _native_size(self) -> int:
        return int(self.model.config.resolution)

    def _decode(self, codes: Tensor) -> Tensor:
        raise NotImplementedError(
            f"{self.kind}: transformers' ChameleonVQVAE has no image decoder (Chameleon's was not released); "
            "use emu3-image or janus-image to generate images"
        )


class Emu3ImageTokenizer(HFImageTokenizer):
    """Emu3's VQ-VAE (spatial factor 8, codebook 32768); images are one temporal step."""

    kind = "emu3-image"
    vq_model_type = "emu3_vqgan"
    model_class, config_class = Emu3VQVAE, Emu3VQVAEConfig

    def _native_size(self) -> int:
        return 512  # Emu3's processor keeps images between 512^2 and 1024^2 pixels

    def _codebook_size(self) -> int:
        return int(self.model.config.codebook_size)

    def _encode(self, pixels: Tensor) -> Tensor:
        sizes = torch.tensor([list(pixels.shape[-2:])] * len(pixels))
        return torch.stack(self.model.encode(pixels, sizes).image_tokens)  # (B, G, G)

    def _decode(self, codes: Tensor) -> Tensor:
        return self.model.decode(codes)


class JanusImageTokenizer(HFImageTokenizer):
    """Janus's VQ-VAE (LlamaGen style; 384 px -> 24 x 24 codes of 16384)."""

    kind = "janus-image"
    vq_model_type = "janus_vqgan"
    model_class, config_class = JanusVQVAE, JanusVQVAEConfig

    def _native_size(self) -> int:
        return int(self.model.config.num_patches) * self._downsampling()

    def _grid(self, image_size: int) -> int:
        grid = super()._grid(image_size)
        if grid != self.model.config.num_patches:
            raise ValueError(
                f"{self.kind}: the decoder needs {self.model.config.num_patches} x {self.model.config.num_patches} "
                f"codes, i.e. image_size {self._native_size()}; got image_size {image_size}"
            )
        return grid

    def _decode(self, codes: Tensor) -> Tensor:
        return self.model.decode(codes.flatten(1))
