"""User JSONL data: read by the same loaders; bad files are skipped, counted and named."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from PIL import Image

from anyseq.media import Audio
from anyseq.world.build import build_world
from anyseq.world.config import WorldConfig
from anyseq.world.dataset import LabeledMedia, iter_conversations, iter_items, read_manifest

FIXTURE = Path(__file__).parent.parent / "fixtures" / "world"


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, list[str]]:
    """The fixture JSONL imported alone (the "user" preset), with the warnings it logged."""
    data = tmp_path_factory.mktemp("user")
    shutil.copytree(FIXTURE, data / "fixture")
    files = [str(data / "fixture" / "user.jsonl")]
    config = WorldConfig.from_preset("user", user_data={"files": files, "max_audio_seconds": 2.0})
    handler = _Collect()
    logging.getLogger("anyseq.world").addHandler(handler)
    try:
        build_world(config, data / "out", workers=1, progress=False)
    finally:
        logging.getLogger("anyseq.world").removeHandler(handler)
    return data / "out", handler.messages


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_good_lines_become_items_pairs_and_conversations(imported):
    out, _ = imported
    images = list(iter_items(out, "image", "train"))
    assert [i.text for i in images] == ["a red circle on a white background"]
    assert isinstance(images[0].media, Image.Image) and images[0].media.size == (32, 32)
    assert images[0].source == "user" and images[0].id == "user00-000001"
    assert [i.text for i in iter_items(out, "image", "validation")] == ["a blue square on a black background"]
    (speech,) = iter_items(out, "speech", "train")
    assert isinstance(speech.media, Audio) and speech.media.sample_rate == 16000  # 8 kHz file, resampled
    assert speech.media.duration == pytest.approx(0.5, abs=0.01) and speech.labels == {"speaker": "sine"}
    (tune,) = iter_items(out, "music", "train")
    assert tune.text == "a steady tone" and tune.media.duration == pytest.approx(1.0, abs=0.01)
    tasks = {task for task, _ in iter_conversations(out, "pretrain", "train")}
    assert tasks == {"image_caption", "image_generation", "asr", "tts", "music_caption", "music_generation"}
    ((task, conversation),) = iter_conversations(out, "instruct", "train")
    assert task == "image->text"
    part = conversation.messages[0].content[1]
    assert isinstance(part, LabeledMedia) and isinstance(part.source, Image.Image)


def test_bad_files_are_skipped_counted_and_named(imported):
    out, messages = imported
    manifest = read_manifest(out)
    skipped = {(s["line"], s["path"]): s["reason"] for s in manifest["user_data"]["skipped"]}
    assert manifest["user_data"]["lines"] == 13
    assert set(skipped) == {
        (6, None),
        (7, "corrupt.png"),
        (8, "empty.wav"),
        (9, "too_many_pixels.png"),
        (10, "too_long.flac"),
        (11, "missing.png"),
        (12, "empty.wav"),
        (13, None),
    }
    assert "not valid JSON" in skipped[(6, None)]
    assert (
        "not a readable image" in skipped[(7, "corrupt.png")] and " at 0x" not in skipped[(7, "corrupt.png")]
    )
    assert "file is empty" in skipped[(8, "empty.wav")]
    assert "16810000 pixels exceeds the limit of 16777216" in skipped[(9, "too_many_pixels.png")]
    assert "longer than the maximum of 2.0 s" in skipped[(10, "too_long.flac")]
    assert "no such file" in skipped[(11, "missing.png")]
    assert "needs exactly one of" in skipped[(13, None)]
    # each one is named in the log, with its file and line
    for line, path in skipped:
        assert any(f"user.jsonl line {line}: skipped {path or 'the line'}" in m for m in messages)


def test_an_oversized_file_is_skipped_before_it_is_read(tmp_path):
    shutil.copy(FIXTURE / "tune.flac", tmp_path / "tune.flac")
    (tmp_path / "data.jsonl").write_text('{"music": "tune.flac", "text": "a tone"}\n')
    config = WorldConfig.from_preset(
        "user", user_data={"files": [str(tmp_path / "data.jsonl")], "max_file_bytes": 1000}
    )
    manifest = build_world(config, tmp_path / "out", workers=1, progress=False)
    (skipped,) = manifest["user_data"]["skipped"]
    assert skipped["reason"] == "5443 bytes exceeds the limit of 1000"


def test_a_missing_jsonl_file_is_an_error(tmp_path):
    config = WorldConfig.from_preset("user", user_data={"files": [str(tmp_path / "nope.jsonl")]})
    with pytest.raises(FileNotFoundError, match="nope.jsonl: no such JSONL file"):
        build_world(config, tmp_path / "out", workers=1, progress=False)
