"""Resuming: a run killed with SIGKILL and resumed ends exactly where the uninterrupted run
ends, and a checkpoint that was not completely written is never picked up."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from anyseq.io import TEMP_PREFIX
from anyseq.training import TrainConfig, Trainer, train
from anyseq.training.state import STATE_FILE, TRAINING_DIR, complete_checkpoints, latest_checkpoint

# Same machine, same thread count, same kernels: the resumed run is expected to be bitwise
# identical; the tolerance only absorbs a different summation order should a kernel pick one.
ATOL = 1e-6
STEPS = 40


def _command(world, run, *extra):
    return [
        sys.executable, "-m", "anyseq.training.cli", "pretrain", "--data", str(world.view), "--out", str(run),
        "--init", str(world.model), "--preset", "test", "--max-steps", str(STEPS), *extra,
    ]  # fmt: skip


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def _losses(run):
    return {
        line["step"]: line["loss"]
        for line in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    }


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_result(tiny_world, tmp_path):
    reference = tmp_path / "reference"  # uninterrupted, in this process (one thread, as the others)
    train(
        TrainConfig.from_name("test", "pretrain", max_steps=STEPS),
        tiny_world.model,
        tiny_world.view,
        reference,
    )

    run = tmp_path / "killed"
    process = subprocess.Popen(
        _command(tiny_world, run), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    target = run / "checkpoints" / "step-000015"
    deadline = time.monotonic() + 240
    while not target.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    assert not (run / "model").exists(), "the run finished before it could be killed"
    assert all(path.name.startswith("step-") for path in complete_checkpoints(run / "checkpoints"))

    resumed = subprocess.run(
        [*_command(tiny_world, run), "--resume"], env=_env(), capture_output=True, timeout=300, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected, got = (
        load_file(reference / "model" / "model.safetensors"),
        load_file(run / "model" / "model.safetensors"),
    )
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        assert (value - got[name]).abs().max() <= ATOL, name
    assert _losses(run) == pytest.approx(_losses(reference), rel=ATOL)
    assert sorted(_losses(run)) == list(range(1, STEPS + 1))
    summaries = [json.loads((r / "summary.json").read_text())["val_loss"] for r in (reference, run)]
    for task, losses in summaries[0].items():
        steps, values = zip(*losses["history"], strict=True)
        assert [step for step, _ in summaries[1][task]["history"]] == list(steps)
        assert [value for _, value in summaries[1][task]["history"]] == pytest.approx(values, rel=ATOL)


def test_partially_written_checkpoints_are_never_picked_up(tiny_world, tmp_path):
    config = TrainConfig.from_name("test", "pretrain", max_steps=12)
    run = tmp_path / "run"
    trainer = Trainer(config, tiny_world.model, tiny_world.data, run)
    for _ in range(5):
        trainer.step()
    good = trainer.save()
    checkpoints = run / "checkpoints"
    # What a kill leaves behind: an atomic write's temporary, and a step directory cut short
    # (as a copy by hand could leave it); also a damaged one without its optimizer state.
    partial = checkpoints / f"{TEMP_PREFIX}step-000010-x1y2"
    shutil.copytree(good, partial)
    cut = checkpoints / "step-000011"
    shutil.copytree(good, cut)
    (cut / TRAINING_DIR / STATE_FILE).unlink()
    damaged = checkpoints / "step-000012"
    shutil.copytree(good, damaged)
    (damaged / "model.safetensors").unlink()
    assert latest_checkpoint(checkpoints) == good

    resumed = Trainer(config, tiny_world.model, tiny_world.data, run, resume=True)
    assert resumed.resumed_from == good and resumed.state.step == 5
    assert not partial.exists()  # interrupted writes are cleaned up on resume
    assert resumed.step().loss_sum.isfinite()


def test_an_interrupted_save_leaves_no_checkpoint(tiny_world, tmp_path, monkeypatch):
    config = TrainConfig.from_name("test", "pretrain", max_steps=12)
    trainer = Trainer(config, tiny_world.model, tiny_world.data, tmp_path / "run")
    trainer.step()
    first = trainer.save()
    trainer.step()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process died while writing the optimizer state

    monkeypatch.setattr("anyseq.training.trainer.write_training_files", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.save()
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == [first.name]
