"""`anyseq demo`'s step runner: markers and resume."""

from __future__ import annotations

import json
import sys

import pytest

from anyseq import demo


def _touch(path, seconds: float = 0.0) -> list[str]:
    code = f"import pathlib, time; time.sleep({seconds}); pathlib.Path({str(path)!r}).write_text('x')"
    return [sys.executable, "-c", code]


def test_steps_leave_markers_and_resume(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    fail = tmp_path / "fail"
    fail.write_text("1")
    failing = [
        sys.executable,
        "-c",
        f"import pathlib, sys; sys.exit(int(pathlib.Path({str(fail)!r}).read_text()))",
    ]
    steps = [
        ("first", lambda: _touch(tmp_path / "a")),
        ("flaky", lambda: failing),
        ("last", lambda: None),
    ]
    monkeypatch.setattr(demo, "_steps", lambda paths, preset: steps)

    with pytest.raises(SystemExit, match="demo step 'flaky' failed .*run `anyseq demo` to resume"):
        demo.run_demo(out)
    assert (tmp_path / "a").is_file()
    first = json.loads((out / "steps" / "first.json").read_text())["seconds"]
    assert not (out / "steps" / "flaky.json").exists()

    (tmp_path / "a").unlink()
    fail.write_text("0")
    summary = demo.run_demo(out)
    assert not (tmp_path / "a").exists()  # a finished step is not run again
    assert set(summary["step_seconds"]) == {"first", "flaky", "last"}
    assert summary["step_seconds"]["first"] == first
