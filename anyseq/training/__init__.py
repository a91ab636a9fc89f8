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
"""

from anyseq.training.config import PRESETS, LoraSettings, TrainConfig
from anyseq.training.trainer import Trainer, TrainSummary, train

__all__ = ["PRESETS", "LoraSettings", "TrainConfig", "TrainSummary", "Trainer", "train"]
