import json
import math
import shutil

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState
from conftest import make_model, tokenize_into
from transformers import AutoModelForCausalLM

from anyseq.checkpoint import load_checkpoint
from anyseq.sampling import DEFAULT_SAMPLING, SamplingConfig
from anyseq.training import TrainConfig, Trainer, train
from anyseq.training.data import TrainSequence, collate
from anyseq.training.state import complete_checkpoints


@pytest.fixture(scope="module")
def two_stages(tiny_world, tmp_path_factory):
    """The test preset's pretraining, then instruction tuning from its run directory."""
    root = tmp_path_factory.mktemp("stages")
    data = tiny_world.data
    first = TrainConfig.from_name("test", "pretrain", max_steps=40)
    pretrain = train(first, tiny_world.model, data, root / "pretrain")
    sft = train(
        TrainConfig.from_name("test", "sft", max_steps=30, sampling={"speech": {"temperature": 0.5}}),
        root / "pretrain" / "model",
        data,
        root / "sft",
    )
    return root, pretrain, sft


@pytest.mark.slow
def test_both_stages_lower_the_validation_loss_of_every_task(two_stages):
    root, pretrain, sft = two_stages
    assert set(pretrain.val_loss) == {"image_caption", "image_generation", "asr", "tts", "music_caption",
                                      "music_generation"}  # fmt: skip
    assert set(sft.val_loss) == {"text->image", "speech->text"}
    assert (pretrain.steps, sft.steps) == (40, 30)
    for summary in (pretrain, sft):
        for task, losses in summary.val_loss.items():
            assert losses["end"] < 0.8 * losses["start"], (summary.stage, task, losses)
            assert losses["ratio_to_uniform"] == pytest.approx(losses["end"] / summary.uniform_loss)
        assert summary.uniform_loss == pytest.approx(
            math.log(load_checkpoint(summary.model).model.config.vocab_size)
        )
    # The second stage starts where the first ended: its first loss is already below a fresh model's.
    assert max(v["start"] for v in sft.val_loss.values()) < max(
        v["start"] for v in pretrain.val_loss.values()
    )
    written = json.loads((root / "sft" / "summary.json").read_text())
    assert written["val_loss"]["speech->text"]["end"] == pytest.approx(sft.val_loss["speech->text"]["end"])


@pytest.mark.slow
def test_a_run_leaves_checkpoints_logs_and_a_loadable_model(two_stages):
    root, pretrain, _ = two_stages
    run = root / "pretrain"
    kept = complete_checkpoints(run / "checkpoints")
    assert [p.name for p in kept] == ["step-000035", "step-000040"]  # keep_last=2
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(1, 41))
    assert {"loss", "lr", "grad_norm", "tokens_per_second", "tokens"} <= set(lines[-1])
    logged = {key for line in lines for key in line if key.startswith("loss/")}
    assert logged == {f"loss/{task}" for task in pretrain.val_loss}
    assert list((run / "logs").glob("events.out.tfevents.*"))
    checkpoint = load_checkpoint(run / "model")
    assert checkpoint.metadata["training"]["pretrain"]["steps"] == 40
    tuned = load_checkpoint(root / "sft" / "model")
    assert tuned.metadata["training"].keys() == {"pretrain", "sft"}
    # The sft run's `sampling` changes the speech temperature only; the rest is its start's (AnyGPT's).
    assert checkpoint.sampling == DEFAULT_SAMPLING
    assert tuned.sampling == {**DEFAULT_SAMPLING, "speech": SamplingConfig(0.5, repetition_penalty=1.05)}
    plain = AutoModelForCausalLM.from_pretrained(run / "model", local_files_only=True, use_safetensors=True)
    assert plain.config.vocab_size >= checkpoint.layout.vocab_size


def test_a_spent_time_budget_ends_the_run_saved_and_a_resume_takes_no_more_steps(tiny_world, tmp_path):
    # 6 ms of training steps: the first step spends it
    config = TrainConfig.from_name("test", "pretrain", max_steps=20, max_minutes=1e-4)
    run = tmp_path / "run"
    summary = train(config, tiny_world.model, tiny_world.data, run)
    assert summary.stopped_early and summary.steps == 1 and summary.train_seconds >= 6e-3
    assert [p.name for p in complete_checkpoints(run / "checkpoints")] == ["step-000001"]
    assert load_checkpoint(run / "model").metadata["training"]["pretrain"]["steps"] == 1
    again = train(config, tiny_world.model, tiny_world.data, run, resume=True)
    assert again.stopped_early and again.steps == 1
    with pytest.raises(ValueError, match=r"other settings \(max_minutes\)"):
        Trainer(config.with_overrides(max_minutes=5), tiny_world.model, tiny_world.data, run, resume=True)


def _params(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_gradient_accumulation_matches_the_whole_batch(tiny_world, tmp_path):
    config = TrainConfig.from_name("test", "pretrain")
    whole = Trainer(config, tiny_world.model, tiny_world.data, tmp_path / "whole")  # batch_size 4
    halves = config.with_overrides(batch_size=2, grad_accum=2)
    split = Trainer(halves, tiny_world.model, tiny_world.data, tmp_path / "split")
    for _ in range(3):
        a, b = whole.step(), split.step()
        assert a.loss_sum.item() == pytest.approx(b.loss_sum.item(), rel=1e-5)
    for name, value in _params(whole.model).items():
        torch.testing.assert_close(value, _params(split.model)[name], rtol=1e-5, atol=1e-6, msg=name)


def test_separated_examples_reach_the_model_as_positions(tiny_world, tmp_path):
    config = TrainConfig.from_name("test", "pretrain", max_steps=2, eval_every=0, save_every=2)
    shared = Trainer(config, tiny_world.model, tiny_world.data, tmp_path / "shared")
    separated = Trainer(
        config.with_overrides(separate_examples=True),
        tiny_world.model,
        tiny_world.data,
        tmp_path / "separated",
    )
    block = separated.stream.next()
    assert block.position is not None and (block.position == 0).sum() >= 2  # several examples a block
    assert shared.stream.next().position is None
    # the same blocks, seen with and without attention across examples: other losses
    assert separated.step().loss_sum.item() != pytest.approx(shared.step().loss_sum.item(), rel=1e-4)


@pytest.mark.parametrize("stage", ["pretrain", "sft"])
def test_pair_loss_names_the_targets_of_stage_one_pairs(tiny_world, tmp_path, stage):
    config = TrainConfig.from_name("test", stage, max_steps=2, eval_every=0, save_every=2)
    if stage == "sft":
        config = config.with_overrides(replay=0.5)
    targets = {}
    for pair_loss in ("all", "assistant"):
        trainer = Trainer(config.with_overrides(pair_loss=pair_loss), tiny_world.model, tiny_world.data,
                          tmp_path / pair_loss)  # fmt: skip
        pairs = {
            t: ex for t, ex in trainer.train_split.tasks.items() if stage == "pretrain" or "replay:" in t
        }
        targets[pair_loss] = {t: int(ex.loss_mask.sum()) for t, ex in pairs.items()}
        assert targets[pair_loss]
        for task, examples in pairs.items():
            if pair_loss == "all":  # every token but each example's first
                assert targets["all"][task] == len(examples.ids) - len(examples)
        if stage == "sft":  # the dialogues keep their assistant turns either way
            dialogues = {
                t: int(ex.loss_mask.sum()) for t, ex in trainer.train_split.tasks.items() if t not in pairs
            }
            assert dialogues and dialogues == targets.setdefault("dialogues", dialogues)
    for task in targets["all"]:
        assert 0 < targets["assistant"][task] < targets["all"][task] / 2  # the reply only
    with pytest.raises(ValueError, match="pair_loss must be all or assistant, got 'reply'"):
        config.with_overrides(pair_loss="reply")


def test_the_rehearsed_pairs_are_drawn_in_replay_mix(tiny_world, tmp_path):
    config = TrainConfig.from_name("test", "sft", max_steps=2, eval_every=0, save_every=2, replay=0.5)
    by_size = Trainer(config, tiny_world.model, tiny_world.data, tmp_path / "by_size").stream.sampler
    pairs = sorted(t.removeprefix("replay:") for t in by_size.tasks if t.startswith("replay:"))
    assert len(pairs) >= 2 and all(
        by_size.probabilities[by_size.tasks.index("replay:" + t)] > 0 for t in pairs
    )
    mix = {t: 3.0 if t == pairs[0] else 1.0 if t == pairs[1] else 0.0 for t in pairs}
    trainer = Trainer(
        config.with_overrides(replay_mix=mix), tiny_world.model, tiny_world.data, tmp_path / "mix"
    )
    sampler = trainer.stream.sampler
    drawn = {
        t: float(p)
        for t, p in zip(sampler.tasks, sampler.probabilities, strict=True)
        if t.startswith("replay:")
    }
    assert drawn == pytest.approx({"replay:" + t: 0.5 * r / 4.0 for t, r in mix.items()})  # replay 0.5
    with pytest.raises(ValueError, match=r"replay_mix do not match .* no data for \['humming'\]"):
        Trainer(config.with_overrides(replay_mix={**mix, "humming": 1.0}), tiny_world.model, tiny_world.data,
                tmp_path / "bad")  # fmt: skip


def test_packed_dialogues_cost_the_same_loss_as_each_dialogue_alone(tiny_world, tmp_path):
    config = TrainConfig.from_name("test", "sft", max_steps=2, eval_every=0, save_every=2, replay=0.5)
    packed = config.with_overrides(pack_dialogues=True, pack_lookahead=4)
    trainer = Trainer(packed, tiny_world.model, tiny_world.data, tmp_path)
    assert trainer.stream.lookahead == 4
    row = next(r for r in (trainer.stream.next() for _ in range(20)) if (r.position == 0).sum() >= 2)
    starts = [*np.flatnonzero(row.position == 0), len(row.ids)]
    spans = zip(starts, starts[1:], strict=False)
    alone = [TrainSequence(row.ids[a:b], row.loss_mask[a:b], row.task[a:b]) for a, b in spans]
    num_tasks = len(trainer.train_split.task_names)
    with torch.no_grad():
        first = TrainSequence(*(getattr(alone[0], f) for f in ("ids", "loss_mask", "task")),
                              np.arange(len(alone[0].ids)))  # fmt: skip
        packed = trainer._forward(collate([row, first], trainer.layout.pad_id), num_tasks)  # padded
        separate = [
            trainer._forward(collate([d], trainer.layout.pad_id), num_tasks) for d in [*alone, alone[0]]
        ]
    for got, expected in zip(packed, map(sum, zip(*separate, strict=True)), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert trainer.step().loss_sum.isfinite()


def test_validation_batch_size_changes_the_batches_not_the_losses(tiny_world, tmp_path):
    config = TrainConfig.from_name("test", "sft", max_steps=2, eval_every=0, save_every=2)  # batch_size 4
    apart, together = (
        Trainer(
            config.with_overrides(eval_batch_size=size),
            tiny_world.model,
            tiny_world.data,
            tmp_path / str(size),
        )
        for size in (1, None)
    )
    assert len(apart.val_batches) > len(together.val_batches)
    losses = apart.evaluate()
    assert losses == pytest.approx(together.evaluate(), rel=1e-4)
    with pytest.raises(ValueError, match="eval_batch_size must be positive"):
        config.with_overrides(eval_batch_size=0)


def test_bad_input_fails_before_any_compute(tiny_world, tmp_path):
    config = TrainConfig.from_name("test", "pretrain", max_steps=2)
    with pytest.raises(ValueError, match="longer than the context of 16 tokens"):
        Trainer(config.with_overrides(block_size=16), tiny_world.model, tiny_world.data, tmp_path / "a")
    with pytest.raises(ValueError, match="block_size 512 exceeds the model's context of 256 tokens"):
        Trainer(config.with_overrides(block_size=512), tiny_world.model, tiny_world.data, tmp_path / "a")
    assert not (tmp_path / "a").exists()

    run = tmp_path / "run"
    train(config, tiny_world.model, tiny_world.data, run)
    with pytest.raises(FileExistsError, match="already holds a training run; pass --resume"):
        Trainer(config, tiny_world.model, tiny_world.data, run)
    with pytest.raises(ValueError, match=r"was started with other settings \(learning_rate\)"):
        Trainer(config.with_overrides(learning_rate=1.0), tiny_world.model, tiny_world.data, run, resume=True)

    # A checkpoint of another vocabulary (a model with another text tokenizer) is refused.
    other = make_model(tmp_path / "other", text_vocab_size=300)
    tokenize_into(tmp_path / "other-data", other, pretrain=12, instruct=6)
    other_run = tmp_path / "other-run"
    train(config.with_overrides(eval_examples=2), other, tmp_path / "other-data", other_run)
    shutil.copytree(other_run / "checkpoints" / "step-000002", run / "checkpoints" / "step-000009")
    with pytest.raises(ValueError, match="step-000009 has another vocabulary"):
        Trainer(config, tiny_world.model, tiny_world.data, run, resume=True)


@pytest.fixture
def precision_reset():
    """Accelerate fixes the precision once per process; a test that changes it resets it after."""
    yield
    AcceleratorState._reset_state()


def test_gradient_checkpointing_and_bf16_switches(tiny_world, tmp_path, precision_reset):
    config = TrainConfig.from_name("test", "pretrain")
    plain = Trainer(config, tiny_world.model, tiny_world.data, tmp_path / "plain")
    recomputed = Trainer(config.with_overrides(gradient_checkpointing=True), tiny_world.model, tiny_world.data,
                         tmp_path / "recomputed")  # fmt: skip
    assert recomputed.accelerator.unwrap_model(recomputed.model).is_activation_checkpointing
    AcceleratorState._reset_state()  # precision is per process; this test holds two
    bf16 = Trainer(
        config.with_overrides(mixed_precision="bf16"), tiny_world.model, tiny_world.data, tmp_path / "bf16"
    )
    assert bf16.accelerator.mixed_precision == "bf16"
    for _ in range(2):
        a, b, c = plain.step(), recomputed.step(), bf16.step()
        assert b.loss_sum.item() == pytest.approx(a.loss_sum.item(), rel=1e-6)
        assert c.loss_sum.item() == pytest.approx(a.loss_sum.item(), rel=2e-2)  # bf16 matmuls, fp32 weights
    for name, value in _params(plain.model).items():
        torch.testing.assert_close(value, _params(recomputed.model)[name], rtol=1e-5, atol=1e-6, msg=name)
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())


def test_compiled_training_matches_eager_and_saves_plain_weights(tiny_world, tmp_path):
    """torch.compile changes the kernels, not the maths: same losses and weights as eager
    (to float tolerance), and the saved model has the plain parameter names."""
    config = TrainConfig.from_name("test", "pretrain", max_steps=3, eval_every=0, save_every=3)
    eager = Trainer(config, tiny_world.model, tiny_world.data, tmp_path / "eager")
    fused = Trainer(
        config.with_overrides(compile=True), tiny_world.model, tiny_world.data, tmp_path / "fused"
    )
    assert fused.train_model is not fused.model and eager.train_model is eager.model
    for _ in range(3):
        a, b = eager.step(), fused.step()
        assert b.loss_sum.item() == pytest.approx(a.loss_sum.item(), rel=1e-4)
    for name, value in _params(eager.model).items():
        torch.testing.assert_close(value, _params(fused.model)[name], rtol=1e-3, atol=1e-5, msg=name)
    saved = load_checkpoint(fused.save())
    assert not any("_orig_mod" in name for name, _ in saved.model.named_parameters())
