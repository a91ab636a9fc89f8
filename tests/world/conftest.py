"""A smaller AnyWorld config than the micro preset (whose build, `micro_world`, is shared by
every test through tests/conftest.py)."""

from __future__ import annotations

import pytest

from anyseq.world.config import PRESETS, WorldConfig


def _counts(train: int, validation: int = 0, test: int = 0, heldout: int = 0) -> dict[str, int]:
    return {"train": train, "validation": validation, "test": test, "heldout": heldout}


@pytest.fixture(scope="session")
def small_config() -> WorldConfig:
    """A few items of every generator, every split, small shards (many tasks): seconds to build."""
    return WorldConfig.from_dict(
        {
            **PRESETS["micro"],
            "seed": 7,
            "shapes": _counts(4, 1, 1, 2),
            "emoji": {"fractions": {"heldout": 0.25}, "limit": 8},
            "digits": {"fractions": {"test": 0.25}, "limit": 4},
            "photos": {"limit": 1},
            "speech": {"counts": _counts(3, 0, 1, 1)},
            "music": {
                "seconds": 1.5,
                "melodies": _counts(3, 0, 0, 1),
                "chorales": _counts(0),
                "folk": _counts(1),
                "excerpts_per_piece": 1,
            },
            "instruct": {"counts": _counts(3, 0, 0, 1)},
            "items_per_shard": 3,
            "dialogues_per_shard": 2,
            "pairs_per_shard": 5,
        }
    )
