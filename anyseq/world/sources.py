"""The item sources of AnyWorld: each turns (split, range of indices) into stored items.

A source knows how many items each split holds (`sizes`) and makes any contiguous range
of them (`make`) from an RNG keyed by (seed, source, split, start), so a shard's bytes
do not depend on which worker makes it or when. Fixed collections (emoji, digits,
photos, corpus pieces) are assigned to splits once, by a seeded shuffle, so an entry
belongs to exactly one split.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from anyseq.world import images, music, speech, text
from anyseq.world.config import BASE_SPLITS, HELDOUT_PREFIX, WorldConfig
from anyseq.world.sampler import WorldSampler, shard_rng
from anyseq.world.store import dumps, encode_audio, encode_image

log = logging.getLogger("anyseq.world")


@dataclass
class ItemRow:
    id: str
    text: str
    media: bytes
    format: str
    labels: dict[str, Any]

    def to_row(self, modality: str, source: str, split: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "modality": modality,
            "source": source,
            "split": split,
            "text": self.text,
            "media": self.media,
            "format": self.format,
            "labels": dumps(self.labels),
        }


class Source(Protocol):
    name: str  # the `source` of its items
    modality: str
    heldout_kind: str | None  # its held-out split is f"heldout_{heldout_kind}"
    cost: float  # CPU seconds per item (measured by `anyseq bench data`), to schedule slow shards first

    def sizes(self, config: WorldConfig) -> dict[str, int]: ...

    def make(self, config: WorldConfig, split: str, start: int, count: int) -> list[ItemRow]: ...


def split_name(key: str, heldout_kind: str | None, source: str) -> str:
    """A counts key ("train", ..., "heldout") -> the split's name."""
    if key != "heldout":
        return key
    if heldout_kind is None:
        raise ValueError(f"{source} has no held-out split; give it no 'heldout' count or fraction")
    return HELDOUT_PREFIX + heldout_kind


def split_catalogue(
    size: int, counts: dict[str, int], seed: int, name: str, heldout_kind: str | None
) -> dict[str, list[int]]:
    """Indices 0..size-1 shuffled once by seed and assigned to splits; `counts` per key
    (validation, test, heldout), the rest to train unless counts name train too."""
    order = list(range(size))
    shard_rng(seed, name, "catalogue").shuffle(order)
    out: dict[str, list[int]] = {}
    position = 0
    for key in ("heldout", "validation", "test", "train"):
        if key == "train" and key not in counts:
            take = size - position
        else:
            take = min(counts.get(key, 0), size - position)
        if take:
            out[split_name(key, heldout_kind, name)] = sorted(order[position : position + take])
        position += take
    return out


def _sampled_sizes(counts: dict[str, int], heldout_kind: str, source: str) -> dict[str, int]:
    return {split_name(key, heldout_kind, source): n for key, n in counts.items() if n}


class Shapes:
    name, modality, heldout_kind, cost = "shapes", "image", "colour_shape", 0.0006

    def sizes(self, config: WorldConfig) -> dict[str, int]:
        return _sampled_sizes(config.shapes, self.heldout_kind, self.name)

    def make(self, config: WorldConfig, split: str, start: int, count: int) -> list[ItemRow]:
        sampler = WorldSampler(config, split, shard_rng(config.seed, self.name, split, start))
        rows = []
        for index in range(start, start + count):
            labels = sampler.scene()
            image = images.render_shape_scene(labels, config.image_size)
            caption = images.shape_caption(labels, sampler.rng)
            rows.append(ItemRow(f"shapes-{split}-{index:06d}", caption, encode_image(image), "png", labels))
        return rows


class Catalogue:
    """A fixed collection split by `config.<name>` fractions."""

    heldout_kind: str | None = None
    # splits drawn from the train entries instead of apart from them, each a new rendering: for a
    # catalogue of one picture per entry (emoji), an in-distribution test can only show seen entries
    resampled: tuple[str, ...] = ()

    def entries(self) -> int:
        """How many entries the collection has."""
        ...

    def row(
        self, config: WorldConfig, entry: int, rng: random.Random
    ) -> tuple[str, Image.Image, dict[str, Any]]:
        """(caption, image, labels) of one entry."""
        ...

    def assignment(self, config: WorldConfig) -> dict[str, list[int]]:
        catalogue = getattr(config, self.name)
        if catalogue.limit == 0:
            return {}
        size = self.entries() if catalogue.limit is None else min(catalogue.limit, self.entries())
        counts = {key: round(size * fraction) for key, fraction in catalogue.fractions.items()}
        apart = {key: n for key, n in counts.items() if key not in self.resampled}
        splits = split_catalogue(size, apart, config.seed, self.name, self.heldout_kind)
        for key in self.resampled:
            train = splits.get("train", [])
            if counts.get(key) and train:
                rng = shard_rng(config.seed, self.name, "resampled", key)
                splits[key] = sorted(rng.sample(train, min(counts[key], len(train))))
        return splits

    def sizes(self, config: WorldConfig) -> dict[str, int]:
        return {split: len(entries) for split, entries in self.assignment(config).items()}

    def make(self, config: WorldConfig, split: str, start: int, count: int) -> list[ItemRow]:
        rng = shard_rng(config.seed, self.name, split, start)
        rows = []
        for index, entry in enumerate(self.assignment(config)[split][start : start + count], start):
            caption, image, labels = self.row(config, entry, rng)
            rows.append(
                ItemRow(f"{self.name}-{split}-{index:06d}", caption, encode_image(image), "png", labels)
            )
        return rows


class Emoji(Catalogue):
    """Noto Color Emoji, each render at a random scale and place (`images.emoji_variation`):
    validation and test show training emoji rendered anew, heldout_emoji shows unseen ones."""

    name, modality, heldout_kind, cost = "emoji", "image", "emoji", 0.0025
    resampled = ("validation", "test")

    def entries(self) -> int:
        return len(images.emoji_catalogue())

    def row(
        self, config: WorldConfig, entry: int, rng: random.Random
    ) -> tuple[str, Image.Image, dict[str, Any]]:
        emoji = images.emoji_catalogue()[entry]
        labels = images.emoji_labels(emoji, rng)
        caption = images.emoji_caption(emoji, rng)
        return caption, images.render_emoji_labels(labels, config.image_size), labels

    def names(self, config: WorldConfig, split: str) -> list[images.Emoji]:
        catalogue = images.emoji_catalogue()
        return [catalogue[i] for i in self.assignment(config).get(split, [])]


class Digits(Catalogue):
    name, modality, cost = "digits", "image", 0.0007

    def entries(self) -> int:
        return len(images.digits()[1])

    def row(
        self, config: WorldConfig, entry: int, rng: random.Random
    ) -> tuple[str, Image.Image, dict[str, Any]]:
        pixels, targets = images.digits()
        digit = int(targets[entry])
        labels = {"digit": digit, "index": entry}
        return images.digit_caption(digit, rng), images.render_digit(pixels[entry], config.image_size), labels


class Photos(Catalogue):
    name, modality, cost = "photos", "image", 0.017

    def entries(self) -> int:
        return len(images.PHOTOS)

    def row(
        self, config: WorldConfig, entry: int, rng: random.Random
    ) -> tuple[str, Image.Image, dict[str, Any]]:
        name = list(images.PHOTOS)[entry]
        return images.PHOTOS[name], images.render_photo(name, config.image_size), {"photo": name}


class Speech:
    name, modality, heldout_kind, cost = "espeak", "speech", "voice", 0.0035

    def sizes(self, config: WorldConfig) -> dict[str, int]:
        return _sampled_sizes(config.speech.counts, self.heldout_kind, self.name)

    def make(self, config: WorldConfig, split: str, start: int, count: int) -> list[ItemRow]:
        sampler = WorldSampler(config, split, shard_rng(config.seed, self.name, split, start))
        rows = []
        for index in range(start, start + count):
            sentence = text.spoken_sentence(sampler)
            delivery = sampler.delivery()
            clip = speech.synthesize(
                sentence, delivery["voice"], delivery["rate"], delivery["pitch"], config.sample_rate
            )
            labels = {
                **delivery,
                "voice_description": speech.VOICES[delivery["voice"]].description,
                "phonemes": clip.phonemes,
                "duration": round(clip.audio.duration, 4),
            }
            rows.append(
                ItemRow(f"espeak-{split}-{index:06d}", sentence, encode_audio(clip.audio), "flac", labels)
            )
        return rows


def _music_rows(config: WorldConfig, prefix: str, entries: list[tuple[int, dict[str, Any]]]) -> list[ItemRow]:
    """Render (index, labels) melodies in one FluidSynth call, captioned from their labels."""
    scores = [music.Score.from_labels(labels) for _, labels in entries]
    clips = music.render_scores(scores, config.sample_rate, config.music.seconds)
    rng = shard_rng(config.seed, prefix, "captions")
    return [
        ItemRow(f"{prefix}-{index:06d}", music.music_caption(labels, rng), encode_audio(clip), "flac", labels)
        for (index, labels), clip in zip(entries, clips, strict=True)
    ]


class Melodies:
    name, modality, heldout_kind, cost = "melody", "music", "melody", 0.011

    def sizes(self, config: WorldConfig) -> dict[str, int]:
        return _sampled_sizes(config.music.melodies, self.heldout_kind, self.name)

    def make(self, config: WorldConfig, split: str, start: int, count: int) -> list[ItemRow]:
        sampler = WorldSampler(config, split, shard_rng(config.seed, self.name, split, start))
        entries = [(index, sampler.melody()) for index in range(start, start + count)]
        return _music_rows(config, f"melody-{split}", entries)


class CorpusMusic:
    """Excerpts of music21 corpus pieces; a piece (hence all its excerpts) is in one split."""

    modality, heldout_kind = "music", "melody"

    def __init__(
        self,
        name: str,
        counts_field: str,
        catalogue: Callable[[], tuple[music.Piece, ...]],
        instruments: tuple[str, ...],
        tempo: tuple[int, int],
        cost: float,
    ) -> None:
        self.name, self.counts_field, self.catalogue = name, counts_field, catalogue
        self.instruments, self.tempo, self.cost = instruments, tempo, cost

    def _pieces_of(self, config: WorldConfig, split: str) -> list[int]:
        counts = getattr(config.music, self.counts_field)
        if sum(counts.values()) == 0:
            return []
        assignment = split_catalogue(len(self.catalogue()), counts, config.seed, self.name, self.heldout_kind)
        return assignment.get(split, [])

    def sizes(self, config: WorldConfig) -> dict[str, int]:
        splits = [*BASE_SPLITS, split_name("heldout", self.heldout_kind, self.name)]
        sizes = {
            split: len(self._pieces_of(config, split)) * config.music.excerpts_per_piece for split in splits
        }
        return {split: n for split, n in sizes.items() if n}

    def make(self, config: WorldConfig, split: str, start: int, count: int) -> list[ItemRow]:
        sampler = WorldSampler(config, split, shard_rng(config.seed, self.name, split, start))
        per_piece = config.music.excerpts_per_piece
        pieces = self._pieces_of(config, split)
        entries = []
        parsed: dict[int, Any] = {}
        for index in range(start, start + count):
            entry, excerpt = divmod(index, per_piece)
            piece = self.catalogue()[pieces[entry]]
            if entry not in parsed:
                try:
                    parsed[entry] = music.parse_piece(piece)
                except Exception as error:  # music21 raises many types on odd scores
                    log.warning("%s: skipped, music21 could not read it (%s)", piece.title, error)
                    parsed[entry] = None
            if parsed[entry] is None:
                continue
            parts, key_name, mode = parsed[entry]
            bpm = sampler.rng.randint(*self.tempo)
            instrument = self._instrument(sampler, mode)
            labels = music.corpus_excerpt(
                piece, parts, key_name, mode, excerpt, bpm, instrument, config.music.seconds
            )
            if labels is None:
                log.info("%s excerpt %d: skipped, too few notes", piece.title, excerpt)
                continue
            entries.append((index, labels))
        return _music_rows(config, f"{self.name}-{split}", entries)

    def _instrument(self, sampler: WorldSampler, mode: str) -> str:
        """An instrument whose pairing with `mode` is not held out (held-out splits hold
        out the piece itself, so any instrument will do there)."""
        choices = self.instruments
        if not sampler.split.startswith(HELDOUT_PREFIX):
            choices = tuple(i for i in choices if (i, mode) not in sampler.instrument_mode_pairs)
        return sampler.rng.choice(choices)


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Shapes(),
        Emoji(),
        Digits(),
        Photos(),
        Speech(),
        Melodies(),
        CorpusMusic(
            "chorale", "chorales", music.chorale_catalogue, music.ENSEMBLE_INSTRUMENTS, (56, 90), 0.08
        ),
        CorpusMusic("folk", "folk", music.folk_catalogue, music.MELODY_INSTRUMENTS, (80, 140), 0.035),
    )
}
