"""The acoustic model: speech levels 2..K from level 1 and a voice prompt, in a few parallel steps.

AnyGPT (Zhan et al., ACL 2024, section 3.1) lets its language model write only the
first (semantic) level of SpeechTokenizer and hands it to SoundStorm (Borsos et al.
2023), a non-autoregressive masked model that fills in the other levels from the codes
of a 3-second voice prompt: that is how a reply is spoken in any voice. This is the
same model at AnySeq's size:

    input frames: [prompt: all K levels | target: level 1, levels 2..K masked]
      -> sum of per-level code embeddings + segment + position (B, L, D)
      -> bidirectional Transformer encoder
      -> one head per level 2..K (B, K-1, L, V)

Training (SoundStorm's scheme) picks one level k per example, masks a cosine-scheduled
share of its target frames, hides every level above it, shows every level below it,
and scores only the masked positions of level k. Generation fills level 2, then 3, ...,
each in `steps[k]` rounds that keep the most confident predictions (MaskGIT) and
re-mask the rest. Decoding is greedy, so the same input always gives the same codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass
class AcousticConfig:
    num_levels: int = 4  # K, including the given level 1
    codebook_size: int = 512  # V, every level
    dim: int = 192  # D
    layers: int = 4
    heads: int = 4
    ff_dim: int = 512
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.num_levels < 2:
            raise ValueError(f"the acoustic model needs K >= 2 levels to fill, got {self.num_levels}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be a multiple of heads {self.heads}")


@dataclass
class AcousticBatch:
    """Prompt and target frames laid side by side; padding at the end of each row."""

    codes: Tensor  # (B, K, L) prompt frames then target frames, true codes (padding: any valid code)
    is_target: Tensor  # (B, L) True on target frames
    valid: Tensor  # (B, L) False on padding


def _sinusoids(length: int, dim: int, device: torch.device) -> Tensor:
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table  # (L, D)


class AcousticModel(nn.Module):
    """Masked bidirectional Transformer over [prompt | target] frames; see the module docstring."""

    def __init__(self, config: AcousticConfig) -> None:
        super().__init__()
        c = self.config = config
        self.mask_id = c.codebook_size  # one extra embedding per level stands for "masked"
        self.embeddings = nn.ModuleList(nn.Embedding(c.codebook_size + 1, c.dim) for _ in range(c.num_levels))
        self.segment = nn.Embedding(2, c.dim)  # 0 prompt, 1 target
        layer = nn.TransformerEncoderLayer(
            c.dim, c.heads, c.ff_dim, c.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.dim)
        self.heads = nn.Linear(c.dim, (c.num_levels - 1) * c.codebook_size)

    def forward(self, codes: Tensor, is_target: Tensor, valid: Tensor) -> Tensor:
        """codes (B, K, L) with `mask_id` where hidden -> logits (B, K-1, L, V) for levels 2..K."""
        c = self.config
        hidden = sum(embedding(codes[:, k]) for k, embedding in enumerate(self.embeddings))  # (B, L, D)
        hidden = hidden + self.segment(is_target.long()) + _sinusoids(codes.shape[-1], c.dim, codes.device)
        hidden = self.norm(self.encoder(hidden, src_key_padding_mask=~valid))
        logits = self.heads(hidden).view(*hidden.shape[:2], c.num_levels - 1, c.codebook_size)
        return logits.permute(0, 2, 1, 3)  # (B, K-1, L, V)

    def loss(self, batch: AcousticBatch, generator: torch.Generator | None = None) -> Tensor:
        """SoundStorm's masked-level objective: cross-entropy on the masked frames of one level per row."""
        codes, is_target, valid = batch.codes, batch.is_target, batch.valid
        rows, levels, _ = codes.shape
        device = codes.device
        level = torch.randint(1, levels, (rows,), generator=generator).to(device)  # (B,) level to learn
        ratio = torch.cos(torch.rand(rows, generator=generator).to(device) * math.pi / 2)  # share masked
        scores = torch.rand(codes.shape[0], codes.shape[2], generator=generator).to(device)  # (B, L)
        candidates = is_target & valid
        masked = candidates & (scores < ratio[:, None])
        first = (scores + (~candidates) * 2).argmin(dim=1)  # at least one masked frame per row
        masked[torch.arange(rows, device=device), first] = True
        level_index = torch.arange(levels, device=device)[None, :, None]  # (1, K, 1)
        hide = is_target[:, None, :] & (
            (level_index > level[:, None, None])
            | ((level_index == level[:, None, None]) & masked[:, None, :])
        )
        logits = self(codes.masked_fill(hide, self.mask_id), is_target, valid)  # (B, K-1, L, V)
        chosen = logits[torch.arange(rows, device=device), level - 1]  # (B, L, V)
        targets = codes[torch.arange(rows, device=device), level]  # (B, L)
        return F.cross_entropy(chosen[masked], targets[masked])

    @torch.inference_mode()
    def generate(self, batch: AcousticBatch, steps: list[int]) -> Tensor:
        """Fill levels 2..K of the target frames; level 1 of the targets and all prompt levels are kept.

        steps[k-1]: refinement rounds for level k+1. Returns codes (B, K, L), prompt frames included.
        """
        c = self.config
        if len(steps) != c.num_levels - 1 or min(steps) < 1:
            raise ValueError(f"need one step count >= 1 per level 2..{c.num_levels}, got {steps}")
        codes, is_target, valid = batch.codes.clone(), batch.is_target, batch.valid
        fill = is_target & valid  # (B, L) frames to generate
        codes[:, 1:] = codes[:, 1:].masked_fill(is_target[:, None, :], self.mask_id)
        for level in range(1, c.num_levels):
            hidden = fill.clone()  # frames of this level still masked
            total = fill.sum(dim=1)  # (B,)
            for step in range(steps[level - 1]):
                logits = self(codes, is_target, valid)[:, level - 1]  # (B, L, V)
                confidence, best = logits.softmax(-1).max(-1)  # (B, L)
                keep_masked = torch.floor(
                    total * math.cos(math.pi / 2 * (step + 1) / steps[level - 1])
                ).long()
                confidence = confidence.masked_fill(~hidden, float("inf"))  # decided frames stay decided
                order = confidence.argsort(dim=1)  # least confident first
                rank = torch.empty_like(order)
                rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
                still = hidden & (rank < keep_masked[:, None])
                reveal = hidden & ~still
                codes[:, level] = torch.where(reveal, best, codes[:, level])
                hidden = still
        return codes
