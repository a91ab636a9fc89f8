"""The evaluation harness: the paper's tasks run on AnyWorld splits, one `Entry` per task x split.

AnyGPT (Zhan et al., ACL 2024, section 5) evaluates captioning, text-to-image, ASR,
zero-shot TTS and music understanding and generation, and its evaluation code was never
released. Here each task is a function `(Evaluation, split) -> Entry` listed in `TASKS`
with the splits it runs on (in-distribution "test" and the held-out splits beside it).
An `Evaluation` holds what every task needs: the model, the data, batched generation
with a progress bar, audio inputs fitted to the tokenizers, the judge panel, and the
samples written next to the report. Each entry carries its judge's ceiling: the same
judge's score on the ground-truth media, as the paper's "ground truth" rows.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from anyseq.api import AnySeq, MediaOutput, Reply
from anyseq.conversation import Conversation, Media, Message, Text
from anyseq.evaluation.config import EvalConfig
from anyseq.evaluation.panel import JudgePanel
from anyseq.media import Audio
from anyseq.sampling import SamplingConfig, with_sampling
from anyseq.world.dataset import Item, iter_items, read_manifest
from anyseq.world.pretrain import INSTRUCTIONS, pair_conversation
from anyseq.world.pretrain import TASKS as PAIR_TASKS


@dataclass
class Sample:
    """One example shown in the report: what was asked, expected, produced, and the verdict."""

    prompt: str
    reference: str
    output: str
    verdict: str
    media: dict[str, str] = field(default_factory=dict)  # role ("input", "output", "reference") -> path


@dataclass
class Entry:
    """A task's result on one split: its main metric and the judge's ceiling, plus extra metrics."""

    task: str
    split: str
    n: int
    metric: str
    value: float | None
    ceiling: float | None
    higher_is_better: bool = True
    metrics: dict[str, float | None] = field(default_factory=dict)
    ceilings: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    series: dict[str, Any] = field(default_factory=dict)  # data for plots (per attribute, tempo pairs)


TaskFunction = Callable[["Evaluation", str], Entry | None]  # None: nothing to evaluate on that split


@dataclass(frozen=True)
class TaskSpec:
    name: str
    function: str  # "module:function", imported when the task runs
    splits: tuple[str, ...]  # in-distribution first, then held-out splits
    # tasks with the same name here reuse each other's work on a split (`Evaluation.memo`), so a
    # parallel evaluation runs them in one process; "": the task shares nothing
    shares: str = ""

    def load(self) -> TaskFunction:
        module, function = self.function.split(":")
        return getattr(importlib.import_module(module), function)


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "caption", "anyseq.evaluation.images:caption", ("test", "heldout_colour_shape", "heldout_emoji")
        ),
        TaskSpec(
            "text_to_image",
            "anyseq.evaluation.images:text_to_image",
            ("test", "heldout_colour_shape", "heldout_emoji"),
        ),
        # asr and tts share the judges' WERs on the clips, tts and voice_clone the generated speech
        TaskSpec("asr", "anyseq.evaluation.speech:asr", ("test", "heldout_voice"), "speech"),
        TaskSpec("tts", "anyseq.evaluation.speech:tts", ("test", "heldout_voice"), "speech"),
        TaskSpec("voice_clone", "anyseq.evaluation.speech:voice_clone", ("test", "heldout_voice"), "speech"),
        TaskSpec("music_caption", "anyseq.evaluation.music:music_caption", ("test", "heldout_melody")),
        TaskSpec("music_generation", "anyseq.evaluation.music:music_generation", ("test", "heldout_melody")),
        TaskSpec("dialogue", "anyseq.evaluation.dialogue:dialogue", ("test", "heldout_attributes")),
    )
}


def check_tasks(tasks: Sequence[str] | None) -> list[str]:
    """The tasks to run, in `TASKS` order; unknown names are an error naming the known ones."""
    if not tasks:
        return list(TASKS)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown evaluation tasks {unknown}; known: {list(TASKS)}")
    return [t for t in TASKS if t in tasks]


def media_seconds(tokenizer: Any) -> float | None:
    """The longest audio a tokenizer accepts, when its config says (`max_seconds`)."""
    return getattr(getattr(tokenizer, "config", None), "max_seconds", None)


def fraction(hits: Sequence[bool]) -> float | None:
    """Share of True; None for no cases."""
    return sum(map(bool, hits)) / len(hits) if hits else None


class Evaluation:
    """What the tasks share: the model, the data, generation, judges and the report's samples."""

    def __init__(
        self,
        model: AnySeq,
        data_dir: str | Path,
        out_dir: str | Path,
        config: EvalConfig,
        limit: int | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1 item per split, got {limit}")
        self.model = model
        self.data_dir = Path(data_dir)
        self.out_dir = Path(out_dir)
        self.config = config
        self.limit = limit
        self.manifest = read_manifest(self.data_dir)
        self.judges = JudgePanel(self.data_dir, cache_dir or self.out_dir / "judges", config)
        self._memo: dict[Any, Any] = {}

    # ---- data --------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        return split in self.manifest["splits"]

    def items(self, modality: str, split: str, sources: Sequence[str] | None = None) -> list[Item]:
        """The items of a split (of some sources only) in storage order; with a `limit`, up to
        that many, taken in turn from each source so every source is represented."""
        key = ("items", modality, split, tuple(sources or ()))
        if key not in self._memo:
            by_source: dict[str, list[Item]] = {}
            for item in iter_items(self.data_dir, modality, split):
                if sources is None or item.source in sources:
                    by_source.setdefault(item.source, []).append(item)
            everything = [item for group in by_source.values() for item in group]
            if self.limit is not None and len(everything) > self.limit:
                turns = zip_longest(*by_source.values())
                everything = [item for turn in turns for item in turn if item is not None][: self.limit]
            self._memo[key] = everything
        return self._memo[key]

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """`compute()` once per key: generations and judgements several tasks share."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def fit(self, modality: str, media: Any) -> tuple[Any, bool]:
        """Audio cut to what the modality's tokenizer accepts (AnyGPT cuts chat input to 5 s);
        returns the media and whether it was cut."""
        seconds = media_seconds(self.model.tokenizers.get(modality))
        if not isinstance(media, Audio) or seconds is None or media.duration <= seconds:
            return media, False
        keep = int(seconds * media.sample_rate) - media.sample_rate // 100  # 10 ms short of the limit
        return Audio(media.samples[:keep], media.sample_rate), True

    def media_part(self, modality: str, media: Any) -> Media:
        return Media(modality, source=self.fit(modality, media)[0])

    def request(self, task: str, media: Any = None, text: str = "") -> Conversation:
        """AnyGPT's pretraining template for a stage-1 task, with the task's first instruction."""
        modality, direction = PAIR_TASKS[task]
        part = self.media_part(modality, media) if direction == "media->text" else Media(modality)
        conversation = pair_conversation(direction, INSTRUCTIONS[task][0], part, text)
        return Conversation(conversation.messages[:1], None)

    def prompt_conversation(self, conversation: Conversation) -> Conversation:
        """A stored conversation with its audio fitted to the tokenizers (descriptions and labels dropped)."""
        messages = []
        for message in conversation.messages:
            parts = [
                p if isinstance(p, Text) else self.media_part(p.modality, p.source) for p in message.content
            ]
            messages.append(Message(message.role, parts))
        return Conversation(messages, conversation.system)

    def reconstruct(self, modality: str, media: Any, voice: Any = None) -> Image.Image | Audio:
        """The media through the model's tokenizer and back (with the voice prompt for speech): the
        best a model can output, so a judge's score on it bounds the model's from above."""
        codes = self.media_part(modality, media).resolve(self.model.tokenizers)
        return self.model._decode(Media(modality, codes=codes), voice).content

    # ---- generation --------------------------------------------------------------------
    def media_budget(self, modality: str) -> int:
        """New tokens that close a span the prompt opened: the longest span and its end token."""
        return self.model.layout.spec(modality).max_span_tokens + 2

    def generate(
        self,
        label: str,
        conversations: Sequence[Conversation],
        max_new_tokens: int,
        respond_with: str | None = None,
        voice: Any = None,
    ) -> list[Reply | None]:
        """Replies in batches (shortest prompts together), with a progress bar; None where the
        prompt leaves no room in the model's context."""
        model, size = self.model, self.config.batch_size
        prompts = [len(model.prompt_ids(c, respond_with)) for c in conversations]
        order = sorted(range(len(conversations)), key=lambda i: prompts[i])
        fits = [i for i in order if prompts[i] < model.context_length]
        replies: list[Reply | None] = [None] * len(conversations)
        sampling = {
            **with_sampling(model.checkpoint.sampling, self.config.sampling),
            "text": SamplingConfig(temperature=self.config.text_temperature),
        }
        with tqdm(total=len(conversations), desc=label, unit="item", leave=False) as bar:
            bar.update(len(conversations) - len(fits))
            for start in range(0, len(fits), size):
                batch = fits[start : start + size]
                out = model.chat_batch(
                    [conversations[i] for i in batch],
                    respond_with=[respond_with] * len(batch),
                    voice=voice,
                    max_new_tokens=max_new_tokens,
                    seed=self.config.seed + start,
                    sampling=sampling,
                )
                for index, reply in zip(batch, out, strict=True):
                    replies[index] = reply
                bar.update(len(batch))
        return replies

    # ---- samples -------------------------------------------------------------------------
    def save_media(self, task: str, split: str, name: str, media: Image.Image | Audio | MediaOutput) -> str:
        """Write a sample's picture (PNG) or sound (WAV) under `samples/`; returns its path in the report."""
        content = media.content if isinstance(media, MediaOutput) else media
        suffix = ".png" if isinstance(content, Image.Image) else ".wav"
        relative = Path("samples") / task / split / f"{name}{suffix}"
        path = self.out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        content.save(path)
        return relative.as_posix()

    def sample_indices(self, count: int) -> list[int]:
        """Which of `count` cases the report shows: evenly spread, so every source appears."""
        shown = min(count, self.config.samples_per_task)
        if shown <= 1:
            return list(range(shown))
        return sorted({round(k * (count - 1) / (shown - 1)) for k in range(shown)})


def attribute_metrics(checks: Sequence[Sequence[tuple[str, bool]]]) -> dict[str, float | None]:
    """Accuracy over every (case, attribute) check, share of cases with all right, and per attribute
    (`attribute:<name>`); cases without checks do not count."""
    flat = [check for case in checks for check in case]
    metrics = {
        "attribute_accuracy": fraction([ok for _, ok in flat]),
        "all_attributes": fraction([all(ok for _, ok in case) for case in checks if case]),
    }
    for name in dict.fromkeys(name for name, _ in flat):
        metrics[f"attribute:{name}"] = fraction([ok for n, ok in flat if n == name])
    return metrics


def per_attribute(metrics: dict[str, float | None]) -> dict[str, float | None]:
    """The `attribute:<name>` metrics as {name: value} (for the per-attribute plot)."""
    return {k.removeprefix("attribute:"): v for k, v in metrics.items() if k.startswith("attribute:")}


def media_output(reply: Reply | None, modality: str) -> MediaOutput | None:
    """The reply's last media output of `modality` (a reply may speak its text, then show media)."""
    if reply is None:
        return None
    found = [m for m in reply.media if m.modality == modality]
    return found[-1] if found else None


def reply_text(reply: Reply | None) -> str:
    return reply.text if reply is not None else ""


def too_long_note(replies: Sequence[Reply | None], context: int) -> list[str]:
    skipped = sum(r is None for r in replies)
    return (
        [f"{skipped} prompts do not fit the model's context of {context} tokens; scored as wrong"]
        if skipped
        else []
    )
