"""`anyseq data ...`: build AnyWorld, import a user's JSONL data, show a build's counts."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import typer

app = typer.Typer(
    help="AnyWorld: the built-in multimodal world and the user's own data.", no_args_is_help=True
)


def _summary(manifest: dict) -> str:
    lines = []
    for modality, splits in manifest["items"].items():
        lines.append(f"{modality}: " + ", ".join(f"{s} {sum(c.values())}" for s, c in splits.items()))
    lines.append("pretrain: " + ", ".join(f"{s} {sum(c.values())}" for s, c in manifest["pretrain"].items()))
    lines.append("instruct: " + ", ".join(f"{s} {c['dialogues']}" for s, c in manifest["instruct"].items()))
    pairs = manifest["instruct_pairs"]
    missing = f", missing {pairs['missing']}" if pairs["missing"] else ""
    lines.append(f"instruct input->output pairs covered: {len(pairs['covered'])}{missing}")
    skipped = manifest["user_data"]["skipped"]
    if skipped:
        lines.append(f"user data: {len(skipped)} lines skipped:")
        lines += [f"  {s['file']}:{s['line']} {s['path'] or ''} {s['reason']}" for s in skipped]
    return "\n".join(lines)


@app.command()
def build(
    preset: str = typer.Option("tiny", help="micro | tiny | small"),
    out: Path = typer.Option(Path("data/world"), help="output directory (resumes an interrupted build)"),
    workers: int = typer.Option(2, min=1, help="parallel worker processes"),
    seed: int | None = typer.Option(None, help="override the preset's seed"),
    user_data: list[Path] = typer.Option([], help="JSONL files of your own data to add (repeatable)"),
    config: Path | None = typer.Option(None, help="a WorldConfig JSON file instead of a preset"),
) -> None:
    """Build AnyWorld's items, stage-1 pairs and dialogues as Parquet shards with a manifest."""
    from anyseq.world.build import build_world
    from anyseq.world.config import WorldConfig

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    world = WorldConfig.from_file(config) if config else WorldConfig.from_preset(preset)
    if seed is not None:
        world.seed = seed
    world.user_data.files += [str(path) for path in user_data]
    began = time.perf_counter()
    manifest = build_world(world, out, workers=workers)
    typer.echo(_summary(manifest))
    typer.echo(f"built {out} in {time.perf_counter() - began:.1f} s")


@app.command("import-jsonl")
def import_jsonl(
    files: list[Path] = typer.Argument(..., help="JSONL files (format: anyseq/world/userdata.py)"),
    out: Path = typer.Option(..., help="output directory"),
    workers: int = typer.Option(1, min=1),
    max_audio_seconds: float = typer.Option(30.0, help="longer audio files are skipped"),
) -> None:
    """Read your own JSONL data (no generated world) into shards the same loaders read."""
    from anyseq.world.build import build_world
    from anyseq.world.config import WorldConfig

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    world = WorldConfig.from_preset("user")
    world.user_data.files = [str(path) for path in files]
    world.user_data.max_audio_seconds = max_audio_seconds
    typer.echo(_summary(build_world(world, out, workers=workers)))


@app.command()
def show(data: Path = typer.Argument(..., help="a built AnyWorld directory")) -> None:
    """Print a build's manifest counts (the full manifest is DATA/manifest.json)."""
    from anyseq.world.dataset import read_manifest

    manifest = read_manifest(data)
    typer.echo(_summary(manifest))
    typer.echo(json.dumps(manifest["heldout"], indent=1)[:2000])


if __name__ == "__main__":
    app()
