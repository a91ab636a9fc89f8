"""Resumable training checkpoints: the spine's model directory plus what the loop needs to continue.

    RUN/checkpoints/step-000200/          # written atomically: it exists complete or not at all
      config.json model.safetensors tokenizer.json anyseq.json modalities/ ...
      training/
        state.json                        # step, tokens, data position, optimizer hyperparameters
        optimizer.safetensors             # "{parameter}/{exp_avg|exp_avg_sq|step}" tensors
        rng.safetensors                   # torch generator state of every process
        trainable.safetensors             # LoRA runs only: adapter (and embedding) parameters

No pickle anywhere: tensors go to safetensors, everything else to JSON. A directory is a
checkpoint only when its name is `step-N` and it holds every file above; anything else
(an interrupted write's `.tmp-*` sibling, a directory copied by hand and cut short) is
ignored by `complete_checkpoints`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from anyseq.checkpoint import REQUIRED_FILES
from anyseq.io import TEMP_PREFIX, atomic_write_json

TRAINING_DIR = "training"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
TRAINABLE_FILE = "trainable.safetensors"
STEP_PATTERN = re.compile(r"step-(\d+)")


@dataclass
class TrainingState:
    step: int = 0  # optimizer steps taken
    tokens: int = 0  # input tokens seen by all processes
    seconds: float = 0.0  # time spent in training steps
    data: dict[str, Any] = field(default_factory=dict)  # the stream's position
    val_loss: dict[str, list[list[float]]] = field(default_factory=dict)  # task -> [[step, loss], ...]
    world_size: int = 1


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def is_complete(directory: Path) -> bool:
    training = directory / TRAINING_DIR
    return (
        STEP_PATTERN.fullmatch(directory.name) is not None
        and all((directory / name).is_file() for name in REQUIRED_FILES)
        and any(directory.glob("model*.safetensors"))
        and all((training / name).is_file() for name in (STATE_FILE, OPTIMIZER_FILE, RNG_FILE))
    )


def complete_checkpoints(directory: str | Path) -> list[Path]:
    """The complete checkpoints under `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [path for path in directory.iterdir() if path.is_dir() and is_complete(path)]
    return sorted(found, key=lambda path: int(STEP_PATTERN.fullmatch(path.name).group(1)))


def latest_checkpoint(directory: str | Path) -> Path | None:
    found = complete_checkpoints(directory)
    return found[-1] if found else None


def prune_checkpoints(directory: str | Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` checkpoints; each is renamed away first, so a kill
    mid-removal leaves a `.tmp-*` leftover, never a damaged `step-N`."""
    removed = complete_checkpoints(directory)[:-keep]
    for path in removed:
        doomed = path.with_name(f"{TEMP_PREFIX}removed-{path.name}-{os.getpid()}")
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    return removed


def _flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A full optimizer state dict keyed by parameter name -> tensors and JSON scalars."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for parameter, entries in state_dict["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{parameter}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{parameter}/{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *extra["scalars"].items()]:
        parameter, key = name.rsplit("/", 1)
        state.setdefault(parameter, {})[key] = value
    groups = [
        {**group, "betas": tuple(group["betas"])} if "betas" in group else group
        for group in extra["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def write_training_files(
    directory: Path,
    state: TrainingState,
    optimizer: dict[str, Any],
    rng: dict[str, torch.Tensor],
    trainable: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write `training/` into a checkpoint directory that is still being built (a temporary one)."""
    training = directory / TRAINING_DIR
    training.mkdir(parents=True, exist_ok=True)
    tensors, extra = _flatten_optimizer(optimizer)
    save_file(tensors, training / OPTIMIZER_FILE)
    save_file({name: value.contiguous() for name, value in rng.items()}, training / RNG_FILE)
    if trainable is not None:
        save_file({n: p.detach().cpu().contiguous() for n, p in trainable.items()}, training / TRAINABLE_FILE)
    atomic_write_json(training / STATE_FILE, {**asdict(state), "optimizer": extra})


@dataclass
class LoadedTraining:
    state: TrainingState
    optimizer: dict[str, Any]  # a full optimizer state dict keyed by parameter name
    rng: dict[str, torch.Tensor]
    trainable: dict[str, torch.Tensor] | None


def read_training_files(checkpoint: Path) -> LoadedTraining:
    training = checkpoint / TRAINING_DIR
    data = json.loads((training / STATE_FILE).read_text())
    optimizer = _unflatten_optimizer(load_file(training / OPTIMIZER_FILE), data.pop("optimizer"))
    trainable = load_file(training / TRAINABLE_FILE) if (training / TRAINABLE_FILE).is_file() else None
    return LoadedTraining(TrainingState(**data), optimizer, load_file(training / RNG_FILE), trainable)
