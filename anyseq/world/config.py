"""What an AnyWorld build makes: counts per generator and split, held-out sets, seed, sizes.

Presets (`WorldConfig.from_preset(name, **overrides)`):
- "micro": tens of items per generator, for tests (a few seconds);
- "tiny": the corpora the 2-core `tiny` model trains on: 13,506 images (10,200 shape
  scenes, 1,490 emoji renders of 1,354 emoji, 1,797 digits, 19 photos), 2,900 speech clips,
  about 1,000 music clips, 7,000 stage-1 pairs and 1,050 dialogues (with about 3,800 clips
  of their own);
  about 75 CPU seconds, so under a minute with 2 workers on an idle 2-core machine;
- "small": about four times tiny;
- "user": nothing generated, only the user's JSONL files (`UserDataConfig`).

Splits: "train", "validation", "test", and held-out sets that training never sees, each
named `heldout_<kind>`: colour_shape (scenes with a held-out colour-shape pair), emoji,
voice (held-out speakers), melody (held-out instrument-mode pairs, held-out corpus
pieces), attributes (dialogues built only from held-out attributes). A generator's
`counts` give items per split, with the key "heldout" for its held-out split. The emoji
catalogue has one picture per emoji, so its validation and test splits show training
emoji rendered anew (each render has its own scale and place) and heldout_emoji shows
unseen ones.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from anyseq.world.images import COLOURS, SHAPES
from anyseq.world.music import MELODY_INSTRUMENTS, MODES
from anyseq.world.speech import VOICES

BASE_SPLITS = ("train", "validation", "test")
HELDOUT_PREFIX = "heldout_"
COUNT_KEYS = (*BASE_SPLITS, "heldout")
# AnyGPT's stage-1 mix (image caption 0.2, image generation 0.22, speech 0.3, music 0.28),
# with speech and music split evenly between their two directions.
ANYGPT_RATIOS = {
    "image_caption": 0.2,
    "image_generation": 0.22,
    "asr": 0.15,
    "tts": 0.15,
    "music_caption": 0.14,
    "music_generation": 0.14,
}


def _counts(train: int, validation: int, test: int, heldout: int = 0) -> dict[str, int]:
    return {"train": train, "validation": validation, "test": test, "heldout": heldout}


def _check_counts(name: str, counts: dict[str, int]) -> None:
    if set(counts) - set(COUNT_KEYS) or any(not isinstance(n, int) or n < 0 for n in counts.values()):
        raise ValueError(f"{name}: counts must map {COUNT_KEYS} to non-negative integers, got {counts}")


def _check_fractions(name: str, fractions: dict[str, float]) -> None:
    if set(fractions) - set(COUNT_KEYS) - {"train"} or any(f < 0 for f in fractions.values()):
        raise ValueError(
            f"{name}: fractions must map validation/test/heldout to values >= 0, got {fractions}"
        )
    if sum(fractions.values()) >= 1:
        raise ValueError(
            f"{name}: validation + test + heldout fractions must leave some for train, got {fractions}"
        )


@dataclass
class HeldoutConfig:
    """Attribute combinations and speakers that only held-out splits contain."""

    colour_shape: list[tuple[str, str]] = field(
        default_factory=lambda: [
            ("green", "triangle"),
            ("purple", "star"),
            ("red", "hexagon"),
            ("yellow", "heart"),
        ]
    )
    voices: list[str] = field(default_factory=lambda: ["scottish-female", "midlands-male"])
    instrument_mode: list[tuple[str, str]] = field(
        default_factory=lambda: [("flute", "minor"), ("cello", "major")]
    )

    def __post_init__(self) -> None:
        self.colour_shape = [tuple(pair) for pair in self.colour_shape]
        self.instrument_mode = [tuple(pair) for pair in self.instrument_mode]
        for colour, shape in self.colour_shape:
            if colour not in COLOURS or shape not in SHAPES:
                raise ValueError(
                    f"held-out pair ({colour}, {shape}): colours are {list(COLOURS)}, shapes {SHAPES}"
                )
        for instrument, mode in self.instrument_mode:
            if instrument not in MELODY_INSTRUMENTS or mode not in MODES:
                raise ValueError(
                    f"held-out pair ({instrument}, {mode}): instruments are {MELODY_INSTRUMENTS}"
                )
        unknown = set(self.voices) - set(VOICES)
        if unknown or len(self.voices) >= len(VOICES):
            raise ValueError(f"held-out voices {self.voices}: must be some, not all, of {list(VOICES)}")


@dataclass
class CatalogueConfig:
    """A fixed collection (emoji, digits, photos) split by fractions; `limit` keeps the first entries."""

    fractions: dict[str, float] = field(default_factory=dict)  # validation/test/heldout; the rest is train
    limit: int | None = None

    def __post_init__(self) -> None:
        _check_fractions("catalogue", self.fractions)


@dataclass
class SpeechConfig:
    counts: dict[str, int] = field(default_factory=lambda: _counts(2400, 150, 150, 200))
    rate: tuple[int, int] = (150, 210)  # words per minute
    pitch: tuple[int, int] = (30, 70)

    def __post_init__(self) -> None:
        _check_counts("speech", self.counts)
        self.rate, self.pitch = tuple(self.rate), tuple(self.pitch)


@dataclass
class MusicConfig:
    seconds: float = 4.0  # clip length (AnyGPT cut music to 5 s)
    melodies: dict[str, int] = field(default_factory=lambda: _counts(520, 40, 40, 60))
    chorales: dict[str, int] = field(default_factory=lambda: _counts(40, 5, 5, 10))  # pieces
    folk: dict[str, int] = field(default_factory=lambda: _counts(80, 10, 10, 10))  # tunes
    excerpts_per_piece: int = 2

    def __post_init__(self) -> None:
        for name in ("melodies", "chorales", "folk"):
            _check_counts(f"music.{name}", getattr(self, name))
        if not 1.0 <= self.seconds <= 30.0:
            raise ValueError(f"music.seconds={self.seconds}: clips must last 1..30 s")


@dataclass
class PretrainConfig:
    """Stage 1: text-centric pairs that point at items; `ratios` is the task mix."""

    pairs_per_item: float = 0.4  # pairs in a split = pairs_per_item x items in that split
    ratios: dict[str, float] = field(default_factory=lambda: dict(ANYGPT_RATIOS))

    def __post_init__(self) -> None:
        if set(self.ratios) != set(ANYGPT_RATIOS) or any(r < 0 for r in self.ratios.values()):
            raise ValueError(f"pretrain ratios must give each of {list(ANYGPT_RATIOS)} a weight >= 0")
        if sum(self.ratios.values()) <= 0 or self.pairs_per_item <= 0:
            raise ValueError("pretrain ratios and pairs_per_item must be positive")


@dataclass
class InstructConfig:
    """Stage 2: AnyInstruct-style dialogues, scripted then rendered."""

    counts: dict[str, int] = field(default_factory=lambda: _counts(900, 50, 50, 50))
    turns: tuple[int, int] = (2, 5)  # exchanges (user + assistant) per dialogue
    spoken_fraction: float = 0.25  # dialogues whose every user turn is speech

    def __post_init__(self) -> None:
        _check_counts("instruct", self.counts)
        self.turns = tuple(self.turns)
        if not 1 <= self.turns[0] <= self.turns[1]:
            raise ValueError(f"instruct.turns={self.turns}: need 1 <= low <= high")


@dataclass
class UserDataConfig:
    """JSONL files of the user's own pairs and conversations (format: anyseq/world/userdata.py)."""

    files: list[str] = field(default_factory=list)
    max_file_bytes: int = 64 * 2**20
    max_audio_seconds: float = 30.0
    lines_per_shard: int = 1000


@dataclass
class WorldConfig:
    seed: int = 0
    image_size: int = 64
    sample_rate: int = 16000
    two_object_fraction: float = 0.35
    # 9,600 training scenes: the image tokenizer draws scenes with fine detail about 20 times each
    # in its 5 minutes; with 2,400 it drew each about 80 times and learnt them by heart (attribute
    # survival 99.3% on training scenes, 97.5% / 96.5% on test / validation; 9,600: 99-99.5% /
    # 97.5-99% over three seeds; 19,200: 97.5% / 98.5%, measured 2026-12-05)
    shapes: dict[str, int] = field(default_factory=lambda: _counts(9600, 200, 200, 200))
    emoji: CatalogueConfig = field(
        default_factory=lambda: CatalogueConfig({"validation": 0.05, "test": 0.05, "heldout": 0.05})
    )
    digits: CatalogueConfig = field(default_factory=lambda: CatalogueConfig({"validation": 0.1, "test": 0.1}))
    photos: CatalogueConfig = field(default_factory=CatalogueConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    music: MusicConfig = field(default_factory=MusicConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    instruct: InstructConfig = field(default_factory=InstructConfig)
    heldout: HeldoutConfig = field(default_factory=HeldoutConfig)
    user_data: UserDataConfig = field(default_factory=UserDataConfig)
    items_per_shard: int = 200
    dialogues_per_shard: int = 50
    pairs_per_shard: int = 2000
    preset: str | None = None

    def __post_init__(self) -> None:
        _check_counts("shapes", self.shapes)
        if self.image_size < 16:
            raise ValueError(f"image_size={self.image_size}: at least 16 px")
        if self.sample_rate < 8000:
            raise ValueError(f"sample_rate={self.sample_rate}: at least 8000 Hz")
        if min(self.items_per_shard, self.dialogues_per_shard, self.pairs_per_shard) < 1:
            raise ValueError("shard sizes must be at least 1")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> WorldConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown world preset {name!r}; known: {list(PRESETS)}")
        return cls.from_dict({**PRESETS[name], "preset": name, **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorldConfig:
        return _build(cls, data)

    @classmethod
    def from_file(cls, path: str | Path) -> WorldConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))  # tuples become lists: the form saved next to a build


def _build(cls: type, data: dict[str, Any]) -> Any:
    """A (nested) config dataclass from a dict; unknown keys are an error naming them."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown settings {sorted(unknown)}; known: {sorted(known)}")
    values = {}
    for name, value in data.items():
        default = known[name].default_factory() if callable(known[name].default_factory) else None
        values[name] = (
            _build(type(default), value) if is_dataclass(default) and isinstance(value, dict) else value
        )
    return cls(**values)


PRESETS: dict[str, dict[str, Any]] = {
    "micro": {
        "shapes": _counts(24, 4, 4, 6),
        "emoji": {"fractions": {"validation": 0.1, "test": 0.1, "heldout": 0.2}, "limit": 30},
        "digits": {"fractions": {"validation": 0.1, "test": 0.1}, "limit": 30},
        "photos": {"limit": 3},
        "speech": {"counts": _counts(12, 3, 3, 4)},
        "music": {
            "seconds": 2.0,
            "melodies": _counts(6, 2, 2, 3),
            "chorales": _counts(1, 0, 0, 1),
            "folk": _counts(2, 1, 1, 1),
            "excerpts_per_piece": 1,
        },
        "instruct": {"counts": _counts(16, 2, 2, 2)},
        "pretrain": {"pairs_per_item": 0.5},
        "items_per_shard": 8,
        "dialogues_per_shard": 6,
        "pairs_per_shard": 40,
    },
    "tiny": {},
    # only the user's JSONL files (`anyseq data import-jsonl`); each item gives about two pairs
    "user": {
        "shapes": _counts(0, 0, 0),
        "emoji": {"limit": 0},
        "digits": {"limit": 0},
        "photos": {"limit": 0},
        "speech": {"counts": _counts(0, 0, 0)},
        "music": {"melodies": _counts(0, 0, 0), "chorales": _counts(0, 0, 0), "folk": _counts(0, 0, 0)},
        "instruct": {"counts": _counts(0, 0, 0)},
        "pretrain": {"pairs_per_item": 2.0},
    },
    "small": {
        "shapes": _counts(38400, 500, 500, 500),
        "speech": {"counts": _counts(10000, 500, 500, 500)},
        "music": {
            "melodies": _counts(2400, 100, 100, 150),
            "chorales": _counts(250, 20, 20, 30),
            "folk": _counts(600, 40, 40, 40),
        },
        "instruct": {"counts": _counts(4000, 200, 200, 200)},
        "items_per_shard": 500,
        "dialogues_per_shard": 100,
    },
}
