"""Modality tokenizers: one protocol (`base.py`), one registry, one file per implementation."""

from anyseq.modalities.base import (
    BOUNDARY_TOKENS,
    TOKENIZERS,
    ModalitySpec,
    ModalityTokenizer,
    build_tokenizer,
    load_tokenizer,
    save_tokenizer,
)

__all__ = [
    "BOUNDARY_TOKENS",
    "TOKENIZERS",
    "ModalitySpec",
    "ModalityTokenizer",
    "build_tokenizer",
    "load_tokenizer",
    "save_tokenizer",
]
