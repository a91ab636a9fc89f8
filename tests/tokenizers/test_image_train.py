"""Training and evaluating the image tokenizer: loss, loop, checkpoint and resume, metrics, end to end on AnyWorld."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from anyseq.modalities import load_tokenizer
from anyseq.modalities.image_vq import VQImageConfig, VQImageTokenizer
from anyseq.tokenizers.image_eval import (
    attribute_survival,
    codebook_usage,
    evaluate_image_tokenizer,
    psnr,
    ssim,
)
from anyseq.tokenizers.image_train import (
    ImageSet,
    ImageTrainConfig,
    _batch,
    edge_map,
    edge_maps,
    has_fine_detail,
    reconstruction_loss,
    sampling_probabilities,
    train_image_tokenizer,
    train_vq_image,
    validate,
)
from anyseq.world.images import render_shape_scene, sample_scene

MICRO = {"channels": (16,), "encoder_blocks": (1,), "decoder_blocks": (1,), "head": 32, "levels": (5, 5, 5)}


def micro_config(**overrides) -> ImageTrainConfig:
    settings = {"steps": 30, "batch_size": 8, "learning_rate": 5e-3, "warmup_steps": 5, "epoch_steps": 10}
    return ImageTrainConfig(**{**settings, "validation_images": 16, "threads": 1, **overrides})


def scene_tensor(count: int, seed: int) -> tuple[torch.Tensor, list[dict]]:
    rng = random.Random(seed)
    labels = [sample_scene(rng, frozenset(), heldout=False) for _ in range(count)]
    images = np.stack([np.asarray(render_shape_scene(scene)) for scene in labels])  # (N, 64, 64, 3)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels


@pytest.fixture(scope="module")
def scenes() -> tuple[torch.Tensor, torch.Tensor]:
    return scene_tensor(48, seed=0)[0], scene_tensor(16, seed=1)[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A micro AnyWorld build with images only (about 70 train, 10 validation and 10 test images)."""
    from anyseq.world.build import build_world
    from anyseq.world.config import WorldConfig

    none = {"train": 0, "validation": 0, "test": 0, "heldout": 0}
    config = WorldConfig.from_preset(
        "micro",
        speech={"counts": none},
        music={"melodies": none, "chorales": none, "folk": none},
        instruct={"counts": none},
    )
    root = tmp_path_factory.mktemp("world")
    build_world(config, root, workers=1, progress=False)
    return root


def test_loss_terms():
    config = ImageTrainConfig()
    target = torch.rand(2, 3, 8, 8) * 2 - 1
    zero = reconstruction_loss(target, target, config)
    assert set(zero) == {"l1", "mse", "gradient"} and all(float(v) == 0 for v in zero.values())
    shifted = reconstruction_loss(target + 0.5, target, config)  # a constant error has no gradient
    assert float(shifted["l1"]) == pytest.approx(0.5) and float(shifted["mse"]) == pytest.approx(0.25)
    assert float(shifted["gradient"]) == pytest.approx(0.0, abs=1e-7)
    edge = target.clone()
    edge[..., 4:] += 1.0  # a step edge: the gradient term sees it
    assert float(reconstruction_loss(edge, target, config)["gradient"]) > 0
    assert "gradient" not in reconstruction_loss(edge, target, ImageTrainConfig(gradient_weight=0.0))


def test_edge_weight_counts_errors_on_outlines_more():
    flat = torch.full((1, 3, 8, 8), -1.0)
    assert edge_map(flat).sum() == 0
    square = flat.clone()
    square[..., 3:5, 3:5] = 1.0  # a 2 x 2 white square on black
    edges = edge_map(square)[0, 0]
    # the square and the ring around it (one pixel beyond its neighbours), nothing further out
    assert edges[1:7, 1:7].all() and edges.sum() == 36
    config = ImageTrainConfig(edge_weight=3.0, gradient_weight=0.0)
    on_edge, off_edge = square.clone(), square.clone()
    on_edge[..., 3, 3] += 0.5
    off_edge[..., 0, 0] += 0.5
    weighted = reconstruction_loss(on_edge, square, config)["l1"]
    assert float(weighted) == pytest.approx(4 * float(reconstruction_loss(off_edge, square, config)["l1"]))


def test_precomputed_edge_maps_match_the_batch_they_are_drawn_with(scenes):
    train = scenes[0]
    edges = edge_maps(train, batch_size=20)  # batches that do not divide the set
    assert edges.dtype == torch.bool and edges.shape == (len(train), 1, 64, 64)
    config = micro_config(batch_size=16, edge_weight=20.0)
    probabilities = np.full(len(train), 1 / len(train))
    pixels, batch_edges = _batch(train, edges, probabilities, config, step=3)
    assert torch.equal(batch_edges, edge_map(pixels).bool())  # flipped images carry flipped maps
    # the loss with the drawn maps is the loss that computes them from the target
    reconstruction = pixels.flip(-2)
    given = reconstruction_loss(reconstruction, pixels, config, batch_edges)
    computed = reconstruction_loss(reconstruction, pixels, config)
    assert all(torch.allclose(given[name], computed[name]) for name in computed)


def test_a_time_limited_run_ends_its_cosine_on_time():
    from anyseq.tokenizers.audio_train import scheduled_learning_rate as learning_rate

    config = ImageTrainConfig(steps=1000, warmup_steps=10, learning_rate=1e-3, min_lr_ratio=0.1)
    assert learning_rate(config, 5) == pytest.approx(6e-4)  # warmup counts steps only
    assert learning_rate(config, 10) == pytest.approx(1e-3)
    assert learning_rate(config, 505) == pytest.approx(5.5e-4)  # half way: half way down the cosine
    assert learning_rate(config, 100, spent=0.5) == pytest.approx(5.5e-4)  # half the time is as far
    assert learning_rate(config, 100, spent=1.2) == pytest.approx(1e-4)  # out of time: the floor


def test_metrics_golden_values():
    image = np.full((8, 8, 3), 100, dtype=np.uint8)
    assert psnr(image, image) == 100.0 and ssim(image, image) == pytest.approx(1.0)
    assert psnr(image, image + 1) == pytest.approx(10 * np.log10(255**2), abs=1e-6)  # MSE 1
    usage = codebook_usage(torch.tensor([[0, 0, 1, 1]]), codebook_size=4)
    assert usage == {"codebook_used": 0.5, "perplexity": pytest.approx(2.0)}
    assert codebook_usage(torch.arange(8), 8)["perplexity"] == pytest.approx(8.0)


def test_source_weights_set_sampling_probabilities():
    sources = ["shapes", "shapes", "emoji", "digits"]
    assert sampling_probabilities(sources, {}) == pytest.approx([0.25] * 4)
    weighted = sampling_probabilities(sources, {"shapes": 3.0, "photos": 5.0})  # no photos here: ignored
    assert weighted == pytest.approx([3 / 8, 3 / 8, 1 / 8, 1 / 8])
    assert sampling_probabilities(sources, {"emoji": 0.0})[2] == 0.0
    with pytest.raises(ValueError, match="must be >= 0"):
        sampling_probabilities(sources, {"emoji": -1.0})


def test_a_weight_multiplies_the_marked_images_weight():
    sources, marked = ["shapes", "shapes", "emoji", "digits"], [True, False, False, False]
    assert sampling_probabilities(sources, {}, marked) == pytest.approx([0.25] * 4)  # factor 1: no change
    weighted = sampling_probabilities(sources, {"shapes": 2.0}, marked, marked_weight=3.0)
    assert weighted == pytest.approx([6 / 10, 2 / 10, 1 / 10, 1 / 10])
    with pytest.raises(ValueError, match="the weight of marked images must be > 0, got 0"):
        sampling_probabilities(sources, {}, marked, marked_weight=0.0)


def test_fine_detail_is_a_small_object_or_two_objects_close_together():
    def obj(size, center, radius=0.21):
        return {"size": size, "center": center, "radius": radius}

    assert has_fine_detail({"objects": [obj("small", [0.5, 0.5], 0.14)]}, near_gap=0.05)
    assert not has_fine_detail({"objects": [obj("large", [0.5, 0.5], 0.30)]}, near_gap=0.05)
    apart = [obj("medium", [0.25, 0.5]), obj("medium", [0.75, 0.5])]  # outer circles 0.08 apart
    assert not has_fine_detail({"objects": apart}, near_gap=0.05)
    assert has_fine_detail({"objects": apart}, near_gap=0.1)
    assert not has_fine_detail({}, near_gap=0.05)
    rng = random.Random(0)
    scenes = [sample_scene(rng, frozenset(), heldout=False) for _ in range(60)]
    marks = [has_fine_detail(scene, near_gap=0.05) for scene in scenes]
    assert any(marks) and not all(marks)
    assert all(marks[i] for i, s in enumerate(scenes) if any(o["size"] == "small" for o in s["objects"]))
    small = {"objects": [obj("small", [0.5, 0.5], 0.14)]}
    images = ImageSet(
        torch.zeros(3, 3, 64, 64, dtype=torch.uint8), ["shapes", "emoji", "shapes"], [small, small, {}]
    )
    assert images.fine_detail(near_gap=0.05) == [True, False, False]  # shape scenes only


def test_attribute_survival_counts_only_what_the_judge_reads_on_the_original():
    pixels, labels = scene_tensor(6, seed=2)
    originals = [Image.fromarray(p.permute(1, 2, 0).numpy()) for p in pixels]
    same = attribute_survival(originals, originals, labels)
    assert same == {"scenes": 6, "judge_ceiling": 1.0, "attribute_survival": 1.0}
    blank = [Image.new("RGB", (64, 64), "white")] * 6
    assert attribute_survival(originals, blank, labels)["attribute_survival"] == 0.0
    assert attribute_survival(blank, originals, labels)["judge_ceiling"] == 0.0


def test_training_learns_and_writes_checkpoint_and_logs(scenes, tmp_path):
    train, validation = scenes
    tokenizer = VQImageTokenizer(VQImageConfig(**MICRO))
    config = micro_config()
    before = validate(tokenizer, validation[:16], config)
    result = train_vq_image(tokenizer, train, validation, tmp_path, config)
    assert result.steps == 30 and not result.stopped_early
    assert [entry["step"] for entry in result.history] == [10, 20, 30]
    assert result.validation["loss"] < 0.5 * before["loss"]
    assert result.validation["psnr"] > before["psnr"] + 3
    assert 0 < result.validation["codebook_used"] <= 1 and result.validation["perplexity"] >= 1
    checkpoint = tmp_path / "checkpoint"
    assert {p.name for p in checkpoint.iterdir()} == {
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
    }
    assert json.loads((checkpoint / "state.json").read_text())["step"] == 30
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert not tokenizer.model.training


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="oneDNN has no bf16 here")
def test_bf16_autocast_learns_as_fp32_does_and_keeps_fp32_weights(scenes, tmp_path, monkeypatch):
    import anyseq.tokenizers.image_train as image_train

    monkeypatch.setattr(image_train, "native_bf16", lambda: True)  # also where bf16 is slower than fp32
    train, validation = scenes
    results = {}
    for bf16 in (False, True):
        tokenizer = VQImageTokenizer(VQImageConfig(**MICRO))
        config = micro_config(bf16=bf16)
        results[bf16] = train_vq_image(tokenizer, train, validation, tmp_path / str(bf16), config).validation
        assert all(p.dtype == torch.float32 for p in tokenizer.model.parameters())
    assert results[True]["psnr"] > results[False]["psnr"] - 1.0  # the same learning, within 1 dB
    assert results[True]["psnr"] != results[False]["psnr"]  # and it did run in bf16


def test_bf16_is_ignored_on_cpus_without_it(scenes, tmp_path, monkeypatch):
    import anyseq.tokenizers.image_train as image_train

    monkeypatch.setattr(image_train, "native_bf16", lambda: False)
    train, validation = scenes
    plain, asked = VQImageTokenizer(VQImageConfig(**MICRO)), VQImageTokenizer(VQImageConfig(**MICRO))
    train_vq_image(plain, train, validation, tmp_path / "plain", micro_config(steps=6))
    train_vq_image(asked, train, validation, tmp_path / "asked", micro_config(steps=6, bf16=True))
    for name, tensor in plain.model.state_dict().items():
        assert torch.equal(tensor, asked.model.state_dict()[name]), name


def test_resume_continues_step_for_step(scenes, tmp_path):
    train, validation = scenes
    straight = VQImageTokenizer(VQImageConfig(**MICRO))
    train_vq_image(straight, train, validation, tmp_path / "straight", micro_config(steps=12))
    interrupted = VQImageTokenizer(VQImageConfig(**MICRO))
    first = train_vq_image(
        interrupted, train, validation, tmp_path / "resumed", micro_config(steps=12, max_minutes=0)
    )
    assert first.stopped_early and first.steps == 1
    resumed = VQImageTokenizer(VQImageConfig(**MICRO))
    second = train_vq_image(resumed, train, validation, tmp_path / "resumed", micro_config(steps=12))
    assert second.steps == 12 and second.history[0]["step"] == 1
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name


def test_checkpoint_of_another_configuration_is_refused(scenes, tmp_path):
    train, validation = scenes
    tokenizer = VQImageTokenizer(VQImageConfig(**MICRO))
    train_vq_image(tokenizer, train, validation, tmp_path, micro_config(steps=2))
    with pytest.raises(ValueError, match="a checkpoint of another configuration"):
        train_vq_image(tokenizer, train, validation, tmp_path, micro_config(steps=2, learning_rate=1e-4))
    fresh = train_vq_image(
        tokenizer, train, validation, tmp_path, micro_config(steps=2, learning_rate=1e-4), False
    )
    assert fresh.steps == 2


def test_bad_training_images_are_refused(scenes, tmp_path):
    train, validation = scenes
    tokenizer = VQImageTokenizer(VQImageConfig(**MICRO))
    with pytest.raises(
        ValueError, match=r"training images must be uint8 \(N>0, 3, 64, 64\), got torch.float32"
    ):
        train_vq_image(tokenizer, train.float(), validation, tmp_path, micro_config())
    with pytest.raises(ValueError, match=r"validation images .* got torch.uint8 \[0, 3, 64, 64\]"):
        train_vq_image(tokenizer, train, validation[:0], tmp_path, micro_config())
    with pytest.raises(ValueError, match="3 sources for 48 training images"):
        train_vq_image(tokenizer, train, validation, tmp_path, micro_config(), sources=["shapes"] * 3)
    with pytest.raises(ValueError, match="2 fine-detail marks for 48 training images"):
        train_vq_image(tokenizer, train, validation, tmp_path, micro_config(), fine_detail=[True] * 2)
    with pytest.raises(ValueError, match="unknown image tokenizer preset 'huge'"):
        ImageTrainConfig.from_preset("huge")


@pytest.mark.slow
def test_train_and_evaluate_on_a_world_build(world, tmp_path):
    out = tmp_path / "image"
    summary = train_image_tokenizer(world, out, preset="tiny", max_minutes=0.02)
    assert summary["stopped_early"] and summary["steps"] >= 1 and summary["train_images"] > 50
    assert json.loads((out / "training.json").read_text())["steps"] == summary["steps"]
    tokenizer = load_tokenizer(out)
    assert isinstance(tokenizer, VQImageTokenizer) and tokenizer.spec.tokens_per_item == 64
    report = evaluate_image_tokenizer(out, world, tmp_path / "eval.json", split="test")
    assert json.loads((tmp_path / "eval.json").read_text()) == report
    assert report["n"] == sum(source["n"] for source in report["by_source"].values())
    assert {"shapes", "digits", "emoji"} <= set(report["by_source"])
    assert 0 < report["psnr"] < 100 and -1 <= report["ssim"] <= 1
    assert 0 < report["codebook_used"] <= 1 and report["perplexity"] >= 1
    assert report["shapes"]["judge_ceiling"] == 1.0 and 0 <= report["shapes"]["attribute_survival"] <= 1
    with pytest.raises(ValueError, match="no split 'nope'"):
        evaluate_image_tokenizer(out, world, tmp_path / "x.json", split="nope")
