"""Nearest-neighbour retrieval of emoji: the judge of generated emoji pictures.

AnyGPT scores text-to-image with CLIPscore (COCO, 0.65), a model we cannot download.
AnyWorld's emoji are an open vocabulary of Noto Color Emoji renders, so a generated
emoji is judged by retrieval instead: the picture is compared with every rendered emoji
of the world (its gallery, a few renderings of each, since the world draws every emoji at
its own scale and place), and it counts as right when its nearest neighbour is the emoji
the prompt named. The features are the picture itself, box-filtered to 16 x 16 RGB, so the
judge shares nothing with any image tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from safetensors.numpy import load_file, save_file

from anyseq.io import atomic_directory, atomic_write_json
from anyseq.media import load_image

FEATURE_SIDE = 16  # pictures are compared as 16 x 16 RGB


def emoji_features(image: Any) -> np.ndarray:
    """A picture (path, bytes, PIL, array) -> (16 * 16 * 3,) float32 in [0, 1]."""
    small = load_image(image).resize((FEATURE_SIDE, FEATURE_SIDE), Image.Resampling.BOX)
    return (np.asarray(small, dtype=np.float32) / 255.0).reshape(-1)


@dataclass
class EmojiGallery:
    """Renderings of every emoji of a world: `names[i]` has features `features[i]` (N, D); a name
    may have several pictures."""

    names: list[str]
    features: np.ndarray  # (N, D)

    @classmethod
    def build(cls, images: Sequence[Any], names: Sequence[str]) -> EmojiGallery:
        if len(images) != len(names) or not names:
            raise ValueError(f"need one name per emoji picture (>0), got {len(names)} and {len(images)}")
        return cls(list(names), np.stack([emoji_features(image) for image in images]))

    def nearest(self, images: Sequence[Any]) -> list[str]:
        """The name of each picture's nearest gallery emoji (Euclidean distance)."""
        if not images:
            return []
        queries = np.stack([emoji_features(image) for image in images])  # (Q, D)
        distances = (
            (queries**2).sum(axis=1, keepdims=True)
            - 2 * queries @ self.features.T
            + (self.features**2).sum(axis=1)[None, :]
        )  # (Q, N)
        return [self.names[i] for i in distances.argmin(axis=1)]

    def accuracy(self, images: Sequence[Any], names: Sequence[str]) -> float:
        """Share of pictures whose nearest gallery emoji is the one named."""
        if len(images) != len(names) or not names:
            raise ValueError(f"need one name per picture (>0), got {len(names)} and {len(images)}")
        unknown = sorted(set(names) - set(self.names))
        if unknown:
            raise ValueError(f"emoji {unknown[:5]} are not in the gallery of {len(set(self.names))}")
        found = self.nearest(images)
        return sum(f == n for f, n in zip(found, names, strict=True)) / len(names)

    def save(self, directory: str | Path) -> Path:
        with atomic_directory(directory) as temp:
            save_file({"features": np.ascontiguousarray(self.features)}, str(temp / "model.safetensors"))
            atomic_write_json(temp / "config.json", {"kind": "emoji-gallery", "names": self.names})
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path) -> EmojiGallery:
        config = json.loads((Path(directory) / "config.json").read_text())
        return cls(config["names"], load_file(str(Path(directory) / "model.safetensors"))["features"])
