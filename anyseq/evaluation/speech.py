"""Speech tasks: ASR, TTS and voice cloning (AnyGPT, section 5.3: LibriSpeech WER, VCTK zero-shot TTS).

- asr: the model transcribes each clip ("Can you please convert this speech into written
  text?"); WER by jiwer after `normalize_text`. The two speech judges' WER on the same
  clips is reported beside it, as what a small dedicated recognizer gets.
- tts: the model speaks each transcript, decoded with a voice prompt of the clip's speaker
  (a different sentence, as AnyGPT's zero-shot TTS uses a 3 s prompt); the generated
  speech is transcribed by both independent judges (PocketSphinx with the world's
  grammar and dither; the CTC recognizer trained on real clips), each with its ceiling
  on the original clips and its score on the clips through the tokenizer and back. The
  main metric is PocketSphinx's WER, the judge with the lower ceiling on AnyWorld.
- voice_clone: the same generations; the share that the speaker classifier (trained only
  on real espeak-ng clips) assigns to the prompt's voice.

Seen voices are the "test" split, unseen ones "heldout_voice".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from anyseq.api import MediaOutput
from anyseq.evaluation.harness import (
    Entry,
    Evaluation,
    Sample,
    fraction,
    media_output,
    reply_text,
    too_long_note,
)
from anyseq.judges.speech import normalize_text, word_error_rate
from anyseq.media import Audio
from anyseq.world.dataset import Item
from anyseq.world.speech import synthesize

VOICE_PROMPT_TEXT = "which instrument is playing"  # the sentence every voice prompt says
PROMPT_RATE, PROMPT_PITCH = 175, 50
MIN_JUDGED_SECONDS = 0.1  # shorter outputs are not judged (scored as wrong)
RECOGNIZERS = ("ctc", "pocketsphinx")


def judged(audio: Audio | None) -> bool:
    return audio is not None and audio.duration >= MIN_JUDGED_SECONDS


def transcribe(ev: Evaluation, recognizer: str, audios: Sequence[Audio | None]) -> list[str]:
    """Each clip's transcript by a judge; '' for clips too short to judge."""
    judge = ev.judges.ctc if recognizer == "ctc" else ev.judges.grammar
    heard = iter(judge.transcribe_batch([a for a in audios if judged(a)]))
    return [next(heard) if judged(a) else "" for a in audios]


def _wers(ev: Evaluation, references: Sequence[str], audios: Sequence[Audio | None]) -> dict[str, float]:
    return {f"wer_{r}": word_error_rate(references, transcribe(ev, r, audios)) for r in RECOGNIZERS}


def ground_truth_wers(ev: Evaluation, split: str) -> dict[str, float]:
    """Both judges' WER on the split's original clips (their ceilings)."""
    items = ev.items("speech", split)
    return ev.memo(("gt-wers", split), lambda: _wers(ev, [i.text for i in items], [i.media for i in items]))


def asr(ev: Evaluation, split: str) -> Entry | None:
    items = ev.items("speech", split)
    if not items:
        return None
    conversations = [ev.request("asr", media=item.media) for item in items]
    replies = ev.generate(f"asr/{split}", conversations, ev.config.max_text_tokens)
    outputs = [reply_text(r) for r in replies]
    references = [item.text for item in items]
    exact = [normalize_text(o) == normalize_text(r) for o, r in zip(outputs, references, strict=True)]
    metrics = {
        "wer": word_error_rate(references, outputs),
        "sentence_accuracy": fraction(exact),
        **{f"judge_{k}": v for k, v in ground_truth_wers(ev, split).items()},
    }
    ceiling = word_error_rate(references, references)
    cut = sum(ev.fit("speech", item.media)[1] for item in items)
    notes = ["ceiling: the references score WER 0; judge_wer_*: the speech judges on the same clips"]
    if cut:
        notes.append(f"{cut} clips were cut to the speech tokenizer's maximum duration")
    samples = [
        Sample(
            "transcribe",
            references[i],
            outputs[i],
            "exact" if exact[i] else "wrong",
            {"input": ev.save_media("asr", split, f"{i:03d}-input", items[i].media)},
        )
        for i in ev.sample_indices(len(items))
    ]
    return Entry(
        "asr",
        split,
        len(items),
        "wer",
        metrics["wer"],
        ceiling,
        higher_is_better=False,
        metrics=metrics,
        ceilings={"wer": ceiling},
        notes=[*notes, *too_long_note(replies, ev.model.context_length)],
        samples=samples,
    )


def voice_prompt(ev: Evaluation, item: Item) -> Audio | None:
    """A clip of the item's speaker saying `VOICE_PROMPT_TEXT` (None when the item names no voice)."""
    voice = item.labels.get("voice")
    if voice is None:
        return None
    rate = int(ev.manifest["sample_rate"])
    return ev.memo(
        ("voice-prompt", voice),
        lambda: synthesize(VOICE_PROMPT_TEXT, voice, PROMPT_RATE, PROMPT_PITCH, rate).audio,
    )


def spoken(ev: Evaluation, split: str) -> list[MediaOutput | None]:
    """The model's speech for each transcript of a split, decoded in its speaker's voice (shared by
    tts and voice_clone); batched per voice, since a batch is decoded with one prompt."""

    def generate() -> list[MediaOutput | None]:
        items = ev.items("speech", split)
        outputs: list[MediaOutput | None] = [None] * len(items)
        voices = dict.fromkeys(item.labels.get("voice") for item in items)
        for voice in voices:
            group = [i for i, item in enumerate(items) if item.labels.get("voice") == voice]
            conversations = [ev.request("tts", text=items[i].text) for i in group]
            replies = ev.generate(
                f"tts/{split}/{voice}",
                conversations,
                ev.media_budget("speech"),
                respond_with="speech",
                voice=voice_prompt(ev, items[group[0]]),
            )
            for i, reply in zip(group, replies, strict=True):
                outputs[i] = media_output(reply, "speech")
        return outputs

    return ev.memo(("spoken", split), generate)


def reconstructed(ev: Evaluation, split: str) -> list[Audio]:
    """Each original clip through the speech tokenizer and back, in its speaker's prompt voice."""
    items = ev.items("speech", split)
    return ev.memo(
        ("speech-roundtrip", split),
        lambda: [ev.reconstruct("speech", item.media, voice_prompt(ev, item)) for item in items],
    )


def _audio(output: MediaOutput | None) -> Audio | None:
    return output.content if output is not None else None


def tts(ev: Evaluation, split: str) -> Entry | None:
    items = ev.items("speech", split)
    if not items:
        return None
    outputs = spoken(ev, split)
    references = [item.text for item in items]
    audios = [_audio(o) for o in outputs]
    heard = {r: transcribe(ev, r, audios) for r in RECOGNIZERS}
    metrics: dict[str, float | None] = {
        f"wer_{r}": word_error_rate(references, heard[r]) for r in RECOGNIZERS
    }
    metrics.update({f"roundtrip_{k}": v for k, v in _wers(ev, references, reconstructed(ev, split)).items()})
    ceilings: dict[str, float | None] = dict(ground_truth_wers(ev, split))
    silent = sum(not judged(a) for a in audios)
    notes = [
        "ceilings: each judge on the original clips; roundtrip_*: on them through the speech tokenizer "
        "and back, in the prompt's voice",
    ]
    if silent:
        notes.append(f"{silent} of {len(items)} transcripts got no speech (or under {MIN_JUDGED_SECONDS} s)")
    samples = []
    for i in ev.sample_indices(len(items)):
        media = {"reference": ev.save_media("tts", split, f"{i:03d}-reference", items[i].media)}
        if outputs[i] is not None:
            media["output"] = ev.save_media("tts", split, f"{i:03d}-output", outputs[i])
        verdict = "; ".join(f"{r}: {heard[r][i]!r}" for r in RECOGNIZERS)
        samples.append(Sample(references[i], references[i], "(speech)", verdict, media))
    return Entry(
        "tts",
        split,
        len(items),
        "wer_pocketsphinx",
        metrics["wer_pocketsphinx"],
        ceilings["wer_pocketsphinx"],
        higher_is_better=False,
        metrics=metrics,
        ceilings=ceilings,
        notes=notes,
        samples=samples,
    )


def _voice_hits(ev: Evaluation, audios: Sequence[Audio | None], voices: Sequence[str]) -> list[bool]:
    heard = iter(
        ev.judges.speaker.predict([a for a in audios if judged(a)]) if any(map(judged, audios)) else []
    )
    return [judged(a) and next(heard) == voice for a, voice in zip(audios, voices, strict=True)]


def voice_clone(ev: Evaluation, split: str) -> Entry | None:
    items = ev.items("speech", split)
    voiced = [i for i, item in enumerate(items) if item.labels.get("voice") is not None]
    if not voiced:
        return None
    voices = [items[i].labels["voice"] for i in voiced]
    outputs = spoken(ev, split)
    hits = _voice_hits(ev, [_audio(outputs[i]) for i in voiced], voices)
    truth = _voice_hits(ev, [items[i].media for i in voiced], voices)
    roundtrip = _voice_hits(ev, [reconstructed(ev, split)[i] for i in voiced], voices)
    samples = []
    for k in ev.sample_indices(len(voiced)):
        i = voiced[k]
        media: dict[str, Any] = {
            "reference": ev.save_media("voice_clone", split, f"{i:03d}-prompt", voice_prompt(ev, items[i]))
        }
        if outputs[i] is not None:
            media["output"] = ev.save_media("voice_clone", split, f"{i:03d}-output", outputs[i])
        samples.append(
            Sample(items[i].text, voices[k], "(speech)", "same voice" if hits[k] else "other voice", media)
        )
    return Entry(
        "voice_clone",
        split,
        len(voiced),
        "voice_match",
        fraction(hits),
        fraction(truth),
        metrics={"voice_match": fraction(hits), "roundtrip_voice_match": fraction(roundtrip)},
        ceilings={"voice_match": fraction(truth)},
        notes=[
            "prompt: a clip of the item's speaker saying another sentence; ceiling: the speaker "
            "judge on the original clips",
        ],
        samples=samples,
    )
