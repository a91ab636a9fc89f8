"""The one entry point, `anyseq` (DESIGN.md section 7). Each command group lives beside
the code it drives and is imported here; heavy imports happen inside the commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="AnySeq: any-to-any multimodal language modelling (AnyGPT).", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks; each writes a JSON file.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@app.command()
def version() -> None:
    """Print the AnySeq version."""
    from anyseq import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
