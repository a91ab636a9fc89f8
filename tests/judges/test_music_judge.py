"""The music judges on synthetic signals whose tempo, pitch and key are known exactly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from anyseq.judges import music as judge

RATE = 16000


def tone(midi: float, seconds: float, harmonics: int = 4) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    frequency = 440.0 * 2 ** ((midi - 69) / 12)
    return sum(np.sin(2 * np.pi * h * frequency * t) / h for h in range(1, harmonics + 1)).astype(np.float32)


def melody(
    pitches: list[int], note_seconds: float, shift: float = 0.0
) -> tuple[np.ndarray, list[list[float]]]:
    """Plucked notes back to back, and their AnyWorld-style labels [pitch, start, end, velocity]."""
    decay = np.exp(-3 * np.arange(int(note_seconds * RATE)) / RATE).astype(np.float32)
    audio = np.concatenate([tone(p + shift, note_seconds) * decay * 0.3 for p in pitches])
    notes = [[p, i * note_seconds, (i + 1) * note_seconds, 90] for i, p in enumerate(pitches)]
    return audio, notes


def clicks(bpm: float, seconds: float = 8.0) -> np.ndarray:
    """A metronome: 30 ms decaying 1 kHz blips on every beat."""
    audio = np.zeros(int(seconds * RATE), dtype=np.float32)
    blip = tone(83, 0.03) * np.exp(-np.arange(int(0.03 * RATE)) / 80)
    for start in np.arange(0, seconds - 0.05, 60 / bpm):
        audio[int(start * RATE) : int(start * RATE) + len(blip)] += blip
    return audio


@pytest.mark.parametrize("bpm", [90, 120])
def test_tempo_of_a_metronome_is_found_within_four_percent(bpm):
    estimate = judge.estimate_tempo(clicks(bpm), RATE)
    assert judge.compare_tempo(bpm, estimate).folded


@pytest.mark.parametrize("bpm", [62, 84, 131, 150])
def test_tempo_of_a_four_second_metronome_is_found_without_octave_error(bpm):
    estimate = judge.estimate_tempo(clicks(bpm, seconds=4.0), RATE)
    assert judge.compare_tempo(bpm, estimate).exact, estimate


def test_tempo_of_silence_is_zero_and_matches_nothing():
    estimate = judge.estimate_tempo(np.zeros(4 * RATE, dtype=np.float32), RATE)
    assert estimate == 0.0
    assert not judge.compare_tempo(100.0, estimate).folded


def test_tempo_of_a_clip_too_short_for_any_beat_is_zero():
    # the judge looks at lags within 3/4 of the clip; the fastest beat it knows (240 bpm) is 0.25 s
    assert judge.estimate_tempo(clicks(120, seconds=0.3), RATE) == 0.0
    assert judge.compare_tempo(120, judge.estimate_tempo(clicks(120, seconds=2.0), RATE)).exact


def test_compare_tempo_folds_octave_errors_and_reports_them():
    plain = judge.compare_tempo(100.0, 103.0)
    assert plain.exact and plain.folded and not plain.octave_error
    double = judge.compare_tempo(100.0, 201.0)
    assert not double.exact and double.folded and double.octave_error
    assert judge.compare_tempo(100.0, 50.5).octave_error
    wrong = judge.compare_tempo(100.0, 105.0)  # 5% off: neither
    assert not wrong.exact and not wrong.folded
    assert not judge.compare_tempo(100.0, 150.0).folded  # 3/2 is not an octave


def test_pitch_is_right_on_the_melody_wrong_a_tone_off_and_folded_an_octave_off():
    pitches = [60, 62, 64, 65, 67, 69, 71, 72]
    audio, notes = melody(pitches, 0.4)
    right = judge.track_pitch(audio, RATE, notes)
    assert right.voiced_frames == pytest.approx(3.2 * RATE / 256, abs=3)
    assert right.accuracy > 0.9
    shifted, _ = melody(pitches, 0.4, shift=2.0)
    assert judge.track_pitch(shifted, RATE, notes).accuracy < 0.1
    octave, _ = melody(pitches, 0.4, shift=12.0)
    track = judge.track_pitch(octave, RATE, notes)
    assert track.accuracy < 0.2 and track.octave_folded_accuracy > 0.9  # onsets blur a few frames
    assert judge.track_pitch(audio, RATE, []).accuracy == 0.0


def test_chroma_similarity_separates_harmony():
    c_major = tone(60, 2.0) + tone(64, 2.0) + tone(67, 2.0)
    f_sharp = tone(66, 2.0) + tone(70, 2.0) + tone(73, 2.0)
    assert judge.chroma_similarity(c_major, c_major, RATE) == pytest.approx(1.0, abs=1e-6)
    assert judge.chroma_similarity(c_major, f_sharp, RATE) < 0.5
    assert judge.chroma_similarity(np.zeros(RATE, np.float32), c_major, RATE) == 0.0  # silent reference


def test_stft_distance_is_zero_for_identical_and_grows_with_noise():
    audio, _ = melody([60, 64, 67], 0.5)
    rng = np.random.default_rng(0)
    assert judge.multi_resolution_stft_distance(audio, audio) == 0.0
    slightly = judge.multi_resolution_stft_distance(audio, audio + 0.001 * rng.standard_normal(len(audio)))
    badly = judge.multi_resolution_stft_distance(audio, audio + 0.1 * rng.standard_normal(len(audio)))
    assert 0.0 < slightly < badly


@pytest.mark.parametrize(
    ("pitches", "expected"),
    [
        ([60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60], ("C", "major")),
        ([57, 59, 60, 62, 64, 65, 68, 69, 64, 60, 57], ("A", "minor")),
    ],
)
def test_key_of_a_scale_with_its_tonic_stressed(pitches, expected):
    audio, _ = melody(pitches, 0.3)
    tonic = tone(pitches[0], 1.0) * 0.3  # end on a long tonic
    key = judge.estimate_key(np.concatenate([audio, tonic]), RATE)
    assert (key.tonic, key.mode) == expected


def test_key_of_a_reply_shorter_than_the_cqt_needs():
    """A model's clip can be half a second: the key is still read, without librosa's warning."""
    audio, _ = melody([62, 66, 69, 74], 0.15)  # D major arpeggio, 0.6 s
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        key = judge.estimate_key(audio, RATE)
    assert (key.tonic, key.mode) == ("D", "major")
