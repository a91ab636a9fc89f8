"""Speech tokenizer training, evaluation, the level probes and the benchmark, end to end on tiny sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from anyseq.judges.speech import RecognizerConfig, SpeechJudges
from anyseq.modalities import load_tokenizer
from anyseq.modalities.speech import SpeechConfig, SpeechTokenizer
from anyseq.tokenizers.audio_train import Clip, scheduled_learning_rate
from anyseq.tokenizers.speech_eval import (
    done_when,
    evaluate_speech_tokenizer,
    prompt_pairs,
    vocoder_reference,
)
from anyseq.tokenizers.speech_probe import probe_levels
from anyseq.tokenizers.speech_train import (
    AcousticTrainConfig,
    SpeechTrainConfig,
    acoustic_batch,
    phoneme_inventory,
    read_clips,
    train_on_clips,
    train_speech_tokenizer,
)


def _synthetic(count: int, rng: np.random.Generator) -> tuple[list[torch.Tensor], list[str], list[str]]:
    """Codes whose level 1 spells the phonemes (2 frames a unit) and whose level 2 names the speaker."""
    units = "abcdefgh"
    codes, phonemes, speakers = [], [], []
    for _ in range(count):
        word = "".join(rng.permutation(list(units))[: int(rng.integers(4, 8))])  # no unit twice in a row
        speaker = int(rng.integers(4))
        level1 = torch.tensor([units.index(u) + 1 for u in word for _ in range(2)])
        level2 = torch.from_numpy(speaker * 8 + rng.integers(0, 8, size=len(level1)))
        codes.append(torch.stack([level1, level2]))
        phonemes.append(word)
        speakers.append(f"voice{speaker}")
    return codes, phonemes, speakers


def test_probe_finds_content_in_level1_and_voice_in_level2():
    rng = np.random.default_rng(0)
    train, test = _synthetic(160, rng), _synthetic(40, rng)
    result = probe_levels(*train, *test, codebook_size=32, upsample=2, steps=150)
    assert result.speakers == 4
    assert result.phoneme_error_rate["level1"] < 0.1
    assert result.phoneme_error_rate["level2"] > 0.6
    assert result.speaker_accuracy["level1"] < 0.5  # chance is 0.25: level 1 says nothing of the voice
    assert result.speaker_accuracy["level2"] == 1.0
    assert result.speaker_accuracy["levels2-2"] == 1.0 and result.speaker_accuracy["all"] == 1.0


def test_acoustic_schedule_follows_the_steps_or_the_time_budget():
    config = AcousticTrainConfig(steps=100, warmup_steps=10, learning_rate=1e-3)
    assert scheduled_learning_rate(config, 4) == pytest.approx(5e-4)  # warmup
    assert scheduled_learning_rate(config, 55) == pytest.approx(5.5e-4)  # half way down the cosine
    assert scheduled_learning_rate(config, 20, spent=0.5) == pytest.approx(5.5e-4)  # half the time is as far
    assert scheduled_learning_rate(config, 20, spent=2.0) == pytest.approx(1e-4)  # out of time: the floor
    assert SpeechTrainConfig.preset("tiny").max_minutes == 7.5  # the tiny run's limit (issue: 8 minutes)
    assert SpeechTrainConfig.preset("test").max_minutes is None


def test_acoustic_batch_prompts_each_clip_with_another_clip_of_its_voice():
    codes = [torch.full((3, n), i) for i, n in enumerate([10, 12, 8, 9])]
    voices = ["a", "b", "a", "b"]
    batch = acoustic_batch(
        codes, voices, [0, 1, 2], prompt_frames=5, target_frames=6, rng=np.random.default_rng(0)
    )
    assert batch.codes.shape == (3, 3, 11)
    for row, (index, partner) in enumerate([(0, 2), (1, 3), (2, 0)]):
        prompt = batch.codes[row][:, ~batch.is_target[row] & batch.valid[row]]
        target = batch.codes[row][:, batch.is_target[row]]
        assert prompt.shape[1] == 5 and bool((prompt == partner).all())  # the other clip of the same voice
        assert target.shape[1] == 6 and bool((target == index).all())


def test_prompt_pairs_same_and_other_voice():
    voices = ["a", "a", "b", "b", "c"]
    with pytest.raises(ValueError, match=r"clip 4 \(c\): no other clip of its voice"):
        prompt_pairs(voices, same_voice=True)
    same = prompt_pairs(voices[:4], same_voice=True)
    other = prompt_pairs(voices, same_voice=False)
    assert same == [1, 0, 3, 2]
    assert all(voices[j] != v for j, v in zip(other, voices, strict=True))
    assert prompt_pairs(voices, same_voice=False) == other  # seeded
    spare = prompt_pairs(voices, same_voice=True, spare=["c", "a"])
    assert spare == [1, 0, 3, 2, 5]  # only the clip heard once takes a spare prompt


@pytest.mark.slow
def test_train_resume_and_evaluate_on_micro_world(micro_world, tmp_path):
    out = tmp_path / "speech"
    summary = train_speech_tokenizer(micro_world, out, preset="test")
    assert summary["codec"]["steps"] == 4 and summary["acoustic"]["steps"] == 4
    assert (out / "codec" / "tensorboard").is_dir() and (out / "acoustic" / "tensorboard").is_dir()
    tokenizer = load_tokenizer(out)
    assert isinstance(tokenizer, SpeechTokenizer)
    clip = read_clips(micro_world, "test", 16000)[0]
    codes = tokenizer.encode(clip.samples)
    assert codes.shape == (1, int(np.ceil(len(clip.samples) / 640)))
    assert tokenizer.config.phonemes == phoneme_inventory(read_clips(micro_world, "train", 16000))
    assert tokenizer.default_prompt.shape[0] == 3 and int(tokenizer.default_prompt.max()) < 32

    weights = (out / "model.safetensors").read_bytes()
    again = train_speech_tokenizer(micro_world, out, preset="test")  # resumes: nothing left to train
    assert again["codec"]["steps"] == 4 and again["acoustic"]["steps"] == 4
    assert again["acoustic"]["loss"] is None
    assert (out / "model.safetensors").read_bytes() == weights

    judges_dir = tmp_path / "judges"
    SpeechJudges.for_world(micro_world, judges_dir, RecognizerConfig.preset("test"))
    report = evaluate_speech_tokenizer(out, micro_world, tmp_path / "eval.json", judges_dir=judges_dir)
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["split"] == "test" and saved["clips"] == 3
    conditions = saved["conditions"]
    assert set(conditions) == {
        "original", "griffin_lim", "vocoder", "all_levels", "level1_own_voice", "level1_default_voice",
        "cloned"
    }  # fmt: skip
    assert 0 <= conditions["original"]["wer_pocketsphinx"] <= 1
    assert "prompt_voice_share" in conditions["cloned"]
    assert set(saved["probe"]["speaker_accuracy"]) == {"level1", "level2", "level3", "levels2-3", "all"}
    assert set(report["done_when"]) == set(done_when(report))


@pytest.mark.parametrize("bf16", [True, False])
def test_bf16_setting_autocasts_both_training_loops_where_it_pays(micro_world, tmp_path, monkeypatch, bf16):
    """`bf16` asks `native_bf16` (here: yes) in the codec's and the acoustic model's loops, which then
    train under autocast to a finite loss; without it nothing is measured."""
    from anyseq.tokenizers import audio_train, speech_train

    asked = []
    monkeypatch.setattr(audio_train, "native_bf16", lambda: asked.append("codec") or True)
    monkeypatch.setattr(speech_train, "native_bf16", lambda: asked.append("acoustic") or True)
    entered = []
    autocast = torch.autocast

    class Spy(autocast):
        def __enter__(self):
            entered.append(self._enabled)
            return super().__enter__()

    monkeypatch.setattr(torch, "autocast", Spy)
    config = SpeechTrainConfig.preset("test")
    config.codec.bf16 = config.acoustic.bf16 = bf16
    train, validation = read_clips(micro_world, "train", 16000), read_clips(micro_world, "validation", 16000)
    speech_config = SpeechConfig.preset("test", phonemes=phoneme_inventory(train))
    summary = train_on_clips(train, validation, tmp_path / "speech", speech_config, config)
    assert summary["codec"]["steps"] == 4 and summary["acoustic"]["steps"] == 4
    assert np.isfinite(summary["codec"]["train_loss"]) and np.isfinite(summary["acoustic"]["loss"])
    assert asked == (["codec", "acoustic"] if bf16 else [])
    assert (True in entered) == bf16  # the training forwards ran under bf16 autocast


def test_vocoder_reference_keeps_the_clip_and_its_spectrum(micro_world):
    """The true log mels through the codec's inversion and Griffin-Lim come back as the same clip's
    spectrum (no weights involved), far closer to it than to another clip's."""
    tokenizer = SpeechTokenizer(SpeechConfig.preset("test", griffin_lim_iters=16))
    first, second = read_clips(micro_world, "test", 16000)[:2]
    out = vocoder_reference(tokenizer, first.samples)
    assert out.samples.shape == first.samples.shape and out.sample_rate == 16000

    def log_mels(samples: np.ndarray) -> torch.Tensor:
        n = min(len(first.samples), len(second.samples))
        return tokenizer.codec.core.log_magnitude(torch.from_numpy(np.ascontiguousarray(samples[:n]))[None])

    own = (log_mels(out.samples) - log_mels(first.samples)).abs().mean()
    other = (log_mels(second.samples) - log_mels(first.samples)).abs().mean()
    assert own < 0.5 * other, f"vocoded clip {own:.2f} from its original, another clip {other:.2f}"


def test_read_clips_names_a_missing_split(micro_world):
    with pytest.raises(ValueError, match="no split 'nope'"):
        read_clips(micro_world, "nope", 16000)


def test_clip_labels_come_from_the_world(micro_world):
    clips = read_clips(micro_world, "train", 16000)
    assert all(isinstance(c, Clip) and c.samples.dtype == np.float32 for c in clips)
    assert all({"text", "phonemes", "voice", "id"} <= set(c.labels) for c in clips)
