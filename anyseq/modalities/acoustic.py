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

With FSQ acoustic levels (`AcousticConfig.digits`), a code is a few digits on fixed grids,
and neighbouring digits decode to neighbouring vectors: the model then embeds and predicts
each digit on its own (one softmax per digit instead of one over every code), and decides
each digit by the mode or by the rounded mean of its distribution.

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


@dataclass
class AcousticConfig:
    num_levels: int = 4  # K, including the given level 1
    codebook_size: int = 512  # V, every level
    dim: int = 192  # D
    layers: int = 4
    heads: int = 4
    ff_dim: int = 512
    dropout: float = 0.0
    # levels 2..K are FSQ codes: their digits' grid sizes, first digit fastest (vector-quantize-pytorch's
    # numbering); () treats each code as one of `codebook_size` classes
    digits: tuple[int, ...] = ()
    # with `digits`, per level 2..K: decide each digit by its most likely value ("mode") or by its rounded
    # mean ("mean"); () decides every level by mode. See SpeechConfig.digit_decisions for the measurement
    digit_decisions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.digits = tuple(self.digits)  # JSON gives a list
        if self.digits and math.prod(self.digits) != self.codebook_size:
            raise ValueError(
                f"digits {list(self.digits)} must multiply to codebook_size {self.codebook_size}"
            )
        self.digit_decisions = tuple(self.digit_decisions)
        if self.digit_decisions and len(self.digit_decisions) != self.num_levels - 1:
            raise ValueError(f"digit_decisions needs one entry per level 2..{self.num_levels}, "
                             f"got {list(self.digit_decisions)}")  # fmt: skip
        if set(self.digit_decisions) - {"mode", "mean"}:
            raise ValueError(f"digit_decisions {list(self.digit_decisions)}: each 'mode' or 'mean'")
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
        # per level 2..K, the width of its logits: every code, or every digit's grid values side by side
        self.classes = sum(c.digits) or c.codebook_size
        radices = torch.tensor(c.digits or (c.codebook_size,))
        self.register_buffer("radices", radices, persistent=False)  # (n,)
        self.register_buffer(
            "places", torch.cumprod(torch.cat([radices.new_ones(1), radices[:-1]]), 0), persistent=False
        )  # (n,) a digit's weight in the code
        self.register_buffer("offsets", torch.cumsum(radices, 0) - radices, persistent=False)  # (n,)
        self.embeddings = nn.ModuleList(
            nn.Embedding((c.codebook_size if k == 0 else self.classes) + 1, c.dim)
            for k in range(c.num_levels)
        )
        self.segment = nn.Embedding(2, c.dim)  # 0 prompt, 1 target
        layer = nn.TransformerEncoderLayer(
            c.dim, c.heads, c.ff_dim, c.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.dim)
        self.heads = nn.Linear(c.dim, (c.num_levels - 1) * self.classes)

    def _embed(self, level: int, codes: Tensor) -> Tensor:
        """Codes (B, L) of one level, `mask_id` where hidden -> (B, L, D): the code's embedding, or
        the sum of its digits' embeddings."""
        embedding = self.embeddings[level]
        if level == 0 or not self.config.digits:
            return embedding(codes)
        masked = codes == self.mask_id
        summed = embedding(self._digits(codes.clamp_max(self.mask_id - 1)) + self.offsets).sum(dim=-2)
        return torch.where(masked[..., None], embedding.weight[-1], summed)

    def forward(self, codes: Tensor, is_target: Tensor, valid: Tensor) -> Tensor:
        """codes (B, K, L) with `mask_id` where hidden -> logits (B, K-1, L, C) for levels 2..K:
        C = V codes, or with `digits` every digit's grid values side by side."""
        c = self.config
        hidden = sum(self._embed(k, codes[:, k]) for k in range(c.num_levels))  # (B, L, D)
        hidden = hidden + self.segment(is_target.long()) + _sinusoids(codes.shape[-1], c.dim, codes.device)
        hidden = self.norm(self.encoder(hidden, src_key_padding_mask=~valid))
        logits = self.heads(hidden).view(*hidden.shape[:2], c.num_levels - 1, self.classes)
        return logits.permute(0, 2, 1, 3)  # (B, K-1, L, C)

    def _digits(self, codes: Tensor) -> Tensor:
        """codes (...) -> their digits (..., n), as FSQ's `indices_to_level_indices`; without `digits`
        the one digit is the code."""
        return (codes[..., None] // self.places) % self.radices

    def _digit_log_probs(self, logits: Tensor) -> list[Tensor]:
        """logits (..., C) -> per digit its log-probabilities (..., radix); one entry without `digits`."""
        return [part.float().log_softmax(-1) for part in logits.split(self.radices.tolist(), dim=-1)]

    def _nll(self, logits: Tensor, codes: Tensor) -> Tensor:
        """logits (N, C), codes (N,) -> mean negative log-likelihood of the codes (summed over digits)."""
        digits = self._digits(codes)  # (N, n)
        parts = self._digit_log_probs(logits)
        return -sum(part.gather(1, digits[:, i : i + 1]) for i, part in enumerate(parts)).mean()

    def decide(self, logits: Tensor, decision: str = "mode") -> tuple[Tensor, Tensor]:
        """logits (B, L, C) -> codes (B, L) and their confidence (B, L): the most likely code, or each
        digit by its mode or rounded mean (`decision`), with the product of the chosen digits' probabilities."""
        codes = torch.zeros(logits.shape[:-1], dtype=torch.long, device=logits.device)
        confidence = torch.ones(logits.shape[:-1], device=logits.device)
        for i, part in enumerate(self._digit_log_probs(logits)):
            probs = part.exp()
            if self.config.digits and decision == "mean":
                grid = torch.arange(probs.shape[-1], device=probs.device, dtype=probs.dtype)
                digit = (probs @ grid).round().long()
            else:
                digit = probs.argmax(-1)
            codes += digit * self.places[i]
            confidence *= probs.gather(-1, digit[..., None])[..., 0]
        return codes, confidence

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
        logits = self(codes.masked_fill(hide, self.mask_id), is_target, valid)  # (B, K-1, L, C)
        chosen = logits[torch.arange(rows, device=device), level - 1]  # (B, L, C)
        targets = codes[torch.arange(rows, device=device), level]  # (B, L)
        return self._nll(chosen[masked], targets[masked])

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
            decision = c.digit_decisions[level - 1] if c.digit_decisions else "mode"
            hidden = fill.clone()  # frames of this level still masked
            total = fill.sum(dim=1)  # (B,)
            for step in range(steps[level - 1]):
                best, confidence = self.decide(
                    self(codes, is_target, valid)[:, level - 1], decision
                )  # (B, L)
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
