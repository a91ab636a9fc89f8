"""LoRA (Hu et al., 2021) through peft, for backbones too large to train in full.

The adapters sit on the attention and MLP projections; the embedding and output matrices
train in full by default, since the rows of the grown vocabulary (every modality token)
start untrained. A checkpoint stores the merged model, so it stays a plain
`LlamaForCausalLM` directory.
"""

from __future__ import annotations

import copy

from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel

from anyseq.training.config import LoraSettings

EMBEDDING_MODULES = ["embed_tokens", "lm_head"]


def apply_lora(model: PreTrainedModel, settings: LoraSettings) -> PeftModel:
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        modules_to_save=EMBEDDING_MODULES if settings.train_embeddings else None,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def merged_copy(model: PeftModel) -> PreTrainedModel:
    """The base model with the adapters folded into its weights; `model` is left as it is."""
    return copy.deepcopy(model).merge_and_unload()
