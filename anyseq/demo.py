"""`anyseq demo`: the main job on the built-in world, end to end, cached step by step.

    data       anyseq data build --preset tiny                 AnyWorld (DESIGN.md section 8)
    image      anyseq tokenizer train image                    the three modality tokenizers
    speech     anyseq tokenizer train speech
    music      anyseq tokenizer train music
    judges     anyseq eval-judges                              the evaluation's judges, trained on real media
    pretrain   anyseq train pretrain                           AnyGPT stage 1: text-centric pairs
    sft        anyseq train sft                                AnyGPT stage 2: any-to-any dialogues
    eval       anyseq eval --tasks dialogue --limit 50         the chat model in multi-turn dialogues, independent judges
    eval-base  anyseq eval --limit 50 (stage 1's model)        the paper's table, of the base model as AnyGPT's is
    showcase   the eight directions and multi-turn dialogues -> one self-contained HTML page

Each step runs the same command a user would type, in a child process, and leaves a
marker in `steps/` when it succeeds; a finished step is skipped, an interrupted one is
resumed by its own command (every command here resumes).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from anyseq.io import atomic_write_json

console = Console()
# Items (dialogues for `dialogue`) per split in the demo's evaluations; `anyseq eval` without --limit
# scores every item. Every task on the chat model in one process took 10.5 minutes on 2026-12-07 and
# 21 on a slower machine, 45% of it the dialogues' turns.
EVAL_LIMIT = 50
# The paper's single-task table: every evaluation task but the dialogues (a base model does not chat).
# Its scores after stage 2 (`anyseq eval --model runs/demo/sft/model`) are lower: the chat model often
# answers a single-task request as a dialogue turn ("Here is the picture.").
BASE_TASKS = ("caption", "text_to_image", "asr", "tts", "voice_clone", "music_caption", "music_generation")


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def tokenizer(self, modality: str) -> Path:
        return self.root / "tokenizers" / modality

    @property
    def pretrain(self) -> Path:
        return self.root / "pretrain"

    @property
    def sft(self) -> Path:
        return self.root / "sft"

    @property
    def model(self) -> Path:
        return self.sft / "model"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def eval_base(self) -> Path:
        return self.root / "eval-base"

    @property
    def showcase(self) -> Path:
        return self.root / "showcase"

    def marker(self, step: str) -> Path:
        return self.root / "steps" / f"{step}.json"


def _anyseq(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "anyseq.cli", *map(str, args)]


def _steps(paths: DemoPaths, preset: str) -> list[tuple[str, Callable[[], list[str] | None]]]:
    tokenizers = [
        arg for m in ("image", "speech", "music") for arg in ("--tokenizer", str(paths.tokenizer(m)))
    ]
    return [
        ("data", lambda: _anyseq("data", "build", "--preset", preset, "--out", paths.data)),
        *(
            (
                m,
                lambda m=m: _anyseq(
                    "tokenizer", "train", m, "--data", paths.data, "--out", paths.tokenizer(m)
                ),
            )
            for m in ("image", "speech", "music")
        ),
        # the judges need the data only; `anyseq eval` finds them in its default cache. They once ran
        # beside the music tokenizer on the other core, but the music trainer needs both: on one
        # thread it kept pitch in 89.8% of the frames, on two in 92.3% (the target is 90%).
        ("judges", lambda: _anyseq("eval-judges", "--data", paths.data, "--cache", paths.eval / "judges")),
        (
            "pretrain",
            lambda: _anyseq(
                "train",
                "pretrain",
                "--data",
                paths.data,
                "--out",
                paths.pretrain,
                "--preset",
                preset,
                *tokenizers,
                *(["--resume"] if paths.pretrain.exists() else []),
            ),
        ),
        (
            "sft",
            lambda: _anyseq(
                "train",
                "sft",
                "--data",
                paths.data,
                "--out",
                paths.sft,
                "--preset",
                preset,
                "--init",
                paths.pretrain,
                *(["--resume"] if paths.sft.exists() else []),
            ),
        ),
        (
            "eval",
            lambda: _anyseq(
                "eval",
                "--model",
                paths.model,
                "--data",
                paths.data,
                "--out",
                paths.eval,
                "--limit",
                EVAL_LIMIT,
                "--tasks",
                "dialogue",
            ),
        ),
        # the rest of the table on stage 1's model: AnyGPT's table (its section 5) is of its base model
        (
            "eval-base",
            lambda: _anyseq(
                "eval",
                "--model",
                paths.pretrain / "model",
                "--data",
                paths.data,
                "--out",
                paths.eval_base,
                "--cache",
                paths.eval / "judges",
                "--limit",
                EVAL_LIMIT,
                *(arg for task in BASE_TASKS for arg in ("--tasks", task)),
            ),
        ),
        ("showcase", lambda: _run_showcase(paths)),
    ]


def _run_showcase(paths: DemoPaths) -> None:
    from anyseq.showcase import build_showcase

    build_showcase(
        paths.model, paths.data, paths.eval / "report.json", paths.showcase, paths.eval_base / "report.json"
    )


def run_demo(out: Path, preset: str = "tiny") -> dict:
    """Run (or resume) every step; returns the timings of this run and earlier ones."""
    paths = DemoPaths(out)
    timings = {}
    began = time.perf_counter()
    for name, make in _steps(paths, preset):
        marker = paths.marker(name)
        if marker.is_file():
            timings[name] = json.loads(marker.read_text())["seconds"]
            console.print(f"[green]✓[/green] {name} (cached, {timings[name]:.0f} s)")
            continue
        console.rule(f"[bold]{name}")
        start = time.perf_counter()
        command = make()
        if command is not None:
            console.print("$ " + " ".join(command[2:]).replace("anyseq.cli", "anyseq", 1))
            code = subprocess.run(command).returncode
            if code:
                raise SystemExit(f"demo step {name!r} failed (exit {code}); run `anyseq demo` to resume")
        timings[name] = round(time.perf_counter() - start, 1)
        atomic_write_json(marker, {"step": name, "seconds": timings[name]})
    summary = {
        "out": str(out),
        "this_run_seconds": round(time.perf_counter() - began, 1),
        "step_seconds": timings,
    }
    atomic_write_json(out / "demo.json", summary)
    page = paths.showcase / "index.html"
    console.rule("[bold]done")
    console.print(f"showcase: {page}\nmodel: {paths.model}\nchat: anyseq chat --model {paths.model}")
    return summary
