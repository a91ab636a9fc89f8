"""Build AnyWorld: plan shards, make them in parallel workers, resume, write the manifest.

A build is a list of tasks, each making one shard (a range of items of one source and
split, a range of dialogues, or a chunk of a user JSONL file) from an RNG keyed by the
seed and the task, so the bytes never depend on the number of workers or the order in
which they finish (each task speaks in its own `speech.session()`).
Each task writes its shards atomically and then a small record in
`progress/`; a resumed build skips every task with a record, so an interrupted build
(killed, out of disk, Ctrl-C) continues where it stopped and ends with the same bytes
as an uninterrupted one. Stage-1 pairs are made last, from the item ids that exist.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import resource
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tqdm import tqdm

from anyseq.io import atomic_write_json, clean_stale_temporaries
from anyseq.world import dialogues, engines, images, music, pretrain, speech, userdata
from anyseq.world.config import BASE_SPLITS, HELDOUT_PREFIX, WorldConfig
from anyseq.world.sampler import WorldSampler, shard_rng
from anyseq.world.sources import SOURCES, split_catalogue
from anyseq.world.store import (
    DIALOGUE_SCHEMA,
    ITEM_SCHEMA,
    PAIR_SCHEMA,
    dumps,
    encode_audio,
    encode_image,
    read_shard,
    shard_paths,
    write_shard,
)

log = logging.getLogger("anyseq.world")
FORMAT = "anyseq-world/1"
INSTRUCT_HELDOUT = HELDOUT_PREFIX + "attributes"
DIALOGUE_COST = 0.03  # CPU seconds per dialogue (`anyseq bench data`), for scheduling
USER_COST = 0.01


@dataclass(frozen=True)
class Task:
    name: str  # unique; names its progress record
    kind: str  # "items" | "dialogues" | "user"
    source: str  # item source name | "dialogues" | index of the user file
    split: str
    start: int
    count: int
    cost: float  # estimated CPU seconds


def _ranges(total: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(size, total - start)) for start in range(0, total, size)]


def instruct_splits(config: WorldConfig) -> dict[str, int]:
    counts = config.instruct.counts
    named = {
        **{split: counts.get(split, 0) for split in BASE_SPLITS},
        INSTRUCT_HELDOUT: counts.get("heldout", 0),
    }
    return {split: n for split, n in named.items() if n}


def plan(config: WorldConfig) -> list[Task]:
    """Every task of the build, slowest first (so two workers finish together)."""
    tasks = []
    for source in SOURCES.values():
        for split, total in source.sizes(config).items():
            for start, count in _ranges(total, config.items_per_shard):
                name = f"items-{source.name}-{split}-{start // config.items_per_shard:05d}"
                tasks.append(Task(name, "items", source.name, split, start, count, count * source.cost))
    for split, total in instruct_splits(config).items():
        for start, count in _ranges(total, config.dialogues_per_shard):
            name = f"dialogues-{split}-{start // config.dialogues_per_shard:05d}"
            tasks.append(Task(name, "dialogues", "dialogues", split, start, count, count * DIALOGUE_COST))
    for index, file in enumerate(config.user_data.files):
        path = Path(file)
        if not path.is_file():
            raise FileNotFoundError(f"user data {path}: no such JSONL file")
        lines = userdata.count_lines(path)
        for start, count in _ranges(lines, config.user_data.lines_per_shard):
            name = f"user{index:02d}-{start // config.user_data.lines_per_shard:05d}"
            tasks.append(Task(name, "user", str(index), "", start, count, count * USER_COST))
    return sorted(tasks, key=lambda t: (-t.cost, t.name))


def _sizes(config: WorldConfig) -> dict[str, int]:
    """Items per source (emoji aside: counting them needs the emoji font)."""
    return {name: sum(source.sizes(config).values()) for name, source in SOURCES.items() if name != "emoji"}


def check_engines(config: WorldConfig) -> None:
    """Fail before any work when an engine the config needs is missing (with its install command)."""
    sizes = _sizes(config)
    dialogue_count = sum(instruct_splits(config).values())
    if sizes["espeak"] or dialogue_count:
        speech.phonemes("a")  # loads libespeak-ng
    if sizes["melody"] or sizes["chorale"] or sizes["folk"] or dialogue_count:
        engines.fluidsynth()
        engines.soundfont()
    if config.emoji.limit != 0:
        engines.emoji_font()


def _item_task(config: WorldConfig, out: Path, task: Task) -> dict[str, Any]:
    source = SOURCES[task.source]
    made = source.make(config, task.split, task.start, task.count)
    rows = [row.to_row(source.modality, source.name, task.split) for row in made]
    shard = f"{source.name}-{task.start // config.items_per_shard:05d}"
    return {
        "outputs": [_write(out, "items", source.modality, task.split, shard, source.name, rows, ITEM_SCHEMA)]
    }


def _write(
    out: Path, corpus: str, modality: str | None, split: str, shard: str, source: str, rows: list, schema
) -> dict[str, Any]:
    """Write one shard; returns its entry of the task's progress record."""
    parts = [corpus, modality, split] if modality else [corpus, split]
    relative = "/".join([*parts, f"{shard}.parquet"])
    write_shard(out / relative, rows, schema)
    output = {"path": relative, "corpus": corpus, "split": split, "source": source, "count": len(rows)}
    return {**output, "modality": modality} if modality else output


def dialogue_emoji(config: WorldConfig, split: str) -> list[images.Emoji]:
    """The emoji a dialogue of `split` may show: those of the matching item split."""
    emoji_split = HELDOUT_PREFIX + "emoji" if split.startswith(HELDOUT_PREFIX) else split
    return SOURCES["emoji"].names(config, emoji_split)


def _dialogue_row(
    config: WorldConfig, split: str, index: int, script: dialogues.Script, rendered: list
) -> dict:
    labels = []
    for request, media in zip(script.requests, rendered, strict=True):
        extra = {"kind": request.kind, "caption": request.caption, "description": request.description}
        if request.voice_prompt is not None:
            extra["voice_prompt"] = request.voice_prompt
        labels.append(dumps({**media.labels, **extra}))
    return {
        "id": f"dialogue-{split}-{index:06d}",
        "split": split,
        "task": script.pair,
        "template": script.template,
        "spoken": script.spoken,
        "turn_pairs": json.dumps(script.turn_pairs),
        "conversation": json.dumps(script.conversation.to_dict(), ensure_ascii=False),
        "media": [
            encode_image(m.media) if m.modality == "image" else encode_audio(m.media) for m in rendered
        ],
        "media_modalities": [m.modality for m in rendered],
        "media_formats": ["png" if m.modality == "image" else "flac" for m in rendered],
        "media_labels": labels,
    }


def _dialogue_task(config: WorldConfig, out: Path, task: Task) -> dict[str, Any]:
    emoji = dialogue_emoji(config, task.split) if config.emoji.limit != 0 else []
    scripts = []
    for index in range(task.start, task.start + task.count):
        sampler = WorldSampler(config, task.split, shard_rng(config.seed, "dialogue", task.split, index))
        scripts.append(dialogues.write_script(sampler, emoji, dialogues.PAIRS[index % len(dialogues.PAIRS)]))
    requests = [request for script in scripts for request in script.requests]
    rendered = iter(
        dialogues.render_requests(requests, config.image_size, config.sample_rate, config.music.seconds)
    )
    rows = [
        _dialogue_row(config, task.split, index, script, [next(rendered) for _ in script.requests])
        for index, script in enumerate(scripts, task.start)
    ]
    shard = f"dialogues-{task.start // config.dialogues_per_shard:05d}"
    output = _write(out, "instruct", None, task.split, shard, "dialogues", rows, DIALOGUE_SCHEMA)
    stats = {
        "dialogues": len(scripts),
        "pairs": dict(Counter(s.pair for s in scripts)),
        "templates": dict(Counter(s.template for s in scripts)),
        "turn_pairs": dict(Counter(p for s in scripts for p in s.turn_pairs)),
        "spoken": sum(s.spoken for s in scripts),
        "follow_ups": sum(s.follow_ups for s in scripts),
        "media": dict(Counter(r.modality for r in requests)),
    }
    return {"outputs": [output], "instruct": {task.split: stats}}


def _user_task(config: WorldConfig, out: Path, task: Task) -> dict[str, Any]:
    path = Path(config.user_data.files[int(task.source)])
    prefix = f"user{int(task.source):02d}"
    shard = f"{prefix}-{task.start // config.user_data.lines_per_shard:05d}"
    chunk = userdata.read_chunk(path, prefix, task.start, task.count, config.user_data, config.sample_rate)
    outputs = [
        _write(out, "items", modality, split, shard, "user", rows, ITEM_SCHEMA)
        for (modality, split), rows in sorted(chunk.items.items())
    ]
    instruct = {}
    for split, rows in sorted(chunk.conversations.items()):
        outputs.append(_write(out, "instruct", None, split, shard, "user", rows, DIALOGUE_SCHEMA))
        instruct[split] = {
            "dialogues": len(rows),
            "pairs": dict(Counter(row["task"] for row in rows)),
            "turn_pairs": dict(Counter(pair for row in rows for pair in json.loads(row["turn_pairs"]))),
        }
    report = {"lines": chunk.lines, "skipped": userdata.skipped_dicts(chunk)}
    return {"outputs": outputs, "instruct": instruct, "user": report}


TASK_RUNNERS = {"items": _item_task, "dialogues": _dialogue_task, "user": _user_task}


class _Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append((record.levelno, record.getMessage()))


def _cpu_seconds() -> float:
    """CPU time of this process and of the programs it ran (FluidSynth)."""
    own, programs = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + programs.ru_utime + programs.ru_stime


def run_task(config_dict: dict[str, Any], out: str, task: Task) -> tuple[Task, dict[str, Any]]:
    """Make one task's shards, then its progress record (the marker a resume trusts)."""
    config = WorldConfig.from_dict(config_dict)
    began, cpu = time.perf_counter(), _cpu_seconds()
    collected = _Collected()
    log.addHandler(collected)
    try:
        with speech.session():
            record = {"task": asdict(task), **TASK_RUNNERS[task.kind](config, Path(out), task)}
    finally:
        log.removeHandler(collected)
    record["log"] = collected.messages  # the parent logs them: a worker's log goes nowhere else
    record["seconds"] = round(time.perf_counter() - began, 3)
    record["cpu_seconds"] = round(_cpu_seconds() - cpu, 3)
    atomic_write_json(Path(out) / "progress" / f"{task.name}.json", record)
    return task, record


def _item_ids(out: Path) -> dict[str, dict[str, list[str]]]:
    """split -> modality -> item ids, read from the item shards."""
    ids: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for modality_dir in sorted((out / "items").glob("*")):
        for split_dir in sorted(modality_dir.glob("*")):
            for path in shard_paths(split_dir):
                ids[split_dir.name][modality_dir.name] += [r["id"] for r in read_shard(path, ["id"])]
    return ids


def _pretrain(config: WorldConfig, out: Path) -> None:
    """Stage-1 pairs of every split, from the items that exist (fast: no media)."""
    for split, items in sorted(_item_ids(out).items()):
        marker = out / "progress" / f"pretrain-{split}.json"
        if marker.is_file():
            continue
        rows = pretrain.make_pairs(items, split, config.pretrain, config.seed)
        outputs = []
        for index, (start, count) in enumerate(_ranges(len(rows), config.pairs_per_shard)):
            relative = f"pretrain/{split}/pairs-{index:05d}.parquet"
            write_shard(out / relative, rows[start : start + count], PAIR_SCHEMA)
            outputs.append(
                {"path": relative, "corpus": "pretrain", "split": split, "source": "pairs", "count": count}
            )
        tasks = dict(Counter(row["task"] for row in rows))
        atomic_write_json(
            marker, {"task": {"name": marker.stem}, "outputs": outputs, "pretrain": {split: tasks}}
        )


def _merge(into: dict[str, Any], counts: dict[str, Any]) -> None:
    for key, value in counts.items():
        if isinstance(value, dict):
            _merge(into.setdefault(key, {}), value)
        else:
            into[key] = into.get(key, 0) + value


def make_manifest(config: WorldConfig, out: Path) -> dict[str, Any]:
    """Counts per corpus, split, source, task and modality pair, from the progress records."""
    items: dict[str, Any] = {}
    pretrain_counts: dict[str, Any] = {}
    instruct: dict[str, Any] = {}
    skipped: list[dict[str, Any]] = []
    user_lines = shards = 0
    for path in sorted((out / "progress").glob("*.json")):
        record = json.loads(path.read_text())
        for output in record["outputs"]:
            shards += 1
            if output["corpus"] == "items":
                _merge(items, {output["modality"]: {output["split"]: {output["source"]: output["count"]}}})
        _merge(pretrain_counts, record.get("pretrain", {}))
        _merge(instruct, record.get("instruct", {}))
        if "user" in record:
            user_lines += record["user"]["lines"]
            skipped += record["user"]["skipped"]
    covered = {pair for stats in instruct.values() for pair in stats.get("turn_pairs", {})}
    found = {split for per_modality in items.values() for split in per_modality} | set(instruct)
    splits = [s for s in BASE_SPLITS if s in found] + sorted(found - set(BASE_SPLITS))
    return {
        "format": FORMAT,
        "preset": config.preset,
        "seed": config.seed,
        "image_size": config.image_size,
        "sample_rate": config.sample_rate,
        "music_seconds": config.music.seconds,
        "splits": splits,
        "items": items,
        "pretrain": pretrain_counts,
        "instruct": instruct,
        "instruct_pairs": {
            "covered": sorted(covered),
            "missing": [pair for pair in dialogues.PAIRS if pair not in covered],
        },
        "heldout": heldout_sets(config),
        "user_data": {"files": list(config.user_data.files), "lines": user_lines, "skipped": skipped},
        "shards": shards,
    }


def heldout_sets(config: WorldConfig) -> dict[str, Any]:
    """What each held-out split holds out."""
    emoji = [e.name for e in SOURCES["emoji"].names(config, HELDOUT_PREFIX + "emoji")]
    pieces = {}
    for name, catalogue, counts in (
        ("chorale", music.chorale_catalogue, config.music.chorales),
        ("folk", music.folk_catalogue, config.music.folk),
    ):
        if counts.get("heldout"):
            entries = split_catalogue(len(catalogue()), counts, config.seed, name, "melody")
            pieces[name] = [catalogue()[i].title for i in entries.get(HELDOUT_PREFIX + "melody", [])]
    return {
        "colour_shape": [list(pair) for pair in config.heldout.colour_shape],
        "voices": list(config.heldout.voices),
        "instrument_mode": [list(pair) for pair in config.heldout.instrument_mode],
        "emoji": emoji,
        "pieces": pieces,
    }


def _preload(config: WorldConfig) -> list[str]:
    """Modules the fork server imports once for all workers."""
    modules = ["anyseq.world.build"]
    sizes = _sizes(config)
    if sizes["chorale"] or sizes["folk"]:
        modules += ["music21.corpus", "music21.converter"]
    if sizes["digits"]:
        modules.append("sklearn.datasets")
    if sizes["photos"]:
        modules.append("skimage.data")
    if config.emoji.limit != 0:
        modules.append("fontTools.ttLib")
    return modules


def _main_importable() -> bool:
    """Worker processes import the caller's main module again; a script read from stdin
    cannot be (the build then runs in this process)."""
    path = getattr(sys.modules["__main__"], "__file__", None)
    if path is None or Path(path).is_file():
        return True
    log.warning("%s cannot be imported by worker processes: building in this process", path)
    return False


def build_world(
    config: WorldConfig, out_dir: str | Path, workers: int = 2, progress: bool = True
) -> dict[str, Any]:
    """Build (or resume building) AnyWorld in `out_dir`; returns the manifest it writes.

    `out_dir` may hold an interrupted build of the same config, never of another one.
    With `workers` > 1 the tasks run in worker processes, which import the calling script
    again (as multiprocessing's "spawn" does): call it under `if __name__ == "__main__":`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.json"
    if saved.is_file() and json.loads(saved.read_text()) != config.to_dict():
        raise ValueError(f"{out} holds a build of a different config ({saved}); use a new --out or delete it")
    check_engines(config)
    atomic_write_json(saved, config.to_dict())
    for directory in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        clean_stale_temporaries(directory)

    tasks = plan(config)
    todo = [t for t in tasks if not (out / "progress" / f"{t.name}.json").is_file()]
    log.info("%s: %d of %d tasks to do", out, len(todo), len(tasks))
    began = time.perf_counter()
    run = partial(run_task, config.to_dict(), str(out))
    processes = min(workers, len(todo)) if _main_importable() else 1
    with tqdm(total=len(todo), unit="shard", desc="AnyWorld", disable=not progress) as bar:
        if processes > 1:
            # fresh processes forked from a server that imported the world once: a fork of the
            # caller could inherit locks held by its threads (pyarrow's, torch's) and hang
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_preload(config))
            with context.Pool(processes) as pool:
                for task, record in pool.imap_unordered(run, todo):
                    for level, message in record["log"]:
                        log.log(level, message)
                    bar.update()
                    bar.set_postfix_str(f"{task.name} {record['seconds']:.1f}s")
        else:
            for task in todo:
                run(task)
                bar.update()
    _pretrain(config, out)
    manifest = make_manifest(config, out)
    atomic_write_json(out / "manifest.json", manifest)
    cpu = sum(json.loads(p.read_text()).get("cpu_seconds", 0) for p in (out / "progress").glob("*.json"))
    log.info(
        "%s: built in %.1f s; its tasks used %.1f CPU seconds in all", out, time.perf_counter() - began, cpu
    )
    return manifest
