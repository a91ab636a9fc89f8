"""`anyseq chat` driven through a pipe, on a random-weight checkpoint."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from PIL import Image

from anyseq.testing import random_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("ckpt") / "model", context_length=1024)


def run_chat(checkpoint, out_dir, lines: list[str]) -> str:
    script = "from anyseq.cli import app; app()"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "chat",
            "--model",
            str(checkpoint),
            "--out",
            str(out_dir),
            "--max-new-tokens",
            "80",  # longer than a whole speech span (50) or image span (16)
            "--seed",
            "0",
        ],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_three_turn_dialogue_with_media_in_and_out(checkpoint, tmp_path):
    picture = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (230, 20, 20)).save(picture)
    voice = tmp_path / "voice.wav"
    soundfile.write(voice, 0.3 * np.sin(np.arange(16000) * 0.05).astype(np.float32), 16000)
    saved = tmp_path / "dialogue.json"
    out = tmp_path / "replies"
    stdout = run_chat(
        checkpoint,
        out,
        [
            f"/image {picture}",
            "Describe this picture.",
            "/reply speech",
            f"/voice {voice}",
            "Say it out loud.",
            f"/music {voice}",
            "/reply image",
            "Draw what this music feels like.",
            f"/save {saved}",
        ],
    )
    assert "attached image" in stdout and "attached music" in stdout
    assert stdout.count("AnyGPT") >= 3
    speech, image = sorted(out.glob("reply002_*.wav")), sorted(out.glob("reply003_*.png"))
    assert speech and image, stdout
    samples, rate = soundfile.read(speech[0])
    assert rate == 16000 and len(samples) > 0
    assert Image.open(image[0]).size == (64, 64)
    dialogue = json.loads(saved.read_text())
    assert [m["role"] for m in dialogue["messages"]] == ["user", "assistant"] * 3
    assert dialogue["messages"][0]["content"][0]["type"] == "image"
    assert dialogue["messages"][4]["content"][0]["type"] == "music"
    assert dialogue["messages"][5]["content"][0]["type"] == "image"


@pytest.mark.slow
def test_bad_input_prints_a_message_and_the_chat_goes_on(checkpoint, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    stdout = run_chat(
        checkpoint,
        tmp_path / "replies",
        [
            f"/image {tmp_path / 'missing.png'}",
            f"/image {tmp_path / 'notes.txt'}",
            "/video clip.mp4",
            "word " * 3000,
            f"/load {tmp_path / 'missing.json'}",
            "Hello there",
        ],
    )
    assert f"cannot attach {tmp_path / 'missing.png'}" in stdout and "no such file" in stdout
    assert "not a readable image" in stdout
    assert "unknown command /video" in stdout
    assert "not sent" in stdout and "the context holds 1024" in stdout
    assert "cannot load" in stdout
    assert (
        stdout.rstrip().splitlines()[-1].startswith("AnyGPT") or "AnyGPT" in stdout.split("Hello there")[-1]
    )
