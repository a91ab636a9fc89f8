"""The demo's showcase: the paper's eight directions and multi-turn dialogues that switch
modalities, run by the trained model on AnyWorld's test split, written as one
self-contained HTML page (images inline, audio players, the evaluation table).

Every picture and sound on the page is decoded from the model's own tokens (the input
and reference media are shown beside them, marked as such).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from rich.console import Console
from rich.table import Table

from anyseq.api import AnySeq, MediaOutput, Reply
from anyseq.conversation import Conversation, Media, Message, Text
from anyseq.io import atomic_write_json, atomic_write_text
from anyseq.media import Audio
from anyseq.world.dataset import Item, iter_conversations, iter_items

SEED = 0


@dataclass
class Cell:
    """One shown thing: text, or media (PIL image / Audio), with a caption."""

    label: str
    text: str | None = None
    media: Image.Image | Audio | None = None


@dataclass
class Example:
    title: str
    inputs: list[Cell] = field(default_factory=list)
    outputs: list[Cell] = field(default_factory=list)  # decoded from the model's tokens
    reference: list[Cell] = field(default_factory=list)


def _first(data: Path, modality: str, split: str, where: dict[str, Any] | None = None) -> Item:
    for item in iter_items(data, modality, split):
        if all(
            item.source == v if k == "source" else item.labels.get(k) == v for k, v in (where or {}).items()
        ):
            return item
    raise LookupError(f"{data}: no {modality} item in split {split!r} matching {where}")


def _media_cell(label: str, output: MediaOutput | Image.Image | Audio) -> Cell:
    return Cell(label, media=output.content if isinstance(output, MediaOutput) else output)


def _model_cell(make: Callable[[], str | MediaOutput]) -> Cell:
    """The model's answer as a cell; a model that fails to produce the asked-for output (it ran
    out of tokens inside a span, or wrote text only) is shown as such, not hidden."""
    try:
        output = make()
    except RuntimeError as error:  # the API's "the model produced no <modality>"
        return Cell("model (no output)", text=str(error))
    return Cell("model", text=output) if isinstance(output, str) else _media_cell("model", output)


def _reply_cells(reply: Reply) -> list[Cell]:
    return [
        Cell("model", text=part) if isinstance(part, str) else _media_cell(f"model ({part.modality})", part)
        for part in reply.parts
        if not isinstance(part, str) or part.strip()
    ]


def directions(model: AnySeq, data: Path) -> list[Example]:
    """The paper's eight directions on test items."""
    image = _first(data, "image", "test", {"source": "shapes"})
    speech = _first(data, "speech", "test")
    other_voice = next(
        (
            item
            for split in ("test", "heldout", "train")
            for item in iter_items(data, "speech", split)
            if item.labels.get("speaker") != speech.labels.get("speaker")
        ),
        speech,
    )
    music = _first(data, "music", "test")
    examples = [
        Example(
            "Image → text (caption)",
            [_media_cell("input", image.media)],
            [_model_cell(lambda: model.caption(image.media, seed=SEED))],
            [Cell("reference", image.text)],
        ),
        Example(
            "Text → image (draw)",
            [Cell("input", image.text)],
            [_model_cell(lambda: model.draw(image.text, seed=SEED))],
            [_media_cell("reference render", image.media)],
        ),
        Example(
            "Speech → text (transcribe)",
            [_media_cell("input", speech.media)],
            [_model_cell(lambda: model.transcribe(speech.media, seed=SEED))],
            [Cell("reference", speech.text)],
        ),
        Example(
            "Text → speech (speak)",
            [Cell("input", speech.text)],
            [_model_cell(lambda: model.speak(speech.text, seed=SEED))],
            [_media_cell("reference render", speech.media)],
        ),
        Example(
            f"Text → speech in a prompt's voice ({other_voice.labels.get('speaker')})",
            [Cell("input", speech.text), _media_cell("voice prompt", other_voice.media)],
            [_model_cell(lambda: model.speak(speech.text, voice=other_voice.media, seed=SEED))],
        ),
        Example(
            "Music → text (describe)",
            [_media_cell("input", music.media)],
            [_model_cell(lambda: model.describe_music(music.media, seed=SEED))],
            [Cell("reference", music.text)],
        ),
        Example(
            "Text → music (compose)",
            [Cell("input", music.text)],
            [_model_cell(lambda: model.compose(music.text, seed=SEED))],
            [_media_cell("reference render", music.media)],
        ),
    ]
    for _, conversation in iter_conversations(data, "instruct", "test"):
        first = conversation.messages[0]
        if all(isinstance(p, Text) for p in first.content):
            question = "".join(p.text for p in first.content)
            reply = model.chat(
                Conversation([Message("user", [Text(question)])], conversation.system), seed=SEED
            )
            examples.append(Example("Text → text (chat)", [Cell("input", question)], _reply_cells(reply)))
            break
    return examples


def _modalities(message: Message) -> set[str]:
    return {p.modality if isinstance(p, Media) else "text" for p in message.content}


def dialogues(model: AnySeq, data: Path, count: int = 2) -> list[Example]:
    """Replay held-out dialogues whose turns switch modalities: the model answers each
    user turn with its own earlier replies in the history."""
    chosen = []
    for split in ("test", "heldout"):
        for task, conversation in iter_conversations(data, "instruct", split):
            kinds = [frozenset(_modalities(m)) for m in conversation.messages]
            if len(conversation.messages) >= 4 and len(set(kinds)) >= 3:
                chosen.append((task, conversation))
            if len(chosen) == count:
                break
        if len(chosen) == count:
            break
    examples = []
    for task, conversation in chosen:
        history = Conversation([], conversation.system)
        example = Example(f"Dialogue ({task}, {len(conversation.messages) // 2} turns)")
        for message in conversation.messages:
            if message.role == "assistant":
                expected = next((p for p in message.content if isinstance(p, Media)), None)
                respond_with = (
                    expected.modality
                    if expected is not None and isinstance(message.content[0], Media)
                    else None
                )
                reply = model.chat(
                    history,
                    seed=SEED,
                    respond_with=respond_with,
                    voice=getattr(expected, "voice_prompt", None),
                )
                example.outputs.extend(_reply_cells(reply))
                history.messages.append(reply.to_message())
                continue
            history.messages.append(message)
            for part in message.content:
                example.outputs.append(
                    Cell("user", text=part.text)
                    if isinstance(part, Text)
                    else _media_cell(f"user ({part.modality})", part.source)
                )
        examples.append(example)
    return examples


def _data_uri(media: Image.Image | Audio) -> str:
    if isinstance(media, Image.Image):
        buffer = io.BytesIO()
        media.save(buffer, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return "data:audio/wav;base64," + base64.b64encode(media.to_bytes("WAV")).decode()


def _cell_html(cell: Cell) -> str:
    label = f'<div class="label">{html.escape(cell.label)}</div>'
    if cell.media is None:
        return f'<div class="cell">{label}<p>{html.escape(cell.text or "")}</p></div>'
    uri = _data_uri(cell.media)
    body = (
        f'<img src="{uri}" width="128">'
        if isinstance(cell.media, Image.Image)
        else f'<audio controls src="{uri}"></audio>'
    )
    return f'<div class="cell">{label}{body}</div>'


def _report_table(report: dict[str, Any] | None) -> str:
    if not report:
        return "<p>No evaluation report.</p>"
    entries = report.get("entries", report if isinstance(report, list) else [])
    rows = "".join(
        f"<tr><td>{html.escape(str(e.get('task')))}</td><td>{html.escape(str(e.get('split')))}</td>"
        f"<td>{e.get('n')}</td><td>{html.escape(str(e.get('metric')))}</td>"
        f"<td>{_number(e.get('value'))}</td><td>{_number(e.get('ceiling'))}</td></tr>"
        for e in entries
    )
    return (
        "<table><tr><th>task</th><th>split</th><th>n</th><th>metric</th><th>model</th>"
        f"<th>judge on ground truth</th></tr>{rows}</table>"
    )


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1100px; }
.example { border: 1px solid #ccc; border-radius: 6px; padding: .6em 1em; margin: 1em 0; }
.row { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.cell { min-width: 140px; max-width: 420px; }
.label { font-size: .8em; color: #666; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .2em .5em; }
"""


def render_page(
    examples: list[Example],
    report: dict[str, Any] | None,
    title: str,
    base_report: dict[str, Any] | None = None,
) -> str:
    base = (
        "<h2>Evaluation of the base model (after stage 1)</h2><p>AnyGPT's paper reports its table for this "
        f"model, before instruction tuning.</p>{_report_table(base_report)}"
        if base_report
        else ""
    )
    blocks = []
    for example in examples:
        sections = "".join(
            f'<div class="row">{"".join(_cell_html(c) for c in cells)}</div>'
            for cells in (example.inputs, example.outputs, example.reference)
            if cells
        )
        blocks.append(f'<div class="example"><h3>{html.escape(example.title)}</h3>{sections}</div>')
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        "<p>Every output marked <em>model</em> is decoded from the model's own tokens; inputs and references come from "
        "AnyWorld's test split.</p>"
        f"{''.join(blocks)}<h2>Evaluation</h2>{_report_table(report)}{base}</body></html>"
    )


def build_showcase(
    model_dir: Path, data: Path, report_path: Path | None, out_dir: Path, base_report_path: Path | None = None
) -> Path:
    """The page of `model_dir`'s examples with its evaluation report, and the base model's when given."""
    model = AnySeq.from_pretrained(model_dir)
    examples = directions(model, data) + dialogues(model, data)
    report, base_report = (
        json.loads(path.read_text()) if path and path.is_file() else None
        for path in (report_path, base_report_path)
    )
    page = out_dir / "index.html"
    atomic_write_text(page, render_page(examples, report, f"AnySeq showcase: {model_dir}", base_report))
    summary = [
        {
            "title": e.title,
            "model": [c.text if c.media is None else type(c.media).__name__ for c in e.outputs],
        }
        for e in examples
    ]
    atomic_write_json(out_dir / "showcase.json", summary)
    table = Table("direction", "model output")
    for item in summary:
        table.add_row(item["title"], " | ".join(str(x)[:60] for x in item["model"]))
    Console().print(table)
    return page
