"""Training the speech tokenizer on AnyWorld: the codec with its CTC-supervised content level,
then the acoustic model that fills levels 2..K from level 1 and a voice prompt.

AnyGPT (Zhan et al., ACL 2024) takes a pretrained SpeechTokenizer and SoundStorm; AnySeq
trains both roles on 2 CPU cores:

1. the codec (`SpeechCodec`) with the shared loop of `audio_train.py`, whole clips per
   batch, plus `PhonemeCTC` on level 1 as the auxiliary loss (espeak-ng's phonemes are in
   every clip's labels);
2. every training clip encoded once to all K levels;
3. the acoustic model (`AcousticModel`), SoundStorm's masked objective, each target clip
   prompted by another clip of the same voice (what zero-shot cloning asks at test time);
4. the default voice: the codes of a real validation clip of the first voice.

Both stages log to TensorBoard, keep an atomic checkpoint that `resume` continues from,
and share one time budget (`max_minutes`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from anyseq.io import atomic_write_json
from anyseq.media import load_audio
from anyseq.modalities.acoustic import AcousticBatch
from anyseq.modalities.speech import SpeechConfig, SpeechTokenizer, phoneme_units
from anyseq.tokenizers.audio_train import (
    CHECKPOINT,
    AudioTrainConfig,
    Clip,
    budget_used,
    load_checkpoint,
    save_checkpoint,
    scheduled_learning_rate,
    train_codec,
)
from anyseq.training.config import bf16_autocast, native_bf16

VOICE_LABEL = "voice"  # AnyWorld's speaker label on every speech item


@dataclass
class AcousticTrainConfig:
    steps: int = 1200
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1  # cosine decay ends at learning_rate * min_lr_ratio
    target_frames: int = 75  # random target crops of at most this many frames (3 s at 25 Hz)
    checkpoint_every: int = 200
    seed: int = 0
    # as `AudioTrainConfig.bf16`: autocast of the training forward where it measures faster
    bf16: bool = False


@dataclass
class SpeechTrainConfig:
    codec: AudioTrainConfig = field(default_factory=AudioTrainConfig)
    acoustic: AcousticTrainConfig = field(default_factory=AcousticTrainConfig)
    codec_share: float = 0.65  # of `max_minutes`, what the codec may use; the acoustic model gets the rest
    max_minutes: float | None = None  # the whole run's time limit when the caller gives none

    @classmethod
    def preset(cls, name: str) -> SpeechTrainConfig:
        if name == "tiny":
            return cls(
                # the log-mel codec with FSQ levels steps about 7 times a second on 2 idle cores (5 with
                # residual VQ): the 4.5 minutes of the codec's share run about 1,900 of these
                codec=AudioTrainConfig(
                    steps=2000,
                    batch_size=16,
                    crop_seconds=None,
                    learning_rate=2e-3,
                    epoch_steps=300,
                    bf16=True,
                ),
                # the acoustic model (SpeechConfig.acoustic_dim) steps about 6.5 times a second: its
                # share (the rest of the limit, about 2.8 minutes) runs about 1,100 of these. Measured on
                # one FSQ-groups codec, 80 test clips, with the clip's own voice speaker judge / CTC WER
                # and the share of cloned pairs in the prompt's voice: width 192 and 1,200 steps
                # (114 s) 0.54 / 0.26, 0.45; 2,000 steps (191 s) 0.56 / 0.28, 0.50; width 256 and
                # 1,400 steps (233 s) 0.625 / 0.245, 0.54. On 2026-12-06 (a machine a third slower, 3.5-4.4
                # steps a second), one codec, 150 test clips, own voice and cloned pairs in the prompt's
                # voice: 4 minutes (740-980 steps), three seeds, 0.35-0.46 and 0.27-0.37 (means 0.39 and
                # 0.33); 11 minutes (2,800 steps) 0.47 and 0.39. Three and a half times the steps buy 6
                # points of cloning: its training time is not what holds cloning back. Tried and not kept:
                # a voice vector (an MLP of the prompt frames' mean embedding) added to every frame, means
                # 0.43 and 0.37 over the same seeds, 0.44 and 0.36 at 11 minutes; on 2026-12-08 (one run each,
                # README "speech voice: where it is lost") the same kind of vector read by the codec's decoder,
                # and global-variance compensation of its output, both within the 0.1 between two runs of the
                # preset. bf16 autocast of both
                # loops (where `native_bf16` measures it faster; 2026-12-07, one run each on the same
                # world, 150 test clips, bf16 against fp32): the codec's 2,000 steps in 251 s against
                # 1,756 in 270 s, the acoustic model 960 steps in 185 s against 620 in 154 s; all-level
                # WER (PocketSphinx / CTC) 0.035 / 0.086 against 0.032 / 0.085, cloned 0.070 / 0.209
                # against 0.089 / 0.243; the clip's own voice 0.52 against 0.19, cloned pairs in the
                # prompt's voice 0.36 against 0.21
                acoustic=AcousticTrainConfig(steps=1400, bf16=True),
                codec_share=0.6,
                # about 7.5 minutes on 2 idle cores; on a busy machine the limit keeps the run within 8
                max_minutes=7.5,
            )
        if name == "test":
            return cls(
                codec=AudioTrainConfig(
                    steps=4, batch_size=4, crop_seconds=None, warmup_steps=1, epoch_steps=2
                ),
                acoustic=AcousticTrainConfig(
                    steps=4, batch_size=4, warmup_steps=1, target_frames=20, checkpoint_every=2
                ),
            )
        raise ValueError(f"unknown speech training preset {name!r}; known: ['test', 'tiny']")


def read_clips(data_dir: str | Path, split: str, sample_rate: int, limit: int | None = None) -> list[Clip]:
    """AnyWorld speech items of `split` at `sample_rate` -> clips whose labels hold text, phonemes and voice."""
    from anyseq.world.dataset import iter_items

    clips = [
        Clip(load_audio(item.media, sample_rate).samples, {**item.labels, "text": item.text, "id": item.id})
        for item in iter_items(data_dir, "speech", split, limit=limit)
    ]
    if not clips:
        raise ValueError(f"{data_dir}: no speech items in split {split!r}")
    missing = [c.labels["id"] for c in clips if "phonemes" not in c.labels or VOICE_LABEL not in c.labels]
    if missing:
        raise ValueError(
            f"{data_dir}: speech items without 'phonemes' or '{VOICE_LABEL}' labels: {missing[:5]}"
        )
    return clips


def phoneme_inventory(clips: Sequence[Clip]) -> str:
    """Every CTC unit of the clips' phoneme strings, sorted, as one string."""
    return "".join(sorted({u for clip in clips for u in phoneme_units(clip.labels["phonemes"])}))


def encode_clips(
    tokenizer: SpeechTokenizer, clips: Sequence[Clip], batch_size: int = 32
) -> list[torch.Tensor]:
    """All K levels of every clip, [K, T_i] each, in padded batches sorted by length."""
    order = sorted(range(len(clips)), key=lambda i: len(clips[i].samples))
    codes: list[torch.Tensor | None] = [None] * len(clips)
    for start in tqdm(range(0, len(order), batch_size), desc="encode", unit="batch", leave=False):
        rows = order[start : start + batch_size]
        for row, item in zip(rows, tokenizer.encode_batch([clips[i].samples for i in rows]), strict=True):
            codes[row] = item
    return codes


def acoustic_batch(
    codes: Sequence[torch.Tensor],
    voices: Sequence[str],
    picks: Sequence[int],
    prompt_frames: int,
    target_frames: int,
    rng: np.random.Generator,
) -> AcousticBatch:
    """For each picked clip: a random crop as target, prompted by a crop of another clip of the same voice."""
    by_voice: dict[str, list[int]] = defaultdict(list)
    for index, voice in enumerate(voices):
        by_voice[voice].append(index)
    pairs = []
    for index in picks:
        others = [i for i in by_voice[voices[index]] if i != index] or [index]
        prompt = _crop(codes[others[int(rng.integers(len(others)))]], prompt_frames, rng)
        pairs.append((prompt, _crop(codes[index], target_frames, rng)))
    width = max(p.shape[1] + t.shape[1] for p, t in pairs)
    levels = codes[0].shape[0]
    batch = AcousticBatch(
        codes=torch.zeros(len(pairs), levels, width, dtype=torch.long),
        is_target=torch.zeros(len(pairs), width, dtype=torch.bool),
        valid=torch.zeros(len(pairs), width, dtype=torch.bool),
    )
    for row, (prompt, target) in enumerate(pairs):
        p, t = prompt.shape[1], target.shape[1]
        batch.codes[row, :, : p + t] = torch.cat([prompt, target], dim=1)
        batch.is_target[row, p : p + t] = True
        batch.valid[row, : p + t] = True
    return batch


def _crop(codes: torch.Tensor, frames: int, rng: np.random.Generator) -> torch.Tensor:
    if codes.shape[1] <= frames:
        return codes
    start = int(rng.integers(0, codes.shape[1] - frames + 1))
    return codes[:, start : start + frames]


def train_acoustic(
    tokenizer: SpeechTokenizer,
    codes: Sequence[torch.Tensor],
    voices: Sequence[str],
    out_dir: Path,
    config: AcousticTrainConfig,
    resume: bool = True,
    max_minutes: float | None = None,
) -> dict[str, Any]:
    """Train `tokenizer.acoustic` in place on clip codes grouped by voice; returns a summary."""
    from torch.utils.tensorboard import SummaryWriter

    model = tokenizer.acoustic.train()
    modules = nn.ModuleDict({"acoustic": model})
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    checkpoint = out_dir / "checkpoint"
    step = 0
    if resume and (checkpoint / "state.json").is_file():
        step = load_checkpoint(checkpoint, modules, optimizer)["step"]
    writer = SummaryWriter(str(out_dir / "tensorboard"))
    bf16 = config.bf16 and native_bf16()
    started, recent = time.monotonic(), []
    bar = tqdm(total=config.steps, initial=step, desc="acoustic", unit="step", dynamic_ncols=True)
    while step < config.steps:
        rng = np.random.default_rng([config.seed, step])  # a resumed run draws the same batches
        picks = rng.integers(0, len(codes), config.batch_size).tolist()
        batch = acoustic_batch(
            codes, voices, picks, tokenizer.config.prompt_frames, config.target_frames, rng
        )
        for group in optimizer.param_groups:
            group["lr"] = scheduled_learning_rate(config, step, budget_used(max_minutes, started))
        with bf16_autocast(bf16):
            loss = model.loss(batch, torch.Generator().manual_seed(config.seed * 100003 + step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        value = loss.item()
        recent = [*recent[-49:], value]
        writer.add_scalar("acoustic/loss", value, step)
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}")
        out_of_time = budget_used(max_minutes, started) > 1.0
        if step % config.checkpoint_every == 0 or step == config.steps or out_of_time:
            save_checkpoint(checkpoint, modules, optimizer, {"step": step})
        if out_of_time:
            break
    bar.close()
    writer.close()
    model.eval()
    return {
        "steps": step,
        "seconds": time.monotonic() - started,
        "loss": float(np.mean(recent)) if recent else None,
        "stopped_early": step < config.steps,
    }


def default_prompt(tokenizer: SpeechTokenizer, clips: Sequence[Clip]) -> torch.Tensor:
    """The codes [K, P] of the first clip (in voice order) at least as long as a prompt, else the longest."""
    ordered = sorted(clips, key=lambda c: (c.labels[VOICE_LABEL], c.labels.get("id", "")))
    voice = ordered[0].labels[VOICE_LABEL]
    own = [c for c in ordered if c.labels[VOICE_LABEL] == voice]
    clip = max(
        own, key=lambda c: min(len(c.samples), tokenizer.config.prompt_seconds * tokenizer.config.sample_rate)
    )
    return tokenizer.voice_prompt(clip.samples)


def train_on_clips(
    train: Sequence[Clip],
    validation: Sequence[Clip],
    out_dir: str | Path,
    speech_config: SpeechConfig,
    config: SpeechTrainConfig,
    resume: bool = True,
    max_minutes: float | None = None,
) -> dict[str, Any]:
    """Train codec then acoustic model on `train`; writes the tokenizer directory `out_dir`."""
    out_dir = Path(out_dir)
    started = time.monotonic()
    max_minutes = config.max_minutes if max_minutes is None else max_minutes
    torch.manual_seed(config.codec.seed)
    tokenizer = SpeechTokenizer(speech_config)
    codec_config = config.codec
    if max_minutes is not None:
        codec_config = AudioTrainConfig(
            **{**asdict(codec_config), "max_minutes": max_minutes * config.codec_share}
        )
    if not (out_dir / "codec" / CHECKPOINT / "state.json").is_file():  # a fresh run: fit the input statistics
        picks = np.random.default_rng(config.codec.seed).integers(0, len(train), 64)
        joined = np.concatenate([train[i].samples for i in picks])  # no padding in the statistics
        tokenizer.codec.core.fit_feature_statistics(torch.from_numpy(joined)[None])
    codec_result = train_codec(
        tokenizer.codec,
        train,
        validation,
        out_dir / "codec",
        codec_config,
        auxiliary=tokenizer.ctc,
        resume=resume,
    )
    tokenizer.ctc.eval()
    codes = encode_clips(tokenizer, train)
    remaining = None if max_minutes is None else max(0.1, max_minutes - (time.monotonic() - started) / 60)
    acoustic = train_acoustic(
        tokenizer,
        codes,
        [c.labels[VOICE_LABEL] for c in train],
        out_dir / "acoustic",
        config.acoustic,
        resume=resume,
        max_minutes=remaining,
    )
    tokenizer.default_prompt = default_prompt(tokenizer, validation)
    tokenizer.save(out_dir)
    summary = {
        "seconds": time.monotonic() - started,
        "train_clips": len(train),
        "train_audio_seconds": sum(len(c.samples) for c in train) / speech_config.sample_rate,
        "codec": {k: v for k, v in codec_result.to_dict().items() if k != "history"},
        "acoustic": acoustic,
        "config": speech_config.to_dict(),
        "training": asdict(config),
    }
    atomic_write_json(out_dir / "train_report.json", summary)
    return summary


def train_speech_tokenizer(
    data_dir: Path, out_dir: Path, preset: str = "tiny", resume: bool = True, max_minutes: float | None = None
) -> dict[str, Any]:
    """Train the `preset` speech tokenizer on AnyWorld speech in `data_dir`; the tokenizer goes to `out_dir`.

    `out_dir` then holds config.json + model.safetensors (load with `load_tokenizer`),
    train_report.json, and codec/ and acoustic/ (checkpoints for `resume`, TensorBoard logs).
    """
    rate = SpeechConfig.preset(preset).sample_rate
    train = read_clips(data_dir, "train", rate)
    validation = read_clips(data_dir, "validation", rate)
    speech_config = SpeechConfig.preset(preset, phonemes=phoneme_inventory(train))
    return train_on_clips(
        train, validation, out_dir, speech_config, SpeechTrainConfig.preset(preset), resume, max_minutes
    )
