"""An instrument classifier trained only on real FluidSynth renders: the judge of generated music.

AnyGPT (Zhan et al., ACL 2024) scores music with CLAP on MusicCaps. AnyWorld's music is
rendered from MIDI with General MIDI programs, so what plays in a generated clip can be
checked directly: `train_instrument_classifier` renders fresh melodies (and two-voice
harmonisations, as the chorales are polyphonic) on every instrument with FluidSynth,
computes timbre statistics (MFCCs, spectral shape, attack), and fits a `LinearProbe`
(standardisation + multinomial logistic regression). It never sees a codec or a model
output; its accuracy on the world's own clips is its ceiling.

`LinearProbe` is stored as arrays (safetensors) and JSON, never pickled.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import librosa
import numpy as np
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

from anyseq.io import atomic_directory, atomic_write_json
from anyseq.media import Audio, load_audio
from anyseq.world import music

SAMPLE_RATE = 16000
N_FFT, HOP = 1024, 256


def instrument_features(audio: Any, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Timbre statistics of the sounding frames, (110,) float32.

    Mean and std of 20 MFCCs and their deltas, of spectral centroid, bandwidth, flatness,
    roll-off and 7-band contrast, and of onset strength (attack), plus the share of frames
    that sound.
    """
    samples = load_audio(audio, sample_rate, max_seconds=60.0, min_seconds=0.1).samples
    spectrum = np.abs(librosa.stft(samples, n_fft=N_FFT, hop_length=HOP))  # (bins, T)
    power = spectrum**2
    mel = librosa.feature.melspectrogram(S=power, sr=sample_rate, n_mels=64)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20)  # (20, T)
    delta = librosa.feature.delta(mfcc, width=3)
    shape = np.concatenate(
        [
            librosa.feature.spectral_centroid(S=spectrum, sr=sample_rate) / sample_rate,
            librosa.feature.spectral_bandwidth(S=spectrum, sr=sample_rate) / sample_rate,
            librosa.feature.spectral_flatness(S=spectrum),
            librosa.feature.spectral_rolloff(S=spectrum, sr=sample_rate) / sample_rate,
            librosa.feature.spectral_contrast(S=spectrum, sr=sample_rate, fmin=100.0, n_bands=6),
        ]
    )  # (11, T)
    onset = librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=sample_rate)[None, :]  # (1, T)
    energy = power.sum(axis=0)
    sounding = energy > energy.max() * 1e-3  # silence carries no timbre
    if sounding.sum() < 3:
        sounding[:] = True
    frames = np.concatenate([mfcc, delta, shape, onset])[:, sounding]  # (52, T_sounding)
    stats = [frames.mean(axis=1), frames.std(axis=1), [sounding.mean()]]
    return np.concatenate(stats).astype(np.float32)


@dataclass
class LinearProbe:
    """Standardised features -> multinomial logistic regression over `classes`."""

    classes: list[str]
    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    weights: np.ndarray  # (C, D)
    bias: np.ndarray  # (C,)

    @classmethod
    def fit(cls, features: np.ndarray, labels: Sequence[str], regularization: float = 1.0) -> LinearProbe:
        """features (N, D), one label per row, at least 2 classes (deterministic)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        if len(features) != len(labels) or len(set(labels)) < 2:
            raise ValueError(
                f"need one label per row and at least 2 classes, got {len(labels)} labels for "
                f"{len(features)} rows and {len(set(labels))} classes"
            )
        scaler = StandardScaler().fit(features)
        model = LogisticRegression(C=regularization, max_iter=5000).fit(scaler.transform(features), labels)
        weights, bias = model.coef_, model.intercept_
        if len(model.classes_) == 2:  # scikit-learn keeps one row for two classes: class 1 vs class 0
            weights, bias = np.concatenate([-weights, weights]) / 2, np.concatenate([-bias, bias]) / 2
        return cls([str(c) for c in model.classes_], scaler.mean_, scaler.scale_, weights, bias)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """features (N, D) -> class scores (N, C)."""
        return ((features - self.mean) / self.scale) @ self.weights.T + self.bias

    def predict(self, features: np.ndarray) -> list[str]:
        return [self.classes[i] for i in self.scores(features).argmax(axis=1)]

    def save(self, directory: str | Path, kind: str, **config: Any) -> Path:
        arrays = {"mean": self.mean, "scale": self.scale, "weights": self.weights, "bias": self.bias}
        with atomic_directory(directory) as temp:
            save_file(
                {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items()},
                str(temp / "model.safetensors"),
            )
            atomic_write_json(temp / "config.json", {"kind": kind, "classes": self.classes, **config})
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path) -> tuple[LinearProbe, dict[str, Any]]:
        """The probe and the rest of its config.json."""
        config = json.loads((Path(directory) / "config.json").read_text())
        arrays = load_file(str(Path(directory) / "model.safetensors"))
        probe = cls(config.pop("classes"), arrays["mean"], arrays["scale"], arrays["weights"], arrays["bias"])
        return probe, config


@dataclass
class InstrumentConfig:
    instruments: tuple[str, ...] = tuple(music.INSTRUMENTS)  # classes, General MIDI names of `music`
    clips_per_instrument: int = 24
    harmony_fraction: float = 0.4  # clips with a second voice a third or sixth below
    seconds: float = 4.0
    sample_rate: int = SAMPLE_RATE
    regularization: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.instruments = tuple(self.instruments)
        unknown = sorted(set(self.instruments) - set(music.INSTRUMENTS))
        if unknown or len(self.instruments) < 2:
            raise ValueError(
                f"instruments {unknown or list(self.instruments)}: need 2 or more of {list(music.INSTRUMENTS)}"
            )
        if self.clips_per_instrument < 2:
            raise ValueError(f"clips_per_instrument={self.clips_per_instrument}: need at least 2")


@dataclass
class InstrumentClassifier:
    """`instrument_features` -> `LinearProbe` over instrument names."""

    probe: LinearProbe
    config: InstrumentConfig

    @property
    def instruments(self) -> list[str]:
        return self.probe.classes

    def predict(self, audios: Sequence[Any]) -> list[str]:
        rate = self.config.sample_rate
        return self.probe.predict(np.stack([instrument_features(a, rate) for a in audios]))

    def save(self, directory: str | Path) -> Path:
        return self.probe.save(directory, "instrument-classifier", **asdict(self.config))

    @classmethod
    def load(cls, directory: str | Path) -> InstrumentClassifier:
        probe, config = LinearProbe.load(directory)
        config.pop("kind")
        return cls(probe, InstrumentConfig(**config))


def _score(labels: dict[str, Any], rng: random.Random, harmony: bool) -> music.Score:
    """A melody's score; with `harmony`, a second voice a third or sixth below on the same instrument."""
    melody = music.Part(labels["program"], labels["notes"])
    if not harmony:
        return music.Score([melody])
    interval = rng.choice((3, 4, 8, 9))
    lower = [[pitch - interval, start, end, velocity] for pitch, start, end, velocity in labels["notes"]]
    return music.Score([melody, music.Part(labels["program"], lower)])


def training_renders(config: InstrumentConfig) -> tuple[list[Audio], list[str]]:
    """Fresh FluidSynth renders: random melodies (keys, modes, tempi, registers) per instrument."""
    rng = random.Random(f"instrument-judge/{config.seed}")
    scores, names = [], []
    for instrument in config.instruments:
        for _ in range(config.clips_per_instrument):
            labels = music.sample_melody(rng, frozenset(), False, config.seconds, instrument=instrument)
            scores.append(_score(labels, rng, rng.random() < config.harmony_fraction))
            names.append(instrument)
    return music.render_scores(scores, config.sample_rate, config.seconds), names


def train_instrument_classifier(config: InstrumentConfig | None = None) -> InstrumentClassifier:
    """Render the training clips and fit the classifier (deterministic for a seed)."""
    config = config or InstrumentConfig()
    audios, names = training_renders(config)
    features = np.stack(
        [
            instrument_features(a, config.sample_rate)
            for a in tqdm(audios, desc="instrument features", unit="clip", leave=False)
        ]
    )
    return InstrumentClassifier(LinearProbe.fit(features, names, config.regularization), config)
