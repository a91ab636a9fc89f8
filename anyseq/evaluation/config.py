"""Settings of an evaluation run: generation budgets, judge sizes, samples, with presets.

- "tiny": what `anyseq eval` runs on the demo's `tiny` model (full judges);
- "test": the same code path with small judges, for tests and smoke runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from anyseq.sampling import DEFAULT_SAMPLING, with_sampling


@dataclass
class EvalConfig:
    batch_size: int = 16  # conversations generated together
    max_text_tokens: int = 64  # new tokens of a text reply (captions, transcripts)
    text_temperature: float = 0.0  # text is decoded greedily; media with the checkpoint's settings
    # Changes to the checkpoint's media sampling for this run, e.g. {"speech": {"temperature": 0.5}}
    # (the README's "sampling settings, tiny" row compares settings this way)
    sampling: dict[str, dict[str, float]] = field(default_factory=dict)
    seed: int = 0
    # torch threads while evaluating: the models are small, and on a busy 2-core machine two
    # threads spin against other processes (a batch of 16 captions: 47 s with 2, 2.2 s with 1)
    threads: int = 1
    # processes that run tasks side by side (each on `threads` threads), a split of a task at a time;
    # no more than the cores this process may use. `anyseq eval` runs 2: the dialogues of the demo's
    # model in 305 s against 529-558 s in one process, with the same scores (README)
    workers: int = 1
    samples_per_task: int = 4  # examples shown in report.md per task and split
    recognizer_preset: str = "tiny"  # the CTC judge's RecognizerConfig preset
    speaker_clips_per_voice: int = 24  # fresh espeak-ng clips per voice for the speaker judge
    instrument_clips: int = 24  # fresh FluidSynth renders per instrument for the instrument judge
    meteor: bool = True  # METEOR starts a Java process (seconds); off in the "test" preset
    speech_pass_wer: float = 0.25  # a dialogue's spoken reply passes at or below this WER
    max_dialogue_reply_tokens: int = 1600  # text and one media span of a dialogue reply

    def __post_init__(self) -> None:
        if (
            min(self.batch_size, self.max_text_tokens, self.threads, self.workers) < 1
            or self.samples_per_task < 0
        ):
            raise ValueError(
                f"batch_size, max_text_tokens, threads and workers must be >= 1, samples_per_task >= 0: got {self}"
            )
        if min(self.speaker_clips_per_voice, self.instrument_clips) < 2:
            raise ValueError("the speaker and instrument judges need at least 2 clips per class")
        if "text" in self.sampling:
            raise ValueError("sampling: text is set by text_temperature (greedy by default), not here")
        with_sampling(DEFAULT_SAMPLING, self.sampling)  # names a setting it refuses

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> EvalConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown evaluation preset {name!r}; known: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"EvalConfig: unknown settings {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {},
    "test": {
        "batch_size": 8,
        "max_text_tokens": 12,
        "samples_per_task": 2,
        "recognizer_preset": "test",
        "speaker_clips_per_voice": 2,
        "instrument_clips": 2,
        "max_dialogue_reply_tokens": 260,
        "meteor": False,
    },
}
