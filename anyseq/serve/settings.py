"""Settings of the server: limits, batching, voices, remote media, the web UI.

`ServeSettings.from_name("test")` is the preset the tests and the benchmark use: small
limits, no UI unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from anyseq.serve.limits import Limits

AUDIO_EXTENSIONS = (".wav", ".flac")


@dataclass(frozen=True)
class ServeSettings:
    model_name: str | None = None  # the id in /v1/models; default: the checkpoint directory's name
    limits: Limits = field(default_factory=Limits)
    max_batch_size: int = 16  # requests generated together; 1 turns batching off
    batch_wait_ms: float = 5.0  # how long the first request of a batch waits for company
    max_concurrency: int = 64  # requests in flight (queued or generating); more are answered 429
    default_max_tokens: int = 512  # when a request sets none (cut to what the context leaves)
    voices_dir: Path | None = None  # NAME.wav / NAME.flac voice prompts, chosen by `audio.voice`
    allow_remote_media: bool = False  # fetch http(s) image URLs (public addresses, no redirects)
    remote_timeout_s: float = 10.0
    audio_ttl_s: int = 3600  # how long a reply's audio id can be sent back in a later turn
    ui: bool = True  # mount the Gradio web chat at /ui

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_concurrency", "default_max_tokens", "audio_ttl_s"):
            if getattr(self, name) < 1:
                raise ValueError(f"ServeSettings.{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_wait_ms < 0 or self.remote_timeout_s <= 0:
            raise ValueError(f"invalid wait or timeout in {self}")
        if self.voices_dir is not None and not Path(self.voices_dir).is_dir():
            raise ValueError(f"voices_dir {self.voices_dir}: no such directory")

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> ServeSettings:
        if name not in PRESETS:
            raise ValueError(f"unknown serve preset {name!r}; known: {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    def voices(self) -> dict[str, Path]:
        """Voice name -> voice prompt file, from `voices_dir`."""
        if self.voices_dir is None:
            return {}
        return {
            path.stem: path
            for path in sorted(Path(self.voices_dir).iterdir())
            if path.suffix.lower() in AUDIO_EXTENSIONS
        }


PRESETS: dict[str, ServeSettings] = {
    "default": ServeSettings(),
    "test": ServeSettings(
        limits=Limits(
            max_request_bytes=2**20,
            max_media_per_request=4,
            max_image_pixels=512 * 512,
            max_audio_seconds=4.0,
        ),
        max_concurrency=16,
        default_max_tokens=32,
        ui=False,
    ),
}
