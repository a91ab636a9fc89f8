"""How well an image tokenizer keeps an image: PSNR, SSIM, codebook use, attribute survival.

AnyGPT reports no tokenizer metrics of its own (it takes SEED as given); AnySeq trains
its tokenizer, so it measures what the language model will inherit, on AnyWorld's test
split (or any split):
- PSNR and SSIM (scikit-image) of each reconstruction against the tokenizer's input
  (the image made square at the tokenizer's size), overall and per source;
- codebook use: the share of codes that occur, and the perplexity of their frequencies
  (how many codes the distribution effectively uses);
- for shape scenes, attribute survival: among the originals the pixel judge reads right
  (`anyseq.judges.image.judge_shape_scene`; that share is the judge's ceiling), the share
  whose reconstruction still shows every labelled colour and shape.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tqdm.auto import tqdm

from anyseq.io import atomic_write_json

MAX_PSNR = 100.0  # dB reported for an exact reconstruction (PSNR is infinite there)


def psnr(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (H, W, 3), capped at `MAX_PSNR`."""
    if np.array_equal(original, reconstruction):
        return MAX_PSNR
    return min(MAX_PSNR, float(peak_signal_noise_ratio(original, reconstruction, data_range=255)))


def ssim(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """SSIM of two uint8 images (H, W, 3), averaged over the colour channels."""
    return float(structural_similarity(original, reconstruction, channel_axis=-1, data_range=255))


def codebook_usage(codes: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Share of the codebook that occurs in `codes` (any shape), and the perplexity of the code frequencies."""
    counts = torch.bincount(codes.flatten().long(), minlength=codebook_size).double()
    probabilities = counts[counts > 0] / counts.sum()
    entropy = float(-(probabilities * probabilities.log()).sum())
    return {"codebook_used": float((counts > 0).double().mean()), "perplexity": float(np.exp(entropy))}


@dataclass
class Reconstructions:
    originals: list[Image.Image]  # the tokenizer's inputs (made square at its size)
    reconstructions: list[Image.Image]
    codes: torch.Tensor  # (N, T)


def reconstruct(
    tokenizer: Any, images: Sequence[Any], batch_size: int = 64, progress: bool = False
) -> Reconstructions:
    """Encode and decode `images` in batches with a tokenizer that has `prepare`, `encode_batch` and `decode_batch`."""
    originals, outputs, codes = [], [], []
    for start in tqdm(
        range(0, len(images), batch_size), desc="reconstruct", unit="batch", disable=not progress
    ):
        batch = [tokenizer.prepare(image) for image in images[start : start + batch_size]]
        batch_codes = tokenizer.encode_batch(batch)  # (B, 1, T)
        originals += batch
        outputs += tokenizer.decode_batch(batch_codes)
        codes.append(batch_codes[:, 0])
    return Reconstructions(originals, outputs, torch.cat(codes))


@dataclass
class QualityMetrics:
    n: int
    psnr: float  # mean over images, dB
    ssim: float
    by_source: dict[str, dict[str, float]] = field(default_factory=dict)  # source -> n, psnr, ssim


def quality(result: Reconstructions, sources: Sequence[str] | None = None) -> QualityMetrics:
    """Mean PSNR and SSIM, overall and per source when `sources` names each image's."""
    pairs = [
        (np.asarray(a, dtype=np.uint8), np.asarray(b, dtype=np.uint8))
        for a, b in zip(result.originals, result.reconstructions, strict=True)
    ]
    scores = np.asarray([(psnr(a, b), ssim(a, b)) for a, b in pairs]).reshape(-1, 2)
    by_source = {}
    for source in sorted(set(sources or ())):
        rows = scores[[s == source for s in sources]]
        by_source[source] = {
            "n": len(rows),
            "psnr": float(rows[:, 0].mean()),
            "ssim": float(rows[:, 1].mean()),
        }
    return QualityMetrics(len(pairs), float(scores[:, 0].mean()), float(scores[:, 1].mean()), by_source)


def attribute_survival(
    originals: Sequence[Image.Image], reconstructions: Sequence[Image.Image], labels: Sequence[dict[str, Any]]
) -> dict[str, float]:
    """The judge's ceiling (originals read right), and the share of those whose reconstructions keep colour and shape."""
    from anyseq.judges.image import judge_shape_scene

    def kept(image: Image.Image, scene: dict[str, Any]) -> bool:
        verdict = judge_shape_scene(image, scene)
        return verdict["colour_ok"] and verdict["shape_ok"]

    readable = [
        i for i, (image, scene) in enumerate(zip(originals, labels, strict=True)) if kept(image, scene)
    ]
    survived = [i for i in readable if kept(reconstructions[i], labels[i])]
    return {
        "scenes": len(labels),
        "judge_ceiling": len(readable) / len(labels) if labels else float("nan"),
        "attribute_survival": len(survived) / len(readable) if readable else float("nan"),
    }


def evaluate_image_tokenizer(
    model_dir: str | Path,
    data_dir: str | Path,
    out: str | Path,
    split: str = "test",
    batch_size: int = 64,
    limit: int | None = None,
) -> dict[str, Any]:
    """Evaluate the image tokenizer saved in `model_dir` on an AnyWorld split; writes and returns the report."""
    from anyseq.modalities.base import load_tokenizer
    from anyseq.world.dataset import iter_items

    started = time.perf_counter()
    tokenizer = load_tokenizer(model_dir)
    items = list(iter_items(data_dir, "image", split, limit=limit))
    if not items:
        raise ValueError(f"{data_dir}: split {split!r} has no images")
    result = reconstruct(tokenizer, [item.media for item in items], batch_size, progress=True)
    metrics = quality(result, [item.source for item in items])
    shapes = [i for i, item in enumerate(items) if item.source == "shapes"]
    report = {
        "model": str(model_dir),
        "data": str(data_dir),
        "split": split,
        "tokens_per_image": tokenizer.spec.tokens_per_item,
        "codebook_size": tokenizer.codebook_size,
        **asdict(metrics),
        **codebook_usage(result.codes, tokenizer.codebook_size),
        "shapes": attribute_survival(
            [result.originals[i] for i in shapes],
            [result.reconstructions[i] for i in shapes],
            [items[i].labels for i in shapes],
        )
        if shapes
        else None,
        "seconds": time.perf_counter() - started,
    }
    atomic_write_json(out, report)
    return report
