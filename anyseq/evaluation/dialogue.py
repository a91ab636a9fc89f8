"""Any-to-any dialogue: the share of turns that answer in the right modality with the right content.

AnyGPT shows multi-turn any-to-any dialogues (AnyInstruct, section 4.2) but reports no
score for them. Here every assistant turn of the held-out dialogues is a case: the
model gets the dialogue so far (earlier turns as written, so turns are independent and
batch together) and its reply passes when (1) its modality (that of its last media part,
or text) is the reference turn's, and (2) its content passes that modality's judge:

- text: the same world facts as the reference (`anyseq.judges.text.replies_agree`);
- image: a shape scene with every attribute right (pixel judge), or the right emoji
  (nearest-neighbour retrieval);
- speech: PocketSphinx with the world's grammar hears the words within `speech_pass_wer`;
- music: instrument and tempo class both right (the instrument classifier, librosa's beat
  tracker): what the dialogues ask to change ("Play it on the flute.", "Now play it
  faster."). Key/mode is not required: its judge is right on too few real clips (see
  music_generation's ceiling).

The ceiling is the same judges on the reference turns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anyseq.api import Reply
from anyseq.conversation import Conversation, Media, Message, Text
from anyseq.evaluation.harness import Entry, Evaluation, Sample, fraction, too_long_note
from anyseq.evaluation.music import music_verdicts
from anyseq.evaluation.speech import transcribe
from anyseq.judges.image import judge_shape_scene
from anyseq.judges.speech import word_error_rate
from anyseq.judges.text import replies_agree
from anyseq.world.dataset import LabeledMedia, iter_conversations


@dataclass
class Turn:
    task: str  # the dialogue's first exchange, e.g. "image->music"
    prompt: Conversation  # the dialogue up to the user's message
    reference: Message  # the assistant turn as written

    @property
    def modality(self) -> str:
        return message_modality(self.reference.content)


def message_modality(parts: list[Any]) -> str:
    """A turn's modality: that of its last media part, or "text" (as `exchange_pairs` counts them)."""
    media = [p.modality for p in parts if hasattr(p, "modality")]  # Media parts and MediaOutputs
    return media[-1] if media else "text"


def _text(parts: list[Any]) -> str:
    return "".join(p.text if isinstance(p, Text) else p for p in parts if isinstance(p, Text | str)).strip()


def _reference_media(turn: Turn) -> LabeledMedia:
    return [p for p in turn.reference.content if isinstance(p, Media)][-1]


def _text_passes(ev: Evaluation, turn: Turn, output: Any) -> bool:
    return replies_agree(_text(turn.reference.content), output or "")


def _image_passes(ev: Evaluation, turn: Turn, output: Any) -> bool | None:
    labels = _reference_media(turn).labels
    if labels.get("kind") not in ("shapes", "emoji"):
        return None
    if output is None:
        return False
    if labels["kind"] == "emoji":
        return ev.judges.emoji.nearest([output])[0] == labels["name"]
    return bool(judge_shape_scene(output, labels)["all_ok"])


def _speech_passes(ev: Evaluation, turn: Turn, output: Any) -> bool | None:
    words = _reference_media(turn).labels.get("text")
    if words is None:
        return None
    heard = transcribe(ev, "pocketsphinx", [output])[0]
    return word_error_rate([words], [heard]) <= ev.config.speech_pass_wer


def _music_passes(ev: Evaluation, turn: Turn, output: Any) -> bool | None:
    labels = _reference_media(turn).labels
    if not {"instrument", "key", "mode", "tempo"} <= set(labels):
        return None
    found = music_verdicts(ev, output, labels)
    return found["instrument"] and found["tempo"]


# modality -> does an output (text, or decoded media) have the reference turn's content? None: the
# reference has no labels to judge by (e.g. imported user data); such turns are judged on modality only
CONTENT_JUDGES: dict[str, Callable[[Evaluation, Turn, Any], bool | None]] = {
    "text": _text_passes,
    "image": _image_passes,
    "speech": _speech_passes,
    "music": _music_passes,
}


def _output(reply: Reply | None, modality: str) -> Any:
    """What the judge of `modality` reads from a reply: its text, or its last media of that modality."""
    if reply is None:
        return None
    if modality == "text":
        return reply.text
    found = [m.content for m in reply.media if m.modality == modality]
    return found[-1] if found else None


def _reference_output(turn: Turn) -> Any:
    return _text(turn.reference.content) if turn.modality == "text" else _reference_media(turn).source


def dialogue_turns(ev: Evaluation, split: str) -> list[Turn]:
    """Every assistant turn of up to `limit` dialogues of a split, with the dialogue before it."""
    turns = []
    for task, conversation in iter_conversations(ev.data_dir, "instruct", split, limit=ev.limit):
        for index, message in enumerate(conversation.messages):
            if message.role == "assistant":
                history = Conversation(conversation.messages[:index], conversation.system)
                turns.append(Turn(task, ev.prompt_conversation(history), message))
    return turns


def _summary(parts: list[Any]) -> str:
    return " ".join(
        (p.text if isinstance(p, Text) else p) if isinstance(p, Text | str) else f"<{p.modality}>"
        for p in parts
    ).strip()


def dialogue(ev: Evaluation, split: str) -> Entry | None:
    turns = dialogue_turns(ev, split)
    if not turns:
        return None
    replies = ev.generate(f"dialogue/{split}", [t.prompt for t in turns], ev.config.max_dialogue_reply_tokens)
    modality_ok, success, truth, unlabelled = [], [], [], 0
    replied: dict[str, dict[str, int]] = {}  # the reference turn's modality -> the reply's -> turns
    for turn, reply in zip(turns, replies, strict=True):
        judge = CONTENT_JUDGES[turn.modality]
        got = message_modality(reply.parts) if reply is not None else "none"
        counts = replied.setdefault(turn.modality, {})
        counts[got] = counts.get(got, 0) + 1
        right_modality = got == turn.modality
        modality_ok.append(right_modality)
        content = judge(ev, turn, _output(reply, turn.modality)) if right_modality else False
        success.append(right_modality and content is not False)
        on_reference = judge(ev, turn, _reference_output(turn))
        truth.append(on_reference is not False)
        unlabelled += on_reference is None
    metrics: dict[str, float | None] = {
        "success": fraction(success),
        "modality_accuracy": fraction(modality_ok),
    }
    ceilings: dict[str, float | None] = {"success": fraction(truth)}
    for modality in CONTENT_JUDGES:
        picked = [i for i, t in enumerate(turns) if t.modality == modality]
        metrics[f"success:{modality}"] = fraction([success[i] for i in picked])
        metrics[f"modality_accuracy:{modality}"] = fraction([modality_ok[i] for i in picked])
        ceilings[f"success:{modality}"] = fraction([truth[i] for i in picked])
    samples = []
    for i in ev.sample_indices(len(turns)):
        prompt = _summary(turns[i].prompt.messages[-1].content)
        output = _summary(replies[i].parts) if replies[i] is not None else "(prompt too long)"
        media = {}
        if replies[i] is not None and replies[i].media:
            media["output"] = ev.save_media("dialogue", split, f"{i:03d}-output", replies[i].media[-1])
        verdict = (
            "passes"
            if success[i]
            else "right modality, wrong content"
            if modality_ok[i]
            else "wrong modality"
        )
        samples.append(
            Sample(
                f"[{turns[i].task}] {prompt}", _summary(turns[i].reference.content), output, verdict, media
            )
        )
    return Entry(
        "dialogue",
        split,
        len(turns),
        "success",
        metrics["success"],
        ceilings["success"],
        metrics=metrics,
        ceilings=ceilings,
        notes=[
            f"{len(turns)} assistant turns; earlier turns as written; spoken replies are judged by "
            f"PocketSphinx with the grammar (pass: WER <= {ev.config.speech_pass_wer}), music by instrument "
            "and tempo",
            *(
                [f"{unlabelled} turns have no labels to judge their content by; scored on modality"]
                if unlabelled
                else []
            ),
            "replies by modality (reference -> reply: turns; none: no room in the context): "
            + "; ".join(
                f"{want} -> " + ", ".join(f"{got} {n}" for got, n in sorted(counts.items()))
                for want, counts in replied.items()
            ),
            *too_long_note(replies, ev.model.context_length),
        ],
        samples=samples,
        series={"replies": replied},
    )
