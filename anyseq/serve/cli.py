"""`anyseq serve --model DIR`: the OpenAI-compatible API and the web chat on one port."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    model: Annotated[Path, typer.Option(help="an AnySeq checkpoint directory")],
    host: Annotated[str, typer.Option(help="the address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="the port to listen on")] = 8000,
    max_batch_size: Annotated[
        int, typer.Option(help="requests generated together; 1 turns batching off")
    ] = 16,
    max_concurrency: Annotated[int, typer.Option(help="requests in flight before answering 429")] = 64,
    voices: Annotated[Path | None, typer.Option(help="a folder of NAME.wav voice prompts")] = None,
    allow_remote_media: Annotated[
        bool, typer.Option(help="fetch http(s) image URLs (public addresses only, no redirects)")
    ] = False,
    ui: Annotated[bool, typer.Option(help="serve the web chat at /ui")] = True,
) -> None:
    """Serve a checkpoint: POST /v1/chat/completions (OpenAI-compatible), /docs, and the web chat at /ui."""
    from anyseq.serve.app import create_app
    from anyseq.serve.server import run
    from anyseq.serve.settings import ServeSettings

    if not (model / "anyseq.json").is_file():
        raise typer.BadParameter(f"{model}: not an AnySeq checkpoint (no anyseq.json)", param_hint="--model")
    settings = ServeSettings(
        max_batch_size=max_batch_size,
        max_concurrency=max_concurrency,
        voices_dir=voices,
        allow_remote_media=allow_remote_media,
        ui=ui,
    )
    typer.echo(
        f"AnySeq: http://{host}:{port}/v1 (OpenAI API), /docs, " + ("/ui (web chat)" if ui else "no UI")
    )
    run(create_app(model, settings), host, port)
