"""`evaluate` end to end: a random-weight checkpoint on a small AnyWorld built here; every task
runs on its test and held-out splits, the judges' ceilings on ground truth are reported, the
report is complete, and trained judges are cached as safetensors and reused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from anyseq.evaluation import evaluate
from anyseq.evaluation.harness import TASKS
from anyseq.testing import random_checkpoint
from anyseq.world.build import build_world
from anyseq.world.config import WorldConfig

pytestmark = pytest.mark.slow


def counts(train: int, test: int, heldout: int) -> dict[str, int]:
    return {"train": train, "validation": 0, "test": test, "heldout": heldout}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[dict, Path]:
    threads = torch.get_num_threads()
    root = tmp_path_factory.mktemp("eval")
    world = WorldConfig.from_preset(
        "micro",
        shapes=counts(2, 2, 2),
        emoji={"fractions": {"test": 0.25, "heldout": 0.25}, "limit": 8},
        digits={"limit": 0},
        photos={"limit": 0},
        speech={"counts": counts(4, 2, 2)},
        music={
            "seconds": 2.0,
            "melodies": counts(2, 2, 2),
            "chorales": counts(0, 0, 0),
            "folk": counts(0, 0, 0),
            "excerpts_per_piece": 1,
        },
        instruct={"counts": counts(0, 4, 4), "turns": (1, 2)},
    )
    build_world(world, root / "world", workers=1, progress=False)
    model = random_checkpoint(root / "model")
    report = evaluate(model, root / "world", root / "eval", None, limit=4, preset="test")
    assert torch.get_num_threads() == threads  # restored after the run
    return report, root


def test_every_task_runs_on_its_test_and_heldout_splits(evaluated):
    report, _ = evaluated
    ran = {(e["task"], e["split"]) for e in report["entries"]}
    expected = {(name, split) for name, spec in TASKS.items() for split in spec.splits}
    assert ran == expected, report["notes"]
    for entry in report["entries"]:
        assert {"task", "split", "n", "metric", "value", "ceiling", "metrics", "ceilings"} <= set(entry)
        assert entry["n"] >= 1 and entry["metric"] in entry["metrics"]
        assert entry["value"] == entry["metrics"][entry["metric"]]


def test_ceilings_are_the_judges_on_ground_truth(evaluated):
    report, _ = evaluated
    entries = {(e["task"], e["split"]): e for e in report["entries"]}
    # attribute parsers read the world's own captions perfectly; a picture retrieves itself
    for key in [("caption", "test"), ("caption", "heldout_colour_shape"), ("music_caption", "test")]:
        assert entries[key]["ceiling"] == 1.0
    assert entries[("text_to_image", "heldout_emoji")]["ceiling"] == 1.0
    assert entries[("text_to_image", "heldout_colour_shape")]["ceiling"] == 1.0  # the pixel judge on renders
    assert entries[("asr", "test")]["ceiling"] == 0.0
    for task in ("tts", "voice_clone", "music_generation", "dialogue"):
        assert entries[(task, "test")]["ceiling"] is not None
    # a random model is far below its judges' ceilings
    assert entries[("caption", "test")]["value"] < 0.5
    assert entries[("asr", "test")]["value"] > 0.5
    assert entries[("dialogue", "test")]["ceilings"]["success"] > entries[("dialogue", "test")]["value"]


def test_dialogue_counts_the_modality_of_every_reply(evaluated):
    report, _ = evaluated
    for entry in (e for e in report["entries"] if e["task"] == "dialogue"):
        replied = entry["series"]["replies"]
        assert sum(n for counts in replied.values() for n in counts.values()) == entry["n"]
        right = sum(counts.get(want, 0) for want, counts in replied.items())
        assert right / entry["n"] == pytest.approx(entry["metrics"]["modality_accuracy"], abs=1e-4)  # rounded
        for want, counts in replied.items():
            share = counts.get(want, 0) / sum(counts.values())
            assert entry["metrics"][f"modality_accuracy:{want}"] == pytest.approx(share, abs=1e-4)
        assert any(note.startswith("replies by modality (reference -> reply") for note in entry["notes"])


def test_report_files(evaluated):
    report, root = evaluated
    out = root / "eval"
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))
    text = (out / "report.md").read_text()
    assert "ceiling (judge on ground truth)" in text and "AnyGPT, published — a different benchmark" in text
    assert "colour_shape:" in text and "voice:" in text and "attributes:" in text  # held-out beside test
    assert "CIDEr 107.5" in text and "CLIPscore 0.65" in text and "WER 8.5 %" in text
    for plot in report["plots"]:
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    samples = [s for e in report["entries"] for s in e["samples"]]
    assert samples and all((out / path).is_file() for s in samples for path in s["media"].values())


def test_judges_are_cached_as_safetensors_and_reused(evaluated):
    report, root = evaluated
    cache = root / "eval" / "judges"
    trained = sorted(p.name.split("-")[0] for p in cache.iterdir() if (p / "model.safetensors").is_file())
    assert trained == ["ctc", "emoji", "instrument", "speaker"]
    assert not list(cache.rglob("*.pkl")) and not list(cache.rglob("*.pt"))
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("model.safetensors")}
    again = evaluate(
        root / "model", root / "world", root / "again", ["voice_clone"], limit=2, preset="test", cache=cache
    )
    assert [e["task"] for e in again["entries"]] == ["voice_clone", "voice_clone"]
    assert {
        p: p.stat().st_mtime_ns for p in cache.rglob("model.safetensors")
    } == before  # loaded, not retrained
    assert not (root / "again" / "judges").exists()


def test_judges_built_ahead_by_the_cli_are_the_ones_evaluate_uses(evaluated, tmp_path):
    """`anyseq eval-judges` (the demo runs it beside the music tokenizer) writes the cache that
    `anyseq eval --cache` then loads: same judges, same names, nothing retrained."""
    from typer.testing import CliRunner

    from anyseq.cli import app

    _, root = evaluated
    cache = tmp_path / "judges"
    result = CliRunner().invoke(app, ["eval-judges", "--data", str(root / "world"), "--cache", str(cache),
                                      "--preset", "test"])  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("ctc", "speaker", "instrument", "emoji"):
        assert f"{name}: " in result.output and "unavailable" not in result.output
    made_by_eval = sorted(p.name for p in (root / "eval" / "judges").iterdir() if p.name != "logs")
    assert sorted(p.name for p in cache.iterdir() if p.name != "logs") == made_by_eval  # same keys
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("model.safetensors")}
    evaluate(root / "model", root / "world", tmp_path / "out", ["music_generation"], limit=2, preset="test",
             cache=cache)  # fmt: skip
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("model.safetensors")} == before


def test_bad_arguments(evaluated, tmp_path):
    _, root = evaluated
    with pytest.raises(ValueError, match="unknown evaluation tasks"):
        evaluate(root / "model", root / "world", tmp_path, ["painting"])
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        evaluate(root / "model", tmp_path / "nowhere", tmp_path, ["asr"])


def test_a_sampling_change_is_recorded_in_the_report(evaluated, tmp_path):
    _, root = evaluated
    changes = {"speech": {"temperature": 0.5}}
    report = evaluate(root / "model", root / "world", tmp_path, ["tts"], limit=1, preset="test",
                      cache=root / "eval" / "judges", sampling=changes)  # fmt: skip
    assert report["config"]["sampling"] == changes
    note = 'media sampled with the checkpoint\'s settings changed by {"speech": {"temperature": 0.5}}'
    assert note in report["notes"] and note in (tmp_path / "report.md").read_text()


def test_workers_evaluate_side_by_side_to_the_same_report(evaluated, tmp_path):
    """Two processes, each a split of a task at a time (tts and voice_clone sharing their speech in
    one), give the serial run's entries in its order; the judges come from the shared cache."""
    report, root = evaluated
    tasks = ["caption", "tts", "voice_clone", "music_caption"]
    cache = root / "eval" / "judges"
    parallel = evaluate(root / "model", root / "world", tmp_path, tasks, limit=4, preset="test", cache=cache,
                        workers=2)  # fmt: skip
    serial = [e for e in report["entries"] if e["task"] in tasks]
    assert [(e["task"], e["split"]) for e in parallel["entries"]] == [(e["task"], e["split"]) for e in serial]
    for got, expected in zip(parallel["entries"], serial, strict=True):
        assert (got["value"], got["metrics"], got["ceiling"]) == (expected["value"], expected["metrics"],
                                                                  expected["ceiling"]), got["task"]  # fmt: skip
    assert parallel["config"]["workers"] == 2 and set(parallel["seconds"]) == set(tasks)
    assert 0 < parallel["seconds_wall"] and not (tmp_path / "judges").exists()
