"""Reading and writing media: images as PIL RGB, audio as mono float32 at a given rate.

Every loader takes a path, bytes, or an in-memory object, and turns bad input (missing,
empty, corrupt, truncated, oversized, too long) into a `MediaError` that names the input
and the limit, before any model sees it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile
from PIL import Image, UnidentifiedImageError

MAX_IMAGE_PIXELS = 4096 * 4096  # decompression-bomb guard; AnyGPT's images are 224 px


class MediaError(ValueError):
    """A media input that cannot be used; the message names the input and the limit."""


@dataclass
class Audio:
    """Mono audio: samples (N,) float32 in [-1, 1] at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        soundfile.write(path, self.samples, self.sample_rate)
        return path

    def to_bytes(self, format: str = "WAV") -> bytes:
        buffer = io.BytesIO()
        soundfile.write(buffer, self.samples, self.sample_rate, format=format)
        return buffer.getvalue()


def _describe(source: Any) -> str:
    if isinstance(source, str | Path):
        return str(source)
    if isinstance(source, bytes | bytearray):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def _read_bytes(source: str | Path | bytes, name: str) -> bytes:
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise MediaError(f"{name}: no such file")
        data = path.read_bytes()
    if not data:
        raise MediaError(f"{name}: file is empty")
    return data


def load_image(source: Any, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """A path, bytes, PIL image or HxWxC uint8 array -> RGB PIL image.

    RGBA is composited on white, palette and grayscale are converted.
    """
    name = _describe(source)
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or not (
            source.ndim == 2 or (source.ndim == 3 and source.shape[2] in (1, 3, 4))
        ):
            raise MediaError(
                f"{name}: expected an HxW or HxWxC uint8 array with C in (1, 3, 4), "
                f"got {source.dtype} {source.shape}"
            )
        image = Image.fromarray(source[..., 0] if source.ndim == 3 and source.shape[2] == 1 else source)
    elif isinstance(source, Image.Image):
        image = source
    elif not isinstance(source, str | Path | bytes | bytearray):
        raise MediaError(f"{name}: expected a path, bytes, PIL image or uint8 array")
    else:
        data = _read_bytes(source, name)
        try:
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise MediaError(
                    f"{name}: {image.width}x{image.height} = {image.width * image.height} pixels "
                    f"exceeds the limit of {max_pixels}"
                )
            image.load()
        except MediaError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise MediaError(f"{name}: not a readable image ({error})") from error
    if image.width * image.height > max_pixels:
        raise MediaError(f"{name}: {image.width}x{image.height} pixels exceeds the limit of {max_pixels}")
    if image.width == 0 or image.height == 0:
        raise MediaError(f"{name}: image has no pixels ({image.width}x{image.height})")
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def fit_image(image: Image.Image, size: int, fit: Literal["crop", "pad", "stretch"] = "crop") -> Image.Image:
    """An RGB image as `size` x `size` px; an image already that size is returned unchanged.

    "crop" scales the short side to `size` and keeps the centre, "pad" scales the long
    side to `size` and centres the image on white, "stretch" ignores the aspect ratio.
    """
    if image.size == (size, size):
        return image
    if fit == "stretch":
        return image.resize((size, size), Image.Resampling.LANCZOS)
    scale = size / (min(image.size) if fit == "crop" else max(image.size))
    width, height = (max(1, round(side * scale)) for side in image.size)
    resized = image.resize((width, height), Image.Resampling.LANCZOS)
    if fit == "crop":
        left, top = (width - size) // 2, (height - size) // 2
        return resized.crop((left, top, left + size, top + size))
    if fit == "pad":
        canvas = Image.new("RGB", (size, size), (255, 255, 255))
        canvas.paste(resized, ((size - width) // 2, (size - height) // 2))
        return canvas
    raise ValueError(f"fit must be 'crop', 'pad' or 'stretch', got {fit!r}")


def load_audio(
    source: Any,
    sample_rate: int,
    max_seconds: float | None = None,
    min_seconds: float = 0.0,
    truncate: bool = False,
) -> Audio:
    """A path, bytes, `Audio` or 1-D/2-D float array (at `sample_rate`) -> mono `Audio` at `sample_rate`.

    Any rate is resampled (soxr), stereo is averaged. Over `max_seconds`, the input is an
    error unless `truncate` is set, in which case it is cut (the caller reports the cut).
    """
    name = _describe(source)
    if isinstance(source, Audio):
        samples, rate = source.samples, source.sample_rate
    elif isinstance(source, np.ndarray):
        samples, rate = source, sample_rate
    else:
        data = _read_bytes(source, name)
        try:
            samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
        except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
            raise MediaError(f"{name}: not a readable WAV/FLAC file ({error})") from error
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)  # (N, C) -> (N,)
    if samples.ndim != 1:
        raise MediaError(f"{name}: expected mono or (N, channels) audio, got shape {samples.shape}")
    if samples.size == 0:
        raise MediaError(f"{name}: audio has no samples")
    if not np.isfinite(samples).all():
        raise MediaError(f"{name}: audio contains NaN or infinite samples")
    if rate != sample_rate:
        import soxr

        samples = soxr.resample(samples, rate, sample_rate).astype(np.float32)
    duration = len(samples) / sample_rate
    if duration < min_seconds:
        raise MediaError(f"{name}: {duration:.3f} s is shorter than the minimum of {min_seconds} s")
    if max_seconds is not None and duration > max_seconds:
        if not truncate:
            raise MediaError(f"{name}: {duration:.2f} s is longer than the maximum of {max_seconds} s")
        samples = samples[: int(max_seconds * sample_rate)]
    return Audio(samples=samples, sample_rate=sample_rate)
