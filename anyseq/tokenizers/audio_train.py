"""The training loop shared by AnySeq's audio codecs (music and speech).

AnyGPT (Zhan et al., ACL 2024) uses pretrained codecs (EnCodec for music,
SpeechTokenizer for speech); AnySeq trains its own `AudioCodec` on AnyWorld on 2 CPU
cores. One loop serves both: random crops (or whole padded clips) in batches, AdamW with
warmup and cosine decay, a tqdm bar, TensorBoard scalars, a validation pass each epoch,
and an atomic safetensors checkpoint that `resume` continues from, step for step.

Speech adds a loss on level 1 (a CTC head on `CodecOutput.level_features[0]`, as
SpeechTokenizer distils HuBERT into its first level): pass it as `auxiliary`, an
`nn.Module` called as `auxiliary(batch, output) -> scalar`, whose parameters are trained
and checkpointed with the codec. `Clip.labels` reach it through `CodecBatch.labels`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from anyseq.io import atomic_directory
from anyseq.modalities.audio_codec import AudioCodec, CodecOutput
from anyseq.training.config import bf16_autocast, native_bf16

CHECKPOINT = "checkpoint"  # sub-directory of the output directory, for resume


@dataclass
class AudioTrainConfig:
    steps: int = 2000
    batch_size: int = 16
    crop_seconds: float | None = 2.0  # random crops; None trains on whole clips, padded per batch
    learning_rate: float = 2e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1  # cosine decay ends at learning_rate * min_lr_ratio
    grad_clip: float = 1.0
    epoch_steps: int | None = None  # steps between validations; None: one pass over the training clips
    max_minutes: float | None = None  # stop early, validated and saved, when this run has used the budget
    seed: int = 0
    threads: int | None = None  # torch CPU threads while training (restored after); None: leave as set
    # bf16 autocast of the training forward where bf16 matrix products measure faster than fp32
    # (`native_bf16`; elsewhere it is ignored). The quantizers, losses and validation stay fp32.
    bf16: bool = False


@dataclass
class Clip:
    """A training clip: mono samples (N,) float32 at the codec's rate, plus labels for auxiliary losses."""

    samples: np.ndarray
    labels: dict[str, Any] = field(default_factory=dict)


@dataclass
class CodecBatch:
    audio: Tensor  # (B, N) zero-padded
    lengths: Tensor  # (B,) samples of real audio in each row
    labels: list[dict[str, Any]]  # the clips' labels, row by row


@dataclass
class TrainResult:
    steps: int  # optimizer steps done in total (including resumed ones)
    seconds: float  # wall-clock time of this run
    train_loss: float  # mean over the last epoch's steps
    validation: dict[str, float]  # last validation: loss terms and codebook use
    stopped_early: bool  # max_minutes ran out before config.steps
    history: list[dict[str, float]]  # one entry per validation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_batch(clips: Sequence[Clip], crop: int | None, rng: np.random.Generator) -> CodecBatch:
    """Random `crop`-sample windows of `clips` (shorter clips padded), or the whole clips when crop is None."""
    pieces = []
    for clip in clips:
        samples = clip.samples
        if crop is not None and len(samples) > crop:
            start = int(rng.integers(0, len(samples) - crop + 1))
            samples = samples[start : start + crop]
        pieces.append(samples)
    width = crop if crop is not None else max(len(p) for p in pieces)
    audio = np.zeros((len(pieces), width), dtype=np.float32)
    for row, samples in enumerate(pieces):
        audio[row, : len(samples)] = samples
    lengths = torch.tensor([len(p) for p in pieces], dtype=torch.long)
    return CodecBatch(torch.from_numpy(audio), lengths, [clip.labels for clip in clips])


def budget_used(max_minutes: float | None, started: float) -> float:
    """The share of a `max_minutes` limit spent since `started` (monotonic); 0 without a limit."""
    if max_minutes is None:
        return 0.0
    if max_minutes <= 0:
        return math.inf
    return (time.monotonic() - started) / (60 * max_minutes)


def scheduled_learning_rate(config: Any, step: int, spent: float = 0.0) -> float:
    """Linear warmup, then cosine decay over the steps, or over the time budget (`spent`, the share
    used) when that runs out first: a run cut short by its limit still ends at the low rate.

    `config` has `learning_rate`, `warmup_steps`, `steps` and `min_lr_ratio` (the trainers of the
    audio codecs, the acoustic model and the image tokenizer share this schedule)."""
    from anyseq.training.config import warmup_cosine

    return warmup_cosine(
        config.learning_rate, step, config.warmup_steps, config.steps, config.min_lr_ratio, spent
    )


def _total_loss(batch: CodecBatch, output: CodecOutput, auxiliary: nn.Module | None) -> dict[str, Tensor]:
    losses = dict(output.losses)
    if auxiliary is not None:
        losses["auxiliary"] = auxiliary(batch, output)
    return losses


@torch.no_grad()
def validate(
    codec: AudioCodec,
    clips: Sequence[Clip],
    batch_size: int,
    auxiliary: nn.Module | None = None,
) -> dict[str, float]:
    """Mean loss terms over whole `clips` (padded, masked) and the share of each level's codes in use."""
    codec.eval()
    if auxiliary is not None:
        auxiliary.eval()
    sums: dict[str, float] = {}
    used = [
        torch.zeros(codec.config.codebook_size, dtype=torch.bool) for _ in range(codec.config.num_codebooks)
    ]
    for start in range(0, len(clips), batch_size):
        batch = make_batch(clips[start : start + batch_size], None, np.random.default_rng(0))
        output = codec(batch.audio, batch.lengths)
        for name, value in _total_loss(batch, output, auxiliary).items():
            sums[name] = sums.get(name, 0.0) + float(value) * len(batch.labels)
        for level, codes in enumerate(output.codes.transpose(0, 1)):  # (B, T) per level
            used[level][codes[output.frame_mask]] = True
    metrics = {name: value / len(clips) for name, value in sums.items()}
    metrics["loss"] = sum(metrics.values())
    for level, mask in enumerate(used):
        metrics[f"codebook_use/level{level + 1}"] = float(mask.float().mean())
    codec.train()
    if auxiliary is not None:
        auxiliary.train()
    return metrics


def _modules(codec: AudioCodec, auxiliary: nn.Module | None) -> nn.ModuleDict:
    return nn.ModuleDict({"codec": codec} | ({"auxiliary": auxiliary} if auxiliary is not None else {}))


def _contiguous(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {name: tensor.detach().contiguous().clone() for name, tensor in tensors.items()}


def save_checkpoint(
    directory: Path, modules: nn.Module, optimizer: torch.optim.Optimizer, state: dict
) -> None:
    """Weights, optimizer moments and loop state, written atomically as one directory."""
    optimizer_state = optimizer.state_dict()
    moments = {
        f"{index}.{name}": value
        for index, entries in optimizer_state["state"].items()
        for name, value in entries.items()
    }
    with atomic_directory(directory) as temp:
        save_file(_contiguous(modules.state_dict()), temp / "model.safetensors")
        save_file(_contiguous(moments), temp / "optimizer.safetensors")
        meta = {**state, "param_groups": optimizer_state["param_groups"]}
        (temp / "state.json").write_text(json.dumps(meta, indent=2))


def load_checkpoint(directory: Path, modules: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore what `save_checkpoint` wrote; returns the loop state (step, history, ...)."""
    meta = json.loads((directory / "state.json").read_text())
    modules.load_state_dict(load_file(directory / "model.safetensors"))
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in load_file(directory / "optimizer.safetensors").items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    return meta


def _train(
    codec: AudioCodec,
    train: Sequence[Clip],
    validation: Sequence[Clip],
    out_dir: str | Path,
    config: AudioTrainConfig,
    auxiliary: nn.Module | None = None,
    resume: bool = True,
) -> TrainResult:
    from torch.utils.tensorboard import SummaryWriter

    if not train or not validation:
        raise ValueError(f"need training and validation clips, got {len(train)} and {len(validation)}")
    out_dir = Path(out_dir)
    checkpoint = out_dir / CHECKPOINT
    modules = _modules(codec, auxiliary)
    modules.train()
    optimizer = torch.optim.AdamW(modules.parameters(), lr=config.learning_rate, weight_decay=0.0)
    step, history = 0, []
    if resume and (checkpoint / "state.json").is_file():
        meta = load_checkpoint(checkpoint, modules, optimizer)
        step, history = meta["step"], meta["history"]
    epoch_steps = config.epoch_steps or max(1, len(train) // config.batch_size)
    crop = None if config.crop_seconds is None else int(config.crop_seconds * codec.config.sample_rate)
    bf16 = config.bf16 and native_bf16()
    started = time.monotonic()
    stopped_early = False
    recent: list[float] = []
    progress = tqdm(total=config.steps, initial=step, desc="codec", unit="step", dynamic_ncols=True)
    with SummaryWriter(str(out_dir / "tensorboard")) as writer, progress:
        while step < config.steps:
            # a resumed run draws the same batches and the same codebook restarts as an uninterrupted one
            rng = np.random.default_rng([config.seed, step])
            torch.manual_seed(int(rng.integers(2**31)))
            batch = make_batch([train[i] for i in rng.integers(0, len(train), config.batch_size)], crop, rng)
            for group in optimizer.param_groups:
                group["lr"] = scheduled_learning_rate(config, step, budget_used(config.max_minutes, started))
            with bf16_autocast(bf16):
                losses = _total_loss(batch, codec(batch.audio, batch.lengths), auxiliary)
            loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(modules.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            recent = [*recent[-epoch_steps + 1 :], loss.item()]
            for name, value in losses.items():
                writer.add_scalar(f"train/{name}", value.item(), step)
            progress.update(1)
            progress.set_postfix(loss=f"{recent[-1]:.3f}")
            out_of_time = budget_used(config.max_minutes, started) > 1.0
            if step % epoch_steps == 0 or step == config.steps or out_of_time:
                metrics = validate(codec, validation, config.batch_size, auxiliary)
                for name, value in metrics.items():
                    writer.add_scalar(f"validation/{name}", value, step)
                history.append({"step": step, **metrics})
                save_checkpoint(checkpoint, modules, optimizer, {"step": step, "history": history})
            if out_of_time:
                stopped_early = step < config.steps
                break
    if not history:  # steps == 0: nothing trained, still report where the codec stands
        history.append({"step": step, **validate(codec, validation, config.batch_size, auxiliary)})
    codec.eval()
    return TrainResult(
        steps=step,
        seconds=time.monotonic() - started,
        train_loss=float(np.mean(recent)) if recent else float("nan"),
        validation={k: v for k, v in history[-1].items() if k != "step"},
        stopped_early=stopped_early,
        history=history,
    )


def train_codec(
    codec: AudioCodec,
    train: Sequence[Clip],
    validation: Sequence[Clip],
    out_dir: str | Path,
    config: AudioTrainConfig,
    auxiliary: nn.Module | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train `codec` (and `auxiliary`) in place; checkpoints and TensorBoard logs go under `out_dir`."""
    previous = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train(codec, train, validation, out_dir, config, auxiliary, resume)
    finally:
        torch.set_num_threads(previous)
