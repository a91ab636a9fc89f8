"""Weight-free checkpoints for tests and examples: the whole pipe, no training.

`random_checkpoint` builds a layout over the deterministic tokenizers of
`modalities/simple.py` and a randomly initialised backbone (the 2-layer "test" preset by
default), and saves it as a normal AnySeq checkpoint directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from anyseq.backbone import BackboneConfig, build_model
from anyseq.checkpoint import AnySeqCheckpoint, save_checkpoint
from anyseq.modalities import ModalityTokenizer, build_tokenizer
from anyseq.vocab import VocabLayout, train_bpe

DEFAULT_TEXTS = (
    "Describe the scene in this picture. A red circle on the left and a blue square on the right.",
    "Can you please convert this speech into written text? Would you kindly read this text out loud.",
    "Transform this caption into a musical journey. A slow cello melody in D minor.",
    "Hello! How are you today? I am fine, thank you.",
)


def simple_tokenizers(max_seconds: float = 2.0) -> dict[str, ModalityTokenizer]:
    """image: 16 tokens (4x4 grid, 512 colours); speech: 1 x 64; music: 4 x 32 (frame-major)."""
    return {
        "image": build_tokenizer("grid-image", grid=4, levels=8),
        "speech": build_tokenizer(
            "band-audio", modality="speech", num_codebooks=1, codebook_size=64, max_seconds=max_seconds
        ),
        "music": build_tokenizer(
            "band-audio", modality="music", num_codebooks=4, codebook_size=32, max_seconds=max_seconds
        ),
    }


def random_checkpoint(
    directory: str | Path,
    backbone: str = "test",
    texts: Iterable[str] = DEFAULT_TEXTS,
    text_vocab_size: int = 400,
    seed: int = 0,
    context_length: int | None = None,
    max_seconds: float = 2.0,
) -> Path:
    """Save a random-weight checkpoint over the simple tokenizers (audio up to `max_seconds`);
    returns its directory."""
    torch.manual_seed(seed)
    tokenizers = simple_tokenizers(max_seconds)
    layout = VocabLayout(train_bpe(list(texts) * 10, text_vocab_size), [t.spec for t in tokenizers.values()])
    overrides = {"context_length": context_length} if context_length else {}
    model = build_model(
        BackboneConfig.from_name(backbone, **overrides),
        layout.vocab_size,
        layout.bos_id,
        layout.eos_id,
        layout.pad_id,
    )
    return save_checkpoint(
        AnySeqCheckpoint(model, layout, tokenizers, metadata={"backbone": backbone}), directory
    )
