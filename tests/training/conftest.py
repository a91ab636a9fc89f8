"""A tiny synthetic world for the training tests: weight-free tokenizers, a 2-layer model,
and a tokenized view of pairs and dialogues whose text depends on the media."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from anyseq.checkpoint import read_layout
from anyseq.conversation import Conversation, Media, Message, Text
from anyseq.media import Audio
from anyseq.modalities import build_tokenizer, load_tokenizer, save_tokenizer
from anyseq.training.init import init_model
from anyseq.training.tokenize import VIEW_ROOT, model_fingerprint, write_view

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}
PITCHES = {"low": 220.0, "middle": 880.0, "high": 3520.0}
RATE = 16000


def image_of(colour: str, rng: np.random.Generator) -> np.ndarray:
    base = np.array(COLOURS[colour], dtype=np.int64)
    noise = rng.integers(-20, 21, size=(16, 16, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)  # (H, W, 3)


def tone_of(pitch: str, rng: np.random.Generator) -> Audio:
    seconds = rng.uniform(0.3, 0.6)
    t = np.arange(int(seconds * RATE)) / RATE
    return Audio((0.5 * np.sin(2 * np.pi * PITCHES[pitch] * t)).astype(np.float32), RATE)


def pair(instruction: str, media: Media, text: str, to_text: bool) -> Conversation:
    if to_text:
        user = Message("user", [Text(instruction + " "), media])
        return Conversation([user, Message("assistant", [Text(text)])], system=None)
    user = Message("user", [Text(f"{instruction} This is input: {text}")])
    return Conversation([user, Message("assistant", [media])], system=None)


def pretrain_items(count: int, seed: int) -> list[tuple[str, Conversation]]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(count):
        colour = list(COLOURS)[rng.integers(len(COLOURS))]
        pitch = list(PITCHES)[rng.integers(len(PITCHES))]
        image = Media("image", source=image_of(colour, rng))
        speech = Media("speech", source=tone_of(pitch, rng))
        music = Media("music", source=tone_of(pitch, rng))
        task = ("image_caption", "image_generation", "asr", "tts", "music_caption", "music_generation")[i % 6]
        arguments = {
            "image_caption": ("Describe this picture.", image, f"a {colour} picture", True),
            "image_generation": ("Draw this.", image, f"a {colour} picture", False),
            "asr": ("Transcribe this.", speech, f"a {pitch} voice", True),
            "tts": ("Read this aloud.", speech, f"a {pitch} voice", False),
            "music_caption": ("Describe this music.", music, f"a {pitch} melody", True),
            "music_generation": ("Compose this.", music, f"a {pitch} melody", False),
        }
        conversation = pair(*arguments[task])
        items.append((task, conversation))
    return items


def instruct_items(count: int, seed: int) -> list[tuple[str, Conversation]]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(count):
        colour = list(COLOURS)[rng.integers(len(COLOURS))]
        pitch = list(PITCHES)[rng.integers(len(PITCHES))]
        if i % 2:
            messages = [
                Message("user", [Text(f"Please draw something {colour}.")]),
                Message("assistant", [Text("Here it is: "), Media("image", source=image_of(colour, rng))]),
                Message("user", [Text("What colour is it?")]),
                Message("assistant", [Text(f"It is {colour}.")]),
            ]
            items.append(("text->image", Conversation(messages)))
        else:
            messages = [
                Message("user", [Media("speech", source=tone_of(pitch, rng)), Text(" What pitch is this?")]),
                Message("assistant", [Text(f"That is a {pitch} voice.")]),
            ]
            items.append(("speech->text", Conversation(messages)))
    return items


def all_texts() -> list[str]:
    texts = [f"a {c} picture" for c in COLOURS] + [f"a {p} voice" for p in PITCHES]
    texts += [f"a {p} melody" for p in PITCHES] + [f"It is {c}." for c in COLOURS]
    texts += [
        "Describe this picture.",
        "Draw this.",
        "Transcribe this.",
        "Read this aloud.",
        "This is input:",
    ]
    texts += [
        "Describe this music.",
        "Compose this.",
        "What colour is it?",
        "What pitch is this?",
        "Here it is: ",
    ]
    return texts * 5


def make_tokenizers(directory: Path) -> list[Path]:
    tokenizers = {
        "image": build_tokenizer("grid-image", grid=3, levels=4),
        "speech": build_tokenizer("band-audio", modality="speech", num_codebooks=2, codebook_size=16),
        "music": build_tokenizer("band-audio", modality="music", num_codebooks=2, codebook_size=16),
    }
    return [save_tokenizer(t, directory / name) for name, t in tokenizers.items()]


def make_model(directory: Path, seed: int = 0, text_vocab_size: int = 320) -> Path:
    return init_model(
        directory / "init", make_tokenizers(directory / "tokenizers"), texts=all_texts(), backbone="test",
        text_vocab_size=text_vocab_size, seed=seed,
    )  # fmt: skip


def tokenize_into(data: Path, model: Path, pretrain: int = 96, instruct: int = 48) -> Path:
    """Write the view of the synthetic corpora under `data` for `model`; returns the view directory."""
    layout, meta = read_layout(model)
    tokenizers = {name: load_tokenizer(model / sub) for name, sub in meta["modalities"].items()}
    sources = {
        "pretrain": {"train": pretrain_items(pretrain, 1), "validation": pretrain_items(pretrain // 2, 2)},
        "instruct": {"train": instruct_items(instruct, 3), "validation": instruct_items(instruct // 2, 4)},
    }
    fingerprint = model_fingerprint(model)
    view = data / VIEW_ROOT / fingerprint
    write_view(view, sources, layout, tokenizers, fingerprint)
    return view


@dataclass
class TinyWorld:
    model: Path  # an untrained model directory
    data: Path  # a data directory holding the model's tokenized view
    view: Path


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> TinyWorld:
    root = tmp_path_factory.mktemp("tiny-world")
    model = make_model(root)
    view = tokenize_into(root / "data", model)
    return TinyWorld(model, root / "data", view)
