"""AnyWorld's speech: espeak-ng in many English voices, with exact transcripts and phonemes.

AnyGPT's speech data are read speech with transcripts (LibriSpeech-style pairs in
pretraining; 39 Azure TTS voices in AnyInstruct) at 16 kHz (paper, sections 3.1 and 4).
Here espeak-ng speaks sentences from the world's grammar (`text.py`) in `VOICES`
(accents and variants) at varied rate and pitch, so every clip has a speaker label, an
exact transcript, and espeak-ng's phoneme string, which the speech tokenizer uses as
CTC supervision for its content codebook.

espeak-ng runs in-process through its C library (libespeak-ng, installed with the
espeak-ng package). A call gives exactly the samples of `espeak-ng -z` (resampled) and
costs about 7 ms of CPU instead of 17 ms for a new process; inside a `session()` a clip
costs about 2.5 ms, and thousands are made per build. `phonemes` gives exactly what
`espeak-ng -q -x -v VOICE` prints, one clause after another.
"""

from __future__ import annotations

import _ctypes
import contextlib
import ctypes
import ctypes.util
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np

from anyseq.media import Audio, load_audio
from anyseq.world.engines import EngineMissing


@dataclass(frozen=True)
class Voice:
    espeak: str  # espeak-ng voice, optionally with a variant: "en-us+f3"
    description: str  # how a reply names the speaker: "a British woman"


VOICES: dict[str, Voice] = {
    "us-male": Voice("en-us", "an American man"),
    "us-female": Voice("en-us+f3", "an American woman"),
    "gb-male": Voice("en", "a British man"),  # espeak-ng's "en" is British English
    "gb-female": Voice("en+f4", "a British woman"),
    "rp-male": Voice("en-gb-x-rp+m3", "an English man"),
    "nyc-male": Voice("en-us-nyc+m7", "a man from New York"),
    "scottish-male": Voice("en-gb-scotland", "a Scottish man"),
    "scottish-female": Voice("en-gb-scotland+f2", "a Scottish woman"),
    "caribbean-male": Voice("en-029", "a Caribbean man"),
    "caribbean-female": Voice("en-029+f5", "a Caribbean woman"),
    "lancaster-female": Voice("en-gb-x-gbclan+f1", "a woman from Lancaster"),
    "midlands-male": Voice("en-gb-x-gbcwmd+m2", "a man from the West Midlands"),
}
DEEPER = 25  # pitch steps a "deeper voice" drops
_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: espeak_Synth returns when the audio is made
_UTF8 = 1  # espeakCHARS_UTF8; without espeakENDPAUSE there is no final pause (`espeak-ng -z`)
_CHARACTER = 1  # POS_CHARACTER
_RATE, _PITCH = 1, 3  # espeak_PARAMETER


def espeak_voice(voice: str) -> str:
    """A `VOICES` name or a raw espeak-ng voice id -> the espeak-ng voice id."""
    return VOICES[voice].espeak if voice in VOICES else voice


def deeper(pitch: int) -> int:
    return max(0, pitch - DEEPER)


@dataclass
class SpeechClip:
    audio: Audio
    phonemes: str  # espeak-ng's phoneme mnemonics for the text, clauses separated by spaces


class _VoiceSelector(ctypes.Structure):
    """espeak_VOICE, the argument of espeak_SetVoiceByProperties."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


@cache
def _library() -> bytes:
    """The bytes of libespeak-ng, found where the dynamic linker finds it."""
    try:
        ctypes.CDLL(ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1")
    except OSError as error:
        raise EngineMissing(
            f"libespeak-ng not found ({error}); install it with `sudo apt-get install -y espeak-ng` "
            "(or run `make setup`)"
        ) from error
    with open("/proc/self/maps") as maps:
        path = next(line.split()[-1] for line in maps if "/libespeak-ng.so" in line)
    with open(path, "rb") as handle:
        return handle.read()


class _Espeak:
    """A private instance of libespeak-ng (synchronous mode: no threads).

    espeak-ng keeps state from one utterance to the next (function statics such as its
    pitch flutter, and libc's rand()), so the same call can give other samples later in
    a process. Each instance is its own copy of the library (loaded from an in-memory
    file, so the dynamic linker cannot share it), and rand() is reseeded before every
    clip: a fresh instance speaks exactly as a new `espeak-ng` process does.
    """

    def __init__(self) -> None:
        self.fd = os.memfd_create("anyseq-espeak")
        os.write(self.fd, _library())
        lib = ctypes.CDLL(f"/proc/self/fd/{self.fd}")  # a unique name: a new copy, fresh statics
        # espeak_Synth(text, size, position, position_type, end_position, flags, unique_identifier, user_data)
        uint = ctypes.c_uint
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, uint, ctypes.c_int, uint, uint]
        lib.espeak_Synth.argtypes += [ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.sample_rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, None, 0)
        if self.sample_rate <= 0:
            raise EngineMissing(
                "libespeak-ng could not load its data; reinstall with `sudo apt-get install -y espeak-ng`"
            )
        self.chunks: list[np.ndarray] = []

        def collect(wav, count, events) -> int:
            if count > 0:
                self.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
            return 0

        callback_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
        )
        self.callback = callback_type(collect)  # kept alive: the library holds a pointer to it
        lib.espeak_SetSynthCallback(self.callback)
        self.lib = lib

    def close(self) -> None:
        self.lib.espeak_Terminate()
        _ctypes.dlclose(self.lib._handle)
        os.close(self.fd)

    def voice(self, voice: str) -> None:
        """Select a voice as the `espeak-ng -v` command does: by name (with "+variant"),
        else by language code (where a variant is ignored)."""
        name = espeak_voice(voice).encode()
        if self.lib.espeak_SetVoiceByName(name) == 0:
            return
        if self.lib.espeak_SetVoiceByProperties(ctypes.byref(_VoiceSelector(languages=name))) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}; the world's voices are {list(VOICES)}")

    def synthesize(self, text: str, rate: int, pitch: int) -> np.ndarray:
        """int16 samples at `sample_rate` of the current voice."""
        self.lib.espeak_SetParameter(_RATE, rate, 0)
        self.lib.espeak_SetParameter(_PITCH, pitch, 0)
        self.chunks = []
        _LIBC.srand(1)  # as a new process starts
        data = text.encode()
        error = self.lib.espeak_Synth(data, len(data) + 1, 0, _CHARACTER, 0, _UTF8, None, None)
        if error != 0 or not self.chunks:
            raise RuntimeError(f"espeak-ng failed ({error}) on {text!r}")
        return np.concatenate(self.chunks)

    def phonemes(self, text: str) -> str:
        pointer = ctypes.c_char_p(text.encode())
        clauses = []
        while pointer.value:
            clauses.append(self.lib.espeak_TextToPhonemes(ctypes.byref(pointer), _UTF8, 0).decode().strip())
        return " ".join(c for c in clauses if c)


_LIBC = ctypes.CDLL(None)
_session: _Espeak | None = None  # the engine of the current `session()`


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Speak every clip inside with one engine: about a third of the CPU per clip. The
    clips then depend on the order they are spoken in, from a fresh start; a build makes
    each shard in one session, so a shard's bytes depend only on the shard."""
    global _session
    if _session is not None:
        yield
        return
    _session = _Espeak()
    try:
        yield
    finally:
        _session.close()
        _session = None


@contextlib.contextmanager
def _engine() -> Iterator[_Espeak]:
    """The session's engine, else a fresh one for this call only: outside a session the
    same arguments always give the same samples, those of a new `espeak-ng` process."""
    if _session is not None:
        yield _session
        return
    engine = _Espeak()
    try:
        yield engine
    finally:
        engine.close()


@cache
def _phonemizer() -> _Espeak:
    """An engine that only translates text (no audio state to keep fresh)."""
    return _Espeak()


def _check(text: str) -> None:
    if not text.strip():
        raise ValueError("cannot speak an empty text")


def phonemes(text: str, voice: str = "us-male") -> str:
    """espeak-ng's phonemes for `text`, as `espeak-ng -q -x -v VOICE` prints them: "dr'O: a# r'Ed s'3:k@L"."""
    _check(text)
    engine = _session or _phonemizer()
    engine.voice(voice)
    return engine.phonemes(text)


def synthesize(
    text: str, voice: str, rate: int = 175, pitch: int = 50, sample_rate: int = 16000
) -> SpeechClip:
    """Speak `text` in `voice` (a `VOICES` name or espeak-ng id) at `rate` words per minute
    and `pitch` (0-99): mono audio at `sample_rate`, and the text's phonemes in that voice."""
    _check(text)
    if not 80 <= rate <= 450:
        raise ValueError(f"rate {rate} words per minute is outside espeak-ng's range 80..450")
    if not 0 <= pitch <= 99:
        raise ValueError(f"pitch {pitch} is outside espeak-ng's range 0..99")
    with _engine() as engine:
        engine.voice(voice)
        samples = engine.synthesize(text, rate, pitch).astype(np.float32) / 32768  # (N,) at 22050 Hz
        audio = load_audio(Audio(samples, engine.sample_rate), sample_rate)
        return SpeechClip(audio=audio, phonemes=engine.phonemes(text))


def sample_delivery(
    rng: random.Random, voices: tuple[str, ...], rate: tuple[int, int], pitch: tuple[int, int]
) -> dict[str, int | str]:
    """A speaker and the way they speak: {"voice", "rate", "pitch"}."""
    return {"voice": rng.choice(voices), "rate": rng.randint(*rate), "pitch": rng.randint(*pitch)}
