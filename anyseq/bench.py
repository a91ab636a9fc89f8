"""Generation benchmark: tokens/s of the engine with and without the span constraints,
and of plain HF `generate` on the same model, at batch 1 and 8 (`anyseq bench generate`).

The model is the `tiny` preset with random weights over a vocabulary shaped like the
tiny world's (text ~2k, image 64 tokens of 1024, speech 512, music 4 x 256); decoding
cost does not depend on the weights. Each row generates inside a long music span, so
no row stops early and every variant decodes the same number of tokens.
"""

from __future__ import annotations

import platform
import time
from functools import partial
from pathlib import Path

import torch

from anyseq.backbone import PRESETS, build_model, count_parameters
from anyseq.conversation import Conversation, Message, Text, render
from anyseq.generation import GenerationEngine
from anyseq.io import atomic_write_json
from anyseq.modalities import build_tokenizer
from anyseq.vocab import VocabLayout, train_bpe

WORDS = "a the red green blue circle square triangle star left right small large picture song voice slow fast"


def tiny_like_layout() -> VocabLayout:
    text = [" ".join(WORDS.split()[i:] + WORDS.split()[:i]) + f" {i}" for i in range(2000)]
    specs = [
        build_tokenizer("grid-image", grid=8, levels=10).spec,
        build_tokenizer("band-audio", modality="speech", num_codebooks=1, codebook_size=512).spec,
        build_tokenizer(
            "band-audio", modality="music", num_codebooks=4, codebook_size=256, max_seconds=20.0
        ).spec,
    ]
    return VocabLayout(train_bpe(text, vocab_size=2048), specs)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_bench(out: Path, new_tokens: int = 128, repeats: int = 3, threads: int | None = None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    layout = tiny_like_layout()
    model = build_model(
        PRESETS["tiny"], layout.vocab_size, layout.bos_id, layout.eos_id, layout.pad_id
    ).eval()
    conversation = Conversation([Message("user", [Text("Compose a slow violin melody.")])], None)
    prompt = render(conversation, layout, add_generation_prompt=True).ids.tolist()
    prompt += layout.encode_text(": ") + [layout.start_of("music")]

    constrained, unconstrained = (
        GenerationEngine(model, layout),
        GenerationEngine(model, layout, constrain=False),
    )
    rows = []
    for batch in (1, 8):
        prompts = [prompt] * batch
        input_ids = torch.tensor(prompts)
        variants = {
            "anyseq_constrained": partial(constrained.generate, prompts, new_tokens, seed=0),
            "anyseq_unconstrained": partial(unconstrained.generate, prompts, new_tokens, seed=0),
            "hf_generate": partial(
                model.generate,
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=True,
                top_k=0,
                top_p=1.0,
                pad_token_id=layout.pad_id,
            ),
        }
        with torch.inference_mode():
            for fn in variants.values():  # warm-up
                fn()
            for name, fn in variants.items():
                best = min(_timed(fn) for _ in range(repeats))
                rows.append(
                    {"variant": name, "batch": batch, "tokens_per_s": round(batch * new_tokens / best, 1)}
                )
    by = {(r["variant"], r["batch"]): r["tokens_per_s"] for r in rows}
    result = {
        "benchmark": "generate",
        "model": "tiny",
        "parameters": count_parameters(model),
        "vocab_size": layout.vocab_size,
        "new_tokens": new_tokens,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "results": rows,
        "constraint_cost": {
            f"batch_{b}": round(1 - by[("anyseq_constrained", b)] / by[("anyseq_unconstrained", b)], 4)
            for b in (1, 8)
        },
        "vs_hf_generate": {
            f"batch_{b}": round(by[("anyseq_constrained", b)] / by[("hf_generate", b)], 3) for b in (1, 8)
        },
    }
    atomic_write_json(out, result)
    return result
