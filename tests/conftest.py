"""Shared fixtures: a seed, a small BPE, a layout over the weight-free tokenizers, a 2-layer model."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from anyseq.backbone import BackboneConfig, build_model
from anyseq.modalities import build_tokenizer
from anyseq.vocab import VocabLayout, train_bpe

CORPUS = [
    "Describe the scene in this picture.",
    "A red circle on the left and a blue square on the right.",
    "Can you please convert this speech into written text?",
    "Transform this caption into a musical journey.",
    "a slow cello melody in D minor",
    "Hello! How are you today?",
]


# The test models are tiny: one thread is faster than two, and leaves a core to the rest.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def seed() -> int:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    return 0


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where tests leave what a person may want to look at (screenshots): kept after the run."""
    folder = Path(
        os.environ.get("ANYSEQ_TEST_ARTIFACTS", Path(__file__).parent.parent / "runs" / "test-artifacts")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def bpe():
    return train_bpe(CORPUS * 20, vocab_size=320)


@pytest.fixture(scope="session")
def tokenizers():
    """image: 16 tokens of a 512 codebook; speech: K=1; music: K=4 (frame-major)."""
    return {
        "image": build_tokenizer("grid-image", grid=4, levels=8),
        "speech": build_tokenizer(
            "band-audio", modality="speech", num_codebooks=1, codebook_size=64, max_seconds=1.0
        ),
        "music": build_tokenizer(
            "band-audio", modality="music", num_codebooks=4, codebook_size=32, max_seconds=0.4
        ),
    }


@pytest.fixture(scope="session")
def layout(bpe, tokenizers):
    return VocabLayout(bpe, [t.spec for t in tokenizers.values()])


@pytest.fixture
def model(layout):
    torch.manual_seed(0)
    return build_model(
        BackboneConfig.from_name("test"), layout.vocab_size, layout.bos_id, layout.eos_id, layout.pad_id
    ).eval()


@pytest.fixture(scope="session")
def micro_world(tmp_path_factory):
    """A built AnyWorld at the `micro` preset (tens of items per modality), shared by the session."""
    from anyseq.world.build import build_world
    from anyseq.world.config import WorldConfig

    out = tmp_path_factory.mktemp("world") / "micro"
    build_world(WorldConfig.from_preset("micro"), out, workers=1, progress=False)
    return out
