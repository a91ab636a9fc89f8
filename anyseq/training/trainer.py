"""The training loop of both AnyGPT stages, on top of accelerate (AnyGPT, section 4.2).

One CPU process by default; `accelerate launch` runs the same code with DDP, FSDP or
DeepSpeed (configs/accelerate/). Each optimizer step draws the same global batch on
every process from the data stream and hands process r the sequences r, r + world, ...,
so the data position is one small JSON dict whatever the number of processes.

The loss is the mean over every target token of the step (all micro-batches, all
processes), as if the whole batch had gone through at once. AdamW, linear warmup then
cosine decay, gradient clipping, gradient accumulation, bf16 autocast where the hardware
has it, gradient checkpointing, torch.compile and LoRA are settings of `TrainConfig`.

    OUT/
      run.json              # the settings, the initial model and the data view of the run
      checkpoints/step-N/   # resumable checkpoints (state.py), the last `keep_last` kept
      model/                # the final model directory
      logs/                 # TensorBoard: loss (overall and per task), lr, grad norm, tokens/s
      metrics.jsonl         # the same scalars, one line per logging step
      summary.json          # validation loss per task at the start, along the run and at the end

Everything that can be wrong with the input (no or mismatched tokenized data, a sequence
longer than the context, a checkpoint of another vocabulary, a run directory with other
settings) is an error before the first forward pass.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DistributedType, broadcast, set_seed
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from tqdm import tqdm
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from anyseq.checkpoint import AnySeqCheckpoint, read_layout, write_checkpoint_files
from anyseq.io import atomic_directory, atomic_write_json, atomic_write_text, clean_stale_temporaries
from anyseq.modalities.base import load_tokenizer
from anyseq.sampling import sampling_from_dict, with_sampling
from anyseq.training.config import TrainConfig, native_bf16
from anyseq.training.data import (
    IGNORE,
    STAGE_CORPUS,
    Batch,
    TokenizedSplit,
    collate,
    make_stream,
    replay_ratios,
    validation_batches,
    with_replay,
)
from anyseq.training.lora import apply_lora, merged_copy
from anyseq.training.state import (
    TRAINING_DIR,
    LoadedTraining,
    TrainingState,
    checkpoint_name,
    latest_checkpoint,
    prune_checkpoints,
    read_training_files,
    write_training_files,
)
from anyseq.training.tokenize import MANIFEST, VIEW_ROOT, is_view, model_fingerprint, read_view_manifest

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
CHECKPOINTS_DIR = "checkpoints"
MODEL_DIR = "model"
LOG_DIR = "logs"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"


def resolve_precision(setting: str) -> str:
    """accelerate's mixed_precision for a `TrainConfig.mixed_precision` setting.

    "auto" is bf16 on GPUs that support it and on CPUs where it measures faster (`native_bf16`:
    on 2 such cores the tiny backbone trains 1.3-1.6 times as many tokens a second); elsewhere
    fp32, which is faster there.
    """
    if setting == "auto":
        if torch.cuda.is_available():
            return "bf16" if torch.cuda.is_bf16_supported() else "no"
        return "bf16" if native_bf16() else "no"
    return setting


def compiled(model: torch.nn.Module) -> torch.nn.Module:
    """`torch.compile(model)`, or `model` itself (with a warning) where Inductor has no compiler:
    on CPU it builds C++ kernels, and a machine without a C++ compiler trains eagerly."""
    if not torch.cuda.is_available() and not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
        log.warning("compile: no C++ compiler (g++, c++ or clang++) on PATH; training without torch.compile")
        return model
    return torch.compile(model)


def find_view(data: str | Path, model_dir: str | Path) -> Path:
    """The tokenized view of `data` for `model_dir`'s tokenizers; `data` may also be the view itself."""
    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"{data}: no such data directory")
    fingerprint = model_fingerprint(model_dir)
    view = data if is_view(data) else data / VIEW_ROOT / fingerprint
    if not (view / MANIFEST).is_file():
        raise FileNotFoundError(
            f"{data}: not tokenized for {model_dir} (no {view}); "
            f"run `anyseq data tokenize --data {data} --model {model_dir}` first"
        )
    found = read_view_manifest(view)["fingerprint"]
    if found != fingerprint:
        raise ValueError(
            f"{view} was tokenized with another vocabulary or other modality tokenizers ({found}) "
            f"than {model_dir} ({fingerprint}); tokenize the data for this model"
        )
    return view


def _json_roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


@dataclass
class StepResult:
    loss_sum: torch.Tensor  # summed loss of this process's targets
    task_loss: torch.Tensor  # (num_tasks,) summed loss per task, this process
    task_targets: torch.Tensor  # (num_tasks,) targets per task, this process
    grad_norm: float
    learning_rate: float
    tokens: int  # input tokens of the step, all processes


@dataclass
class TrainSummary:
    stage: str
    steps: int
    tokens: int
    train_seconds: float
    tokens_per_second: float
    stopped_early: bool  # the time limit ended the run before max_steps
    model: str
    # task -> start, end, ratio (end / start), ratio_to_uniform (end / uniform_loss), history
    val_loss: dict[str, dict[str, Any]] = field(default_factory=dict)
    # ln(vocabulary size): the loss of a model that knows nothing, where a fresh one starts; a
    # stage that starts from another (sft from pretrain) is measured against it as well
    uniform_loss: float | None = None
    # split -> task -> examples longer than block_size (skipped or truncated, per the config)
    overlong: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Trainer:
    """One training run of one stage; `fit` runs it to the end, `step` one optimizer step."""

    def __init__(
        self, config: TrainConfig, init: str | Path, data: str | Path, out: str | Path, resume: bool = False
    ):
        self.config = config
        self.init, self.out = Path(init), Path(out)
        self.accelerator = Accelerator(
            cpu=not torch.cuda.is_available(), mixed_precision=resolve_precision(config.mixed_precision)
        )
        acc = self.accelerator

        # Every check on the input comes before the model is loaded.
        self.layout, self.meta = read_layout(self.init)
        self.view = find_view(data, self.init)
        corpus = STAGE_CORPUS[config.stage]
        context = AutoConfig.from_pretrained(self.init, local_files_only=True).max_position_embeddings
        self.block_size = config.block_size or context
        if self.block_size > context:
            raise ValueError(f"block_size {self.block_size} exceeds the model's context of {context} tokens")
        self.overlong: dict[str, dict[str, int]] = {}
        splits = {}
        for split in ("train", "validation"):
            pairs = corpus == STAGE_CORPUS["pretrain"]
            loaded = self._pairs(split) if pairs else TokenizedSplit.load(self.view, corpus, split)
            if config.replay:
                loaded = with_replay(loaded, self._pairs(split))
            splits[split], overlong = loaded.fit_to(self.block_size, config.overlong)
            if overlong:
                self.overlong[split] = overlong
                if acc.is_main_process:
                    log.warning("%s: longer than %d tokens (%s): %s", loaded.name, self.block_size,
                                config.overlong, overlong)  # fmt: skip
        self.train_split, self.val_split = splits["train"], splits["validation"]
        ratios = config.task_ratios
        if config.replay:
            ratios = replay_ratios(self.train_split, ratios, config.replay, config.replay_mix)
        self.stream = make_stream(
            config.stage,
            self.train_split,
            ratios,
            config.seed,
            self.block_size,
            config.separate_examples,
            config.pack_dialogues,
            config.pack_lookahead,
        )
        checkpoint = self._prepare_run_directory(resume)
        loaded = read_training_files(checkpoint) if checkpoint is not None else None
        if loaded is not None and loaded.state.world_size != acc.num_processes:
            raise ValueError(
                f"{checkpoint} was written by {loaded.state.world_size} processes, this run has "
                f"{acc.num_processes}; resume with the same number so the batches stay the same"
            )

        set_seed(config.seed)
        model = self._load_model(checkpoint, loaded)
        optimizer = self._optimizer(model)
        self.model, self.optimizer = acc.prepare(model, optimizer)
        self.model.train()  # from_pretrained hands models over in eval mode
        # Training steps run the compiled module; validation (other shapes, no grad) the plain one.
        self.train_model = compiled(self.model) if config.compile else self.model
        self.state = TrainingState(world_size=acc.num_processes)
        if loaded is not None:
            self._restore(loaded)
        self.tokenizers = {
            name: load_tokenizer(self.init / sub) for name, sub in self.meta["modalities"].items()
        }
        self.resumed_from = checkpoint
        self.val_batches = validation_batches(
            self.val_split,
            config.eval_examples,
            config.eval_batch_size or config.batch_size,
            self.layout.pad_id,
        )
        self.num_tasks = len(self.train_split.task_names)

    # ---- setup ---------------------------------------------------------------------
    def _prepare_run_directory(self, resume: bool) -> Path | None:
        """Check `out` against this run's settings; the checkpoint to resume from, if any."""
        record = _json_roundtrip(
            {
                "stage": self.config.stage,
                "config": self.config.to_dict(),
                "init": str(self.init.resolve()),
                "view": str(self.view.resolve()),
                "world_size": self.accelerator.num_processes,
            }
        )
        run_file = self.out / RUN_FILE
        checkpoints = self.out / CHECKPOINTS_DIR
        checkpoint = latest_checkpoint(checkpoints)
        if run_file.is_file() or checkpoint is not None:
            if not resume:
                raise FileExistsError(
                    f"{self.out} already holds a training run; pass --resume to continue it "
                    "or choose another --out"
                )
            saved = json.loads(run_file.read_text()) if run_file.is_file() else record
            changed = sorted(
                key
                for key in set(saved["config"]) | set(record["config"])
                if saved["config"].get(key) != record["config"].get(key)
            )
            changed += [
                key for key in ("stage", "init", "view", "world_size") if saved.get(key) != record.get(key)
            ]
            if changed:
                raise ValueError(
                    f"{self.out} was started with other settings ({', '.join(changed)}); use another --out"
                )
        if checkpoint is not None:
            layout, _ = read_layout(checkpoint)
            if layout.to_dict() != self.layout.to_dict():
                raise ValueError(
                    f"{checkpoint} has another vocabulary than {self.init}; it cannot be resumed here"
                )
        self.accelerator.wait_for_everyone()  # every rank has checked before the main one writes
        if self.accelerator.is_main_process:
            if checkpoints.is_dir():
                clean_stale_temporaries(checkpoints)
            atomic_write_json(run_file, record)
        self.accelerator.wait_for_everyone()
        return checkpoint

    def _pairs(self, split: str) -> TokenizedSplit:
        """Stage 1's pairs of `split`, with the targets `pair_loss` names."""
        pairs = TokenizedSplit.load(self.view, STAGE_CORPUS["pretrain"], split)
        return pairs.every_token() if self.config.pair_loss == "all" else pairs

    def _load_model(self, checkpoint: Path | None, loaded: LoadedTraining | None) -> PreTrainedModel:
        lora = self.config.lora
        source = checkpoint if checkpoint is not None and lora is None else self.init
        model = AutoModelForCausalLM.from_pretrained(
            source, local_files_only=True, use_safetensors=True, dtype=torch.float32
        )
        rows = model.get_input_embeddings().weight.shape[0]
        if rows < self.layout.vocab_size:
            raise ValueError(f"{source}: {rows} embedding rows for a vocabulary of {self.layout.vocab_size}")
        if self.config.gradient_checkpointing:
            model.activation_checkpointing_enable({"use_reentrant": False})
        if lora is not None:
            model = apply_lora(model, lora)
            if loaded is not None:
                result = model.load_state_dict(loaded.trainable, strict=False)
                if result.unexpected_keys:
                    raise ValueError(
                        f"{checkpoint}: adapter weights {result.unexpected_keys[:3]} do not fit the model"
                    )
        return model

    def _optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        trainable = [p for p in model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": self.config.weight_decay},
            {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},  # norms and biases
        ]
        return torch.optim.AdamW(
            groups, lr=self.config.learning_rate_at(0), betas=self.config.betas, fused=True
        )

    def _restore(self, loaded: LoadedTraining) -> None:
        if loaded.optimizer["state"]:
            options = StateDictOptions(full_state_dict=True)
            set_optimizer_state_dict(self.model, self.optimizer.optimizer, loaded.optimizer, options=options)
        elif self.accelerator.is_main_process:
            log.warning(
                "the checkpoint holds no optimizer state (written under DeepSpeed): AdamW starts afresh"
            )
        torch.set_rng_state(loaded.rng["torch"][self.accelerator.process_index])
        if torch.cuda.is_available() and "cuda" in loaded.rng:
            torch.cuda.set_rng_state(loaded.rng["cuda"][self.accelerator.process_index])
        self.stream.load_state_dict(loaded.state.data)
        self.state = loaded.state

    # ---- one step ------------------------------------------------------------------
    def _forward(
        self, batch: Batch, num_tasks: int, model: torch.nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Summed loss, per-task summed loss (num_tasks,) and per-task target counts of one batch."""
        batch = batch.to(self.accelerator.device)
        output = (self.model if model is None else model)(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
        )
        losses = F.cross_entropy(
            output.logits.flatten(0, 1).float(),
            batch.targets.flatten(),
            ignore_index=IGNORE,
            reduction="none",
        )  # (B*T,)
        tasks = batch.target_tasks.flatten()
        trained = tasks >= 0
        task_loss = torch.zeros(num_tasks, device=losses.device).index_add_(
            0, tasks[trained], losses.detach()[trained]
        )
        task_targets = torch.bincount(tasks[trained], minlength=num_tasks)
        return losses.sum(), task_loss, task_targets

    def step(self, seconds: float | None = None) -> StepResult:
        """One optimizer step over `batch_size x grad_accum x processes` sequences; `seconds`, the
        training-step time the learning-rate schedule counts (default: this process's)."""
        acc, config = self.accelerator, self.config
        world, rank = acc.num_processes, acc.process_index
        sequences = [self.stream.next() for _ in range(config.batch_size * config.grad_accum * world)]
        total_targets = max(1, sum(int(s.loss_mask[1:].sum()) for s in sequences))
        mine = sequences[rank::world]
        batches = [
            collate(mine[i : i + config.batch_size], self.layout.pad_id)
            for i in range(0, len(mine), config.batch_size)
        ]
        learning_rate = config.learning_rate_at(
            self.state.step, self.state.seconds if seconds is None else seconds
        )
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        loss_sum = torch.zeros((), device=acc.device)
        task_loss = torch.zeros(self.num_tasks, device=acc.device)
        task_targets = torch.zeros(self.num_tasks, dtype=torch.long, device=acc.device)
        for i, batch in enumerate(batches):
            # Gradients are all-reduced once, after the last micro-batch.
            sync = contextlib.nullcontext() if i == len(batches) - 1 else acc.no_sync(self.model)
            with sync:
                summed, per_task, targets = self._forward(batch, self.num_tasks, self.train_model)
                # DDP averages gradients over processes, hence the factor `world`.
                acc.backward(summed * (world / total_targets))
            loss_sum += summed.detach()
            task_loss += per_task
            task_targets += targets
        grad_norm = acc.clip_grad_norm_(self.model.parameters(), config.grad_clip or math.inf)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        tokens = sum(len(s.ids) for s in sequences)
        self.state.step += 1
        self.state.tokens += tokens
        # DeepSpeed clips inside its engine and reports no norm before its first step.
        norm = math.nan if grad_norm is None else float(grad_norm)
        return StepResult(loss_sum, task_loss, task_targets, norm, learning_rate, tokens)

    # ---- validation ----------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss per target token of each validation task, over all processes."""
        acc = self.accelerator
        self.model.eval()
        names = self.val_split.task_names
        sums = torch.zeros(len(names), device=acc.device)
        counts = torch.zeros(len(names), dtype=torch.long, device=acc.device)
        batches = self.val_batches
        # Every process runs the same number of forward passes (FSDP gathers weights in each).
        rounds = math.ceil(len(batches) / acc.num_processes)
        for i in range(acc.process_index, rounds * acc.num_processes, acc.num_processes):
            _, task_loss, task_targets = self._forward(batches[min(i, len(batches) - 1)], len(names))
            if i < len(batches):
                sums += task_loss
                counts += task_targets
        sums, counts = acc.reduce(sums, "sum"), acc.reduce(counts, "sum")
        self.model.train()
        return {name: float(s / c) for name, s, c in zip(names, sums, counts, strict=True) if c > 0}

    def _validate(self, writer: Any) -> dict[str, float]:
        losses = self.evaluate()
        for task, loss in losses.items():
            self.state.val_loss.setdefault(task, []).append([self.state.step, loss])
        if writer is not None:
            for task, loss in losses.items():
                writer.add_scalar(f"val/loss/{task}", loss, self.state.step)
            writer.add_scalar("val/loss", sum(losses.values()) / len(losses), self.state.step)
        return losses

    # ---- checkpoints ---------------------------------------------------------------
    def _export_model(self) -> PreTrainedModel | None:
        """The plain model to write, on the main process (None on the others; every process
        must call it). Weights sharded by FSDP or ZeRO-3 are gathered into a CPU copy;
        LoRA adapters are merged into a copy."""
        acc = self.accelerator
        unwrapped = acc.unwrap_model(self.model)
        if acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
            state = acc.get_state_dict(self.model)  # a collective; the full weights land on the main process
            if not acc.is_main_process:
                return None
            model = AutoModelForCausalLM.from_config(unwrapped.config, dtype=torch.float32)
            model.load_state_dict(state)
            return model
        if not acc.is_main_process:
            return None
        return merged_copy(unwrapped) if self.config.lora is not None else unwrapped

    def _checkpoint(self, model: PreTrainedModel) -> AnySeqCheckpoint:
        summary = {"stage": self.config.stage, "steps": self.state.step, "tokens": self.state.tokens}
        trained = {**self.meta.get("metadata", {}).get("training", {}), self.config.stage: summary}
        return AnySeqCheckpoint(
            model=model,
            layout=self.layout,
            tokenizers=self.tokenizers,
            sampling=with_sampling(
                sampling_from_dict(self.meta.get("sampling", {})), self.config.sampling or {}
            ),
            metadata={**self.meta.get("metadata", {}), "training": trained},
        )

    def save(self) -> Path:
        """Write a resumable checkpoint of the current step (all processes must call it)."""
        acc = self.accelerator
        self.state.data = self.stream.state_dict()
        if acc.distributed_type == DistributedType.DEEPSPEED:
            optimizer = {
                "state": {},
                "param_groups": [],
            }  # kept inside DeepSpeed's engine, saved only with pickle
        else:
            options = StateDictOptions(full_state_dict=True, cpu_offload=True)
            optimizer = get_optimizer_state_dict(self.model, self.optimizer.optimizer, options=options)
        rng = {"torch": acc.gather(torch.get_rng_state()[None].to(acc.device)).cpu()}  # (world, N)
        if torch.cuda.is_available():
            rng["cuda"] = acc.gather(torch.cuda.get_rng_state()[None].to(acc.device)).cpu()
        unwrapped = acc.unwrap_model(self.model)
        trainable = None
        if self.config.lora is not None:
            trainable = {name: p for name, p in unwrapped.named_parameters() if p.requires_grad}
        model = self._export_model()
        path = self.out / CHECKPOINTS_DIR / checkpoint_name(self.state.step)
        if acc.is_main_process:
            with atomic_directory(path) as temp:
                write_checkpoint_files(self._checkpoint(model), temp)
                write_training_files(temp, self.state, optimizer, rng, trainable)
            prune_checkpoints(path.parent, self.config.keep_last)
        acc.wait_for_everyone()
        return path

    # ---- the run -------------------------------------------------------------------
    def _seconds(self) -> float:
        """Training-step time spent so far, as the first process counts it (so that every process
        follows the same schedule and stops at the same step)."""
        if self.config.max_minutes is None:
            return self.state.seconds
        seconds = torch.tensor([self.state.seconds], dtype=torch.float64, device=self.accelerator.device)
        return float(broadcast(seconds, from_process=0).item())

    def fit(self) -> TrainSummary:
        """Train to `max_steps` (or until the `max_minutes` budget is spent), validating, logging
        and checkpointing on the way; writes the final model and `summary.json`."""
        acc, config = self.accelerator, self.config
        writer = None
        if acc.is_main_process:
            from torch.utils.tensorboard import SummaryWriter

            resumed = self.resumed_from is not None
            writer = SummaryWriter(str(self.out / LOG_DIR), purge_step=self.state.step if resumed else None)
            self._trim_metrics(self.state.step if resumed else 0)
        if not self.state.val_loss:
            self._validate(writer)
        progress = tqdm(
            total=config.max_steps, initial=self.state.step, unit="step", disable=not acc.is_main_process
        )
        interval = _Interval(self.num_tasks, acc.device)
        stopped_early = False
        while self.state.step < config.max_steps:
            spent = self._seconds()  # one clock for the budget check and the step's schedule
            if config.budget_spent(spent) >= 1.0:  # spent before a resume, or by the last step
                stopped_early = True
                break
            started = time.perf_counter()
            result = self.step(spent)
            seconds = time.perf_counter() - started
            self.state.seconds += seconds
            interval.add(result, seconds)
            step = self.state.step
            progress.update(1)
            if config.log_every and step % config.log_every == 0:
                record = self._log(interval, writer)
                progress.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_second']:.0f}")
                interval = _Interval(self.num_tasks, acc.device)
            if config.eval_every and step % config.eval_every == 0:
                self._validate(writer)
            if config.save_every and step % config.save_every == 0 and step < config.max_steps:
                self.save()
        progress.close()
        if (
            self.state.val_loss
            and self.state.val_loss[next(iter(self.state.val_loss))][-1][0] != self.state.step
        ):
            self._validate(writer)
        last = self.save()
        summary = self._summary(stopped_early)
        if acc.is_main_process:
            # The final model is the last checkpoint without its training state.
            with atomic_directory(self.out / MODEL_DIR) as temp:
                shutil.copytree(last, temp, ignore=shutil.ignore_patterns(TRAINING_DIR), dirs_exist_ok=True)
            atomic_write_json(self.out / SUMMARY_FILE, summary.to_dict())
            writer.close()
        acc.wait_for_everyone()
        return summary

    def _log(self, interval: _Interval, writer: Any) -> dict[str, float]:
        acc = self.accelerator
        loss_sum = acc.reduce(interval.loss_sum.clone(), "sum")
        task_loss = acc.reduce(interval.task_loss.clone(), "sum")
        task_targets = acc.reduce(interval.task_targets.clone(), "sum")
        record: dict[str, float] = {
            "step": self.state.step,
            "loss": float(loss_sum / task_targets.sum().clamp(min=1)),
            "lr": interval.learning_rate,
            "grad_norm": interval.grad_norm,
            "tokens_per_second": interval.tokens / max(interval.seconds, 1e-9),
            "tokens": self.state.tokens,
        }
        for name, total, count in zip(self.train_split.task_names, task_loss, task_targets, strict=True):
            if count > 0:
                record[f"loss/{name}"] = float(total / count)
        if writer is not None:
            for key, value in record.items():
                if key != "step":
                    writer.add_scalar(f"train/{key}", value, self.state.step)
            with (self.out / METRICS_FILE).open("a") as handle:
                handle.write(json.dumps(record) + "\n")
        return record

    def _trim_metrics(self, step: int) -> None:
        """Drop logged lines after `step`: a resumed run logs those steps again."""
        path = self.out / METRICS_FILE
        lines = path.read_text().splitlines() if path.is_file() else []
        kept = [line for line in lines if json.loads(line)["step"] <= step]
        atomic_write_text(path, "".join(line + "\n" for line in kept))

    def _summary(self, stopped_early: bool) -> TrainSummary:
        uniform = math.log(self.accelerator.unwrap_model(self.model).config.vocab_size)
        val_loss = {}
        for task, history in self.state.val_loss.items():
            start, end = history[0][1], history[-1][1]
            val_loss[task] = {"start": start, "end": end, "ratio": end / start,
                              "ratio_to_uniform": end / uniform, "history": history}  # fmt: skip
        return TrainSummary(
            stage=self.config.stage,
            steps=self.state.step,
            tokens=self.state.tokens,
            train_seconds=self.state.seconds,
            tokens_per_second=self.state.tokens / max(self.state.seconds, 1e-9),
            stopped_early=stopped_early,
            model=str(self.out / MODEL_DIR),
            val_loss=val_loss,
            uniform_loss=uniform,
            overlong=self.overlong,
        )


class _Interval:
    """Sums over the steps since the last log line."""

    def __init__(self, num_tasks: int, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), device=device)
        self.task_loss = torch.zeros(num_tasks, device=device)
        self.task_targets = torch.zeros(num_tasks, dtype=torch.long, device=device)
        self.tokens = 0
        self.seconds = 0.0
        self.grad_norm = 0.0
        self.learning_rate = 0.0

    def add(self, result: StepResult, seconds: float) -> None:
        self.loss_sum += result.loss_sum
        self.task_loss += result.task_loss
        self.task_targets += result.task_targets
        self.tokens += result.tokens
        self.seconds += seconds
        self.grad_norm = result.grad_norm
        self.learning_rate = result.learning_rate


def train(
    config: TrainConfig,
    init: str | Path,
    data: str | Path,
    out: str | Path,
    resume: bool = False,
) -> TrainSummary:
    """Run one stage from the model directory `init` on the tokenized `data` into `out`."""
    return Trainer(config, init, data, out, resume=resume).fit()
