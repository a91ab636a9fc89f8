"""Orderings of multi-codebook codes in the language model's sequence.

AnyGPT flattens EnCodec's 4 codebooks frame by frame: for each frame, levels 0..K-1,
each shifted into its own sub-range (token = code + codebook_size * level). A pattern
object owns that ordering so another (delayed, parallel) can be added beside it, as in
audiocraft's `CodebooksPatternProvider`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FrameMajorPattern:
    """Frame-major flattening: position t*K + k holds frame t, level k.

    Local ids of level k lie in [k * codebook_size, (k + 1) * codebook_size).
    """

    num_codebooks: int  # K
    codebook_size: int

    def __post_init__(self) -> None:
        if self.num_codebooks < 1 or self.codebook_size < 1:
            raise ValueError(f"pattern needs K >= 1 and codebook_size >= 1, got {self}")

    @property
    def size(self) -> int:
        """Number of local ids the flattened stream uses."""
        return self.num_codebooks * self.codebook_size

    def level_at(self, position: int) -> int:
        """Codebook level of the token at `position` inside a span."""
        return position % self.num_codebooks

    def is_frame_boundary(self, position: int) -> bool:
        """True when `position` tokens make whole frames."""
        return position % self.num_codebooks == 0

    def flatten(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: [K, T] local codes in [0, codebook_size) -> [K*T] local ids."""
        if codes.ndim != 2 or codes.shape[0] != self.num_codebooks:
            raise ValueError(f"expected codes of shape [{self.num_codebooks}, T], got {list(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(
                f"codes must lie in [0, {self.codebook_size}), got [{int(codes.min())}, {int(codes.max())}]"
            )
        levels = torch.arange(self.num_codebooks, device=codes.device).unsqueeze(1)  # (K, 1)
        shifted = codes.long() + levels * self.codebook_size  # (K, T)
        return shifted.t().reshape(-1)  # (T*K,) frame-major

    def unflatten(self, ids: torch.Tensor) -> torch.Tensor:
        """[K*T] local ids -> codes [K, T]; rejects partial frames and ids at the wrong level."""
        if ids.ndim != 1:
            raise ValueError(f"expected a 1-D span, got shape {list(ids.shape)}")
        if ids.numel() % self.num_codebooks:
            raise ValueError(
                f"a span of {ids.numel()} tokens is not a whole number of {self.num_codebooks}-token frames"
            )
        frames = ids.long().reshape(-1, self.num_codebooks).t()  # (K, T)
        levels = torch.arange(self.num_codebooks, device=ids.device).unsqueeze(1)
        codes = frames - levels * self.codebook_size
        bad = (codes < 0) | (codes >= self.codebook_size)
        if bad.any():
            k, t = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"token {int(frames[k, t])} at frame {t} is not a level-{k} id "
                f"(expected [{k * self.codebook_size}, {(k + 1) * self.codebook_size}))"
            )
        return codes


PATTERNS = {"frame-major": FrameMajorPattern}


def build_pattern(name: str, num_codebooks: int, codebook_size: int) -> FrameMajorPattern:
    """Look up a pattern class by its registered name."""
    if name not in PATTERNS:
        raise ValueError(f"unknown codebook pattern {name!r}; known: {sorted(PATTERNS)}")
    return PATTERNS[name](num_codebooks, codebook_size)
