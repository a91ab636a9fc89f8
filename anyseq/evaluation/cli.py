"""`anyseq eval`: run the paper's tasks on AnyWorld and write report.json, report.md and plots.

    anyseq eval --model runs/demo/model --data data/world --out runs/demo/eval [--tasks asr --tasks tts] [--limit 50]
    anyseq eval-judges --data data/world --cache runs/demo/eval/judges   # train the judges ahead

`evaluate` and `build_judges` are the functions behind the commands; `eval_command` and
`judges_command` their typer forms.
"""

from __future__ import annotations

import logging
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
    """
    import torch

    from anyseq.api import AnySeq
    from anyseq.evaluation.config import EvalConfig
    from anyseq.evaluation.harness import Evaluation, check_tasks
    from anyseq.evaluation.report import write_report

    names = check_tasks(tasks)
    config = EvalConfig.preset(preset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        evaluation = Evaluation(AnySeq.from_pretrained(model), data, out, config, limit, cache)
        entries, seconds, notes = _run(evaluation, names)
    finally:
        torch.set_num_threads(threads)
    return write_report(out, entries, str(model), str(data), preset, config.to_dict(), limit, seconds, notes)


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


def _run(evaluation: Evaluation, names: list[str]) -> tuple[list[Entry], dict[str, float], list[str]]:
    """Every split of every task: entries, seconds per task, and notes on what was skipped."""
    from anyseq.evaluation.harness import TASKS
    from anyseq.evaluation.panel import JudgeUnavailable

    entries, seconds, notes = [], {}, []
    for name in names:
        spec = TASKS[name]
        function = spec.load()
        began = time.perf_counter()
        for split in spec.splits:
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
) -> None:
    """Evaluate a model on AnyWorld: the paper's table with independent judges."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = evaluate(model, data, out, tasks or None, limit, preset, cache)
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
