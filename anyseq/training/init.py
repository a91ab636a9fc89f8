"""A new, untrained AnySeq model directory: the starting point of stage 1 (AnyGPT, section 3).

Two starts, as DESIGN.md section 1 lists them:
- a backbone preset trained from scratch, with a byte-level BPE trained on the world's text
  (`train_bpe`, about 2k text tokens for `tiny`);
- a local Hugging Face causal LM directory (LLaMA-2-7B for the paper's setting), whose own
  tokenizer is the text part and whose embeddings grow to cover the new tokens.
Either way the vocabulary is text, AnyGPT's special tokens, then one range per modality
tokenizer, and the result is a checkpoint directory of the spine's format.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch

from anyseq.backbone import BackboneConfig, build_model, load_backbone
from anyseq.checkpoint import AnySeqCheckpoint, save_checkpoint
from anyseq.conversation import DEFAULT_SYSTEM
from anyseq.modalities.base import BOUNDARY_TOKENS, load_tokenizer
from anyseq.vocab import VocabLayout, load_text_tokenizer, train_bpe

TEXT_VOCAB_SIZE = 2048


def world_texts(data_dir: str | Path, splits: Sequence[str] = ("train",)) -> Iterator[str]:
    """AnyWorld's texts (captions, transcripts, instructions, dialogue turns) and the system
    line: what the BPE learns from."""
    from anyseq.world.dataset import iter_texts

    yield DEFAULT_SYSTEM
    for split in splits:
        yield from iter_texts(data_dir, split)


def init_model(
    out: str | Path,
    tokenizer_dirs: Sequence[str | Path],
    *,
    texts: Iterable[str] | None = None,
    backbone: str | None = "tiny",
    from_hf: str | Path | None = None,
    text_vocab_size: int = TEXT_VOCAB_SIZE,
    seed: int = 0,
) -> Path:
    """Write a fresh model directory to `out` (atomically) and return it.

    Args:
        tokenizer_dirs: saved modality tokenizers (image, speech, music...), one each.
        texts: the text corpus the BPE learns from; required without `from_hf`.
        backbone: a `BackboneConfig` preset name, used when `from_hf` is None.
        from_hf: a local HF causal LM directory; its tokenizer is kept and its vocabulary grown.
    """
    tokenizers = {}
    for directory in tokenizer_dirs:
        tokenizer = load_tokenizer(directory)
        if tokenizer.name in tokenizers:
            raise ValueError(f"{directory}: a second {tokenizer.name} tokenizer; give one per modality")
        tokenizers[tokenizer.name] = tokenizer
    if not tokenizers:
        raise ValueError("at least one modality tokenizer directory is needed")
    order = [name for name in BOUNDARY_TOKENS if name in tokenizers]  # image, speech, music
    specs = [tokenizers[name].spec for name in order]

    if from_hf is not None:
        layout = VocabLayout(load_text_tokenizer(from_hf), specs)
        model = load_backbone(from_hf, layout.vocab_size, dtype=torch.float32)
        model.config.bos_token_id, model.config.eos_token_id = layout.bos_id, layout.eos_id
        model.config.pad_token_id = layout.pad_id
        metadata = {"backbone": "hf", "from_hf": str(Path(from_hf).resolve())}
    else:
        if texts is None:
            raise ValueError("a backbone preset starts from scratch: give the texts to train its BPE on")
        layout = VocabLayout(train_bpe(texts, text_vocab_size), specs)
        torch.manual_seed(seed)
        config = BackboneConfig.from_name(backbone)
        model = build_model(config, layout.vocab_size, layout.bos_id, layout.eos_id, layout.pad_id)
        metadata = {"backbone": backbone, "backbone_config": config.to_dict()}
    return save_checkpoint(AnySeqCheckpoint(model, layout, tokenizers, metadata=metadata), out)
