"""The real command path on a micro AnyWorld: tokenize once, then `anyseq train pretrain` and `sft`."""

import json

import pytest
from typer.testing import CliRunner

from anyseq.modalities import build_tokenizer, save_tokenizer
from anyseq.training.cli import app, tokenize_command
from anyseq.training.tokenize import read_view_manifest, tokenize_data
from anyseq.world.build import build_world
from anyseq.world.config import WorldConfig
from anyseq.world.dataset import read_manifest


@pytest.fixture(scope="module")
def micro_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("micro")
    build_world(WorldConfig.from_preset("micro"), root / "world", workers=1, progress=False)
    tokenizers = {  # small spans, so every micro dialogue fits the test backbone's 256 tokens
        "image": build_tokenizer("grid-image", grid=3, levels=4),
        "speech": build_tokenizer(
            "band-audio", modality="speech", frame_rate=10, num_codebooks=1, codebook_size=16
        ),
        "music": build_tokenizer(
            "band-audio", modality="music", frame_rate=10, num_codebooks=1, codebook_size=16
        ),
    }
    for name, tokenizer in tokenizers.items():
        save_tokenizer(tokenizer, root / "tokenizers" / name)
    return root


@pytest.mark.slow
def test_tokenize_then_train_both_stages_from_the_command_line(micro_world, tmp_path):
    world, runner = micro_world / "world", CliRunner()
    tokenizer_options = [
        f"--tokenizer={micro_world / 'tokenizers' / name}" for name in ("image", "speech", "music")
    ]
    model = tmp_path / "model"
    result = runner.invoke(app, ["init", "--data", str(world), "--out", str(model), "--backbone", "test",
                                 "--text-vocab-size", "512", "--hidden-size", "48", *tokenizer_options])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((model / "config.json").read_text())["hidden_size"] == 48

    tokenize_command(world, model)
    view = tokenize_data(world, model)  # found, not made again
    # A view written by older code (version 1: every token of a pair a target) is made again.
    stale = read_view_manifest(view) | {"version": 1}
    (view / "manifest.json").write_text(json.dumps(stale))
    with pytest.raises(ValueError, match="not a version-2 tokenized view"):
        read_view_manifest(view)
    assert tokenize_data(world, model) == view and read_view_manifest(view)["version"] == 2
    manifest, world_manifest = read_view_manifest(view), read_manifest(world)
    pairs = manifest["corpora"]["pretrain"]["train"]
    assert {task: c["examples"] for task, c in pairs["tasks"].items()} == world_manifest["pretrain"]["train"]
    dialogues = manifest["corpora"]["instruct"]["train"]
    assert dialogues["examples"] == world_manifest["instruct"]["train"]["dialogues"]

    settings = ["--preset", "test", "--max-steps", "3"]
    pretrain = runner.invoke(app, ["pretrain", "--data", str(world), "--out", str(tmp_path / "pre"),
                                   "--init", str(model), *settings])  # fmt: skip
    assert pretrain.exit_code == 0, pretrain.output
    assert "image_caption: validation loss" in pretrain.output
    # Some micro dialogues are longer than the test backbone's 256 tokens: skip them, counted.
    config = tmp_path / "sft.json"
    config.write_text(json.dumps({"preset": "test", "stage": "sft", "max_steps": 3, "overlong": "skip"}))
    sft = runner.invoke(app, ["sft", "--data", str(world), "--out", str(tmp_path / "sft"),
                              "--init", str(tmp_path / "pre"), "--config", str(config)])  # fmt: skip
    assert sft.exit_code == 0, sft.output
    summary = json.loads((tmp_path / "sft" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["val_loss"]
    skipped = summary["overlong"]
    assert sum(skipped.get("train", {}).values()) > 0
    validation_tasks = set(summary["val_loss"]) | set(skipped.get("validation", {}))
    assert validation_tasks == set(world_manifest["instruct"]["validation"]["pairs"])


def test_sft_needs_a_starting_model(tmp_path):
    result = CliRunner().invoke(app, ["sft", "--data", str(tmp_path), "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and "sft continues a pretrained model" in result.output
