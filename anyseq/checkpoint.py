"""A checkpoint is a Hugging Face model directory (DESIGN.md section 6):

    model/
      config.json  generation_config.json  model.safetensors      # plain LlamaForCausalLM
      tokenizer.json  tokenizer_config.json (with chat_template)
      anyseq.json                                                  # layout, modalities, sampling
      modalities/{image,speech,music}/{config.json, model.safetensors}

`AutoModelForCausalLM` and `AutoTokenizer` load it with no remote code. Safetensors
only; the directory is written atomically (temporary sibling, then rename).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

from anyseq.conversation import CHAT_TEMPLATE
from anyseq.io import atomic_directory, atomic_write_json
from anyseq.modalities.base import ModalityTokenizer, load_tokenizer, save_tokenizer
from anyseq.sampling import DEFAULT_SAMPLING, SamplingConfig, sampling_from_dict
from anyseq.vocab import VocabLayout

FORMAT_VERSION = 1
ANYSEQ_FILE = "anyseq.json"
REQUIRED_FILES = ("config.json", "tokenizer.json", ANYSEQ_FILE)


@dataclass
class AnySeqCheckpoint:
    model: PreTrainedModel
    layout: VocabLayout
    tokenizers: dict[str, ModalityTokenizer]
    sampling: dict[str, SamplingConfig] = field(default_factory=lambda: dict(DEFAULT_SAMPLING))
    metadata: dict[str, Any] = field(default_factory=dict)  # e.g. backbone preset, training summary


def hf_tokenizer(layout: VocabLayout) -> PreTrainedTokenizerFast:
    """A transformers tokenizer naming every special and modality token, with the chat template."""
    return PreTrainedTokenizerFast(
        tokenizer_object=layout.full_tokenizer(),
        bos_token=layout.bos_token,
        eos_token=layout.eos_token,
        pad_token=layout.pad_token,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )


def write_checkpoint_files(checkpoint: AnySeqCheckpoint, directory: Path) -> None:
    """Write every file of a checkpoint into an existing (temporary) directory."""
    layout = checkpoint.layout
    rows = checkpoint.model.get_input_embeddings().weight.shape[0]
    if rows < layout.vocab_size:
        raise ValueError(f"the model has {rows} embedding rows, the vocabulary {layout.vocab_size} ids")
    checkpoint.model.generation_config.pad_token_id = layout.pad_id
    checkpoint.model.save_pretrained(directory, safe_serialization=True)
    hf_tokenizer(layout).save_pretrained(directory)
    for name in layout.ranges:
        if name not in checkpoint.tokenizers:
            raise ValueError(f"no tokenizer for modality {name!r} in the vocabulary")
        save_tokenizer(checkpoint.tokenizers[name], directory / "modalities" / name)
    atomic_write_json(
        directory / ANYSEQ_FILE,
        {
            "format": FORMAT_VERSION,
            "layout": layout.to_dict(),
            "modalities": {name: f"modalities/{name}" for name in layout.ranges},
            "sampling": {name: s.to_dict() for name, s in checkpoint.sampling.items()},
            "metadata": checkpoint.metadata,
        },
    )


def save_checkpoint(checkpoint: AnySeqCheckpoint, directory: str | Path) -> Path:
    """Write the checkpoint directory atomically; an existing one is replaced."""
    directory = Path(directory)
    with atomic_directory(directory) as temp:
        write_checkpoint_files(checkpoint, temp)
    return directory


def read_layout(directory: str | Path) -> tuple[VocabLayout, dict[str, Any]]:
    """The vocabulary layout and the `anyseq.json` contents of a checkpoint directory."""
    directory = Path(directory)
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if not any(directory.glob("model*.safetensors")):
        missing.append("model.safetensors")
    if missing:
        raise FileNotFoundError(f"{directory}: not an AnySeq checkpoint; missing {', '.join(missing)}")
    meta = json.loads((directory / ANYSEQ_FILE).read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{directory / ANYSEQ_FILE}: format {meta.get('format')!r}, expected {FORMAT_VERSION}"
        )
    full = Tokenizer.from_file(str(directory / "tokenizer.json"))
    return VocabLayout.from_dict(meta["layout"], full), meta


def load_checkpoint(directory: str | Path, dtype: torch.dtype | None = None) -> AnySeqCheckpoint:
    directory = Path(directory)
    layout, meta = read_layout(directory)
    tokenizers = {name: load_tokenizer(directory / sub) for name, sub in meta["modalities"].items()}
    model = AutoModelForCausalLM.from_pretrained(
        directory, local_files_only=True, dtype=dtype, use_safetensors=True
    )
    rows = model.get_input_embeddings().weight.shape[0]
    if rows < layout.vocab_size:
        raise ValueError(
            f"{directory}: the model has {rows} embedding rows, its vocabulary {layout.vocab_size}"
        )
    for name, tokenizer in tokenizers.items():
        if tokenizer.spec != layout.spec(name):
            raise ValueError(
                f"{directory}: the {name} tokenizer ({tokenizer.spec}) does not match the vocabulary "
                f"({layout.spec(name)})"
            )
    return AnySeqCheckpoint(
        model=model.eval(),
        layout=layout,
        tokenizers=tokenizers,
        sampling=sampling_from_dict(meta.get("sampling", {})),
        metadata=meta.get("metadata", {}),
    )
