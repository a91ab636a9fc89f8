"""Evaluation of a trained speech tokenizer on AnyWorld, scored by judges that never saw a codec.

AnyGPT (Zhan et al., ACL 2024) reports zero-shot TTS by WER and speaker similarity; its
speech path is level 1 -> SoundStorm with a voice prompt -> SpeechTokenizer's decoder.
This harness measures every stage of that path on a split's real clips:

- "original": the clips themselves (each judge's ceiling);
- "griffin_lim": librosa's Griffin-Lim from the clips' true magnitudes (the reference
  waveform method);
- "vocoder": the clips' true log features (mel bands) through the codec's own inversion
  and Griffin-Lim, no quantizer or decoder: what the waveform path alone loses;
- "all_levels": decode(encode(clip)) with all K levels;
- "level1_own_voice": level 1 + a prompt of another clip by the same voice, through the
  acoustic model (what the language model's output becomes);
- "level1_default_voice": level 1 + the default voice (no prompt);
- "cloned": level 1 of a clip by voice A + a prompt by voice B != A.

Intelligibility: WER of the grammar-restricted PocketSphinx and of the CTC recognizer
(`anyseq.judges.speech`). Voice: the speaker classifier's accuracy, and for "cloned"
the share assigned to the prompt's voice. Content and voice per level: the probes of
`speech_probe.py`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import torch
from tqdm.auto import tqdm

from anyseq.io import atomic_write_json
from anyseq.judges.speech import SpeakerClassifier, SpeechJudges
from anyseq.media import Audio
from anyseq.modalities.base import load_tokenizer
from anyseq.modalities.speech import SpeechTokenizer
from anyseq.tokenizers.audio_train import Clip
from anyseq.tokenizers.speech_probe import probe_levels
from anyseq.tokenizers.speech_train import VOICE_LABEL, encode_clips, read_clips

MARGIN = 0.05  # done when: WER of reconstructions at most 5 points above the judge's ceiling
CLONE_TARGET = 0.8  # done when: >= 80% of cloned pairs come out in the prompt's voice


def griffin_lim_reference(clip: np.ndarray, sample_rate: int, n_fft: int, hop: int, iters: int) -> Audio:
    """librosa's Griffin-Lim from the clip's own STFT magnitude: the reference waveform method."""
    magnitude = np.abs(librosa.stft(clip, n_fft=n_fft, hop_length=hop))
    samples = librosa.griffinlim(magnitude, n_iter=iters, hop_length=hop, n_fft=n_fft, length=len(clip))
    return Audio(np.clip(samples, -1, 1).astype(np.float32), sample_rate)


def vocoder_reference(tokenizer: SpeechTokenizer, clip: np.ndarray) -> Audio:
    """The clip's true log features through the codec's own feature inversion and vocoder (the
    "vocoder" condition): the waveform path with no quantizer and no decoder in the way."""
    core = tokenizer.codec.core
    with torch.inference_mode():
        log_features = core.log_magnitude(torch.from_numpy(clip)[None])
        samples = core.vocode(core.to_magnitude(log_features))[0, : len(clip)]
    return Audio(samples.numpy(), tokenizer.config.sample_rate)


def prompt_pairs(
    voices: Sequence[str], same_voice: bool, seed: int = 0, spare: Sequence[str] = ()
) -> list[int]:
    """For each clip, the index of a prompt clip: another clip of the same voice, or one of another voice.

    `spare` are the voices of further prompt clips (index `len(voices) + i`), drawn on only for a
    clip whose own list holds no fitting partner (a small split with a voice heard once).
    """
    rng = np.random.default_rng(seed)
    candidates = [*voices, *spare]
    pairs = []
    for index, voice in enumerate(voices):
        fits = [j for j, v in enumerate(candidates) if j != index and (v == voice) == same_voice]
        pool = [j for j in fits if j < len(voices)] or fits
        if not pool:
            raise ValueError(
                f"clip {index} ({voice}): no other clip {'of' if same_voice else 'not of'} its voice"
            )
        pairs.append(pool[int(rng.integers(len(pool)))])
    return pairs


def _complete_and_decode(
    tokenizer: SpeechTokenizer,
    level1: Sequence[torch.Tensor],
    prompts: Sequence[torch.Tensor],
    batch: int = 16,
) -> list[Audio]:
    out = []
    for start in tqdm(range(0, len(level1), batch), desc="acoustic + decode", leave=False):
        filled = tokenizer.complete_batch(level1[start : start + batch], prompts[start : start + batch])
        out.extend(tokenizer.decode_batch(filled))
    return out


def _decode(tokenizer: SpeechTokenizer, codes: Sequence[torch.Tensor], batch: int = 16) -> list[Audio]:
    out = []
    for start in tqdm(range(0, len(codes), batch), desc="decode", leave=False):
        out.extend(tokenizer.decode_batch(codes[start : start + batch]))
    return out


def _speaker_judge(
    judges: SpeechJudges, train: Sequence[Clip], clips: Sequence[Clip], sample_rate: int
) -> SpeakerClassifier:
    """The world's speaker judge, or for voices it never heard (held-out splits), one refitted on
    the real train clips plus every other clip of the split (the clips scored are the odd ones)."""
    voices = {c.labels[VOICE_LABEL] for c in clips}
    if voices <= set(judges.speaker.speakers):
        return judges.speaker
    extra = clips[::2]
    audios = [Audio(c.samples, sample_rate) for c in [*train, *extra]]
    return SpeakerClassifier.fit(audios, [c.labels[VOICE_LABEL] for c in [*train, *extra]])


def evaluate_on_clips(
    tokenizer: SpeechTokenizer,
    judges: SpeechJudges,
    train: Sequence[Clip],
    clips: Sequence[Clip],
    probe_train: int = 600,
) -> dict[str, Any]:
    """Every measure of the module docstring on `clips` (real, with "text", "phonemes", "voice" labels)."""
    c = tokenizer.config
    heldout = not {x.labels[VOICE_LABEL] for x in clips} <= set(judges.speaker.speakers)
    speaker = _speaker_judge(judges, train, clips, c.sample_rate)
    spare_pool = clips[::2] if heldout else train  # prompts for a voice heard once in the split
    if heldout:
        clips = clips[1::2]
    texts = [x.labels["text"] for x in clips]
    voices = [x.labels[VOICE_LABEL] for x in clips]
    counts = Counter(voices)
    spare = [
        next(x for x in spare_pool if x.labels[VOICE_LABEL] == voice)
        for voice in sorted(v for v, n in counts.items() if n == 1)
        if any(x.labels[VOICE_LABEL] == voice for x in spare_pool)
    ]
    spare_voices = [x.labels[VOICE_LABEL] for x in spare]
    started = time.monotonic()
    codes = encode_clips(tokenizer, clips)
    prompt_codes = [*codes, *(encode_clips(tokenizer, spare) if spare else [])]
    level1 = [k[:1] for k in codes]
    own = prompt_pairs(voices, same_voice=True, spare=spare_voices)
    other = prompt_pairs(voices, same_voice=False, spare=spare_voices)

    def prompt(index: int) -> torch.Tensor:
        return prompt_codes[index][:, : c.prompt_frames]

    core = tokenizer.codec.core.config
    conditions: dict[str, list[Audio]] = {
        "original": [Audio(x.samples, c.sample_rate) for x in clips],
        "griffin_lim": [
            griffin_lim_reference(x.samples, c.sample_rate, core.n_fft, core.stft_hop, core.griffin_lim_iters)
            for x in tqdm(clips, desc="griffin-lim", leave=False)
        ],
        "vocoder": [
            vocoder_reference(tokenizer, x.samples) for x in tqdm(clips, desc="vocoder", leave=False)
        ],
        "all_levels": _decode(tokenizer, codes),
        "level1_own_voice": _complete_and_decode(tokenizer, level1, [prompt(j) for j in own]),
        "level1_default_voice": _complete_and_decode(
            tokenizer, level1, [tokenizer.default_prompt] * len(clips)
        ),
        "cloned": _complete_and_decode(tokenizer, level1, [prompt(j) for j in other]),
    }
    generated = time.monotonic() - started
    results: dict[str, Any] = {}
    for name, audios in conditions.items():
        wer = judges.word_error_rates(texts, audios)
        predicted = speaker.predict(audios)
        entry = {f"wer_{judge}": value for judge, value in wer.items()}
        entry["speaker_accuracy"] = float(np.mean([p == v for p, v in zip(predicted, voices, strict=True)]))
        if name == "cloned":
            entry["prompt_voice_share"] = float(
                np.mean([p == [*voices, *spare_voices][j] for p, j in zip(predicted, other, strict=True)])
            )
        results[name] = entry
    train_codes = encode_clips(tokenizer, train[:probe_train])
    probe = probe_levels(
        train_codes,
        [x.labels["phonemes"] for x in train[:probe_train]],
        [x.labels[VOICE_LABEL] for x in train[:probe_train]],
        codes,
        [x.labels["phonemes"] for x in clips],
        voices,
        c.codebook_size,
        c.ctc_upsample,
    )
    return {
        "clips": len(clips),
        "heldout_voices": heldout,
        "conditions": results,
        "probe": probe.to_dict(),
        "seconds": {"generate": generated, "total": time.monotonic() - started},
    }


def done_when(report: dict[str, Any]) -> dict[str, bool]:
    """The issue's targets, read off an evaluation report."""
    conditions = report["conditions"]
    checks = {}
    for judge in ("pocketsphinx", "ctc"):
        ceiling = conditions["original"][f"wer_{judge}"]
        for name in ("all_levels", "level1_own_voice"):
            checks[f"{name}_wer_{judge}_within_5_points"] = (
                conditions[name][f"wer_{judge}"] <= ceiling + MARGIN
            )
    checks["cloned_prompt_voice_share_at_least_80%"] = (
        conditions["cloned"]["prompt_voice_share"] >= CLONE_TARGET
    )
    accuracy = report["probe"]["speaker_accuracy"]
    checks["level1_speaker_probe_below_all_levels"] = accuracy["level1"] < accuracy["all"]
    return checks


def evaluate_speech_tokenizer(
    model_dir: Path,
    data_dir: Path,
    out: Path,
    split: str = "test",
    limit: int | None = None,
    judges_dir: Path | None = None,
) -> dict[str, Any]:
    """Evaluate the speech tokenizer in `model_dir` on AnyWorld `split`; writes the report JSON to `out`.

    The judges are trained on the world's real train clips once and cached in
    `judges_dir` (default `data_dir/judges/speech`).
    """
    tokenizer = load_tokenizer(model_dir)
    if not isinstance(tokenizer, SpeechTokenizer):
        raise ValueError(f"{model_dir}: a {type(tokenizer).__name__}, not a codec-speech tokenizer")
    judges = SpeechJudges.for_world(data_dir, judges_dir)
    train = read_clips(data_dir, "train", tokenizer.config.sample_rate)
    clips = read_clips(data_dir, split, tokenizer.config.sample_rate, limit=limit)
    report = {
        "model_dir": str(model_dir),
        "data_dir": str(data_dir),
        "split": split,
        **evaluate_on_clips(tokenizer, judges, train, clips),
        "judges": {"speakers": judges.speaker.speakers},
    }
    report["done_when"] = done_when(report)
    atomic_write_json(out, report)
    return report
