"""Two CPU processes under `accelerate launch` (DDP over gloo) train the same model."""

import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from anyseq.training.state import complete_checkpoints

DRIVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    from anyseq.training import TrainConfig, Trainer

    model, data, out = map(Path, sys.argv[1:4])
    config = TrainConfig.from_name("test", "pretrain", max_steps=4, save_every=2, eval_every=2)
    trainer = Trainer(config, model, data, out)
    summary = trainer.fit()
    rank = trainer.accelerator.process_index
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    params = {name: p.detach().clone() for name, p in unwrapped.named_parameters()}
    save_file(params, out / f"rank{rank}.safetensors")
    (out / f"rank{rank}.txt").write_text(f"{trainer.accelerator.num_processes} {summary.tokens}")
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_end_with_identical_parameters(tiny_world, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    out = tmp_path / "run"
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    command = [
        accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        str(driver), str(tiny_world.model), str(tiny_world.data), str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]

    assert (out / "rank0.txt").read_text() == (out / "rank1.txt").read_text() == f"2 {4 * 2 * 4 * 128}"
    rank0, rank1 = load_file(out / "rank0.safetensors"), load_file(out / "rank1.safetensors")
    initial = load_file(tiny_world.model / "model.safetensors")
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), name
    moved = [name for name, value in rank0.items() if not torch.equal(value, initial[name])]
    assert len(moved) == len(rank0)  # every parameter trained
    saved = load_file(out / "model" / "model.safetensors")
    assert all(torch.equal(saved[name], value) for name, value in rank0.items())
    assert [p.name for p in complete_checkpoints(out / "checkpoints")] == ["step-000002", "step-000004"]
