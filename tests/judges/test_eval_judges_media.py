"""Each media judge the evaluation uses, on a few ground-truth and a few corrupted samples: it
must tell them apart. Scenes (pixel judge), speech (PocketSphinx with the grammar, the CTC
recognizer, the speaker classifier) and music (key/mode, tempo)."""

from __future__ import annotations

import random
from dataclasses import replace

import jiwer
import numpy as np
import pytest
import torch
from PIL import Image

from anyseq.evaluation.images import SCENE_ATTRIBUTES, scene_verdicts
from anyseq.judges.music import PITCH_CLASSES, KeyEstimate, compare_tempo, estimate_key, estimate_tempo
from anyseq.judges.speech import (
    GrammarRecognizer,
    RecognizerConfig,
    SpeakerClassifier,
    train_ctc_recognizer,
    word_error_rate,
)
from anyseq.media import Audio
from anyseq.world import images, music
from anyseq.world.speech import synthesize

SENTENCES = ["draw a red circle", "play it faster", "the melody is slow", "what colour is the star"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def corrupted(audio: Audio) -> Audio:
    """Reversed and buried in noise: the same spectrum, no words."""
    rng = np.random.default_rng(0)
    samples = audio.samples[::-1] + rng.normal(0, 0.05, audio.samples.shape)
    return Audio(samples.astype(np.float32), audio.sample_rate)


def test_scene_judge_passes_renders_and_fails_corrupted_ones():
    rng = random.Random(0)
    scenes = [images.sample_scene(rng, frozenset(), False) for _ in range(6)]
    for labels in scenes:
        assert scene_verdicts(images.render_shape_scene(labels, 64), labels) == [
            (a, True) for a in SCENE_ATTRIBUTES
        ]
        recoloured = {**labels, "objects": [{**o, "colour": "brown" if o["colour"] != "brown" else "red"}
                                            for o in labels["objects"]]}  # fmt: skip
        wrong = dict(scene_verdicts(images.render_shape_scene(recoloured, 64), labels))
        assert wrong["colour"] is False
        blank = Image.new("RGB", (64, 64), images.BACKGROUNDS[labels["background"]])
        assert dict(scene_verdicts(blank, labels))["count"] is False
    assert scene_verdicts(None, scenes[0]) == [(a, False) for a in SCENE_ATTRIBUTES]


@pytest.fixture(scope="module")
def clips() -> dict[str, list[Audio]]:
    voices = ("us-male", "gb-female", "caribbean-male")
    return {v: [synthesize(s, v, 170, 50).audio for s in SENTENCES] for v in voices}


def test_grammar_recognizer_hears_real_speech_not_noise(clips):
    judge = GrammarRecognizer([*SENTENCES, "play it slower", "draw a blue square", "the melody is fast"])
    real = [judge.transcribe(a) for a in clips["us-male"]]
    noisy = [judge.transcribe(corrupted(a)) for a in clips["us-male"]]
    assert word_error_rate(SENTENCES, real) <= 0.25 < 0.6 <= word_error_rate(SENTENCES, noisy)


def test_speaker_classifier_names_voices_and_not_swapped_ones(clips):
    voices = list(clips)
    judge = SpeakerClassifier.fit(
        [a for v in voices for a in clips[v][:3]], [v for v in voices for _ in range(3)]
    )
    held = [clips[v][3] for v in voices]  # a sentence the judge never heard
    assert judge.predict(held) == voices
    assert judge.predict([held[1], held[2], held[0]]) != voices


@pytest.mark.slow
def test_ctc_recognizer_trained_on_real_clips_tells_them_from_corrupted_ones(clips):
    config = replace(RecognizerConfig.preset("test"), steps=200, batch_size=8, channels=48, rnn_hidden=48,
                     learning_rate=3e-3)  # fmt: skip
    audios = [a for v in clips for a in clips[v]]
    recognizer = train_ctc_recognizer(audios, SENTENCES * len(clips), config)
    real = recognizer.transcribe_batch(clips["us-male"])
    noisy = recognizer.transcribe_batch([corrupted(a) for a in clips["us-male"]])
    # a few seconds of training spell most characters right (character error rate), noise none
    real_cer, noisy_cer = jiwer.cer(SENTENCES, real), jiwer.cer(SENTENCES, [n or "-" for n in noisy])
    assert real_cer <= 0.45 and noisy_cer >= real_cer + 0.3


@pytest.fixture(scope="module")
def melodies() -> list[dict]:
    rng = random.Random(3)
    asked = (
        ("moderate", "major"),
        ("fast", "minor"),
        ("moderate", "minor"),
        ("fast", "major"),
        ("slow", "major"),
    )
    return [
        music.sample_melody(rng, frozenset(), False, 4.0, instrument="piano", tempo_word=word, mode=mode)
        for word, mode in asked
    ]


@pytest.mark.slow
def test_key_and_tempo_judges_on_renders_and_corrupted_renders(melodies):
    """The key judge, anchored on the first note, names key and mode of the world's melodies (they
    begin on the tonic); the same clips claimed a tritone away are never in that key."""
    rate = 16000
    renders = music.render_scores([music.Score.from_labels(m) for m in melodies], rate, 4.0)
    tritone = [music.KEYS[(music.KEYS.index(m["key"]) + 6) % 12] for m in melodies]
    found = [estimate_key(a.samples, rate) for a in renders]

    def right(key: KeyEstimate, tonic: str, mode: str) -> bool:
        return PITCH_CLASSES.index(key.tonic) == music.KEYS.index(tonic) and key.mode == mode

    real = [right(k, m["key"], m["mode"]) for k, m in zip(found, melodies, strict=True)]
    wrong = [right(k, t, m["mode"]) for k, t, m in zip(found, tritone, melodies, strict=True)]
    assert sum(real) >= len(melodies) - 1 and not any(wrong), (real, found)

    def tempo_right(audio: Audio, bpm: float) -> bool:
        return compare_tempo(bpm, estimate_tempo(audio.samples, rate)).folded

    assert all(tempo_right(a, m["tempo"]) for a, m in zip(renders, melodies, strict=True))
    # the same clips claimed at 1.4 x their tempo: neither that nor its half or double
    assert not any(tempo_right(a, 1.4 * m["tempo"]) for a, m in zip(renders, melodies, strict=True))
