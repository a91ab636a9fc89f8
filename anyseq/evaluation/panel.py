"""The panel of independent judges an evaluation needs, built on first use and cached on disk.

Every judge is made from real media only, never from a model's output (DESIGN.md
section 9):

- `grammar`: PocketSphinx restricted to the world's spoken sentences (every speech item
  and every spoken dialogue turn of the data whose words its dictionary knows), with
  dither (`anyseq.judges.speech.GrammarRecognizer`);
- `ctc`: the small CTC recognizer, trained on the data's real train-split clips;
- `speaker`: the MFCC speaker classifier, trained on fresh espeak-ng clips of every voice
  of the world (seen and held-out), so it can name the voice of any split;
- `instrument`: the instrument classifier, trained on fresh FluidSynth renders;
- `emoji`: the gallery of every emoji the data shows, in the renderings that span the world's
  variation (`EMOJI_GALLERY_VARIATIONS`), for nearest-neighbour retrieval.

Trained judges are saved (safetensors + JSON) under `cache_dir/<judge>-<key>`, the key
hashing the judge's settings and the data's manifest, so a second evaluation of the same
data loads them.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock

from anyseq.evaluation.config import EvalConfig
from anyseq.judges.emoji import EmojiGallery
from anyseq.judges.instrument import InstrumentClassifier, InstrumentConfig, train_instrument_classifier
from anyseq.judges.speech import (
    CTCRecognizer,
    GrammarRecognizer,
    RecognizerConfig,
    SpeakerClassifier,
    _dictionary_words,
    normalize_text,
    train_ctc_recognizer,
)
from anyseq.world import speech
from anyseq.world.config import SpeechConfig
from anyseq.world.dataset import iter_items, read_manifest
from anyseq.world.images import EMOJI_GALLERY_VARIATIONS, render_emoji
from anyseq.world.store import read_shard, shard_paths

Judge = TypeVar("Judge")
SPEAKER_PITCH = (5, 70)  # espeak-ng pitch range of the speaker judge's clips: the world's, and deeper


class JudgeUnavailable(RuntimeError):
    """A judge cannot be built from this data (e.g. no training clips); its tasks are skipped."""


class JudgePanel:
    def __init__(self, data_dir: str | Path, cache_dir: str | Path, config: EvalConfig) -> None:
        self.data_dir = Path(data_dir)
        self.cache_dir = Path(cache_dir)
        self.config = config
        self.manifest = read_manifest(self.data_dir)
        self.sample_rate = int(self.manifest["sample_rate"])
        self.fingerprint = hashlib.sha256(json.dumps(self.manifest, sort_keys=True).encode()).hexdigest()

    def _cached(
        self,
        name: str,
        settings: dict[str, Any],
        build: Callable[[], Judge],
        load: Callable[[Path], Judge],
    ) -> Judge:
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        path = self.cache_dir / f"{name}-{key}"
        if (path / "config.json").is_file():
            return load(path)
        # Processes evaluating side by side (`EvalConfig.workers`) build a judge once: the others wait.
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(self.cache_dir / f"{name}-{key}.lock"):
            if (path / "config.json").is_file():
                return load(path)
            judge = build()
            judge.save(path)
        return judge

    def speech_texts(self) -> list[str]:
        """Every speech item's transcript, over all splits (the world's spoken sentences)."""
        root = self.data_dir / "items" / "speech"
        return [
            row["text"]
            for split_dir in sorted(p for p in root.glob("*") if p.is_dir())
            for shard in shard_paths(split_dir)
            for row in read_shard(shard, ["text"])
        ]

    def dialogue_speech_texts(self) -> list[str]:
        """The words of every spoken turn (and voice prompt) of the dialogues, over all splits."""
        return [
            labels["text"]
            for shard in sorted((self.data_dir / "instruct").glob("*/*.parquet"))
            for row in read_shard(shard, ["media_labels"])
            for labels in map(json.loads, row["media_labels"])
            if labels.get("kind") == "speech"
        ]

    @cached_property
    def grammar(self) -> GrammarRecognizer:
        known = _dictionary_words()
        sentences = [
            s
            for s in {*self.speech_texts(), *self.dialogue_speech_texts()}
            if all(w in known for w in normalize_text(s).split())  # "60" and "emoji" are not in it
        ]
        if not sentences:
            raise JudgeUnavailable(f"{self.data_dir}: no speech to build the recognizer's grammar from")
        return GrammarRecognizer(sorted(sentences))

    @cached_property
    def ctc(self) -> CTCRecognizer:
        recognizer = RecognizerConfig.preset(self.config.recognizer_preset)
        settings = {"data": self.fingerprint, "recognizer": asdict(recognizer)}

        def build() -> CTCRecognizer:
            items = list(iter_items(self.data_dir, "speech", "train"))
            if not items:
                raise JudgeUnavailable(
                    f"{self.data_dir}: no train-split speech to train the CTC recognizer on"
                )
            return train_ctc_recognizer(
                [item.media for item in items],
                [item.text for item in items],
                recognizer,
                log_dir=self.cache_dir / "logs" / "ctc",
            )

        return self._cached("ctc", settings, build, CTCRecognizer.load)

    @cached_property
    def speaker(self) -> SpeakerClassifier:
        clips = self.config.speaker_clips_per_voice
        settings = {
            "voices": sorted(speech.VOICES),
            "clips": clips,
            "pitch": SPEAKER_PITCH,
            "seed": self.config.seed,
        }

        def build() -> SpeakerClassifier:
            sentences = sorted(set(self.speech_texts()))
            if not sentences:
                raise JudgeUnavailable(f"{self.data_dir}: no speech texts for the speaker judge to say")
            rng = random.Random(f"speaker-judge/{self.config.seed}")
            audios, voices = [], []
            for voice in sorted(speech.VOICES):
                for _ in range(clips):
                    rate, pitch = rng.randint(*SpeechConfig().rate), rng.randint(*SPEAKER_PITCH)
                    clip = speech.synthesize(rng.choice(sentences), voice, rate, pitch, self.sample_rate)
                    audios.append(clip.audio)
                    voices.append(voice)
            return SpeakerClassifier.fit(audios, voices)

        return self._cached("speaker", settings, build, SpeakerClassifier.load)

    @cached_property
    def instrument(self) -> InstrumentClassifier:
        config = InstrumentConfig(
            clips_per_instrument=self.config.instrument_clips,
            seconds=float(self.manifest.get("music_seconds", 4.0)),
            sample_rate=self.sample_rate,
            seed=self.config.seed,
        )
        settings = {"instrument": asdict(config)}
        return self._cached(
            "instrument", settings, lambda: train_instrument_classifier(config), InstrumentClassifier.load
        )

    @cached_property
    def emoji(self) -> EmojiGallery:
        def build() -> EmojiGallery:
            chars: dict[str, str] = {}  # name -> character, of every emoji the data shows
            for shard in sorted((self.data_dir / "items" / "image").glob("*/emoji-*.parquet")):
                for row in read_shard(shard, ["labels"]):
                    labels = json.loads(row["labels"])
                    chars.setdefault(labels["name"], labels["char"])
            if not chars:
                raise JudgeUnavailable(f"{self.data_dir}: no emoji items to build the retrieval gallery from")
            size = int(self.manifest["image_size"])
            pictures = [render_emoji(c, size, **v) for c in chars.values() for v in EMOJI_GALLERY_VARIATIONS]
            names = [name for name in chars for _ in EMOJI_GALLERY_VARIATIONS]
            return EmojiGallery.build(pictures, names)

        settings = {"data": self.fingerprint, "renderings": EMOJI_GALLERY_VARIATIONS}
        return self._cached("emoji", settings, build, EmojiGallery.load)
