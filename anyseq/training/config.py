"""Training settings for AnyGPT's two stages (Zhan et al., ACL 2024, section 4.2; REFERENCE.md).

Stage 1 ("pretrain") aligns modalities with text on text-centric pairs: packed blocks, loss
on every token, tasks mixed by sampling ratios (image caption 0.2, image generation 0.22,
speech 0.3, music 0.28), lr 3e-5 with cosine decay after 3% warmup. Stage 2 ("sft") tunes
on multi-turn any-to-any dialogues: one dialogue per sequence, loss on the assistant's
turns, lr 2e-5. The `tiny` and `small` presets keep the recipe and raise the learning rate
for models trained from scratch on two CPU cores; `tiny` also halves music's share of stage 1
(`TINY_PRETRAIN_RATIOS`: its clips are long for its token budget) and writes its models with
speech sampled at temperature 0.5 (`TINY_SAMPLING`; the sampling is AnyGPT's otherwise).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from anyseq.conversation import LossOn
from anyseq.sampling import DEFAULT_SAMPLING, with_sampling
from anyseq.world.config import ANYGPT_RATIOS

Stage = Literal["pretrain", "sft"]
Precision = Literal["auto", "no", "bf16"]
Overlong = Literal["error", "skip", "truncate"]
STAGES: tuple[Stage, ...] = ("pretrain", "sft")

# AnyGPT's stage-1 mix, the one AnyWorld's pair counts follow (keys: its pretraining tasks).
ANYGPT_PRETRAIN_RATIOS: dict[str, float] = ANYGPT_RATIOS

MUSIC_TASKS = ("music_caption", "music_generation")  # AnyWorld's music pairs


def with_music_share(ratios: dict[str, float], factor: float) -> dict[str, float]:
    """`ratios` with the music tasks' shares times `factor` and the other tasks' scaled, in their
    own proportions, to keep the total."""
    total, music = sum(ratios.values()), sum(ratios[task] for task in MUSIC_TASKS)
    rest = (total - factor * music) / (total - music)
    return {task: r * (factor if task in MUSIC_TASKS else rest) for task, r in ratios.items()}


# The tiny preset's stage-1 mix: AnyGPT's with music's draws halved. AnyGPT's shares are of
# examples; on AnyWorld tiny a music clip costs 431 tokens against 58 (speech), 98 (caption) and
# 102 (picture), so with AnyGPT's mix music took 67% of stage 1's tokens, and with this one 46%.
# On 2026-12-07 (late night; one run each, the same start, 10.4 minutes: 2,670 steps against
# 2,859; this mix rounded to three places) it gave validation loss lower on the four other tasks
# (ASR 1.99 against 2.31, TTS 1.96 / 2.23, caption 2.22 / 2.39, text-to-image 2.27 / 2.42) and
# higher on music (3.22 / 2.91); ASR WER 0.32 against 0.54 (held-out voices 0.52 / 0.66), TTS
# 0.79 / 0.93, caption attributes 0.31 / 0.22, text-to-image 0.23 / 0.24, music caption 0.48 /
# 0.50 (README, "stage-1 mix, tiny"). The demo's two stages and evaluation run again with it (one
# run): ASR WER 0.32 against 0.47, text-to-image 0.29 / 0.25, caption 0.28 / 0.31, music caption
# 0.50 / 0.54, dialogue success 0.065 / 0.02. A second seed of the time-matched runs (2026-12-08): the
# losses within 0.04 of the first's, ASR WER 0.37 against 0.51, TTS 0.82 / 0.90, caption 0.26 / 0.30.
TINY_PRETRAIN_RATIOS: dict[str, float] = with_music_share(ANYGPT_PRETRAIN_RATIOS, 0.5)


@dataclass(frozen=True)
class LoraSettings:
    """Low-rank adapters (peft) on the attention and MLP projections of a large backbone."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )
    # The grown vocabulary's rows are new: the embedding and output matrices train in full.
    train_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.rank < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1 or not self.target_modules:
            raise ValueError(f"invalid LoRA settings: {self}")


@functools.cache
def native_bf16() -> bool:
    """Whether bf16 autocast pays on this CPU, measured once a process: bf16 matrix products must
    run at least `BF16_MIN_SPEEDUP` times as fast as fp32 ones (the shape of a tiny-backbone layer).

    The instruction flags do not tell. On 2 cores with AVX512-BF16 and no AMX, one CPU ran bf16
    products at 149 GFLOP/s against fp32's 256 (the tiny backbone 2,111 against 2,563 tokens/s),
    while another (2026-12-07) ran them at 430 against 205 (stage 2's packed rows 3,049 against
    2,092 tokens/s, stage 1's blocks 3,678 against 2,808). With AMX tiles, bf16 made stage 1 1.6
    times as fast (3,728 against 2,358).
    """
    import torch

    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    fp32 = _matmul_seconds(torch.float32)
    bf16 = _matmul_seconds(torch.bfloat16)
    return bf16 * BF16_MIN_SPEEDUP <= fp32


BF16_MIN_SPEEDUP = 1.25


def bf16_autocast(enabled: bool) -> Any:
    """The training forward's CPU bf16 autocast context, on where a loop resolved `bf16 and native_bf16()`."""
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def _matmul_seconds(dtype: Any, repeats: int = 8) -> float:
    """The fastest of a few runs of one (1024 x 256) x (256 x 688) product (0.36 GFLOP) in `dtype`."""
    import time

    import torch

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(1024, 256, generator=generator).to(dtype)
    weight = torch.randn(688, 256, generator=generator).to(dtype)
    torch.nn.functional.linear(inputs, weight)  # the first call picks and builds the kernel
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        torch.nn.functional.linear(inputs, weight)
        best = min(best, time.perf_counter() - started)
    return best


def warmup_cosine(
    peak: float, step: int, warmup_steps: int, steps: int, min_ratio: float, spent: float = 0.0
) -> float:
    """Linear warmup to `peak`, then cosine decay to `min_ratio` x peak over the steps, or over a
    time budget (`spent`, the share used) when that runs out first, so a run cut short by its
    limit still ends at the low rate. `step` counts the updates already made.

    The schedule of both language-model stages and of every tokenizer trainer."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = max(spent, (step - warmup_steps) / max(1, steps - warmup_steps))
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return peak * (min_ratio + (1 - min_ratio) * cosine)


@dataclass(frozen=True)
class TrainConfig:
    stage: Stage
    learning_rate: float  # peak, reached after warmup
    max_steps: int  # optimizer steps
    # A budget of training-step time (minutes, summed over resumes; validation and saving are not
    # counted): the cosine decays over whichever of max_steps and the budget runs out first, and the
    # run ends, saved, when the budget is spent. None: steps alone decide.
    max_minutes: float | None = None
    batch_size: int = 8  # sequences per micro-batch and process
    grad_accum: int = 1  # micro-batches per optimizer step
    block_size: int | None = None  # tokens per sequence; None: the backbone's context length
    warmup_fraction: float = 0.03
    min_lr_ratio: float = 0.1  # the cosine ends at this fraction of the peak
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    task_ratios: dict[str, float] | None = None  # None: in proportion to each task's examples; 0: left out
    # Stage 1 only: a packed block's examples attend only to themselves (positions restart with
    # each example); False lets attention run across the block, as HF `group_texts` trains.
    separate_examples: bool = False
    # Stage 2 only: as many whole dialogues (and rehearsed pairs) as fit share a sequence of up
    # to block_size tokens, never cut, each attending only to itself; False: one a sequence, and
    # a batch padded to its longest.
    pack_dialogues: bool = False
    # With pack_dialogues: a sequence takes every drawn dialogue that fits, in the order drawn, until
    # this many wait for a later one (1: the first that does not fit closes it; see DialogueStream).
    pack_lookahead: int = 1
    # An example longer than block_size: "error" before any compute, "skip" it, or "truncate"
    # it to its first block_size tokens; skipped or cut examples are counted per task in the
    # log and the run's summary.
    overlong: Overlong = "error"
    # The targets of a stage-1 pair, in stage 1 and where stage 2 rehearses it: "all" its every
    # token (AnyGPT), "assistant" only the reply (the caption of a captioning pair, the image of a
    # text-to-image pair), so no update goes to predicting the input media.
    pair_loss: LossOn = "all"
    # Stage 2 only: the share of sequences drawn from stage 1's pairs (rehearsal), so the single-task
    # skills (caption, ASR, TTS, ...) survive instruction tuning; 0 trains on dialogues alone.
    replay: float = 0.0
    # With replay: the rehearsed pair tasks' mix among themselves (keys: stage 1's task names; 0 leaves
    # one out); None draws them in proportion to their examples.
    replay_mix: dict[str, float] | None = None
    eval_every: int = 100  # steps between validation passes (also run at the start and end)
    eval_examples: int = 64  # validation examples per task
    eval_batch_size: int | None = None  # sequences per validation forward; None: batch_size
    save_every: int = 100  # steps between checkpoints (one is always written at the end)
    keep_last: int = 2  # checkpoints kept
    log_every: int = 10
    seed: int = 0
    mixed_precision: Precision = "auto"  # auto: bf16 where the hardware has it (GPU or CPU)
    gradient_checkpointing: bool = False
    # torch.compile the training forward and backward (Inductor; needs a C++ compiler on CPU).
    # Worth it where every batch has one shape (stage 1's packed blocks). On 2 CPU cores the
    # tiny backbone's steady state gains about 6% after a compile of about 30 s (which a
    # 250-step run just about pays back); longer runs gain the whole 6%.
    compile: bool = False
    lora: LoraSettings | None = None
    # Sampling settings the trained model is written with, per modality ("text", "image", ...), over
    # those of the model it starts from, e.g. {"speech": {"temperature": 0.5}}; None keeps those.
    sampling: dict[str, dict[str, float]] | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        positive = ("learning_rate", "max_steps", "batch_size", "grad_accum", "eval_examples", "keep_last")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be positive (or None), got {self.max_minutes}")
        if self.block_size is not None and self.block_size < 2:
            raise ValueError(f"block_size must be at least 2 tokens, got {self.block_size}")
        if not 0 <= self.warmup_fraction < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(
                f"warmup_fraction must lie in [0, 1) and min_lr_ratio in [0, 1], "
                f"got {self.warmup_fraction} and {self.min_lr_ratio}"
            )
        if self.eval_batch_size is not None and not self.eval_batch_size > 0:
            raise ValueError(f"eval_batch_size must be positive (or None), got {self.eval_batch_size}")
        for name in ("eval_every", "save_every", "log_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        # Checkpoints fall on logging steps, so a resumed run logs the same averages.
        if self.log_every and self.save_every % self.log_every:
            raise ValueError(
                f"save_every ({self.save_every}) must be a multiple of log_every ({self.log_every})"
            )
        # A ratio of 0 leaves a task out (single-task runs); every task must still be named.
        for name in ("task_ratios", "replay_mix"):
            mix = getattr(self, name)
            if mix is not None and (
                not any(r > 0 for r in mix.values()) or any(not r >= 0 for r in mix.values())
            ):
                raise ValueError(f"{name} must be numbers >= 0, at least one positive, got {mix}")
        if not 0 <= self.replay < 1 or (self.replay and self.stage != "sft"):
            raise ValueError(f"replay must lie in [0, 1) and is for stage sft only, got {self.replay}")
        if self.replay_mix is not None and not self.replay:
            raise ValueError("replay_mix needs replay > 0 (it mixes the rehearsed pairs)")
        if self.separate_examples and self.stage != "pretrain":
            raise ValueError(
                "separate_examples is for stage pretrain only (stage 2's packed dialogues, "
                "pack_dialogues, are always kept apart)"
            )
        if self.pack_dialogues and self.stage != "sft":
            raise ValueError("pack_dialogues is for stage sft only (stage 1 always packs its blocks)")
        if self.pack_lookahead < 1:
            raise ValueError(f"pack_lookahead must be at least 1, got {self.pack_lookahead}")
        if self.pair_loss not in ("all", "assistant"):
            raise ValueError(f"pair_loss must be all or assistant, got {self.pair_loss!r}")
        if self.overlong not in ("error", "skip", "truncate"):
            raise ValueError(f"overlong must be error, skip or truncate, got {self.overlong!r}")
        if self.mixed_precision not in ("auto", "no", "bf16"):
            raise ValueError(f"mixed_precision must be auto, no or bf16, got {self.mixed_precision!r}")
        if self.sampling is not None:
            with_sampling(DEFAULT_SAMPLING, self.sampling)  # names the setting it refuses

    @property
    def warmup_steps(self) -> int:
        return math.ceil(self.warmup_fraction * self.max_steps)

    def learning_rate_at(self, step: int, seconds: float = 0.0) -> float:
        """Linear warmup to the peak, then cosine decay to `min_lr_ratio` x peak at `max_steps`,
        or at the end of the `max_minutes` budget when that comes first.

        `step` counts optimizer steps already taken (0 for the first update); `seconds` is the
        training-step time spent so far.
        """
        return warmup_cosine(
            self.learning_rate,
            step,
            self.warmup_steps,
            self.max_steps,
            self.min_lr_ratio,
            self.budget_spent(seconds),
        )

    def budget_spent(self, seconds: float) -> float:
        """The share of the `max_minutes` budget that `seconds` of training steps use (0 without one)."""
        return 0.0 if self.max_minutes is None else seconds / (60 * self.max_minutes)

    @classmethod
    def from_name(cls, name: str, stage: Stage, **overrides: Any) -> TrainConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown training preset {name!r}; known: {sorted(PRESETS)}")
        if stage not in PRESETS[name]:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        return PRESETS[name][stage].with_overrides(**overrides)

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with fields replaced; `lora` may be given as a dict, None-valued overrides are skipped."""
        overrides = {key: value for key, value in overrides.items() if value is not None}
        unknown = set(overrides) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}")
        if isinstance(overrides.get("lora"), dict):
            overrides["lora"] = LoraSettings(**_tuples(overrides["lora"]))
        if "betas" in overrides:
            overrides["betas"] = tuple(overrides["betas"])
        return replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The inverse of `to_dict`; a `preset` key names the preset the other keys override."""
        data = dict(data)
        preset = data.pop("preset", None)
        if preset is not None:
            return cls.from_name(preset, data.pop("stage"), **data)
        lora = data.pop("lora", None)
        config = cls(**{**data, "betas": tuple(data.get("betas", (0.9, 0.95)))})
        return replace(config, lora=LoraSettings(**_tuples(lora))) if lora else config

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """A JSON or YAML file holding `to_dict()`'s keys, or a `preset` plus overrides."""
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of training settings")
        return cls.from_dict(data)


def _tuples(lora: dict[str, Any]) -> dict[str, Any]:
    return {key: tuple(value) if isinstance(value, list) else value for key, value in lora.items()}


# The tiny model speaks at temperature 0.5 (AnyGPT: 1). Measured 2026-12-08 on the demo's stage-1 model
# (100 test and 100 held-out-voice sentences, `anyseq eval --tasks tts`), TTS WER by PocketSphinx / the CTC
# recognizer at temperature 1: 0.80 / 0.84 (held-out 0.72 / 0.83); 0.5: 0.70 / 0.67 (0.67 / 0.61); 0.2:
# 0.73 / 0.66 (0.61 / 0.57); voice match 0.18-0.20 at each. Pictures and music gain nothing from it
# (text-to-image 0.29 at 1, 0.21 at 0.4; README, "sampling settings, tiny").
TINY_SAMPLING: dict[str, dict[str, float]] = {"speech": {"temperature": 0.5}}

PRESETS: dict[str, dict[Stage, TrainConfig]] = {
    # The 2M `tiny` backbone from scratch on AnyWorld tiny (the measurements below are of the 7.1M
    # one it replaced on 2026-12-07; see `anyseq.backbone`), both stages in 20 minutes of steps on 2
    # CPU cores. The time budgets end them (max_steps caps what a faster machine runs), so the
    # precision matters: "auto" is bf16 where it measures faster (`native_bf16`): stage 1 at
    # 3,728 tokens/s against fp32's 2,358 on a CPU with AMX, 3,678 against 2,808 on one without
    # (2026-12-07). Until 2026-12-07 stage 1 ran 540 steps of 8 blocks (see its batch_size and
    # max_minutes). Measured 2026-12-03, at 8 blocks a step, in
    # the demo: 720 s + 482 s with tokenizing; in fp32 the demo ran 400 +
    # 254 steps in the same budgets, and its ASR WER was 1.52 against 0.98. Quality
    # wins over the demo's 40 minutes up to 60: with 250 + 200 steps (767 s) the demo model's
    # caption attributes were 0.10, text-to-image 0.13, music caption 0.12; with 400 + 300, 0.12,
    # 0.17 and 0.20. The targets need about ten times this: captioning alone (README, "how many
    # examples a task needs") stays on a plateau, picture ignored, past 8,600 caption examples
    # (colour 0.43 after 17,000) and reaches attribute accuracy 0.52 after 26,000; this stage
    # gives it about 1,800. The time budgets keep `make demo` within its 60 minutes on a slow day
    # (2026-12-03: 2,150 tokens/s, and the 400 + 300 steps took 930 s + 621 s); on an idle machine
    # the steps end first.
    "tiny": {
        "pretrain": TrainConfig(
            stage="pretrain",
            learning_rate=1e-3,
            max_steps=3600,
            # More minutes buy quality: on 2026-12-07 (one run each, 50 test items), 20 minutes (2,986
            # steps) against 12 (1,694): validation loss lower for every task (ASR 2.08 against 2.23,
            # music 2.85 / 2.71 against 3.13 / 3.03), ASR WER 0.35 against 0.43, text-to-image 0.30
            # against 0.20, music caption 0.58 against 0.48, caption 0.23 both. But with 16 minutes
            # `make demo` took 61 minutes that day (the 1024 context lets the evaluation's dialogues
            # run whole: 675 s against 432), over its 60, so the budget stays at 12.
            max_minutes=12.0,
            block_size=512,  # pairs are short; the 1024 context is for stage 2's whole dialogues
            # Two blocks a step: the tiny model is short of updates, not of tokens. Caption-only stage 1
            # for 6 minutes on 2026-12-07 (150 test scenes, attribute accuracy): batch 8 0.36 (232 steps,
            # 0.35 at learning rate 1e-3), 4 0.41-0.45, 2 0.44-0.48 (807-927 steps), 1 0.47 (1,497 steps);
            # the whole mix under this 12-minute budget, batch 2 (1,694 steps) against 8 (416): validation
            # loss lower for every task (ASR 2.23 against 2.45, music 3.13 / 3.03 against 3.44 / 3.32), ASR
            # WER 0.43 against 0.84, music caption 0.48 against 0.27 (README, "stage-1 batch size")
            batch_size=2,
            warmup_fraction=0.03,
            task_ratios=TINY_PRETRAIN_RATIOS,
            # Each example attends only to itself, and (`anyseq.training.init.embed_codes`) the
            # modality rows start from the tokenizers' code vectors. Together, on 2026-12-06, caption-only
            # stage 1 under this 12-minute budget (two seeds each, 150 test scenes): colour read above
            # chance after 200 steps (0.30 / 0.36 against 0.21 / 0.12) and attribute accuracy 0.46 / 0.48
            # at the end against 0.43 / 0.44 (README, "how the language model starts").
            separate_examples=True,
            sampling=TINY_SAMPLING,
            eval_every=200,
            eval_examples=32,
            eval_batch_size=8,  # 24 validation forwards a pass, not 96
            save_every=200,
            log_every=10,
            compile=True,
        ),
        "sft": TrainConfig(
            stage="sft",
            learning_rate=1e-3,
            max_steps=600,
            max_minutes=8.0,
            # Whole dialogues of up to the 1024-token context, packed: four rows of 1024 a step
            # (3,150 tokens a step on 2026-12-07, against 2,850 in eight padded rows of 512). 22% of the
            # tiny world's dialogues are still longer (music: 400 tokens a clip), cut to 1024.
            # On 2026-12-07, from the same 20-minute stage 1 (one run each, 50 test items), this
            # against eight rows of 512: 241 against 271 steps; dialogue turns that do not fit the
            # context 7 of 154 against 53; modality right 0.40 / 0.39 (held-out) against 0.35 /
            # 0.37, dialogue success 0.03 / 0.03 against 0.04 / 0.07, ASR WER 0.77 against 0.51,
            # music caption 0.49 against 0.54 (the spread between runs is about 0.2 on ASR).
            # Learning rate 3e-4: rehearsed losses lower, dialogue losses higher, modality right
            # 0.25 (README, "tiny context and packed dialogues").
            batch_size=4,
            pack_dialogues=True,
            # Sixteen dialogues waiting to fill each row: on AnyWorld tiny (2026-12-07, 400 steps of the
            # stream) rows hold 96% of their 1024 tokens against 78% when the first dialogue that does
            # not fit closes a row, 3,940 tokens a step against 3,185 at the same width (1,020 against
            # 1,002) and cost; 4 gives 90%, 32 gives 97.5%. The same 137 steps from one stage-1 model:
            # validation loss lower on all 22 tasks (README, "stage 2's packed rows")
            pack_lookahead=16,
            overlong="truncate",
            # Dialogues alone made the tiny model forget its stage-1 tasks (caption attribute
            # accuracy 0.17 after stage 1, 0.00 after 150 dialogue steps): rehearse the pairs.
            replay=0.3,
            sampling=TINY_SAMPLING,
            # The rehearsed pairs are drawn in proportion to their examples (music 28%). In the tiny
            # stage-1 mix instead (`replay_mix`, music halved; 2026-12-08, one run each from the demo's
            # stage-1 model): dialogue success 0.058 against 0.065, ASR WER 0.61 against 0.71, caption
            # 0.30 / 0.34, music caption 0.21 / 0.23: within the spread (README, "stage-2 rehearsal mix")
            eval_every=50,
            eval_examples=32,
            save_every=50,
            log_every=10,
        ),
    },
    "small": {
        "pretrain": TrainConfig(
            stage="pretrain",
            learning_rate=1e-3,
            max_steps=2000,
            batch_size=8,
            task_ratios=ANYGPT_PRETRAIN_RATIOS,
            eval_every=200,
            save_every=200,
            compile=True,
        ),
        "sft": TrainConfig(
            stage="sft",
            learning_rate=5e-4,
            max_steps=1000,
            batch_size=8,
            overlong="truncate",
            replay=0.3,
            eval_every=200,
            save_every=200,
        ),
    },
    # AnyGPT's published recipe for LLaMA-2-7B (96 A100s): blocks of 4500 tokens, then
    # dialogues up to 4096. Batch sizes are per GPU; scale grad_accum to the machine.
    "anygpt-7b": {
        "pretrain": TrainConfig(
            stage="pretrain",
            learning_rate=3e-5,
            max_steps=20000,
            batch_size=1,
            grad_accum=8,
            block_size=4500,
            betas=(0.9, 0.999),
            task_ratios=ANYGPT_PRETRAIN_RATIOS,
            eval_every=1000,
            save_every=1000,
            gradient_checkpointing=True,
        ),
        "sft": TrainConfig(
            stage="sft",
            learning_rate=2e-5,
            max_steps=5000,
            batch_size=1,
            grad_accum=8,
            block_size=4096,
            betas=(0.9, 0.999),
            eval_every=500,
            save_every=500,
            gradient_checkpointing=True,
        ),
    },
    # Unit tests: a few dozen steps of the 2-layer `test` backbone.
    "test": {
        "pretrain": TrainConfig(
            stage="pretrain",
            learning_rate=3e-3,
            max_steps=20,
            batch_size=4,
            block_size=128,
            warmup_fraction=0.1,
            eval_every=10,
            eval_examples=8,
            save_every=5,
            log_every=1,
            mixed_precision="no",
        ),
        "sft": TrainConfig(
            stage="sft",
            learning_rate=3e-3,
            max_steps=20,
            batch_size=4,
            warmup_fraction=0.1,
            eval_every=10,
            eval_examples=8,
            save_every=5,
            log_every=1,
            mixed_precision="no",
        ),
    },
}
