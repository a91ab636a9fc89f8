"""Music: FluidSynth renders whose duration, tempo (librosa beat tracking) and pitches agree
with their labels; corpus excerpts; attribute edits."""

from __future__ import annotations

import random

import numpy as np
import pytest

from anyseq.world import engines, music


def melodies(count: int, seconds: float, seed: int = 0, **fixed) -> list[dict]:
    rng = random.Random(seed)
    return [music.sample_melody(rng, frozenset(), False, seconds, **fixed) for _ in range(count)]


def render(labels: list[dict], seconds: float):
    return music.render_scores([music.Score.from_labels(x) for x in labels], 16000, seconds)


def test_melody_labels_are_consistent():
    for labels in melodies(30, 4.0):
        assert music.TEMPI[labels["tempo_word"]][0] <= labels["tempo"] <= music.TEMPI[labels["tempo_word"]][1]
        assert music.tempo_word(labels["tempo"]) == labels["tempo_word"]
        assert labels["program"] == music.INSTRUMENTS[labels["instrument"]]
        notes = labels["notes"]
        assert notes[0][1] == 0.0 and all(0 <= s < e <= 4.0 for _, s, e, _ in notes)
        # every note is in the key's scale
        tonic = music.KEYS.index(labels["key"])
        scale = {(tonic + step) % 12 for step in music.MODES[labels["mode"]]}
        assert {pitch % 12 for pitch, *_ in notes} <= scale
        # onsets fall on the beat grid of the labelled tempo
        beat = 60 / labels["tempo"]
        assert all(abs(s / beat * 2 - round(s / beat * 2)) < 1e-3 for _, s, _, _ in notes)


def test_clips_last_exactly_the_clip_length_and_sound_the_labelled_notes():
    import librosa

    labels = melodies(4, 3.0, seed=1)
    clips = render(labels, 3.0)
    assert [len(c.samples) for c in clips] == [48000] * 4
    matched = total = 0
    for clip, melody in zip(clips, labels, strict=True):
        assert np.abs(clip.samples).max() == pytest.approx(0.8, abs=1e-3)
        assert np.argmax(np.abs(clip.samples) > 0.05) / 16000 < 0.1  # the first note starts at 0 s
        for pitch, start, end, _ in melody["notes"]:
            if end - start < 0.15:
                continue
            note = clip.samples[int((start + 0.03) * 16000) : int((end - 0.02) * 16000)]
            f0 = np.median(librosa.yin(note, fmin=50, fmax=2000, sr=16000, frame_length=1024))
            semitones = 69 + 12 * np.log2(f0 / 440) - pitch
            matched += abs((semitones + 6) % 12 - 6) < 0.5  # right pitch class (octave errors folded)
            total += 1
    assert total >= 12 and matched >= 0.8 * total, f"{matched} of {total} notes at their labelled pitch"


def test_a_clip_rendered_in_a_batch_is_the_clip_rendered_alone():
    labels = melodies(3, 2.0, seed=2, instrument="piano")  # the longest release tail
    batch = render(labels, 2.0)
    assert np.array_equal(batch[0].samples, render(labels[:1], 2.0)[0].samples)
    for index in (1, 2):
        alone = render(labels[index : index + 1], 2.0)[0].samples
        # aligned to a few samples, and nothing of the previous clip rings into it
        lags = range(-32, 33)
        scores = [np.dot(np.roll(alone, lag), batch[index].samples) for lag in lags]
        best = lags[int(np.argmax(scores))]
        correlation = max(scores) / (np.linalg.norm(alone) * np.linalg.norm(batch[index].samples))
        assert abs(best) <= 16 and correlation > 0.95


@pytest.mark.slow
def test_tempo_of_rendered_melodies_measured_with_librosa():
    import librosa

    labels = melodies(8, 8.0, seed=3)
    hits = 0
    for clip, melody in zip(render(labels, 8.0), labels, strict=True):
        tempo = float(np.atleast_1d(librosa.beat.beat_track(y=clip.samples, sr=16000)[0])[0])
        # a beat tracker may lock on half or double the tempo: fold octave errors
        error = min(abs(tempo * factor - melody["tempo"]) / melody["tempo"] for factor in (0.5, 1, 2))
        hits += error < 0.06
    assert hits >= 7, f"{hits} of 8 tempi within 6%"


def test_edits_keep_the_melody_and_change_the_attribute():
    labels = melodies(1, 4.0, seed=4, instrument="violin", tempo_word="slow", key="C", mode="major")[0]
    other = music.edit_melody(labels, 4.0, instrument="cello")
    assert other["program"] == 42 and other["notes"] == labels["notes"]
    faster = music.edit_melody(labels, 4.0, tempo_word="fast")
    ratio = labels["tempo"] / faster["tempo"]
    assert faster["notes"][3][1] == pytest.approx(labels["notes"][3][1] * ratio, abs=1e-3)
    assert len(faster["notes"]) > len(labels["notes"])  # more of the melody fits in the clip
    moved = music.edit_melody(labels, 4.0, key="D")
    assert [p for p, *_ in moved["notes"]] == [p + 2 for p, *_ in labels["notes"]]


def test_sampling_respects_heldout_instrument_mode_pairs():
    held = frozenset({("flute", "minor")})
    rng = random.Random(5)
    seen = {
        (m["instrument"], m["mode"]) for m in (music.sample_melody(rng, held, False, 2.0) for _ in range(200))
    }
    assert ("flute", "minor") not in seen and ("flute", "major") in seen
    assert {(m["instrument"], m["mode"]) for m in [music.sample_melody(rng, held, True, 2.0)]} == set(held)
    with pytest.raises(ValueError, match="no \\(instrument, mode\\)"):
        music.sample_melody(rng, held, True, 2.0, instrument="piano")


def test_corpus_excerpts_read_chorales_and_folk_songs():
    chorales, folk = music.chorale_catalogue(), music.folk_catalogue()
    assert len(chorales) > 300 and len(folk) > 2000
    parts, key, mode = music.parse_piece(chorales[0])
    assert len(parts) == 4 and key in music.KEYS and mode in music.MODES
    labels = music.corpus_excerpt(chorales[0], parts, key, mode, 0, 72, "organ", 4.0)
    assert labels["source"] == "chorale" and len(labels["parts"]) == 4
    assert all(0 <= s < e <= 4.0 for part in labels["parts"] for _, s, e, _ in part)
    tune = next(p for p in folk if p.origin == "Chinese")
    parts, key, mode = music.parse_piece(tune)
    labels = music.corpus_excerpt(tune, parts, key, mode, 0, 100, "flute", 4.0)
    assert len(parts) == 1 and "notes" in labels
    assert music.music_caption(labels, random.Random(0)).endswith(
        f"Chinese folk song played on the flute in {key} {mode}"
    )


def test_missing_soundfont_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("ANYSEQ_SOUNDFONT", str(tmp_path / "none.sf2"))
    with pytest.raises(engines.EngineMissing, match="apt-get install -y fluid-soundfont-gm"):
        render(melodies(1, 2.0), 2.0)
