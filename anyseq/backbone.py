"""The backbone: a plain `LlamaForCausalLM` (AnyGPT keeps LLaMA-2 unchanged, section 3).

Built from a named preset or loaded from a local Hugging Face directory; in both cases
the embedding and output matrices cover the grown vocabulary, padded to a multiple of
64. New rows of a loaded model start at the mean of the old rows, so old tokens keep
their logits and new tokens start neutral.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedModel

VOCAB_MULTIPLE = 64


@dataclass(frozen=True)
class BackboneConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    context_length: int
    num_kv_heads: int | None = None  # None: multi-head attention (as LLaMA-2-7B)
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")

    @classmethod
    def from_name(cls, name: str, **overrides: int) -> BackboneConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown backbone preset {name!r}; known: {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    def to_llama(self, vocab_size: int, bos_id: int, eos_id: int, pad_id: int) -> LlamaConfig:
        return LlamaConfig(
            vocab_size=padded_vocab_size(vocab_size),
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads or self.num_heads,
            max_position_embeddings=self.context_length,
            rope_theta=self.rope_theta,
            bos_token_id=bos_id,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
            tie_word_embeddings=False,
        )

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, BackboneConfig] = {
    # ~8M parameters with a ~4k vocabulary: about 2,000 tokens/s of training on 2 CPU cores. A
    # context of 1024, not 512: a 4-second tiny music clip is 400 tokens, and 63% of AnyWorld
    # tiny's dialogues (median 628 tokens; nearly all that hold music) are longer than 512, 22%
    # longer than 1024; at 512, stage 2 trained on cut dialogues and a third of the dialogue test's
    # turns did not fit. Stage 1's pairs still come in blocks of 512 (its `block_size`).
    "tiny": BackboneConfig(
        hidden_size=256, num_layers=6, num_heads=4, intermediate_size=688, context_length=1024
    ),
    "small": BackboneConfig(
        hidden_size=384, num_layers=8, num_heads=6, intermediate_size=1024, context_length=1024
    ),
    # LLaMA-2-7B's shape; AnyGPT pretrained with blocks of 4500 tokens.
    "anygpt-7b": BackboneConfig(
        hidden_size=4096, num_layers=32, num_heads=32, intermediate_size=11008, context_length=4500
    ),
    # For unit tests: 2 layers, width 32.
    "test": BackboneConfig(
        hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, context_length=256
    ),
}


def padded_vocab_size(vocab_size: int, multiple: int = VOCAB_MULTIPLE) -> int:
    return -(-vocab_size // multiple) * multiple


def build_model(
    config: BackboneConfig, vocab_size: int, bos_id: int, eos_id: int, pad_id: int
) -> LlamaForCausalLM:
    """A randomly initialised LLaMA whose vocabulary covers `vocab_size` ids (padded)."""
    return LlamaForCausalLM(config.to_llama(vocab_size, bos_id, eos_id, pad_id))


def grow_vocabulary(model: PreTrainedModel, vocab_size: int) -> PreTrainedModel:
    """Resize input and output embeddings to cover `vocab_size` ids (padded to a multiple
    of 64); new rows are the mean of the old ones. Shrinking is refused."""
    old = model.get_input_embeddings().weight.shape[0]
    new = padded_vocab_size(vocab_size)
    if new < old:
        raise ValueError(f"the model already has {old} embedding rows; refusing to shrink to {new}")
    if new == old:
        return model
    model.resize_token_embeddings(new, mean_resizing=False)
    with torch.no_grad():
        for matrix in {
            id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings())
        }.values():
            weight = matrix.weight  # (V, C)
            weight[old:] = weight[:old].mean(dim=0, keepdim=True)
        head = model.get_output_embeddings()
        if getattr(head, "bias", None) is not None:
            head.bias[old:] = head.bias[:old].mean()
    return model


def load_backbone(directory: str | Path, vocab_size: int | None = None, dtype: torch.dtype | None = None):
    """A causal LM from a local HF directory (never downloads), grown to `vocab_size` when given."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory}: not a Hugging Face model directory (no config.json)")
    model = AutoModelForCausalLM.from_pretrained(
        directory, local_files_only=True, dtype=dtype, use_safetensors=True
    )
    if vocab_size is not None:
        grow_vocabulary(model, vocab_size)
    return model


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
