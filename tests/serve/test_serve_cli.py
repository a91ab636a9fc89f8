"""`anyseq serve` as a command: refuses a folder that is no checkpoint, serves one that is."""

import socket
import subprocess
import sys
import time

import httpx
import pytest
import typer
from serve_helpers import MODEL
from typer.testing import CliRunner

from anyseq.serve.cli import serve

SERVE = "import typer; from anyseq.serve.cli import serve; typer.run(serve)"


def test_serve_refuses_a_folder_without_a_checkpoint(tmp_path):
    app = typer.Typer()
    app.command()(serve)
    result = CliRunner().invoke(app, ["--model", str(tmp_path)])
    assert result.exit_code == 2
    assert "not an AnySeq checkpoint (no anyseq.json)" in " ".join(result.output.replace("│", " ").split())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_serve_command_answers_on_the_given_port(checkpoint):
    port = free_port()
    command = [sys.executable, "-c", SERVE, "--model", str(checkpoint), "--port", str(port), "--no-ui"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert health.json()["model"] == MODEL
        assert httpx.get(f"http://127.0.0.1:{port}/ui/").status_code == 404  # --no-ui
    finally:
        process.terminate()
        process.wait(timeout=30)
