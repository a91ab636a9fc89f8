"""Independent judges of speech: two recognizers and a speaker classifier that never see a codec.

AnyGPT (Zhan et al., ACL 2024, section 5) scores zero-shot TTS by the WER of a recognizer
and by speaker similarity. AnySeq scores speech on AnyWorld with three judges, all
trained or built only from real espeak-ng clips, so they share nothing with the codec,
the acoustic model or the language model they judge:

- `GrammarRecognizer`: PocketSphinx (its own English acoustic model) restricted to a JSGF
  grammar that accepts exactly the world's sentences. espeak-ng's clips have digital
  silence, on which PocketSphinx's noise tracking fails, so light dither (Gaussian noise,
  standard deviation 0.003 on the 16 kHz float signal) is added before decoding.
- `CTCRecognizer`: a small convolutional + GRU character recognizer on log-mels, trained
  with CTC on real clips (with noise and SpecAugment, so it is not brittle).
- `SpeakerClassifier`: MFCC statistics of the voiced frames and a multinomial logistic
  regression (scikit-learn), stored as arrays (never pickled).

Every judge must also be scored on the original clips: that score is its ceiling.
"""

from __future__ import annotations

import difflib
import json
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jiwer
import librosa
import numpy as np
import torch
from safetensors.numpy import load_file as load_arrays
from safetensors.numpy import save_file as save_arrays
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from anyseq.io import atomic_directory, atomic_write_json
from anyseq.media import Audio, load_audio

SAMPLE_RATE = 16000
DITHER = 0.003  # standard deviation of the noise PocketSphinx hears on top of the signal
MAX_SECONDS = 30.0  # longest clip a judge accepts
SPEAKER_FIT = {"regularization": 1.0, "augment": 1, "seed": 0}  # how a world's speaker judge is fitted


def normalize_text(text: str) -> str:
    """Lower case, letters, digits and apostrophes only, single spaces: the form every WER compares."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER (jiwer) after `normalize_text`; an empty hypothesis counts as all deletions."""
    if len(references) != len(hypotheses) or not references:
        raise ValueError(
            f"need as many hypotheses as references (>0), got {len(hypotheses)} and {len(references)}"
        )
    references = [normalize_text(r) for r in references]
    if not all(references):
        raise ValueError("a reference transcript is empty after normalisation")
    return float(jiwer.wer(references, [normalize_text(h) for h in hypotheses]))


def _samples(audio: Any) -> np.ndarray:
    return load_audio(audio, SAMPLE_RATE, max_seconds=MAX_SECONDS, min_seconds=0.05).samples


# ---------------------------------------------------------------------------------------------------------
# PocketSphinx with a grammar of the world's sentences


def sentence_grammar(sentences: Iterable[str], name: str = "world") -> str:
    """A JSGF grammar accepting exactly `sentences` (normalised), as a minimal word automaton.

    A flat list of alternatives makes PocketSphinx slow (one path per sentence); merging
    shared prefixes and suffixes (a minimal acyclic automaton, one rule per state) keeps the
    same language in a few hundred rules.
    """
    words = sorted({tuple(normalize_text(s).split()) for s in sentences} - {()})
    if not words:
        raise ValueError("a grammar needs at least one non-empty sentence")
    children: list[dict[str, int]] = [{}]
    final = [False]
    for sentence in words:  # a trie of the sentences
        node = 0
        for word in sentence:
            if word not in children[node]:
                children.append({})
                final.append(False)
                children[node][word] = len(children) - 1
            node = children[node][word]
        final[node] = True
    states: dict[tuple, int] = {}  # signature (final, arcs to merged states) -> state number

    def merge(node: int) -> int:
        arcs = tuple(sorted((word, merge(child)) for word, child in children[node].items()))
        return states.setdefault((final[node], arcs), len(states))

    start = merge(0)
    lines = ["#JSGF V1.0;", f"grammar {name};"]
    for (is_final, arcs), state in states.items():
        if not arcs:
            continue
        leaves = {s for (f, a), s in states.items() if not a}
        body = " | ".join(word if child in leaves else f"{word} <s{child}>" for word, child in arcs)
        if is_final:
            body = f"[ {body} ]"  # the sentence may end here or go on
        lines.append(f"{'public ' if state == start else ''}<s{state}> = {body};")
    return "\n".join(lines) + "\n"


def _same_settings(saved: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(saved.get(key) == value for key, value in wanted.items())


def _dictionary_words() -> set[str]:
    from pocketsphinx import get_model_path

    path = Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
    return {line.split(maxsplit=1)[0].split("(")[0] for line in path.read_text().splitlines() if line}


class GrammarRecognizer:
    """PocketSphinx restricted to the sentences it is built from; `dither` is added before decoding.

    The dither is drawn from a generator seeded by `seed` for every clip, so a clip always
    gets the same transcript.
    """

    def __init__(self, sentences: Iterable[str], dither: float = DITHER, seed: int = 0) -> None:
        from pocketsphinx import Decoder

        sentences = list(sentences)
        unknown = sorted({w for s in sentences for w in normalize_text(s).split()} - _dictionary_words())
        if unknown:
            raise ValueError(f"words missing from PocketSphinx's dictionary (cmudict-en-us): {unknown[:20]}")
        self.dither = dither
        self.seed = seed
        self.sentences = sorted({normalize_text(s) for s in sentences})
        with tempfile.TemporaryDirectory(prefix="anyseq-jsgf-") as temp:
            path = Path(temp) / "world.jsgf"
            path.write_text(sentence_grammar(self.sentences))
            self.decoder = Decoder(samprate=SAMPLE_RATE, jsgf=str(path), loglevel="FATAL")

    def transcribe(self, audio: Any) -> str:
        """A path, bytes, `Audio` or 16 kHz array -> the grammar sentence heard ('' when none)."""
        samples = _samples(audio)
        noise = np.random.default_rng(self.seed).normal(0.0, self.dither, samples.shape)
        pcm = (np.clip(samples + noise, -1.0, 1.0) * 32767).astype(np.int16)
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""

    def transcribe_batch(self, audios: Sequence[Any]) -> list[str]:
        return [self.transcribe(a) for a in tqdm(audios, desc="pocketsphinx", unit="clip", leave=False)]


# ---------------------------------------------------------------------------------------------------------
# A small CTC recognizer trained on real clips

ALPHABET = " abcdefghijklmnopqrstuvwxyz'"  # CTC classes 1..len; 0 is the blank


@dataclass
class RecognizerConfig:
    n_fft: int = 400  # 25 ms window at 16 kHz
    hop: int = 160  # 10 ms: 100 log-mel frames per second, halved by the first convolution
    n_mels: int = 80
    channels: int = 192  # width of the convolutional blocks
    blocks: int = 4  # residual convolution blocks after the stride-2 input convolution
    kernel_size: int = 5
    rnn_hidden: int = 128  # per direction of the bidirectional GRU
    steps: int = 1000
    batch_size: int = 16
    learning_rate: float = 2e-3
    max_noise: float = 0.01  # each training clip gets Gaussian noise of std U(0, max_noise)
    freq_mask: int = 12  # SpecAugment: two frequency masks up to this many mel bins
    time_mask: int = 15  # and two time masks up to this many frames
    seed: int = 0

    @classmethod
    def preset(cls, name: str) -> RecognizerConfig:
        presets = {
            "tiny": {},
            "test": {"channels": 32, "blocks": 1, "rnn_hidden": 32, "steps": 30, "batch_size": 4},
        }
        if name not in presets:
            raise ValueError(f"unknown recognizer preset {name!r}; known: {sorted(presets)}")
        return cls(**presets[name])


class LogMel(nn.Module):
    """audio (B, N) at 16 kHz -> log-mel (B, M, N // hop + 1), mean-normalised per channel over time."""

    def __init__(self, n_fft: int, hop: int, n_mels: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        banks = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=n_mels)
        self.register_buffer("banks", torch.from_numpy(banks), persistent=False)  # (M, n_fft/2+1)

    def forward(self, audio: Tensor, frames: Tensor | None = None) -> Tensor:
        spectrum = torch.stft(audio, self.n_fft, self.hop, window=self.window, return_complex=True)
        mels = torch.log(self.banks @ spectrum.abs().square() + 1e-6)  # (B, M, T)
        if frames is None:
            return mels - mels.mean(dim=-1, keepdim=True)
        inside = (torch.arange(mels.shape[-1])[None, :] < frames[:, None]).unsqueeze(1)  # (B, 1, T)
        mean = (mels * inside).sum(-1, keepdim=True) / frames[:, None, None].clamp_min(1)
        return (mels - mean) * inside


class _Block(nn.Module):
    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mix(F.gelu(self.conv(self.norm(x))))


class CTCRecognizer(nn.Module):
    """log-mel -> stride-2 conv -> residual conv blocks -> BiGRU -> characters, decoded greedily.

    With a `vocabulary` (the words of the training transcripts), each decoded word is
    replaced by the closest vocabulary word (difflib), a lexicon as in any closed-vocabulary
    recognizer: spelling slips of a small character model then cost nothing.
    """

    def __init__(self, config: RecognizerConfig, vocabulary: Sequence[str] = ()) -> None:
        super().__init__()
        c = self.config = config
        self.vocabulary = sorted(set(vocabulary))
        self.features = LogMel(c.n_fft, c.hop, c.n_mels)
        self.subsample = nn.Conv1d(c.n_mels, c.channels, 5, stride=2, padding=2)
        self.blocks = nn.Sequential(*(_Block(c.channels, c.kernel_size) for _ in range(c.blocks)))
        self.rnn = nn.GRU(c.channels, c.rnn_hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * c.rnn_hidden, len(ALPHABET) + 1)

    def output_frames(self, samples: Tensor) -> Tensor:
        """Sample counts (B,) -> CTC frames (B,) of each row."""
        mel_frames = samples // self.config.hop + 1
        return (mel_frames - 1) // 2 + 1

    def forward(self, mels: Tensor) -> Tensor:
        """mels (B, M, T) -> log-probabilities (B, T', classes)."""
        hidden = self.blocks(F.gelu(self.subsample(mels)))  # (B, C, T')
        hidden, _ = self.rnn(hidden.transpose(1, 2))  # (B, T', 2H)
        return self.head(hidden).log_softmax(-1)

    @torch.inference_mode()
    def transcribe_batch(self, audios: Sequence[Any], batch_size: int = 16) -> list[str]:
        self.eval()
        texts = []
        for start in range(0, len(audios), batch_size):
            audio, lengths = _pad([_samples(a) for a in audios[start : start + batch_size]])
            frames = self.output_frames(lengths)
            best = self(self.features(audio, lengths // self.config.hop + 1)).argmax(-1)  # (B, T')
            texts.extend(_greedy(row[:n].tolist()) for row, n in zip(best, frames.tolist(), strict=True))
        return [self._snap(text) for text in texts] if self.vocabulary else texts

    def _snap(self, text: str) -> str:
        return " ".join(
            difflib.get_close_matches(w, self.vocabulary, n=1, cutoff=0.0)[0] for w in text.split()
        )

    def transcribe(self, audio: Any) -> str:
        return self.transcribe_batch([audio])[0]

    def save(self, directory: str | Path) -> Path:
        with atomic_directory(directory) as temp:
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, temp / "model.safetensors")
            config = {"kind": "ctc-recognizer", **asdict(self.config), "vocabulary": self.vocabulary}
            atomic_write_json(temp / "config.json", config)
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path) -> CTCRecognizer:
        config = json.loads((Path(directory) / "config.json").read_text())
        config.pop("kind")
        vocabulary = config.pop("vocabulary")
        model = cls(RecognizerConfig(**config), vocabulary)
        model.load_state_dict(load_file(Path(directory) / "model.safetensors"))
        return model.eval()


def _pad(pieces: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
    """Clips -> zero-padded audio (B, N) and lengths (B,)."""
    audio = np.zeros((len(pieces), max(len(p) for p in pieces)), dtype=np.float32)
    for row, piece in enumerate(pieces):
        audio[row, : len(piece)] = piece
    return torch.from_numpy(audio), torch.tensor([len(p) for p in pieces])


def _greedy(best: list[int]) -> str:
    characters, previous = [], 0
    for index in best:
        if index != previous and index != 0:
            characters.append(ALPHABET[index - 1])
        previous = index
    return " ".join("".join(characters).split())


def _targets(texts: Sequence[str]) -> tuple[Tensor, Tensor]:
    encoded = [[ALPHABET.index(ch) + 1 for ch in normalize_text(t) if ch in ALPHABET] for t in texts]
    return torch.tensor([i for e in encoded for i in e]), torch.tensor([len(e) for e in encoded])


def _spec_augment(mels: Tensor, config: RecognizerConfig, generator: torch.Generator) -> Tensor:
    mels = mels.clone()
    batch, bins, frames = mels.shape
    for row in range(batch):
        for size, axis in ((config.freq_mask, bins), (config.time_mask, frames)) * 2:
            width = int(torch.randint(0, size + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, axis - width), (1,), generator=generator))
            if axis == bins:
                mels[row, start : start + width, :] = 0
            else:
                mels[row, :, start : start + width] = 0
    return mels


def train_ctc_recognizer(
    audios: Sequence[Audio],
    texts: Sequence[str],
    config: RecognizerConfig | None = None,
    log_dir: str | Path | None = None,
) -> CTCRecognizer:
    """Train a `CTCRecognizer` on real clips and their transcripts (deterministic for a seed)."""
    from torch.utils.tensorboard import SummaryWriter

    config = config or RecognizerConfig()
    if len(audios) != len(texts) or not audios:
        raise ValueError(f"need as many transcripts as clips (>0), got {len(texts)} and {len(audios)}")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    clips = [_samples(a) for a in audios]
    model = CTCRecognizer(config, [w for t in texts for w in normalize_text(t).split()]).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.learning_rate, total_steps=config.steps)
    writer = SummaryWriter(str(log_dir)) if log_dir is not None else None
    ctc = nn.CTCLoss(zero_infinity=True)
    for step in tqdm(range(config.steps), desc="ctc recognizer", unit="step", leave=False):
        picks = torch.randint(0, len(clips), (config.batch_size,), generator=generator).tolist()
        audio, lengths = _pad([clips[i] for i in picks])
        noise = torch.rand(len(picks), 1, generator=generator) * config.max_noise
        audio = audio + noise * torch.randn(audio.shape, generator=generator)
        gain = 0.5 + torch.rand(len(picks), 1, generator=generator)
        mels = _spec_augment(model.features(audio * gain, lengths // config.hop + 1), config, generator)
        targets, target_lengths = _targets([texts[i] for i in picks])
        log_probs = model(mels)  # (B, T', classes)
        loss = ctc(log_probs.transpose(0, 1), targets, model.output_frames(lengths), target_lengths)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if writer is not None:
            writer.add_scalar("recognizer/ctc", loss.item(), step)
    if writer is not None:
        writer.close()
    return model.eval()


# ---------------------------------------------------------------------------------------------------------
# Speaker classifier


def speaker_features(audio: Any) -> np.ndarray:
    """MFCC statistics of the voiced frames: mean and std of 20 MFCCs and their deltas, (80,)."""
    samples = _samples(audio)
    mfcc = librosa.feature.mfcc(y=samples, sr=SAMPLE_RATE, n_mfcc=20, n_fft=512, hop_length=160)  # (20, T)
    energy = librosa.feature.rms(y=samples, frame_length=512, hop_length=160)[0]
    voiced = energy > energy.max() * 0.05  # drop silence, which a codec fills with its own noise
    if voiced.sum() < 3:
        voiced[:] = True
    delta = librosa.feature.delta(mfcc, width=3)
    frames = np.concatenate([mfcc, delta])[:, voiced]  # (40, T_voiced)
    return np.concatenate([frames.mean(axis=1), frames.std(axis=1)]).astype(np.float32)


def degrade(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A channel-and-noise copy of a clip: a random smooth EQ (+-4 dB over 6 bands) and white noise
    at 15-35 dB SNR, the usual robustness augmentation of speaker recognizers (VoxCeleb-style)."""
    spectrum = np.fft.rfft(samples)
    gains_db = np.interp(np.linspace(0, 1, len(spectrum)), np.linspace(0, 1, 6), rng.uniform(-4, 4, 6))
    shaped = np.fft.irfft(spectrum * 10 ** (gains_db / 20), n=len(samples))
    noise_power = np.mean(shaped**2) / 10 ** (rng.uniform(15, 35) / 10)
    return np.clip(shaped + rng.normal(0, np.sqrt(noise_power), len(shaped)), -1, 1).astype(np.float32)


@dataclass
class SpeakerClassifier:
    """Standardised MFCC statistics -> multinomial logistic regression over `speakers`."""

    speakers: list[str]
    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    weights: np.ndarray  # (C, D)
    bias: np.ndarray  # (C,)
    settings: dict[str, Any] = field(default_factory=dict)  # how it was fitted (saved, compared by caches)

    @classmethod
    def fit(
        cls,
        audios: Sequence[Any],
        speakers: Sequence[str],
        regularization: float = 1.0,
        augment: int = 1,
        seed: int = 0,
    ) -> SpeakerClassifier:
        """Train on real clips and their speaker labels, plus `augment` degraded copies of each (deterministic)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        if len(audios) != len(speakers) or len(set(speakers)) < 2:
            raise ValueError(f"need one label per clip and at least 2 speakers, got {len(set(speakers))}")
        rng = np.random.default_rng(seed)
        clips = [_samples(a) for a in audios]
        copies = [degrade(clip, rng) for _ in range(augment) for clip in clips]
        features = np.stack(
            [speaker_features(c) for c in tqdm([*clips, *copies], desc="speaker", leave=False)]
        )
        labels = list(speakers) * (1 + augment)
        scaler = StandardScaler().fit(features)
        model = LogisticRegression(C=regularization, max_iter=5000).fit(scaler.transform(features), labels)
        weights, bias = model.coef_, model.intercept_
        if len(model.classes_) == 2:  # scikit-learn keeps one row for two classes; logits [0, z] are the same
            weights, bias = np.vstack([np.zeros_like(weights), weights]), np.concatenate([[0.0], bias])
        settings = {"regularization": regularization, "augment": augment, "seed": seed}
        return cls(list(model.classes_), scaler.mean_, scaler.scale_, weights, bias, settings)

    def scores(self, audios: Sequence[Any]) -> np.ndarray:
        """(N, C) class scores (logits)."""
        features = np.stack([speaker_features(a) for a in audios])
        return ((features - self.mean) / self.scale) @ self.weights.T + self.bias

    def predict(self, audios: Sequence[Any]) -> list[str]:
        return [self.speakers[i] for i in self.scores(audios).argmax(axis=1)]

    def save(self, directory: str | Path) -> Path:
        arrays = {"mean": self.mean, "scale": self.scale, "weights": self.weights, "bias": self.bias}
        with atomic_directory(directory) as temp:
            save_arrays({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items()},
                        str(temp / "model.safetensors"))  # fmt: skip
            config = {"kind": "speaker-classifier", "speakers": self.speakers, **self.settings}
            atomic_write_json(temp / "config.json", config)
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path) -> SpeakerClassifier:
        config = json.loads((Path(directory) / "config.json").read_text())
        arrays = load_arrays(str(Path(directory) / "model.safetensors"))
        settings = {k: v for k, v in config.items() if k not in ("kind", "speakers")}
        return cls(
            config["speakers"], arrays["mean"], arrays["scale"], arrays["weights"], arrays["bias"], settings
        )


# ---------------------------------------------------------------------------------------------------------
# The three judges of a world, built once and cached


@dataclass
class SpeechJudges:
    """The grammar recognizer, the CTC recognizer and the speaker classifier of one speech corpus."""

    grammar: GrammarRecognizer
    recognizer: CTCRecognizer
    speaker: SpeakerClassifier

    @classmethod
    def for_world(
        cls,
        data_dir: str | Path,
        cache_dir: str | Path | None = None,
        recognizer: RecognizerConfig | None = None,
        speaker_label: str = "voice",
    ) -> SpeechJudges:
        """Judges of AnyWorld speech in `data_dir`: the grammar holds every split's transcripts;
        the recognizer and the speaker classifier learn from the real "train" clips only.

        Trained judges are kept in `cache_dir` (default `data_dir/judges/speech`) and reused;
        a cached recognizer is retrained when `recognizer` is given and differs from it.
        """
        from anyseq.world.dataset import iter_items, read_manifest

        data_dir = Path(data_dir)
        cache = Path(cache_dir) if cache_dir is not None else data_dir / "judges" / "speech"
        splits = [s for s in read_manifest(data_dir)["splits"] if s in ("train", "validation", "test")]
        sentences = {
            item.text for split in [*splits, "heldout"] for item in iter_items(data_dir, "speech", split)
        }
        grammar = GrammarRecognizer(sentences)
        items = None  # the train split, read only if a judge must be trained
        saved = cache / "recognizer" / "config.json"
        wanted = asdict(recognizer) if recognizer is not None else {}  # None: whatever is cached
        if saved.is_file() and _same_settings(json.loads(saved.read_text()), wanted):
            model = CTCRecognizer.load(cache / "recognizer")
        else:
            items = list(iter_items(data_dir, "speech", "train"))
            audios, texts = [i.media for i in items], [i.text for i in items]
            model = train_ctc_recognizer(audios, texts, recognizer, log_dir=cache / "tensorboard")
            model.save(cache / "recognizer")
        saved = cache / "speaker" / "config.json"
        if saved.is_file() and _same_settings(json.loads(saved.read_text()), SPEAKER_FIT):
            speaker = SpeakerClassifier.load(cache / "speaker")
        else:
            items = items if items is not None else list(iter_items(data_dir, "speech", "train"))
            labels = [i.labels[speaker_label] for i in items]
            speaker = SpeakerClassifier.fit([i.media for i in items], labels, **SPEAKER_FIT)
            speaker.save(cache / "speaker")
        return cls(grammar, model, speaker)

    def transcribe(self, audios: Sequence[Any]) -> dict[str, list[str]]:
        """Both recognizers' transcripts of every clip."""
        return {
            "pocketsphinx": self.grammar.transcribe_batch(audios),
            "ctc": self.recognizer.transcribe_batch(audios),
        }

    def word_error_rates(self, texts: Sequence[str], audios: Sequence[Any]) -> dict[str, float]:
        """{"pocketsphinx": WER, "ctc": WER} of `audios` against their `texts`."""
        return {name: word_error_rate(texts, hyps) for name, hyps in self.transcribe(audios).items()}
