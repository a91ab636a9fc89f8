"""`anyseq eval`: run the paper's tasks on AnyWorld and write report.json, report.md and plots.

    anyseq eval --model runs/demo/model --data data/world --out runs/demo/eval [--tasks asr --tasks tts] [--limit 50]
    anyseq eval-judges --data data/world --cache runs/demo/eval/judges   # train the judges ahead

`evaluate` and `build_judges` are the functions behind the commands; `eval_command` and
`judges_command` their typer forms.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from anyseq.evaluation.harness import Entry, Evaluation

log = logging.getLogger("anyseq.evaluation")


def evaluate(
    model: Path,
    data: Path,
    out: Path,
    tasks: list[str] | None = None,
    limit: int | None = None,
    preset: str = "tiny",
    cache: Path | None = None,
    workers: int | None = None,
    sampling: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint on a world's test and held-out splits; returns the report (report.json).

    Args:
        model: an AnySeq checkpoint directory.
        data: an AnyWorld build (or imported user data) with a manifest.
        out: where report.json, report.md, plots/ and samples/ go (and the judges' cache).
        tasks: names from `anyseq.evaluation.harness.TASKS`; all when None or empty.
        limit: at most this many items (dialogues for `dialogue`) per split.
        preset: `EvalConfig` preset, "tiny" (full judges) or "test" (small, fast judges).
        cache: where trained judges are kept (default: `out/judges`).
        workers: processes that evaluate side by side (default: the preset's `EvalConfig.workers`, 1;
            `anyseq eval` asks for 2). They are spawned, so a script that asks for more than one
            calls `evaluate` under `if __name__ == "__main__":`.
        sampling: changes to the checkpoint's media sampling, e.g. `{"speech": {"temperature": 0.5}}`.
    """
    import torch

    from anyseq.evaluation.config import EvalConfig
    from anyseq.evaluation.harness import check_tasks
    from anyseq.evaluation.report import write_report

    names = check_tasks(tasks)
    overrides = {"workers": workers, "sampling": sampling}
    config = EvalConfig.preset(preset, **{k: v for k, v in overrides.items() if v is not None})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(config.workers, cores)  # the cores this process may use, not the machine's
    began = time.perf_counter()
    if workers > 1:
        entries, seconds, notes = _run_in_processes(workers, model, data, out, config, limit, cache, names)
    else:
        threads = torch.get_num_threads()
        try:
            entries, seconds, notes = _run(_evaluation(model, data, out, config, limit, cache), names)
        finally:
            torch.set_num_threads(threads)
    wall = time.perf_counter() - began
    if config.sampling:
        notes = [
            *notes,
            f"media sampled with the checkpoint's settings changed by {json.dumps(config.sampling)}",
        ]
    return write_report(
        out, entries, str(model), str(data), preset, config.to_dict(), limit, seconds, notes, wall
    )


def build_judges(data: Path, cache: Path, preset: str = "tiny") -> dict[str, str]:
    """Train (or load) every judge of a world that needs training, into `cache`, on one thread.

    The judges depend on the data only, never on a model, so they can be made while a
    tokenizer trains (the demo does so beside the single-threaded music tokenizer);
    `evaluate(..., cache=cache)` then loads them. Returns judge -> its class, or why it
    cannot be built from this data.
    """
    import torch

    from anyseq.evaluation.config import EvalConfig
    from anyseq.evaluation.panel import JudgePanel, JudgeUnavailable

    config = EvalConfig.preset(preset)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    panel = JudgePanel(data, cache, config)
    built = {}
    try:
        for name in ("ctc", "speaker", "instrument", "emoji"):
            try:
                built[name] = type(getattr(panel, name)).__name__
            except JudgeUnavailable as error:
                built[name] = f"unavailable: {error}"
    finally:
        torch.set_num_threads(threads)
    return built


def _run(
    evaluation: Evaluation, names: list[str], only: str | None = None
) -> tuple[list[Entry], dict[str, float], list[str]]:
    """Every split (or the split `only`) of every task: entries, seconds per task, and notes on
    what was skipped."""
    from anyseq.evaluation.harness import TASKS
    from anyseq.evaluation.panel import JudgeUnavailable

    entries, seconds, notes = [], {}, []
    for name in names:
        spec = TASKS[name]
        function = spec.load()
        began = time.perf_counter()
        for split in spec.splits if only is None else [only]:
            if not evaluation.has_split(split):
                notes.append(f"{name}: the data has no split {split!r}")
                continue
            try:
                entry = function(evaluation, split)
            except JudgeUnavailable as error:
                notes.append(f"{name} on {split} skipped: {error}")
                log.warning("%s on %s skipped: %s", name, split, error)
                continue
            if entry is None:
                notes.append(f"{name}: nothing to evaluate in {split!r}")
                continue
            entries.append(entry)
        seconds[name] = time.perf_counter() - began
    return entries, seconds, notes


def _evaluation(
    model: Path, data: Path, out: Path, config: Any, limit: int | None, cache: Path | None
) -> Evaluation:
    """The evaluation of `model` on `data`, on the config's torch threads."""
    import torch

    from anyseq.api import AnySeq
    from anyseq.evaluation.harness import Evaluation

    torch.set_num_threads(config.threads)
    return Evaluation(AnySeq.from_pretrained(model), data, out, config, limit, cache)


# The evaluation of a worker process of `_run_in_processes`, made by its first piece of work (so
# that a bad model or data directory raises its own error in the caller, not a broken pool).
_WORKER: Evaluation | None = None


def _run_piece(
    setup: tuple[Path, Path, Path, dict[str, Any], int | None, Path | None], names: list[str], split: str
) -> tuple[list[Entry], dict[str, float], list[str]]:
    global _WORKER
    if _WORKER is None:
        from anyseq.evaluation.config import EvalConfig

        model, data, out, config, limit, cache = setup
        _WORKER = _evaluation(model, data, out, EvalConfig.from_dict(config), limit, cache)
    return _run(_WORKER, names, only=split)


def _pieces(names: list[str]) -> list[tuple[list[str], str]]:
    """The work of an evaluation as (tasks, split) pieces: one task's split, or together the tasks
    that share work (`TaskSpec.shares`); dialogues first, the longest (turn by turn, media replies)."""
    from anyseq.evaluation.harness import TASKS

    pieces: dict[tuple[str, str], list[str]] = {}
    for name in names:
        for split in TASKS[name].splits:
            pieces.setdefault((TASKS[name].shares or name, split), []).append(name)
    return sorted(
        ((tasks, split) for (_, split), tasks in pieces.items()), key=lambda p: "dialogue" not in p[0]
    )


def _run_in_processes(
    workers: int,
    model: Path,
    data: Path,
    out: Path,
    config: Any,
    limit: int | None,
    cache: Path | None,
    names: list[str],
) -> tuple[list[Entry], dict[str, float], list[str]]:
    """`_run` over `workers` processes (each loads the model once), the pieces of `_pieces` handed
    to whichever is free; entries in the order `_run` gives them, seconds per task summed."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from anyseq.evaluation.harness import TASKS

    setup = (model, data, out, config.to_dict(), limit, cache)
    context = multiprocessing.get_context("spawn")  # never fork a process that holds torch's threads
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        results = [pool.submit(_run_piece, setup, tasks, split) for tasks, split in _pieces(names)]
        try:
            done = [future.result() for future in results]
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the first error ends the run; no piece waits for another
            raise
    entries, seconds, notes = [], {}, []
    for piece_entries, piece_seconds, piece_notes in done:
        entries += piece_entries
        notes += piece_notes
        for name, spent in piece_seconds.items():
            seconds[name] = seconds.get(name, 0.0) + spent
    order = {
        (name, split): i for i, (name, split) in enumerate((n, s) for n in names for s in TASKS[n].splits)
    }
    entries.sort(key=lambda e: order[(e.task, e.split)])
    return entries, {name: seconds[name] for name in names if name in seconds}, notes


def eval_command(
    model: Path = typer.Option(..., help="AnySeq checkpoint directory"),
    data: Path = typer.Option(..., help="AnyWorld directory (anyseq data build)"),
    out: Path = typer.Option(..., help="output directory: report.json, report.md, plots/, samples/"),
    tasks: list[str] = typer.Option(
        [],
        help="tasks to run (repeatable): caption, text_to_image, asr, tts, voice_clone, "
        "music_caption, music_generation, dialogue; default all",
    ),
    limit: int | None = typer.Option(None, min=1, help="at most N items (dialogues) per split"),
    preset: str = typer.Option("tiny", help="judge sizes: tiny (full) | test (fast)"),
    cache: Path | None = typer.Option(None, help="cache of trained judges (default OUT/judges)"),
    workers: int = typer.Option(2, min=1, help="processes that evaluate side by side (at most the cores)"),
    sampling: str | None = typer.Option(
        None, help='changes to the checkpoint\'s media sampling, JSON: \'{"speech": {"temperature": 0.5}}\''
    ),
) -> None:
    """Evaluate a model on AnyWorld: the paper's table with independent judges."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    changes = None
    if sampling is not None:
        try:
            changes = json.loads(sampling)
        except json.JSONDecodeError as error:
            raise typer.BadParameter(f"not JSON: {error}", param_hint="--sampling") from None
        from anyseq.evaluation.config import EvalConfig

        try:  # refused here, named as the option, rather than deep in `evaluate`
            EvalConfig(sampling=changes)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--sampling") from None
    report = evaluate(model, data, out, tasks or None, limit, preset, cache, workers, changes)
    for entry in report["entries"]:
        ceiling = "—" if entry["ceiling"] is None else entry["ceiling"]
        typer.echo(
            f"{entry['task']:>16} {entry['split']:<22} {entry['metric']:<20} {entry['value']} (ceiling {ceiling})"
        )
    typer.echo(f"report: {out / 'report.md'}")


def judges_command(
    data: Path = typer.Option(..., help="AnyWorld directory (anyseq data build)"),
    cache: Path = typer.Option(..., help="where the trained judges go (`anyseq eval --cache`)"),
    preset: str = typer.Option("tiny", help="judge sizes: tiny (full) | test (fast)"),
) -> None:
    """Train the evaluation's judges ahead of `anyseq eval` (they depend on the data only)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name, judge in build_judges(data, cache, preset).items():
        typer.echo(f"{name:>12}: {judge}")
    typer.echo(f"judges: {cache}")
