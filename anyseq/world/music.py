"""AnyWorld's music: generated melodies and music21 corpus excerpts, rendered by FluidSynth.

AnyGPT's music data are captioned clips (MusicCaps-style pairs in pretraining, MusicGen
renders in AnyInstruct), cut to 5 s (paper, sections 3.1 and 4). Here every clip is
written as MIDI and rendered with a General MIDI soundfont, so its attributes are known
exactly and kept as labels:

- generated melodies: tempo (bpm), key, mode, instrument (GM program), register, and
  the MIDI notes that sound in the clip; captions like "a slow cello melody in D minor";
- excerpts of Bach chorales (four voices) and Essen folk songs (one voice) from music21's
  offline corpus, played at a chosen tempo on a chosen instrument.

FluidSynth starts in about 0.3 s per call, so `render_scores` writes a
whole batch of clips into one MIDI file, one after another with a silent gap, renders it
in one call and cuts it; reverb and chorus are off and every channel is silenced at the
end of its clip, so nothing rings into the next one.
"""

from __future__ import annotations

import random
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from anyseq.media import Audio
from anyseq.world import engines
from anyseq.world.images import article

# General MIDI programs (0-based).
INSTRUMENTS: dict[str, int] = {
    "piano": 0,
    "marimba": 12,
    "organ": 19,
    "guitar": 24,
    "violin": 40,
    "cello": 42,
    "strings": 48,
    "choir": 52,
    "trumpet": 56,
    "oboe": 68,
    "clarinet": 71,
    "flute": 73,
}
MELODY_INSTRUMENTS: tuple[str, ...] = tuple(i for i in INSTRUMENTS if i not in ("strings", "choir"))
ENSEMBLE_INSTRUMENTS: tuple[str, ...] = ("organ", "strings", "choir", "piano")  # for four-voice chorales
INSTRUMENT_FAMILIES: dict[str, str] = {
    "piano": "a keyboard instrument",
    "marimba": "a percussion instrument",
    "organ": "a keyboard instrument",
    "guitar": "a string instrument",
    "violin": "a string instrument",
    "cello": "a string instrument",
    "strings": "a string section",
    "choir": "a group of voices",
    "trumpet": "a brass instrument",
    "oboe": "a woodwind instrument",
    "clarinet": "a woodwind instrument",
    "flute": "a woodwind instrument",
}
PLAYERS = {"strings": "a string ensemble", "choir": "a choir"}  # how a caption names who plays
KEYS: tuple[str, ...] = ("C", "D flat", "D", "E flat", "E", "F", "F sharp", "G", "A flat", "A", "B flat", "B")
MODES: dict[str, tuple[int, ...]] = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
TEMPI: dict[str, tuple[int, int]] = {"slow": (60, 84), "moderate": (88, 116), "fast": (120, 160)}  # bpm
REGISTERS: dict[str, int] = {"low": 48, "middle": 60, "high": 72}  # MIDI pitch of the octave's C
INSTRUMENT_REGISTERS: dict[str, tuple[str, ...]] = {
    "cello": ("low", "middle"),
    "guitar": ("low", "middle"),
    "trumpet": ("middle",),
    "violin": ("middle", "high"),
    "flute": ("middle", "high"),
    "oboe": ("middle", "high"),
}
MELODY_BEATS = 24  # a melody is composed in beats, longer than any clip, so tempo edits re-time it
GAP_SECONDS = 0.5  # silence between clips in a batch render (each clip's sound is cut at its end)
ALL_SOUND_OFF = 120  # MIDI controller: silence a channel at once, release tails included


def tempo_word(bpm: float) -> str:
    """The tempo class of a bpm value; the boundaries lie between the `TEMPI` ranges."""
    return "slow" if bpm < 86 else "moderate" if bpm < 118 else "fast"


def sample_melody(
    rng: random.Random,
    heldout_pairs: frozenset[tuple[str, str]],
    heldout: bool,
    seconds: float,
    **fixed: Any,
) -> dict[str, Any]:
    """Labels of a random melody. With `heldout`, its (instrument, mode) is a held-out pair;
    without, it is not. `fixed` pins attributes (instrument, mode, key, tempo_word, register)."""
    instruments = [fixed["instrument"]] if fixed.get("instrument") else MELODY_INSTRUMENTS
    modes = [fixed["mode"]] if fixed.get("mode") else list(MODES)
    pairs = [(i, m) for i in instruments for m in modes if ((i, m) in heldout_pairs) == heldout]
    if not pairs:
        raise ValueError(
            f"no (instrument, mode) among {instruments} x {modes} can be drawn with heldout={heldout}"
        )
    instrument, mode = rng.choice(pairs)
    word = fixed.get("tempo_word") or rng.choice(list(TEMPI))
    bpm = rng.randint(*TEMPI[word])
    key = fixed.get("key") or rng.choice(KEYS)
    register = fixed.get("register") or rng.choice(INSTRUMENT_REGISTERS.get(instrument, tuple(REGISTERS)))
    melody = compose(rng, key, mode, register)
    labels = {
        "tempo": bpm,
        "tempo_word": word,
        "key": key,
        "mode": mode,
        "instrument": instrument,
        "program": INSTRUMENTS[instrument],
        "register": register,
        "melody": melody,
    }
    return with_notes(labels, seconds)


def compose(rng: random.Random, key: str, mode: str, register: str) -> list[list[float]]:
    """A melody of `MELODY_BEATS` beats: [[pitch, start_beat, beats, velocity], ...].

    Every beat has an onset and the downbeat of each 4-beat bar is accented, so the pulse
    is audible (a beat tracker can measure the tempo); the walk moves by steps on the
    scale, with a few leaps, and ends on the tonic.
    """
    tonic = REGISTERS[register] + KEYS.index(key)
    scale = MODES[mode]
    degree = 0
    notes: list[list[float]] = []
    for beat in range(MELODY_BEATS):
        velocity = 112 if beat % 4 == 0 else 88
        lengths = [1.0] if rng.random() < 0.6 or beat == MELODY_BEATS - 1 else [0.5, 0.5]
        start = float(beat)
        for k, length in enumerate(lengths):
            if beat == MELODY_BEATS - 1:
                degree = 0
            elif notes:
                step = rng.choices((-2, -1, 1, 2, -4, 4), weights=(2, 4, 4, 2, 1, 1))[0]
                degree = min(max(degree + step, -3), 9)
            pitch = tonic + 12 * (degree // 7) + scale[degree % 7]
            notes.append([pitch, start, length, velocity if k == 0 else 70])
            start += length
    return notes


def with_notes(labels: dict[str, Any], seconds: float) -> dict[str, Any]:
    """`labels` with `notes` recomputed: the melody at its tempo, [[pitch, start_s, end_s, velocity]]
    for every note that starts within the clip, legato at 90% of its length."""
    beat = 60.0 / labels["tempo"]
    notes = []
    for pitch, start, length, velocity in labels["melody"]:
        onset = start * beat
        if onset >= seconds:
            break
        notes.append(
            [int(pitch), round(onset, 4), round(min(onset + 0.9 * length * beat, seconds), 4), int(velocity)]
        )
    return {**labels, "notes": notes}


def edit_melody(labels: dict[str, Any], seconds: float, **changes: Any) -> dict[str, Any]:
    """The same melody with attributes changed: instrument, tempo_word (re-timed), key (transposed)."""
    out = dict(labels)
    if "instrument" in changes:
        out["instrument"] = changes["instrument"]
        out["program"] = INSTRUMENTS[changes["instrument"]]
    if "tempo_word" in changes:
        low, high = TEMPI[changes["tempo_word"]]
        out["tempo_word"], out["tempo"] = changes["tempo_word"], (low + high) // 2
    if "key" in changes:
        shift = (KEYS.index(changes["key"]) - KEYS.index(labels["key"]) + 6) % 12 - 6  # nearest transposition
        out["key"] = changes["key"]
        out["melody"] = [[p + shift, s, b, v] for p, s, b, v in labels["melody"]]
    return with_notes(out, seconds)


def music_caption(labels: dict[str, Any], rng: random.Random) -> str:
    """A caption naming tempo, instrument, key and mode (and the source for corpus music)."""
    word, key = labels["tempo_word"], f"{labels['key']} {labels['mode']}"
    instrument = labels["instrument"]
    source = labels.get("source", "melody")
    if source == "chorale":
        player = PLAYERS.get(instrument, f"the {instrument}")
        return f"{article(word)} {word} Bach chorale played by {player} in {key}"
    if source == "folk":
        origin = labels["origin"]
        return f"{article(word)} {word} {origin} folk song played on the {instrument} in {key}"
    register = labels["register"]
    template = rng.randrange(3)
    if template == 0:
        return f"{article(word)} {word} {instrument} melody in {key}"
    if template == 1:
        return f"{article(word)} {word} melody in {key} played on the {instrument}"
    return f"{article(word)} {word} {register} {instrument} tune in {key}"


@dataclass
class Part:
    program: int
    notes: list[list[float]]  # [[pitch, start_s, end_s, velocity], ...]


@dataclass
class Score:
    """What one clip plays: up to four parts, each on its own MIDI channel."""

    parts: list[Part] = field(default_factory=list)

    @classmethod
    def from_labels(cls, labels: dict[str, Any]) -> Score:
        if "parts" in labels:
            return cls([Part(labels["program"], notes) for notes in labels["parts"]])
        return cls([Part(labels["program"], labels["notes"])])


TICKS_PER_SECOND = 960  # 480 ticks per beat at the MIDI default of 120 bpm


def _midi_file(scores: list[Score], slot: float, seconds: float):
    """One MIDI file playing `scores` one after another, clip i from i * slot to i * slot + seconds."""
    import mido

    events: list[tuple[int, int, mido.Message]] = []  # (tick, order at that tick, message)
    for index, score in enumerate(scores):
        if len(score.parts) > 9:
            raise ValueError(f"clip {index}: {len(score.parts)} parts; at most 9 MIDI channels are used")
        base = index * slot
        for channel, part in enumerate(score.parts):
            change = mido.Message("program_change", channel=channel, program=part.program)
            events.append((round(base * TICKS_PER_SECOND), 0, change))
            silence = mido.Message("control_change", channel=channel, control=ALL_SOUND_OFF, value=0)
            events.append((round((base + seconds) * TICKS_PER_SECOND), 3, silence))
            for pitch, start, end, velocity in part.notes:
                on, off = round((base + start) * TICKS_PER_SECOND), round((base + end) * TICKS_PER_SECOND)
                note = {"channel": channel, "note": int(pitch)}
                events.append((on, 2, mido.Message("note_on", velocity=int(velocity), **note)))
                events.append((max(off, on + 1), 1, mido.Message("note_off", velocity=0, **note)))
    events.sort(key=lambda event: (event[0], event[1]))
    track = mido.MidiTrack()
    now = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    return midi


def render_scores(scores: list[Score], sample_rate: int = 16000, seconds: float = 4.0) -> list[Audio]:
    """Render clips of exactly `seconds` with FluidSynth in one call; each is peak-normalised to 0.8.

    A clip sounds the same wherever it is in the batch: every channel is silenced at the
    end of its clip, so no release tail reaches the next one."""
    if not scores:
        return []
    program, font = engines.fluidsynth(), engines.soundfont()
    slot = seconds + GAP_SECONDS
    with tempfile.TemporaryDirectory(prefix="anyseq-music-") as temp:
        midi_path, wav_path = Path(temp) / "batch.mid", Path(temp) / "batch.wav"
        _midi_file(scores, slot, seconds).save(midi_path)
        # reverb and chorus off; load only the samples the clips play (the same audio, 3x faster)
        command = [program, "-ni", "-q", "-R", "0", "-C", "0", "-o", "synth.dynamic-sample-loading=1"]
        command += ["-F", str(wav_path), "-r", str(sample_rate)]
        result = subprocess.run([*command, str(font), str(midi_path)], capture_output=True, text=True)
        if result.returncode != 0 or not wav_path.is_file():
            raise RuntimeError(
                f"fluidsynth failed on {len(scores)} clips ({result.returncode}): {result.stderr[-500:]}"
            )
        samples, rate = soundfile.read(wav_path, dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise RuntimeError(f"fluidsynth wrote {rate} Hz, asked for {sample_rate} Hz")
    mono = samples.mean(axis=1)  # (N,)
    length = round(seconds * sample_rate)
    clips = []
    for index in range(len(scores)):
        start = round(index * slot * sample_rate)
        clip = np.zeros(length, dtype=np.float32)
        piece = mono[start : start + length]
        clip[: len(piece)] = piece
        peak = float(np.abs(clip).max())
        if peak > 1e-4:
            clip *= 0.8 / peak
        clips.append(Audio(samples=clip, sample_rate=sample_rate))
    return clips


# music21's corpus: Bach chorales and Essen folk songs, read offline.
FOLK_FILES: dict[str, str] = {
    "altdeu10": "German",
    "altdeu20": "German",
    "erk10": "German",
    "boehme10": "German",
    "kinder0": "German",
    "han1": "Chinese",
    "han2": "Chinese",
    "irl": "Irish",
}


@dataclass(frozen=True)
class Piece:
    """A corpus piece: a chorale by corpus name, or one tune (by X: number) of a folk abc file."""

    source: str  # "chorale" | "folk"
    name: str  # "bach/bwv269" | "essenFolksong/han1"
    number: int | None = None
    origin: str | None = None

    @property
    def title(self) -> str:
        return self.name.split("/")[-1] + (f"#{self.number}" if self.number is not None else "")


@cache
def chorale_catalogue() -> tuple[Piece, ...]:
    from music21 import corpus

    return tuple(Piece("chorale", name) for name in corpus.chorales.Iterator(returnType="filename"))


@cache
def folk_catalogue() -> tuple[Piece, ...]:
    from music21 import corpus

    pieces = []
    for stem, origin in FOLK_FILES.items():
        text = Path(corpus.getWork(f"essenFolksong/{stem}")).read_text(encoding="utf-8")
        for number in re.findall(r"(?m)^X:\s*(\d+)", text):
            pieces.append(Piece("folk", f"essenFolksong/{stem}", int(number), origin))
    return tuple(pieces)


@cache
def _abc_tunes(name: str) -> dict[int, str]:
    from music21 import corpus

    text = Path(corpus.getWork(name)).read_text(encoding="utf-8")
    tunes = re.split(r"(?m)^(?=X:)", text)
    return {int(m.group(1)): tune for tune in tunes if (m := re.match(r"X:\s*(\d+)", tune))}


def parse_piece(piece: Piece) -> tuple[list[list[list[float]]], str, str]:
    """A piece's parts (a chorale's first four, a folk song's first) as notes in quarter lengths [[pitch, start_q, length_q], ...] (ties joined),
    and its key (`KEYS` name) and mode from the score's key signature."""
    from music21 import converter, corpus, key

    if piece.source == "chorale":
        score = corpus.parse(piece.name, forceSource=True)
    else:
        score = converter.parseData(_abc_tunes(piece.name)[piece.number], format="abc")
    score = score.stripTies()
    signatures = list(score.flatten().getElementsByClass(key.KeySignature))
    if not signatures:
        raise ValueError(f"{piece.title}: no key signature")
    found = signatures[0] if isinstance(signatures[0], key.Key) else signatures[0].asKey("major")
    parts = score.parts if score.parts else [score]
    out = []
    for part in parts:
        notes = [
            [p.midi, float(n.offset), float(n.quarterLength)]
            for n in part.flatten().notes
            for p in n.pitches
            if n.quarterLength > 0
        ]
        if notes:
            out.append(notes)
    if not out:
        raise ValueError(f"{piece.title}: no notes")
    mode = found.mode if found.mode in MODES else "major"
    # a chorale is its four voices (some scores add instrumental parts); a folk song, its tune
    return out[: 4 if piece.source == "chorale" else 1], KEYS[found.tonic.pitchClass], mode


def corpus_excerpt(
    piece: Piece,
    parts: list[list[list[float]]],
    key_name: str,
    mode: str,
    excerpt: int,
    bpm: int,
    instrument: str,
    seconds: float,
) -> dict[str, Any] | None:
    """Labels of the `excerpt`-th window of `seconds` at `bpm`, or None when it holds too few notes."""
    window = seconds * bpm / 60  # in quarters
    start = excerpt * window
    beat = 60.0 / bpm
    clipped = []
    for notes in parts:
        part = [
            [int(p), round((s - start) * beat, 4), round(min(s - start + 0.95 * q, window) * beat, 4), 90]
            for p, s, q in notes
            if start <= s < start + window
        ]
        clipped.append(part)
    if sum(len(part) for part in clipped) < 2 * len(clipped):
        return None
    labels: dict[str, Any] = {
        "tempo": bpm,
        "tempo_word": tempo_word(bpm),
        "key": key_name,
        "mode": mode,
        "instrument": instrument,
        "program": INSTRUMENTS[instrument],
        "source": piece.source,
        "title": piece.title,
        "start_quarter": round(start, 4),
    }
    if piece.origin is not None:
        labels["origin"] = piece.origin
    if len(clipped) == 1:
        labels["notes"] = clipped[0]
    else:
        labels["parts"] = clipped
    return labels
