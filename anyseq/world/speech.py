"""AnyWorld's speech: espeak-ng in many English voices, with exact transcripts and phonemes.

AnyGPT's speech data are read speech with transcripts (LibriSpeech-style pairs in
pretraining; 39 Azure TTS voices in AnyInstruct) at 16 kHz (paper, sections 3.1 and 4).
Here espeak-ng speaks sentences from the world's grammar (`sentences.py`) in
`VOICES` (accents and variants) at varied rate and pitch, so every clip has a speaker
label and an exact transcript, and espeak-ng's own phoneme string, which the speech
tokenizer uses as CTC supervision for its content codebook.
"""

from __future__ import annotations

import io
import random
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import soundfile

from anyseq.media import Audio, load_audio
from anyseq.world import engines


@dataclass(frozen=True)
class Voice:
    espeak: str  # espeak-ng voice, optionally with a variant: "en-gb+f4"
    description: str  # how a reply names the speaker: "a British woman"


VOICES: dict[str, Voice] = {
    "us-male": Voice("en-us", "an American man"),
    "us-female": Voice("en-us+f3", "an American woman"),
    "gb-male": Voice("en-gb", "a British man"),
    "gb-female": Voice("en-gb+f4", "a British woman"),
    "rp-male": Voice("en-gb-x-rp+m3", "an English man"),
    "nyc-male": Voice("en-us-nyc+m7", "a man from New York"),
    "scottish-male": Voice("en-gb-scotland", "a Scottish man"),
    "scottish-female": Voice("en-gb-scotland+f2", "a Scottish woman"),
    "caribbean-male": Voice("en-029", "a Caribbean man"),
    "caribbean-female": Voice("en-029+f5", "a Caribbean woman"),
    "lancaster-female": Voice("en-gb-x-gbclan+f1", "a woman from Lancaster"),
    "midlands-male": Voice("en-gb-x-gbcwmd+m2", "a man from the West Midlands"),
}
ESPEAK_RATE = 22050  # espeak-ng's native output rate
DEEPER = 25  # pitch steps a "deeper voice" drops


def espeak_voice(voice: str) -> str:
    """A `VOICES` name or a raw espeak-ng voice id -> the espeak-ng voice id."""
    return VOICES[voice].espeak if voice in VOICES else voice


def deeper(pitch: int) -> int:
    return max(0, pitch - DEEPER)


@dataclass
class SpeechClip:
    audio: Audio
    phonemes: str  # espeak-ng's phoneme mnemonics for the text, words separated by spaces


def _espeak(arguments: list[str], text: str) -> subprocess.CompletedProcess:
    if not text.strip():
        raise ValueError("cannot speak an empty text")
    command = [engines.espeak(), *arguments, "--stdin"]
    result = subprocess.run(command, input=text, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"espeak-ng {' '.join(arguments)} failed on {text!r}: {result.stderr.strip()}")
    return result


def _join_lines(output: str) -> str:
    return " ".join(line.strip() for line in output.splitlines() if line.strip())


def phonemes(text: str, voice: str = "us-male") -> str:
    """espeak-ng's phonemes for `text` (`espeak-ng -q -x`), e.g. "dr'O: a# r'Ed s'3:k@L"."""
    return _join_lines(_espeak(["-q", "-x", "-v", espeak_voice(voice)], text).stdout)


def synthesize(text: str, voice: str, rate: int = 175, pitch: int = 50, sample_rate: int = 16000) -> SpeechClip:
    """Speak `text` in `voice` (a `VOICES` name or espeak-ng id) at `rate` words per minute
    and `pitch` (0-99): mono audio at `sample_rate`, with the phonemes from the same call."""
    if not 80 <= rate <= 450:
        raise ValueError(f"rate {rate} words per minute is outside espeak-ng's range 80..450")
    if not 0 <= pitch <= 99:
        raise ValueError(f"pitch {pitch} is outside espeak-ng's range 0..99")
    with tempfile.TemporaryDirectory(prefix="anyseq-speech-") as temp:
        wav = Path(temp) / "clip.wav"
        arguments = ["-x", "-z", "-v", espeak_voice(voice), "-s", str(rate), "-p", str(pitch), "-w", str(wav)]
        result = _espeak(arguments, text)
        data = wav.read_bytes()
    samples, rate_read = soundfile.read(io.BytesIO(data), dtype="float32")
    return SpeechClip(audio=load_audio(Audio(samples, rate_read), sample_rate), phonemes=_join_lines(result.stdout))


def sample_delivery(
    rng: random.Random, voices: tuple[str, ...], rate: tuple[int, int], pitch: tuple[int, int]
) -> dict[str, int | str]:
    """A speaker and the way they speak: {"voice", "rate", "pitch"}."""
    return {"voice": rng.choice(voices), "rate": rng.randint(*rate), "pitch": rng.randint(*pitch)}
