"""Draws the world's content for one split, keeping held-out attributes out of the others.

Every generator and the dialogue writer draw scenes, melodies, speakers and
colour-shape or instrument-mode pairs through a `WorldSampler`; which held-out sets it
draws from depends only on the split, so no held-out combination can leak into train.
"""

from __future__ import annotations

import random
from typing import Any

from anyseq.world import images, music
from anyseq.world.config import HELDOUT_PREFIX, WorldConfig
from anyseq.world.speech import VOICES, sample_delivery


def shard_rng(seed: int, *key: object) -> random.Random:
    """An RNG that depends only on the seed and the key (e.g. source, split, shard), never on
    which worker runs it or in which order."""
    return random.Random("/".join(map(str, (seed, *key))))  # str seeds are hashed with SHA-512


class WorldSampler:
    """Split-aware draws. In `heldout_colour_shape` every scene has a held-out pair; in
    `heldout_voice` every speaker is held out; in `heldout_melody` every melody has a held-out
    instrument-mode pair; in `heldout_attributes` all three; in other splits none."""

    def __init__(self, config: WorldConfig, split: str, rng: random.Random) -> None:
        self.config = config
        self.split = split
        self.rng = rng
        kind = split.removeprefix(HELDOUT_PREFIX) if split.startswith(HELDOUT_PREFIX) else None
        self.heldout_scenes = kind in ("colour_shape", "attributes")
        self.heldout_voices = kind in ("voice", "attributes")
        self.heldout_melodies = kind in ("melody", "attributes")
        held = config.heldout
        self.colour_shape_pairs = frozenset(held.colour_shape)
        self.instrument_mode_pairs = frozenset(held.instrument_mode)
        self.voices = tuple(v for v in VOICES if (v in held.voices) == self.heldout_voices)
        self._voice_deck: list[str] = []

    def scene(self, two_objects: bool | None = None) -> dict[str, Any]:
        fraction = self.config.two_object_fraction if two_objects is None else float(two_objects)
        return images.sample_scene(self.rng, self.colour_shape_pairs, self.heldout_scenes, fraction)

    def colour_shape(self) -> tuple[str, str]:
        """A (colour, shape) pair this split may mention."""
        return self.rng.choice([(c, s) for c in images.COLOURS for s in images.SHAPES if self.allows(c, s)])

    def melody(self, **fixed: Any) -> dict[str, Any]:
        return music.sample_melody(
            self.rng, self.instrument_mode_pairs, self.heldout_melodies, self.config.music.seconds, **fixed
        )

    def instrument_mode(self) -> tuple[str, str]:
        """An (instrument, mode) pair this split may mention."""
        pairs = [(i, m) for i in music.MELODY_INSTRUMENTS for m in music.MODES if self.allows_music(i, m)]
        return self.rng.choice(pairs)

    def allows(self, colour: str, shape: str) -> bool:
        """Whether this split may show the (colour, shape) pair."""
        return ((colour, shape) in self.colour_shape_pairs) == self.heldout_scenes

    def allows_music(self, instrument: str, mode: str) -> bool:
        """Whether this split may play the (instrument, mode) pair."""
        return ((instrument, mode) in self.instrument_mode_pairs) == self.heldout_melodies

    def delivery(self) -> dict[str, Any]:
        """A speaker and manner; speakers are dealt from a shuffled deck, so every voice of the
        split is heard once before any is heard twice (small splits still cover the voices)."""
        if not self._voice_deck:
            self._voice_deck = self.rng.sample(self.voices, len(self.voices))
        speech = self.config.speech
        return sample_delivery(self.rng, (self._voice_deck.pop(),), speech.rate, speech.pitch)
