"""The harness's pieces without a world: presets, task names, attribute metrics, audio fitting,
targets, and the report written from known entries."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from anyseq.api import AnySeq
from anyseq.evaluation.config import EvalConfig
from anyseq.evaluation.harness import (
    TASKS,
    Entry,
    Evaluation,
    Sample,
    attribute_metrics,
    check_tasks,
    fraction,
)
from anyseq.evaluation.report import TABLE_METRICS, target_of, write_report
from anyseq.media import Audio
from anyseq.testing import random_checkpoint


def test_presets_and_bad_settings():
    assert EvalConfig.preset("tiny") == EvalConfig()
    assert EvalConfig.preset("test", batch_size=3).batch_size == 3
    with pytest.raises(ValueError, match="unknown evaluation preset 'huge'"):
        EvalConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown settings \\['colour'\\]"):
        EvalConfig.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="batch_size"):
        EvalConfig(batch_size=0)
    assert EvalConfig.from_dict(EvalConfig.preset("test").to_dict()) == EvalConfig.preset("test")
    with pytest.raises(ValueError, match=r"sampling\['music'\]: unknown settings \['temp'\]"):
        EvalConfig(sampling={"music": {"temp": 0.5}})
    with pytest.raises(
        ValueError, match=r"sampling\['speech'\]: sampling setting temperature must be a number, got 'hot'"
    ):
        EvalConfig(sampling={"speech": {"temperature": "hot"}})
    with pytest.raises(ValueError, match="sampling: text is set by text_temperature"):
        EvalConfig(sampling={"text": {"temperature": 1.0}})
    changed = EvalConfig(sampling={"speech": {"temperature": 0.5}})
    assert EvalConfig.from_dict(changed.to_dict()) == changed  # how the worker processes get it


def test_task_names():
    assert check_tasks(None) == list(TASKS) == list(TABLE_METRICS)
    assert check_tasks(["tts", "caption"]) == ["caption", "tts"]  # always in the table's order
    with pytest.raises(ValueError, match="unknown evaluation tasks \\['painting'\\]; known: \\['caption'"):
        check_tasks(["painting"])
    for spec in TASKS.values():
        assert callable(spec.load()) and spec.splits[0] == "test"


def test_attribute_metrics_golden_values():
    checks = [
        [("colour", True), ("shape", False)],
        [("colour", True), ("shape", True)],
        [],  # a case without labels does not count
    ]
    assert attribute_metrics(checks) == {
        "attribute_accuracy": 0.75,
        "all_attributes": 0.5,
        "attribute:colour": 1.0,
        "attribute:shape": 0.5,
    }
    assert fraction([]) is None


def test_targets():
    assert target_of("asr", "wer", 0.08) == {"op": "<=", "value": 0.10, "met": True}
    assert target_of("caption", "attribute_accuracy", 0.5) == {"op": ">=", "value": 0.90, "met": False}
    assert target_of("caption", "cider", 50.0) is None
    assert target_of("dialogue", "success", None)["met"] is None


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> AnySeq:
    return AnySeq.from_pretrained(random_checkpoint(tmp_path_factory.mktemp("eval-model") / "model"))


def test_audio_is_cut_to_the_tokenizer_limit(model, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text(json.dumps({"sample_rate": 16000, "splits": ["test"]}))
    ev = Evaluation(model, tmp_path / "data", tmp_path / "out", EvalConfig.preset("test"))
    limit = model.tokenizers["speech"].config.max_seconds
    long = Audio(np.zeros(int(16000 * (limit + 1)), dtype=np.float32), 16000)
    cut, was_cut = ev.fit("speech", long)
    assert was_cut and limit - 0.02 < cut.duration < limit
    short = Audio(np.zeros(8000, dtype=np.float32), 16000)
    assert ev.fit("speech", short) == (short, False)
    codes = ev.media_part("speech", long).resolve(model.tokenizers)  # encodes without a MediaError
    assert codes.shape[0] == 1
    assert ev.sample_indices(10) == [0, 9] and ev.sample_indices(1) == [0]
    with pytest.raises(ValueError, match="limit must be at least 1"):
        Evaluation(model, tmp_path / "data", tmp_path / "out", EvalConfig(), limit=0)


def test_generation_samples_media_with_the_checkpoints_settings_as_changed(model, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text(json.dumps({"sample_rate": 16000, "splits": ["test"]}))
    asked = []
    monkeypatch.setattr(
        model, "chat_batch", lambda conversations, **kw: asked.append(kw["sampling"]) or [None]
    )
    config = EvalConfig.preset("test", sampling={"speech": {"temperature": 0.5}})
    ev = Evaluation(model, tmp_path / "data", tmp_path / "out", config)
    ev.generate("tts", [ev.request("tts", text="a red circle")], 8, respond_with="speech")
    stored = model.checkpoint.sampling
    assert asked[0]["speech"] == replace(stored["speech"], temperature=0.5)  # the rest kept
    assert asked[0]["music"] == stored["music"] and asked[0]["image"] == stored["image"]
    assert asked[0]["text"].greedy  # text_temperature 0


def test_report_from_known_entries(tmp_path):
    entries = [
        Entry("asr", "test", 10, "wer", 0.25, 0.0, False, {"wer": 0.25}, {"wer": 0.0}, ["a note"],
              [Sample("transcribe", "a red circle", "a red square", "wrong", {"input": "samples/x.wav"})]),
        Entry("asr", "heldout_voice", 8, "wer", 0.5, 0.0, False, {"wer": 0.5}, {"wer": 0.0}),
        Entry("caption", "test", 4, "attribute_accuracy", 0.95, 1.0, True,
              {"attribute_accuracy": 0.95, "cider": 80.0}, {"attribute_accuracy": 1.0, "cider": 120.0},
              series={"attributes": {"colour": 1.0, "shape": 0.9}}),
    ]  # fmt: skip
    report = write_report(tmp_path, entries, "m", "d", "test", {}, None, {"asr": 1.0, "caption": 2.0}, ["n"])
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved == json.loads(json.dumps(report))
    first = saved["entries"][0]
    assert {k: first[k] for k in ("task", "split", "n", "metric", "value", "ceiling")} == {
        "task": "asr", "split": "test", "n": 10, "metric": "wer", "value": 0.25, "ceiling": 0.0,
    }  # fmt: skip
    assert first["target"] == {"op": "<=", "value": 0.1, "met": False}
    assert saved["entries"][1]["target"] is None  # targets are for the in-distribution split
    text = (tmp_path / "report.md").read_text()
    assert "| asr | wer | model | 0.250 (n=10) | voice: 0.500 (n=8) | <= 0.1 ✗ | WER 8.5 %" in text
    assert "| | | ceiling (judge on ground truth) | 0.000 | voice: 0.000 | | |" in text
    assert "CIDEr 107.5 (COCO captions)" in text and "a different benchmark" in text
    assert "| caption | attribute accuracy | model | 0.950 (n=4) | — | >= 0.9 ✓ |" in text
    assert '<audio controls src="samples/x.wav">' in text and "SPICE" in text
    for plot in ("summary", "attributes"):
        assert (tmp_path / "plots" / f"{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
