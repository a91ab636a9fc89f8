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
        sizes = ("hidden_size", "num_layers", "num_heads", "intermediate_size", "context_length")
        for name in sizes:
            if not getattr(self, name) > 0:
                raise ValueError(f"backbone {name} must be positive, got {getattr(self, name)}")
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
    # ~2M parameters with a ~4.6k vocabulary (half of them the embeddings), about 4,400 tokens/s of
    # training on 2 CPU cores. Its 12 minutes of stage 1 are worth more small steps than big ones: on
    # 2026-12-07, time-matched from the same start (one run each, 50 test items), hidden 256 x 6 layers
    # (7.1M, the preset until then) / 192 x 4 (3.5M) / this: 956 / 1,557 / 2,670 steps, validation loss
    # lower on every task at each step down (ASR 2.50 / 2.36 / 2.31, music caption 3.39 / 3.05 / 2.91),
    # ASR WER 0.75 / 0.63 / 0.54, text-to-image 0.17 / 0.22 / 0.24, music caption 0.45 / 0.45 / 0.50,
    # TTS WER 1.00 / 0.99 / 0.93, caption 0.26 / 0.31 / 0.22 (held-out 0.28 / 0.32 / 0.35) (README,
    # "tiny backbone size"). A context of 1024, not 512: a 4-second tiny music clip is 400 tokens,
    # and 63% of AnyWorld tiny's dialogues (median 628 tokens; nearly all that hold music) are
    # longer than 512, 22% longer than 1024; at 512, stage 2 trained on cut dialogues and a third
    # of the dialogue test's turns did not fit. Stage 1's pairs still come in blocks of 512 (its `block_size`).
    "tiny": BackboneConfig(
        hidden_size=128, num_layers=4, num_heads=4, intermediate_size=344, context_length=1024
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
