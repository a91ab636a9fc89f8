"""Training AnyGPT's two stages (Zhan et al., ACL 2024, section 4.2) on top of accelerate.

    init.py      a new model directory: vocabulary + backbone (preset or local HF directory)
    tokenize.py  the tokenized view: every conversation rendered once, Parquet beside the data
    data.py      task sampling, packing (stage 1), one dialogue per sequence (stage 2), validation
    config.py    TrainConfig and its presets
    state.py     resumable checkpoints (optimizer, RNG, data position) without pickle
    lora.py      LoRA adapters through peft
    trainer.py   the loop: AdamW, warmup + cosine, accumulation, clipping, logs, checkpoints
    cli.py       `anyseq train init|pretrain|sft`, `anyseq data tokenize`
    bench.py     tokens/s and FLOP utilisation against the HF Trainer

The names below are imported when first used, so the command line starts without torch.
"""

import importlib

_EXPORTS = {
    "PRESETS": "anyseq.training.config",
    "LoraSettings": "anyseq.training.config",
    "TrainConfig": "anyseq.training.config",
    "TrainSummary": "anyseq.training.trainer",
    "Trainer": "anyseq.training.trainer",
    "train": "anyseq.training.trainer",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'anyseq.training' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
