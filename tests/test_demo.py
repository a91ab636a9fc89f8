"""`anyseq demo`'s step runner: markers, resume, and commands run side by side."""

from __future__ import annotations

import json
import sys

import pytest

from anyseq import demo


def _touch(path, seconds: float = 0.0) -> list[str]:
    code = f"import pathlib, time; time.sleep({seconds}); pathlib.Path({str(path)!r}).write_text('x')"
    return [sys.executable, "-c", code]


def test_steps_run_side_by_side_leave_markers_and_resume(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    fail = tmp_path / "fail"
    fail.write_text("1")
    failing = [
        sys.executable,
        "-c",
        f"import pathlib, sys; sys.exit(int(pathlib.Path({str(fail)!r}).read_text()))",
    ]
    steps = [
        ("both", lambda: demo.SideBySide((_touch(tmp_path / "a", 1.0), _touch(tmp_path / "b", 1.0)))),
        ("flaky", lambda: failing),
        ("last", lambda: None),
    ]
    monkeypatch.setattr(demo, "_steps", lambda paths, preset: steps)

    with pytest.raises(SystemExit, match="demo step 'flaky' failed .*run `anyseq demo` to resume"):
        demo.run_demo(out)
    assert (tmp_path / "a").is_file() and (tmp_path / "b").is_file()
    side_by_side = json.loads((out / "steps" / "both.json").read_text())["seconds"]
    assert side_by_side < 1.9  # two 1 s commands at the same time: one after the other takes over 2 s
    assert not (out / "steps" / "flaky.json").exists()

    (tmp_path / "a").unlink()
    fail.write_text("0")
    summary = demo.run_demo(out)
    assert not (tmp_path / "a").exists()  # a finished step is not run again
    assert set(summary["step_seconds"]) == {"both", "flaky", "last"}
    assert summary["step_seconds"]["both"] == side_by_side
