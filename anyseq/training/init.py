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

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import torch
from transformers import PreTrainedModel

from anyseq.backbone import BackboneConfig, build_model, load_backbone
from anyseq.checkpoint import AnySeqCheckpoint, save_checkpoint
from anyseq.conversation import DEFAULT_SYSTEM
from anyseq.modalities.base import BOUNDARY_TOKENS, ModalityTokenizer, code_vectors, load_tokenizer
from anyseq.vocab import VocabLayout, load_text_tokenizer, train_bpe

TEXT_VOCAB_SIZE = 2048
# Kernel width of the code embeddings, as a fraction of the median distance between a level's
# standardised code vectors (see `code_features`).
CODE_BANDWIDTH = 0.5


def world_texts(data_dir: str | Path, splits: Sequence[str] = ("train",)) -> Iterator[str]:
    """AnyWorld's texts (captions, transcripts, instructions, dialogue turns) and the system
    line: what the BPE learns from."""
    from anyseq.world.dataset import iter_texts

    yield DEFAULT_SYSTEM
    for split in splits:
        yield from iter_texts(data_dir, split)


def code_features(
    vectors: torch.Tensor, width: int, generator: torch.Generator, bandwidth: float = CODE_BANDWIDTH
) -> torch.Tensor:
    """Random Fourier features (Rahimi and Recht, 2007) of code vectors: (N, D) -> (N, width).

    Each dimension is standardised over the N codes; then the features' dot products
    approximate width x exp(-|z - z'|^2 / 2 sigma^2), sigma = `bandwidth` x the median
    distance between codes: codes the tokenizer's decoder reads as near get near embeddings,
    distant ones nearly orthogonal ones. Every feature has unit variance over random draws."""
    z = vectors.float()
    z = (z - z.mean(dim=0)) / z.std(dim=0).clamp_min(1e-6)
    sigma = float(torch.cdist(z, z).median()) * bandwidth
    if not sigma > 0:
        raise ValueError(
            f"{len(z)} code vectors with a median distance of 0: too few distinct codes to embed"
        )
    projection = torch.randn(z.shape[1], width, generator=generator) / sigma  # (D, width)
    phase = torch.rand(width, generator=generator) * 2 * math.pi
    return torch.cos(z @ projection + phase) * math.sqrt(2)


def embed_codes(
    model: PreTrainedModel,
    layout: VocabLayout,
    tokenizers: Mapping[str, ModalityTokenizer],
    seed: int = 0,
) -> list[str]:
    """Start each modality's embedding rows (input and output) from its tokenizer's code vectors.

    A randomly initialised language model must learn what each of the image tokenizer's 1000
    codes means from the examples alone; the tiny model sat on a plateau (text right, picture
    ignored) past 8,600 caption examples (README, "how many examples a task needs"). Rows made
    from `code_features` of the vectors the tokenizer's decoder reads start it with the codes'
    geometry. With the tiny preset's separated examples it left the plateau sooner (README,
    "how the language model starts"; measured at the tiny size only). The rows keep the scale
    of the text rows; every level of a multi-level modality gets its own projection. Returns
    the modalities embedded (those whose tokenizer offers `code_vectors` that differ)."""
    generator = torch.Generator().manual_seed(seed)
    embedded = []
    matrices = {id(m): m.weight for m in (model.get_input_embeddings(), model.get_output_embeddings())}
    for name, tokenizer in tokenizers.items():
        vectors = code_vectors(tokenizer)
        if vectors is None or not bool((vectors != vectors[0]).any()):
            continue  # no vectors, or an untrained codebook (EMA codebooks start all zero)
        spec = layout.spec(name)
        if vectors.shape[0] != spec.size:
            raise ValueError(f"{name}: {vectors.shape[0]} code vectors for a vocabulary range of {spec.size}")
        ids = layout.to_global(name, torch.arange(spec.size))
        levels = vectors.view(spec.num_codebooks, spec.codebook_size, -1)
        with torch.no_grad():
            for weight in matrices.values():  # input and output rows: a projection each
                text_std = float(weight[: layout.text_size].std())
                rows = torch.cat([code_features(level, weight.shape[1], generator) for level in levels])
                weight[ids] = rows.to(weight.dtype) * text_std
        embedded.append(name)
    return embedded


def init_model(
    out: str | Path,
    tokenizer_dirs: Sequence[str | Path],
    *,
    texts: Iterable[str] | None = None,
    backbone: str | None = "tiny",
    backbone_overrides: Mapping[str, int] | None = None,
    from_hf: str | Path | None = None,
    text_vocab_size: int = TEXT_VOCAB_SIZE,
    seed: int = 0,
    code_embeddings: bool = True,
) -> Path:
    """Write a fresh model directory to `out` (atomically) and return it.

    Args:
        tokenizer_dirs: saved modality tokenizers (image, speech, music...), one each.
        texts: the text corpus the BPE learns from; required without `from_hf`.
        backbone: a `BackboneConfig` preset name, used when `from_hf` is None.
        backbone_overrides: fields of that preset to change (e.g. `hidden_size`, `num_layers`).
        from_hf: a local HF causal LM directory; its tokenizer is kept and its vocabulary grown.
        code_embeddings: start the modality rows from the tokenizers' code vectors (`embed_codes`);
            False leaves them as the backbone made them (random, or the mean row of a grown vocabulary).
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

    if from_hf is not None and backbone_overrides:
        raise ValueError(f"backbone settings {dict(backbone_overrides)} are for a preset, not for --from-hf")
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
        config = BackboneConfig.from_name(backbone, **(backbone_overrides or {}))
        model = build_model(config, layout.vocab_size, layout.bos_id, layout.eos_id, layout.pad_id)
        metadata = {"backbone": backbone, "backbone_config": config.to_dict()}
    metadata["code_embeddings"] = embed_codes(model, layout, tokenizers, seed) if code_embeddings else []
    return save_checkpoint(AnySeqCheckpoint(model, layout, tokenizers, metadata=metadata), out)
