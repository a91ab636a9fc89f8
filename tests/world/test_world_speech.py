"""Speech: espeak-ng clips at 16 kHz whose duration, pitch and phonemes agree with their labels."""

from __future__ import annotations

import random
import subprocess

import numpy as np
import pytest
import soundfile

from anyseq.world import speech, text
from anyseq.world.config import WorldConfig
from anyseq.world.engines import EngineMissing
from anyseq.world.sampler import WorldSampler


def median_f0(samples: np.ndarray, rate: int) -> float:
    """Median fundamental frequency of the voiced frames, by autocorrelation (60-400 Hz)."""
    frame, hop = 640, 320
    lags = np.arange(rate // 400, rate // 60)
    estimates = []
    for start in range(0, len(samples) - frame, hop):
        window = samples[start : start + frame]
        if np.sqrt((window**2).mean()) < 0.02:
            continue
        corr = np.array([np.dot(window[:-lag], window[lag:]) for lag in lags])
        if corr.max() > 0.3 * np.dot(window, window):
            estimates.append(rate / lags[corr.argmax()])
    return float(np.median(estimates))


def test_clip_is_16khz_mono_and_its_duration_is_its_samples():
    clip = speech.synthesize("the circle is red", "gb-female", rate=175, pitch=50)
    audio = clip.audio
    assert audio.sample_rate == 16000 and audio.samples.ndim == 1 and audio.samples.dtype == np.float32
    assert audio.duration == len(audio.samples) / 16000
    assert 0.6 < audio.duration < 2.5
    # a slower rate makes the same text longer, in proportion
    slow = speech.synthesize("the circle is red", "gb-female", rate=100, pitch=50).audio
    assert 1.4 < slow.duration / audio.duration < 2.2


def espeak_cli_phonemes(text: str, voice: str) -> str:
    result = subprocess.run(
        ["espeak-ng", "-q", "-x", "-v", voice, text], capture_output=True, text=True, check=True
    )
    return " ".join(line.strip() for line in result.stdout.splitlines() if line.strip())


def test_phonemes_are_what_the_espeak_ng_command_prints():
    clip = speech.synthesize("draw a red circle", "us-male", rate=170, pitch=40)
    assert clip.phonemes == speech.phonemes("draw a red circle", "us-male") == "dr'O: a# r'Ed s'3:k@L"
    # raw espeak-ng ids work too, chosen as `espeak-ng -v` chooses them (by name, else by language)
    assert speech.phonemes("draw a red circle", "en-us") == clip.phonemes
    assert speech.phonemes("draw a red circle", "en-gb") == espeak_cli_phonemes("draw a red circle", "en-gb")
    for voice in ("gb-male", "scottish-female", "caribbean-male"):
        for sentence in ("what colour is the square", "It is in E flat major, about 90 beats per minute."):
            assert speech.phonemes(sentence, voice) == espeak_cli_phonemes(
                sentence, speech.espeak_voice(voice)
            )


def test_a_call_speaks_exactly_as_the_espeak_ng_command(tmp_path):
    arguments = ("the square is blue", "caribbean-female", 190, 35)
    first = speech.synthesize(*arguments, sample_rate=22050).audio.samples  # espeak-ng's own rate
    speech.synthesize("what colour is the star", "us-male", 150, 70)
    assert np.array_equal(speech.synthesize(*arguments, sample_rate=22050).audio.samples, first)
    wav = tmp_path / "clip.wav"
    command = ["espeak-ng", "-z", "-v", "en-029+f5", "-s", "190", "-p", "35", "-w", str(wav), arguments[0]]
    subprocess.run(command, check=True)
    assert np.array_equal(soundfile.read(wav, dtype="float32")[0], first)


def test_a_session_is_reproducible_from_its_start():
    calls = [
        ("the square is blue", "caribbean-female", 190, 35),
        ("what colour is the star", "us-male", 150, 70),
    ]
    runs = []
    for _ in range(2):
        with speech.session():
            runs.append([speech.synthesize(*call).audio.samples for call in calls * 2])
    assert all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))
    # the engine keeps state between clips of a session (its pitch flutter runs on): not a pure function
    assert not np.array_equal(runs[0][0], runs[0][2])


def test_pitch_label_moves_the_fundamental_frequency():
    low = speech.synthesize("how many sides does a square have", "us-male", pitch=10).audio
    high = speech.synthesize("how many sides does a square have", "us-male", pitch=90).audio
    assert median_f0(high.samples, 16000) > 1.3 * median_f0(low.samples, 16000)
    assert speech.deeper(50) == 25 and speech.deeper(10) == 0


def test_every_voice_speaks_and_voices_differ():
    assert len(speech.VOICES) >= 8
    clips = {name: speech.synthesize("hello there", name).audio.samples for name in speech.VOICES}
    assert all(len(c) > 4000 for c in clips.values())
    signatures = {(len(c), round(float(np.abs(c).mean()), 4)) for c in clips.values()}
    assert len(signatures) == len(clips)


def test_bad_parameters_and_missing_engine_give_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="rate 20 words per minute is outside espeak-ng's range 80..450"):
        speech.synthesize("hi", "us-male", rate=20)
    with pytest.raises(ValueError, match="empty"):
        speech.phonemes("  ")
    with pytest.raises(ValueError, match="espeak-ng has no voice 'zzz'"):
        speech.synthesize("hi", "zzz")
    speech._library.cache_clear()
    speech._phonemizer.cache_clear()
    monkeypatch.setattr(speech.ctypes.util, "find_library", lambda name: "libespeak-ng-missing.so")
    with pytest.raises(EngineMissing, match=r"libespeak-ng not found.*apt-get install -y espeak-ng"):
        speech.synthesize("hi", "us-male")
    monkeypatch.undo()
    assert speech.synthesize("hi", "us-male").audio.duration > 0.1


def test_spoken_sentences_are_short_and_plain():
    sampler = WorldSampler(WorldConfig.from_preset("micro"), "train", random.Random(0))
    sentences = [text.spoken_sentence(sampler) for _ in range(200)]
    assert len(set(sentences)) > 100
    for sentence in sentences:
        assert 2 <= len(sentence.split()) <= 9 and sentence[:1].islower()
        assert not any(mark in sentence for mark in ".,?!")


def test_speakers_are_dealt_so_a_small_split_hears_every_voice():
    config = WorldConfig.from_preset("micro")
    sampler = WorldSampler(config, "train", random.Random(0))
    seen = [sampler.delivery()["voice"] for _ in range(2 * len(sampler.voices))]
    assert set(seen) == set(sampler.voices) and not set(seen) & set(config.heldout.voices)
    assert sorted(seen[: len(sampler.voices)]) == sorted(sampler.voices)  # each once per round
    held = WorldSampler(config, "heldout_voice", random.Random(0))
    assert {held.delivery()["voice"] for _ in range(4)} == set(config.heldout.voices)
