"""Training throughput (`anyseq bench train`): AnySeq's loop against the plain HF `Trainer`.

For the `tiny` and `small` backbones over a vocabulary shaped like the tiny world's, both
loops train the same model (same initial weights) on the same packed blocks with the same
batch and AdamW, in fp32, in the same process, taking turns step by step: one HF step,
then one AnySeq step, so a neighbour's load on a shared machine falls on both alike.
AnySeq runs as its preset trains stage 1 (torch.compile for `tiny` and `small`); the
Trainer with its defaults. Tokens/s is over the steps after a warm-up (which holds the
compile). Model FLOP utilisation is the model's FLOPs
per token (6 x matmul parameters + attention, as PaLM's appendix B counts them) times
tokens/s, over the sgemm peak: the best fp32 matrix-multiply rate measured before and
after every model in the same run.
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import LlamaConfig, TrainerCallback, TrainingArguments
from transformers import Trainer as HFTrainer

from anyseq.backbone import PRESETS, build_model, count_parameters
from anyseq.bench import WORDS
from anyseq.checkpoint import AnySeqCheckpoint, save_checkpoint
from anyseq.conversation import Conversation, Media, Message, Text
from anyseq.io import atomic_write_json
from anyseq.modalities import build_tokenizer
from anyseq.training.config import PRESETS as TRAIN_PRESETS
from anyseq.training.config import TrainConfig
from anyseq.training.data import TokenizedSplit, make_stream
from anyseq.training.tokenize import VIEW_ROOT, model_fingerprint, write_view
from anyseq.training.trainer import Trainer
from anyseq.vocab import VocabLayout, train_bpe

# backbone preset -> (sequences per batch, tokens per sequence); "test" checks the bench itself
BATCHES = {"tiny": (8, 512), "small": (4, 1024), "test": (4, 128)}
LEARNING_RATE = 1e-3


def sgemm_gflops(size: int = 2048, repeats: int = 8) -> float:
    """The best fp32 matrix-multiply rate of this machine, in GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_seconds(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flops_per_token(config: LlamaConfig, sequence_length: int) -> float:
    """Training FLOPs per token: 6 per matmul parameter (forward and backward) plus the
    attention scores and mixing, 12 x layers x width x sequence length."""
    width, head_dim = config.hidden_size, config.hidden_size // config.num_attention_heads
    kv_width = config.num_key_value_heads * head_dim
    per_layer = 2 * width * width + 2 * width * kv_width + 3 * width * config.intermediate_size
    matmul_parameters = config.num_hidden_layers * per_layer + width * config.vocab_size  # + lm_head
    return 6 * matmul_parameters + 12 * config.num_hidden_layers * width * sequence_length


def _tokenizers() -> dict[str, Any]:
    """Modalities shaped like the tiny world's: 64 image tokens of 1000, speech 512, music 4 x 256."""
    return {
        "image": build_tokenizer("grid-image", grid=8, levels=10),
        "speech": build_tokenizer("band-audio", modality="speech", num_codebooks=1, codebook_size=512),
        "music": build_tokenizer(
            "band-audio", modality="music", num_codebooks=4, codebook_size=256, max_seconds=20.0
        ),
    }


def _pairs(count: int, seed: int) -> list[tuple[str, Conversation]]:
    """Caption-like pairs with random media codes; throughput depends on shapes, not content."""
    rng = np.random.default_rng(seed)
    words = WORDS.split()
    frames = {"image": (1, 64), "speech": (1, 125), "music": (4, 100)}
    sizes = {"image": 1000, "speech": 512, "music": 256}
    pairs = []
    for i in range(count):
        modality = ("image", "speech", "music")[i % 3]
        codes = torch.from_numpy(rng.integers(0, sizes[modality], size=frames[modality]))
        caption = " ".join(rng.choice(words, size=8))
        user = Message("user", [Text("Describe this. "), Media(modality, codes=codes)])
        pairs.append(
            (f"{modality}_caption", Conversation([user, Message("assistant", [Text(caption)])], None))
        )
    return pairs


def _setup(root: Path, preset: str) -> tuple[Path, LlamaConfig, int]:
    """An initial model directory and a tokenized view of random pairs for `preset`."""
    tokenizers = _tokenizers()
    text = [" ".join(WORDS.split()[i % 17 :] + WORDS.split()[: i % 17]) + f" {i}" for i in range(2000)]
    layout = VocabLayout(train_bpe(text, vocab_size=2048), [t.spec for t in tokenizers.values()])
    torch.manual_seed(0)
    model = build_model(PRESETS[preset], layout.vocab_size, layout.bos_id, layout.eos_id, layout.pad_id)
    init = save_checkpoint(AnySeqCheckpoint(model, layout, tokenizers), root / preset / "init")
    pairs = _pairs(600, seed=1)
    fingerprint = model_fingerprint(init)
    sources = {"pretrain": {"train": pairs, "validation": pairs[:6]}}
    write_view(root / preset / "data" / VIEW_ROOT / fingerprint, sources, layout, tokenizers, fingerprint)
    return init, model.config, count_parameters(model)


def _config(preset: str, steps: int) -> TrainConfig:
    """The bench's batch, with the preset's stage-1 setting for torch.compile (the HF `Trainer`
    runs with its defaults, which do not compile)."""
    batch, length = BATCHES[preset]
    compile_ = TRAIN_PRESETS[preset]["pretrain"].compile if preset in TRAIN_PRESETS else False
    return TrainConfig(
        stage="pretrain", learning_rate=LEARNING_RATE, max_steps=steps, batch_size=batch, block_size=length,
        eval_every=0, save_every=0, log_every=0, eval_examples=1, mixed_precision="no", overlong="truncate",
        compile=compile_,
    )  # fmt: skip


class _Interleaved(TrainerCallback):
    """Times each HF `Trainer` step and, right after it, one AnySeq step: the two loops take
    turns step by step, so both see the same load from the machine's other work."""

    def __init__(self, anyseq: Trainer) -> None:
        self.anyseq = anyseq
        self.seconds: dict[str, list[float]] = {"anyseq": [], "hf_trainer": []}

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds["hf_trainer"].append(time.perf_counter() - self.started)
        started = time.perf_counter()
        self.anyseq.step()
        self.seconds["anyseq"].append(time.perf_counter() - started)


def _step_seconds(init: Path, data: Path, out: Path, config: TrainConfig) -> dict[str, list[float]]:
    """Step durations of both loops, trained side by side from the same weights on the same blocks."""
    from transformers import AutoModelForCausalLM

    anyseq = Trainer(config, init, data, out / "anyseq")
    split, _ = TokenizedSplit.load(anyseq.view, "pretrain", "train").fit_to(
        config.block_size, config.overlong
    )
    stream = make_stream("pretrain", split, config.task_ratios, config.seed, config.block_size)
    blocks = [
        torch.from_numpy(stream.next().ids.astype(np.int64))
        for _ in range(config.max_steps * config.batch_size)
    ]
    dataset = [{"input_ids": ids, "labels": ids} for ids in blocks]  # every token trained, as in stage 1
    model = AutoModelForCausalLM.from_pretrained(init, local_files_only=True, dtype=torch.float32)
    arguments = TrainingArguments(
        output_dir=str(out / "hf"), per_device_train_batch_size=config.batch_size, max_steps=config.max_steps,
        learning_rate=LEARNING_RATE, lr_scheduler_type="cosine", warmup_steps=config.warmup_steps,
        adam_beta1=config.betas[0], adam_beta2=config.betas[1], weight_decay=0.0, max_grad_norm=config.grad_clip,
        logging_strategy="no", save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=True,
        dataloader_num_workers=0, seed=0,
    )  # fmt: skip
    clock = _Interleaved(anyseq)
    HFTrainer(model=model, args=arguments, train_dataset=dataset, callbacks=[clock]).train()
    return clock.seconds


def run_bench(
    out: Path, presets: tuple[str, ...] = ("tiny", "small"), steps: int = 14, warmup: int = 3
) -> dict:
    peaks = [sgemm_gflops()]  # before and after every model: the best is the machine's peak
    models = {}
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        for preset in presets:
            init, llama, parameters = _setup(root, preset)
            config = _config(preset, steps)
            seconds = {name: durations[warmup:] for name, durations in
                       _step_seconds(init, root / preset / "data", root / preset / "runs", config).items()}  # fmt: skip
            peaks.append(sgemm_gflops())
            tokens = config.batch_size * config.block_size  # per step
            rows = {
                name: {
                    "tokens_per_second": round(tokens * len(durations) / sum(durations), 1),
                    "best_step_tokens_per_second": round(tokens / min(durations), 1),
                    "steps_measured": len(durations),
                }
                for name, durations in seconds.items()
            }
            models[preset] = {
                "parameters": parameters,
                "vocab_size": llama.vocab_size,
                "batch": {"sequences": config.batch_size, "tokens_per_sequence": config.block_size},
                "flops_per_token": flops_per_token(llama, config.block_size),
                "anyseq_compiled": config.compile,
                **rows,
                "anyseq_over_trainer": round(sum(seconds["hf_trainer"]) / sum(seconds["anyseq"]), 3),
            }
    peak = max(peaks)
    for row in models.values():
        for name in ("anyseq", "hf_trainer"):
            rate = row[name]["tokens_per_second"]
            row[name]["model_flop_utilisation"] = round(rate * row["flops_per_token"] / (peak * 1e9), 4)
    result = {
        "benchmark": "train",
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "sgemm_gflops": round(peak, 1),
        "sgemm_gflops_all": [round(p, 1) for p in peaks],
        "precision": "fp32",
        "steps": {"measured": steps - warmup, "warmup": warmup},
        "models": models,
        "anyseq_at_least_trainer": all(m["anyseq_over_trainer"] >= 1.0 for m in models.values()),
    }
    atomic_write_json(out, result)
    return result
