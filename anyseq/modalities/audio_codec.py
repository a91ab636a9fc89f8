"""The audio codec core shared by music and speech: spectrogram -> encoder -> residual quantizer -> decoder.

AnyGPT (Zhan et al., ACL 2024) turns music into EnCodec codes (4 residual levels at 50 Hz)
and speech into SpeechTokenizer codes (8 levels, the first distilled to carry content).
Both are residual-VQ codecs trained for days on GPUs; AnySeq trains its own in minutes on
2 CPU cores, so the core codes log-magnitude STFT frames and leaves the phase to
Griffin-Lim. Measured on AnyWorld melodies: Griffin-Lim from the true magnitudes keeps
pitch on 98.5% of voiced frames, so the networks only have to learn magnitudes, which a
small conv codec does within the budget (a waveform codec must also learn phase, which
EnCodec does with adversarial training far beyond it). Music codes every STFT bin; speech
codes log mel bands (`CodecConfig.mels`), which its pseudo-inverse maps back to bins.

Data flow, one latent frame per `sample_rate / frame_rate` samples:

    audio (B, N)
      -> log |STFT| (B, F, T*S)          F = n_fft/2 + 1 bins (or `mels` bands), S = STFT frames per latent frame
      -> standardised per bin            statistics fitted on training audio
      -> encoder (B, T, D)               S stacked STFT frames -> residual conv blocks -> D
      -> quantizer (vector-quantize-pytorch's ResidualVQ; ResidualFSQ through `ResidualFSQQuantizer`;
         FSQ with one group per level through `GroupedFSQQuantizer`): codes (B, K, T), level
         vectors (K, B, T, D) that sum to the quantized latent
      -> decoder (B, F, T*S)             predicted log |STFT|
      -> |STFT| (mel bands: their pseudo-inverse) -> Griffin-Lim (B, T * samples_per_frame)

Stable API (music.py and the speech tokenizer build on it):
- `CodecConfig`: every dimension; presets live with the modality that uses them.
- `AudioCodec(config)`, an `nn.Module`:
    - `fit_feature_statistics(audio (B, N))`: call once on training audio before training;
    - `forward(audio (B, N), lengths (B,) | None) -> CodecOutput`, used in training;
      `CodecOutput.level_features` (K, B, T, D) holds the quantized features using
      levels 1..k (straight-through to the encoder), so a caller can add an auxiliary
      loss on level 1 (e.g. speech's CTC head) and backpropagate into the encoder;
    - `encode(audio (B, N)) -> codes (B, K, T)`;
    - `decode(codes (B, K, T)) -> audio (B, T * samples_per_frame)` from all K levels;
    - `decode_magnitude(codes) -> (B, F, T*S)` and `vocode(magnitude) -> audio`, the two
      halves of `decode`, for callers that replace the vocoder;
    - `frames_for(num_samples) -> T`.
- `reconstruction_losses(prediction, target, frame_mask, config)`: the spectral loss terms.
- `griffin_lim(magnitude, ...)`: the phase reconstruction, usable as a reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import librosa
import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn import functional as F
from vector_quantize_pytorch import FSQ, ResidualFSQ, ResidualVQ

LOG_FLOOR = 1e-4  # magnitudes are normalised so a full-scale sine peaks near 0.5; -80 dB is silence


@dataclass
class CodecConfig:
    sample_rate: int = 16000
    frame_rate: int = 25  # latent frames (token frames) per second
    n_fft: int = 1024
    stft_hop: int = 160  # must divide sample_rate / frame_rate
    num_codebooks: int = 4  # K residual levels
    codebook_size: int = 256
    latent_dim: int = 64  # D, the width the quantizer sees
    hidden: int = 256  # conv channels of encoder and decoder
    blocks: int = 3  # residual conv blocks in each of encoder and decoder
    kernel_size: int = 5  # temporal kernel of the blocks, in latent frames
    # "rvq": residual VQ with EMA codebooks, k-means start and dead-code re-seeding (music). "fsq": residual
    # finite scalar quantization (Mentzer et al. 2023), `fsq_levels` per level, no codebook to learn (speech:
    # see SpeechConfig.quantizer for the measurement)
    # "fsq_groups": every level its own FSQ group of len(fsq_levels) dimensions, side by side, not residual:
    # residual FSQ refines the same len(fsq_levels) dimensions level after level
    quantizer: Literal["rvq", "fsq", "fsq_groups"] = "rvq"
    fsq_levels: tuple[int, ...] = ()  # "fsq", "fsq_groups": their product is codebook_size
    commitment_weight: float = 0.25  # "rvq" only, as are the next three
    ema_decay: float = 0.95  # codebook EMA; low because the tiny budget is a few thousand steps
    dead_code_threshold: float = 2.0  # a code used less (EMA count) is re-seeded from the batch
    quantizer_dropout: bool = False  # train with random K' <= K levels so fewer levels also decode
    # "mse": squared log-magnitude error. "l1" fits the median, which leaves sparse harmonic peaks at the
    # noise floor for hundreds of steps (measured on AnyWorld melodies: pitch kept 35% with L1, 81% with
    # MSE after 400 steps)
    reconstruction: Literal["mse", "l1"] = "mse"
    convergence_weight: float = 1.0  # spectral convergence on linear magnitudes, 0 to leave it out
    griffin_lim_iters: int = 32  # music's tiny preset uses 8 (see griffin_lim)
    # 0: code log |STFT| bins (music: pitch needs every bin). > 0: code the log magnitudes of this many
    # mel bands, mapped back to bins by the bands' pseudo-inverse before Griffin-Lim (speech: see SpeechConfig)
    mels: int = 0

    def __post_init__(self) -> None:
        if self.sample_rate % self.frame_rate:
            raise ValueError(
                f"sample_rate {self.sample_rate} must be a multiple of frame_rate {self.frame_rate}"
            )
        if self.samples_per_frame % self.stft_hop:
            raise ValueError(
                f"stft_hop {self.stft_hop} must divide the {self.samples_per_frame} samples of a latent frame"
            )
        if self.n_fft < self.stft_hop:
            raise ValueError(f"n_fft {self.n_fft} must be at least stft_hop {self.stft_hop}")
        if self.num_codebooks < 1 or self.codebook_size < 2:
            raise ValueError(f"need num_codebooks >= 1 and codebook_size >= 2, got {self}")
        self.fsq_levels = tuple(self.fsq_levels)  # JSON gives a list
        if self.quantizer not in ("rvq", "fsq", "fsq_groups"):
            raise ValueError(f"quantizer {self.quantizer!r}: 'rvq', 'fsq' or 'fsq_groups'")
        if self.quantizer != "rvq" and math.prod(self.fsq_levels) != self.codebook_size:
            raise ValueError(
                f"fsq_levels {list(self.fsq_levels)} must multiply to codebook_size {self.codebook_size}"
            )
        if not 0 <= self.mels < self.bins:
            raise ValueError(f"mels {self.mels}: 0 (STFT bins) or fewer than the {self.bins} bins")

    @property
    def samples_per_frame(self) -> int:
        return self.sample_rate // self.frame_rate

    @property
    def stft_per_frame(self) -> int:
        """S: STFT frames per latent frame."""
        return self.samples_per_frame // self.stft_hop

    @property
    def bins(self) -> int:
        """STFT frequency bins."""
        return self.n_fft // 2 + 1

    @property
    def features(self) -> int:
        """F: what the codec codes per STFT frame, mel bands or STFT bins."""
        return self.mels or self.bins


@dataclass
class CodecOutput:
    """What one training forward pass returns; losses are already masked to real frames."""

    log_magnitude: Tensor  # (B, F, T*S) decoder prediction
    target: Tensor  # (B, F, T*S) log |STFT| of the input
    codes: Tensor  # (B, K, T)
    latents: Tensor  # (B, T, D) encoder output before quantization
    level_features: Tensor  # (K, B, T, D) quantized with levels 1..k, straight-through to the encoder
    frame_mask: Tensor  # (B, T) True on frames inside the input
    losses: dict[str, Tensor]  # reconstruction, convergence (if weighted), commitment

    @property
    def loss(self) -> Tensor:
        return sum(self.losses.values())


def full_precision() -> torch.autocast:
    """A context in which CPU bf16 autocast is off: quantizers pick codes by distances and grids
    that bf16's 8-bit mantissa would blur (the training loops autocast the convolutions around them)."""
    return torch.autocast("cpu", enabled=False)


def reconstruction_losses(
    prediction: Tensor, target: Tensor, frame_mask: Tensor, config: CodecConfig
) -> dict[str, Tensor]:
    """Log-magnitude error (MSE or L1) and spectral convergence, over frames inside the input.

    prediction, target: log magnitudes (B, F, T*S); frame_mask: (B, T) latent frames.
    """
    weight = frame_mask.repeat_interleave(config.stft_per_frame, dim=1)[:, None, :].float()  # (B, 1, T*S)
    error = prediction - target
    error = error**2 if config.reconstruction == "mse" else error.abs()
    losses = {"reconstruction": (error * weight).sum() / (weight.sum() * target.shape[1])}
    if config.convergence_weight:
        difference = ((prediction.exp() - target.exp()) * weight).norm()
        losses["convergence"] = config.convergence_weight * difference / (target.exp() * weight).norm()
    return losses


class ResidualFSQQuantizer(nn.Module):
    """vector-quantize-pytorch's `ResidualFSQ` behind the calls the codec makes of `ResidualVQ`.

    FSQ rounds a few bounded dimensions to fixed grids: every code exists from the first
    step, and the encoder learns to use them, where EMA codebooks chase moving latents.
    """

    def __init__(self, dim: int, levels: tuple[int, ...], num_quantizers: int) -> None:
        super().__init__()
        self.fsq = ResidualFSQ(dim=dim, levels=list(levels), num_quantizers=num_quantizers)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, return_all_codes: bool = False
    ) -> tuple[Tensor, ...]:
        """x (B, T, D) -> quantized (B, T, D), indices (B, T, K), commitment (K,) zeros
        [, level vectors (K, B, T, D) that sum to the quantized output]. `mask` is unused:
        no codebook statistics to keep padding out of."""
        quantized, indices, *codes = self.fsq(x, return_all_codes=return_all_codes)
        indices = indices.long()  # FSQ gives int32; codes are int64 everywhere else
        commitment = torch.zeros(indices.shape[-1], device=x.device)
        if not return_all_codes:
            return quantized, indices, commitment
        # codes (K, B, T, d), scaled per level -> the output of levels 1..k, (K, B, T, D)
        prefixes = self.fsq.project_out(codes[0].cumsum(dim=0))
        levels = torch.cat([prefixes[:1], prefixes.diff(dim=0)])
        return quantized, indices, commitment, levels

    def get_output_from_indices(self, indices: Tensor) -> Tensor:
        """indices (B, T, K) -> quantized (B, T, D)."""
        return self.fsq.get_output_from_indices(indices)

    @property
    def codebooks(self) -> Tensor:
        """Each level's grid points, (K, codebook_size, len(levels)), as `ResidualVQ.codebooks`."""
        return self.fsq.codebooks


class GroupedFSQQuantizer(nn.Module):
    """vector-quantize-pytorch's `FSQ` with one codebook per level, behind the calls the codec
    makes of `ResidualVQ`: the latent is projected to K groups of len(levels) bounded
    dimensions, each rounded to its grid, so K levels code K * len(levels) dimensions."""

    def __init__(self, dim: int, levels: tuple[int, ...], num_quantizers: int) -> None:
        super().__init__()
        self.groups = num_quantizers
        self.fsq = FSQ(levels=list(levels), dim=dim, num_codebooks=num_quantizers)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, return_all_codes: bool = False
    ) -> tuple[Tensor, ...]:
        """As `ResidualFSQQuantizer.forward`; level k's vector is what group k adds to the output
        (the output projection's bias goes to level 1)."""
        fsq = self.fsq
        z = rearrange(fsq.project_in(x), "b t (k d) -> b t k d", k=self.groups)
        codes = fsq.quantize(z)  # (B, T, K, d), rounded with a straight-through gradient
        indices = fsq.codes_to_indices(codes).long()  # (B, T, K)
        weight = rearrange(fsq.project_out.weight, "o (k d) -> k o d", k=self.groups)
        levels = torch.einsum("btkd,kod->kbto", codes, weight)  # (K, B, T, D)
        levels = torch.cat([levels[:1] + fsq.project_out.bias, levels[1:]])
        quantized = levels.sum(dim=0)
        commitment = x.new_zeros(self.groups)
        if not return_all_codes:
            return quantized, indices, commitment
        return quantized, indices, commitment, levels

    def get_output_from_indices(self, indices: Tensor) -> Tensor:
        """indices (B, T, K) -> quantized (B, T, D)."""
        return self.fsq.indices_to_codes(indices)

    @property
    def codebooks(self) -> Tensor:
        """Each level's grid points, (K, codebook_size, len(levels)), as `ResidualVQ.codebooks`
        (every group rounds to the same grid; the output projection tells them apart)."""
        return self.fsq.implicit_codebook.expand(self.groups, -1, -1)


def ema_codebook_settings(c: CodecConfig) -> dict:
    """vector-quantize-pytorch settings of an EMA codebook: the "rvq" levels here, speech's level 1."""
    return {
        "codebook_size": c.codebook_size,
        "decay": c.ema_decay,
        "commitment_weight": c.commitment_weight,
        "kmeans_init": True,  # first batch seeds the codebooks: no dead start
        "kmeans_iters": 10,
        "threshold_ema_dead_code": c.dead_code_threshold,
    }


def _quantizer(c: CodecConfig) -> nn.Module:
    """The quantizer `c.quantizer` names, with the calls of `ResidualVQ` (see `ResidualFSQQuantizer`)."""
    if c.quantizer == "fsq":
        return ResidualFSQQuantizer(c.latent_dim, c.fsq_levels, c.num_codebooks)
    if c.quantizer == "fsq_groups":
        return GroupedFSQQuantizer(c.latent_dim, c.fsq_levels, c.num_codebooks)
    return ResidualVQ(
        dim=c.latent_dim,
        num_quantizers=c.num_codebooks,
        quantize_dropout=c.quantizer_dropout,
        **ema_codebook_settings(c),
    )


class ResidualBlock(nn.Module):
    """x + conv(gelu(conv(norm(x)))), on (B, C, T)."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mix(F.gelu(self.conv(self.norm(x))))


def _stack(in_channels: int, hidden: int, out_channels: int, blocks: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(in_channels, hidden, 1),
        *(ResidualBlock(hidden, kernel_size) for _ in range(blocks)),
        nn.GroupNorm(1, hidden),
        nn.GELU(),
        nn.Conv1d(hidden, out_channels, 1),
    )


def griffin_lim(
    magnitude: Tensor, n_fft: int, hop: int, iters: int, length: int, momentum: float = 0.99
) -> Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013, librosa's variant): magnitude (B, F, N) -> audio (B, length).

    The phase starts as each bin advancing at its centre frequency, as a steady partial
    would: measured on AnyWorld music, 8 iterations from there keep pitch and tempo as well
    as 32 from a random phase, 4x faster. Deterministic, and each row comes out as it would
    alone: rows run one by one, because batched FFTs round a little differently from single
    ones and the phase step (dividing by the rebuilt magnitude) amplifies that.
    """
    if magnitude.ndim == 3 and len(magnitude) > 1:
        return torch.cat(
            [griffin_lim(row, n_fft, hop, iters, length, momentum) for row in magnitude.split(1)]
        )
    window = torch.hann_window(n_fft, device=magnitude.device)
    bins, frames = magnitude.shape[-2:]
    advance = (
        2 * math.pi * hop / n_fft * torch.arange(bins, device=magnitude.device)
    )  # (F,) radians per frame
    phase = advance[:, None] * torch.arange(frames, device=magnitude.device)[None, :]  # (F, N)
    angles = torch.polar(torch.ones_like(magnitude), phase.expand_as(magnitude))
    previous = torch.zeros_like(angles)

    def istft(spectrum: Tensor) -> Tensor:
        return torch.istft(spectrum, n_fft, hop, window=window, center=True, length=length)

    for _ in range(iters):
        rebuilt = torch.stft(
            istft(magnitude * angles), n_fft, hop, window=window, center=True, return_complex=True
        )
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles = angles / (angles.abs() + 1e-8)
        previous = rebuilt
    return istft(magnitude * angles)


class AudioCodec(nn.Module):
    """Log-magnitude STFT codec with a residual VQ bottleneck; see the module docstring."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        c = self.config = config
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        if c.mels:
            banks = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.mels, norm=None)
            self.register_buffer("mel_banks", torch.from_numpy(banks), persistent=False)  # (M, bins)
            self.register_buffer("mel_inverse", torch.linalg.pinv(self.mel_banks), persistent=False)
        # per-feature statistics of the log magnitudes, set from data by `fit_feature_statistics`
        self.register_buffer("feature_mean", torch.full((c.features,), math.log(LOG_FLOOR) / 2))
        self.register_buffer("feature_std", torch.full((c.features,), 2.5))
        frame_features = c.features * c.stft_per_frame
        self.encoder = _stack(frame_features, c.hidden, c.latent_dim, c.blocks, c.kernel_size)
        self.quantizer = _quantizer(c)
        self.decoder = _stack(c.latent_dim, c.hidden, frame_features, c.blocks, c.kernel_size)
        # start from the mean spectrum (see fit_feature_statistics), not from random loudness
        nn.init.zeros_(self.decoder[-1].weight)
        nn.init.zeros_(self.decoder[-1].bias)

    def frames_for(self, num_samples: int) -> int:
        """T latent frames that cover `num_samples` (the last one zero-padded)."""
        return max(1, math.ceil(num_samples / self.config.samples_per_frame))

    def log_magnitude(self, audio: Tensor) -> Tensor:
        """audio (B, N) -> log |STFT| or log mel magnitudes (B, F, T*S), zero-padded to whole latent frames."""
        c = self.config
        frames = self.frames_for(audio.shape[-1])
        audio = F.pad(audio, (0, frames * c.samples_per_frame - audio.shape[-1]))
        spectrum = torch.stft(
            audio, c.n_fft, c.stft_hop, window=self.window, center=True, return_complex=True
        )
        magnitude = spectrum[..., : frames * c.stft_per_frame].abs() / self.window.sum()
        if c.mels:
            magnitude = self.mel_banks @ magnitude
        return magnitude.clamp_min(LOG_FLOOR).log()

    def to_magnitude(self, log_features: Tensor) -> Tensor:
        """Predicted log features (B, F, T*S) -> |STFT| (B, bins, T*S), linear scale."""
        magnitude = log_features.exp()
        if self.config.mels:
            magnitude = (self.mel_inverse @ magnitude).clamp_min(0.0)
        return magnitude

    def _frame_mask(self, lengths: Tensor | None, batch: int, frames: int, device: torch.device) -> Tensor:
        if lengths is None:
            return torch.ones(batch, frames, dtype=torch.bool, device=device)
        covered = torch.ceil(lengths.to(device) / self.config.samples_per_frame)  # (B,)
        return torch.arange(frames, device=device)[None, :] < covered[:, None]  # (B, T)

    @torch.no_grad()
    def fit_feature_statistics(self, audio: Tensor) -> None:
        """Set the per-bin mean and spread of log |STFT| from a batch of training audio (B, N).

        The networks see and predict standardised bins: without this, the many near-silent
        bins dominate and the first few hundred steps learn only the spectral envelope.
        """
        log_magnitude = self.log_magnitude(audio)  # (B, F, T*S)
        self.feature_mean.copy_(log_magnitude.mean(dim=(0, 2)))
        self.feature_std.copy_(log_magnitude.std(dim=(0, 2)) + 0.1)

    def _encode_latents(self, log_magnitude: Tensor) -> Tensor:
        normalized = (log_magnitude - self.feature_mean[:, None]) / self.feature_std[:, None]
        stacked = rearrange(normalized, "b f (t s) -> b (s f) t", s=self.config.stft_per_frame)
        return rearrange(self.encoder(stacked).float(), "b d t -> b t d")  # fp32 under bf16 autocast too

    def _decode_latents(self, quantized: Tensor) -> Tensor:
        # (B, S*F, T), fp32 for the losses under bf16 autocast too
        frames = self.decoder(rearrange(quantized, "b t d -> b d t")).float()
        normalized = rearrange(frames, "b (s f) t -> b f (t s)", s=self.config.stft_per_frame)
        return normalized * self.feature_std[:, None] + self.feature_mean[:, None]

    def forward(self, audio: Tensor, lengths: Tensor | None = None) -> CodecOutput:
        """audio (B, N), lengths (B,) in samples or None -> losses and every intermediate."""
        target = self.log_magnitude(audio)  # (B, F, T*S)
        latents = self._encode_latents(target)  # (B, T, D)
        batch, frames, _ = latents.shape
        mask = self._frame_mask(lengths, batch, frames, audio.device)  # (B, T)
        with full_precision():
            quantized, indices, commitment, level_vectors = self.quantizer(
                latents, mask=mask, return_all_codes=True
            )
        prefix = level_vectors.cumsum(dim=0)  # (K, B, T, D)
        level_features = latents + (prefix - latents).detach()
        prediction = self._decode_latents(quantized)
        losses = reconstruction_losses(prediction, target, mask, self.config)
        losses["commitment"] = commitment.sum()
        return CodecOutput(
            log_magnitude=prediction,
            target=target,
            codes=rearrange(indices, "b t k -> b k t"),
            latents=latents,
            level_features=level_features,
            frame_mask=mask,
            losses=losses,
        )

    @torch.inference_mode()
    def encode(self, audio: Tensor) -> Tensor:
        """audio (B, N) -> codes (B, K, T), the last frame zero-padded."""
        latents = self._encode_latents(self.log_magnitude(audio))
        _, indices, _ = self.quantizer(latents)
        return rearrange(indices, "b t k -> b k t")

    @torch.inference_mode()
    def decode_magnitude(self, codes: Tensor) -> Tensor:
        """codes (B, K, T) -> predicted |STFT| (B, bins, T*S), linear scale."""
        quantized = self.quantizer.get_output_from_indices(rearrange(codes, "b k t -> b t k"))
        return self.to_magnitude(self._decode_latents(quantized))

    @torch.inference_mode()
    def vocode(self, magnitude: Tensor) -> Tensor:
        """|STFT| (B, bins, T*S) -> audio (B, T * samples_per_frame) by Griffin-Lim."""
        c = self.config
        length = magnitude.shape[-1] * c.stft_hop
        # a centred STFT of `length` samples has one frame more than the codec keeps: add it silent
        magnitude = F.pad(magnitude * self.window.sum(), (0, 1))
        audio = griffin_lim(magnitude, c.n_fft, c.stft_hop, c.griffin_lim_iters, length)
        return audio.clamp(-1.0, 1.0)

    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, K, T) -> audio (B, T * samples_per_frame), from all K levels."""
        return self.vocode(self.decode_magnitude(codes))
