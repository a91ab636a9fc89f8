"""The instrument judge: trained on fresh FluidSynth renders, it names the instrument of other
renders and fails on corrupted clips; its probe round-trips through safetensors."""

from __future__ import annotations

import numpy as np
import pytest

from anyseq.judges.instrument import (
    InstrumentClassifier,
    InstrumentConfig,
    LinearProbe,
    instrument_features,
    train_instrument_classifier,
    training_renders,
)
from anyseq.media import Audio

INSTRUMENTS = ("piano", "flute", "trumpet", "cello")


@pytest.fixture(scope="module")
def classifier() -> InstrumentClassifier:
    config = InstrumentConfig(instruments=INSTRUMENTS, clips_per_instrument=5, seconds=2.0, seed=0)
    return train_instrument_classifier(config)


@pytest.mark.slow
def test_names_fresh_renders_and_fails_on_corrupted_clips(classifier):
    clips, names = training_renders(
        InstrumentConfig(instruments=INSTRUMENTS, clips_per_instrument=3, seconds=2.0, seed=1)
    )
    found = classifier.predict(clips)
    right = np.mean([f == n for f, n in zip(found, names, strict=True)])
    assert right >= 0.75
    rotated = names[3:] + names[:3]  # every clip labelled with another instrument
    assert np.mean([f == n for f, n in zip(found, rotated, strict=True)]) <= 0.25
    rng = np.random.default_rng(0)
    noise = [Audio((0.3 * rng.standard_normal(32000)).astype(np.float32), 16000) for _ in names]
    assert np.mean([f == n for f, n in zip(classifier.predict(noise), names, strict=True)]) <= 0.34


def test_save_load_round_trip(tmp_path):
    rate = 16000
    tones = {
        "flute": [np.sin(2 * np.pi * f * np.arange(rate) / rate) for f in (440, 550, 660)],
        "trumpet": [np.sign(np.sin(2 * np.pi * f * np.arange(rate) / rate)) for f in (440, 550, 660)],
    }
    clips = [Audio((0.5 * t).astype(np.float32), rate) for tone in tones.values() for t in tone]
    names = [name for name, tone in tones.items() for _ in tone]
    features = np.stack([instrument_features(c) for c in clips])
    assert features.shape == (6, 105)
    config = InstrumentConfig(instruments=tuple(tones), clips_per_instrument=3, seconds=1.0)
    classifier = InstrumentClassifier(LinearProbe.fit(features, names), config)
    assert classifier.predict(clips) == names  # a sine is told from a square wave
    loaded = InstrumentClassifier.load(classifier.save(tmp_path / "instrument"))
    assert loaded.instruments == ["flute", "trumpet"] and loaded.config == config
    assert loaded.predict(clips) == names


def test_linear_probe_with_two_classes_and_bad_input():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(-2, 1, (20, 3)), rng.normal(2, 1, (20, 3))])
    labels = ["low"] * 20 + ["high"] * 20
    probe = LinearProbe.fit(features, labels)
    assert probe.weights.shape == (2, 3)  # one row per class, even for two
    assert probe.predict(np.array([[-3.0, -3, -3], [3.0, 3, 3]])) == ["low", "high"]
    with pytest.raises(ValueError, match="at least 2 classes"):
        LinearProbe.fit(features, ["one"] * 40)
    with pytest.raises(ValueError, match="need 2 or more"):
        InstrumentConfig(instruments=("banjo",))
