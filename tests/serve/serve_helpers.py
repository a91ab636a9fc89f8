"""Helpers for the serving tests: running servers, a slowed-down model, media payloads."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile
from fastapi import FastAPI
from PIL import Image

from anyseq.api import AnySeq
from anyseq.serve.app import create_app
from anyseq.serve.server import serve_in_thread
from anyseq.serve.settings import ServeSettings

MODEL = "tiny"  # the checkpoint directory's name is the served model id


@contextmanager
def running(model: AnySeq | Path, **settings) -> Iterator[tuple[str, FastAPI]]:
    """A server on a free loopback port with the "test" preset (and overrides): (base URL, app)."""
    app = create_app(model, ServeSettings.from_name("test", **{"model_name": MODEL, **settings}))
    with serve_in_thread(app) as url:
        yield url, app


def slow_model(checkpoint: Path, seconds_per_step: float) -> AnySeq:
    """The checkpoint with a pause in every forward pass, to observe queues and cancellation."""
    model = AnySeq.from_pretrained(checkpoint)
    backbone = model.checkpoint.model
    forward = backbone.forward

    def paused(*args, **kwargs):
        time.sleep(seconds_per_step)
        return forward(*args, **kwargs)

    backbone.forward = paused
    return model


def png(colour=(200, 30, 30), size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def tone(seconds: float, rate: int = 16000, audio_format: str = "WAV") -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format=audio_format)
    return buffer.getvalue()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
