"""Music tasks: captioning and generation (AnyGPT, section 5.4: MusicCaps, CLAP score).

- music_caption: the model describes each clip ("Listen to the music and describe the mood
  it evokes."); attribute accuracy of instrument, tempo class, key and mode read back from
  the caption (`anyseq.judges.text`); ceiling: the same judge on the reference captions.
- music_generation: the model plays each caption; the clip is judged by signal measures
  that never see a codec (`anyseq.judges.music`): tempo from the onset envelope
  (`estimate_tempo`, within 4 %, octave errors folded), key and mode by chroma anchored on
  the first note (`estimate_key`), and the instrument by a classifier trained only on fresh
  FluidSynth renders (`anyseq.judges.instrument`). Ceilings: the judges on the original clips;
  `roundtrip_*`: on the clips through the music tokenizer and back.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean
from typing import Any

from anyseq.evaluation.harness import (
    Entry,
    Evaluation,
    Sample,
    attribute_metrics,
    fraction,
    media_output,
    per_attribute,
    reply_text,
    too_long_note,
)
from anyseq.judges.music import OCTAVE_FACTORS, PITCH_CLASSES, compare_tempo, estimate_key, estimate_tempo
from anyseq.judges.text import music_checks
from anyseq.media import Audio, load_audio
from anyseq.world.music import KEYS

MIN_JUDGED_SECONDS = 0.5  # a beat tracker needs a few beats; shorter clips are scored as wrong
VERDICTS = ("key_mode", "mode", "tempo", "tempo_exact", "instrument")


def music_verdicts(ev: Evaluation, audio: Audio | None, labels: dict[str, Any]) -> dict[str, Any]:
    """What the music judges find in a clip made for `labels`: a verdict per attribute, and the
    tempo estimate and its relative error (octave-folded); all wrong for no clip."""
    if audio is None or audio.duration < MIN_JUDGED_SECONDS:
        return {**dict.fromkeys(VERDICTS, False), "tempo_estimate": None, "tempo_error": None}
    rate = int(ev.manifest["sample_rate"])
    samples = load_audio(audio, rate).samples
    tempo = compare_tempo(labels["tempo"], estimate_tempo(samples, rate))
    key = estimate_key(samples, rate)
    error = min(abs(tempo.estimate * f / tempo.reference - 1) for f in (1.0, *OCTAVE_FACTORS))
    mode_ok = key.mode == labels["mode"]
    return {
        "key_mode": mode_ok and PITCH_CLASSES.index(key.tonic) == KEYS.index(labels["key"]),
        "mode": mode_ok,
        "tempo": tempo.folded,
        "tempo_exact": tempo.exact,
        "instrument": ev.judges.instrument.predict([audio])[0] == labels["instrument"],
        "tempo_estimate": round(tempo.estimate, 2),
        "tempo_error": error,
    }


def _metrics(verdicts: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    metrics = {f"{name}_accuracy": fraction([v[name] for v in verdicts]) for name in VERDICTS}
    errors = [v["tempo_error"] for v in verdicts if v["tempo_error"] is not None]
    metrics["tempo_error"] = mean(errors) if errors else None
    return metrics


def music_caption(ev: Evaluation, split: str) -> Entry | None:
    items = ev.items("music", split)
    if not items:
        return None
    conversations = [ev.request("music_caption", media=item.media) for item in items]
    replies = ev.generate(f"music_caption/{split}", conversations, ev.config.max_text_tokens)
    outputs = [reply_text(r) for r in replies]
    checks = [music_checks(o, item.labels) for o, item in zip(outputs, items, strict=True)]
    metrics = attribute_metrics(checks)
    ceilings = attribute_metrics([music_checks(item.text, item.labels) for item in items])
    cut = sum(ev.fit("music", item.media)[1] for item in items)
    notes = [f"{cut} clips were cut to the music tokenizer's maximum duration"] if cut else []
    samples = [
        Sample(
            items[i].source,
            items[i].text,
            outputs[i],
            ", ".join(f"{name} {'ok' if ok else 'wrong'}" for name, ok in checks[i]),
            {"input": ev.save_media("music_caption", split, f"{i:03d}-input", items[i].media)},
        )
        for i in ev.sample_indices(len(items))
    ]
    return Entry(
        "music_caption",
        split,
        len(items),
        "attribute_accuracy",
        metrics["attribute_accuracy"],
        ceilings["attribute_accuracy"],
        metrics=metrics,
        ceilings=ceilings,
        notes=[*notes, *too_long_note(replies, ev.model.context_length)],
        samples=samples,
        series={"attributes": per_attribute(metrics), "attribute_ceilings": per_attribute(ceilings)},
    )


def music_generation(ev: Evaluation, split: str) -> Entry | None:
    items = ev.items("music", split)
    if not items:
        return None
    conversations = [ev.request("music_generation", text=item.text) for item in items]
    replies = ev.generate(
        f"music_generation/{split}", conversations, ev.media_budget("music"), respond_with="music"
    )
    outputs = [media_output(r, "music") for r in replies]
    verdicts = [
        music_verdicts(ev, o.content if o else None, item.labels)
        for o, item in zip(outputs, items, strict=True)
    ]
    truth = [music_verdicts(ev, item.media, item.labels) for item in items]
    roundtrip = [music_verdicts(ev, ev.reconstruct("music", item.media), item.labels) for item in items]
    metrics = {**_metrics(verdicts), **{f"roundtrip_{k}": v for k, v in _metrics(roundtrip).items()}}
    ceilings = _metrics(truth)
    samples = []
    for i in ev.sample_indices(len(items)):
        media = {"reference": ev.save_media("music_generation", split, f"{i:03d}-reference", items[i].media)}
        if outputs[i] is not None:
            media["output"] = ev.save_media("music_generation", split, f"{i:03d}-output", outputs[i])
        verdict = ", ".join(f"{name} {'ok' if verdicts[i][name] else 'wrong'}" for name in VERDICTS)
        found = verdicts[i]["tempo_estimate"]
        samples.append(
            Sample(items[i].text, f"{items[i].labels['tempo']} bpm", f"{found} bpm", verdict, media)
        )
    return Entry(
        "music_generation",
        split,
        len(items),
        "key_mode_accuracy",
        metrics["key_mode_accuracy"],
        ceilings["key_mode_accuracy"],
        metrics=metrics,
        ceilings=ceilings,
        notes=[
            "ceilings: the judges on the original clips; roundtrip_*: on them through the music "
            "tokenizer and back; tempo counts within 4 % with half and double tempo folded",
            *too_long_note(replies, ev.model.context_length),
        ],
        samples=samples,
        series={
            "tempo": [
                [item.labels["tempo"], v["tempo_estimate"]] for item, v in zip(items, verdicts, strict=True)
            ],
            "tempo_ceiling": [
                [item.labels["tempo"], v["tempo_estimate"]] for item, v in zip(items, truth, strict=True)
            ],
        },
    )
