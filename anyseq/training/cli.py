"""Commands of both training stages (`anyseq train ...`) and of the tokenized view (`anyseq data tokenize`).

    anyseq train init     --data DIR --out MODEL --tokenizer DIR... [--backbone tiny | --from-hf DIR]
    anyseq train pretrain --data DIR --out RUN [--init MODEL | --backbone tiny | --from-hf DIR] [--resume]
    anyseq train sft      --data DIR --out RUN --init PRETRAIN_RUN [--resume]

Several processes: `accelerate launch [--config_file configs/accelerate/...] -m anyseq.cli train ...`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anyseq.training.config import Precision, Stage

app = typer.Typer(
    help="Train AnyGPT's two stages: pretrain (pairs), then sft (dialogues).", no_args_is_help=True
)

DataOption = Annotated[Path, typer.Option("--data", help="AnyWorld directory (or a tokenized view of one)")]
OutOption = Annotated[Path, typer.Option("--out", help="run directory: checkpoints, logs, final model")]
TokenizerOption = Annotated[
    list[Path] | None, typer.Option("--tokenizer", help="a modality tokenizer directory; repeat per modality")
]
BackboneOption = Annotated[str | None, typer.Option("--backbone", help="start from scratch with this preset")]
FromHfOption = Annotated[
    Path | None, typer.Option("--from-hf", help="start from a local HF causal LM directory")
]


@app.command("init")
def init_command(
    data: DataOption,
    out: Annotated[Path, typer.Option("--out", help="the new model directory")],
    tokenizer: TokenizerOption = None,
    backbone: BackboneOption = "tiny",
    from_hf: FromHfOption = None,
    text_vocab_size: Annotated[int, typer.Option(help="BPE size when starting from scratch")] = 2048,
    seed: int = 0,
    code_embeddings: Annotated[
        bool, typer.Option(help="start the modality rows from the tokenizers' code vectors")
    ] = True,
    hidden_size: Annotated[int | None, typer.Option(help="change the preset's width")] = None,
    num_layers: Annotated[int | None, typer.Option(help="change the preset's depth")] = None,
    num_heads: Annotated[int | None, typer.Option(help="change the preset's attention heads")] = None,
    intermediate_size: Annotated[int | None, typer.Option(help="change the preset's MLP width")] = None,
) -> None:
    """Make an untrained model directory: vocabulary (text + specials + modality ranges) and backbone.

    The backbone is a preset, or a preset with its shape changed (`--hidden-size 96
    --intermediate-size 256`: the README's "tiny backbone size" row)."""
    from anyseq.training.init import init_model, world_texts

    shape = {"hidden_size": hidden_size, "num_layers": num_layers, "num_heads": num_heads,
             "intermediate_size": intermediate_size}  # fmt: skip
    texts = None if from_hf is not None else world_texts(data)
    init_model(
        out,
        tokenizer or [],
        texts=texts,
        backbone=backbone,
        backbone_overrides={name: value for name, value in shape.items() if value is not None},
        from_hf=from_hf,
        text_vocab_size=text_vocab_size,
        seed=seed,
        code_embeddings=code_embeddings,
    )
    typer.echo(f"model: {out}")


def resolve_init(directory: Path) -> Path:
    """A model directory, or a run directory whose final `model/` is meant."""
    from anyseq.training.trainer import MODEL_DIR

    return directory / MODEL_DIR if (directory / MODEL_DIR / "anyseq.json").is_file() else directory


def _run_stage(
    stage: Stage,
    data: Path,
    out: Path,
    resume: bool,
    preset: str,
    config_file: Path | None,
    init: Path | None,
    backbone: str | None,
    from_hf: Path | None,
    tokenizers: list[Path],
    max_minutes: float | None,
    overrides: dict,
) -> None:
    from accelerate import PartialState

    from anyseq.training.config import TrainConfig
    from anyseq.training.init import init_model, world_texts
    from anyseq.training.tokenize import is_view, tokenize_data
    from anyseq.training.trainer import train

    config = TrainConfig.from_file(config_file) if config_file else TrainConfig.from_name(preset, stage)
    config = config.with_overrides(**overrides, max_minutes=max_minutes)
    if config.stage != stage:
        raise typer.BadParameter(f"{config_file} is a {config.stage} configuration, not {stage}")
    if sum(x is not None for x in (init, backbone, from_hf)) > 1:
        raise typer.BadParameter("give one of --init, --backbone and --from-hf")
    if init is None and backbone is None and from_hf is None:
        if stage == "sft":
            raise typer.BadParameter("sft continues a pretrained model: give --init PRETRAIN_RUN_OR_MODEL")
        backbone = preset
    state = PartialState(cpu=not _has_gpu())
    # The first process prepares the model and the tokenized view; the others then find them made.
    with state.main_process_first():
        if init is None:
            init = out / "init"
            if not (init / "anyseq.json").is_file():
                if not tokenizers:
                    raise typer.BadParameter(
                        "a new model needs its modality tokenizers: --tokenizer DIR (repeat)"
                    )
                texts = None if from_hf is not None else world_texts(data)
                init_model(
                    init, tokenizers, texts=texts, backbone=backbone, from_hf=from_hf, seed=config.seed
                )
        init = resolve_init(init)
        if not is_view(data):
            tokenize_data(data, init)
    summary = train(config, init, data, out, resume=resume)
    if state.is_main_process:
        for task, losses in summary.val_loss.items():
            typer.echo(f"{task}: validation loss {losses['start']:.3f} -> {losses['end']:.3f}")
        typer.echo(
            f"{summary.tokens} tokens at {summary.tokens_per_second:.0f} tokens/s; model: {summary.model}"
        )


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _stage_command(stage: Stage):
    def command(
        data: DataOption,
        out: OutOption,
        resume: Annotated[
            bool, typer.Option("--resume", help="continue from the newest complete checkpoint")
        ] = False,
        preset: Annotated[str, typer.Option(help="training preset: tiny, small, anygpt-7b")] = "tiny",
        config: Annotated[
            Path | None, typer.Option(help="a JSON/YAML TrainConfig (may name a preset)")
        ] = None,
        init: Annotated[
            Path | None, typer.Option("--init", help="model or run directory to start from")
        ] = None,
        backbone: BackboneOption = None,
        from_hf: FromHfOption = None,
        tokenizer: TokenizerOption = None,
        max_minutes: Annotated[
            float | None,
            typer.Option(
                help="budget of training-step time: the learning rate decays over it and the run "
                "stops, saved, when it is spent (default: the preset's)"
            ),
        ] = None,
        max_steps: Annotated[int | None, typer.Option(help="override the preset's optimizer steps")] = None,
        batch_size: Annotated[int | None, typer.Option(help="sequences per micro-batch and process")] = None,
        grad_accum: Annotated[int | None, typer.Option(help="micro-batches per optimizer step")] = None,
        learning_rate: Annotated[float | None, typer.Option(help="peak learning rate")] = None,
        lora_rank: Annotated[int | None, typer.Option(help="train LoRA adapters of this rank")] = None,
        gradient_checkpointing: Annotated[
            bool | None, typer.Option("--gradient-checkpointing/--no-gradient-checkpointing")
        ] = None,
        mixed_precision: Annotated[Precision | None, typer.Option(help="auto, no or bf16")] = None,
        compile: Annotated[
            bool | None, typer.Option("--compile/--no-compile", help="torch.compile the training step")
        ] = None,
    ) -> None:
        overrides = {
            "max_steps": max_steps,
            "batch_size": batch_size,
            "grad_accum": grad_accum,
            "learning_rate": learning_rate,
            "lora": {"rank": lora_rank, "alpha": 2 * lora_rank} if lora_rank else None,
            "gradient_checkpointing": gradient_checkpointing,
            "mixed_precision": mixed_precision,
            "compile": compile,
        }
        _run_stage(
            stage,
            data,
            out,
            resume,
            preset,
            config,
            init,
            backbone,
            from_hf,
            tokenizer or [],
            max_minutes,
            overrides,
        )

    command.__doc__ = {
        "pretrain": "Stage 1: text-centric pairs, packed blocks, tasks mixed by sampling ratio.",
        "sft": "Stage 2: any-to-any dialogues, one per sequence, loss on the assistant's turns.",
    }[stage]
    return command


app.command("pretrain")(_stage_command("pretrain"))
app.command("sft")(_stage_command("sft"))


def tokenize_command(
    data: DataOption,
    model: Annotated[Path, typer.Option("--model", help="model (or run) directory whose tokenizers to use")],
    split: Annotated[list[str] | None, typer.Option("--split", help="splits to tokenize (repeat)")] = None,
    overwrite: Annotated[bool, typer.Option(help="tokenize again even if a view exists")] = False,
) -> None:
    """Encode every conversation's media once and store ids + loss masks beside the data."""
    from anyseq.training.tokenize import DEFAULT_SPLITS, tokenize_data

    view = tokenize_data(data, resolve_init(model), splits=split or DEFAULT_SPLITS, overwrite=overwrite)
    typer.echo(f"tokenized view: {view}")


if __name__ == "__main__":
    app()
