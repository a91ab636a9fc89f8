"""The evaluation's report: `report.json` (one entry per task x split), `report.md` and plots.

report.md is the paper's table on AnyWorld: per task and metric a row for the model and
a row for the judge's ceiling (its score on the ground-truth media, as AnyGPT's "ground
truth" rows), the in-distribution test split beside the held-out splits, the targets of
the `tiny` model, and AnyGPT's published numbers in a separate column: they come from a
different benchmark (COCO, LibriSpeech, VCTK, MusicCaps) and a 7B model, so they are
context, not a comparison. Then plots (matplotlib, Agg) and a few samples per task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from anyseq.evaluation.harness import TASKS, Entry, Sample
from anyseq.io import atomic_write_json, atomic_write_text

FORMAT = "anyseq-eval/1"

# (task, metric) -> (comparison, value): the targets for the demo's `tiny` model on "test"
TARGETS: dict[tuple[str, str], tuple[str, float]] = {
    ("caption", "attribute_accuracy"): (">=", 0.90),
    ("text_to_image", "attribute_accuracy"): (">=", 0.80),
    ("asr", "wer"): ("<=", 0.10),
    ("tts", "wer_pocketsphinx"): ("<=", 0.15),
    ("tts", "wer_ctc"): ("<=", 0.15),
    ("voice_clone", "voice_match"): (">=", 0.70),
    ("music_caption", "attribute_accuracy"): (">=", 0.80),
    ("music_generation", "key_mode_accuracy"): (">=", 0.70),
    ("dialogue", "success"): (">=", 0.70),
}
# (task, metric) -> AnyGPT's published result on its own benchmark (Zhan et al., ACL 2024, section 5)
ANYGPT_PUBLISHED: dict[tuple[str, str], str] = {
    ("caption", "cider"): "CIDEr 107.5 (COCO captions)",
    ("text_to_image", "attribute_accuracy"): "CLIPscore 0.65 (COCO)",
    ("asr", "wer"): "WER 8.5 % (LibriSpeech test-clean; not reproduced by users)",
    (
        "tts",
        "wer_ctc",
    ): "WER 8.5 %, speaker similarity 0.77 (VCTK, zero-shot; check against the paper's table)",
    ("voice_clone", "voice_match"): "speaker similarity 0.77 (VCTK; a cosine, not a share)",
    ("music_caption", "attribute_accuracy"): "CLAP score (MusicCaps; see the paper's music table)",
    ("music_generation", "key_mode_accuracy"): "CLAP score (MusicCaps; see the paper's music table)",
}
# metrics shown in the table, per task (the first is the task's main one)
TABLE_METRICS: dict[str, tuple[str, ...]] = {
    "caption": ("attribute_accuracy", "cider", "bleu4", "meteor"),
    "text_to_image": ("attribute_accuracy", "emoji_retrieval"),
    "asr": ("wer",),
    "tts": ("wer_pocketsphinx", "wer_ctc"),
    "voice_clone": ("voice_match",),
    "music_caption": ("attribute_accuracy",),
    "music_generation": ("key_mode_accuracy", "tempo_accuracy", "instrument_accuracy"),
    "dialogue": ("success",),
}
NOTES = (
    "Every score comes from a judge that shares nothing with the model: pycocoevalcap, the world's "
    "caption grammar, a pixel-level scene judge, emoji retrieval, PocketSphinx with the world's grammar, "
    "a CTC recognizer, a speaker classifier and an instrument classifier trained only on real clips, "
    "a tempo judge on librosa's onset envelope (harmonic-sum autocorrelation) and a key judge "
    "anchored on the first note (chroma, scale fit).",
    "Ceiling: the same judge on the ground-truth media (the paper's 'ground truth' rows); a model "
    "cannot be expected to score better than its judge does on real data.",
    "SPICE is not reported: it downloads Stanford CoreNLP models on first use, and AnySeq runs offline.",
    "Text is decoded greedily; media with the checkpoint's sampling settings.",
)


def _clean(value: Any) -> Any:
    """JSON-ready: floats rounded to 4 places, NaN as null, dataclasses and tuples unfolded."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def target_of(task: str, metric: str, value: float | None) -> dict[str, Any] | None:
    if (task, metric) not in TARGETS:
        return None
    op, goal = TARGETS[(task, metric)]
    met = None if value is None else (value >= goal if op == ">=" else value <= goal)
    return {"op": op, "value": goal, "met": met}


def entry_dict(entry: Entry) -> dict[str, Any]:
    data = asdict(entry)
    data["target"] = target_of(entry.task, entry.metric, entry.value) if entry.split == "test" else None
    return _clean(data)


def _format(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if metric in ("cider", "bleu4", "meteor") else f"{value:.3f}"


def _cell(entries: Sequence[Entry], metric: str, ceiling: bool) -> str:
    cells = []
    for entry in entries:
        value = entry.ceilings.get(metric) if ceiling else entry.metrics.get(metric)
        prefix = f"{entry.split.removeprefix('heldout_')}: " if entry.split != "test" else ""
        cells.append(f"{prefix}{_format(value, metric)}" + ("" if ceiling else f" (n={entry.n})"))
    return "<br>".join(cells) or "—"


def table(entries: Sequence[Entry]) -> list[str]:
    lines = [
        "| task | metric | row | test (in-distribution) | held-out splits | target (`tiny`, test) "
        "| AnyGPT, published — a different benchmark |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, metrics in TABLE_METRICS.items():
        mine = [e for e in entries if e.task == task]
        if not mine:
            continue
        test = [e for e in mine if e.split == "test"]
        heldout = [e for e in mine if e.split != "test"]
        for metric in metrics:
            if not any(metric in e.metrics for e in mine):
                continue
            target = TARGETS.get((task, metric))
            goal = f"{target[0]} {target[1]:g}" if target else ""
            if target and test and (met := target_of(task, metric, test[0].metrics.get(metric))):
                goal += " ✓" if met["met"] else " ✗"
            published = ANYGPT_PUBLISHED.get((task, metric), "")
            name = metric.replace("_", " ")
            lines.append(
                f"| {task} | {name} | model | {_cell(test, metric, False)} | {_cell(heldout, metric, False)} "
                f"| {goal} | {published} |"
            )
            lines.append(
                f"| | | ceiling (judge on ground truth) | {_cell(test, metric, True)} "
                f"| {_cell(heldout, metric, True)} | | |"
            )
            if any(f"roundtrip_{metric}" in e.metrics for e in mine):
                roundtrip = f"roundtrip_{metric}"
                lines.append(
                    f"| | | judge on ground truth through the model's tokenizer | {_cell(test, roundtrip, False)} "
                    f"| {_cell(heldout, roundtrip, False)} | | |"
                )
    return lines


def plot(entries: Sequence[Entry], out_dir: Path) -> list[str]:
    """Write the report's figures under `plots/`; returns their paths relative to `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = out_dir / "plots"
    directory.mkdir(parents=True, exist_ok=True)
    written = []

    tasks = [t for t in TASKS if any(e.task == t for e in entries)]
    if tasks:
        columns = min(4, len(tasks))
        rows = math.ceil(len(tasks) / columns)
        figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.8 * rows), squeeze=False)
        for axis, task in zip(axes.flat, tasks, strict=False):
            mine = [e for e in entries if e.task == task]
            labels = [
                e.split.removeprefix("heldout_") + ("" if e.metric == mine[0].metric else f"\n({e.metric})")
                for e in mine
            ]
            values = [e.value if e.value is not None else 0.0 for e in mine]
            axis.bar(labels, values, color=["tab:blue" if e.split == "test" else "tab:orange" for e in mine])
            ceilings = [e.ceiling for e in mine]
            axis.scatter(
                labels,
                [c if c is not None else float("nan") for c in ceilings],
                marker="_",
                s=400,
                color="black",
            )
            axis.set_title(f"{task}\n{mine[0].metric}{' (lower is better)' if not mine[0].higher_is_better else ''}",
                           fontsize=8)  # fmt: skip
            axis.tick_params(labelsize=7)
        for axis in list(axes.flat)[len(tasks) :]:
            axis.axis("off")
        figure.suptitle("model (bars) and judge ceiling on ground truth (black)", fontsize=9)
        figure.tight_layout()
        figure.savefig(directory / "summary.png", dpi=110)
        plt.close(figure)
        written.append("plots/summary.png")

    with_attributes = [e for e in entries if e.split == "test" and e.series.get("attributes")]
    if with_attributes:
        figure, axes = plt.subplots(
            1, len(with_attributes), figsize=(4 * len(with_attributes), 3), squeeze=False
        )
        for axis, entry in zip(axes.flat, with_attributes, strict=True):
            names = list(entry.series["attributes"])
            axis.bar(names, [entry.series["attributes"][n] or 0.0 for n in names], label="model")
            ceiling = entry.series.get("attribute_ceilings", {})
            if ceiling:
                axis.scatter(names, [ceiling.get(n) or 0.0 for n in names], marker="_", s=300, color="black",
                             label="ceiling")  # fmt: skip
            axis.set_ylim(0, 1.05)
            axis.set_title(f"{entry.task} (test): accuracy per attribute", fontsize=8)
            axis.tick_params(axis="x", labelrotation=45, labelsize=7)
        figure.tight_layout()
        figure.savefig(directory / "attributes.png", dpi=110)
        plt.close(figure)
        written.append("plots/attributes.png")

    tempo = [e for e in entries if e.task == "music_generation" and e.split == "test"]
    if tempo:
        figure, axis = plt.subplots(figsize=(4, 4))
        for key, label, colour in (
            ("tempo", "model", "tab:blue"),
            ("tempo_ceiling", "ground truth", "black"),
        ):
            pairs = [(t, est) for t, est in tempo[0].series.get(key, []) if est is not None]
            if pairs:
                axis.scatter(*zip(*pairs, strict=True), s=10, label=label, color=colour, alpha=0.7)
        span = [40, 200]
        for factor, style in ((1.0, "-"), (2.0, ":"), (0.5, ":")):
            axis.plot(span, [factor * s for s in span], style, color="gray", linewidth=0.8)
        axis.set_xlabel("tempo asked (bpm)")
        axis.set_ylabel("tempo found by librosa (bpm)")
        axis.set_title("music generation (test): tempo", fontsize=9)
        axis.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(directory / "tempo.png", dpi=110)
        plt.close(figure)
        written.append("plots/tempo.png")
    return written


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _media_html(sample: Sample) -> str:
    out = []
    for role, path in sample.media.items():
        if path.endswith(".png"):
            out.append(f'{role}: <img src="{path}" width="64">')
        else:
            out.append(f'{role}: <audio controls src="{path}"></audio>')
    return "<br>".join(out)


def markdown(report: dict[str, Any], entries: Sequence[Entry], plots: Sequence[str]) -> str:
    lines = [
        "# AnySeq evaluation: the paper's table on AnyWorld",
        "",
        f"model `{report['model']}` · data `{report['data']}` · preset `{report['preset']}` · "
        f"limit {report['limit']} · {report['seconds_wall']:.0f} s",
        "",
        *(f"- {note}" for note in NOTES),
        *(f"- {note}" for note in report["notes"]),
        "",
        "## Results",
        "",
        *table(entries),
        "",
    ]
    if plots:
        lines += ["## Plots", "", *(f"![{Path(p).stem}]({p})" for p in plots), ""]
    lines += ["## Tasks", ""]
    for entry in entries:
        lines += [f"### {entry.task} · {entry.split} (n={entry.n})", ""]
        extras = ", ".join(f"{k} {_format(v, k)}" for k, v in entry.metrics.items())
        lines += [f"metrics: {extras}", ""]
        if entry.ceilings:
            lines += ["ceilings: " + ", ".join(f"{k} {_format(v, k)}" for k, v in entry.ceilings.items()), ""]
        lines += [*(f"- {note}" for note in entry.notes), ""]
        if entry.samples:
            lines += ["| prompt | reference | output | verdict | media |", "|---|---|---|---|---|"]
            for s in entry.samples:
                lines.append(
                    f"| {_escape(s.prompt)} | {_escape(s.reference)} | {_escape(s.output)} "
                    f"| {_escape(s.verdict)} | {_media_html(s)} |"
                )
            lines.append("")
    return "\n".join(lines) + "\n"


def write_report(
    out_dir: Path,
    entries: Sequence[Entry],
    model: str,
    data: str,
    preset: str,
    config: dict[str, Any],
    limit: int | None,
    seconds: dict[str, float],
    notes: Sequence[str],
    wall_seconds: float | None = None,
) -> dict[str, Any]:
    """Write report.json, report.md and the plots into `out_dir`; returns the report. `seconds`:
    each task's time; `wall_seconds`: the whole run's, less than their sum when tasks ran side by side."""
    plots = plot(entries, out_dir)
    report = {
        "format": FORMAT,
        "model": model,
        "data": data,
        "preset": preset,
        "config": config,
        "limit": limit,
        "seconds": _clean(seconds),
        "seconds_total": round(sum(seconds.values()), 1),
        "seconds_wall": round(sum(seconds.values()) if wall_seconds is None else wall_seconds, 1),
        "notes": list(notes),
        "entries": [entry_dict(e) for e in entries],
        "anygpt_published": {f"{t}/{m}": v for (t, m), v in ANYGPT_PUBLISHED.items()},
        "targets": {f"{t}/{m}": {"op": op, "value": v} for (t, m), (op, v) in TARGETS.items()},
        "plots": plots,
    }
    atomic_write_json(out_dir / "report.json", report)
    atomic_write_text(out_dir / "report.md", markdown(report, entries, plots))
    return report
