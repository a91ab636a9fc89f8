import dataclasses
import json
import math

import pytest
import torch

from anyseq.training.config import (
    ANYGPT_PRETRAIN_RATIOS,
    PRESETS,
    TINY_PRETRAIN_RATIOS,
    LoraSettings,
    TrainConfig,
    native_bf16,
)


def test_every_preset_builds_for_both_stages():
    for name in PRESETS:
        for stage in ("pretrain", "sft"):
            config = TrainConfig.from_name(name, stage)
            assert config.stage == stage, name


def test_pretrain_mix_is_anygpts():
    ratios = ANYGPT_PRETRAIN_RATIOS
    assert math.isclose(sum(ratios.values()), 1.0)
    assert ratios["image_caption"] == 0.2 and ratios["image_generation"] == 0.22
    assert math.isclose(ratios["asr"] + ratios["tts"], 0.3)
    assert math.isclose(ratios["music_caption"] + ratios["music_generation"], 0.28)
    assert TrainConfig.from_name("small", "pretrain").task_ratios == ratios
    # The tiny preset halves music's draws (its clips cost four times a picture's tokens) and
    # keeps AnyGPT's proportions among the other tasks.
    tiny = TrainConfig.from_name("tiny", "pretrain").task_ratios
    assert tiny == TINY_PRETRAIN_RATIOS and math.isclose(sum(tiny.values()), 1.0)
    music = ("music_caption", "music_generation")
    assert all(tiny[task] == ratios[task] / 2 for task in music)
    others = [task for task in ratios if task not in music]
    scale = {tiny[task] / ratios[task] for task in others}
    assert max(scale) - min(scale) < 0.005 and math.isclose(min(scale), 0.86 / 0.72, rel_tol=0.005)
    assert TrainConfig.from_name("tiny", "sft").task_ratios is None  # dialogues in their natural proportions
    paper = TrainConfig.from_name("anygpt-7b", "pretrain")
    assert (paper.learning_rate, paper.warmup_fraction, paper.block_size) == (3e-5, 0.03, 4500)
    assert TrainConfig.from_name("anygpt-7b", "sft").learning_rate == 2e-5


def test_only_the_tiny_model_samples_speech_below_anygpts_temperature():
    for stage in ("pretrain", "sft"):
        assert TrainConfig.from_name("tiny", stage).sampling == {"speech": {"temperature": 0.5}}
        assert TrainConfig.from_name("small", stage).sampling is None  # AnyGPT's settings
        assert TrainConfig.from_name("anygpt-7b", stage).sampling is None


def test_learning_rate_warms_up_then_follows_a_cosine():
    config = TrainConfig(
        stage="pretrain", learning_rate=1.0, max_steps=100, warmup_fraction=0.03, min_lr_ratio=0.1
    )
    assert config.warmup_steps == 3
    assert [config.learning_rate_at(s) for s in range(3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert config.learning_rate_at(3) == pytest.approx(1.0)
    halfway = 3 + 97 / 2
    assert config.learning_rate_at(int(halfway)) == pytest.approx(
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 48 / 97))
    )
    assert config.learning_rate_at(100) == pytest.approx(0.1)
    rates = [config.learning_rate_at(s) for s in range(3, 101)]
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))


def test_a_time_budget_ends_the_cosine_when_it_runs_out_before_the_steps():
    config = TrainConfig(
        stage="pretrain",
        learning_rate=1.0,
        max_steps=100,
        warmup_fraction=0.03,
        min_lr_ratio=0.1,
        max_minutes=2,
    )
    assert config.budget_spent(60) == pytest.approx(0.5)
    # at step 10 the steps say 7/97 of the way, the budget says half: the budget wins
    assert config.learning_rate_at(10, seconds=60) == pytest.approx(
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2))
    )
    assert config.learning_rate_at(10, seconds=120) == pytest.approx(0.1)
    assert config.learning_rate_at(90, seconds=1) == pytest.approx(  # the steps win
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 87 / 97))
    )
    assert config.learning_rate_at(1, seconds=500) == pytest.approx(2 / 3)  # warmup is by steps
    plain = dataclasses.replace(config, max_minutes=None)
    assert plain.max_minutes is None and plain.learning_rate_at(10, seconds=1e9) > 0.9
    with pytest.raises(ValueError, match="max_minutes must be positive"):
        config.with_overrides(max_minutes=0)


def test_config_files_name_a_preset_and_override_it(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps({"preset": "tiny", "stage": "sft", "max_steps": 7, "lora": {"rank": 4, "alpha": 8}})
    )
    config = TrainConfig.from_file(path)
    assert config.max_steps == 7 and config.learning_rate == PRESETS["tiny"]["sft"].learning_rate
    assert config.lora == LoraSettings(rank=4, alpha=8)
    yaml_path = tmp_path / "run.yaml"
    yaml_path.write_text("preset: test\nstage: pretrain\nbetas: [0.8, 0.9]\n")
    assert TrainConfig.from_file(yaml_path).betas == (0.8, 0.9)


def test_to_dict_round_trips_through_json():
    config = TrainConfig.from_name("tiny", "pretrain", lora={"rank": 8, "alpha": 16})
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="unknown training preset 'huge'"):
        TrainConfig.from_name("huge", "pretrain")
    with pytest.raises(ValueError, match=r"unknown training settings \['lr'\]"):
        TrainConfig.from_name("tiny", "pretrain", lr=1.0)
    with pytest.raises(ValueError, match=r"save_every \(15\) must be a multiple of log_every \(10\)"):
        TrainConfig.from_name("tiny", "pretrain", save_every=15)
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        TrainConfig.from_name("tiny", "pretrain", learning_rate=0.0)
    with pytest.raises(ValueError, match="task_ratios must be numbers >= 0, at least one positive"):
        TrainConfig.from_name("tiny", "pretrain", task_ratios={"asr": 0.0})
    with pytest.raises(ValueError, match="task_ratios must be numbers >= 0"):
        TrainConfig.from_name("tiny", "pretrain", task_ratios={"asr": 1.0, "tts": -0.5})
    with pytest.raises(ValueError, match="stage must be one of"):
        TrainConfig(stage="finetune", learning_rate=1.0, max_steps=1)
    with pytest.raises(ValueError, match=r"replay must lie in \[0, 1\) and is for stage sft only, got 0.2"):
        TrainConfig.from_name("tiny", "pretrain", replay=0.2)
    with pytest.raises(ValueError, match="replay must lie in"):
        TrainConfig.from_name("tiny", "sft", replay=1.0)
    with pytest.raises(ValueError, match="replay_mix needs replay > 0"):
        TrainConfig.from_name("tiny", "sft", replay=0.0, replay_mix={"asr": 1.0})
    with pytest.raises(ValueError, match="replay_mix must be numbers >= 0, at least one positive"):
        TrainConfig.from_name("tiny", "sft", replay_mix={"asr": 0.0})
    with pytest.raises(ValueError, match="separate_examples is for stage pretrain only"):
        TrainConfig.from_name("tiny", "sft", separate_examples=True)
    with pytest.raises(ValueError, match="pack_dialogues is for stage sft only"):
        TrainConfig.from_name("tiny", "pretrain", pack_dialogues=True)
    with pytest.raises(ValueError, match="pack_lookahead must be at least 1, got 0"):
        TrainConfig.from_name("tiny", "sft", pack_lookahead=0)
    with pytest.raises(ValueError, match=r"sampling\['speech'\]: unknown settings \['temp'\]"):
        TrainConfig.from_name("tiny", "sft", sampling={"speech": {"temp": 0.5}})
    with pytest.raises(ValueError, match=r"sampling\['image'\]: invalid sampling settings: .*top_p=0"):
        TrainConfig.from_name("tiny", "sft", sampling={"image": {"top_p": 0}})


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "no")])
def test_auto_precision_on_cpu_is_bf16_only_where_the_cpu_computes_it(monkeypatch, native, expected):
    import anyseq.training.trainer as trainer

    monkeypatch.setattr(trainer.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(trainer, "native_bf16", lambda: native)
    assert trainer.resolve_precision("auto") == expected
    assert trainer.resolve_precision("no") == "no" and trainer.resolve_precision("bf16") == "bf16"


@pytest.fixture
def measured_anew():
    native_bf16.cache_clear()
    yield
    native_bf16.cache_clear()


@pytest.mark.parametrize(
    ("fp32", "bf16", "expected"), [(2.0, 1.0, True), (2.0, 1.7, False), (1.0, 1.7, False)]
)
def test_native_bf16_is_measured_not_read_from_the_instruction_flags(
    monkeypatch, measured_anew, fp32, bf16, expected
):
    import anyseq.training.config as config

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(config, "_matmul_seconds", lambda dtype: bf16 if dtype == torch.bfloat16 else fp32)
    assert native_bf16() is expected


def test_native_bf16_is_false_without_bf16_kernels_and_measures_nothing(monkeypatch, measured_anew):
    import anyseq.training.config as config

    def measured(dtype):
        raise AssertionError("timed a product the CPU cannot compute in bf16")

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    monkeypatch.setattr(config, "_matmul_seconds", measured)
    assert native_bf16() is False


def test_native_bf16_times_real_products_once_a_process(monkeypatch, measured_anew):
    import anyseq.training.config as config

    calls = []
    real = config._matmul_seconds

    def counted(dtype):
        calls.append(dtype)
        return real(dtype, repeats=2)

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(config, "_matmul_seconds", counted)
    first = native_bf16()
    assert native_bf16() is first and calls == [torch.float32, torch.bfloat16]
    assert 0 < real(torch.float32, repeats=1) < 1
