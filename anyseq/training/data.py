"""Training sequences from the tokenized view (AnyGPT, section 4.2).

Stage 1 draws pairs by task sampling ratio and packs them into blocks of `block_size`
tokens (the context length unless set): an example cut at a block's end continues in the
next block, and attention runs across example boundaries, as the HF `group_texts` recipe
AnyGPT trained with, or (`separate`) each example attends only to itself. Stage 2
puts one whole dialogue in each sequence and pads a batch to its longest dialogue, or packs
whole dialogues, never cut, into sequences of up to the block size, each attending only to
itself (positions restart with each; the padded tail is one more span that no loss reads).

A stream's position (the task sampler's random state, each task's epoch and cursor, the
example a block was cut in) is a small JSON dict, so a resumed run reads exactly the
sequences the uninterrupted one would have read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from anyseq.training.config import Overlong, Stage
from anyseq.training.tokenize import read_view_manifest

STAGE_CORPUS: dict[Stage, str] = {"pretrain": "pretrain", "sft": "instruct"}
REPLAY_PREFIX = "replay:"  # stage-1 pair tasks rehearsed during stage 2 are named "replay:<task>"
IGNORE = -100  # target of a position that is not trained (HF convention)


@dataclass
class TaskExamples:
    """The examples of one task back to back: example i is ids[offsets[i]:offsets[i + 1]]."""

    ids: np.ndarray  # (N,) int32
    loss_mask: np.ndarray  # (N,) bool
    offsets: np.ndarray  # (n + 1,) int64

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def example(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = self.offsets[index], self.offsets[index + 1]
        return self.ids[start:stop], self.loss_mask[start:stop]


def _select(
    offsets: np.ndarray, values: Sequence[np.ndarray], rows: np.ndarray, limit: int | None = None
) -> list[np.ndarray]:
    """Gather the variable-length rows `rows` (each cut to its first `limit` entries) of flat
    arrays with `offsets` into new flat arrays; returns [new offsets, *new values]."""
    lengths = offsets[rows + 1] - offsets[rows]
    if limit is not None:
        lengths = np.minimum(lengths, limit)
    new_offsets = np.concatenate([[0], np.cumsum(lengths)])
    index = np.repeat(offsets[rows] - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    return [new_offsets, *(v[index] for v in values)]


class TokenizedSplit:
    """One corpus split of a view, grouped by task (5 bytes per token in memory)."""

    def __init__(self, name: str, tasks: Mapping[str, TaskExamples]) -> None:
        self.name = name
        self.tasks = dict(sorted(tasks.items()))

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    def __len__(self) -> int:
        return sum(len(t) for t in self.tasks.values())

    @classmethod
    def load(cls, view_dir: str | Path, corpus: str, split: str) -> TokenizedSplit:
        view_dir = Path(view_dir)
        manifest = read_view_manifest(view_dir)
        name = f"{view_dir}: {corpus}/{split}"
        counts = manifest["corpora"].get(corpus, {}).get(split)
        if counts is None:
            raise ValueError(f"{name} is missing; the view has {_listing(manifest)}")
        if not counts["examples"]:
            raise ValueError(
                f"{name} is empty ({counts['skipped']} conversations were skipped at tokenization)"
            )
        table = pa.concat_tables(
            [pq.read_table(view_dir / corpus / split / shard) for shard in counts["shards"]]
        )
        ids = table["ids"].combine_chunks()
        offsets = ids.offsets.to_numpy().astype(np.int64)
        values = ids.values.to_numpy()
        mask = table["loss_mask"].combine_chunks().values.to_numpy(zero_copy_only=False)
        task = np.asarray(table["task"].to_pylist())
        tasks = {}
        for task_name in np.unique(task):
            new_offsets, task_ids, task_mask = _select(
                offsets, (values, mask), np.flatnonzero(task == task_name)
            )
            tasks[str(task_name)] = TaskExamples(task_ids, task_mask, new_offsets)
        return cls(name, tasks)

    def every_token(self) -> TokenizedSplit:
        """This split with every token a target but each example's first (its bos), as
        `render(loss_on="all")` marks a stage-1 pair for AnyGPT's pretraining."""
        tasks = {}
        for task, examples in self.tasks.items():
            mask = np.ones(len(examples.ids), dtype=bool)
            mask[examples.offsets[:-1]] = False
            tasks[task] = TaskExamples(examples.ids, mask, examples.offsets)
        return TokenizedSplit(self.name, tasks)

    def fit_to(self, limit: int, overlong: Overlong) -> tuple[TokenizedSplit, dict[str, int]]:
        """This split with every example within `limit` tokens, decided before any compute:
        "error" raises an error naming what does not fit, "skip" drops those examples,
        "truncate" keeps their first `limit` tokens. Also returns their count per task."""
        too_long = {task: ex.lengths[ex.lengths > limit] for task, ex in self.tasks.items()}
        too_long = {task: lengths for task, lengths in too_long.items() if len(lengths)}
        if not too_long:
            return self, {}
        details = ", ".join(f"{task}: {len(n)} (longest {n.max()})" for task, n in too_long.items())
        if overlong == "error":
            raise ValueError(
                f"{self.name}: sequences longer than the context of {limit} tokens: {details}; use a "
                "backbone with a longer context (block_size), shorter media, or overlong='skip'/'truncate'"
            )
        kept = {}
        for task, examples in self.tasks.items():
            every = np.arange(len(examples))
            rows = every if overlong == "truncate" else every[examples.lengths <= limit]
            if len(rows):
                offsets, ids, mask = _select(
                    examples.offsets, (examples.ids, examples.loss_mask), rows, limit
                )
                kept[task] = TaskExamples(ids, mask, offsets)
        if not kept:
            raise ValueError(f"{self.name}: no example fits the context of {limit} tokens ({details})")
        return TokenizedSplit(self.name, kept), {task: len(n) for task, n in too_long.items()}


def with_replay(split: TokenizedSplit, pairs: TokenizedSplit) -> TokenizedSplit:
    """`split` plus the tasks of `pairs`, each named `REPLAY_PREFIX + task`."""
    replayed = {REPLAY_PREFIX + task: examples for task, examples in pairs.tasks.items()}
    return TokenizedSplit(f"{split.name} + {pairs.name}", {**split.tasks, **replayed})


def replay_ratios(
    split: TokenizedSplit,
    ratios: Mapping[str, float] | None,
    replay: float,
    mix: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Ratios for a split made by `with_replay`: the replayed tasks share `replay` of the draws, among
    themselves as `mix` says (keyed by the pair tasks' own names; None: in proportion to their sizes),
    the split's own tasks the rest as `ratios` (None: by size) says."""
    own = TokenizedSplit(
        split.name, {t: ex for t, ex in split.tasks.items() if not t.startswith(REPLAY_PREFIX)}
    )
    pairs = TokenizedSplit(
        f"{split.name} (rehearsed pairs)",
        {t.removeprefix(REPLAY_PREFIX): ex for t, ex in split.tasks.items() if t.startswith(REPLAY_PREFIX)},
    )
    if not pairs.tasks or not own.tasks:
        raise ValueError(f"{split.name}: replay needs both the stage's own tasks and replayed pairs")
    mixed = {t: (1.0 - replay) * r for t, r in resolve_ratios(own, ratios).items()}
    return mixed | {
        REPLAY_PREFIX + t: replay * r for t, r in resolve_ratios(pairs, mix, "replay_mix").items()
    }


def _listing(manifest: Mapping[str, Any]) -> str:
    return ", ".join(f"{c}/{s}" for c, splits in manifest["corpora"].items() for s in splits) or "nothing"


def resolve_ratios(
    split: TokenizedSplit, ratios: Mapping[str, float] | None, setting: str = "task_ratios"
) -> dict[str, float]:
    """Normalised sampling ratio per task; None weighs each task by its number of examples.
    `setting` names the ratios in the error when they do not match the tasks."""
    if ratios is None:
        weights = {task: float(len(ex)) for task, ex in split.tasks.items()}
    else:
        missing = sorted(set(split.tasks) - set(ratios))
        unknown = sorted(set(ratios) - set(split.tasks))
        if missing or unknown:
            raise ValueError(
                f"{split.name}: {setting} do not match the data's tasks {split.task_names}: "
                f"no ratio for {missing}, no data for {unknown}"
            )
        weights = dict(ratios)
    total = sum(weights.values())
    return {task: weights[task] / total for task in split.tasks}


class TaskSampler:
    """Picks a task by ratio, then that task's next example in an order reshuffled every epoch."""

    def __init__(self, sizes: Mapping[str, int], ratios: Mapping[str, float], seed: int) -> None:
        self.tasks = sorted(sizes)
        self.sizes = dict(sizes)
        self.probabilities = np.array([ratios[task] for task in self.tasks])
        self.seed = seed
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.cursor = {task: [0, 0] for task in self.tasks}  # epoch, position
        self._orders: dict[str, tuple[int, np.ndarray]] = {}  # task -> (epoch, its order)

    def _order(self, task_index: int, epoch: int) -> np.ndarray:
        task = self.tasks[task_index]
        if task not in self._orders or self._orders[task][0] != epoch:
            rng = np.random.default_rng([self.seed, task_index, epoch])
            self._orders[task] = (epoch, rng.permutation(self.sizes[task]))
        return self._orders[task][1]

    def next(self) -> tuple[str, int]:
        task_index = int(self.rng.choice(len(self.tasks), p=self.probabilities))
        task = self.tasks[task_index]
        epoch, position = self.cursor[task]
        example = int(self._order(task_index, epoch)[position])
        position += 1
        self.cursor[task] = [epoch + 1, 0] if position == self.sizes[task] else [epoch, position]
        return task, example

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "cursor": {task: list(c) for task, c in self.cursor.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if sorted(state["cursor"]) != self.tasks:
            raise ValueError(
                f"the saved data position has tasks {sorted(state['cursor'])}, the data {self.tasks}"
            )
        self.rng.bit_generator.state = state["rng"]
        self.cursor = {task: list(c) for task, c in state["cursor"].items()}


@dataclass
class TrainSequence:
    ids: np.ndarray  # (L,) token ids
    loss_mask: np.ndarray  # (L,) True where the token is a training target
    task: np.ndarray  # (L,) index of each token's task in the split's sorted task names
    # (L,) each token's position in its own example, for a packed block whose examples do not
    # attend to each other (see `PackedStream`); None: positions 0..L-1, one attention span
    position: np.ndarray | None = None


def _join(pieces: Sequence[TrainSequence]) -> TrainSequence:
    """One sequence of several, end to end (positions kept where the pieces have them)."""
    joined = (np.concatenate([getattr(p, f) for p in pieces]) for f in ("ids", "loss_mask", "task"))
    positions = None if pieces[0].position is None else np.concatenate([p.position for p in pieces])
    return TrainSequence(*joined, positions)


class SequenceStream(Protocol):
    def next(self) -> TrainSequence: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class DialogueStream:
    """Stage 2: each sequence is one whole dialogue, or with `pack_size` as many whole
    dialogues as fit in that many tokens, each numbered from position 0 so that none attends
    to another. A packed sequence opens with the oldest dialogue drawn and not yet placed, then
    takes, in the order drawn, every one that still fits, until `lookahead` dialogues wait for
    a later sequence (1: the first that does not fit closes the sequence and opens the next)."""

    def __init__(
        self, split: TokenizedSplit, sampler: TaskSampler, pack_size: int | None = None, lookahead: int = 1
    ) -> None:
        if lookahead < 1:
            raise ValueError(f"lookahead must be at least 1, got {lookahead}")
        self.split, self.sampler, self.pack_size, self.lookahead = split, sampler, pack_size, lookahead
        self.task_index = {task: i for i, task in enumerate(split.task_names)}
        self.waiting: list[tuple[str, int]] = []  # drawn, in order, not yet in a sequence

    def _dialogue(self, task: str, example: int, numbered: bool) -> TrainSequence:
        ids, mask = self.split.tasks[task].example(example)
        index = np.full(len(ids), self.task_index[task], dtype=np.int16)
        return TrainSequence(ids, mask, index, np.arange(len(ids)) if numbered else None)

    def next(self) -> TrainSequence:
        if self.pack_size is None:
            return self._dialogue(*self.sampler.next(), numbered=False)
        taken: list[tuple[str, int]] = []
        waiting: list[tuple[str, int]] = []
        filled = 0
        earlier = iter(self.waiting)
        # the dialogues left waiting first, then new draws, until `lookahead` of them wait again
        while (drawn := next(earlier, None)) is not None or len(waiting) < self.lookahead:
            task, example = drawn or self.sampler.next()
            length = int(self.split.tasks[task].lengths[example])
            if not taken or filled + length <= self.pack_size:
                taken.append((task, example))
                filled += length
            else:
                waiting.append((task, example))
        self.waiting = waiting
        return _join([self._dialogue(task, example, numbered=True) for task, example in taken])

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(), "waiting": [list(drawn) for drawn in self.waiting]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        if "waiting" in state:
            self.waiting = [(str(task), int(example)) for task, example in state["waiting"]]
        else:  # written before the lookahead: at most one dialogue left for the next sequence
            self.waiting = [tuple(state["pending"])] if state.get("pending") else []


class PackedStream:
    """Stage 1: examples concatenated and cut into blocks of exactly `block_size` tokens.

    With `separate`, every token carries its position in its own example, and the model,
    given those positions, lets no example attend to another (transformers' packed-sequence
    mask); otherwise attention runs across the whole block, as HF `group_texts` trains."""

    def __init__(
        self, split: TokenizedSplit, sampler: TaskSampler, block_size: int, separate: bool = False
    ) -> None:
        self.split, self.sampler, self.block_size, self.separate = split, sampler, block_size, separate
        self.task_index = {task: i for i, task in enumerate(split.task_names)}
        self.carry: tuple[str, int, int] | None = None  # (task, example, offset) of a cut example

    def next(self) -> TrainSequence:
        pieces: list[TrainSequence] = []
        filled = 0
        while filled < self.block_size:
            task, example, offset = self.carry or (*self.sampler.next(), 0)
            ids, mask = self.split.tasks[task].example(example)
            take = min(len(ids) - offset, self.block_size - filled)
            index = np.full(take, self.task_index[task], dtype=np.int16)
            position = np.arange(offset, offset + take) if self.separate else None
            pieces.append(
                TrainSequence(ids[offset : offset + take], mask[offset : offset + take], index, position)
            )
            filled += take
            self.carry = (task, example, offset + take) if offset + take < len(ids) else None
        return _join(pieces)

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(), "carry": list(self.carry) if self.carry else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.carry = tuple(state["carry"]) if state["carry"] else None


def make_stream(
    stage: Stage,
    split: TokenizedSplit,
    ratios: Mapping[str, float] | None,
    seed: int,
    block_size: int,
    separate: bool = False,
    pack: bool = False,
    lookahead: int = 1,
) -> SequenceStream:
    sampler = TaskSampler({t: len(ex) for t, ex in split.tasks.items()}, resolve_ratios(split, ratios), seed)
    if stage == "pretrain":
        return PackedStream(split, sampler, block_size, separate)
    return DialogueStream(split, sampler, block_size if pack else None, lookahead)


@dataclass
class Batch:
    """Right-padded sequences; `targets[b, t]` is the token the model must predict at (b, t)."""

    input_ids: torch.Tensor  # (B, T)
    targets: torch.Tensor  # (B, T): ids[t + 1] where it is trained, else IGNORE
    target_tasks: torch.Tensor  # (B, T): task index of each target, -1 where none
    attention_mask: torch.Tensor | None  # (B, T); None when no row is padded
    num_tokens: int  # tokens that are not padding
    position_ids: torch.Tensor | None = None  # (B, T) positions within each example of packed rows

    @property
    def num_targets(self) -> int:
        return int((self.targets != IGNORE).sum())

    def to(self, device: torch.device) -> Batch:
        mask = None if self.attention_mask is None else self.attention_mask.to(device)
        positions = None if self.position_ids is None else self.position_ids.to(device)
        return Batch(
            self.input_ids.to(device),
            self.targets.to(device),
            self.target_tasks.to(device),
            mask,
            self.num_tokens,
            positions,
        )


def collate(sequences: Sequence[TrainSequence], pad_id: int) -> Batch:
    lengths = [len(s.ids) for s in sequences]
    width = max(lengths)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    targets = torch.full((len(sequences), width), IGNORE, dtype=torch.long)
    target_tasks = torch.full((len(sequences), width), -1, dtype=torch.long)
    for row, (sequence, length) in enumerate(zip(sequences, lengths, strict=True)):
        ids = torch.from_numpy(sequence.ids.astype(np.int64))
        trained = torch.from_numpy(sequence.loss_mask[1:].astype(bool))
        input_ids[row, :length] = ids
        targets[row, : length - 1] = torch.where(trained, ids[1:], IGNORE)
        target_tasks[row, : length - 1] = torch.where(
            trained, torch.from_numpy(sequence.task[1:].astype(np.int64)), -1
        )
    attention_mask = position_ids = None
    if any(s.position is not None for s in sequences):
        if any(s.position is None for s in sequences):
            raise ValueError("packed rows with example positions must all have positions")
        # A row's padded tail is numbered as one more example: it attends only to itself, and
        # no target reads it, so no attention mask is needed beside the positions.
        position_ids = torch.from_numpy(
            np.stack([np.concatenate([s.position, np.arange(width - len(s.ids))]) for s in sequences])
        ).long()
    elif min(lengths) < width:
        attention_mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return Batch(input_ids, targets, target_tasks, attention_mask, sum(lengths), position_ids)


def validation_batches(
    split: TokenizedSplit, examples_per_task: int, batch_size: int, pad_id: int
) -> list[Batch]:
    """The first `examples_per_task` examples of every task, one task per batch, shortest first."""
    batches = []
    for task_index, examples in enumerate(split.tasks.values()):
        count = min(examples_per_task, len(examples))
        order = sorted(range(count), key=lambda i: examples.lengths[i])
        for start in range(0, count, batch_size):
            sequences = []
            for i in order[start : start + batch_size]:
                ids, mask = examples.example(i)
                sequences.append(TrainSequence(ids, mask, np.full(len(ids), task_index, dtype=np.int16)))
            batches.append(collate(sequences, pad_id))
    return batches
