"""The one entry point, `anyseq` (DESIGN.md section 7).

Command groups that live beside their code (`world/cli.py`, `training/cli.py`) are
mounted here; every other command imports its module only when it runs, so `anyseq
--help` stays fast.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from anyseq.evaluation.cli import eval_command, judges_command
from anyseq.serve.cli import serve
from anyseq.training.cli import app as train_app
from anyseq.training.cli import tokenize_command
from anyseq.world.cli import app as data_app

app = typer.Typer(help="AnySeq: any-to-any multimodal language modelling (AnyGPT).", no_args_is_help=True)
tokenizer_app = typer.Typer(help="Train and evaluate the modality tokenizers.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks; each writes a JSON file.", no_args_is_help=True)
app.add_typer(data_app, name="data")
data_app.command("tokenize")(tokenize_command)
app.add_typer(train_app, name="train")
app.add_typer(tokenizer_app, name="tokenizer")
app.add_typer(bench_app, name="bench")
app.command("eval")(eval_command)
app.command("eval-judges")(judges_command)
app.command("serve")(serve)

# modality -> "module:function" of its tokenizer trainer and evaluator.
TOKENIZER_TRAINERS = {
    "image": "anyseq.tokenizers.image_train:train_image_tokenizer",
    "speech": "anyseq.tokenizers.speech_train:train_speech_tokenizer",
    "music": "anyseq.tokenizers.music_train:train_music_tokenizer",
}
TOKENIZER_EVALUATORS = {
    "image": "anyseq.tokenizers.image_eval:evaluate_image_tokenizer",
    "speech": "anyseq.tokenizers.speech_eval:evaluate_speech_tokenizer",
    "music": "anyseq.tokenizers.music_eval:evaluate_music_tokenizer",
}
# benchmark name -> "module:run_bench"; each takes the output path and writes JSON.
BENCHMARKS = {
    "generate": "anyseq.bench:run_bench",
    "train": "anyseq.training.bench:run_bench",
    "tokenizers": "anyseq.tokenizers.bench:run_bench",
    "data": "anyseq.world.bench:run_bench",
    "serve": "anyseq.serve.bench:run_bench",
}


def _function(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _choice(table: dict[str, str], key: str, what: str):
    if key not in table:
        raise typer.BadParameter(f"unknown {what} {key!r}; choose one of {', '.join(table)}")
    return _function(table[key])


def _echo_json(result: dict) -> None:
    typer.echo(json.dumps(result, indent=2, default=str))


@app.command()
def version() -> None:
    """Print the AnySeq version."""
    from anyseq import __version__

    typer.echo(__version__)


@tokenizer_app.command("train")
def tokenizer_train(
    modality: Annotated[str, typer.Argument(help="image | speech | music")],
    data: Annotated[Path, typer.Option(help="an AnyWorld directory")],
    out: Annotated[Path, typer.Option(help="the tokenizer directory to write")],
    preset: Annotated[str, typer.Option(help="tokenizer size preset")] = "tiny",
    resume: Annotated[bool, typer.Option(help="continue from the newest checkpoint in --out")] = True,
    max_minutes: Annotated[float | None, typer.Option(help="stop training after this many minutes")] = None,
) -> None:
    """Train a modality tokenizer on AnyWorld (progress bar, TensorBoard, resumable)."""
    train = _choice(TOKENIZER_TRAINERS, modality, "modality")
    _echo_json(train(data, out, preset=preset, resume=resume, max_minutes=max_minutes))


@tokenizer_app.command("eval")
def tokenizer_eval(
    modality: Annotated[str, typer.Argument(help="image | speech | music")],
    model: Annotated[Path, typer.Option(help="a trained tokenizer directory")],
    data: Annotated[Path, typer.Option(help="an AnyWorld directory")],
    out: Annotated[Path, typer.Option(help="the JSON report to write")],
    split: Annotated[str, typer.Option(help="the split to measure")] = "test",
) -> None:
    """Measure a tokenizer's reconstructions on a split; writes JSON."""
    evaluate = _choice(TOKENIZER_EVALUATORS, modality, "modality")
    _echo_json(evaluate(model, data, out, split=split))


def _bench_command(name: str):
    def command(out: Annotated[Path, typer.Option(help="the JSON file to write")]) -> None:
        _echo_json(_function(BENCHMARKS[name])(out))

    command.__doc__ = f"The {name} benchmark; writes JSON to --out."
    return command


for _name in BENCHMARKS:
    bench_app.command(_name)(_bench_command(_name))


@app.command()
def chat(
    model: Annotated[Path, typer.Option(help="an AnySeq checkpoint directory")],
    out: Annotated[Path, typer.Option(help="where media replies are written")] = Path("runs/chat"),
    max_new_tokens: Annotated[int, typer.Option(help="the longest reply, in tokens")] = 512,
    seed: Annotated[int | None, typer.Option(help="make the replies reproducible")] = None,
) -> None:
    """Terminal any-to-any chat (reads a pipe too). /help lists the commands."""
    from rich.console import Console

    from anyseq.chat import run_chat

    interactive = sys.stdin.isatty()
    console = Console(soft_wrap=not interactive)
    lines = iter(lambda: console.input("[bold]you[/bold] > "), None) if interactive else sys.stdin
    try:
        run_chat(model, out, lines, console, interactive, max_new_tokens, seed)
    except (EOFError, KeyboardInterrupt):
        console.print()


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where every step's output is kept (and resumed from)")] = Path(
        "runs/demo"
    ),
    preset: Annotated[str, typer.Option(help="world, tokenizer and model size")] = "tiny",
) -> None:
    """The main job: build AnyWorld, train the tokenizers and both stages, evaluate, showcase."""
    from anyseq.demo import run_demo

    run_demo(out, preset)


if __name__ == "__main__":
    app()
